//! The protobuf delimited format of client_model's `MetricFamily`, by hand.
//!
//! The Go client library pushes this format, and Prometheus scrapes it when
//! it wants native histograms. Only the handful of messages in
//! `metrics.proto` matter, so a small hand-written decoder and encoder beat
//! a code generator and its runtime: unknown fields are skipped as protobuf
//! requires, and every malformed input is an error naming the byte offset.
//!
//! Field numbers (client_model `io.prometheus.client`):
//! MetricFamily: 1 name, 2 help, 3 type, 4 metric, 5 unit.
//! Metric: 1 label, 2 gauge, 3 counter, 4 summary, 5 untyped, 7 histogram,
//! 6 timestamp_ms. LabelPair: 1 name, 2 value. Gauge/Counter/Untyped:
//! 1 value. Summary: 1 sample_count, 2 sample_sum, 3 quantile. Quantile:
//! 1 quantile, 2 value. Histogram: 1 sample_count, 4 sample_count_float,
//! 2 sample_sum, 3 bucket, 5 schema, 6 zero_threshold, 7 zero_count,
//! 8 zero_count_float, 9/12 negative/positive_span, 10/13 deltas,
//! 11/14 counts, 15 created_timestamp, 16 exemplars. Bucket:
//! 1 cumulative_count, 4 cumulative_count_float, 2 upper_bound,
//! 3 exemplar. BucketSpan: 1 offset, 2 length. Counter: 2 exemplar,
//! 3 created_timestamp; Summary: 4 created_timestamp. Exemplar: 1 label,
//! 2 value, 3 timestamp. google.protobuf.Timestamp: 1 seconds, 2 nanos.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::{Meter, Unmetered, cost};
use crate::model::{
    Bucket, Exemplar, Extra, Histogram, Label, Metric, MetricFamily, MetricType, NameScheme,
    NativeHistogram, Span, Summary, Timestamp, Value,
};

/// The content type of the delimited protobuf format.
pub const CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// How deeply messages may nest; `metrics.proto` needs four levels, so a
/// deeper input is hostile, not a metric.
const MAX_DEPTH: usize = 8;

#[derive(Debug, PartialEq)]
pub struct ProtoError {
    /// Byte offset in the body where the problem was found.
    pub offset: usize,
    pub kind: ProtoErrorKind,
}

#[derive(Debug, PartialEq)]
pub enum ProtoErrorKind {
    Truncated,
    BadVarint,
    BadWireType(u8),
    TooDeep,
    NotUtf8(&'static str),
    InvalidMetricName(String),
    InvalidLabelName(String),
    UnknownType(u64),
    /// The meter refused the memory for the next decoded record.
    OverBudget,
    MissingValue {
        family: String,
        expected: MetricType,
    },
    /// A metric of `family` with a label name the scheme refuses: a
    /// consistency failure in the reference (its decoder keeps any name),
    /// recorded for the group.
    LabelNameInFamily {
        family: String,
        label: String,
    },
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protobuf parsing error at byte {}: ", self.offset)?;
        match &self.kind {
            ProtoErrorKind::Truncated => f.write_str("message truncated"),
            ProtoErrorKind::BadVarint => f.write_str("malformed varint"),
            ProtoErrorKind::BadWireType(t) => write!(f, "unsupported wire type {t}"),
            ProtoErrorKind::TooDeep => f.write_str("messages nested too deeply"),
            ProtoErrorKind::NotUtf8(what) => write!(f, "{what} is not valid UTF-8"),
            ProtoErrorKind::InvalidMetricName(n) => write!(f, "invalid metric name {n:?}"),
            ProtoErrorKind::InvalidLabelName(n) => write!(f, "invalid label name {n:?}"),
            ProtoErrorKind::UnknownType(t) => write!(f, "unknown metric type {t}"),
            ProtoErrorKind::OverBudget => f.write_str(
                "the decoded body needs more memory than is left for requests in flight",
            ),
            ProtoErrorKind::LabelNameInFamily { family, label } => {
                write!(
                    f,
                    "a metric of family {family:?} has the invalid label name {label:?}"
                )
            }
            ProtoErrorKind::MissingValue { family, expected } => {
                write!(f, "a metric of family {family:?} has no {expected} value")
            }
        }
    }
}

impl std::error::Error for ProtoError {}

