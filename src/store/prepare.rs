//! Preparing a push, off the loop: checks that need no store, series
//! keys, exposition lines rendered once.

use std::cmp::Ordering;

use super::*;
use crate::model::{Label, Labels, Metric, MetricFamily, MetricType, SeriesLabels};
use crate::wire::exposition;

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

/// Sorts series into the reference's order. One function for every
/// caller: each distinct sort call is its own few kilobytes of code in the
/// static binary.
pub(crate) fn sort_series(metrics: &mut [Metric]) {
    metrics.sort_unstable_by(|a, b| series_order(&a.labels, &b.labels));
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

#[derive(Clone, Debug)]
pub(crate) struct PreparedFamily {
    pub name: Box<str>,
    pub help: Option<Box<str>>,
    pub metric_type: MetricType,
    /// The series, in label order (exposition order).
    pub metrics: Vec<Metric>,
    /// Their [`series_hash`]es, computed here so that the loop only looks
    /// them up in the index.
    pub hashes: Vec<u64>,
    /// Their exposition lines, rendered here, off the loop: the group's
    /// piece of this family in a text scrape.
    pub text: Box<[u8]>,
    /// Set when restoring; a push stamps its families with the push time.
    pub pushed_at: Option<Nanos>,
}

/// A push that passed every check that needs no store: sanitized labels,
/// no timestamps, no reserved labels, no duplicate series within itself.
#[derive(Clone, Debug)]
pub(crate) struct PreparedPush {
    pub key: GroupKey,
    pub families: Vec<PreparedFamily>,
    /// PUT replaces the whole group; POST only the families it carries.
    pub replace: bool,
    /// The group's TTL from the `Pushgateway-Group-TTL` header, kept with
    /// the group until a later push with the header changes it.
    pub ttl: Option<std::time::Duration>,
    /// The series' labels already share their pairs (a restore's parser
    /// shares them as it reads): the store's interner is skipped.
    pub labels_shared: bool,
}

/// Applies the grouping labels to every series (overriding same-named body
/// labels), adds `instance=""` where absent, sorts labels by name, drops
/// families named like the gateway's push-time gauges (they are always the
/// gateway's), and checks everything that needs no store.
pub(crate) fn prepare_push(
    key: GroupKey,
    families: Vec<MetricFamily>,
    replace: bool,
) -> Result<PreparedPush, PushError> {
    let key = sorted_key(key);
    let sanitizer = Sanitizer::new(&key);
    let mut scratch = Vec::new();
    let mut out: Vec<PreparedFamily> = Vec::with_capacity(families.len());
    for fam in families {
        if &*fam.name == PUSH_TIME || &*fam.name == PUSH_FAILURE_TIME {
            continue;
        }
        // Series by series into the parsed vector itself (a map of a
        // vector into one of the same type reuses its allocation): a push
        // of a million series never holds two vectors of them.
        let (name, t) = (&fam.name, fam.metric_type);
        let mut metrics = fam
            .metrics
            .into_iter()
            .map(|m| prepare_series(m, name, t, &sanitizer))
            .collect::<Result<Vec<Metric>, PushError>>()?;
        // Stored for as long as the group lives: not with the parser's
        // spare capacity (a vector grown by doubling holds up to twice
        // its series; a million series in families of ten kept 23 MB
        // spare). A nearly full vector is kept as it is, so one huge
        // family is not copied.
        if metrics.capacity() - metrics.len() > metrics.len() / 8 {
            metrics = exact(metrics);
        }
        // In exposition order: the group's piece of a text scrape. Sorted,
        // a duplicate series sits next to its twin.
        sort_series(&mut metrics);
        if let Some(w) = metrics
            .windows(2)
            .find(|w| series_order(&w[0].labels, &w[1].labels).is_eq())
        {
            return Err(PushError::DuplicateSeries {
                metric: fam.name.to_string(),
                labels: show_labels(&w[0].labels),
            });
        }
        // Rendered into one buffer reused for every family, then copied
        // at its exact size: no shrinking reallocation leaving a hole
        // behind each family.
        scratch.clear();
        for m in &metrics {
            exposition::write_metric(&mut scratch, &fam.name, m);
        }
        let text: Box<[u8]> = scratch.as_slice().into();
        let hashes = metrics.iter().map(|m| series_hash(&m.labels)).collect();
        out.push(PreparedFamily {
            name: fam.name,
            help: fam.help,
            metric_type: fam.metric_type,
            metrics,
            hashes,
            text,
            pushed_at: None,
        });
    }
    keep_last_of_each_name(&mut out);
    Ok(PreparedPush {
        key,
        families: out,
        replace,
        ttl: None,
        labels_shared: false,
    })
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
    for l in labels.iter() {
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
    Ok(Metric {
        labels,
        value: m.value,
        extra: m.extra,
    })
}

/// One family per name: a later one replaces an earlier one, as in the
/// reference's map of families (the text parser never repeats a name).
/// The survivors keep the order of their last appearance. A set of names
/// seen from the end, not a scan of the families kept so far.
fn keep_last_of_each_name(out: &mut Vec<PreparedFamily>) {
    let mut seen = std::collections::HashSet::with_capacity(out.len());
    let mut keep: Vec<bool> = out
        .iter()
        .rev()
        .map(|f| seen.insert(f.name.clone()))
        .collect();
    if keep.iter().all(|k| *k) {
        return;
    }
    keep.reverse();
    let mut i = 0;
    out.retain(|_| {
        i += 1;
        keep[i - 1]
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

/// Applies one grouping key to every series of a push. The `instance=""`
/// label is allocated once and shared by every series that lacks one.
struct Sanitizer<'k> {
    /// Sorted by name.
    key: &'k [Label],
    key_has_instance: bool,
    instance: Label,
}

impl<'k> Sanitizer<'k> {
    fn new(key: &'k [Label]) -> Sanitizer<'k> {
        Sanitizer {
            key,
            key_has_instance: key.iter().any(|l| &*l.name == "instance"),
            instance: Label::new("instance", ""),
        }
    }

    /// [`Sanitizer::labels`], keeping `labels` as they are when they
    /// already are the result (a restored series': sorted, with the key's
    /// labels and an instance), so that nothing is copied or allocated.
    fn owned(&self, labels: SeriesLabels) -> SeriesLabels {
        let sorted = labels.windows(2).all(|w| w[0].name < w[1].name);
        if sorted && self.has_key(&labels) && has_instance(&labels) {
            return labels;
        }
        self.labels(&labels)
    }

    /// Whether sorted `labels` hold every pair of the key: a merge of two
    /// sorted lists.
    fn has_key(&self, labels: &[Label]) -> bool {
        let mut rest = labels.iter();
        self.key.iter().all(|k| {
            rest.find(|l| l.name >= k.name)
                .is_some_and(|l| l.name == k.name && l.value == k.value)
        })
    }

    fn in_key(&self, l: &Label) -> bool {
        self.key.binary_search_by(|k| k.name.cmp(&l.name)).is_ok()
    }

    /// The labels of a pushed series once the grouping key is applied.
    /// Allocated at their exact size: a boxed slice shrunk from a larger
    /// vector leaves a hole behind every stored series.
    ///
    /// The series' own labels (few, as a rule) are sorted and merged
    /// into the key (sorted already, and perhaps a hundred thousand
    /// long): linear in the key, not a sort of it per series.
    fn labels(&self, labels: &[Label]) -> SeriesLabels {
        let mut own: Vec<Label> = labels.iter().filter(|l| !self.in_key(l)).cloned().collect();
        if !self.key_has_instance && !has_instance(labels) {
            own.push(self.instance.clone());
        }
        crate::model::sort_by_name(&mut own);
        let mut out: Vec<Label> = Vec::with_capacity(own.len() + self.key.len());
        let mut key = self.key.iter().peekable();
        for l in own {
            while let Some(k) = key.next_if(|k| k.name < l.name) {
                out.push(k.clone());
            }
            out.push(l);
        }
        out.extend(key.cloned());
        debug_assert_eq!(out.len(), out.capacity());
        out.into_boxed_slice()
    }
}

fn has_instance(labels: &[Label]) -> bool {
    labels.iter().any(|l| &*l.name == "instance")
}

/// The labels of a series pushed with no labels of its own: the key's
/// and `instance=""` unless the key has one.
pub(super) fn sanitize_labels(labels: &[Label], key: &[Label]) -> SeriesLabels {
    let key = sorted_key(key.into());
    Sanitizer::new(&key).labels(labels)
}

/// An upper bound of the memory [`prepare_push`] allocates for these
/// families under `key`, to charge before it runs: every series gets a
/// copy of the key's labels, so a key of a hundred thousand pairs makes
/// even a small body costly. Linear in the families' labels.
pub(crate) fn prepared_cost(key: &[Label], families: &[MetricFamily]) -> usize {
    use crate::wire::cost;
    // A series' exposition line repeats the key: names, values (escaped,
    // at most doubled), quotes, `=` and `,`.
    let key_text: usize = key.iter().map(text_len).sum();
    let key_labels = key.len() + 1;
    let mut total = cost::items(families.len(), std::mem::size_of::<PreparedFamily>() + 16);
    for fam in families {
        total = total
            .saturating_add(cost::string(fam.name.len()))
            .saturating_add(3 * cost::ALLOC);
        for m in &fam.metrics {
            let own_text: usize = m.labels.iter().map(text_len).sum();
            let labels = m.labels.len() + key_labels;
            let line = 2 * fam.name.len() + 64 + key_text + own_text;
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
        let m = &push.families[0].metrics;
        assert_eq!((m.len(), m.capacity()), (10, 10));
    }

    /// Protobuf may repeat a family name: the last one wins, and the
    /// survivors keep the order of their last appearance.
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
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(
            p.families[1].metrics[0].value,
            crate::model::Value::Gauge(3.0)
        );
    }

    /// The key's labels replace the series' own, `instance=""` is added
    /// (one shared pair) and an unsorted key is sorted first.
    #[test]
    fn the_key_is_applied_to_every_series() {
        let own = [
            Label::new("z", "1"),
            Label::new("job", "own"),
            Label::new("a", "2"),
        ];
        let k = sorted_key(key(&[("job", "j"), ("b", "3")]));
        let s = Sanitizer::new(&k);
        let got: Vec<(String, String)> = s
            .labels(&own)
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
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
        assert_eq!(got, want);
        let (one, two) = (s.labels(&[]), s.labels(&[]));
        let instance =
            |l: &SeriesLabels| l.iter().find(|l| &*l.name == "instance").cloned().unwrap();
        assert!(instance(&one).same_pair(&instance(&two)));
    }

    /// The up-front charge grows with series times key labels.
    #[test]
    fn the_prepared_cost_counts_the_key_in_every_series() {
        let fams = crate::wire::text_format::parse(b"m{i=\"1\"} 1\nm{i=\"2\"} 1\n").unwrap();
        let small = prepared_cost(&key(&[("job", "j")]), &fams);
        let pairs: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let big_key: GroupKey = pairs.iter().map(|(n, v)| Label::new(n, v)).collect();
        let big = prepared_cost(&big_key, &fams);
        assert!(big > small + 2 * 1000 * 8, "{small} {big}");
        let p = prepare_push(sorted_key(big_key), fams, true).unwrap();
        let held: usize = p.families[0].text.len()
            + p.families[0]
                .metrics
                .iter()
                .map(|m| m.labels.len() * 8)
                .sum::<usize>();
        assert!(big >= held, "charged {big}, holds at least {held}");
    }
}
