//! Scrapes rendered from the store: the text exposition concatenates the
//! pre-rendered series lines with the gateway's own families, merged by
//! name; the protobuf exposition is built from the groups.
//!
//! Names that are not classic (pushed with `--push.enable-utf8-names`) are
//! escaped as the scraper asked ([`Escaping`]); only their families are
//! rendered again from the groups, so a store of classic names costs the
//! same whatever the scheme.

use std::collections::BTreeMap;

use super::Gateway;
use crate::model::{
    Label, Labels, Metric, MetricType, NameScheme, Value, is_valid_label_name, is_valid_metric_name,
};
use crate::store::{self, Nanos, SeriesKey};
use crate::telemetry::Own;
use crate::wire::escape::{self, Escaping};
use crate::wire::{exposition, protobuf};

impl Gateway {
    /// The whole text exposition: pushed families and the gateway's own,
    /// merged by name; a name in both gets one header and both sets of
    /// series, in series order.
    pub(super) fn render_metrics(&self, escaping: Escaping) -> Vec<u8> {
        let escaped = self.escaped_families(escaping);
        let own: Vec<(&str, RenderedSeries)> = self
            .telemetry
            .families()
            .into_iter()
            .map(|(name, metrics)| {
                let series = metrics
                    .iter()
                    .map(|m| {
                        let mut text = Vec::new();
                        exposition::write_metric(&mut text, name, m);
                        (SeriesKey(m.labels.clone()), text)
                    })
                    .collect();
                (name, series)
            })
            .collect();
        let mut out = Vec::with_capacity(self.last_scrape_len + self.last_scrape_len / 8);
        let mut own_iter = own.into_iter().peekable();
        let write_own = |out: &mut Vec<u8>, name: &str, series: &[(SeriesKey, Vec<u8>)]| {
            if let Some((t, help)) = store::OwnFamilies::own_family(&Own, name) {
                exposition::write_header(out, name, Some(help), t);
            }
            for (_, text) in series {
                out.extend_from_slice(text);
            }
        };
        for fam in self.store.families(&Own) {
            while let Some((name, series)) = own_iter.next_if(|(n, _)| *n < fam.name) {
                write_own(&mut out, name, &series);
            }
            let name = escape::metric_name(fam.name, escaping);
            exposition::write_header(&mut out, &name, fam.help, fam.metric_type);
            let own_series = own_iter
                .next_if(|(n, _)| *n == fam.name)
                .map(|(_, s)| s)
                .unwrap_or_default();
            let series: Box<dyn Iterator<Item = (&SeriesKey, &[u8])>> = match escaped.get(fam.name)
            {
                Some(lines) => Box::new(lines.iter().map(|(k, t)| (k, &t[..]))),
                None => fam.series,
            };
            let mut a = series.peekable();
            let mut b = own_series.iter().peekable();
            loop {
                let take_a = match (a.peek(), b.peek()) {
                    (Some((ka, _)), Some((kb, _))) => *ka <= kb,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (None, None) => break,
                };
                let text = if take_a {
                    a.next().map(|(_, t)| t)
                } else {
                    b.next().map(|(_, t)| &t[..])
                };
                out.extend_from_slice(text.unwrap_or_default());
            }
        }
        for (name, series) in own_iter {
            write_own(&mut out, name, &series);
        }
        out
    }

