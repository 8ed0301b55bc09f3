//! The persistence file format: plain text a person can read and grep.
//!
//! ```text
//! pushgateway-snapshot 2
//! # Written by pushgateway 0.1.0. Format: see README, "Persistence file".
//! group {instance="some_instance",job="some_job"}
//! times 1795578956809069400 -
//! family another_metric gauge 1795578956809069400
//! help Just an example.
//! series {instance="some_instance",job="some_job"} 2398.283
//! family rpc summary 1795578956809069400
//! series {instance="",job="batch"} sum=10 count=5 0.5:1 0.9:2
//! end groups=2 series=2
//! ```
//!
//! Each record is one line starting with a keyword. `times` holds the push
//! and failure times in nanoseconds since the epoch (`-` for never). Labels
//! are escaped as in the exposition format; `help` escapes `\\` and `\n`.
//! Floats are written in Rust's shortest round-trip form (`1e-7`, `NaN`,
//! `inf`, `-0.0`) and counts as integers, so everything comes back bit for
//! bit. The final `end` line, with its counts, tells a complete file from a
//! truncated one.
//!
//! Writing and reading are pure functions over a writer and bytes.

use std::fmt;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use crate::model::{
    Bucket, Histogram, Label, Metric, MetricFamily, MetricType, NativeHistogram, PairKey, Span,
    Summary, Value,
};
use crate::store::{self, Group, GroupKey, Nanos, PushError, Store};
use crate::telemetry::Own;
use crate::wire::exposition;

use super::extras;

/// The first line of every snapshot; the number is the format version.
pub(crate) const MAGIC: &str = "pushgateway-snapshot";
/// Version 2 added the `created`, `exemplar` and `ttl` records and the
/// end record's checksum; version 1 files are read as they are.
pub(crate) const VERSION: u32 = 2;

/// One group as read back from a snapshot.
#[derive(Debug, PartialEq)]
pub(crate) struct RestoredGroup {
    /// Line of the `group` record (in a Go gob file, the group's byte
    /// offset), for error messages.
    pub line: usize,
    pub key: Vec<Label>,
    pub push_time: Option<Nanos>,
    pub failure_time: Option<Nanos>,
    /// The group's own TTL (`Pushgateway-Group-TTL`), if a push set one.
    pub ttl: Option<std::time::Duration>,
    pub families: Vec<MetricFamily>,
    /// When each family was last pushed, by name.
    pub family_times: Vec<(Box<str>, Nanos)>,
    /// Its labels share their pairs already (see `Strings`).
    pub labels_shared: bool,
}

#[derive(Debug, PartialEq)]
pub(crate) struct SnapshotError {
    pub line: usize,
    pub kind: SnapshotErrorKind,
}

