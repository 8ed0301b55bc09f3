//! The group store: every pushed group, and an index over all of them that
//! keeps a push's cost proportional to the push, not to the store.
//!
//! The reference copies the whole store and re-gathers it on every push to
//! check consistency, so one small push costs O(everything stored). Here the
//! same rules are checked against an index kept up to date incrementally:
//!
//! - per metric name, how many groups contribute it with which type, and
//!   which HELP texts they pushed;
//! - per metric name, every series (label set) with the group that owns it,
//!   together with its exposition lines rendered once, at push time.
//!
//! A scrape is then a walk over the index concatenating pre-rendered lines.
//!
//! Only the request loop owns a `Store`; nothing here locks or does I/O.
//! Preparing a push (`prepare_push`) is pure and runs on the worker thread
//! that read the body; the loop only checks it against the index and applies.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::model::{Label, Labels, Metric, MetricFamily, MetricType, Value};
use crate::wire::exposition;

pub const PUSH_TIME: &str = "push_time_seconds";
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// A grouping key: `job` plus the URL's label pairs, sorted by name.
pub type GroupKey = Arc<[Label]>;

pub use crate::time::Nanos;

/// The gateway's own metric families, which pushed metrics must stay
/// consistent with (same type, no suffix collisions), and whose HELP text
/// wins over a pushed one.
pub trait OwnFamilies {
    fn own_family(&self, name: &str) -> Option<(MetricType, &'static str)>;
}

/// Why a push was rejected. Each is answered with 400 and sets the group's
/// `push_failure_time_seconds`.
#[derive(Clone, Debug, PartialEq)]
pub enum PushError {
    Timestamp {
        metric: String,
    },
    ReservedLabel {
        metric: String,
        label: String,
    },
    QuantileLabel {
        metric: String,
    },
    DuplicateSeries {
        metric: String,
        labels: String,
    },
    TypeMismatch {
        metric: String,
        pushed: MetricType,
        existing: MetricType,
    },
    SuffixCollision {
        metric: String,
        other: String,
        other_type: MetricType,
    },
    SeriesInOtherGroup {
        metric: String,
        labels: String,
        group: String,
    },
    GroupCollision {
        group: String,
        other: String,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pushed metrics are invalid or inconsistent with existing metrics: ")?;
        match self {
            PushError::Timestamp { metric } => {
                write!(
                    f,
                    "pushed metrics must not have timestamps (metric {metric:?} has one)"
                )
            }
            PushError::ReservedLabel { metric, label } => write!(
                f,
                "metric {metric:?} has label {label:?}: label names starting with \"__\" are reserved"
            ),
            PushError::QuantileLabel { metric } => {
                write!(
                    f,
                    "summary {metric:?} must not have an explicit \"quantile\" label"
                )
            }
            PushError::DuplicateSeries { metric, labels } => write!(
                f,
                "metric {metric:?} with labels {labels} appears more than once in this push"
            ),
            PushError::TypeMismatch {
                metric,
                pushed,
                existing,
            } => write!(
                f,
                "metric {metric:?} is pushed as {pushed} but is a {existing} elsewhere (in another group or the gateway's own metrics)"
            ),
            PushError::SuffixCollision {
                metric,
                other,
                other_type,
            } => write!(
                f,
                "metric {metric:?} collides with {other_type} {other:?}, whose _count/_sum/_bucket series have the same names"
            ),
            PushError::SeriesInOtherGroup {
                metric,
                labels,
                group,
            } => write!(
                f,
                "metric {metric:?} with labels {labels} already exists in group {group}; a series may live in one group only"
            ),
            PushError::GroupCollision { group, other } => write!(
                f,
                "group {group} would expose the same push_time_seconds series as existing group {other}; delete one of them or use distinct grouping labels"
            ),
        }
    }
}

impl std::error::Error for PushError {}

/// Renders a label set as `{a="b",c="d"}` for messages.
pub fn show_labels(labels: &[Label]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&l.name);
        s.push('=');
        s.push_str(&format!("{:?}", &*l.value));
    }
    s.push('}');
    s
}

