//! The data model shared by the parsers, the store and the exposition writer.
//!
//! It mirrors the parts of client_model's `MetricFamily` that the text format
//! can carry. Labels are kept as one shared, immutable, name-sorted slice per
//! series so the store's index and the group that owns a series can point at
//! the same allocation instead of copying every label twice.

use std::fmt;
use std::sync::Arc;

/// A label name and its value: one pointer to a shared pair.
///
/// A million stored series repeat a few thousand distinct pairs
/// (`job="batch"`, `host="db-1"`), so the store interns whole pairs and a
/// series' label slice holds 8 bytes per label instead of two fat string
/// pointers (32 bytes). Reads go through `Deref`: `label.name`,
/// `label.value`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label(Arc<LabelPair>);

/// The name and value a [`Label`] points at. Ordered by name, then value.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelPair {
    pub name: Arc<str>,
    pub value: Arc<str>,
}

impl Label {
    pub fn new(name: &str, value: &str) -> Label {
        Label::from_parts(name.into(), value.into())
    }

    /// A label from strings already shared (interned) elsewhere.
    pub fn from_parts(name: Arc<str>, value: Arc<str>) -> Label {
        Label(Arc::new(LabelPair { name, value }))
    }

    /// Points this label at `name`, equal to its own but shared
    /// elsewhere (interned): in place when nothing else holds its pair,
    /// so that adopting a parsed label allocates nothing.
    pub fn share_name(&mut self, name: Arc<str>) {
        debug_assert!(*name == *self.name);
        match Arc::get_mut(&mut self.0) {
            Some(pair) => pair.name = name,
            None => *self = Label::from_parts(name, Arc::clone(&self.value)),
        }
    }

    /// Whether anything but the caller holds this pair: the interner's
    /// test for a pair no series uses any more.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// Whether two labels share one pair (interned), not only equal text.
    pub fn same_pair(&self, other: &Label) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Label {
    type Target = LabelPair;

    fn deref(&self) -> &LabelPair {
        &self.0
    }
}

impl std::borrow::Borrow<LabelPair> for Label {
    fn borrow(&self) -> &LabelPair {
        &self.0
    }
}

/// A label's name and value as borrowed strings: looks a [`Label`] up in a
/// set (`set.get(&("job", "a") as &dyn PairKey)`) with one hash and no
/// allocation, which a restore of a million series does four million times.
pub trait PairKey {
    fn pair(&self) -> (&str, &str);
}

impl PairKey for LabelPair {
    fn pair(&self) -> (&str, &str) {
        (&self.name, &self.value)
    }
}

impl PairKey for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        *self
    }
}

/// Hashes as `LabelPair`'s derived `Hash` does: name, then value.
impl std::hash::Hash for dyn PairKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (name, value) = self.pair();
        name.hash(state);
        value.hash(state);
    }
}

impl PartialEq for dyn PairKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn PairKey + '_ {}

impl<'a> std::borrow::Borrow<dyn PairKey + 'a> for Label {
    fn borrow(&self) -> &(dyn PairKey + 'a) {
        &*self.0
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A shared label set: a grouping key, a group's push-time labels.
pub type Labels = Arc<[Label]>;

/// The label set of one series, sorted by label name once it is in the
/// store. Owned, not shared: nothing else holds a series' slice (the
/// store's index keeps a hash), and an `Arc` header would cost each of a
/// million series 16 bytes.
pub type SeriesLabels = Box<[Label]>;

/// A stored series' labels as exposed: its own labels merged, in name
/// order, with the labels its group gives every series (the grouping key
/// and `instance=""` unless the key has an instance).
///
/// The store keeps a group's labels once, not in each of its series: a
/// grouping key of many pairs would otherwise be copied into every series
/// (see `store::group`). Both sides are sorted by name; the only name they
/// can share is `instance` (a series' own instance where the key has
/// none), and then the series' own wins.
pub fn merged<'a>(own: &'a [Label], shared: &'a [Label]) -> Merged<'a> {
    Merged {
        own,
        shared,
        taken: 0,
    }
}

/// The iterator of [`merged`]: a merge of two name-sorted slices.
#[derive(Clone)]
pub struct Merged<'a> {
    own: &'a [Label],
    shared: &'a [Label],
    /// Shared labels passed so far: the index of the next one.
    taken: usize,
}

/// Where the next label of a [`Merged`] comes from.
pub enum Side {
    Own,
    /// The group's, with its index in the group's labels.
    Shared(usize),
}

impl<'a> Merged<'a> {
    /// How many labels the merge yields: the two sides, less a shared
    /// `instance` the series' own replaces.
    pub fn count_exact(&self) -> usize {
        let instance = |l: &[Label]| l.binary_search_by(|x| (*x.name).cmp("instance")).is_ok();
        let overlap = instance(self.own) && instance(self.shared);
        self.own.len() + self.shared.len() - usize::from(overlap)
    }

