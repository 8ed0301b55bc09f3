//! Reading the Go Pushgateway's persistence file, so that swapping the
//! binary keeps the stored groups.
//!
//! The reference writes its `GroupingKeyToMetricGroup` with one
//! `gob.Encoder.Encode`: a message per type definition, then one value
//! message. The value is
//!
//! ```text
//! map[string]struct{                         // grouping key -> group
//!     Labels  map[string]string
//!     Metrics map[string]struct{             // family name -> family
//!         Timestamp            time.Time     // GobEncoder: MarshalBinary
//!         GobbableMetricFamily *dto.MetricFamily // GobEncoder: proto.Marshal
//!     }
//! }
//! ```
//!
//! This is not a gob library: every definition is parsed (they follow one
//! fixed meta-format), but only the shape above is accepted, and the fields
//! are found by name as gob itself does. Definitions the value does not use
//! (gob also sends the fields of `dto.MetricFamily`, whose set differs
//! between client_model versions) are parsed and otherwise ignored.
//! Anything else is refused with the byte offset where it went wrong.

use std::fmt;

use crate::model::{Label, MetricFamily, NameScheme, Value};
use crate::persist::snapshot::RestoredGroup;
use crate::store::{Nanos, PUSH_FAILURE_TIME, PUSH_TIME};
use crate::wire::protobuf::{self, ProtoError};

/// gob's predefined id of `string`.
const STRING: i64 = 6;
/// Ids below this are gob's predefined types and never defined in a stream.
const FIRST_USER_ID: i64 = 64;
/// Seconds from 1 January of year 1, `time.Time`'s origin, to 1970.
const UNIX_TO_INTERNAL: i64 = 62_135_596_800;

/// Why a gob file could not be imported, and where.
#[derive(PartialEq)]
pub(crate) struct GobError {
    /// Byte offset in the file.
    pub offset: usize,
    pub kind: GobErrorKind,
}

// Debug only for tests: a derived Debug costs kilobytes in the static
// binary, and messages use Display.
#[derive(PartialEq)]
#[cfg_attr(test, derive(Debug))]
pub(crate) enum GobErrorKind {
    Empty,
    Truncated,
    BadNumber,
    NotUtf8,
    BadTypeDefinition(&'static str),
    Redefined(i64),
    UnknownType(i64),
    /// The types are well-formed gob but not the Pushgateway's.
    NotPushgateway(&'static str),
    UnexpectedField(u64),
    MissingField(&'static str),
    BadTime(usize),
    Family(ProtoError),
    NoValue,
    DataAfterValue,
}

impl fmt::Display for GobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GobErrorKind::*;
        write!(f, "byte {}: ", self.offset)?;
        match &self.kind {
            Empty => f.write_str("the file is empty"),
            Truncated => f.write_str("a message runs past the end of the file: it is truncated"),
            BadNumber => f.write_str("malformed number"),
            NotUtf8 => f.write_str("a string is not valid UTF-8"),
            BadTypeDefinition(why) => write!(f, "malformed type definition: {why}"),
            Redefined(id) => write!(f, "type {id} is defined twice"),
            UnknownType(id) => write!(f, "type {id} is used but not defined (or predefined)"),
            NotPushgateway(why) => write!(f, "not what the Go Pushgateway writes: {why}"),
            UnexpectedField(n) => write!(f, "field number {n} does not exist in this type"),
            MissingField(name) => write!(f, "the {name} field is missing"),
            BadTime(len) => write!(f, "a {len}-byte time is not a time.Time in binary form"),
            Family(e) => write!(
                f,
                "metric family does not decode ({e}, counted from the family's first byte)"
            ),
            NoValue => f.write_str(
                "the file ends after the type definitions, without the value: it is truncated",
            ),
            DataAfterValue => f.write_str("data after the value"),
        }
    }
}

/// As Display: messages never show Debug output, and a derived one would
/// cost kilobytes in the static binary.
impl fmt::Debug for GobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for GobError {}

/// A position in the file; `end` is the end of the message being read.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

type Res<T> = Result<T, GobError>;

impl<'a> Cursor<'a> {
    fn err<T>(&self, kind: GobErrorKind) -> Res<T> {
        Err(GobError {
            offset: self.pos,
            kind,
        })
    }

    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if n > self.end - self.pos {
            return self.err(GobErrorKind::Truncated);
        }
        self.pos += n;
        Ok(&self.data[self.pos - n..self.pos])
    }

