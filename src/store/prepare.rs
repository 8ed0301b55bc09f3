//! Preparing a push, off the loop: checks that need no store, series
//! keys, exposition lines rendered once.

use std::cmp::Ordering;
use std::sync::Arc;

use super::*;
use crate::model::{Label, Labels, Metric, MetricFamily, MetricType, SeriesLabels, merged};
use crate::wire::exposition;
use crate::wire::template::KeyText;

/// Orders series as the reference's exposition does: by number of labels,
/// then by label values in label-name order; label names only break ties
/// the reference leaves to chance.
#[derive(Clone, Debug)]
pub(crate) struct SeriesKey(pub Labels);

impl Ord for SeriesKey {
    fn cmp(&self, other: &Self) -> Ordering {
        series_order(&self.0, &other.0)
    }
}

/// The reference's series order (see [`SeriesKey`]), on bare label sets.
pub(crate) fn series_order(a: &[Label], b: &[Label]) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().map(|l| &l.value).cmp(b.iter().map(|l| &l.value)))
        .then_with(|| a.iter().map(|l| &l.name).cmp(b.iter().map(|l| &l.name)))
}

/// [`series_order`] of two stored series of one group: their own labels,
/// each merged with the group's (`shared`), compared without building
/// either label set.
pub(crate) fn stored_order(a: &[Label], b: &[Label], shared: &[Label]) -> Ordering {
    let (a, b) = (merged(a, shared), merged(b, shared));
    a.count_exact()
        .cmp(&b.count_exact())
        .then_with(|| a.clone().map(|l| &l.value).cmp(b.clone().map(|l| &l.value)))
        .then_with(|| a.map(|l| &l.name).cmp(b.map(|l| &l.name)))
}

/// [`stored_order`] of a stored series (its own labels, merged with its
/// group's `shared`) against a series given with all its labels: what a
/// binary search of a stored family for a pushed series compares.
pub(crate) fn stored_order_to(own: &[Label], shared: &[Label], full: &[Label]) -> Ordering {
    let a = merged(own, shared);
    let b = full.iter();
    a.count_exact()
        .cmp(&full.len())
        .then_with(|| a.clone().map(|l| &l.value).cmp(b.clone().map(|l| &l.value)))
        .then_with(|| a.map(|l| &l.name).cmp(b.map(|l| &l.name)))
}

impl PartialOrd for SeriesKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SeriesKey {}

/// One pushed family, ready to store: built here, off the loop, as the
/// group will hold it, so that applying it only links it in (no copy and
/// no allocation on the loop, and no second vector of families while a
/// push of a few hundred thousand of them is applied).
#[derive(Clone, Debug)]
pub(crate) struct PreparedFamily {
    /// Shared with the store's index and the group's map when new there.
    pub name: Arc<str>,
    /// What the group stores. Its series are in label order (exposition
    /// order), each with its own labels only: the group's
    /// ([`PreparedPush::shared`]) apply to all. Its `text` holds their
    /// exposition lines with markers where the group's labels go
    /// (`wire::template`). Its `pushed_at` is set when it is applied.
    pub family: Arc<StoredFamily>,
    /// Where its series' [`series_hash`]es start in
    /// [`PreparedPush::hashes`].
    first_hash: usize,
    /// Set when restoring; a push stamps its families with the push time.
    pub pushed_at: Option<Nanos>,
}

impl PreparedFamily {
    /// Where its series' hashes start in [`PreparedPush::hashes`].
    pub(super) fn first_hash(&self) -> usize {
        self.first_hash
    }
}

impl std::ops::Deref for PreparedFamily {
    type Target = StoredFamily;

    fn deref(&self) -> &StoredFamily {
        &self.family
    }
}

/// A push that passed every check that needs no store: sanitized labels,
/// no timestamps, no reserved labels, no duplicate series within itself.
#[derive(Clone, Debug)]
pub(crate) struct PreparedPush {
    pub key: GroupKey,
    /// The labels the group gives each of its series: the key, and
    /// `instance=""` unless the key has an instance. Kept once, with the
    /// group, not in every series.
    pub shared: Labels,
    /// `shared` rendered: what the markers in the families' text point
    /// into (`wire::template`). A new group keeps it.
    pub key_text: Arc<[u8]>,
    /// Sorted by name, one per name.
    pub families: Vec<PreparedFamily>,
    /// Every family's series hashes, one after the other, computed here
    /// so that the loop only looks them up in the index: one vector for
    /// the push, not one per family ([`PreparedPush::hashes_of`]).
    pub hashes: Vec<u64>,
    /// PUT replaces the whole group; POST only the families it carries.
    pub replace: bool,
    /// The group's TTL from the `Pushgateway-Group-TTL` header, kept with
    /// the group until a later push with the header changes it.
    pub ttl: Option<std::time::Duration>,
    /// The series' labels already share their pairs (a restore's parser
    /// shares them as it reads): the store's interner is skipped.
    pub labels_shared: bool,
}