#[derive(Debug, PartialEq)]
pub(crate) enum SnapshotErrorKind {
    Empty,
    GoGobFile,
    NotASnapshot,
    FutureVersion(u32),
    NotUtf8,
    UnknownRecord(String),
    OutsideGroup(&'static str),
    OutsideFamily(&'static str),
    OutsideSeries(&'static str),
    Malformed {
        record: &'static str,
        why: String,
    },
    Truncated,
    CountMismatch {
        what: &'static str,
        stated: usize,
        found: usize,
    },
    DataAfterEnd,
    ChecksumMismatch {
        stated: u32,
        computed: u32,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SnapshotErrorKind::*;
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            Empty => f.write_str(
                "the file is empty (a complete snapshot has at least a header and an end line)",
            ),
            GoGobFile => f.write_str(
                "this is a persistence file of the Go Pushgateway (gob format), not a snapshot; \
                 it is imported at start-up, not read as a snapshot",
            ),
            NotASnapshot => write!(
                f,
                "not a pushgateway snapshot (the first line must be \"{MAGIC} {VERSION}\")"
            ),
            FutureVersion(v) => write!(
                f,
                "snapshot format version {v} was written by a newer pushgateway; this one reads version {VERSION}"
            ),
            NotUtf8 => f.write_str("not valid UTF-8"),
            UnknownRecord(r) => write!(f, "unknown record {r:?}"),
            OutsideGroup(r) => write!(f, "{r} record before any group record"),
            OutsideFamily(r) => write!(f, "{r} record before any family record"),
            OutsideSeries(r) => write!(f, "{r} record before any series record of its family"),
            Malformed { record, why } => write!(f, "malformed {record} record: {why}"),
            Truncated => f.write_str("the file ends without its end record: it is truncated"),
            CountMismatch {
                what,
                stated,
                found,
            } => {
                write!(
                    f,
                    "end record states {stated} {what} but the file holds {found}"
                )
            }
            DataAfterEnd => f.write_str("data after the end record"),
            ChecksumMismatch { stated, computed } => write!(
                f,
                "the end record states crc32={stated:08x} but the file before it hashes to \
                 {computed:08x}: the file is damaged (a changed byte, or a partial copy)"
            ),
        }
    }
}

impl std::error::Error for SnapshotError {}

impl RestoredGroup {
    /// Puts this group back into `store`, with its recorded times, under
    /// the same consistency rules as a push.
    pub(crate) fn restore_into(self, store: &mut Store) -> Result<(), PushError> {
        self.prepare().apply(store)
    }

    /// The part of a restore that needs no store (labels, rendering), so
    /// it can run on another thread than the one filling the store.
    pub(crate) fn prepare(self) -> PreparedGroup {
        let push = store::prepare_push(self.key.into(), self.families, true).map(|mut push| {
            push.ttl = self.ttl;
            push.labels_shared = self.labels_shared;
            for f in &mut push.families {
                f.pushed_at = self
                    .family_times
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map(|(_, t)| *t);
            }
            push
        });
        PreparedGroup {
            push,
            push_time: self.push_time,
            failure_time: self.failure_time,
        }
    }
}

/// A restored group, prepared; [`PreparedGroup::apply`] puts it back.
pub(crate) struct PreparedGroup {
    push: Result<store::PreparedPush, PushError>,
    push_time: Option<Nanos>,
    failure_time: Option<Nanos>,
}

impl PreparedGroup {
    pub(crate) fn apply(self, store: &mut Store) -> Result<(), PushError> {
        store.restore_group(self.push?, self.push_time, self.failure_time, &Own)
    }
}

/// Whether `data`, which does not start with [`MAGIC`], is rather a Go
/// Pushgateway gob file: gob streams start with a length byte and type
/// definitions, never with printable text like ours.
pub(crate) fn looks_gob(data: &[u8]) -> bool {
    data.len() > 2 && !data[..16.min(data.len())].iter().all(|b| b.is_ascii())
}

/// A writer that hashes what goes through it, for the end record's
/// checksum.
struct Checksummed<'a> {
    inner: &'a mut dyn Write,
    crc: crc32fast::Hasher,
}

impl Write for Checksummed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the snapshot of `groups` to `out`. The end record carries the
/// CRC-32 of every byte before it.
pub(crate) fn write(out: &mut dyn Write, groups: &[(GroupKey, Arc<Group>)]) -> io::Result<()> {
    let mut out = Checksummed {
        inner: out,
        crc: crc32fast::Hasher::new(),
    };
    let (group_count, series) = write_groups(&mut out, groups)?;
    let crc = out.crc.finalize();
    writeln!(
        out.inner,
        "end groups={group_count} series={series} crc32={crc:08x}"
    )
}

/// Everything but the end record; returns the group and series counts.
fn write_groups(
    out: &mut dyn Write,
    groups: &[(GroupKey, Arc<Group>)],
) -> io::Result<(usize, usize)> {
    writeln!(out, "{MAGIC} {VERSION}")?;
    writeln!(
        out,
        "# Written by pushgateway {}. Format: see README, \"Persistence file\".",
        env!("CARGO_PKG_VERSION")
    )?;
    let mut series = 0usize;
    let mut line = Vec::with_capacity(256);
    for (key, group) in groups {
        line.clear();
        line.extend_from_slice(b"group ");
        write_labels(&mut line, key);
        line.extend_from_slice(b"\ntimes ");
        write_time(&mut line, group.push_time);
        line.push(b' ');
        write_time(&mut line, group.failure_time);
        line.push(b'\n');
        if let Some(ttl) = group.ttl {
            line.extend_from_slice(format!("ttl {}\n", ttl.as_nanos()).as_bytes());
        }
        out.write_all(&line)?;
        for (name, fam) in &group.families {
            line.clear();
            line.extend_from_slice(b"family ");
            write_name(&mut line, name);
            line.push(b' ');
            line.extend_from_slice(fam.metric_type.as_str().as_bytes());
            line.push(b' ');
            line.extend_from_slice(fam.pushed_at.to_string().as_bytes());
            line.push(b'\n');
            if let Some(help) = &fam.help {
                line.extend_from_slice(b"help ");
                for &b in help.as_bytes() {
                    match b {
                        b'\\' => line.extend_from_slice(b"\\\\"),
                        b'\n' => line.extend_from_slice(b"\\n"),
                        _ => line.push(b),
                    }
                }
                line.push(b'\n');
            }
            out.write_all(&line)?;
            for m in &fam.metrics {
                line.clear();
                write_series(&mut line, m);
                extras::write(&mut line, m);
                out.write_all(&line)?;
                series += 1;
            }
        }
    }
    Ok((groups.len(), series))
}

fn write_time(out: &mut Vec<u8>, t: Option<Nanos>) {
    match t {
        Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
        None => out.push(b'-'),
    }
}

pub(super) fn write_f64(out: &mut Vec<u8>, f: f64) {
    out.extend_from_slice(format!("{f:?}").as_bytes());
}

pub(super) fn write_labels(out: &mut Vec<u8>, labels: &[Label]) {
    out.push(b'{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_name(out, &l.name);
        out.extend_from_slice(b"=\"");
        exposition::escape_into(out, &l.value, true);
        out.push(b'"');
    }
    out.push(b'}');
}

fn write_series(out: &mut Vec<u8>, m: &Metric) {
    out.extend_from_slice(b"series ");
    write_labels(out, &m.labels);
    out.push(b' ');
    match &m.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => write_f64(out, *v),
        Value::Summary(s) => {
            write_sum_count(out, s.sum, s.count);
            for &(q, v) in &s.quantiles {
                out.push(b' ');
                write_f64(out, q);
                out.push(b':');
                write_f64(out, v);
            }
        }
        Value::Histogram(h) => {
            write_sum_count(out, h.sum, h.count);
            if let Some(f) = h.count_float {
                out.extend_from_slice(b" countf=");
                write_f64(out, f);
            }
            for b in &h.buckets {
                out.push(b' ');
                write_f64(out, b.upper_bound);
                out.extend_from_slice(format!(":{}", b.count).as_bytes());
                if let Some(f) = b.count_float {
                    out.push(b':');
                    write_f64(out, f);
                }
            }
            if let Some(n) = &h.native {
                write_native(out, n);
            }
        }
    }
    out.push(b'\n');
}

fn write_native(out: &mut Vec<u8>, n: &NativeHistogram) {
    out.extend_from_slice(format!(" schema={} zt=", n.schema).as_bytes());
    write_f64(out, n.zero_threshold);
    out.extend_from_slice(format!(" zc={}", n.zero_count).as_bytes());
    if let Some(f) = n.zero_count_float {
        out.extend_from_slice(b" zcf=");
        write_f64(out, f);
    }
    let span = |s: &Span| format!("{}:{}", s.offset, s.length);
    let float = |f: &f64| format!("{f:?}");
    write_list(out, "nspans", &n.negative_spans, span);
    write_list(out, "ndeltas", &n.negative_deltas, i64::to_string);
    write_list(out, "ncounts", &n.negative_counts, float);
    write_list(out, "pspans", &n.positive_spans, span);
    write_list(out, "pdeltas", &n.positive_deltas, i64::to_string);
    write_list(out, "pcounts", &n.positive_counts, float);
}

/// ` key=a,b,c`, or nothing for an empty list.
fn write_list<T>(out: &mut Vec<u8>, key: &str, items: &[T], show: impl Fn(&T) -> String) {
    if !items.is_empty() {
        let list: Vec<String> = items.iter().map(show).collect();
        out.extend_from_slice(format!(" {key}={}", list.join(",")).as_bytes());
    }
}