/// Orders series as the reference's exposition does: by number of labels,
/// then by label values in label-name order; label names only break ties
/// the reference leaves to chance.
#[derive(Clone, Debug)]
pub struct SeriesKey(pub Labels);

impl Ord for SeriesKey {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.0, &other.0);
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().map(|l| &l.value).cmp(b.iter().map(|l| &l.value)))
            .then_with(|| a.iter().map(|l| &l.name).cmp(b.iter().map(|l| &l.name)))
    }
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

/// A series ready to be stored: its data and its exposition lines.
#[derive(Clone, Debug)]
pub struct PreparedMetric {
    pub metric: Metric,
    pub text: Box<[u8]>,
}

#[derive(Clone, Debug)]
pub struct PreparedFamily {
    pub name: Box<str>,
    pub help: Option<Box<str>>,
    pub metric_type: MetricType,
    pub metrics: Vec<PreparedMetric>,
    /// Set when restoring; a push stamps its families with the push time.
    pub pushed_at: Option<Nanos>,
}

/// A push that passed every check that needs no store: sanitized labels,
/// no timestamps, no reserved labels, no duplicate series within itself.
#[derive(Clone, Debug)]
pub struct PreparedPush {
    pub key: GroupKey,
    pub families: Vec<PreparedFamily>,
    /// PUT replaces the whole group; POST only the families it carries.
    pub replace: bool,
}

/// Applies the grouping labels to every series (overriding same-named body
/// labels), adds `instance=""` where absent, sorts labels by name, drops
/// families named like the gateway's push-time gauges (they are always the
/// gateway's), and checks everything that needs no store.
pub fn prepare_push(
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
        let mut seen: HashSet<SeriesKey> = HashSet::new();
        let mut metrics = Vec::with_capacity(fam.metrics.len());
        for m in fam.metrics {
            if m.timestamp_ms.is_some() {
                return Err(PushError::Timestamp {
                    metric: fam.name.to_string(),
                });
            }
            let labels = sanitize_labels(&m.labels, &key);
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
            if !seen.insert(SeriesKey(labels.clone())) {
                return Err(PushError::DuplicateSeries {
                    metric: fam.name.to_string(),
                    labels: show_labels(&labels),
                });
            }
            let metric = Metric {
                labels,
                value: m.value,
                timestamp_ms: None,
            };
            let mut text = Vec::with_capacity(64);
            exposition::write_metric(&mut text, &fam.name, &metric);
            metrics.push(PreparedMetric {
                metric,
                text: text.into_boxed_slice(),
            });
        }
        out.push(PreparedFamily {
            name: fam.name,
            help: fam.help,
            metric_type: fam.metric_type,
            metrics,
            pushed_at: None,
        });
    }
    Ok(PreparedPush {
        key,
        families: out,
        replace,
    })
}

