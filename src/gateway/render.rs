//! Scrapes, rendered off the request loop.
//!
//! The loop only takes a [`ScrapeView`]: the families' names, HELP texts
//! and types (a list the store keeps between scrapes), and the groups as
//! shared immutable snapshots (`Arc<Group>`, changed copy-on-write by
//! later pushes). That costs O(groups + changed names), not O(series), so a scrape of a million series holds pushes up for a
//! fraction of a millisecond; a pool thread then concatenates the groups'
//! pre-rendered pieces (one per group and family, rendered when pushed)
//! and compresses them. The view is one point in time: never half of a
//! push.
//!
//! Families are sorted by name and contiguous. Within a family, series
//! come group by group (groups in the order of their push-time gauges'
//! labels, which is the reference's order for those), each group's in
//! label order; the reference sorts the whole family instead, which only
//! differs when a family's series carry labels that sort before the
//! grouping labels. Protobuf scrapes are sorted as the reference sorts.
//!
//! Names that are not classic (pushed with `--push.enable-utf8-names`) are
//! escaped as the scraper asked ([`Escaping`]): only the pieces that hold
//! such names are rendered again, so a store of classic names costs the
//! same whatever the scheme.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::contract::ScrapeFormat;
use crate::model::{Label, Metric, MetricType, NameScheme, is_valid_label_name};
use crate::store::{self, FamilyMetas, Group, GroupKey, StoredFamily};
use crate::telemetry::{GatewayFamilies, Telemetry};
use crate::wire::escape::{self, Escaping};
use crate::wire::gzip::{self, Deflated};
use crate::wire::prototext::{self, Layout};
use crate::wire::{exposition, protobuf, template};

/// Takes over a pushed family that can be kept compressed (see
/// [`ScrapeView::walk`]).
type KeepFamily<'a> = dyn FnMut(&mut Vec<u8>, usize) + 'a;

/// Deflates and empties `text` (on every core when it is large).
fn compress(text: &mut Vec<u8>) -> Deflated {
    let (parts, mut buffer) = gzip::deflate_all(std::mem::take(text));
    buffer.clear();
    *text = buffer;
    Deflated::join(parts)
}

/// A family whose series take fewer bytes than this is not kept compressed
/// between gzip scrapes: starting a compressed piece of its own costs some
/// tens of microseconds, so 300,000 one-line families cost seconds a scrape
/// when each was its own piece.
const KEPT_FROM: usize = 64 << 10;

/// Plain-text scrapes expected to be at least this large are rendered on
/// every core.
const PARALLEL_TEXT: usize = 4 << 20;

/// Small families are compressed together once their text reaches this.
const SMALL_BATCH: usize = 1 << 20;

/// The compressed form of the large pushed families ([`KEPT_FROM`]) the
/// last gzip scrape sent, in name order (the order scrapes walk them in),
/// with the version of the family each was made from
/// (`FamilyMeta::version`). About a fifteenth of the text's size.
#[derive(Default)]
pub(crate) struct GzipCache(Vec<(Arc<str>, u64, Arc<Deflated>)>);

impl GzipCache {
    /// The kept form of family `name` at `version`, if it is kept.
    fn get(&self, name: &str, version: u64) -> Option<&Arc<Deflated>> {
        let i = self.0.binary_search_by(|(n, _, _)| (**n).cmp(name)).ok()?;
        let (_, v, deflated) = &self.0[i];
        (*v == version).then_some(deflated)
    }
}

/// What a scrape renders from, taken from the loop in O(groups + changed
/// names).
pub(crate) struct ScrapeView {
    families: FamilyMetas,
    pub groups: Vec<(GroupKey, Arc<Group>)>,
    telemetry: Telemetry,
    /// With `Legacy`, every stored name is classic: nothing to escape.
    names: NameScheme,
    escaping: Escaping,
    /// The last scrape's size, to allocate the next one in one go.
    size_hint: Arc<AtomicUsize>,
    /// Which groups hold each family, filled by [`ScrapeView::arrange`].
    pieces: Pieces,
}