/// The `sum=… count=…` that summaries and histograms start with.
fn write_sum_count(out: &mut Vec<u8>, sum: f64, count: u64) {
    out.extend_from_slice(b"sum=");
    write_f64(out, sum);
    out.extend_from_slice(format!(" count={count}").as_bytes());
}

/// Reads a whole snapshot.
/// Every group at once: for tests and the fuzz checks; a restore uses
/// [`read_each`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn read(data: &[u8]) -> Result<Vec<RestoredGroup>, SnapshotError> {
    let mut out = Vec::new();
    read_each(data, &mut Strings::default(), |g| {
        out.push(g);
        true
    })?;
    Ok(out)
}

/// Reads a snapshot, handing each group to `each` as soon as it is
/// complete, so a restore can apply groups while the rest is parsed and
/// never holds the parsed form of the whole file. `each` returns false to
/// stop (its consumer failed); the count of groups handed over is returned.
/// Labels are shared through `strings`, which the caller can hand to the
/// store's interner afterwards. A restore reads by stretches on several
/// threads instead (`persist::restore`); this is the one-threaded reference
/// for tests and the fuzz checks.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn read_each(
    data: &[u8],
    strings: &mut Strings,
    mut each: impl FnMut(RestoredGroup) -> bool,
) -> Result<usize, SnapshotError> {
    let body = body_start(data)?;
    std::str::from_utf8(data).map_err(|e| not_utf8(data, e.valid_up_to()))?;
    verify_checksum(data)?;
    let stretch = read_stretch(data, body..data.len(), strings, &mut |mut g| {
        g.line += 1;
        each(g)
    })
    .map_err(|mut e| {
        e.line += 1;
        e
    })?;
    finish(data, &[(body..data.len(), stretch)])
}

/// Where the records start: after the first line, once it is known to be
/// a snapshot header of a version this reader knows.
pub(crate) fn body_start(data: &[u8]) -> Result<usize, SnapshotError> {
    let err = |kind| SnapshotError { line: 1, kind };
    if data.is_empty() {
        return Err(err(SnapshotErrorKind::Empty));
    }
    if !data.starts_with(MAGIC.as_bytes()) {
        // Go's gob streams start with a length byte and type definitions,
        // never with printable text like ours.
        let kind = if looks_gob(data) {
            SnapshotErrorKind::GoGobFile
        } else {
            SnapshotErrorKind::NotASnapshot
        };
        return Err(err(kind));
    }
    let Some(end) = data.iter().position(|b| *b == b'\n') else {
        return Err(err(SnapshotErrorKind::Truncated));
    };
    let first = std::str::from_utf8(&data[..end]).map_err(|e| not_utf8(data, e.valid_up_to()))?;
    match first[MAGIC.len()..].trim().parse::<u32>() {
        Ok(1 | VERSION) => Ok(end + 1),
        Ok(v) if v > VERSION => Err(err(SnapshotErrorKind::FutureVersion(v))),
        _ => Err(err(SnapshotErrorKind::NotASnapshot)),
    }
}

fn not_utf8(data: &[u8], valid_up_to: usize) -> SnapshotError {
    SnapshotError {
        line: lines_before(data, valid_up_to) + 1,
        kind: SnapshotErrorKind::NotUtf8,
    }
}

/// How many lines end before byte `pos`.
pub(crate) fn lines_before(data: &[u8], pos: usize) -> usize {
    data[..pos].iter().filter(|b| **b == b'\n').count()
}

/// The records from `body` on, cut into at most `n` stretches of whole
/// groups (each but the first starts at a `group` record), to be read on
/// `n` threads. Small files are one stretch.
pub(crate) fn cut(data: &[u8], body: usize, n: usize) -> Vec<Range<usize>> {
    const MIN_STRETCH: usize = 1 << 20;
    let n = n.min((data.len() - body) / MIN_STRETCH).max(1);
    let mut starts = vec![body];
    for k in 1..n {
        let target = body + (data.len() - body) * k / n;
        let from = target.max(*starts.last().unwrap_or(&body));
        let next = data[from..]
            .windows(7)
            .position(|w| w == b"\ngroup ")
            .map(|i| from + i + 1);
        match next {
            Some(at) if at > *starts.last().unwrap_or(&body) => starts.push(at),
            _ => break,
        }
    }
    let mut ends: Vec<usize> = starts[1..].to_vec();
    ends.push(data.len());
    starts.into_iter().zip(ends).map(|(a, b)| a..b).collect()
}

/// What one stretch of a snapshot held.
pub(crate) struct Stretch {
    /// Groups handed to `each`.
    pub groups: usize,
    series: usize,
    end: Option<EndRecord>,
    lines: usize,
    /// `each` asked to stop.
    stopped: bool,
}

impl Stretch {
    fn stopped(groups: usize) -> Stretch {
        Stretch {
            groups,
            series: 0,
            end: None,
            lines: 0,
            stopped: true,
        }
    }
}

/// The end record: its line (in its stretch) and the counts it states.
struct EndRecord {
    line: usize,
    groups: usize,
    series: usize,
}

/// Reads the records of `range` of `data`, whole lines: UTF-8 checked,
/// lines counted from 1 at the stretch's start (see [`lines_before`]).
pub(crate) fn read_stretch(
    data: &[u8],
    range: Range<usize>,
    strings: &mut Strings,
    each: &mut dyn FnMut(RestoredGroup) -> bool,
) -> Result<Stretch, SnapshotError> {
    let bytes = &data[range];
    let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, e.valid_up_to()))?;
    read_records(text, 1, strings, each)
}