impl PreparedPush {
    /// The pushed family named `name`: a binary search, the families
    /// being sorted by name and distinct (`prepare_push`).
    pub(crate) fn family(&self, name: &str) -> Option<&PreparedFamily> {
        let at = self
            .families
            .binary_search_by(|f| (*f.name).cmp(name))
            .ok()?;
        Some(&self.families[at])
    }

    /// The [`series_hash`]es of `f`'s series, in their order.
    pub(crate) fn hashes_of(&self, f: &PreparedFamily) -> &[u64] {
        &self.hashes[f.first_hash..][..f.metrics.len()]
    }
}

/// Applies the grouping labels to every series (overriding same-named body
/// labels), adds `instance=""` where absent, sorts labels by name, drops
/// families named like the gateway's push-time gauges (they are always the
/// gateway's), and checks everything that needs no store.
///
/// The group's labels are not copied into the series: each keeps only its
/// own, and the group's ([`PreparedPush::shared`]) are merged in wherever
/// the series is shown, hashed or compared.
pub(crate) fn prepare_push(
    key: GroupKey,
    families: Vec<MetricFamily>,
    replace: bool,
) -> Result<PreparedPush, PushError> {
    let key = sorted_key(key);
    let shared = group_labels(&key);
    let key_text = KeyText::new(&shared);
    let sanitizer = Sanitizer::new(&key);
    let group_checks = GroupChecks::new(&shared);
    let mut scratch = Vec::new();
    let mut hashes = Vec::with_capacity(families.iter().map(|f| f.metrics.len()).sum());
    let push = PushContext {
        shared: &shared,
        key_text: &key_text,
        sanitizer: &sanitizer,
        group_checks: &group_checks,
    };
    // Family by family into the parsed list itself (a map of a vector
    // into one of items no larger reuses its allocation): the prepared
    // list is never a second one. Made after the parse freed its big
    // blocks, a list of its own came from the heap, below the stored
    // families, and left a hole there (14 MB for 300,000 families).
    let mut out = families
        .into_iter()
        .filter(|f| &*f.name != PUSH_TIME && &*f.name != PUSH_FAILURE_TIME)
        .map(|fam| push.family(fam, &mut scratch, &mut hashes))
        .collect::<Result<Vec<PreparedFamily>, PushError>>()?;
    in_name_order_last_of_each(&mut out);
    Ok(PreparedPush {
        key,
        shared,
        key_text: Arc::clone(key_text.text()),
        families: out,
        hashes,
        replace,
        ttl: None,
        labels_shared: false,
    })
}

/// What every family of one push is prepared with.
struct PushContext<'p> {
    /// The group's labels ([`PreparedPush::shared`]).
    shared: &'p Labels,
    key_text: &'p KeyText,
    sanitizer: &'p Sanitizer<'p>,
    group_checks: &'p GroupChecks,
}

