//! One stored group: its families and push times.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::model::{Labels, Metric, MetricType, SeriesLabels, merged};

/// A group's families by name. The names are the index's own
/// (`FamilyIndex` keys), shared: one allocation per name, not one per
/// group that has it.
pub(crate) type FamilyMap = BTreeMap<Arc<str>, Arc<StoredFamily>>;

/// One pushed group. Shared with snapshot writers and scrapes through an
/// `Arc`: the loop changes a group copy-on-write, so a reader keeps the
/// version it started with while pushes go on.
///
/// The copy is cheap by construction, whatever the group holds: the
/// families sit behind their own `Arc` (a failure time or a deadline
/// changes without copying them), and each family behind one more (a
/// push into a shared group copies the map's pointers, never a family's
/// series, lines or HELP).
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(super) id: u64,
    /// The grouping labels plus `instance=""` if absent: the labels of the
    /// group's push-time gauges, and those every series of the group has
    /// besides its own (held here once, not in each series).
    pub(super) time_labels: Labels,
    /// `time_labels` as exposition text, spliced into the stored lines
    /// (`wire::template`).
    pub(super) key_text: Arc<[u8]>,
    pub families: Arc<FamilyMap>,
    pub push_time: Option<Nanos>,
    pub failure_time: Option<Nanos>,
    /// When the group came into being (by a push or a failed push).
    pub created: Nanos,
    /// Its own TTL, from the `Pushgateway-Group-TTL` header; `None`
    /// follows `--push.group-ttl`, zero is never.
    pub ttl: Option<std::time::Duration>,
    /// When it expires, if ever (see `expiry`).
    pub deadline: Option<Nanos>,
}

impl Group {
    /// The grouping labels plus `instance=""` if absent.
    pub(crate) fn time_labels(&self) -> Labels {
        self.time_labels.clone()
    }

    /// [`Group::time_labels`], borrowed: also the labels every series of
    /// the group has besides its own.
    pub(crate) fn time_label_slice(&self) -> &[crate::model::Label] {
        &self.time_labels
    }

    /// The labels of one of the group's series as exposed: its own and
    /// the group's, merged.
    pub(crate) fn series_labels(&self, m: &Metric) -> SeriesLabels {
        merged(&m.labels, &self.time_labels).collect_boxed()
    }

    /// One of the group's series with all its labels, as exposed.
    pub(crate) fn exposed(&self, m: &Metric) -> Metric {
        Metric {
            labels: self.series_labels(m),
            value: m.value.clone(),
            extra: m.extra.clone(),
        }
    }

    /// The group's labels as exposition text, to complete the stored
    /// lines of its families ([`StoredFamily::text`]).
    pub(crate) fn key_text(&self) -> &[u8] {
        &self.key_text
    }

    /// Whether the last change was a success, as the reference's
    /// `last_push_successful`: no failure after the last push.
    pub(crate) fn last_push_successful(&self) -> bool {
        match (self.failure_time, self.push_time) {
            (None, _) => true,
            (Some(f), p) => f <= p.unwrap_or(0),
        }
    }

    /// The time the group's push-time and failure-time gauges were last
    /// set, as the JSON API shows them.
    pub(crate) fn time_family_stamps(&self) -> (Nanos, Nanos) {
        (
            self.push_time.unwrap_or(self.created),
            self.failure_time.unwrap_or(self.created),
        )
    }
}

/// One family of one group.
#[derive(Clone, Debug)]
pub(crate) struct StoredFamily {
    pub help: Option<Box<str>>,
    pub metric_type: MetricType,
    /// Its series, each with its own labels only: the group's apply to
    /// every one ([`Group::series_labels`], [`Group::exposed`]).
    pub metrics: StoredSeries,
    /// Its series' exposition lines, in label order: this group's piece of
    /// the family in a text scrape, rendered once when pushed, with
    /// markers where the group's labels go (`wire::template::expand`).
    pub text: Lines,
    /// When this family was last pushed (shown by the JSON API).
    pub pushed_at: Nanos,
    /// The bytes a scrape writes for it (`text` completed).
    pub exposed: usize,
    /// Its sample lines in the exposition (see `limits`); `u32::MAX` for
    /// more, which no memory holds (each line is at least one byte of
    /// `text`, and a family's text is all in memory at once).
    pub samples: u32,
}

/// A stored family's exposition lines ([`StoredFamily::text`]): inside
/// the family's own block when they are short, as most one-series
/// families' are, in a block of their own when not.
///
/// A family of one short line (`f1 1`, with its marker about 16 bytes)
/// took a heap block of 32 bytes for it, a fifth of what the family
/// cost in all; inline, the family keeps its 128-byte block (its sample
/// count went to 32 bits to make the room).
#[derive(Clone)]
pub(crate) enum Lines {
    Inline { len: u8, bytes: [u8; INLINE_LINES] },
    Heap(Box<[u8]>),
}