/// Checks the stretches of a whole file, read in order: the end record
/// closes the last one and states the right counts. Lines in `stretches`
/// count from their stretch's start. Returns the groups read.
pub(crate) fn finish(
    data: &[u8],
    stretches: &[(Range<usize>, Stretch)],
) -> Result<usize, SnapshotError> {
    let line = |range: &Range<usize>, rel: usize| lines_before(data, range.start) + rel;
    let groups = stretches.iter().map(|(_, s)| s.groups).sum();
    let series = stretches.iter().map(|(_, s)| s.series).sum();
    if stretches.iter().any(|(_, s)| s.stopped) {
        // Its reader's consumer failed, and reports why.
        return Ok(groups);
    }
    let last = stretches.len().saturating_sub(1);
    for (i, (range, s)) in stretches.iter().enumerate() {
        match &s.end {
            Some(end) if i < last => {
                let kind = SnapshotErrorKind::DataAfterEnd;
                return Err(SnapshotError {
                    line: line(range, end.line + 1),
                    kind,
                });
            }
            Some(end) if i == last => {
                for (what, stated, found) in [
                    ("groups", end.groups, groups),
                    ("series", end.series, series),
                ] {
                    if stated != found {
                        let kind = SnapshotErrorKind::CountMismatch {
                            what,
                            stated,
                            found,
                        };
                        return Err(SnapshotError {
                            line: line(range, end.line),
                            kind,
                        });
                    }
                }
                return Ok(groups);
            }
            _ => {}
        }
    }
    // No end record: the file stops at the last line of the last stretch.
    let last_line = stretches
        .last()
        .map_or(1, |(range, s)| line(range, s.lines.max(1)));
    Err(SnapshotError {
        line: last_line,
        kind: SnapshotErrorKind::Truncated,
    })
}

/// Reads the records of `text`, whole lines, the first of which is line
/// `first_line`: whole groups, and the end record only last.
fn read_records(
    text: &str,
    first_line: usize,
    strings: &mut Strings,
    each: &mut dyn FnMut(RestoredGroup) -> bool,
) -> Result<Stretch, SnapshotError> {
    let err = |line: usize, kind| SnapshotError { line, kind };
    // The group being read (at most one); `done` counts those handed over.
    let mut groups: Vec<RestoredGroup> = Vec::new();
    let mut done = 0usize;
    let mut series_total = 0usize;
    let mut end = None;
    let mut lines = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let n = first_line + i;
        lines = i + 1;
        let Some(line) = raw.strip_suffix('\n') else {
            return Err(err(n, SnapshotErrorKind::Truncated));
        };
        if end.is_some() {
            return Err(err(n, SnapshotErrorKind::DataAfterEnd));
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (record, rest) = line.split_once(' ').unwrap_or((line, ""));
        let malformed = |record: &'static str, why: String| {
            err(n, SnapshotErrorKind::Malformed { record, why })
        };
        match record {
            "group" => {
                let (mut key, tail) =
                    parse_labels_shared(rest, strings).map_err(|why| malformed("group", why))?;
                if !tail.is_empty() {
                    return Err(malformed(
                        "group",
                        format!("unexpected {tail:?} after the labels"),
                    ));
                }
                crate::model::sort_by_name(&mut key);
                if key.windows(2).any(|w| w[0].name == w[1].name) {
                    return Err(malformed("group", "a label name appears twice".into()));
                }
                if !key.iter().any(|l| &*l.name == "job" && !l.value.is_empty()) {
                    return Err(malformed(
                        "group",
                        "the grouping key needs a non-empty job label".into(),
                    ));
                }
                if let Some(prev) = groups.pop() {
                    done += 1;
                    if !each(prev) {
                        return Ok(Stretch::stopped(done));
                    }
                }
                groups.push(RestoredGroup {
                    line: n,
                    key,
                    push_time: None,
                    failure_time: None,
                    ttl: None,
                    families: Vec::new(),
                    family_times: Vec::new(),
                    labels_shared: true,
                });
            }
            "ttl" => {
                let g = groups
                    .last_mut()
                    .ok_or(err(n, SnapshotErrorKind::OutsideGroup("ttl")))?;
                let nanos: u64 = rest.parse().map_err(|_| {
                    malformed("ttl", format!("{rest:?} is not a duration in nanoseconds"))
                })?;
                g.ttl = Some(std::time::Duration::from_nanos(nanos));
            }
            "times" => {
                let g = groups
                    .last_mut()
                    .ok_or(err(n, SnapshotErrorKind::OutsideGroup("times")))?;
                let mut parts = rest.split(' ');
                let mut time = || -> Result<Option<Nanos>, SnapshotError> {
                    match parts.next() {
                        Some("-") => Ok(None),
                        Some(t) => t.parse().map(Some).map_err(|_| {
                            malformed("times", format!("{t:?} is not a time in nanoseconds"))
                        }),
                        None => Err(malformed("times", "expected two times".into())),
                    }
                };
                g.push_time = time()?;
                g.failure_time = time()?;
            }
            "family" => {
                let g = groups
                    .last_mut()
                    .ok_or(err(n, SnapshotErrorKind::OutsideGroup("family")))?;
                let (name, after) = read_name(rest).map_err(|why| malformed("family", why))?;
                let mut parts = after.trim_start_matches(' ').split(' ');
                let name = &*name;
                let (Some(t), stamp, None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(malformed(
                        "family",
                        "expected a name, a type and a push time".into(),
                    ));
                };
                if let Some(stamp) = stamp {
                    let stamp: Nanos = stamp.parse().map_err(|_| {
                        malformed("family", format!("{stamp:?} is not a time in nanoseconds"))
                    })?;
                    g.family_times.push((name.into(), stamp));
                }
                let metric_type = MetricType::parse(t)
                    .ok_or_else(|| malformed("family", format!("unknown type {t:?}")))?;
                if name.is_empty() {
                    return Err(malformed("family", "empty metric name".into()));
                }
                if g.families.iter().any(|f| &*f.name == name) {
                    return Err(malformed(
                        "family",
                        format!("{name:?} appears twice in this group"),
                    ));
                }
                g.families.push(MetricFamily {
                    name: name.into(),
                    help: None,
                    metric_type,
                    metrics: Vec::new(),
                });
            }
            "help" => {
                let fam = last_family(&mut groups)
                    .ok_or(err(n, SnapshotErrorKind::OutsideFamily("help")))?;
                fam.help = Some(
                    unescape_help(rest)
                        .map_err(|why| malformed("help", why))?
                        .into(),
                );
            }
            "series" => {
                let fam = last_family(&mut groups)
                    .ok_or(err(n, SnapshotErrorKind::OutsideFamily("series")))?;
                let (labels, tail) =
                    parse_labels_shared(rest, strings).map_err(|why| malformed("series", why))?;
                let value = parse_value(fam.metric_type, tail.trim_start())
                    .map_err(|why| malformed("series", why))?;
                fam.metrics.push(Metric::new(labels.into(), value));
                series_total += 1;
            }
            "created" | "exemplar" => {
                let record = if record == "created" {
                    "created"
                } else {
                    "exemplar"
                };
                let m = last_family(&mut groups)
                    .and_then(|f| f.metrics.last_mut())
                    .ok_or(err(n, SnapshotErrorKind::OutsideSeries(record)))?;
                let read = if record == "created" {
                    extras::read_created
                } else {
                    extras::read_exemplar
                };
                read(m, rest).map_err(|why| malformed(record, why))?;
            }
            "end" => {
                let mut stated_groups = None;
                let mut stated_series = None;
                for part in rest.split(' ') {
                    match part.split_once('=') {
                        Some(("groups", v)) => stated_groups = v.parse().ok(),
                        Some(("series", v)) => stated_series = v.parse().ok(),
                        // Verified before parsing began (verify_checksum).
                        Some(("crc32", _)) => {}
                        _ => return Err(malformed("end", format!("unexpected {part:?}"))),
                    }
                }
                let stated = |what, v: Option<usize>| {
                    v.ok_or_else(|| malformed("end", format!("missing {what}=")))
                };
                end = Some(EndRecord {
                    line: n,
                    groups: stated("groups", stated_groups)?,
                    series: stated("series", stated_series)?,
                });
            }
            other => return Err(err(n, SnapshotErrorKind::UnknownRecord(other.to_owned()))),
        }
    }
    for g in groups {
        done += 1;
        if !each(g) {
            return Ok(Stretch::stopped(done));
        }
    }
    Ok(Stretch {
        groups: done,
        series: series_total,
        end,
        lines,
        stopped: false,
    })
}