    /// gob's unsigned integer: one byte below 128, else the negated byte
    /// count followed by the big-endian bytes.
    fn uint(&mut self) -> Res<u64> {
        let b = self.take(1)?[0];
        if b < 0x80 {
            return Ok(b.into());
        }
        let n = usize::from(b.wrapping_neg());
        if n > 8 {
            self.pos -= 1;
            return self.err(GobErrorKind::BadNumber);
        }
        Ok(self.take(n)?.iter().fold(0, |v, &b| v << 8 | u64::from(b)))
    }

    /// gob's signed integer: the sign in the low bit, complemented if set.
    fn int(&mut self) -> Res<i64> {
        let u = self.uint()?;
        Ok((if u & 1 == 1 { !(u >> 1) } else { u >> 1 }) as i64)
    }

    fn bytes(&mut self) -> Res<&'a [u8]> {
        let at = self.pos;
        let n = self.uint()?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        self.take(n).map_err(|e| GobError { offset: at, ..e })
    }

    fn str(&mut self) -> Res<&'a str> {
        let at = self.pos;
        std::str::from_utf8(self.bytes()?).map_err(|_| GobError {
            offset: at,
            kind: GobErrorKind::NotUtf8,
        })
    }

    /// Reads a struct: (field delta, value) pairs up to a zero delta.
    /// `each` gets the field number, 1 for the first field; numbers above
    /// `max` are refused.
    /// Not generic over `each`, so the static binary holds one copy.
    fn fields(&mut self, max: u64, each: &mut dyn FnMut(&mut Self, u64) -> Res<()>) -> Res<()> {
        let mut num = 0u64;
        loop {
            let at = self.pos;
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            num = num.saturating_add(delta);
            if num > max {
                self.pos = at;
                return self.err(GobErrorKind::UnexpectedField(num));
            }
            each(self, num)?;
        }
    }
}

/// A type definition, reduced to what the shape check needs.
enum Wire<'a> {
    Map(i64, i64),
    Struct(Vec<(&'a str, i64)>),
    /// A `GobEncoder` (wireType field 5).
    Encoder,
    /// Arrays, slices, binary and text marshalers: only used inside
    /// `dto.MetricFamily`, which travels as protobuf.
    Other,
}

struct Def<'a> {
    id: i64,
    /// Offset of the definition's message, for errors.
    at: usize,
    wire: Wire<'a>,
}

/// A struct of a string and an int: `CommonType{Name; Id}` (neither is
/// needed: gob itself goes by the message's id) and `fieldType{Name; Id}`.
fn name_and_id<'a>(c: &mut Cursor<'a>) -> Res<(&'a str, i64)> {
    let (mut name, mut id) = ("", 0);
    c.fields(2, &mut |c, m| {
        if m == 1 {
            name = c.str()?;
        } else {
            id = c.int()?;
        }
        Ok(())
    })?;
    Ok((name, id))
}

/// Parses a `wireType`: exactly one of its seven pointer fields is set.
fn wire_type<'a>(c: &mut Cursor<'a>) -> Res<Wire<'a>> {
    let mut out = None;
    c.fields(7, &mut |c, n| {
        if out.is_some() {
            return c.err(GobErrorKind::BadTypeDefinition("more than one kind"));
        }
        // Each kind's struct starts with a CommonType, then: arrayType{Elem;
        // Len}, sliceType{Elem}, structType{Field []fieldType},
        // mapType{Key; Elem}, gobEncoderType{}.
        let max = [0, 3, 2, 2, 3, 1, 1, 1][n as usize];
        let (mut ints, mut fields) = ([0i64; 4], Vec::new());
        c.fields(max, &mut |c, m| {
            if m == 1 {
                name_and_id(c)?;
            } else if n == 3 {
                for _ in 0..c.uint()? {
                    fields.push(name_and_id(c)?);
                }
            } else {
                ints[m as usize] = c.int()?;
            }
            Ok(())
        })?;
        out = Some(match n {
            3 => Wire::Struct(fields),
            4 => Wire::Map(ints[2], ints[3]),
            5 => Wire::Encoder,
            _ => Wire::Other,
        });
        Ok(())
    })?;
    match out {
        Some(w) => Ok(w),
        None => c.err(GobErrorKind::BadTypeDefinition("no kind")),
    }
}