/// For each family of a [`ScrapeView`] (by position), the positions of the
/// groups that hold it, in scrape order: found by one walk over the
/// groups' families, so a scrape costs what the store holds, not families
/// times groups (20,000 groups of one distinct family each took 12 s a
/// scrape when every family looked in every group).
#[derive(Default)]
struct Pieces {
    /// `groups[starts[f]..starts[f + 1]]` are family `f`'s groups.
    starts: Vec<usize>,
    groups: Vec<u32>,
}

impl Pieces {
    fn new(families: &FamilyMetas, groups: &[(GroupKey, Arc<Group>)]) -> Pieces {
        let position = |name: &str| families.position(name);
        // Counted first, then placed: one flat vector, no vector per family.
        let mut starts = vec![0usize; families.len() + 1];
        for (_, g) in groups {
            for name in g.families.keys() {
                if let Some(f) = position(name) {
                    starts[f + 1] += 1;
                }
            }
        }
        for f in 1..starts.len() {
            starts[f] += starts[f - 1];
        }
        let mut next = starts.clone();
        let mut placed = vec![0u32; starts[families.len()]];
        for (gi, (_, g)) in groups.iter().enumerate() {
            for name in g.families.keys() {
                if let Some(f) = position(name) {
                    placed[next[f]] = u32::try_from(gi).expect("fewer than 2^32 groups");
                    next[f] += 1;
                }
            }
        }
        Pieces {
            starts,
            groups: placed,
        }
    }

    /// The positions of the groups holding family `f`, in scrape order.
    fn of(&self, f: usize) -> &[u32] {
        match (self.starts.get(f), self.starts.get(f + 1)) {
            (Some(&a), Some(&b)) => &self.groups[a..b],
            _ => &[],
        }
    }
}

impl ScrapeView {
    /// A view of `families` (sorted by name, shared with the store,
    /// which keeps the list between scrapes) and `groups`.
    pub(crate) fn new(
        families: FamilyMetas,
        groups: Vec<(GroupKey, Arc<Group>)>,
        telemetry: Telemetry,
        (names, escaping): (NameScheme, Escaping),
        size_hint: Arc<AtomicUsize>,
    ) -> ScrapeView {
        ScrapeView {
            families,
            groups,
            telemetry,
            names,
            escaping,
            size_hint,
            pieces: Pieces::default(),
        }
    }

    /// Renders the scrape in `format`; runs on a pool thread.
    pub(crate) fn render(mut self, format: ScrapeFormat) -> Vec<u8> {
        self.arrange();
        let size_hint = Arc::clone(&self.size_hint);
        let out = match format {
            ScrapeFormat::Text => Arc::new(self).render_text(),
            ScrapeFormat::Protobuf => self.render_protobuf(),
            ScrapeFormat::ProtoText => {
                prototext::from_delimited(&self.render_protobuf(), Layout::MultiLine)
            }
            ScrapeFormat::ProtoCompact => {
                prototext::from_delimited(&self.render_protobuf(), Layout::Compact)
            }
        };
        size_hint.store(out.len(), Ordering::Relaxed);
        out
    }

    /// Puts the groups in the push-time gauges' order, as the reference
    /// sorts them, and finds which of them hold each family.
    fn arrange(&mut self) {
        self.groups.sort_unstable_by(|(_, a), (_, b)| {
            store::series_order(a.time_label_slice(), b.time_label_slice())
        });
        self.pieces = Pieces::new(&self.families, &self.groups);
    }

    /// Whether names must be looked at for escaping at all.
    fn escapes(&self) -> bool {
        self.escaping != Escaping::AllowUtf8 && self.names == NameScheme::Utf8
    }

    /// The text exposition: pushed families and the gateway's own, merged
    /// by name; a name in both gets one header and both sets of series.
    ///
    /// A large store is rendered on every core, each thread taking a run
    /// of families of about the same size: a scrape splices the group's
    /// labels into every line, a copy per line that one core does at some
    /// 50 ns a series.
    fn render_text(self: Arc<Self>) -> Vec<u8> {
        let hint = self.size_hint.load(Ordering::Relaxed);
        let own = Arc::new(own_families(&self.telemetry));
        let cores = crate::pool::cores();
        let runs = self.runs(if hint < PARALLEL_TEXT { 1 } else { cores });
        let mut out = Vec::with_capacity(hint + hint / 8);
        let (first, rest) = runs.split_first().expect("at least one run");
        let share = hint / runs.len() + 4096;
        let started: Vec<_> = rest
            .iter()
            .map(|run| {
                let (view, own, run) = (Arc::clone(&self), Arc::clone(&own), run.clone());
                // A run no thread has taken when its turn comes is
                // rendered on this thread: the same answer.
                crate::pool::spread(move || {
                    let mut part = Vec::with_capacity(share);
                    view.walk_run(&mut part, run, &own, None);
                    part
                })
            })
            .collect();
        self.walk_run(&mut out, first.clone(), &own, None);
        for run in started {
            out.extend_from_slice(&run.join());
        }
        out
    }