    /// The next label and which side it came from.
    pub fn next_with_side(&mut self) -> Option<(&'a Label, Side)> {
        match (self.own.first(), self.shared.first()) {
            (None, None) => None,
            (Some(o), Some(s)) if o.name >= s.name => {
                let at = self.taken;
                self.shared = &self.shared[1..];
                self.taken += 1;
                if o.name == s.name {
                    // The series' own instance replaces the group's.
                    self.own = &self.own[1..];
                    return Some((o, Side::Own));
                }
                Some((s, Side::Shared(at)))
            }
            (Some(o), _) => {
                self.own = &self.own[1..];
                Some((o, Side::Own))
            }
            (None, Some(s)) => {
                let at = self.taken;
                self.shared = &self.shared[1..];
                self.taken += 1;
                Some((s, Side::Shared(at)))
            }
        }
    }

    /// The merged labels in one exactly sized slice.
    pub fn collect_boxed(self) -> SeriesLabels {
        let mut out = Vec::with_capacity(self.count_exact());
        out.extend(self.cloned());
        out.into_boxed_slice()
    }
}

impl<'a> Iterator for Merged<'a> {
    type Item = &'a Label;

    fn next(&mut self) -> Option<&'a Label> {
        self.next_with_side().map(|(l, _)| l)
    }
}

/// Sorts labels by name (names are unique in a label set). Labels already
/// in order (a grouping key, a restored series) cost one pass.
pub fn sort_by_name(labels: &mut [Label]) {
    if labels.windows(2).all(|w| w[0].name <= w[1].name) {
        return;
    }
    if labels.len() <= SORT_BY_KEYS {
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        return;
    }
    // Many labels (a series of thousands): their names are sorted side by
    // side, one indirection per comparison instead of three, then the
    // labels are put in that order.
    let mut keys: Vec<(&str, usize)> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (&*l.name, i))
        .collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let sorted: Vec<Label> = keys.iter().map(|&(_, i)| labels[i].clone()).collect();
    for (slot, l) in labels.iter_mut().zip(sorted) {
        *slot = l;
    }
}

/// Label sets longer than this are sorted through a vector of their
/// names (see [`sort_by_name`]).
const SORT_BY_KEYS: usize = 64;

/// The five metric types of the text exposition format, and the gauge
/// histogram that only protobuf pushes carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Summary,
    Untyped,
    Histogram,
    /// Kept as such for protobuf scrapes and the JSON API; the text format
    /// has no notion of it and shows it as a histogram, as Go's expfmt.
    GaugeHistogram,
}