/// Where the fields of the two structs are, by field number.
struct Shape {
    labels: u64,
    time: u64,
}

fn lookup<'d, 'a>(defs: &'d [Def<'a>], id: i64, at: usize) -> Res<&'d Def<'a>> {
    defs.iter().find(|d| d.id == id).ok_or(GobError {
        offset: at,
        kind: GobErrorKind::UnknownType(id),
    })
}

fn not_ours<T>(at: usize, why: &'static str) -> Res<T> {
    Err(GobError {
        offset: at,
        kind: GobErrorKind::NotPushgateway(why),
    })
}

/// The element type of a `map[string]X` definition.
fn map_elem(defs: &[Def], id: i64, at: usize, why: &'static str) -> Res<i64> {
    match lookup(defs, id, at)? {
        Def {
            wire: Wire::Map(STRING, elem),
            ..
        } => Ok(*elem),
        d => not_ours(d.at, why),
    }
}

/// A struct with exactly the fields `names`: their field numbers and types.
fn two_fields(
    defs: &[Def],
    id: i64,
    at: usize,
    names: [&str; 2],
    why: &'static str,
) -> Res<[(u64, i64); 2]> {
    let d = lookup(defs, id, at)?;
    let Wire::Struct(fields) = &d.wire else {
        return not_ours(d.at, why);
    };
    let find = |name| {
        fields
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| (i as u64 + 1, fields[i].1))
    };
    match (fields.len(), find(names[0]), find(names[1])) {
        (2, Some(a), Some(b)) => Ok([a, b]),
        _ => not_ours(d.at, why),
    }
}

/// Checks that the value's type is the Pushgateway's and finds its fields.
fn shape(defs: &[Def], top: i64, at: usize) -> Res<Shape> {
    let group = map_elem(
        defs,
        top,
        at,
        "the value is not a map from grouping key to group",
    )?;
    let [labels, metrics] = two_fields(
        defs,
        group,
        at,
        ["Labels", "Metrics"],
        "a group is not a struct of Labels and Metrics",
    )?;
    if map_elem(defs, labels.1, at, "Labels is not a map[string]string")? != STRING {
        return not_ours(
            lookup(defs, labels.1, at)?.at,
            "Labels is not a map[string]string",
        );
    }
    let family = map_elem(
        defs,
        metrics.1,
        at,
        "Metrics is not a map from name to family",
    )?;
    let why = "a family is not a struct of Timestamp and GobbableMetricFamily, both GobEncoders";
    let [time, body] = two_fields(defs, family, at, ["Timestamp", "GobbableMetricFamily"], why)?;
    for (_, id) in [time, body] {
        let d = lookup(defs, id, at)?;
        if !matches!(d.wire, Wire::Encoder) {
            return not_ours(d.at, why);
        }
    }
    Ok(Shape {
        labels: labels.0,
        time: time.0,
    })
}

/// Decodes a Go Pushgateway persistence file into its groups.
pub(crate) fn read(data: &[u8]) -> Res<Vec<RestoredGroup>> {
    let mut c = Cursor {
        data,
        pos: 0,
        end: data.len(),
    };
    if data.is_empty() {
        return c.err(GobErrorKind::Empty);
    }
    let mut defs: Vec<Def> = Vec::new();
    while c.pos < data.len() {
        let at = c.pos;
        let len = usize::try_from(c.uint()?).unwrap_or(usize::MAX);
        if len > data.len() - c.pos {
            c.pos = at;
            return c.err(GobErrorKind::Truncated);
        }
        c.end = c.pos + len;
        let id = c.int()?;
        if id >= 0 {
            let shape = shape(&defs, id, at)?;
            let groups = groups(&mut c, &shape)?;
            if c.pos != data.len() {
                return c.err(GobErrorKind::DataAfterValue);
            }
            return Ok(groups);
        }
        let id = id.checked_neg().unwrap_or(0);
        if id < FIRST_USER_ID {
            return c.err(GobErrorKind::BadTypeDefinition("id of a predefined type"));
        }
        if defs.iter().any(|d| d.id == id) {
            return c.err(GobErrorKind::Redefined(id));
        }
        let wire = wire_type(&mut c)?;
        if c.pos != c.end {
            return c.err(GobErrorKind::BadTypeDefinition(
                "bytes after the definition",
            ));
        }
        defs.push(Def { id, at, wire });
        c.end = data.len();
    }
    c.err(GobErrorKind::NoValue)
}