impl PushContext<'_> {
    /// One family as the group will store it; its series' hashes are
    /// added to `hashes`, its lines rendered through `scratch`.
    fn family(
        &self,
        fam: MetricFamily,
        scratch: &mut Vec<u8>,
        hashes: &mut Vec<u64>,
    ) -> Result<PreparedFamily, PushError> {
        let shared = self.shared;
        // Series by series into the parsed vector itself (a map of a
        // vector into one of the same type reuses its allocation): a push
        // of a million series never holds two vectors of them.
        let (name, t) = (&fam.name, fam.metric_type);
        if !fam.metrics.is_empty() {
            self.group_checks.check(name, t)?;
        }
        let mut metrics = fam
            .metrics
            .into_iter()
            .map(|m| prepare_series(m, name, t, self.sanitizer))
            .collect::<Result<Vec<Metric>, PushError>>()?;
        // Stored for as long as the group lives: not with the parser's
        // spare capacity (a vector grown by doubling holds up to twice
        // its series; a million series in families of ten kept 23 MB
        // spare). A nearly full vector is kept as it is, so one huge
        // family is not copied, nor one of a single series (stored inline,
        // see `StoredSeries`).
        if metrics.len() > 1 && metrics.capacity() - metrics.len() > metrics.len() / 8 {
            metrics = exact(metrics);
        }
        // In exposition order: the group's piece of a text scrape. Sorted,
        // a duplicate series sits next to its twin.
        metrics.sort_unstable_by(|a, b| stored_order(&a.labels, &b.labels, shared));
        if let Some(w) = metrics
            .windows(2)
            .find(|w| stored_order(&w[0].labels, &w[1].labels, shared).is_eq())
        {
            return Err(PushError::DuplicateSeries {
                metric: fam.name.to_string(),
                labels: show_labels(&merged(&w[0].labels, shared).collect_boxed()),
            });
        }
        // Rendered into one buffer reused for every family, then copied
        // at its exact size: no shrinking reallocation leaving a hole
        // behind each family.
        scratch.clear();
        for m in &metrics {
            exposition::write_metric_template(scratch, &fam.name, m, (shared, self.key_text));
        }
        let text = Lines::from(scratch.as_slice());
        let exposed = crate::wire::template::expanded_len(&text, self.key_text.text());
        let first_hash = hashes.len();
        hashes.extend(metrics.iter().map(|m| series_hash(&m.labels, shared)));
        Ok(PreparedFamily {
            name: fam.name,
            family: Arc::new(StoredFamily {
                help: fam.help,
                metric_type: fam.metric_type,
                samples: u32::try_from(super::limits::lines(&text)).unwrap_or(u32::MAX),
                metrics: metrics.into(),
                text,
                pushed_at: 0,
                exposed,
            }),
            first_hash,
            pushed_at: None,
        })
    }
}

/// `v` moved into a vector of exactly its length (a new allocation, not a
/// shrinking reallocation that would leave a hole behind).
fn exact<T>(v: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    out.extend(v);
    out
}

/// One series with the grouping key applied, checked for what a pushed
/// series may not carry: a timestamp, a reserved label name, a `quantile`
/// label on a summary.
fn prepare_series(
    m: Metric,
    family: &str,
    t: MetricType,
    sanitizer: &Sanitizer,
) -> Result<Metric, PushError> {
    if m.timestamp_ms().is_some() {
        return Err(PushError::Timestamp {
            metric: family.to_string(),
        });
    }
    let labels = sanitizer.owned(m.labels);
    check_labels(&labels, family, t)?;
    Ok(Metric {
        labels,
        value: m.value,
        extra: m.extra,
    })
}

/// What [`check_labels`] finds in the group's labels, looked for once per
/// push (a key may hold a hundred thousand pairs) and reported for each
/// family with series.
struct GroupChecks {
    /// The first reserved (`__`) name among them.
    reserved: Option<String>,
    has_quantile: bool,
}

impl GroupChecks {
    fn new(shared: &[Label]) -> GroupChecks {
        GroupChecks {
            reserved: shared
                .iter()
                .find(|l| l.name.starts_with("__"))
                .map(|l| l.name.to_string()),
            has_quantile: shared.iter().any(|l| &*l.name == "quantile"),
        }
    }

    /// [`check_labels`] of the group's labels for a family of type `t`:
    /// a reserved name sorts before `quantile`, so it is reported first.
    fn check(&self, family: &str, t: MetricType) -> Result<(), PushError> {
        if let Some(label) = &self.reserved {
            return Err(PushError::ReservedLabel {
                metric: family.to_string(),
                label: label.clone(),
            });
        }
        if self.has_quantile && t == MetricType::Summary {
            return Err(PushError::QuantileLabel {
                metric: family.to_string(),
            });
        }
        Ok(())
    }
}

/// Labels no series may carry: reserved names (`__` first), and
/// `quantile` on a summary. A series' own labels are checked one by one,
/// the group's once per push ([`GroupChecks`]).
fn check_labels(labels: &[Label], family: &str, t: MetricType) -> Result<(), PushError> {
    for l in labels {
        if l.name.starts_with("__") {
            return Err(PushError::ReservedLabel {
                metric: family.to_string(),
                label: l.name.to_string(),
            });
        }
        if &*l.name == "quantile" && t == MetricType::Summary {
            return Err(PushError::QuantileLabel {
                metric: family.to_string(),
            });
        }
    }
    Ok(())
}

