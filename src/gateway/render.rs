//! Scrapes, rendered off the request loop.
//!
//! The loop only takes a [`ScrapeView`]: the families' names, HELP texts
//! and types, and the groups as shared immutable snapshots (`Arc<Group>`,
//! changed copy-on-write by later pushes). That costs O(groups + names),
//! not O(series), so a scrape of a million series holds pushes up for a
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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::contract::ScrapeFormat;
use crate::model::{Label, Metric, MetricType, NameScheme, is_valid_label_name};
use crate::store::{self, FamilyMeta, Group, GroupKey, SeriesKey, StoredFamily};
use crate::telemetry::{Own, Telemetry};
use crate::wire::escape::{self, Escaping};
use crate::wire::{exposition, protobuf};

/// What a scrape renders from, taken from the loop in O(groups + names).
pub(crate) struct ScrapeView {
    pub families: Vec<FamilyMeta>,
    pub groups: Vec<(GroupKey, Arc<Group>)>,
    pub telemetry: Telemetry,
    /// With `Legacy`, every stored name is classic: nothing to escape.
    pub names: NameScheme,
    pub escaping: Escaping,
    /// The last scrape's size, to allocate the next one in one go.
    pub size_hint: Arc<AtomicUsize>,
}

impl ScrapeView {
    /// Renders the scrape in `format`; runs on a pool thread.
    pub(crate) fn render(mut self, format: ScrapeFormat) -> Vec<u8> {
        // The push-time gauges' order, as the reference sorts them.
        self.groups
            .sort_by_cached_key(|(_, g)| SeriesKey(g.time_labels()));
        let out = match format {
            ScrapeFormat::Text => self.render_text(),
            ScrapeFormat::Protobuf => self.render_protobuf(),
        };
        self.size_hint.store(out.len(), Ordering::Relaxed);
        out
    }

    /// Whether names must be looked at for escaping at all.
    fn escapes(&self) -> bool {
        self.escaping != Escaping::AllowUtf8 && self.names == NameScheme::Utf8
    }

    /// Every (family name, group) pair, grouped by name, groups in order.
    fn pieces(&self) -> BTreeMap<&str, Vec<&StoredFamily>> {
        let mut out: BTreeMap<&str, Vec<&StoredFamily>> = BTreeMap::new();
        for (_, g) in &self.groups {
            for (name, fam) in &g.families {
                out.entry(&**name).or_default().push(fam);
            }
        }
        out
    }

    /// The text exposition: pushed families and the gateway's own, merged
    /// by name; a name in both gets one header and both sets of series.
    fn render_text(&self) -> Vec<u8> {
        let hint = self.size_hint.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(hint + hint / 8);
        let pieces = self.pieces();
        let own = own_families(&self.telemetry);
        let mut own_iter = own.iter().peekable();
        for meta in &self.families {
            while let Some((name, series)) = own_iter.next_if(|(n, _)| **n < *meta.name) {
                write_own(&mut out, name, series);
            }
            let name = escape::metric_name(&meta.name, self.escaping);
            let help = meta.help.as_deref();
            exposition::write_header(&mut out, &name, help, meta.metric_type);
            if &*meta.name == store::PUSH_TIME || &*meta.name == store::PUSH_FAILURE_TIME {
                self.write_times(&mut out, &meta.name, &name);
            }
            for fam in pieces.get(&*meta.name).into_iter().flatten() {
                self.write_piece(&mut out, &meta.name, fam);
            }
            if let Some((_, series)) = own_iter.next_if(|(n, _)| **n == *meta.name) {
                for m in series {
                    exposition::write_metric(&mut out, &name, m);
                }
            }
        }
        for (name, series) in own_iter {
            write_own(&mut out, name, series);
        }
        out
    }

    /// One group's piece of a family: as rendered when pushed, or again
    /// with escaped names when the scraper cannot take them as they are.
    fn write_piece(&self, out: &mut Vec<u8>, name: &str, fam: &StoredFamily) {
        let needs = self.escapes()
            && fam
                .metrics
                .iter()
                .any(|m| escape::needs_escaping(name, &m.labels));
        if !needs {
            out.extend_from_slice(&fam.text);
            return;
        }
        let escaped = escape::metric_name(name, self.escaping);
        for m in &fam.metrics {
            exposition::write_metric(out, &escaped, &escape_labels(m.clone(), self.escaping));
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
        for meta in &self.families {
            let entry = (meta.help.as_deref(), meta.metric_type, Vec::new());
            fams.insert(&meta.name, entry);
        }
        for (_, g) in &self.groups {
            for (name, fam) in &g.families {
                if let Some((_, _, metrics)) = fams.get_mut(&**name) {
                    metrics.extend(fam.metrics.iter().cloned());
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
            let (t, help) =
                store::OwnFamilies::own_family(&Own, name).unwrap_or((MetricType::Untyped, ""));
            fams.entry(name)
                .or_insert((Some(help), t, Vec::new()))
                .2
                .extend(metrics.iter().cloned());
        }
        let hint = self.size_hint.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(hint);
        for (name, (help, t, mut metrics)) in fams {
            metrics.sort_by(|a, b| store::series_order(&a.labels, &b.labels));
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
    if let Some((t, help)) = store::OwnFamilies::own_family(&Own, name) {
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