/// The top-level map, sent as a singleton: a zero delta, then the map.
fn groups(c: &mut Cursor, shape: &Shape) -> Res<Vec<RestoredGroup>> {
    if c.uint()? != 0 {
        c.pos -= 1;
        return c.err(GobErrorKind::NotPushgateway("the value is not a singleton"));
    }
    let n = c.uint()?;
    let mut out = Vec::new();
    for _ in 0..n {
        // The reference's grouping key: label pairs joined by 0xff bytes
        // (so not UTF-8); ours is made from the labels.
        c.bytes()?;
        out.push(group(c, shape)?);
    }
    Ok(out)
}

/// One group: both of its fields are maps keyed by a string (a label name,
/// a family name; the latter is also inside the family's body).
fn group(c: &mut Cursor, shape: &Shape) -> Res<RestoredGroup> {
    let mut g = RestoredGroup {
        line: c.pos,
        key: Vec::new(),
        push_time: None,
        failure_time: None,
        ttl: None,
        families: Vec::new(),
        family_times: Vec::new(),
        labels_shared: false,
    };
    c.fields(2, &mut |c, n| {
        for _ in 0..c.uint()? {
            let name = c.str()?;
            if n == shape.labels {
                let value = c.str()?;
                // Go's map order is random; keys are sorted by name.
                let i = g.key.partition_point(|l| &*l.name < name);
                g.key.insert(i, Label::new(name, value));
            } else {
                let (time, family) = entry(c, shape)?;
                add_family(&mut g, time, family);
            }
        }
        Ok(())
    })?;
    Ok(g)
}

/// The push time gauges become the group's times (our store makes them
/// itself); other families are kept with their push time.
fn add_family(g: &mut RestoredGroup, time: Option<Nanos>, family: MetricFamily) {
    match &*family.name {
        PUSH_TIME => g.push_time = gauge_time(time, &family),
        PUSH_FAILURE_TIME => g.failure_time = gauge_time(time, &family),
        _ if family.metrics.is_empty() => {}
        name => {
            if let Some(t) = time {
                g.family_times.push((name.into(), t));
            }
            g.families.push(family);
        }
    }
}

/// A `TimestampedMetricFamily`: its push time and its body.
fn entry(c: &mut Cursor, shape: &Shape) -> Res<(Option<Nanos>, MetricFamily)> {
    let (mut time, mut family) = (None, None);
    c.fields(2, &mut |c, n| {
        let at = c.pos;
        let b = c.bytes()?;
        if n == shape.time {
            time = Some(go_time(b).ok_or(GobError {
                offset: at,
                kind: GobErrorKind::BadTime(b.len()),
            })?);
        } else {
            let start = c.pos - b.len();
            let f = protobuf::decode_one(b, NameScheme::Utf8).map_err(|e| GobError {
                offset: start + e.offset,
                kind: GobErrorKind::Family(e),
            })?;
            family = Some(f);
        }
        Ok(())
    })?;
    match family {
        Some(family) => Ok((time, family)),
        None => c.err(GobErrorKind::MissingField("GobbableMetricFamily")),
    }
}