/// Sorts the families by name, the order the store links them in
/// (`fill`), and keeps one per name: a later one replaces an earlier one,
/// as in the reference's map of families. The text parser never repeats
/// a name; protobuf may.
///
/// In place, without a set of the names: a set of 300,000 names, freed
/// before the push was stored, left a 9 MB hole below its families. Of
/// two families of one name, the later one's series hashes start later
/// (`first_hash`), or at the same place when the earlier one has none:
/// so (name, first hash, series) orders them as pushed. Only two empty
/// families of one name would tie, and no source gives a push one (the
/// parsers drop empty families, a snapshot refuses a name twice).
fn in_name_order_last_of_each(out: &mut Vec<PreparedFamily>) {
    let pushed = |f: &PreparedFamily| (f.first_hash, f.metrics.len());
    out.sort_unstable_by(|a, b| a.name.cmp(&b.name).then(pushed(a).cmp(&pushed(b))));
    // `dedup_by` keeps the first of a run: move each later one onto it.
    out.dedup_by(|later, kept| {
        let same = later.name == kept.name;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

/// The key sorted by label name, as the lookups below need; a key from the
/// URL parser already is, so it is kept as it is.
fn sorted_key(key: GroupKey) -> GroupKey {
    if key.windows(2).all(|w| w[0].name < w[1].name) {
        return key;
    }
    let mut sorted = key.to_vec();
    crate::model::sort_by_name(&mut sorted);
    sorted.into()
}

/// Applies one grouping key to every series of a push: what is left of a
/// series' labels once the key's are taken out.
struct Sanitizer<'k> {
    /// Sorted by name.
    key: &'k [Label],
    key_has_instance: bool,
}

impl<'k> Sanitizer<'k> {
    fn new(key: &'k [Label]) -> Sanitizer<'k> {
        Sanitizer {
            key,
            key_has_instance: has_instance(key),
        }
    }

    /// [`Sanitizer::labels`], keeping `labels` as they are when they
    /// already are the result (sorted, none of the key's), so that
    /// nothing is copied or allocated.
    fn owned(&self, labels: SeriesLabels) -> SeriesLabels {
        let sorted = labels.windows(2).all(|w| w[0].name < w[1].name);
        if sorted && !labels.iter().any(|l| self.dropped(l)) {
            return labels;
        }
        self.labels(&labels)
    }

    /// Whether a pushed label gives way to the group's: one of the key's
    /// names (the key's value wins), or an empty `instance` where the
    /// group adds that anyway.
    fn dropped(&self, l: &Label) -> bool {
        let in_key = self.key.binary_search_by(|k| k.name.cmp(&l.name)).is_ok();
        in_key || (!self.key_has_instance && &*l.name == "instance" && l.value.is_empty())
    }

    /// The series' own labels, sorted by name, allocated at their exact
    /// size (a boxed slice shrunk from a larger vector leaves a hole
    /// behind every stored series). Linear in the series' labels and
    /// logarithmic in the key, however long that is.
    fn labels(&self, labels: &[Label]) -> SeriesLabels {
        let kept = labels.iter().filter(|l| !self.dropped(l)).count();
        let mut own: Vec<Label> = Vec::with_capacity(kept);
        own.extend(labels.iter().filter(|l| !self.dropped(l)).cloned());
        crate::model::sort_by_name(&mut own);
        own.into_boxed_slice()
    }
}

/// Takes out of a series' labels what its group gives it (see
/// [`Sanitizer::dropped`]); `key` is sorted by name. A restore reads
/// series with all their labels and keeps only their own.
pub(crate) fn strip_group_labels(labels: &mut Vec<Label>, key: &[Label]) {
    let s = Sanitizer::new(key);
    labels.retain(|l| !s.dropped(l));
}

fn has_instance(labels: &[Label]) -> bool {
    labels.iter().any(|l| &*l.name == "instance")
}

/// The labels a group gives each of its series: its key, sorted by name,
/// and `instance=""` unless the key has an instance. Also the labels of
/// the group's push-time gauges.
pub(super) fn group_labels(key: &[Label]) -> Labels {
    let mut labels = key.to_vec();
    if !has_instance(key) {
        labels.push(Label::new("instance", ""));
    }
    crate::model::sort_by_name(&mut labels);
    labels.into()
}

/// An upper bound of the memory [`prepare_push`] allocates for these
/// families under `key`, to charge before it runs, and of what a scrape
/// renders for them.
///
/// The push holds the key's labels once (the group's labels and their
/// text), not per series: a series costs its own labels and a marker per
/// run of the key's in each of its lines. But a scrape writes the key into
/// every line, so the charge counts it there too: a push that no scrape
/// could render within the budget (a key of a hundred thousand pairs
/// times a thousand series is gigabytes of text) is refused now, not
/// stored to fail every scrape. Linear in the families' labels and the key.
pub(crate) fn prepared_cost(key: &[Label], families: &[MetricFamily]) -> usize {
    use crate::wire::cost;
    let key_text: usize = key.iter().map(text_len).sum();
    // The sorted key, the group's labels, their text and its offsets.
    let once = (3 * 8 + 4) * (key.len() + 1) + key_text + 64 + 4 * cost::ALLOC;
    let mut total = cost::items(
        families.len(),
        std::mem::size_of::<PreparedFamily>()
            + std::mem::size_of::<StoredFamily>()
            + 16
            + cost::ALLOC,
    )
    .saturating_add(once);
    for fam in families {
        total = total
            .saturating_add(cost::string(fam.name.len()))
            .saturating_add(3 * cost::ALLOC);
        for m in &fam.metrics {
            let own_text: usize = m.labels.iter().map(text_len).sum();
            let labels = m.labels.len();
            // Markers: at most one per run of the key's labels, a run
            // before each own label and one after; a marker is at most
            // 1 + 2 * 16 bytes, and its comma.
            let markers = (labels + 1) * 34;
            let line = 2 * fam.name.len() + 64 + markers + own_text + key_text;
            // A summary or histogram writes a line per quantile or bucket.
            let lines = match &m.value {
                crate::model::Value::Summary(s) => s.quantiles.len() + 2,
                crate::model::Value::Histogram(h) => h.buckets.len() + 3,
                _ => 1,
            };
            let per_series = std::mem::size_of::<crate::model::Metric>()
                + 8 * labels
                + cost::ALLOC
                + 8
                + lines.saturating_mul(line + 16 * labels);
            total = total.saturating_add(per_series);
        }
    }
    total
}

/// At most what one label takes in an exposition line: name and value
/// escaped (each escape doubles a byte at most), quotes, `=` and `,`.
fn text_len(l: &Label) -> usize {
    2 * (l.name.len() + l.value.len()) + 6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> GroupKey {
        pairs.iter().map(|(n, v)| Label::new(n, v)).collect()
    }

    /// A stored family keeps no spare capacity from the parser: ten series
    /// parsed one by one sit in a vector of sixteen.
    #[test]
    fn prepared_series_keep_no_spare_capacity() {
        let body: String = (0..10).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
        let families = crate::wire::text_format::parse(body.as_bytes()).unwrap();
        assert!(
            families[0].metrics.capacity() > 10,
            "the parser's vector grew by doubling"
        );
        let push = prepare_push(key(&[("job", "j")]), families, true).unwrap();
        match &push.families[0].metrics {
            StoredSeries::Many(m) => assert_eq!((m.len(), m.capacity()), (10, 10)),
            StoredSeries::One(_) => panic!("ten series, in a vector"),
        }
    }

    /// The prepared list of families is the parsed one, reused: no second
    /// list, and none made from the heap after the parse freed its blocks.
    #[test]
    fn prepared_families_take_the_parsed_lists_place() {
        let body: String = (0..100).map(|i| format!("f{i} 1\n")).collect();
        let families = crate::wire::text_format::parse(body.as_bytes()).unwrap();
        let parsed = families.as_ptr() as usize;
        let push = prepare_push(key(&[("job", "j")]), families, true).unwrap();
        assert_eq!(push.families.len(), 100);
        assert_eq!(push.families.as_ptr() as usize, parsed);
    }

    /// Protobuf may repeat a family name: the last one wins, and the
    /// survivors are in name order.
    #[test]
    fn the_last_family_of_a_name_wins() {
        let fam = |name: &str, v: f64| MetricFamily {
            name: name.into(),
            help: None,
            metric_type: MetricType::Gauge,
            metrics: vec![Metric::new(Box::new([]), crate::model::Value::Gauge(v))],
        };
        let fams = vec![fam("a", 1.0), fam("b", 2.0), fam("a", 3.0), fam("c", 4.0)];
        let p = prepare_push(key(&[("job", "j")]), fams, true).unwrap();
        let names: Vec<&str> = p.families.iter().map(|f| &*f.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            p.family("a").unwrap().metrics[0].value,
            p.families[0].metrics[0].value
        );
        assert!(p.family("d").is_none());
        assert_eq!(
            p.families[0].metrics[0].value,
            crate::model::Value::Gauge(3.0)
        );
    }

    /// The key's labels replace the series' own, `instance=""` is added
    /// (by the group, once), and an unsorted key is sorted first; the
    /// series keeps only what the key does not give it.
    #[test]
    fn the_key_is_applied_to_every_series() {
        let own = [
            Label::new("z", "1"),
            Label::new("job", "own"),
            Label::new("a", "2"),
        ];
        let k = sorted_key(key(&[("job", "j"), ("b", "3")]));
        let s = Sanitizer::new(&k);
        let kept = s.labels(&own);
        let shared = group_labels(&k);
        let pairs = |l: &[Label]| -> Vec<(String, String)> {
            l.iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect()
        };
        assert_eq!(
            pairs(&kept),
            [("a".into(), "2".into()), ("z".into(), "1".into())]
        );
        let want = [
            ("a", "2"),
            ("b", "3"),
            ("instance", ""),
            ("job", "j"),
            ("z", "1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs(&merged(&kept, &shared).collect_boxed()), want);
        // A series' own instance replaces the group's empty one; an
        // empty one of its own is the group's.
        let with = s.labels(&[Label::new("instance", "i")]);
        let full = merged(&with, &shared).collect_boxed();
        assert_eq!(full.len(), 3);
        assert_eq!(&*full[1].value, "i");
        assert!(s.labels(&[Label::new("instance", "")]).is_empty());
    }

    /// A push's series hold none of the key's labels, and its text holds
    /// the key in no line: a key of a thousand pairs costs a series no
    /// more than a key of one.
    #[test]
    fn the_key_is_held_once_not_per_series() {
        let body: String = (0..100).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
        let held = |k: GroupKey| {
            let fams = crate::wire::text_format::parse(body.as_bytes()).unwrap();
            let p = prepare_push(k, fams, true).unwrap();
            let f = &p.families[0];
            let labels: usize = f.metrics.iter().map(|m| m.labels.len()).sum();
            (labels, f.text.len(), p.shared.len())
        };
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k{i:04}"), "v".to_string()))
            .collect();
        let mut big: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (&**n, &**v)).collect();
        big.push(("job", "j"));
        let (small_labels, small_text, _) = held(key(&[("job", "j")]));
        let (big_labels, big_text, shared) = held(key(&big));
        assert_eq!((small_labels, big_labels), (100, 100));
        assert_eq!(shared, 1002, "the key, its job and instance=\"\"");
        // Only a marker's digits grow with the key.
        assert!(big_text <= small_text + 100 * 4, "{small_text} {big_text}");
    }

    /// The up-front charge covers what a push holds, and the key in
    /// every line a scrape of it writes.
    #[test]
    fn the_prepared_cost_counts_the_key_in_every_line() {
        let body: String = (0..100).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
        let fams = crate::wire::text_format::parse(body.as_bytes()).unwrap();
        let small = prepared_cost(&key(&[("job", "j")]), &fams);
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let big_key: GroupKey = pairs.iter().map(|(n, v)| Label::new(n, v)).collect();
        let big = prepared_cost(&big_key, &fams);
        let p = prepare_push(sorted_key(big_key), fams, true).unwrap();
        let f = &p.families[0];
        assert!(
            big >= f.exposed,
            "charged {big}, a scrape writes {}",
            f.exposed
        );
        assert!(f.exposed > 100 * 1000 * 6, "{}", f.exposed);
        let held: usize = f.text.len()
            + p.key_text.len()
            + 8 * p.shared.len()
            + f.metrics.iter().map(|m| m.labels.len() * 8).sum::<usize>();
        assert!(big >= held, "charged {big}, holds at least {held}");
        assert!(held * 20 < f.exposed, "held {held}, exposed {}", f.exposed);
        assert!(small * 20 < big, "{small} {big}");
    }
}