/// The most bytes of lines kept inline: what fits beside a length in the
/// 24 bytes the heap variant's tag leaves.
const INLINE_LINES: usize = 22;

impl From<&[u8]> for Lines {
    fn from(text: &[u8]) -> Lines {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE_LINES => {
                let mut bytes = [0; INLINE_LINES];
                bytes[..text.len()].copy_from_slice(text);
                Lines::Inline { len, bytes }
            }
            _ => Lines::Heap(text.into()),
        }
    }
}

impl std::ops::Deref for Lines {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Lines::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Lines::Heap(text) => text,
        }
    }
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// A stored family's series, read as a slice.
///
/// Most families of most pushes hold one series: that one is kept inline,
/// in the family's own allocation, not in a vector of its own (a
/// one-series family took 160 bytes of heap in two blocks, now 128 in
/// one: 300,000 families of a push, 9 MB). A family of more keeps them in
/// a vector of exactly their number (see `prepare_push`).
#[derive(Clone, Debug)]
pub(crate) enum StoredSeries {
    One(Metric),
    Many(Vec<Metric>),
}

impl From<Vec<Metric>> for StoredSeries {
    fn from(mut metrics: Vec<Metric>) -> StoredSeries {
        match (metrics.pop(), metrics.is_empty()) {
            (Some(m), true) => StoredSeries::One(m),
            (Some(m), false) => {
                metrics.push(m);
                StoredSeries::Many(metrics)
            }
            (None, _) => StoredSeries::Many(metrics),
        }
    }
}

impl std::ops::Deref for StoredSeries {
    type Target = [Metric];

    fn deref(&self) -> &[Metric] {
        match self {
            StoredSeries::One(m) => std::slice::from_ref(m),
            StoredSeries::Many(v) => v,
        }
    }
}

impl std::ops::DerefMut for StoredSeries {
    fn deref_mut(&mut self) -> &mut [Metric] {
        match self {
            StoredSeries::One(m) => std::slice::from_mut(m),
            StoredSeries::Many(v) => v,
        }
    }
}

impl<'a> IntoIterator for &'a StoredSeries {
    type Item = &'a Metric;
    type IntoIter = std::slice::Iter<'a, Metric>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut StoredSeries {
    type Item = &'a mut Metric;
    type IntoIter = std::slice::IterMut<'a, Metric>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    /// A parsed family's first vector has room for as many series as make
    /// a stored one-series family's block (`cost::FIRST_SERIES_ROOM`): the
    /// store's block takes its place in the allocator, in the same size
    /// class (16-byte steps, an 8-byte header), with no hole left.
    #[test]
    fn a_first_series_vector_is_a_stored_familys_block() {
        use crate::wire::cost::FIRST_SERIES_ROOM;
        let class = |bytes: usize| (bytes + 8).div_ceil(16);
        // The `Arc`'s two counts and the family.
        let stored = 2 * size_of::<usize>() + size_of::<StoredFamily>();
        assert_eq!(
            class(stored),
            class(FIRST_SERIES_ROOM * size_of::<Metric>())
        );
        assert_eq!(size_of::<StoredSeries>(), size_of::<Metric>(), "inline");
    }

    #[test]
    fn short_lines_are_kept_inline() {
        assert_eq!(size_of::<Lines>(), 24);
        let short = Lines::from(&b"f1 1\n"[..]);
        assert!(matches!(short, Lines::Inline { .. }));
        assert_eq!(&*short, b"f1 1\n");
        let most = [b'x'; INLINE_LINES];
        assert!(matches!(Lines::from(&most[..]), Lines::Inline { .. }));
        let long = [b'x'; INLINE_LINES + 1];
        let lines = Lines::from(&long[..]);
        assert!(matches!(lines, Lines::Heap(_)));
        assert_eq!(&*lines, &long[..]);
        assert!(Lines::from(&b""[..]).is_empty());
    }

    #[test]
    fn one_series_is_kept_inline() {
        let m = |v| Metric::new(Box::new([]), crate::model::Value::Gauge(v));
        let one = StoredSeries::from(vec![m(1.0)]);
        assert!(matches!(one, StoredSeries::One(_)));
        assert_eq!(one.len(), 1);
        let two = StoredSeries::from(vec![m(1.0), m(2.0)]);
        assert!(matches!(&two, StoredSeries::Many(v) if v.len() == 2));
        assert_eq!(two[1].value, crate::model::Value::Gauge(2.0));
        assert!(StoredSeries::from(Vec::new()).is_empty());
    }
}