impl MetricType {
    /// The lower-case keyword used on `# TYPE` lines of the text format.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
            MetricType::Histogram | MetricType::GaugeHistogram => "histogram",
        }
    }

    /// The type's own keyword, distinct for every type: what the snapshot
    /// writes (OpenMetrics' `gaugehistogram` for the gauge histogram).
    pub fn keyword(self) -> &'static str {
        match self {
            MetricType::GaugeHistogram => "gaugehistogram",
            t => t.as_str(),
        }
    }

    /// The name of client_model's enum value (`GAUGE_HISTOGRAM`), as the
    /// JSON API shows types.
    pub fn proto_name(self) -> &'static str {
        match self {
            MetricType::Counter => "COUNTER",
            MetricType::Gauge => "GAUGE",
            MetricType::Summary => "SUMMARY",
            MetricType::Untyped => "UNTYPED",
            MetricType::Histogram => "HISTOGRAM",
            MetricType::GaugeHistogram => "GAUGE_HISTOGRAM",
        }
    }

    /// The type whose [`keyword`](Self::keyword) is `s`.
    pub fn from_keyword(s: &str) -> Option<MetricType> {
        MetricType::ALL.into_iter().find(|t| t.keyword() == s)
    }

    /// Whether its series are histograms (`_bucket`, `_sum`, `_count`).
    pub fn is_histogram(self) -> bool {
        matches!(self, MetricType::Histogram | MetricType::GaugeHistogram)
    }

    /// Every type, in the order of client_model's enum numbers.
    pub const ALL: [MetricType; 6] = [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Summary,
        MetricType::Untyped,
        MetricType::Histogram,
        MetricType::GaugeHistogram,
    ];

    /// The type's number in client_model's `MetricType` enum (protobuf),
    /// also its index in `ALL`.
    pub fn number(self) -> usize {
        match self {
            MetricType::Counter => 0,
            MetricType::Gauge => 1,
            MetricType::Summary => 2,
            MetricType::Untyped => 3,
            MetricType::Histogram => 4,
            MetricType::GaugeHistogram => 5,
        }
    }

    /// Parses a `# TYPE` keyword case-insensitively, as the reference does.
    pub fn parse(s: &str) -> Option<MetricType> {
        match s.to_ascii_lowercase().as_str() {
            "counter" => Some(MetricType::Counter),
            "gauge" => Some(MetricType::Gauge),
            "summary" => Some(MetricType::Summary),
            "untyped" => Some(MetricType::Untyped),
            "histogram" => Some(MetricType::Histogram),
            _ => None,
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value part of one series. Summaries and histograms are boxed: most
/// series are counters and gauges, and an unboxed histogram would make
/// every series pay for its size (72 bytes instead of 16).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Counter(f64),
    Gauge(f64),
    Untyped(f64),
    Summary(Box<Summary>),
    Histogram(Box<Histogram>),
}

impl Value {
    /// An empty value of the given type, filled in sample by sample by the
    /// text parser (a summary or histogram spans several lines).
    pub fn empty(t: MetricType) -> Value {
        match t {
            MetricType::Counter => Value::Counter(0.0),
            MetricType::Gauge => Value::Gauge(0.0),
            MetricType::Untyped => Value::Untyped(0.0),
            MetricType::Summary => Value::Summary(Box::default()),
            MetricType::Histogram | MetricType::GaugeHistogram => Value::Histogram(Box::default()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub sum: f64,
    /// (quantile, value) pairs in the order they were pushed.
    pub quantiles: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub count: u64,
    /// The count of a float histogram (protobuf `sample_count_float`).
    pub count_float: Option<f64>,
    pub sum: f64,
    /// Classic buckets in the order they were pushed.
    pub buckets: Vec<Bucket>,
    /// The native-histogram part, kept exactly as pushed (protobuf only).
    pub native: Option<Box<NativeHistogram>>,
}

impl Histogram {
    /// The count as exposed: the float count of a float histogram.
    pub fn exposed_count(&self) -> f64 {
        self.count_float.unwrap_or(self.count as f64)
    }
}

/// One classic bucket: upper bound and cumulative count.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: u64,
    /// Set for float histograms (protobuf `cumulative_count_float`).
    pub count_float: Option<f64>,
}

impl Bucket {
    pub fn new(upper_bound: f64, count: u64) -> Bucket {
        Bucket {
            upper_bound,
            count,
            count_float: None,
        }
    }

    pub fn exposed_count(&self) -> f64 {
        self.count_float.unwrap_or(self.count as f64)
    }
}

/// A run of consecutive native-histogram buckets: an offset from the end
/// of the previous span and a length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// The sparse, exponential buckets of a native histogram, as client_model
/// carries them. Integer histograms use the deltas, float histograms the
/// counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NativeHistogram {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub zero_count_float: Option<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<Span>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
}

/// One series: its labels and its value (40 bytes: a million series
/// are stored).
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub labels: SeriesLabels,
    pub value: Value,
    /// Exemplars and created timestamps, which only protobuf carries.
    /// Boxed and optional: most series have neither, and a million series
    /// should not each pay for the fields.
    pub extra: Option<Box<Extra>>,
}

impl Metric {
    /// A series with nothing but labels and a value.
    pub fn new(labels: SeriesLabels, value: Value) -> Metric {
        Metric {
            labels,
            value,
            extra: None,
        }
    }

    /// The sample's timestamp, if the push gave one (which refuses it).
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.extra.as_ref().and_then(|e| e.timestamp_ms)
    }
}

/// A point in time as protobuf's `google.protobuf.Timestamp` holds it,
/// kept as pushed so that it goes back out bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