/// Checks the end record's CRC-32 before anything is parsed, so that a
/// damaged file (a flipped bit, a half-copied file) is reported as damaged
/// rather than as whatever the damage happens to look like. Only this
/// version has the checksum: version 1 files have none, and a future
/// version is reported as such by the parser, as is a file without an end
/// record (truncated).
pub(crate) fn verify_checksum(data: &[u8]) -> Result<(), SnapshotError> {
    if !data.starts_with(format!("{MAGIC} {VERSION}\n").as_bytes()) {
        return Ok(());
    }
    let Some(body) = data.strip_suffix(b"\n") else {
        return Ok(());
    };
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let Some(end) = body[start..].strip_prefix(b"end ") else {
        return Ok(());
    };
    let line = body.iter().filter(|b| **b == b'\n').count() + 1;
    let stated = end
        .split(|b| *b == b' ')
        .find_map(|part| part.strip_prefix(b"crc32="))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(|hex| u32::from_str_radix(hex, 16).ok());
    let Some(stated) = stated else {
        let why = "missing crc32= (every version 2 file has one)".into();
        let kind = SnapshotErrorKind::Malformed { record: "end", why };
        return Err(SnapshotError { line, kind });
    };
    let computed = crc32fast::hash(&data[..start]);
    if stated != computed {
        let kind = SnapshotErrorKind::ChecksumMismatch { stated, computed };
        return Err(SnapshotError { line, kind });
    }
    Ok(())
}

fn last_family(groups: &mut [RestoredGroup]) -> Option<&mut MetricFamily> {
    groups.last_mut()?.families.last_mut()
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => {
                return Err(format!(
                    "invalid escape \\{}",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// Parses `{a="b",c="d"}` at the start of `s`; returns the labels and the
/// rest of the line.
/// A name at the start of `s`: classic characters as they are, anything
/// else quoted and escaped. Returns the name and the rest.
fn read_name(s: &str) -> Result<(std::borrow::Cow<'_, str>, &str), String> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        return Ok((s[..end].into(), &s[end..]));
    };
    let mut name = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((name.into(), &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => name.push('\\'),
                Some((_, '"')) => name.push('"'),
                Some((_, 'n')) => name.push('\n'),
                _ => return Err("invalid escape in a quoted name".into()),
            },
            c => name.push(c),
        }
    }
    Err("unterminated quoted name".into())
}

/// Writes a name plainly when it is a classic one, else quoted.
fn write_name(out: &mut Vec<u8>, name: &str) {
    if crate::model::is_valid_metric_name(name) {
        out.extend_from_slice(name.as_bytes());
        return;
    }
    out.push(b'"');
    exposition::escape_into(out, name, true);
    out.push(b'"');
}

pub(super) fn parse_labels(s: &str) -> Result<(Vec<Label>, &str), String> {
    parse_labels_shared(s, &mut Strings::default())
}

/// Labels already seen in this file, shared instead of allocated again:
/// a snapshot repeats them on every series (`job`, one `instance` per
/// group, one value per shard), and a restore of a million series
/// otherwise spends its time in the allocator. Pairs are shared whole, as
/// the store's interner shares them, so a restored store has the layout of
/// a filled one.
#[derive(Default)]
pub(crate) struct Strings {
    strings: std::collections::HashSet<Arc<str>>,
    pairs: std::collections::HashSet<Label>,
    /// The labels of the last series read, by position: most series
    /// repeat most of the previous one's (the grouping labels, a host),
    /// and comparing is cheaper than hashing.
    recent: Vec<Label>,
}

impl Strings {
    /// Past this many distinct strings (or pairs) the sets start over, so
    /// a file of unique values does not keep a second copy of them all.
    const MAX: usize = 1 << 16;

    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return Arc::clone(shared);
        }
        if self.strings.len() >= Self::MAX {
            self.strings.clear();
        }
        let new: Arc<str> = s.into();
        self.strings.insert(Arc::clone(&new));
        new
    }

    fn label(&mut self, name: &str, value: &str) -> Label {
        if let Some(shared) = self.pairs.get(&(name, value) as &dyn PairKey) {
            return shared.clone();
        }
        if self.pairs.len() >= Self::MAX {
            self.pairs.clear();
        }
        let new = Label::from_parts(self.get(name), self.get(value));
        self.pairs.insert(new.clone());
        new
    }

    /// [`Strings::label`] for the label at `position` in its series.
    fn label_at(&mut self, position: usize, name: &str, value: &str) -> Label {
        if let Some(l) = self.recent.get(position)
            && *l.name == *name
            && *l.value == *value
        {
            return l.clone();
        }
        let l = self.label(name, value);
        match self.recent.get_mut(position) {
            Some(slot) => *slot = l.clone(),
            None => self.recent.push(l.clone()),
        }
        l
    }

    /// The labels shared so far, for the store's interner to adopt.
    pub(crate) fn into_labels(self) -> impl Iterator<Item = Label> {
        self.pairs.into_iter()
    }
}