    /// The families whose names the scraper cannot take as they are,
    /// rendered again with escaped names; empty when every name is
    /// classic, or the scraper takes UTF-8 (`allow-utf-8`).
    fn escaped_families(&self, escaping: Escaping) -> BTreeMap<&str, RenderedSeries> {
        let mut out: BTreeMap<&str, RenderedSeries> = BTreeMap::new();
        if escaping == Escaping::AllowUtf8 || self.names == NameScheme::Legacy {
            return out;
        }
        let needs: Vec<&str> = self
            .store
            .families(&Own)
            .filter_map(|mut f| {
                let needs = !is_valid_metric_name(f.name)
                    || f.series.any(|(k, _)| escape::needs_escaping(f.name, &k.0));
                needs.then_some(f.name)
            })
            .collect();
        if needs.is_empty() {
            return out;
        }
        for (name, mut metrics) in self.family_metrics(&needs) {
            metrics.sort_by_key(|a| SeriesKey(a.labels.clone()));
            let escaped = escape::metric_name(name, escaping);
            let lines = metrics
                .into_iter()
                .map(|m| {
                    let key = SeriesKey(m.labels.clone());
                    let mut text = Vec::new();
                    exposition::write_metric(&mut text, &escaped, &escape_labels(m, escaping));
                    (key, text)
                })
                .collect();
            out.insert(name, lines);
        }
        out
    }

    /// Every series of the named families, from the groups (with the
    /// push-time gauges), in group order: callers sort once, after adding
    /// whatever else they merge in.
    fn family_metrics<'a>(&'a self, names: &[&'a str]) -> BTreeMap<&'a str, Vec<Metric>> {
        let mut fams: BTreeMap<&str, Vec<Metric>> =
            names.iter().map(|n| (*n, Vec::new())).collect();
        let gauge = |labels: Labels, t: Option<Nanos>| {
            Metric::new(
                labels,
                Value::Gauge(t.map(|n| n as f64 / 1e9).unwrap_or(0.0)),
            )
        };
        for (_, g) in self.store.groups() {
            for (name, fam) in &g.families {
                if let Some(f) = fams.get_mut(&**name) {
                    f.extend(fam.metrics.iter().cloned());
                }
            }
            if let Some(f) = fams.get_mut(store::PUSH_TIME) {
                f.push(gauge(g.time_labels(), g.push_time));
            }
            if let Some(f) = fams.get_mut(store::PUSH_FAILURE_TIME) {
                f.push(gauge(g.time_labels(), g.failure_time));
            }
        }
        fams
    }

    /// The delimited protobuf exposition. Built from the groups rather than
    /// the pre-rendered text, so it costs a sort; Prometheus asks for it
    /// only when native histograms are enabled.
    pub(super) fn render_protobuf(&self, escaping: Escaping) -> Vec<u8> {
        struct Fam<'a> {
            help: Option<&'a str>,
            metric_type: MetricType,
            metrics: Vec<Metric>,
        }
        let views: Vec<_> = self.store.families(&Own).collect();
        let names: Vec<&str> = views.iter().map(|f| f.name).collect();
        let mut metrics = self.family_metrics(&names);
        let mut fams: BTreeMap<&str, Fam> = views
            .into_iter()
            .map(|f| {
                let fam = Fam {
                    help: f.help,
                    metric_type: f.metric_type,
                    metrics: metrics.remove(f.name).unwrap_or_default(),
                };
                (f.name, fam)
            })
            .collect();
        for (name, metrics) in self.telemetry.families() {
            let (t, help) =
                store::OwnFamilies::own_family(&Own, name).unwrap_or((MetricType::Untyped, ""));
            fams.entry(name)
                .or_insert(Fam {
                    help: Some(help),
                    metric_type: t,
                    metrics: Vec::new(),
                })
                .metrics
                .extend(metrics);
        }
        let mut out = Vec::with_capacity(self.last_scrape_len);
        for (name, mut f) in fams {
            f.metrics.sort_by_key(|a| SeriesKey(a.labels.clone()));
            if escaping != Escaping::AllowUtf8 && self.names == NameScheme::Utf8 {
                f.metrics = f
                    .metrics
                    .into_iter()
                    .map(|m| escape_labels(m, escaping))
                    .collect();
            }
            let name = escape::metric_name(name, escaping);
            protobuf::encode_family(&mut out, &name, f.help, f.metric_type, f.metrics.iter());
        }
        out
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

/// Series with their exposition lines, in exposition order.
type RenderedSeries = Vec<(SeriesKey, Vec<u8>)>;