/// A field as read off the wire.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// A cursor over one message's bytes; `base` is its offset in the body.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    scheme: NameScheme,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], base: usize, scheme: NameScheme) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            base,
            scheme,
        }
    }

    fn err(&self, kind: ProtoErrorKind) -> ProtoError {
        ProtoError {
            offset: self.base + self.pos,
            kind,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.data.get(self.pos) else {
                return Err(self.err(ProtoErrorKind::Truncated));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err(ProtoErrorKind::BadVarint));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err(ProtoErrorKind::BadVarint))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        let Some(end) = end else {
            return Err(self.err(ProtoErrorKind::Truncated));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field number and value; the offset of a bytes field's
    /// payload is `self.base + self.pos - payload.len()` right after.
    fn field(&mut self) -> Result<(u64, Field<'a>), ProtoError> {
        let key = self.varint()?;
        let num = key >> 3;
        let f = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Field::Fixed64(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| self.err(ProtoErrorKind::Truncated))?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            t => return Err(self.err(ProtoErrorKind::BadWireType(t as u8))),
        };
        Ok((num, f))
    }

    /// A reader over a nested message just read.
    fn sub(&self, bytes: &'a [u8], depth: usize) -> Result<Reader<'a>, ProtoError> {
        if depth > MAX_DEPTH {
            return Err(self.err(ProtoErrorKind::TooDeep));
        }
        Ok(Reader::new(
            bytes,
            self.base + self.pos - bytes.len(),
            self.scheme,
        ))
    }

    fn string(&self, bytes: &[u8], what: &'static str) -> Result<String, ProtoError> {
        self.str(bytes, what).map(str::to_owned)
    }

    /// `bytes` as text, borrowed from the body.
    fn str<'b>(&self, bytes: &'b [u8], what: &'static str) -> Result<&'b str, ProtoError> {
        std::str::from_utf8(bytes).map_err(|_| ProtoError {
            offset: self.base + self.pos - bytes.len(),
            kind: ProtoErrorKind::NotUtf8(what),
        })
    }
}

fn f64_of(f: &Field) -> f64 {
    match f {
        Field::Fixed64(v) => f64::from_bits(*v),
        _ => 0.0,
    }
}

fn u64_of(f: &Field) -> u64 {
    match f {
        Field::Varint(v) => *v,
        _ => 0,
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Decodes a body of varint-length-delimited `MetricFamily` messages.
/// Families without metrics are dropped, as they expose nothing.
pub fn decode(body: &[u8]) -> Result<Vec<MetricFamily>, ProtoError> {
    decode_with(body, NameScheme::Legacy)
}

/// Like [`decode`], with the name rules of `scheme`.
pub fn decode_with(body: &[u8], scheme: NameScheme) -> Result<Vec<MetricFamily>, ProtoError> {
    decode_metered(body, scheme, &mut Unmetered)
}

/// Like [`decode_with`], asking `meter` for an upper bound of each record's
/// memory before creating it: a refusal ends the decoding with
/// [`ProtoErrorKind::OverBudget`].
pub fn decode_metered(
    body: &[u8],
    scheme: NameScheme,
    meter: &mut dyn Meter,
) -> Result<Vec<MetricFamily>, ProtoError> {
    let mut r = Reader::new(body, 0, scheme);
    let mut out = Vec::new();
    let mut names = LabelNames::default();
    while !r.done() {
        let len = r.varint()?;
        let len = usize::try_from(len).map_err(|_| r.err(ProtoErrorKind::Truncated))?;
        let msg = r.take(len)?;
        let fam = family(&mut r.sub(msg, 1)?, meter, &mut names)?;
        if !fam.metrics.is_empty() {
            charge(
                &r,
                meter,
                cost::items(1, std::mem::size_of::<MetricFamily>()),
            )?;
            out.push(fam);
        }
    }
    Ok(out)
}

/// Asks the meter for `bytes`; the refusal names where decoding stopped.
fn charge(r: &Reader, meter: &mut dyn Meter, bytes: usize) -> Result<(), ProtoError> {
    if meter.take(bytes) {
        Ok(())
    } else {
        Err(r.err(ProtoErrorKind::OverBudget))
    }
}

/// The type a `MetricFamily` message declares (its last `type` field),
/// read ahead of its metrics so that each metric keeps only the value of
/// that type and a metric without one is known as soon as it is read.
/// Stops quietly at anything malformed: the decoding proper reports it.
fn declared_type(r: &Reader) -> MetricType {
    let mut ahead = Reader::new(r.data, r.base, r.scheme);
    let mut t = MetricType::Counter;
    while !ahead.done() {
        match ahead.field() {
            Ok((3, Field::Varint(v))) => {
                if let Some(known) = type_of(v) {
                    t = known;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    t
}

fn type_of(v: u64) -> Option<MetricType> {
    Some(match v {
        0 => MetricType::Counter,
        1 => MetricType::Gauge,
        2 => MetricType::Summary,
        3 => MetricType::Untyped,
        4 => MetricType::Histogram,
        5 => MetricType::GaugeHistogram,
        _ => return None,
    })
}

/// Label names as shared strings: a name repeated on every series of a
/// body (`instance`, `le`) is allocated once, not once per series.
#[derive(Default)]
struct LabelNames(HashSet<Arc<str>>);

impl LabelNames {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return Arc::clone(shared);
        }
        let name: Arc<str> = name.into();
        self.0.insert(Arc::clone(&name));
        name
    }
}

fn family(
    r: &mut Reader,
    meter: &mut dyn Meter,
    names: &mut LabelNames,
) -> Result<MetricFamily, ProtoError> {
    let start = r.base;
    let (mut name, mut help) = (String::new(), None);
    let t = declared_type(r);
    let mut metrics = Vec::new();
    // The offset of the first metric without a value of the family's
    // type: reported once the whole family has been read, as the other
    // errors of the family come first. Later metrics are still checked,
    // but not kept.
    let mut missing = None;
    // Likewise the first metric with an invalid label name.
    let mut bad_label: Option<(usize, String)> = None;
    while !r.done() {
        match r.field()? {
            (1, Field::Bytes(b)) => {
                charge(r, meter, cost::string(b.len()))?;
                name = r.string(b, "metric name")?;
            }
            (2, Field::Bytes(b)) => {
                charge(r, meter, cost::string(b.len()))?;
                help = Some(r.string(b, "help text")?);
            }
            (3, Field::Varint(v)) if type_of(v).is_none() => {
                return Err(r.err(ProtoErrorKind::UnknownType(v)));
            }
            (4, Field::Bytes(b)) => {
                let mut sub = r.sub(b, 2)?;
                let offset = sub.base;
                let decoded = match metric(&mut sub, t, meter, names) {
                    Err(ProtoError {
                        offset,
                        kind: ProtoErrorKind::InvalidLabelName(label),
                    }) => {
                        bad_label.get_or_insert((offset, label));
                        metrics = Vec::new();
                        continue;
                    }
                    other => other?,
                };
                match decoded {
                    Some(m) if missing.is_none() && bad_label.is_none() => {
                        let slot = if metrics.is_empty() {
                            cost::first_metric()
                        } else {
                            cost::metric()
                        };
                        charge(r, meter, slot)?;
                        super::push_series(&mut metrics, m);
                    }
                    Some(_) => {}
                    None => {
                        missing.get_or_insert(offset);
                        // Nothing of this family is kept any more.
                        metrics = Vec::new();
                    }
                }
            }
            _ => {} // Unknown fields (unit, ...) are skipped.
        }
    }
    if !r.scheme.is_valid_metric_name(&name) {
        return Err(ProtoError {
            offset: start,
            kind: ProtoErrorKind::InvalidMetricName(name),
        });
    }
    // The first of the two failures the reference would meet first.
    if let Some((offset, label)) = bad_label.filter(|(o, _)| missing.is_none_or(|m| *o < m)) {
        return Err(ProtoError {
            offset,
            kind: ProtoErrorKind::LabelNameInFamily {
                family: name,
                label,
            },
        });
    }
    if let Some(offset) = missing {
        return Err(ProtoError {
            offset,
            kind: ProtoErrorKind::MissingValue {
                family: name,
                expected: t,
            },
        });
    }
    // A family of a few series keeps its first block: the store takes
    // its place (`cost::FIRST_SERIES_ROOM`), and trims the spare room of
    // those it keeps in a vector.
    if metrics.len() > cost::FIRST_SERIES_ROOM {
        metrics.shrink_to_fit();
    }
    Ok(MetricFamily {
        name: name.into(),
        help: help.map(Into::into),
        metric_type: t,
        metrics,
    })
}

/// Reads a message whose only interesting field 1 is a double.
fn single_value(r: &mut Reader) -> Result<f64, ProtoError> {
    let mut v = 0.0;
    while !r.done() {
        if let (1, f) = r.field()? {
            v = f64_of(&f);
        }
    }
    Ok(v)
}

/// Reads a `Metric` message of a family of type `t`: its labels and its
/// value of that type, with that value's extras. The values of other
/// types are read (a malformed one fails the push) but not kept. `None`
/// when it has no value of type `t`, having allocated nothing lasting.
fn metric(
    r: &mut Reader,
    t: MetricType,
    meter: &mut dyn Meter,
    names: &mut LabelNames,
) -> Result<Option<Metric>, ProtoError> {
    let mut labels = Vec::new();
    let mut value = None;
    let mut extra = Extra::default();
    let mut timestamp_ms = None;
    while !r.done() {
        let (num, f) = r.field()?;
        let Field::Bytes(b) = f else {
            if let (6, Field::Varint(v)) = (num, f) {
                timestamp_ms = Some(v as i64);
            }
            continue;
        };
        let mut sub = r.sub(b, 3)?;
        match num {
            1 => {
                charge(r, meter, cost::label(0, b.len()))?;
                labels.push(label(&mut sub, names)?);
            }
            2 | 5 => {
                let v = single_value(&mut sub)?;
                match (num, t) {
                    (2, MetricType::Gauge) => value = Some(Value::Gauge(v)),
                    (5, MetricType::Untyped) => value = Some(Value::Untyped(v)),
                    _ => {}
                }
            }
            3 => {
                let (v, e) = counter(&mut sub, meter)?;
                if t == MetricType::Counter {
                    (value, extra) = (Some(Value::Counter(v)), e);
                }
            }
            4 => {
                let (s, e) = summary(&mut sub, meter)?;
                if t == MetricType::Summary {
                    charge(r, meter, cost::summary())?;
                    (value, extra) = (Some(Value::Summary(Box::new(s))), e);
                }
            }
            7 => {
                let (h, e) = histogram(&mut sub, meter)?;
                if t.is_histogram() {
                    charge(r, meter, cost::histogram())?;
                    (value, extra) = (Some(Value::Histogram(Box::new(h))), e);
                }
            }
            _ => {}
        }
    }
    let Some(value) = value else {
        return Ok(None);
    };
    extra.timestamp_ms = timestamp_ms;
    let extra = if extra.is_empty() {
        None
    } else {
        charge(r, meter, cost::extra())?;
        Some(Box::new(extra))
    };
    Ok(Some(Metric {
        labels: labels.into(),
        value,
        extra,
    }))
}

fn label(r: &mut Reader, names: &mut LabelNames) -> Result<Label, ProtoError> {
    let (name, value) = label_text(r)?;
    if !r.scheme.is_valid_label_name(name) {
        return Err(r.err(ProtoErrorKind::InvalidLabelName(name.to_string())));
    }
    Ok(Label::from_parts(names.get(name), value.into()))
}

/// A label pair whose name is not checked: exemplar labels, which the
/// reference stores and returns without looking at them.
fn any_label(r: &mut Reader) -> Result<Label, ProtoError> {
    let (name, value) = label_text(r)?;
    Ok(Label::new(name, value))
}

/// A `LabelPair` message's name and value, borrowed from the body.
fn label_text<'b>(r: &mut Reader<'b>) -> Result<(&'b str, &'b str), ProtoError> {
    let (mut name, mut value) = ("", "");
    while !r.done() {
        match r.field()? {
            (1, Field::Bytes(b)) => name = r.str(b, "label name")?,
            (2, Field::Bytes(b)) => value = r.str(b, "label value")?,
            _ => {}
        }
    }
    Ok((name, value))
}

fn counter(r: &mut Reader, meter: &mut dyn Meter) -> Result<(f64, Extra), ProtoError> {
    let (mut v, mut extra) = (0.0, Extra::default());
    while !r.done() {
        match r.field()? {
            (1, f) => v = f64_of(&f),
            (2, Field::Bytes(b)) => {
                extra.exemplar = Some(exemplar(&mut r.sub(b, 4)?, meter)?);
            }
            (3, Field::Bytes(b)) => extra.created = Some(timestamp(&mut r.sub(b, 4)?)?),
            _ => {}
        }
    }
    Ok((v, extra))
}

fn exemplar(r: &mut Reader, meter: &mut dyn Meter) -> Result<Exemplar, ProtoError> {
    let (mut labels, mut value, mut ts) = (Vec::new(), 0.0, None);
    while !r.done() {
        match r.field()? {
            (1, Field::Bytes(b)) => {
                charge(r, meter, cost::label(0, b.len()))?;
                labels.push(any_label(&mut r.sub(b, 5)?)?);
            }
            (2, f) => value = f64_of(&f),
            (3, Field::Bytes(b)) => ts = Some(timestamp(&mut r.sub(b, 5)?)?),
            _ => {}
        }
    }
    charge(r, meter, cost::items(1, std::mem::size_of::<Exemplar>()))?;
    Ok(Exemplar {
        labels: labels.into(),
        value,
        timestamp: ts,
    })
}

/// A `google.protobuf.Timestamp`: int64 seconds, int32 nanos (negative
/// int32s are sign-extended ten-byte varints on the wire).
fn timestamp(r: &mut Reader) -> Result<Timestamp, ProtoError> {
    let mut t = Timestamp::default();
    while !r.done() {
        match r.field()? {
            (1, f) => t.seconds = u64_of(&f) as i64,
            (2, f) => t.nanos = u64_of(&f) as i64 as i32,
            _ => {}
        }
    }
    Ok(t)
}

fn summary(r: &mut Reader, meter: &mut dyn Meter) -> Result<(Summary, Extra), ProtoError> {
    let (mut s, mut extra) = (Summary::default(), Extra::default());
    while !r.done() {
        match r.field()? {
            (1, f) => s.count = u64_of(&f),
            (2, f) => s.sum = f64_of(&f),
            (3, Field::Bytes(b)) => {
                charge(r, meter, cost::items(1, 16))?;
                let mut q = r.sub(b, 4)?;
                let (mut quantile, mut value) = (0.0, 0.0);
                while !q.done() {
                    match q.field()? {
                        (1, f) => quantile = f64_of(&f),
                        (2, f) => value = f64_of(&f),
                        _ => {}
                    }
                }
                s.quantiles.push((quantile, value));
            }
            (4, Field::Bytes(b)) => extra.created = Some(timestamp(&mut r.sub(b, 4)?)?),
            _ => {}
        }
    }
    Ok((s, extra))
}

fn histogram(r: &mut Reader, meter: &mut dyn Meter) -> Result<(Histogram, Extra), ProtoError> {
    let (mut h, mut extra) = (Histogram::default(), Extra::default());
    let mut n = NativeHistogram::default();
    let mut native = false;
    while !r.done() {
        let (num, f) = r.field()?;
        match (num, f) {
            (1, f) => h.count = u64_of(&f),
            (4, f) => h.count_float = Some(f64_of(&f)),
            (2, f) => h.sum = f64_of(&f),
            (3, Field::Bytes(b)) => {
                charge(r, meter, cost::items(1, std::mem::size_of::<Bucket>() + 24))?;
                let (bk, ex) = bucket(&mut r.sub(b, 4)?, meter)?;
                if let Some(ex) = ex {
                    extra.bucket_exemplars.push((h.buckets.len() as u32, ex));
                }
                h.buckets.push(bk);
            }
            (15, Field::Bytes(b)) => extra.created = Some(timestamp(&mut r.sub(b, 4)?)?),
            (16, Field::Bytes(b)) => extra.exemplars.push(exemplar(&mut r.sub(b, 4)?, meter)?),
            (5, f) => {
                native = true;
                n.schema = zigzag(u64_of(&f)) as i32;
            }
            (6, f) => {
                native = true;
                n.zero_threshold = f64_of(&f);
            }
            (7, f) => {
                native = true;
                n.zero_count = u64_of(&f);
            }
            (8, f) => {
                native = true;
                n.zero_count_float = Some(f64_of(&f));
            }
            (9, Field::Bytes(b)) => {
                native = true;
                charge(r, meter, cost::items(1, std::mem::size_of::<Span>()))?;
                n.negative_spans.push(span(&mut r.sub(b, 4)?)?);
            }
            (12, Field::Bytes(b)) => {
                native = true;
                charge(r, meter, cost::items(1, std::mem::size_of::<Span>()))?;
                n.positive_spans.push(span(&mut r.sub(b, 4)?)?);
            }
            (10, f) => {
                native = true;
                repeated_varints(r, meter, f, &mut n.negative_deltas)?;
            }
            (13, f) => {
                native = true;
                repeated_varints(r, meter, f, &mut n.positive_deltas)?;
            }
            (11, f) => {
                native = true;
                repeated_doubles(r, meter, f, &mut n.negative_counts)?;
            }
            (14, f) => {
                native = true;
                repeated_doubles(r, meter, f, &mut n.positive_counts)?;
            }
            _ => {}
        }
    }
    if native {
        charge(
            r,
            meter,
            cost::items(1, std::mem::size_of::<NativeHistogram>()),
        )?;
        h.native = Some(Box::new(n));
    }
    Ok((h, extra))
}

/// A repeated sint64 field, packed or not. A packed run is charged at
/// once, as if each of its bytes were a value.
fn repeated_varints(
    r: &Reader,
    meter: &mut dyn Meter,
    f: Field,
    out: &mut Vec<i64>,
) -> Result<(), ProtoError> {
    let n = match &f {
        Field::Bytes(b) => b.len(),
        _ => 1,
    };
    charge(r, meter, cost::items(n, 8))?;
    match f {
        Field::Varint(v) => out.push(zigzag(v)),
        Field::Bytes(b) => {
            let mut p = r.sub(b, 4)?;
            while !p.done() {
                out.push(zigzag(p.varint()?));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A repeated double field, packed or not, charged as its bytes.
fn repeated_doubles(
    r: &Reader,
    meter: &mut dyn Meter,
    f: Field,
    out: &mut Vec<f64>,
) -> Result<(), ProtoError> {
    let n = match &f {
        Field::Bytes(b) => b.len() / 8,
        _ => 1,
    };
    charge(r, meter, cost::items(n, 8))?;
    match f {
        Field::Fixed64(v) => out.push(f64::from_bits(v)),
        Field::Bytes(b) => {
            let mut p = r.sub(b, 4)?;
            while !p.done() {
                let chunk = p.take(8)?;
                out.push(f64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
            }
        }
        _ => {}
    }
    Ok(())
}

fn bucket(r: &mut Reader, meter: &mut dyn Meter) -> Result<(Bucket, Option<Exemplar>), ProtoError> {
    let (mut b, mut ex) = (Bucket::new(0.0, 0), None);
    while !r.done() {
        match r.field()? {
            (1, f) => b.count = u64_of(&f),
            (4, f) => b.count_float = Some(f64_of(&f)),
            (2, f) => b.upper_bound = f64_of(&f),
            (3, Field::Bytes(e)) => ex = Some(exemplar(&mut r.sub(e, 5)?, meter)?),
            _ => {}
        }
    }
    Ok((b, ex))
}

fn span(r: &mut Reader) -> Result<Span, ProtoError> {
    let mut s = Span {
        offset: 0,
        length: 0,
    };
    while !r.done() {
        match r.field()? {
            (1, f) => s.offset = zigzag(u64_of(&f)) as i32,
            (2, f) => s.length = u64_of(&f) as u32,
            _ => {}
        }
    }
    Ok(s)
}

// ---------------------------------------------------------------------------
// Encoding, for protobuf scrapes.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, num: u64, wire: u64) {
    put_varint(out, (num << 3) | wire);
}

fn put_bytes(out: &mut Vec<u8>, num: u64, b: &[u8]) {
    put_key(out, num, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_double(out: &mut Vec<u8>, num: u64, v: f64) {
    put_key(out, num, 1);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn put_uint(out: &mut Vec<u8>, num: u64, v: u64) {
    put_key(out, num, 0);
    put_varint(out, v);
}

fn put_sint(out: &mut Vec<u8>, num: u64, v: i64) {
    put_uint(out, num, ((v << 1) ^ (v >> 63)) as u64);
}

/// Encodes a nested message built by `f` as field `num`.
fn put_message(out: &mut Vec<u8>, num: u64, f: impl FnOnce(&mut Vec<u8>)) {
    let mut buf = Vec::new();
    f(&mut buf);
    put_bytes(out, num, &buf);
}

/// Appends one length-delimited `MetricFamily` with the given metrics.
pub fn encode_family<'a>(
    out: &mut Vec<u8>,
    name: &str,
    help: Option<&str>,
    t: MetricType,
    metrics: impl Iterator<Item = &'a Metric>,
) {
    let mut msg = Vec::new();
    put_bytes(&mut msg, 1, name.as_bytes());
    if let Some(h) = help {
        put_bytes(&mut msg, 2, h.as_bytes());
    }
    put_uint(&mut msg, 3, t.number() as u64);
    for m in metrics {
        put_message(&mut msg, 4, |b| encode_metric(b, m));
    }
    put_varint(out, msg.len() as u64);
    out.extend_from_slice(&msg);
}

fn encode_metric(out: &mut Vec<u8>, m: &Metric) {
    for l in m.labels.iter() {
        put_message(out, 1, |b| {
            put_bytes(b, 1, l.name.as_bytes());
            put_bytes(b, 2, l.value.as_bytes());
        });
    }
    let extra = m.extra.as_deref();
    let created = |b: &mut Vec<u8>, num: u64| {
        if let Some(t) = extra.and_then(|e| e.created) {
            put_message(b, num, |tb| put_timestamp(tb, t));
        }
    };
    match &m.value {
        Value::Gauge(v) => put_message(out, 2, |b| put_double(b, 1, *v)),
        Value::Counter(v) => put_message(out, 3, |b| {
            put_double(b, 1, *v);
            if let Some(e) = extra.and_then(|e| e.exemplar.as_ref()) {
                put_message(b, 2, |eb| put_exemplar(eb, e));
            }
            created(b, 3);
        }),
        Value::Untyped(v) => put_message(out, 5, |b| put_double(b, 1, *v)),
        Value::Summary(s) => put_message(out, 4, |b| {
            put_uint(b, 1, s.count);
            put_double(b, 2, s.sum);
            for (q, v) in &s.quantiles {
                put_message(b, 3, |qb| {
                    put_double(qb, 1, *q);
                    put_double(qb, 2, *v);
                });
            }
            created(b, 4);
        }),
        Value::Histogram(h) => put_message(out, 7, |b| {
            encode_histogram(b, h, extra);
            created(b, 15);
            for e in extra.iter().flat_map(|e| &e.exemplars) {
                put_message(b, 16, |eb| put_exemplar(eb, e));
            }
        }),
    }
    if let Some(ts) = m.timestamp_ms() {
        // int64: negative values are ten-byte two's-complement varints.
        put_uint(out, 6, ts as u64);
    }
}

/// Zero fields are left out, as Go's encoder does.
fn put_timestamp(out: &mut Vec<u8>, t: Timestamp) {
    if t.seconds != 0 {
        put_uint(out, 1, t.seconds as u64);
    }
    if t.nanos != 0 {
        put_uint(out, 2, i64::from(t.nanos) as u64);
    }
}

fn put_exemplar(out: &mut Vec<u8>, e: &Exemplar) {
    for l in e.labels.iter() {
        put_message(out, 1, |b| {
            put_bytes(b, 1, l.name.as_bytes());
            put_bytes(b, 2, l.value.as_bytes());
        });
    }
    put_double(out, 2, e.value);
    if let Some(t) = e.timestamp {
        put_message(out, 3, |b| put_timestamp(b, t));
    }
}

fn encode_histogram(b: &mut Vec<u8>, h: &Histogram, extra: Option<&Extra>) {
    put_uint(b, 1, h.count);
    if let Some(f) = h.count_float {
        put_double(b, 4, f);
    }
    put_double(b, 2, h.sum);
    for (i, bk) in h.buckets.iter().enumerate() {
        put_message(b, 3, |bb| {
            put_uint(bb, 1, bk.count);
            if let Some(f) = bk.count_float {
                put_double(bb, 4, f);
            }
            put_double(bb, 2, bk.upper_bound);
            if let Some(e) = extra.and_then(|x| x.bucket_exemplar(i)) {
                put_message(bb, 3, |eb| put_exemplar(eb, e));
            }
        });
    }
    let Some(n) = &h.native else {
        return;
    };
    put_sint(b, 5, i64::from(n.schema));
    put_double(b, 6, n.zero_threshold);
    put_uint(b, 7, n.zero_count);
    if let Some(f) = n.zero_count_float {
        put_double(b, 8, f);
    }
    let spans = |b: &mut Vec<u8>, num: u64, spans: &[Span]| {
        for s in spans {
            put_message(b, num, |sb| {
                put_sint(sb, 1, i64::from(s.offset));
                put_uint(sb, 2, u64::from(s.length));
            });
        }
    };
    let deltas = |b: &mut Vec<u8>, num: u64, d: &[i64]| {
        if !d.is_empty() {
            put_message(b, num, |pb| {
                for v in d {
                    put_varint(pb, ((v << 1) ^ (v >> 63)) as u64);
                }
            });
        }
    };
    let counts = |b: &mut Vec<u8>, num: u64, c: &[f64]| {
        if !c.is_empty() {
            put_message(b, num, |pb| {
                for v in c {
                    pb.extend_from_slice(&v.to_bits().to_le_bytes());
                }
            });
        }
    };
    spans(b, 9, &n.negative_spans);
    deltas(b, 10, &n.negative_deltas);
    counts(b, 11, &n.negative_counts);
    spans(b, 12, &n.positive_spans);
    deltas(b, 13, &n.positive_deltas);
    counts(b, 14, &n.positive_counts);
}

/// Decodes one `MetricFamily` message without a length prefix: the Go
/// Pushgateway's persistence file holds each family that way (`GobEncode`
/// is `proto.Marshal`). Unlike [`decode`], a family without metrics is
/// returned as it is; the caller decides.
pub(crate) fn decode_one(msg: &[u8], scheme: NameScheme) -> Result<MetricFamily, ProtoError> {
    family(
        &mut Reader::new(msg, 0, scheme),
        &mut Unmetered,
        &mut LabelNames::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family_of(name: &str, t: MetricType, metrics: Vec<Metric>, help: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_family(&mut out, name, help, t, metrics.iter());
        out
    }

    fn metric(labels: &[(&str, &str)], value: Value) -> Metric {
        let labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(n, v)).collect();
        Metric::new(labels.into(), value)
    }

    /// A label name repeated on every series of a body is one string,
    /// not one per series (300,000 series of one label name kept 9 MB of
    /// copies of it until the store interned them).
    #[test]
    fn label_names_are_shared_across_a_body() {
        let mut body = Vec::new();
        for (fam, v) in [("a", "1"), ("a", "2"), ("b", "3")] {
            let m = metric(&[("instance", v)], Value::Gauge(1.0));
            encode_family(&mut body, fam, None, MetricType::Gauge, [&m].into_iter());
        }
        let fams = decode(&body).expect("the body decodes");
        let names: Vec<&Arc<str>> = fams
            .iter()
            .flat_map(|f| &f.metrics)
            .map(|m| &m.labels[0].name)
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|n| Arc::ptr_eq(n, names[0])), "{names:?}");
        let values: Vec<&str> = fams
            .iter()
            .flat_map(|f| &f.metrics)
            .map(|m| &*m.labels[0].value)
            .collect();
        assert_eq!(values, ["1", "2", "3"]);
    }

    #[test]
    fn round_trip_every_type() {
        let native = NativeHistogram {
            schema: -2,
            zero_threshold: 1e-128,
            zero_count: 3,
            zero_count_float: None,
            negative_spans: vec![Span {
                offset: -1,
                length: 2,
            }],
            negative_deltas: vec![1, -1],
            negative_counts: vec![],
            positive_spans: vec![
                Span {
                    offset: 0,
                    length: 1,
                },
                Span {
                    offset: 2,
                    length: 2,
                },
            ],
            positive_deltas: vec![5, -2, 0],
            positive_counts: vec![],
        };
        let h = Histogram {
            count: 9,
            count_float: None,
            sum: 1.5,
            buckets: vec![
                Bucket::new(0.5, 4),
                Bucket {
                    upper_bound: 1.0,
                    count: 0,
                    count_float: Some(6.5),
                },
            ],
            native: Some(Box::new(native)),
        };
        let cases = vec![
            (MetricType::Counter, Value::Counter(1e-7)),
            (MetricType::Gauge, Value::Gauge(f64::NEG_INFINITY)),
            (MetricType::Untyped, Value::Untyped(42.0)),
            (
                MetricType::Summary,
                Value::Summary(Box::new(Summary {
                    count: 7,
                    sum: 2.5,
                    quantiles: vec![(0.5, 1.0), (0.99, 2.0)],
                })),
            ),
            (MetricType::Histogram, Value::Histogram(Box::new(h))),
        ];
        let mut body = Vec::new();
        for (i, (t, v)) in cases.iter().enumerate() {
            let name = format!("m{i}");
            body.extend(family_of(
                &name,
                *t,
                vec![metric(&[("a", "é\"")], v.clone())],
                Some("help\n"),
            ));
        }
        let fams = decode(&body).unwrap();
        assert_eq!(fams.len(), cases.len());
        for (fam, (t, v)) in fams.iter().zip(&cases) {
            assert_eq!(fam.metric_type, *t);
            assert_eq!(fam.help.as_deref(), Some("help\n"));
            assert_eq!(&fam.metrics[0].value, v);
            assert_eq!(&*fam.metrics[0].labels[0].value, "é\"");
        }
    }

    fn exemplar(trace: &str, value: f64, timestamp: Option<Timestamp>) -> Exemplar {
        Exemplar {
            labels: vec![Label::new("trace_id", trace), Label::new("a.b-c", "")].into(),
            value,
            timestamp,
        }
    }

    /// Exemplars and created timestamps go back out as they came in,
    /// including a negative nanosecond count and exemplar label names no
    /// series label could have.
    #[test]
    fn exemplars_and_created_timestamps_round_trip() {
        let created = Timestamp {
            seconds: 1_700_000_000,
            nanos: -5,
        };
        let with = |value: Value, extra: Extra| Metric {
            extra: Some(Box::new(extra)),
            ..metric(&[("a", "1")], value)
        };
        let counter = with(
            Value::Counter(3.0),
            Extra {
                created: Some(created),
                exemplar: Some(exemplar("c", 1.0, Some(Timestamp::default()))),
                ..Extra::default()
            },
        );
        let summary = with(
            Value::Summary(Box::default()),
            Extra {
                created: Some(created),
                ..Extra::default()
            },
        );
        let h = Histogram {
            count: 2,
            buckets: vec![
                Bucket::new(0.1, 1),
                Bucket::new(1.0, 1),
                Bucket::new(5.0, 2),
            ],
            ..Histogram::default()
        };
        let histogram = with(
            Value::Histogram(Box::new(h)),
            Extra {
                created: None,
                exemplar: None,
                bucket_exemplars: vec![
                    (0, exemplar("b0", 0.05, None)),
                    (2, exemplar("b2", 4.0, Some(created))),
                ],
                exemplars: vec![exemplar("n", 0.5, None)],
                timestamp_ms: None,
            },
        );
        let mut body = Vec::new();
        for (t, m) in [
            (MetricType::Counter, counter),
            (MetricType::Summary, summary),
            (MetricType::Histogram, histogram),
        ] {
            body.extend(family_of(&format!("{t}_x"), t, vec![m], None));
        }
        let fams = decode(&body).unwrap();
        let mut again = Vec::new();
        for f in &fams {
            encode_family(&mut again, &f.name, None, f.metric_type, f.metrics.iter());
        }
        assert_eq!(again, body, "decoding and encoding again changes the bytes");
        let extra = |i: usize| fams[i].metrics[0].extra.as_deref().unwrap();
        assert_eq!(extra(0).created, Some(created));
        assert_eq!(
            &*extra(0).exemplar.as_ref().unwrap().labels[1].name,
            "a.b-c"
        );
        assert_eq!(extra(1).created, Some(created));
        assert_eq!(extra(2).bucket_exemplar(2).unwrap().value, 4.0);
        assert!(extra(2).bucket_exemplar(1).is_none());
        assert_eq!(extra(2).exemplars.len(), 1);
    }

    /// Extras belong to the value message they came in: a gauge family
    /// whose metric also carries a counter with an exemplar keeps nothing
    /// of the counter.
    #[test]
    fn extras_of_an_unused_value_are_not_kept() {
        let counter = Metric {
            extra: Some(Box::new(Extra {
                exemplar: Some(exemplar("c", 1.0, None)),
                ..Extra::default()
            })),
            ..metric(&[], Value::Counter(1.0))
        };
        let mut m = Vec::new();
        encode_metric(&mut m, &counter);
        put_message(&mut m, 2, |b| put_double(b, 1, 7.0));
        let mut msg = Vec::new();
        put_bytes(&mut msg, 1, b"g");
        put_uint(&mut msg, 3, 1);
        put_bytes(&mut msg, 4, &m);
        let mut body = Vec::new();
        put_varint(&mut body, msg.len() as u64);
        body.extend(msg);
        let fams = decode(&body).unwrap();
        assert_eq!(fams[0].metrics[0].value, Value::Gauge(7.0));
        assert_eq!(fams[0].metrics[0].extra, None);
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut msg = Vec::new();
        put_bytes(&mut msg, 1, b"m");
        put_uint(&mut msg, 3, 1);
        put_bytes(&mut msg, 5, b"seconds"); // unit
        put_uint(&mut msg, 99, 7);
        put_message(&mut msg, 4, |b| {
            put_message(b, 2, |g| put_double(g, 1, 3.0));
            put_key(b, 42, 5);
            b.extend_from_slice(&[0, 0, 0, 0]);
        });
        let mut body = Vec::new();
        put_varint(&mut body, msg.len() as u64);
        body.extend(msg);
        let fams = decode(&body).unwrap();
        assert_eq!(fams[0].metrics[0].value, Value::Gauge(3.0));
    }

    #[test]
    fn malformed_input_names_the_offset() {
        let body = family_of(
            "m",
            MetricType::Gauge,
            vec![metric(&[], Value::Gauge(1.0))],
            None,
        );
        let e = decode(&body[..body.len() - 3]).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::Truncated);
        assert!(e.to_string().contains("at byte"), "{e}");
        assert_eq!(
            decode(&[0xff; 11]).unwrap_err().kind,
            ProtoErrorKind::BadVarint
        );
        let mut bad = Vec::new();
        encode_family(
            &mut bad,
            "bad-name",
            None,
            MetricType::Gauge,
            [metric(&[], Value::Gauge(1.0))].iter(),
        );
        assert!(matches!(
            decode(&bad).unwrap_err().kind,
            ProtoErrorKind::InvalidMetricName(_)
        ));
        // A counter family whose metric carries a gauge.
        let mut msg = Vec::new();
        put_bytes(&mut msg, 1, b"c");
        put_uint(&mut msg, 3, 0);
        put_message(&mut msg, 4, |b| {
            put_message(b, 2, |g| put_double(g, 1, 1.0))
        });
        let mut body = Vec::new();
        put_varint(&mut body, msg.len() as u64);
        body.extend(msg);
        assert!(matches!(
            decode(&body).unwrap_err().kind,
            ProtoErrorKind::MissingValue { .. }
        ));
    }

    #[test]
    fn deep_nesting_and_huge_lengths_are_refused() {
        // A length prefix far past the end of the body.
        let mut body = Vec::new();
        put_varint(&mut body, u64::MAX >> 1);
        assert_eq!(decode(&body).unwrap_err().kind, ProtoErrorKind::Truncated);
        assert!(decode(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_refusing_meter_stops_the_decoding_midway() {
        let metrics: Vec<Metric> = (0..1000)
            .map(|i| metric(&[("i", &i.to_string())], Value::Gauge(1.0)))
            .collect();
        let body = family_of("m", MetricType::Gauge, metrics, None);
        let mut total = 0;
        decode_metered(&body, NameScheme::Legacy, &mut |n| {
            total += n;
            true
        })
        .unwrap();
        assert!(total >= 1000 * std::mem::size_of::<Metric>(), "{total}");
        let mut left = total / 2;
        let e = decode_metered(&body, NameScheme::Legacy, &mut |n: usize| {
            let ok = n <= left;
            left = left.saturating_sub(n);
            ok
        })
        .unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::OverBudget);
        assert!(
            e.offset > body.len() / 4 && e.offset < body.len() * 3 / 4,
            "refused about half-way: at byte {} of {}",
            e.offset,
            body.len()
        );
    }

    /// Empty `Metric` messages (two bytes each) cost nothing: the first
    /// one without a value of the family's type ends what is kept.
    #[test]
    fn metrics_without_a_value_are_not_kept() {
        let mut fam = Vec::new();
        put_bytes(&mut fam, 1, b"m");
        put_uint(&mut fam, 3, 1);
        for _ in 0..10_000 {
            put_bytes(&mut fam, 4, b"");
        }
        let mut body = Vec::new();
        put_varint(&mut body, fam.len() as u64);
        body.extend_from_slice(&fam);
        let mut total = 0;
        let e = decode_metered(&body, NameScheme::Legacy, &mut |n| {
            total += n;
            true
        })
        .unwrap_err();
        assert!(matches!(e.kind, ProtoErrorKind::MissingValue { .. }), "{e}");
        assert_eq!(e.offset, 10, "the first empty metric: {e}");
        assert!(total < 1024, "charged {total} bytes for nothing kept");
    }

    /// The type may come after the metrics; each metric keeps the value
    /// of the family's type whatever the order.
    #[test]
    fn the_type_after_the_metrics_decides_the_value_kept() {
        let mut m = Vec::new();
        put_message(&mut m, 3, |b| put_double(b, 1, 1.0));
        put_message(&mut m, 2, |b| put_double(b, 1, 2.0));
        let mut fam = Vec::new();
        put_bytes(&mut fam, 1, b"g");
        put_bytes(&mut fam, 4, &m);
        put_uint(&mut fam, 3, 1);
        let mut body = Vec::new();
        put_varint(&mut body, fam.len() as u64);
        body.extend_from_slice(&fam);
        let f = decode(&body).unwrap();
        assert_eq!(f[0].metric_type, MetricType::Gauge);
        assert_eq!(f[0].metrics[0].value, Value::Gauge(2.0));
    }
}
