//! Scrapes rendered from the store: the text exposition concatenates the
//! pre-rendered series lines with the gateway's own families, merged by
//! name; the protobuf exposition is built from the groups.

use std::collections::BTreeMap;

use super::Gateway;
use crate::model::{Labels, Metric, MetricType, Value};
use crate::store::{self, Nanos, SeriesKey};
use crate::telemetry::Own;
use crate::wire::{exposition, protobuf};

impl Gateway {
    /// The whole text exposition: pushed families and the gateway's own,
    /// merged by name; a name in both gets one header and both sets of
    /// series, in series order.
    pub(super) fn render_metrics(&self) -> Vec<u8> {
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
            exposition::write_header(&mut out, fam.name, fam.help, fam.metric_type);
            let own_series = own_iter
                .next_if(|(n, _)| *n == fam.name)
                .map(|(_, s)| s)
                .unwrap_or_default();
            let mut a = fam.series.peekable();
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

    /// The delimited protobuf exposition. Built from the groups rather than
    /// the pre-rendered text, so it costs a sort; Prometheus asks for it
    /// only when native histograms are enabled.
    pub(super) fn render_protobuf(&self) -> Vec<u8> {
        struct Fam<'a> {
            help: Option<&'a str>,
            metric_type: MetricType,
            metrics: Vec<Metric>,
        }
        let mut fams: BTreeMap<&str, Fam> = BTreeMap::new();
        for f in self.store.families(&Own) {
            fams.insert(
                f.name,
                Fam {
                    help: f.help,
                    metric_type: f.metric_type,
                    metrics: Vec::new(),
                },
            );
        }
        let gauge = |labels: Labels, t: Option<Nanos>| Metric {
            labels,
            value: Value::Gauge(t.map(|n| n as f64 / 1e9).unwrap_or(0.0)),
            timestamp_ms: None,
        };
        for (_, g) in self.store.groups() {
            for (name, fam) in &g.families {
                if let Some(f) = fams.get_mut(&**name) {
                    f.metrics.extend(fam.metrics.iter().cloned());
                }
            }
            if let Some(f) = fams.get_mut(store::PUSH_TIME) {
                f.metrics.push(gauge(g.time_labels(), g.push_time));
            }
            if let Some(f) = fams.get_mut(store::PUSH_FAILURE_TIME) {
                f.metrics.push(gauge(g.time_labels(), g.failure_time));
            }
        }
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
            protobuf::encode_family(&mut out, name, f.help, f.metric_type, f.metrics.iter());
        }
        out
    }
}

/// Series with their exposition lines, in exposition order.
type RenderedSeries = Vec<(SeriesKey, Vec<u8>)>;