    /// The families cut into at most `n` runs of about the same text size.
    fn runs(&self, n: usize) -> Vec<Range<usize>> {
        let total: usize = self.families.iter().map(|m| m.exposed).sum();
        let share = total / n.max(1) + 1;
        let mut runs = Vec::with_capacity(n);
        let (mut start, mut size) = (0, 0);
        for (f, meta) in self.families.iter().enumerate() {
            size += meta.exposed;
            if size >= share && runs.len() + 1 < n {
                runs.push(start..f + 1);
                (start, size) = (f + 1, 0);
            }
        }
        runs.push(start..self.families.len());
        runs
    }

    /// The text exposition gzipped, reusing the compressed form of every
    /// family unchanged since the last gzip scrape: with a large store
    /// that changes a little between scrapes, a scrape is then mostly a
    /// copy of what was compressed before. Rendered and compressed family
    /// by family through one buffer, so the text of the whole scrape is
    /// never in memory at once. `cache` is left holding this scrape's
    /// families (families gone from the store leave it); gzip scrapes are
    /// built one at a time (`Reply::build_body`), so none waits on it.
    pub(crate) fn render_gzip(mut self, cache: &Mutex<GzipCache>) -> Vec<u8> {
        self.arrange();
        let lock = || cache.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::take(&mut *lock());
        let mut kept = GzipCache::default();
        let hint = self.size_hint.load(Ordering::Relaxed);
        let mut member = gzip::Member::new(hint / 8);
        let mut text_len = 0u64;
        let mut out = Vec::with_capacity(1 << 16);
        let mut keep = |out: &mut Vec<u8>, f: usize| {
            let meta = &self.families[f];
            if meta.exposed < KEPT_FROM {
                // Small: rendered again with its neighbours and compressed
                // in batches (a stream of its own cost more than its text).
                self.write_family(out, f, None, &mut |_| {});
                if out.len() >= SMALL_BATCH {
                    text_len += out.len() as u64;
                    member.push(&compress(out));
                }
                return;
            }
            // What came before this family (own metrics, push times,
            // small families).
            text_len += out.len() as u64;
            member.push(&compress(out));
            let deflated = match old.get(&meta.name, meta.version) {
                Some(d) => Arc::clone(d),
                None => {
                    // Compressed as it is rendered, a few megabytes at a
                    // time, however large the family.
                    let mut parts = Vec::new();
                    self.write_family(out, f, None, &mut |out| {
                        if out.len() >= gzip::PARALLEL_GZIP {
                            parts.push(compress(out));
                        }
                    });
                    parts.push(compress(out));
                    Arc::new(Deflated::join(parts))
                }
            };
            text_len += deflated.len();
            member.push(&deflated);
            // Families come in name order: `kept` stays sorted.
            kept.0
                .push((Arc::clone(&meta.name), meta.version, deflated));
        };
        self.walk(&mut out, Some(&mut keep));
        text_len += out.len() as u64;
        member.push(&compress(&mut out));
        *lock() = kept;
        self.size_hint
            .store(usize::try_from(text_len).unwrap_or(0), Ordering::Relaxed);
        member.finish()
    }

    /// Writes the text exposition to `out`. With `keep`, pushed families
    /// that can be kept compressed between scrapes go to it instead, with
    /// what precedes them still in `out`: a family is kept only when it is
    /// all pushed series (the push-time gauges change on every push, the
    /// gateway's own metrics on every scrape, and escaped names depend on
    /// the scraper).
    fn walk(&self, out: &mut Vec<u8>, keep: Option<&mut KeepFamily<'_>>) {
        let own = own_families(&self.telemetry);
        self.walk_run(out, 0..self.families.len(), &own, keep);
    }