/// `time.Time.MarshalBinary`: version 1 or 2, seconds since year 1 (8
/// bytes), nanoseconds (4), zone offset in minutes (2), and in version 2
/// the offset's seconds (1). The zone does not change the instant.
fn go_time(b: &[u8]) -> Option<Nanos> {
    if !matches!((b.len(), b.first()), (15, Some(1)) | (16, Some(2))) {
        return None;
    }
    let secs = i64::from_be_bytes(b[1..9].try_into().ok()?);
    let nanos = i64::from(u32::from_be_bytes(b[9..13].try_into().ok()?));
    if nanos >= 1_000_000_000 {
        return None;
    }
    secs.checked_sub(UNIX_TO_INTERNAL)?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// The time a `push_time_seconds` or `push_failure_time_seconds` entry
/// stands for. The reference writes 0 for "never" and otherwise
/// `float64(t.UnixNano())/1e9` of the entry's own `Timestamp`, which keeps
/// the nanoseconds the float lost; the value decides if they disagree.
fn gauge_time(time: Option<Nanos>, family: &MetricFamily) -> Option<Nanos> {
    let v = match family.metrics.first().map(|m| &m.value) {
        Some(Value::Gauge(v)) if *v != 0.0 => *v,
        _ => return None,
    };
    match time {
        Some(t) if t as f64 / 1e9 == v => Some(t),
        _ => Some((v * 1e9).round() as Nanos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MetricType;

    /// Written by the real Go Pushgateway 1.5.1: group {inst="",job="fx"}
    /// with a counter and its HELP, after a failed (timestamped) push.
    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/go-pushgateway-1.5.1.gob");

    #[test]
    fn the_reference_file_decodes() {
        let groups = read(FIXTURE).unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.key, vec![Label::new("inst", ""), Label::new("job", "fx")]);
        // The reference's scrape showed these floats; the nanoseconds
        // behind them come from the entries' own timestamps.
        let push = g.push_time.unwrap();
        let failure = g.failure_time.unwrap();
        assert_eq!(push as f64 / 1e9, 1.7960206397879434e9);
        assert_eq!(failure as f64 / 1e9, 1.7960206398027456e9);
        assert_eq!(g.families.len(), 1);
        let f = &g.families[0];
        assert_eq!(
            (&*f.name, f.metric_type),
            ("a_counter", MetricType::Counter)
        );
        assert_eq!(f.help.as_deref(), Some("Some help."));
        assert_eq!(f.metrics.len(), 1);
        assert_eq!(f.metrics[0].value, Value::Counter(3.0));
        let names: Vec<&str> = f.metrics[0].labels.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["inst", "instance", "job", "x"]);
        assert_eq!(g.family_times, vec![("a_counter".into(), push)]);
    }

    #[test]
    fn every_truncation_is_refused_within_the_file() {
        for len in 0..FIXTURE.len() {
            let e = read(&FIXTURE[..len]).unwrap_err();
            assert!(e.offset <= len, "cut at {len}: {e}");
        }
        assert_eq!(read(b"").unwrap_err().kind, GobErrorKind::Empty);
        let e = read(&FIXTURE[..FIXTURE.len() - 1]).unwrap_err();
        assert_eq!(e.kind, GobErrorKind::Truncated);
        assert!(e.to_string().starts_with("byte "), "{e}");
    }

    #[test]
    fn foreign_types_are_refused_where_they_are_defined() {
        let at = find(FIXTURE, b"Labels");
        let mut bad = FIXTURE.to_vec();
        bad[at + 3] = b'3';
        let e = read(&bad).unwrap_err();
        assert!(matches!(e.kind, GobErrorKind::NotPushgateway(_)), "{e}");
        // The offset is that of the group struct's definition message.
        assert!(e.offset < at && at - e.offset < 16, "{e}");
        let mut longer = FIXTURE.to_vec();
        longer.push(0);
        assert_eq!(
            read(&longer).unwrap_err().kind,
            GobErrorKind::DataAfterValue
        );
    }

    #[test]
    fn no_flipped_byte_panics() {
        for i in 0..FIXTURE.len() {
            let mut bad = FIXTURE.to_vec();
            bad[i] ^= 0xff;
            if let Err(e) = read(&bad) {
                assert!(e.offset <= bad.len(), "flip at {i}: {e}");
            }
        }
    }

    #[test]
    fn numbers_and_times_as_go_writes_them() {
        let mut c = Cursor {
            data: &[0x7f, 0xfe, 0x01, 0x00, 0x03, 0x80],
            pos: 0,
            end: 6,
        };
        assert_eq!(c.uint(), Ok(127));
        assert_eq!(c.uint(), Ok(256));
        assert_eq!(c.int(), Ok(-2));
        assert_eq!(c.uint().unwrap_err().kind, GobErrorKind::BadNumber);
        let mut t = vec![1];
        t.extend_from_slice(&UNIX_TO_INTERNAL.to_be_bytes());
        t.extend_from_slice(&7u32.to_be_bytes());
        t.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(go_time(&t), Some(7));
        t[0] = 2;
        assert_eq!(go_time(&t), None);
        t.push(30);
        assert_eq!(go_time(&t), Some(7));
    }

    fn find(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).position(|w| w == needle).unwrap()
    }
}
