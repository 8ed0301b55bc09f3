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
    let mut out: Vec<PreparedFamily> = Vec::with_capacity(families.len());
    for fam in families {
        if &*fam.name == PUSH_TIME || &*fam.name == PUSH_FAILURE_TIME {
            continue;
        }
        // One family per name: a later one replaces an earlier one, as in
        // the reference's map of families (the text parser never repeats).
        out.retain(|f| f.name != fam.name);
        let mut metrics = Vec::with_capacity(fam.metrics.len());
        for m in fam.metrics {
            if m.timestamp_ms().is_some() {
                return Err(PushError::Timestamp {
                    metric: fam.name.to_string(),
                });
            }
            let labels = sanitize_owned(m.labels, &key);
            for l in labels.iter() {
                if l.name.starts_with("__") {
                    return Err(PushError::ReservedLabel {
                        metric: fam.name.to_string(),
                        label: l.name.to_string(),
                    });
                }
                if &*l.name == "quantile" && fam.metric_type == MetricType::Summary {
                    return Err(PushError::QuantileLabel {
                        metric: fam.name.to_string(),
                    });
                }
            }
            metrics.push(Metric {
                labels,
                value: m.value,
                extra: m.extra,
            });
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
        let mut text = Vec::with_capacity(metrics.len() * 64);
        for m in &metrics {
            exposition::write_metric(&mut text, &fam.name, m);
        }
        let hashes = metrics.iter().map(|m| series_hash(&m.labels)).collect();
        out.push(PreparedFamily {
            name: fam.name,
            help: fam.help,
            metric_type: fam.metric_type,
            metrics,
            hashes,
            text: text.into_boxed_slice(),
            pushed_at: None,
        });
    }
    Ok(PreparedPush {
        key,
        families: out,
        replace,
        ttl: None,
        labels_shared: false,
    })
}

/// [`sanitize_labels`], keeping `labels` as they are when they already are
/// the result (a restored series': sorted, with the key's labels and an
/// instance), so that nothing is copied or allocated.
fn sanitize_owned(labels: SeriesLabels, key: &[Label]) -> SeriesLabels {
    let sorted = labels.windows(2).all(|w| w[0].name < w[1].name);
    let has_key = key.iter().all(|k| {
        labels
            .binary_search_by(|l| l.name.cmp(&k.name))
            .is_ok_and(|i| labels[i].value == k.value)
    });
    if sorted && has_key && labels.iter().any(|l| &*l.name == "instance") {
        return labels;
    }
    sanitize_labels(&labels, key)
}

/// The labels of a pushed series once the grouping key is applied.
/// Allocated at their exact size: a boxed slice shrunk from a larger
/// vector leaves a hole behind every stored series.
pub(super) fn sanitize_labels(labels: &[Label], key: &[Label]) -> SeriesLabels {
    let in_key = |l: &Label| key.iter().any(|k| k.name == l.name);
    let own = labels.iter().filter(|l| !in_key(l));
    let has_instance = labels.iter().chain(key).any(|l| &*l.name == "instance");
    let len = own.clone().count() + key.len() + usize::from(!has_instance);
    let mut out: Vec<Label> = Vec::with_capacity(len);
    out.extend(own.cloned());
    out.extend(key.iter().cloned());
    if !has_instance {
        out.push(Label::new("instance", ""));
    }
    crate::model::sort_by_name(&mut out);
    debug_assert_eq!(out.len(), out.capacity());
    out.into_boxed_slice()
}