    /// [`walk`](Self::walk) over the families in `run`, and the gateway's
    /// own families whose names sort among them: before the next run's
    /// first family, and from this run's first family on (from the start
    /// for the first run).
    fn walk_run(
        &self,
        out: &mut Vec<u8>,
        run: Range<usize>,
        own: &[(&'static str, Vec<Metric>)],
        mut keep: Option<&mut KeepFamily<'_>>,
    ) {
        let name_at = |f: usize| self.families.get(f).map(|m| &*m.name);
        let from = match run.start {
            0 => 0,
            f => own.partition_point(|(n, _)| Some(*n) < name_at(f)),
        };
        let to = match name_at(run.end) {
            Some(next) => own.partition_point(|(n, _)| *n < next),
            None => own.len(),
        };
        let mut own_iter = own[from..to.max(from)].iter().peekable();
        for (f, meta) in self
            .families
            .iter()
            .enumerate()
            .take(run.end)
            .skip(run.start)
        {
            while let Some((name, series)) = own_iter.next_if(|(n, _)| **n < *meta.name) {
                write_own(out, name, series);
            }
            let own_series = own_iter.next_if(|(n, _)| **n == *meta.name);
            let is_time =
                &*meta.name == store::PUSH_TIME || &*meta.name == store::PUSH_FAILURE_TIME;
            match keep.as_mut() {
                Some(keep) if own_series.is_none() && !is_time && !self.escapes() => keep(out, f),
                _ => {
                    let own_series = own_series.map(|(_, s)| &s[..]);
                    self.write_family(out, f, own_series, &mut |_| {});
                }
            }
        }
        for (name, series) in own_iter {
            write_own(out, name, series);
        }
    }

    /// One family: its header, every group's piece (or push-time gauge),
    /// and the gateway's own series of that name, if any. `cut` sees `out`
    /// after every piece, to take what is there (a compressor keeping
    /// memory bounded however large the family).
    fn write_family(
        &self,
        out: &mut Vec<u8>,
        f: usize,
        own_series: Option<&[Metric]>,
        cut: &mut dyn FnMut(&mut Vec<u8>),
    ) {
        let meta = &self.families[f];
        let name = escape::metric_name(&meta.name, self.escaping);
        let help = meta.help.as_deref();
        exposition::write_header(out, &name, help, meta.metric_type);
        if &*meta.name == store::PUSH_TIME || &*meta.name == store::PUSH_FAILURE_TIME {
            // Groups never store these two: they are rendered from the
            // groups' times.
            self.write_times(out, &meta.name, &name);
        } else {
            self.write_pieces(out, f, cut);
        }
        for m in own_series.into_iter().flatten() {
            exposition::write_metric(out, &name, m);
        }
    }

    /// Each group's piece of family `f`, in scrape order: a gzip scrape
    /// that reuses a kept family never reads its pieces.
    fn write_pieces(&self, out: &mut Vec<u8>, f: usize, cut: &mut dyn FnMut(&mut Vec<u8>)) {
        let name = &*self.families[f].name;
        for &gi in self.pieces.of(f) {
            let g = &self.groups[gi as usize].1;
            if let Some(fam) = g.families.get(name) {
                self.write_piece(out, name, g, fam);
                cut(out);
            }
        }
    }

    /// One group's piece of a family: as rendered when pushed, completed
    /// with the group's labels, or again with escaped names when the
    /// scraper cannot take them as they are.
    fn write_piece(&self, out: &mut Vec<u8>, name: &str, g: &Group, fam: &StoredFamily) {
        let needs = self.escapes()
            && (escape::needs_escaping(name, g.time_label_slice())
                || fam
                    .metrics
                    .iter()
                    .any(|m| escape::needs_escaping(name, &m.labels)));
        if !needs {
            template::expand(out, &fam.text, g.key_text());
            return;
        }
        let escaped = escape::metric_name(name, self.escaping);
        for m in &fam.metrics {
            exposition::write_metric(out, &escaped, &escape_labels(g.exposed(m), self.escaping));
        }
    }

    /// Every group's push-time or failure-time gauge.
    fn write_times(&self, out: &mut Vec<u8>, name: &str, shown: &str) {
        for (_, g) in &self.groups {
            let t = if name == store::PUSH_TIME {
                g.push_time
            } else {
                g.failure_time
            };
            let labels = g.time_labels();
            if self.escapes() && labels.iter().any(|l| !is_valid_label_name(&l.name)) {
                let m = escape_labels(
                    Metric::new(labels.to_vec().into(), time_value(t)),
                    self.escaping,
                );
                exposition::write_metric(out, shown, &m);
            } else {
                store::render_time(out, shown, &labels, t);
            }
        }
    }

    /// The delimited protobuf exposition, every family's series sorted as
    /// the reference sorts them. Prometheus asks for it only when native
    /// histograms are enabled.
    fn render_protobuf(&self) -> Vec<u8> {
        let mut fams: BTreeMap<&str, (Option<&str>, MetricType, Vec<Metric>)> = BTreeMap::new();
        for meta in self.families.iter() {
            let entry = (meta.help.as_deref(), meta.metric_type, Vec::new());
            fams.insert(&meta.name, entry);
        }
        for (_, g) in &self.groups {
            for (name, fam) in g.families.iter() {
                if let Some((_, _, metrics)) = fams.get_mut(&**name) {
                    metrics.extend(fam.metrics.iter().map(|m| g.exposed(m)));
                }
            }
            for (name, t) in [
                (store::PUSH_TIME, g.push_time),
                (store::PUSH_FAILURE_TIME, g.failure_time),
            ] {
                if let Some((_, _, metrics)) = fams.get_mut(name) {
                    metrics.push(Metric::new(g.time_labels().to_vec().into(), time_value(t)));
                }
            }
        }
        let own = own_families(&self.telemetry);
        for (name, metrics) in &own {
            let (t, help) = store::OwnFamilies::own_family(&GatewayFamilies, name)
                .unwrap_or((MetricType::Untyped, ""));
            fams.entry(name)
                .or_insert((Some(help), t, Vec::new()))
                .2
                .extend(metrics.iter().cloned());
        }
        let hint = self.size_hint.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(hint);
        for (name, (help, t, mut metrics)) in fams {
            metrics.sort_unstable_by(|a, b| store::series_order(&a.labels, &b.labels));
            if self.escapes() {
                metrics = metrics
                    .into_iter()
                    .map(|m| escape_labels(m, self.escaping))
                    .collect();
            }
            let name = escape::metric_name(name, self.escaping);
            protobuf::encode_family(&mut out, &name, help, t, metrics.iter());
        }
        out
    }
}

fn time_value(t: Option<store::Nanos>) -> crate::model::Value {
    crate::model::Value::Gauge(t.map(|n| n as f64 / 1e9).unwrap_or(0.0))
}

/// The gateway's own families, each family's series in label order.
fn own_families(telemetry: &Telemetry) -> Vec<(&'static str, Vec<Metric>)> {
    telemetry.families()
}

fn write_own(out: &mut Vec<u8>, name: &str, series: &[Metric]) {
    if let Some((t, help)) = store::OwnFamilies::own_family(&GatewayFamilies, name) {
        exposition::write_header(out, name, Some(help), t);
    }
    for m in series {
        exposition::write_metric(out, name, m);
    }
}

/// A metric with its label names escaped where they are not classic.
fn escape_labels(mut m: Metric, escaping: Escaping) -> Metric {
    if m.labels.iter().any(|l| !is_valid_label_name(&l.name)) {
        let labels: Vec<Label> = m
            .labels
            .iter()
            .map(|l| Label::new(&escape::label_name(&l.name, escaping), &l.value))
            .collect();
        m.labels = labels.into();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::io::Read as _;

    fn push(store: &mut Store, job: &str, body: &str, now: store::Nanos) {
        let key: Vec<Label> = vec![Label::new("job", job)];
        let fams = crate::wire::text_format::parse(body.as_bytes()).unwrap();
        let push = store::prepare_push(key.into(), fams, true).unwrap();
        store.apply(push, now);
    }

    fn view(store: &mut Store) -> ScrapeView {
        ScrapeView::new(
            store.family_metas(&GatewayFamilies),
            store.snapshot(),
            Telemetry::new(),
            (NameScheme::Legacy, Escaping::AllowUtf8),
            Arc::default(),
        )
    }

    fn gunzip(z: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(z)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    /// The families of the own metrics change from one render to the next
    /// (scrape counters); what is compared is the pushed part.
    fn pushed(text: &str) -> String {
        text.lines()
            .filter(|l| {
                !l.contains("pushgateway_") && !l.contains("go_") && !l.contains("process_")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Family `name` with series enough to be kept compressed
    /// ([`KEPT_FROM`]), all of value `v`.
    fn big(name: &str, v: u32) -> String {
        (0..3_000)
            .map(|i| format!("{name}{{i=\"{i}\"}} {v}\n"))
            .collect()
    }

    /// A gzip scrape reuses what it kept only while a family is unchanged:
    /// after every change it reads back as the plain scrape does.
    #[test]
    fn kept_families_follow_every_change() {
        let cache = Mutex::new(GzipCache::default());
        let mut store = Store::new();
        push(&mut store, "a", &(big("x", 1) + &big("y", 2)), 1);
        push(&mut store, "b", &big("x", 3), 2);
        let mut scrapes = Vec::new();
        for step in 0..5 {
            match step {
                1 => push(&mut store, "b", &big("x", 4), 3),
                2 => push(
                    &mut store,
                    "c",
                    &format!("# HELP y Why.\n{}", big("y", 5)),
                    4,
                ),
                3 => {
                    store.delete(&vec![Label::new("job", "a")].into());
                }
                _ => {}
            }
            let plain = String::from_utf8(view(&mut store).render(ScrapeFormat::Text)).unwrap();
            let zipped = gunzip(&view(&mut store).render_gzip(&cache));
            assert_eq!(pushed(&zipped), pushed(&plain), "step {step}");
            scrapes.push(pushed(&plain));
            let kept = cache.lock().unwrap();
            let names: Vec<&str> = kept.0.iter().map(|(n, _, _)| &**n).collect();
            assert_eq!(names, ["x", "y"], "step {step}: push times are not kept");
        }
        assert!(scrapes[1].contains("x{i=\"7\",instance=\"\",job=\"b\"} 4"));
        assert!(scrapes[2].contains("# HELP y Why."));
        assert!(!scrapes[3].contains("job=\"a\""));
        assert_eq!(scrapes[3], scrapes[4]);
    }

    /// An unchanged family is not rendered again: what is sent is what was
    /// kept.
    #[test]
    fn unchanged_families_are_copied_from_the_cache() {
        let cache = Mutex::new(GzipCache::default());
        let mut store = Store::new();
        push(&mut store, "a", &big("x", 1), 1);
        view(&mut store).render_gzip(&cache);
        // Plant a marker in place of x's kept form: a second scrape with x
        // unchanged must send it.
        let marker = Deflated::new(b"x_kept 7\n");
        {
            let mut kept = cache.lock().unwrap();
            let entry = kept.0.iter_mut().find(|(n, _, _)| &**n == "x").unwrap();
            entry.2 = Arc::new(marker);
        }
        let text = gunzip(&view(&mut store).render_gzip(&cache));
        assert!(text.contains("x_kept 7\n"), "{text}");
        push(&mut store, "a", &big("x", 2), 2);
        let text = gunzip(&view(&mut store).render_gzip(&cache));
        assert!(!text.contains("x_kept"), "{text}");
        assert!(
            text.contains("x{i=\"9\",instance=\"\",job=\"a\"} 2\n"),
            "{text}"
        );
    }

    /// Small families are not kept: they are rendered and compressed in
    /// batches, across batch boundaries, and read back as plain scrapes do.
    #[test]
    fn small_families_are_compressed_in_batches() {
        let cache = Mutex::new(GzipCache::default());
        let mut store = Store::new();
        let body: String = (0..40_000).map(|i| format!("f{i} {i}\n")).collect();
        push(&mut store, "a", &body, 1);
        push(&mut store, "b", &big("x", 1), 2);
        let plain = String::from_utf8(view(&mut store).render(ScrapeFormat::Text)).unwrap();
        assert!(plain.len() > 2 * SMALL_BATCH, "{}", plain.len());
        let zipped = gunzip(&view(&mut store).render_gzip(&cache));
        assert_eq!(pushed(&zipped), pushed(&plain));
        let kept = cache.lock().unwrap();
        let names: Vec<&str> = kept.0.iter().map(|(n, _, _)| &**n).collect();
        assert_eq!(names, ["x"]);
    }

    /// Runs rendered apart and joined read as one walk, the gateway's own
    /// families (go_*, process_*, pushgateway_*) falling into the run
    /// their names sort into, also when a pushed family has an own name.
    #[test]
    fn runs_joined_read_as_one_walk() {
        let mut store = Store::new();
        let body = "a 1\ngo_goroutines 3\nh 1\np 1\nprocess_zz 1\nq 2\nz 9\n";
        push(&mut store, "a", body, 1);
        push(&mut store, "b", &big("m", 2), 2);
        let mut v = view(&mut store);
        v.arrange();
        let own = own_families(&v.telemetry);
        let mut whole = Vec::new();
        v.walk_run(&mut whole, 0..v.families.len(), &own, None);
        for n in 1..=v.families.len() + 1 {
            let runs = v.runs(n);
            assert!(runs.len() <= n.max(1), "{n}: {runs:?}");
            assert_eq!(runs.first().unwrap().start, 0);
            assert_eq!(runs.last().unwrap().end, v.families.len());
            let mut joined = Vec::new();
            for run in runs {
                v.walk_run(&mut joined, run, &own, None);
            }
            assert_eq!(
                String::from_utf8_lossy(&joined),
                String::from_utf8_lossy(&whole),
                "{n} runs"
            );
        }
        // Cut by size: the big family closes the first run, and what
        // follows it is too small to make two more.
        let m = v.families.iter().position(|f| &*f.name == "m").unwrap();
        assert_eq!(v.runs(3), [0..m + 1, m + 1..v.families.len()]);
    }

    /// A family's pieces are found whatever the groups' order and however
    /// many families the other groups hold.
    #[test]
    fn pieces_list_each_familys_groups_in_scrape_order() {
        let mut store = Store::new();
        push(&mut store, "b", "x 1\nz 1\n", 1);
        push(&mut store, "a", "x 2\ny 2\n", 2);
        push(&mut store, "c", "y 3\n", 3);
        let mut v = view(&mut store);
        v.arrange();
        let jobs = |f: usize| -> Vec<String> {
            let groups = v.pieces.of(f).iter();
            groups
                .map(|&g| v.groups[g as usize].1.time_labels()[1].value.to_string())
                .collect()
        };
        let names: Vec<&str> = v.families.iter().map(|m| &*m.name).collect();
        let at = |n: &str| names.iter().position(|&m| m == n).unwrap();
        assert_eq!(jobs(at("x")), ["a", "b"]);
        assert_eq!(jobs(at("y")), ["a", "c"]);
        assert_eq!(jobs(at("z")), ["b"]);
        assert!(jobs(at(store::PUSH_TIME)).is_empty());
    }

    /// A family larger than one compression batch is compressed in parts
    /// as it is rendered, and reads back whole.
    #[test]
    fn a_family_larger_than_a_batch_reads_back_whole() {
        let cache = Mutex::new(GzipCache::default());
        let mut store = Store::new();
        let mut body = String::new();
        for i in 0..2_000 {
            body.push_str(&format!(
                "big{{host=\"host-{i}.example.org\",x=\"{i:048}\"}} {i}\n"
            ));
        }
        let mut text_len = 0;
        for g in 0..100 {
            push(&mut store, &format!("job-{g}"), &body, g);
            text_len += body.len();
        }
        assert!(text_len > 2 * gzip::PARALLEL_GZIP, "{text_len}");
        let plain = String::from_utf8(view(&mut store).render(ScrapeFormat::Text)).unwrap();
        let zipped = gunzip(&view(&mut store).render_gzip(&cache));
        assert_eq!(pushed(&zipped), pushed(&plain));
        let kept = cache.lock().unwrap();
        let family = plain.lines().filter(|l| l.starts_with("big")).count();
        assert_eq!(family, 200_000);
        let (_, _, big) = kept.0.iter().find(|(n, _, _)| &**n == "big").unwrap();
        assert!(big.len() > text_len as u64);
    }
}
