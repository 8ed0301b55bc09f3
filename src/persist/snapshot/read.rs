//! Reading a snapshot's records back into groups.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use crate::model::{Bucket, Histogram, Metric, MetricFamily, MetricType, Span, Summary, Value};
use crate::store::{self, Nanos};

use super::error::{SnapshotError, SnapshotErrorKind};
use super::extras;
use super::fields::{Strings, parse_f64, parse_labels_shared, read_name, unescape_help};
use super::frame::{EndRecord, Stretch, not_utf8};
#[cfg(any(test, feature = "fuzzing"))]
use super::frame::{body_start, finish, verify_checksum};
use super::records::RestoredGroup;

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

/// Reads the records of `range` of `data`, whole lines: UTF-8 checked,
/// lines counted from 1 at the stretch's start (see [`lines_before`](super::frame::lines_before)).
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

/// Reads the records of `text`, whole lines, the first of which is line
/// `first_line`: whole groups, and the end record only last.
fn read_records(
    text: &str,
    first_line: usize,
    strings: &mut Strings,
    each: &mut dyn FnMut(RestoredGroup) -> bool,
) -> Result<Stretch, SnapshotError> {
    let mut r = Reader {
        strings,
        each,
        group: None,
        family_names: HashSet::new(),
        done: 0,
        series: 0,
        end: None,
    };
    let mut lines = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let n = first_line + i;
        lines = i + 1;
        let err = |kind| SnapshotError { line: n, kind };
        let Some(line) = raw.strip_suffix('\n') else {
            return Err(err(SnapshotErrorKind::Truncated));
        };
        if r.end.is_some() {
            return Err(err(SnapshotErrorKind::DataAfterEnd));
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (record, rest) = line.split_once(' ').unwrap_or((line, ""));
        match r.record(n, record, rest) {
            Ok(Flow::Go) => {}
            Ok(Flow::Stop) => return Ok(Stretch::stopped(r.done)),
            Err(Bad::Kind(kind)) => return Err(err(kind)),
            Err(Bad::Malformed(record, why)) => {
                return Err(err(SnapshotErrorKind::Malformed { record, why }));
            }
        }
    }
    if let Flow::Stop = r.hand_over() {
        return Ok(Stretch::stopped(r.done));
    }
    Ok(Stretch {
        groups: r.done,
        series: r.series,
        end: r.end,
        lines,
        stopped: false,
    })
}

/// Whether the reader goes on after a record.
enum Flow {
    Go,
    /// The consumer of groups asked to stop.
    Stop,
}

/// What is wrong with one record; the caller adds its line.
enum Bad {
    Kind(SnapshotErrorKind),
    Malformed(&'static str, String),
}

/// The state of [`read_records`]: the group being read and the counts.
struct Reader<'s, 'e> {
    strings: &'s mut Strings,
    each: &'e mut dyn FnMut(RestoredGroup) -> bool,
    /// The group being read; handed to `each` when the next one starts.
    group: Option<RestoredGroup>,
    /// Its family names, so that a repeated one is found in O(1): a
    /// pushed group may hold hundreds of thousands of families.
    family_names: HashSet<Arc<str>>,
    /// Groups handed over.
    done: usize,
    series: usize,
    end: Option<EndRecord>,
}

impl Reader<'_, '_> {
    /// Reads one record of line `n`.
    fn record(&mut self, n: usize, record: &str, rest: &str) -> Result<Flow, Bad> {
        match record {
            "group" => return self.group(n, rest),
            "ttl" => self.ttl(rest)?,
            "times" => self.times(rest)?,
            "family" => self.family(rest)?,
            "help" => self.help(rest)?,
            "series" => self.series(rest)?,
            "created" => extras::read_created(self.last_series("created")?, rest)
                .map_err(|why| Bad::Malformed("created", why))?,
            "exemplar" => extras::read_exemplar(self.last_series("exemplar")?, rest)
                .map_err(|why| Bad::Malformed("exemplar", why))?,
            "end" => self.end(n, rest)?,
            other => {
                return Err(Bad::Kind(SnapshotErrorKind::UnknownRecord(
                    other.to_owned(),
                )));
            }
        }
        Ok(Flow::Go)
    }

    /// Hands the group read so far (if any) to `each`.
    fn hand_over(&mut self) -> Flow {
        let Some(g) = self.group.take() else {
            return Flow::Go;
        };
        self.family_names.clear();
        self.done += 1;
        if (self.each)(g) { Flow::Go } else { Flow::Stop }
    }

    fn group(&mut self, n: usize, rest: &str) -> Result<Flow, Bad> {
        let malformed = |why: String| Bad::Malformed("group", why);
        let (mut key, tail) = parse_labels_shared(rest, self.strings).map_err(malformed)?;
        if !tail.is_empty() {
            return Err(malformed(format!("unexpected {tail:?} after the labels")));
        }
        crate::model::sort_by_name(&mut key);
        if key.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(malformed("a label name appears twice".into()));
        }
        if !key.iter().any(|l| &*l.name == "job" && !l.value.is_empty()) {
            return Err(malformed(
                "the grouping key needs a non-empty job label".into(),
            ));
        }
        if let Flow::Stop = self.hand_over() {
            return Ok(Flow::Stop);
        }
        self.group = Some(RestoredGroup {
            line: n,
            key,
            push_time: None,
            failure_time: None,
            ttl: None,
            families: Vec::new(),
            family_times: Vec::new(),
            labels_shared: true,
        });
        Ok(Flow::Go)
    }