/// A traced sample attached to a counter or a histogram bucket: its labels
/// (a trace ID, typically), its value and when it was observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Box<[Label]>,
    pub value: f64,
    pub timestamp: Option<Timestamp>,
}

/// The parts of a series that the text format cannot carry. The gateway
/// keeps them, writes them to the snapshot and returns them in protobuf
/// scrapes, as the reference (which stores client_model messages whole)
/// does; text scrapes and the JSON API do not show them, nor does the
/// reference's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extra {
    /// `created_timestamp` of a counter, summary or histogram.
    pub created: Option<Timestamp>,
    /// A counter's exemplar.
    pub exemplar: Option<Exemplar>,
    /// Exemplars of classic histogram buckets, by bucket index.
    pub bucket_exemplars: Vec<(u32, Exemplar)>,
    /// A native histogram's exemplars (client_model `Histogram.exemplars`).
    pub exemplars: Vec<Exemplar>,
    /// A sample timestamp. Pushed series never carry one once accepted;
    /// the parsers keep it only so that the push can be refused with the
    /// reference's error, so it lives here, not in every stored series.
    pub timestamp_ms: Option<i64>,
}

impl Extra {
    pub fn with_timestamp(timestamp_ms: i64) -> Box<Extra> {
        Box::new(Extra {
            timestamp_ms: Some(timestamp_ms),
            ..Extra::default()
        })
    }

    pub fn is_empty(&self) -> bool {
        self == &Extra::default()
    }

    /// The exemplar of classic bucket `i`, if it has one.
    pub fn bucket_exemplar(&self, i: usize) -> Option<&Exemplar> {
        self.bucket_exemplars
            .iter()
            .find(|(b, _)| *b as usize == i)
            .map(|(_, e)| e)
    }
}

/// All series of one metric name in one push or one group.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricFamily {
    pub name: Arc<str>,
    pub help: Option<Box<str>>,
    pub metric_type: MetricType,
    pub metrics: Vec<Metric>,
}

/// Is `name` a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`)?
pub fn is_valid_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Which names are allowed: the classic ones, or (with
/// `--push.enable-utf8-names`) any non-empty UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NameScheme {
    #[default]
    Legacy,
    Utf8,
}

impl NameScheme {
    pub fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            NameScheme::Legacy => is_valid_metric_name(name),
            NameScheme::Utf8 => !name.is_empty(),
        }
    }

    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            NameScheme::Legacy => is_valid_label_name(name),
            NameScheme::Utf8 => !name.is_empty(),
        }
    }
}

/// Is `name` a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`)?
pub fn is_valid_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_name_keeps_an_unshared_pair_in_place() {
        let name: Arc<str> = "job".into();
        let mut only = Label::new("job", "j");
        let pair: *const LabelPair = &*only;
        only.share_name(Arc::clone(&name));
        assert!(std::ptr::eq(pair, &*only), "an unshared pair is reused");
        assert!(Arc::ptr_eq(&only.name, &name));
        assert_eq!(&*only.value, "j");

        let mut held = Label::new("job", "j");
        let other = held.clone();
        held.share_name(Arc::clone(&name));
        assert!(
            !held.same_pair(&other),
            "a shared pair is left to its holders"
        );
        assert!(Arc::ptr_eq(&held.name, &name));
        assert!(Arc::ptr_eq(&held.value, &other.value), "the value is kept");
        assert_eq!(*other.name, *"job");
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("a"));
        assert!(is_valid_label_name("_a9"));
        assert!(!is_valid_label_name(""));
        assert!(!is_valid_label_name("9a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name("a-b"));
    }

    #[test]
    fn long_label_sets_sort_by_name() {
        let mut labels: Vec<Label> = (0..500)
            .rev()
            .map(|i| Label::new(&format!("l{i}"), &i.to_string()))
            .collect();
        sort_by_name(&mut labels);
        assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        assert!(labels.iter().all(|l| *l.name == format!("l{}", l.value)));
        assert_eq!(labels.len(), 500);
    }

    #[test]
    fn type_keywords_are_case_insensitive() {
        assert_eq!(MetricType::parse("COUNTER"), Some(MetricType::Counter));
        assert_eq!(MetricType::parse("Histogram"), Some(MetricType::Histogram));
        assert_eq!(MetricType::parse("gauges"), None);
    }
}