impl std::hash::Hash for SeriesKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// The labels of a pushed series once the grouping key is applied.
fn sanitize_labels(labels: &[Label], key: &[Label]) -> Labels {
    let mut out: Vec<Label> = Vec::with_capacity(labels.len() + key.len() + 1);
    for l in labels {
        if !key.iter().any(|k| k.name == l.name) {
            out.push(l.clone());
        }
    }
    out.extend(key.iter().cloned());
    if !out.iter().any(|l| &*l.name == "instance") {
        out.push(Label::new("instance", ""));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.into()
}

/// One pushed group. Shared with snapshot writers through an `Arc`: the
/// loop changes a group copy-on-write, so a snapshot in progress keeps the
/// version it started with while pushes go on.
#[derive(Clone, Debug)]
pub struct Group {
    id: u64,
    /// The grouping labels plus `instance=""` if absent: the labels of the
    /// group's push-time gauges.
    time_labels: Labels,
    pub families: BTreeMap<Box<str>, StoredFamily>,
    pub push_time: Option<Nanos>,
    pub failure_time: Option<Nanos>,
    /// When the group came into being (by a push or a failed push).
    pub created: Nanos,
}

impl Group {
    /// The grouping labels plus `instance=""` if absent.
    pub fn time_labels(&self) -> Labels {
        self.time_labels.clone()
    }

    /// Whether the last change was a success, as the reference's
    /// `last_push_successful`: no failure after the last push.
    pub fn last_push_successful(&self) -> bool {
        match (self.failure_time, self.push_time) {
            (None, _) => true,
            (Some(f), p) => f <= p.unwrap_or(0),
        }
    }

    /// The time the group's push-time and failure-time gauges were last
    /// set, as the JSON API shows them.
    pub fn time_family_stamps(&self) -> (Nanos, Nanos) {
        (
            self.push_time.unwrap_or(self.created),
            self.failure_time.unwrap_or(self.created),
        )
    }
}

/// One family of one group. Its exposition lines live in the index only.
#[derive(Clone, Debug)]
pub struct StoredFamily {
    pub help: Option<Box<str>>,
    pub metric_type: MetricType,
    pub metrics: Vec<Metric>,
    /// When this family was last pushed (shown by the JSON API).
    pub pushed_at: Nanos,
}

/// Index entry for one metric name across all groups.
#[derive(Debug, Default)]
struct FamilyIndex {
    /// How many groups contribute this family, per type (indexed by
    /// `type_slot`). With the consistency check on, one slot at most is
    /// non-zero.
    type_counts: [u32; 5],
    /// HELP texts pushed for this name and how many groups pushed each; the
    /// most recently pushed one is last and is the one exposed.
    helps: Vec<(Option<Box<str>>, u32)>,
    /// Every series with its owning group and its rendered lines.
    series: BTreeMap<(SeriesKey, u64), Box<[u8]>>,
}

fn type_slot(t: MetricType) -> usize {
    t.number()
}

const SLOT_TYPES: [MetricType; 5] = MetricType::ALL;

impl FamilyIndex {
    fn groups(&self) -> u32 {
        self.type_counts.iter().sum()
    }

    /// The type exposed: the most common one (the only one when consistent).
    fn metric_type(&self) -> MetricType {
        let mut best = 0;
        for i in 1..5 {
            if self.type_counts[i] > self.type_counts[best] {
                best = i;
            }
        }
        SLOT_TYPES[best]
    }

    fn help(&self) -> Option<&str> {
        self.helps.iter().rev().find_map(|(h, _)| h.as_deref())
    }

    fn add_help(&mut self, help: Option<&str>) {
        if let Some(i) = self.helps.iter().position(|(h, _)| h.as_deref() == help) {
            let mut e = self.helps.remove(i);
            e.1 += 1;
            self.helps.push(e);
        } else {
            self.helps.push((help.map(Into::into), 1));
        }
    }

    fn remove_help(&mut self, help: Option<&str>) {
        if let Some(i) = self.helps.iter().position(|(h, _)| h.as_deref() == help) {
            self.helps[i].1 -= 1;
            if self.helps[i].1 == 0 {
                self.helps.remove(i);
            }
        }
    }
}

/// A family as the exposition writer sees it.
pub struct FamilyView<'a> {
    pub name: &'a str,
    pub help: Option<&'a str>,
    pub metric_type: MetricType,
    /// Every series with its rendered lines, in exposition order.
    pub series: Box<dyn Iterator<Item = (&'a SeriesKey, &'a [u8])> + 'a>,
}

/// Shares equal label names and values between series: most are repeated
/// (`job`, `instance`, one value per shard or region), so one allocation
/// per distinct string instead of two per label cuts memory by about a
/// third on typical stores.
#[derive(Default)]
struct Interner {
    strings: HashSet<Arc<str>>,
    /// Size at which unused strings are next swept out.
    high_water: usize,
}