    fn current(&mut self, record: &'static str) -> Result<&mut RestoredGroup, Bad> {
        self.group
            .as_mut()
            .ok_or(Bad::Kind(SnapshotErrorKind::OutsideGroup(record)))
    }

    fn last_family(&mut self, record: &'static str) -> Result<&mut MetricFamily, Bad> {
        self.group
            .as_mut()
            .and_then(|g| g.families.last_mut())
            .ok_or(Bad::Kind(SnapshotErrorKind::OutsideFamily(record)))
    }

    fn last_series(&mut self, record: &'static str) -> Result<&mut Metric, Bad> {
        self.group
            .as_mut()
            .and_then(|g| g.families.last_mut())
            .and_then(|f| f.metrics.last_mut())
            .ok_or(Bad::Kind(SnapshotErrorKind::OutsideSeries(record)))
    }

    fn ttl(&mut self, rest: &str) -> Result<(), Bad> {
        let g = self.current("ttl")?;
        let nanos: u64 = rest.parse().map_err(|_| {
            Bad::Malformed("ttl", format!("{rest:?} is not a duration in nanoseconds"))
        })?;
        g.ttl = Some(std::time::Duration::from_nanos(nanos));
        Ok(())
    }

    fn times(&mut self, rest: &str) -> Result<(), Bad> {
        let g = self.current("times")?;
        let mut parts = rest.split(' ');
        let mut time = || match parts.next() {
            Some("-") => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| {
                Bad::Malformed("times", format!("{t:?} is not a time in nanoseconds"))
            }),
            None => Err(Bad::Malformed("times", "expected two times".into())),
        };
        g.push_time = time()?;
        g.failure_time = time()?;
        Ok(())
    }

    fn family(&mut self, rest: &str) -> Result<(), Bad> {
        let malformed = |why: String| Bad::Malformed("family", why);
        self.current("family")?;
        let (name, after) = read_name(rest).map_err(malformed)?;
        let mut parts = after.trim_start_matches(' ').split(' ');
        let (Some(t), stamp, None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("expected a name, a type and a push time".into()));
        };
        let stamp: Option<Nanos> = stamp
            .map(|s| {
                s.parse()
                    .map_err(|_| malformed(format!("{s:?} is not a time in nanoseconds")))
            })
            .transpose()?;
        let metric_type =
            MetricType::from_keyword(t).ok_or_else(|| malformed(format!("unknown type {t:?}")))?;
        if name.is_empty() {
            return Err(malformed("empty metric name".into()));
        }
        let name: Arc<str> = name.into();
        if !self.family_names.insert(name.clone()) {
            return Err(malformed(format!("{name:?} appears twice in this group")));
        }
        let g = self.current("family")?;
        if let Some(stamp) = stamp {
            g.family_times.push((name.clone(), stamp));
        }
        g.families.push(MetricFamily {
            name,
            help: None,
            metric_type,
            metrics: Vec::new(),
        });
        Ok(())
    }

    fn help(&mut self, rest: &str) -> Result<(), Bad> {
        let fam = self.last_family("help")?;
        let help = unescape_help(rest).map_err(|why| Bad::Malformed("help", why))?;
        fam.help = Some(help.into());
        Ok(())
    }

    fn series(&mut self, rest: &str) -> Result<(), Bad> {
        let malformed = |why: String| Bad::Malformed("series", why);
        let (key, fam) = self
            .group
            .as_mut()
            .and_then(|g| Some((&g.key, g.families.last_mut()?)))
            .ok_or(Bad::Kind(SnapshotErrorKind::OutsideFamily("series")))?;
        let (mut labels, tail) = parse_labels_shared(rest, self.strings).map_err(malformed)?;
        let value = parse_value(fam.metric_type, tail.trim_start()).map_err(malformed)?;
        // The file shows every series with its group's labels; the store
        // keeps them once, with the group.
        store::strip_group_labels(&mut labels, key);
        fam.metrics.push(Metric::new(labels.into(), value));
        self.series += 1;
        Ok(())
    }

    fn end(&mut self, n: usize, rest: &str) -> Result<(), Bad> {
        let malformed = |why: String| Bad::Malformed("end", why);
        let (mut groups, mut series) = (None, None);
        for part in rest.split(' ') {
            match part.split_once('=') {
                Some(("groups", v)) => groups = v.parse().ok(),
                Some(("series", v)) => series = v.parse().ok(),
                // Verified before parsing began (verify_checksum).
                Some(("crc32", _)) => {}
                _ => return Err(malformed(format!("unexpected {part:?}"))),
            }
        }
        let stated =
            |what, v: Option<usize>| v.ok_or_else(|| malformed(format!("missing {what}=")));
        self.end = Some(EndRecord {
            line: n,
            groups: stated("groups", groups)?,
            series: stated("series", series)?,
        });
        Ok(())
    }
}

fn parse_value(t: MetricType, s: &str) -> Result<Value, String> {
    match t {
        MetricType::Counter => Ok(Value::Counter(parse_f64(s)?)),
        MetricType::Gauge => Ok(Value::Gauge(parse_f64(s)?)),
        MetricType::Untyped => Ok(Value::Untyped(parse_f64(s)?)),
        MetricType::Summary | MetricType::Histogram | MetricType::GaugeHistogram => {
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