/// [`parse_labels`] sharing strings through `strings`.
pub(super) fn parse_labels_shared<'a>(
    s: &'a str,
    strings: &mut Strings,
) -> Result<(Vec<Label>, &'a str), String> {
    let mut rest = s.strip_prefix('{').ok_or("expected '{'")?;
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('}') {
        return Ok((labels, r));
    }
    loop {
        let (name, after) = read_name(rest)?;
        let name = &*name;
        if name.is_empty() {
            return Err("empty label name".into());
        }
        rest = after.strip_prefix("=\"").ok_or("expected name=\"value\"")?;
        // Most values hold no escapes: take them as they are.
        if let Some(end) = rest
            .find(['"', '\\'])
            .filter(|&i| rest.as_bytes()[i] == b'"')
        {
            let value = &rest[..end];
            labels.push(strings.label_at(labels.len(), name, value));
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            } else if let Some(r) = rest.strip_prefix('}') {
                return Ok((labels, r));
            }
            return Err("expected ',' or '}' after a label".into());
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err(format!("invalid escape in value of label {name:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push(strings.label_at(labels.len(), name, &value));
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        } else {
            return Err("expected ',' or '}' after a label".into());
        }
    }
}

pub(super) fn parse_f64(s: &str) -> Result<f64, String> {
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn parse_value(t: MetricType, s: &str) -> Result<Value, String> {
    match t {
        MetricType::Counter => Ok(Value::Counter(parse_f64(s)?)),
        MetricType::Gauge => Ok(Value::Gauge(parse_f64(s)?)),
        MetricType::Untyped => Ok(Value::Untyped(parse_f64(s)?)),
        MetricType::Summary | MetricType::Histogram => {
            let mut parts = s.split(' ');
            let sum = parts
                .next()
                .and_then(|p| p.strip_prefix("sum="))
                .ok_or("expected sum=")?;
            let sum = parse_f64(sum)?;
            let count = parts
                .next()
                .and_then(|p| p.strip_prefix("count="))
                .ok_or("expected count=")?;
            let count: u64 = count
                .parse()
                .map_err(|_| format!("{count:?} is not a count"))?;
            if t == MetricType::Summary {
                let mut quantiles = Vec::new();
                for p in parts {
                    let (q, v) = p
                        .split_once(':')
                        .ok_or_else(|| format!("expected quantile:value, got {p:?}"))?;
                    quantiles.push((parse_f64(q)?, parse_f64(v)?));
                }
                return Ok(Value::Summary(Box::new(Summary {
                    count,
                    sum,
                    quantiles,
                })));
            }
            let mut h = Histogram {
                count,
                sum,
                ..Histogram::default()
            };
            for p in parts {
                if let Some((key, v)) = p.split_once('=') {
                    read_histogram_field(&mut h, key, v)?;
                    continue;
                }
                let mut fields = p.split(':');
                let (Some(le), Some(c), f, None) =
                    (fields.next(), fields.next(), fields.next(), fields.next())
                else {
                    return Err(format!("expected bound:count, got {p:?}"));
                };
                h.buckets.push(Bucket {
                    upper_bound: parse_f64(le)?,
                    count: c.parse().map_err(|_| format!("{c:?} is not a count"))?,
                    count_float: f.map(parse_f64).transpose()?,
                });
            }
            Ok(Value::Histogram(Box::new(h)))
        }
    }
}

fn read_histogram_field(h: &mut Histogram, key: &str, v: &str) -> Result<(), String> {
    fn list<T>(v: &str, f: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
        v.split(',').map(f).collect()
    }
    let int = |x: &str| {
        x.parse::<i64>()
            .map_err(|_| format!("{x:?} is not an integer"))
    };
    let span = |x: &str| -> Result<Span, String> {
        let (o, l) = x
            .split_once(':')
            .ok_or_else(|| format!("expected offset:length, got {x:?}"))?;
        Ok(Span {
            offset: o.parse().map_err(|_| format!("{o:?} is not an offset"))?,
            length: l.parse().map_err(|_| format!("{l:?} is not a length"))?,
        })
    };
    if key == "countf" {
        h.count_float = Some(parse_f64(v)?);
        return Ok(());
    }
    let n = h.native.get_or_insert_with(Box::default);
    match key {
        "schema" => n.schema = v.parse().map_err(|_| format!("{v:?} is not a schema"))?,
        "zt" => n.zero_threshold = parse_f64(v)?,
        "zc" => n.zero_count = v.parse().map_err(|_| format!("{v:?} is not a count"))?,
        "zcf" => n.zero_count_float = Some(parse_f64(v)?),
        "nspans" => n.negative_spans = list(v, span)?,
        "ndeltas" => n.negative_deltas = list(v, int)?,
        "ncounts" => n.negative_counts = list(v, parse_f64)?,
        "pspans" => n.positive_spans = list(v, span)?,
        "pdeltas" => n.positive_deltas = list(v, int)?,
        "pcounts" => n.positive_counts = list(v, parse_f64)?,
        other => return Err(format!("unknown histogram field {other:?}")),
    }
    Ok(())
}

/// `text` with its end record's checksum recomputed, as after a
/// deliberate edit: what is left to find is the edit itself.
#[cfg(test)]
pub(super) fn reseal(text: &str) -> String {
    let start = text.trim_end().rfind('\n').unwrap() + 1;
    let (body, end) = text.split_at(start);
    let end = end.split(" crc32=").next().unwrap().trim_end();
    format!(
        "{body}{end} crc32={:08x}\n",
        crc32fast::hash(body.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, prepare_push};
    use crate::telemetry::Own;

    fn store_with(pushes: &[(&[(&str, &str)], &str)]) -> Store {
        let mut store = Store::new();
        for (i, (key, body)) in pushes.iter().enumerate() {
            let mut key: Vec<Label> = key.iter().map(|(n, v)| Label::new(n, v)).collect();
            key.sort();
            let fams = crate::wire::text_format::parse_with(
                body.as_bytes(),
                crate::model::NameScheme::Utf8,
            )
            .unwrap();
            let push = prepare_push(key.into(), fams, true).unwrap();
            store.check(&push, &Own).unwrap();
            store.apply(push, 1_700_000_000_123_456_789 + i as i64);
        }
        store
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let store = store_with(&[(&[("job", "a")], "m 1\nn 2\n")]);
        let mut buf = Vec::new();
        write(&mut buf, &store.snapshot()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(reseal(&text), text, "reseal must not change a good file");
        let flipped = text.replacen("} 2.0", "} 3.0", 1);
        let e = read(flipped.as_bytes()).unwrap_err();
        assert!(
            matches!(e.kind, SnapshotErrorKind::ChecksumMismatch { .. }),
            "{e}"
        );
        assert_eq!(e.line, text.lines().count(), "{e}");
        assert!(e.to_string().contains("damaged"), "{e}");
        let unsealed = text.split(" crc32=").next().unwrap().to_owned() + "\n";
        let e = read(unsealed.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("missing crc32="), "{e}");
        let bad_hex = text.replacen(" crc32=", " crc32=zz", 1);
        assert!(read(bad_hex.as_bytes()).is_err());
    }

    fn round_trip(store: &Store) -> (Vec<u8>, Store) {
        let mut buf = Vec::new();
        write(&mut buf, &store.snapshot()).unwrap();
        let groups =
            read(&buf).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&buf)));
        let mut back = Store::new();
        for g in groups {
            g.restore_into(&mut back).unwrap();
        }
        (buf, back)
    }

    #[test]
    fn everything_round_trips_exactly() {
        let store = store_with(&[
            (
                &[("job", "a")],
                "# HELP c Counter \\\\ with\\nnewline.\n# TYPE c counter\nc{l=\"q\\\"b\\\\s\\nn é\"} 1e-7\n",
            ),
            (
                &[("job", "b"), ("instance", "i")],
                "# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum -0\ns_count 18446744073709551615\n# TYPE h histogram\n# HELP h \nh_bucket{le=\"0.1\"} 3\nh_sum +Inf\nh_count 3\n",
            ),
            (&[("job", "c")], ""),
            (&[("job", "d")], "g -Inf\nu 123456789.123\n"),
            (
                &[("job", "e")],
                "# HELP \"my metric.x\" H.\n{\"my metric.x\",\"a \\\"b\\\"\"=\"1\"} 1\n",
            ),
        ]);
        let (text, back) = round_trip(&store);
        let mut again = Vec::new();
        write(&mut again, &back.snapshot()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&text),
            String::from_utf8_lossy(&again)
        );
        for ((k1, g1), (k2, g2)) in store.groups().zip(back.groups()) {
            assert_eq!(k1, k2);
            assert_eq!(g1.push_time, g2.push_time);
            assert_eq!(g1.failure_time, g2.failure_time);
            assert_eq!(g1.families.len(), g2.families.len());
            for ((n1, f1), (n2, f2)) in g1.families.iter().zip(&g2.families) {
                assert_eq!(
                    (n1, &f1.help, f1.metric_type),
                    (n2, &f2.help, f2.metric_type)
                );
                assert_eq!(f1.pushed_at, f2.pushed_at);
                for (m1, m2) in f1.metrics.iter().zip(&f2.metrics) {
                    assert_eq!(m1.labels, m2.labels);
                    // Compare bit patterns: NaN and -0 must survive.
                    assert_eq!(format!("{:?}", m1.value), format!("{:?}", m2.value));
                }
            }
        }
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("help Counter \\\\ with\\nnewline.\n"),
            "{text}"
        );
        // 18446744073709551615 is a float on the wire; Go's conversion of it
        // to uint64 yields 2^63, which the reference exposes too.
        assert!(text.contains("count=9223372036854775808"), "{text}");
    }

    #[test]
    fn native_histograms_round_trip_as_written() {
        let text = "pushgateway-snapshot 1\ngroup {job=\"n\"}\ntimes 5 -\nfamily h histogram 5\n\
                    series {instance=\"\",job=\"n\"} sum=1.5 count=3 countf=3.5 0.5:1:1.5 schema=-2 zt=0.001 zc=1 zcf=1.5 \
                    nspans=-1:2 ndeltas=1,-1 ncounts=0.5,2.0 pspans=0:1,2:2 pdeltas=5,-2,0 pcounts=1.0\nend groups=1 series=1\n";
        let mut store = Store::new();
        for g in read(text.as_bytes()).unwrap() {
            g.restore_into(&mut store).unwrap();
        }
        let mut out = Vec::new();
        write(&mut out, &store.snapshot()).unwrap();
        let out = String::from_utf8(out).unwrap();
        let series = |t: &str| {
            t.lines()
                .find(|l| l.starts_with("series"))
                .map(str::to_owned)
        };
        assert_eq!(series(&out), series(text), "{out}");
    }

    /// A store holding one protobuf push whose series carry every kind of
    /// extra: a counter's exemplar and created time, bucket exemplars and
    /// native-histogram exemplars.
    fn store_with_extras() -> Store {
        use crate::model::{Exemplar, Extra, Timestamp};
        let ex = |trace: &str, t: Option<Timestamp>| Exemplar {
            labels: vec![Label::new("trace_id", trace), Label::new("a\"b", "é\n")].into(),
            value: -0.0,
            timestamp: t,
        };
        let created = Some(Timestamp {
            seconds: -1,
            nanos: 999_999_999,
        });
        let metric = |value: Value, extra: Extra| Metric {
            extra: Some(Box::new(extra)),
            ..Metric::new(vec![Label::new("a", "1")].into(), value)
        };
        let h = Histogram {
            buckets: vec![Bucket::new(1.0, 1), Bucket::new(2.0, 2)],
            ..Histogram::default()
        };
        let fams = vec![
            MetricFamily {
                name: "c".into(),
                help: None,
                metric_type: MetricType::Counter,
                metrics: vec![metric(
                    Value::Counter(1.0),
                    Extra {
                        created,
                        exemplar: Some(ex("t1", created)),
                        ..Extra::default()
                    },
                )],
            },
            MetricFamily {
                name: "h".into(),
                help: None,
                metric_type: MetricType::Histogram,
                metrics: vec![metric(
                    Value::Histogram(Box::new(h)),
                    Extra {
                        bucket_exemplars: vec![(1, ex("t2", None))],
                        exemplars: vec![ex("t3", None), ex("t4", created)],
                        ..Extra::default()
                    },
                )],
            },
        ];
        let mut store = Store::new();
        let key: Vec<Label> = vec![Label::new("job", "x")];
        let push = prepare_push(key.into(), fams, true).unwrap();
        store.check(&push, &Own).unwrap();
        store.apply(push, 1);
        store
    }

    #[test]
    fn extras_round_trip_exactly() {
        let store = store_with_extras();
        let (text, back) = round_trip(&store);
        let extras = |s: &Store| -> Vec<String> {
            let mut out = Vec::new();
            for (_, g) in s.groups() {
                for f in g.families.values() {
                    out.extend(f.metrics.iter().map(|m| format!("{:?}", m.extra)));
                }
            }
            out
        };
        assert_eq!(extras(&store), extras(&back));
        assert!(
            extras(&back).iter().all(|e| e.contains("t")),
            "{:?}",
            extras(&back)
        );
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("\ncreated -1:999999999\nexemplar counter {trace_id=\"t1\",\"a\\\"b\"=\"é\\n\"} -0.0 -1:999999999\n"), "{text}");
        assert!(text.contains("exemplar bucket=1 {"), "{text}");
        assert_eq!(text.matches("exemplar native {").count(), 2, "{text}");
    }

    #[test]
    fn damaged_extras_are_refused_with_the_line() {
        let mut buf = Vec::new();
        write(&mut buf, &store_with_extras().snapshot()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
        for (from, to, why) in [
            ("exemplar bucket=1 ", "exemplar bucket=2 ", "does not exist"),
            ("exemplar bucket=1 ", "exemplar counter ", "not a place"),
            ("exemplar counter ", "exemplar native ", "not a place"),
            (
                "created -1:999999999",
                "created -1",
                "not seconds:nanoseconds",
            ),
            (
                "created -1:999999999",
                "created -",
                "expected seconds:nanoseconds",
            ),
        ] {
            let line = line_of(from);
            let bad = reseal(&text.replacen(from, to, 1));
            let e = read(bad.as_bytes()).unwrap_err();
            assert_eq!(e.line, line, "{from} -> {to}: {e}");
            assert!(e.to_string().contains(why), "{from} -> {to}: {e}");
        }
        let twice = reseal(&text.replacen(
            "created -1:999999999\n",
            "created -1:999999999\ncreated 1:1\n",
            1,
        ));
        assert!(
            read(twice.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("second created")
        );
        let orphan = reseal(&text.replacen(
            "family c counter",
            "family c counter 1\ncreated 1:1\nfamily z counter",
            1,
        ));
        let e = read(orphan.as_bytes()).unwrap_err();
        assert!(
            matches!(e.kind, SnapshotErrorKind::OutsideSeries("created")),
            "{e}"
        );
    }

    /// Files written before exemplars (version 1) are read as they are.
    #[test]
    fn version_1_files_are_read() {
        let store = store_with(&[(&[("job", "a")], "m 1\n")]);
        let mut buf = Vec::new();
        write(&mut buf, &store.snapshot()).unwrap();
        let old = String::from_utf8(buf)
            .unwrap()
            .replace(&format!("{MAGIC} {VERSION}"), "pushgateway-snapshot 1");
        assert_eq!(read(old.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn damaged_files_are_refused_with_the_line() {
        let store = store_with(&[(&[("job", "a")], "m 1\nn 2\n")]);
        let mut buf = Vec::new();
        write(&mut buf, &store.snapshot()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let cut = &text[..text.len() - 5];
        assert_eq!(
            read(cut.as_bytes()).unwrap_err().kind,
            SnapshotErrorKind::Truncated
        );
        let no_end = &text[..text.trim_end().rfind('\n').unwrap() + 1];
        assert_eq!(
            read(no_end.as_bytes()).unwrap_err().kind,
            SnapshotErrorKind::Truncated
        );
        let fewer = reseal(&text.replace("series {instance=\"\",job=\"a\"} 2.0\n", ""));
        assert!(matches!(
            read(fewer.as_bytes()).unwrap_err().kind,
            SnapshotErrorKind::CountMismatch { .. }
        ));
        let bad = reseal(&text.replace(
            "series {instance=\"\",job=\"a\"} 2.0",
            "series {instance=\"\",job=\"a\"} two",
        ));
        let e = read(bad.as_bytes()).unwrap_err();
        assert_eq!(e.line, 8, "{e}");
        assert!(e.to_string().contains("not a number"), "{e}");
        let future = text.replace(&format!("{MAGIC} {VERSION}"), "pushgateway-snapshot 9");
        assert_eq!(
            read(future.as_bytes()).unwrap_err().kind,
            SnapshotErrorKind::FutureVersion(9)
        );
        assert_eq!(read(b"").unwrap_err().kind, SnapshotErrorKind::Empty);
        assert_eq!(
            read(b"\x0e\xff\x81\x03\x01\x01").unwrap_err().kind,
            SnapshotErrorKind::GoGobFile
        );
        assert_eq!(
            read(b"hello\n").unwrap_err().kind,
            SnapshotErrorKind::NotASnapshot
        );
    }
}