impl Interner {
    fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.strings.get(&**s) {
            return Arc::clone(shared);
        }
        self.strings.insert(Arc::clone(s));
        Arc::clone(s)
    }

    fn labels(&mut self, labels: &[Label]) -> Labels {
        labels
            .iter()
            .map(|l| Label {
                name: self.intern(&l.name),
                value: self.intern(&l.value),
            })
            .collect()
    }

    /// Drops strings no series uses any more, once they could make up half
    /// of the set: the sweep is O(set), so it runs rarely.
    fn sweep_if_due(&mut self) {
        if self.strings.len() > self.high_water {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.high_water = (self.strings.len() * 2).max(1024);
        }
    }
}

/// All groups and the index over them.
pub struct Store {
    groups: BTreeMap<GroupKey, Arc<Group>>,
    families: BTreeMap<Box<str>, FamilyIndex>,
    next_id: u64,
    series_count: usize,
    /// Bumped on every change, so persistence knows when to write.
    generation: u64,
    interner: Interner,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        Store {
            groups: BTreeMap::new(),
            families: BTreeMap::new(),
            next_id: 1,
            series_count: 0,
            generation: 0,
            interner: Interner::default(),
        }
    }

    pub fn groups(&self) -> impl Iterator<Item = (&GroupKey, &Group)> {
        self.groups.iter().map(|(k, g)| (k, &**g))
    }

    /// Every group, shared: O(groups) pointer copies. The snapshot writer
    /// renders these on its own thread while the loop goes on.
    pub fn snapshot(&self) -> Vec<(GroupKey, Arc<Group>)> {
        self.groups
            .iter()
            .map(|(k, g)| (k.clone(), Arc::clone(g)))
            .collect()
    }

    /// Changes so far; compare two readings to see whether anything changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The group with exactly this grouping key.
    pub fn group(&self, key: &[Label]) -> Option<&Group> {
        self.groups.get(key).map(|g| &**g)
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Pushed series, not counting the push-time gauges.
    pub fn series_count(&self) -> usize {
        self.series_count
    }

    /// Checks a prepared push against the store without changing anything.
    pub fn check(&self, push: &PreparedPush, own: &dyn OwnFamilies) -> Result<(), PushError> {
        let group = self.groups.get(&push.key);
        let gid = group.map(|g| g.id);
        if group.is_none() {
            self.check_group_collision(&push.key)?;
        }
        let pushed: BTreeMap<&str, &PreparedFamily> =
            push.families.iter().map(|f| (&*f.name, f)).collect();
        // The type a name will have after the push, if it exists then.
        let type_after = |name: &str| -> Option<MetricType> {
            if let Some(f) = pushed.get(name) {
                return Some(f.metric_type);
            }
            if let Some((t, _)) = own.own_family(name) {
                return Some(t);
            }
            let mut counts = self.families.get(name).map(|f| f.type_counts)?;
            if let Some(g) = group
                && let Some(old) = g.families.get(name)
                && push.replace
            {
                counts[type_slot(old.metric_type)] -= 1;
            }
            counts.iter().position(|c| *c > 0).map(|i| SLOT_TYPES[i])
        };
        for fam in &push.families {
            let name = &*fam.name;
            let t = fam.metric_type;
            // One type per name across the store and the gateway's own metrics.
            if let Some((own_t, _)) = own.own_family(name)
                && own_t != t
            {
                return Err(type_mismatch(name, t, own_t));
            }
            if let Some(idx) = self.families.get(name) {
                let mut counts = idx.type_counts;
                if let Some(old) = group.and_then(|g| g.families.get(name)) {
                    counts[type_slot(old.metric_type)] -= 1;
                }
                if let Some(i) = (0..5).find(|&i| counts[i] > 0 && SLOT_TYPES[i] != t) {
                    return Err(type_mismatch(name, t, SLOT_TYPES[i]));
                }
            }
            // The _count/_sum/_bucket lines of summaries and histograms must
            // not collide with other families' names.
            for (suffix, bases) in [
                ("_count", &[MetricType::Summary, MetricType::Histogram][..]),
                ("_sum", &[MetricType::Summary, MetricType::Histogram][..]),
                ("_bucket", &[MetricType::Histogram][..]),
            ] {
                if let Some(base) = name.strip_suffix(suffix)
                    && let Some(bt) = type_after(base)
                    && bases.contains(&bt)
                {
                    return Err(suffix_collision(name, base, bt));
                }
            }
            if matches!(t, MetricType::Summary | MetricType::Histogram) {
                for suffix in ["_count", "_sum", "_bucket"] {
                    if suffix == "_bucket" && t == MetricType::Summary {
                        continue;
                    }
                    let other = format!("{name}{suffix}");
                    if let Some(ot) = type_after(&other) {
                        return Err(suffix_collision(name, &other, ot));
                    }
                }
            }
            // No series may exist in two groups.
            if let Some(idx) = self.families.get(name) {
                for m in &fam.metrics {
                    let key = SeriesKey(m.metric.labels.clone());
                    let lo = (key.clone(), 0);
                    let hi = (key, u64::MAX);
                    if let Some(((_, owner), _)) = idx
                        .series
                        .range(lo..=hi)
                        .find(|((_, o), _)| Some(*o) != gid)
                    {
                        return Err(PushError::SeriesInOtherGroup {
                            metric: name.to_owned(),
                            labels: show_labels(&m.metric.labels),
                            group: self.describe_group(*owner),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// A new group's push-time gauges must not duplicate another group's:
    /// `{job="a"}` and `{job="a",instance=""}` are different groups with the
    /// same `push_time_seconds{instance="",job="a"}`. The reference accepts
    /// that state and then fails every scrape; we refuse to create it.
    fn check_group_collision(&self, key: &GroupKey) -> Result<(), PushError> {
        let labels = time_labels(key);
        if let Some(idx) = self.families.get(PUSH_TIME) {
            let k = SeriesKey(labels);
            if let Some(((_, owner), _)) = idx.series.range((k.clone(), 0)..=(k, u64::MAX)).next() {
                return Err(PushError::GroupCollision {
                    group: show_labels(key),
                    other: self.describe_group(*owner),
                });
            }
        }
        Ok(())
    }

    fn describe_group(&self, id: u64) -> String {
        self.groups
            .iter()
            .find(|(_, g)| g.id == id)
            .map(|(k, _)| show_labels(k))
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Applies a checked push. `now` becomes the group's push time.
    pub fn apply(&mut self, push: PreparedPush, now: Nanos) {
        let key = push.key.clone();
        let gid = self.ensure_group(&key, now);
        self.generation += 1;
        let Some(group) = self.groups.get_mut(&key).map(Arc::make_mut) else {
            return;
        };
        let removed: Vec<(Box<str>, StoredFamily)> = if push.replace {
            std::mem::take(&mut group.families).into_iter().collect()
        } else {
            push.families
                .iter()
                .filter_map(|f| group.families.remove_entry(&f.name))
                .collect()
        };
        for (name, fam) in &removed {
            unindex_family(&mut self.families, name, fam, gid);
            self.series_count -= fam.metrics.len();
        }
        for fam in push.families {
            let idx = self.families.entry(fam.name.clone()).or_default();
            idx.type_counts[type_slot(fam.metric_type)] += 1;
            idx.add_help(fam.help.as_deref());
            let mut metrics = Vec::with_capacity(fam.metrics.len());
            for mut pm in fam.metrics {
                pm.metric.labels = self.interner.labels(&pm.metric.labels);
                idx.series
                    .insert((SeriesKey(pm.metric.labels.clone()), gid), pm.text);
                metrics.push(pm.metric);
            }
            self.series_count += metrics.len();
            let stored = StoredFamily {
                help: fam.help,
                metric_type: fam.metric_type,
                metrics,
                pushed_at: fam.pushed_at.unwrap_or(now),
            };
            group.families.insert(fam.name, stored);
        }
        group.push_time = Some(now);
        let (labels, ft) = (group.time_labels.clone(), group.failure_time);
        self.interner.sweep_if_due();
        self.set_time_series(PUSH_TIME, &labels, gid, Some(now));
        self.set_time_series(PUSH_FAILURE_TIME, &labels, gid, ft);
    }

    /// Records a rejected push: the group's failure time becomes `now`,
    /// creating the group if needed (as the reference does), unless that
    /// would make its push-time series collide with another group's.
    pub fn record_failure(&mut self, key: &GroupKey, now: Nanos) {
        if !self.groups.contains_key(key) && self.check_group_collision(key).is_err() {
            return;
        }
        let gid = self.ensure_group(key, now);
        self.generation += 1;
        if let Some(group) = self.groups.get_mut(key).map(Arc::make_mut) {
            group.failure_time = Some(now);
            let labels = group.time_labels.clone();
            self.set_time_series(PUSH_FAILURE_TIME, &labels, gid, Some(now));
        }
    }

    /// Puts back a group read from a snapshot, with its recorded times.
    /// The same consistency rules as for a push apply, so a hand-edited
    /// snapshot cannot smuggle an inconsistent state in.
    pub fn restore_group(
        &mut self,
        push: PreparedPush,
        push_time: Option<Nanos>,
        failure_time: Option<Nanos>,
        own: &dyn OwnFamilies,
    ) -> Result<(), PushError> {
        self.check(&push, own)?;
        let key = push.key.clone();
        let created = push_time.or(failure_time).unwrap_or(0);
        self.apply(push, created);
        let gid = self.ensure_group(&key, created);
        if let Some(group) = self.groups.get_mut(&key).map(Arc::make_mut) {
            group.push_time = push_time;
            group.failure_time = failure_time;
            let labels = group.time_labels.clone();
            self.set_time_series(PUSH_TIME, &labels, gid, push_time);
            self.set_time_series(PUSH_FAILURE_TIME, &labels, gid, failure_time);
        }
        Ok(())
    }

    /// Deletes exactly the group with this key; true if it existed.
    pub fn delete(&mut self, key: &GroupKey) -> bool {
        let Some(group) = self.groups.remove(key) else {
            return false;
        };
        self.generation += 1;
        for (name, fam) in &group.families {
            unindex_family(&mut self.families, name, fam, group.id);
            self.series_count -= fam.metrics.len();
        }
        for name in [PUSH_TIME, PUSH_FAILURE_TIME] {
            if let Some(idx) = self.families.get_mut(name) {
                idx.series
                    .remove(&(SeriesKey(group.time_labels.clone()), group.id));
                idx.type_counts[type_slot(MetricType::Gauge)] -= 1;
                if idx.groups() == 0 {
                    self.families.remove(name);
                }
            }
        }
        true
    }

    /// Deletes every group; returns how many there were.
    pub fn wipe(&mut self) -> usize {
        let n = self.groups.len();
        if n > 0 {
            self.generation += 1;
        }
        self.groups.clear();
        self.families.clear();
        self.series_count = 0;
        n
    }

    fn ensure_group(&mut self, key: &GroupKey, now: Nanos) -> u64 {
        if let Some(g) = self.groups.get(key) {
            return g.id;
        }
        let id = self.next_id;
        self.next_id += 1;
        let labels = time_labels(key);
        self.groups.insert(
            key.clone(),
            Arc::new(Group {
                id,
                time_labels: labels.clone(),
                families: BTreeMap::new(),
                push_time: None,
                failure_time: None,
                created: now,
            }),
        );
        for (name, help) in [
            (PUSH_TIME, PUSH_TIME_HELP),
            (PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP),
        ] {
            let idx = self.families.entry(name.into()).or_default();
            if idx.helps.is_empty() {
                idx.helps.push((Some(help.into()), 1));
            }
            idx.type_counts[type_slot(MetricType::Gauge)] += 1;
            idx.series.insert(
                (SeriesKey(labels.clone()), id),
                render_time(name, &labels, None),
            );
        }
        id
    }

    fn set_time_series(&mut self, name: &str, labels: &Labels, gid: u64, t: Option<Nanos>) {
        if let Some(idx) = self.families.get_mut(name) {
            let text = render_time(name, labels, t);
            idx.series.insert((SeriesKey(labels.clone()), gid), text);
        }
    }

    /// Every family in name order, for the exposition writer. `own` supplies
    /// the HELP text of names the gateway itself exposes.
    pub fn families<'a>(
        &'a self,
        own: &'a dyn OwnFamilies,
    ) -> impl Iterator<Item = FamilyView<'a>> + 'a {
        self.families.iter().map(move |(name, idx)| {
            let (metric_type, help) = match own.own_family(name) {
                Some((t, h)) => (t, Some(h)),
                None => (idx.metric_type(), idx.help()),
            };
            FamilyView {
                name,
                help,
                metric_type,
                series: Box::new(idx.series.iter().map(|((k, _), t)| (k, &t[..]))),
            }
        })
    }

    /// Problems that make the store inconsistent; only possible when pushes
    /// skip the consistency check. The reference fails scrapes in that state.
    pub fn inconsistencies(&self, own: &dyn OwnFamilies) -> Vec<String> {
        let mut out = Vec::new();
        for (name, idx) in &self.families {
            let types: Vec<MetricType> = (0..5)
                .filter(|&i| idx.type_counts[i] > 0)
                .map(|i| SLOT_TYPES[i])
                .collect();
            if types.len() > 1 {
                out.push(format!(
                    "metric {name:?} is pushed with several types: {types:?}"
                ));
            }
            if let Some((t, _)) = own.own_family(name)
                && types.iter().any(|x| *x != t)
            {
                out.push(format!(
                    "metric {name:?} has a type other than the gateway's own {t}"
                ));
            }
            let mut prev: Option<&SeriesKey> = None;
            for (k, _) in idx.series.keys() {
                if prev == Some(k) {
                    out.push(format!(
                        "metric {name:?} with labels {} was pushed by more than one group",
                        show_labels(&k.0)
                    ));
                }
                prev = Some(k);
            }
        }
        out
    }
}

fn type_mismatch(name: &str, pushed: MetricType, existing: MetricType) -> PushError {
    PushError::TypeMismatch {
        metric: name.to_owned(),
        pushed,
        existing,
    }
}

fn suffix_collision(name: &str, other: &str, other_type: MetricType) -> PushError {
    PushError::SuffixCollision {
        metric: name.to_owned(),
        other: other.to_owned(),
        other_type,
    }
}

fn time_labels(key: &[Label]) -> Labels {
    sanitize_labels(&[], key)
}

fn render_time(name: &str, labels: &Labels, t: Option<Nanos>) -> Box<[u8]> {
    let secs = t.map(|n| n as f64 / 1e9).unwrap_or(0.0);
    let m = Metric {
        labels: labels.clone(),
        value: Value::Gauge(secs),
        timestamp_ms: None,
    };
    let mut text = Vec::with_capacity(64);
    exposition::write_metric(&mut text, name, &m);
    text.into_boxed_slice()
}

fn unindex_family(
    families: &mut BTreeMap<Box<str>, FamilyIndex>,
    name: &str,
    fam: &StoredFamily,
    gid: u64,
) {
    let Some(idx) = families.get_mut(name) else {
        return;
    };
    idx.type_counts[type_slot(fam.metric_type)] -= 1;
    idx.remove_help(fam.help.as_deref());
    for m in &fam.metrics {
        idx.series.remove(&(SeriesKey(m.labels.clone()), gid));
    }
    if idx.groups() == 0 {
        families.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the gateway's own families (the telemetry module's),
    /// so the store is tested on its own: one gauge.
    struct Own;

    impl OwnFamilies for Own {
        fn own_family(&self, name: &str) -> Option<(MetricType, &'static str)> {
            (name == "process_open_fds").then_some((MetricType::Gauge, "Open descriptors."))
        }
    }

    fn push(store: &mut Store, key: &[(&str, &str)], body: &str) -> Result<(), PushError> {
        let mut key: Vec<Label> = key.iter().map(|(n, v)| Label::new(n, v)).collect();
        key.sort();
        let fams = crate::wire::text_format::parse(body.as_bytes()).expect("test body parses");
        let p = prepare_push(key.into(), fams, true)?;
        store.check(&p, &Own)?;
        store.apply(p, 1);
        Ok(())
    }

    #[test]
    fn consistency_rules() {
        let mut s = Store::new();
        push(
            &mut s,
            &[("job", "a")],
            "# TYPE m counter\nm 1\n# TYPE s summary\ns_sum 1\ns_count 1\n",
        )
        .unwrap();
        let e = push(&mut s, &[("job", "b")], "# TYPE m gauge\nm 1\n").unwrap_err();
        assert!(matches!(e, PushError::TypeMismatch { .. }), "{e}");
        let e = push(&mut s, &[("job", "b")], "s_count 3\n").unwrap_err();
        assert!(matches!(e, PushError::SuffixCollision { .. }), "{e}");
        push(
            &mut s,
            &[("job", "a")],
            "# TYPE m counter\nm{x=\"1\"} 1\n# TYPE s summary\ns_sum 1\ns_count 1\n",
        )
        .unwrap();
        let e = push(
            &mut s,
            &[("job", "a"), ("x", "1")],
            "# TYPE m counter\nm 1\n",
        )
        .unwrap_err();
        assert!(matches!(e, PushError::SeriesInOtherGroup { .. }), "{e}");
        let e = push(&mut s, &[("job", "a"), ("instance", "")], "x 1\n").unwrap_err();
        assert!(matches!(e, PushError::GroupCollision { .. }), "{e}");
        let e = push(
            &mut s,
            &[("job", "b")],
            "# TYPE process_open_fds counter\nprocess_open_fds 1\n",
        )
        .unwrap_err();
        assert!(
            matches!(e, PushError::TypeMismatch { .. }),
            "own metric types count: {e}"
        );
        // Replacing its own group is no conflict with itself.
        push(&mut s, &[("job", "a")], "# TYPE m gauge\nm 2\n").unwrap();
        assert_eq!(s.series_count(), 1);
        assert!(s.delete(&Arc::from(vec![Label::new("job", "a")])));
        assert_eq!(s.series_count(), 0);
        assert!(s.families(&Own).next().is_none(), "index emptied");
    }

    #[test]
    fn equal_label_strings_are_shared_and_swept() {
        let mut s = Store::new();
        push(&mut s, &[("job", "a")], "m{region=\"eu-west-1\"} 1\n").unwrap();
        push(&mut s, &[("job", "b")], "m{region=\"eu-west-1\"} 1\n").unwrap();
        let values: Vec<Arc<str>> = s
            .groups()
            .map(|(_, g)| {
                g.families["m"].metrics[0]
                    .labels
                    .iter()
                    .find(|l| &*l.name == "region")
                    .unwrap()
                    .value
                    .clone()
            })
            .collect();
        assert!(
            Arc::ptr_eq(&values[0], &values[1]),
            "one allocation for both"
        );
        drop(values);
        for i in 0..3000 {
            push(
                &mut s,
                &[("job", "c")],
                &format!("m{{region=\"r{i}\"}} 1\n"),
            )
            .unwrap();
        }
        assert!(
            s.interner.strings.len() < 2100,
            "unused strings are swept: {}",
            s.interner.strings.len()
        );
    }
}
