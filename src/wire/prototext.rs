//! The protobuf text formats that `expfmt.Negotiate` offers besides the
//! delimited binary one: `encoding=text` (`prototext.Format` of each
//! family, multi-line, a blank line after each) and `encoding=compact-text`
//! (the family's `String()`, one line each).
//!
//! Written by transcoding the delimited protobuf scrape, field by field,
//! against the schema of client_model's `metrics.proto`: what is present
//! is exactly what the binary scrape carries, and fields come in the
//! order the schema declares them, as Go's encoder writes them. Go adds a
//! random space here and there so that nobody compares its output byte
//! for byte; this is its form without them.

use crate::wire::exposition::write_go_g;

/// One field of a message as the schema declares it.
struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    String,
    Double,
    Uint,
    Int64,
    Int32,
    Sint,
    /// client_model's `MetricType`.
    Type,
    Message(&'static [Field]),
}

const fn field(number: u64, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind }
}

// The messages of io.prometheus.client, fields in declaration order.
const FAMILY: &[Field] = &[
    field(1, "name", Kind::String),
    field(2, "help", Kind::String),
    field(3, "type", Kind::Type),
    field(4, "metric", Kind::Message(METRIC)),
    field(5, "unit", Kind::String),
];
const METRIC: &[Field] = &[
    field(1, "label", Kind::Message(LABEL)),
    field(2, "gauge", Kind::Message(VALUE)),
    field(3, "counter", Kind::Message(COUNTER)),
    field(4, "summary", Kind::Message(SUMMARY)),
    field(5, "untyped", Kind::Message(VALUE)),
    field(7, "histogram", Kind::Message(HISTOGRAM)),
    field(6, "timestamp_ms", Kind::Int64),
];
const LABEL: &[Field] = &[
    field(1, "name", Kind::String),
    field(2, "value", Kind::String),
];
const VALUE: &[Field] = &[field(1, "value", Kind::Double)];
const COUNTER: &[Field] = &[
    field(1, "value", Kind::Double),
    field(2, "exemplar", Kind::Message(EXEMPLAR)),
    field(3, "created_timestamp", Kind::Message(TIMESTAMP)),
];
const QUANTILE: &[Field] = &[
    field(1, "quantile", Kind::Double),
    field(2, "value", Kind::Double),
];
const SUMMARY: &[Field] = &[
    field(1, "sample_count", Kind::Uint),
    field(2, "sample_sum", Kind::Double),
    field(3, "quantile", Kind::Message(QUANTILE)),
    field(4, "created_timestamp", Kind::Message(TIMESTAMP)),
];
const HISTOGRAM: &[Field] = &[
    field(1, "sample_count", Kind::Uint),
    field(4, "sample_count_float", Kind::Double),
    field(2, "sample_sum", Kind::Double),
    field(3, "bucket", Kind::Message(BUCKET)),
    field(15, "created_timestamp", Kind::Message(TIMESTAMP)),
    field(5, "schema", Kind::Sint),
    field(6, "zero_threshold", Kind::Double),
    field(7, "zero_count", Kind::Uint),
    field(8, "zero_count_float", Kind::Double),
    field(9, "negative_span", Kind::Message(SPAN)),
    field(10, "negative_delta", Kind::Sint),
    field(11, "negative_count", Kind::Double),
    field(12, "positive_span", Kind::Message(SPAN)),
    field(13, "positive_delta", Kind::Sint),
    field(14, "positive_count", Kind::Double),
    field(16, "exemplars", Kind::Message(EXEMPLAR)),
];
const BUCKET: &[Field] = &[
    field(1, "cumulative_count", Kind::Uint),
    field(4, "cumulative_count_float", Kind::Double),
    field(2, "upper_bound", Kind::Double),
    field(3, "exemplar", Kind::Message(EXEMPLAR)),
];
const SPAN: &[Field] = &[
    field(1, "offset", Kind::Sint),
    field(2, "length", Kind::Uint),
];
const EXEMPLAR: &[Field] = &[
    field(1, "label", Kind::Message(LABEL)),
    field(2, "value", Kind::Double),
    field(3, "timestamp", Kind::Message(TIMESTAMP)),
];
const TIMESTAMP: &[Field] = &[
    field(1, "seconds", Kind::Int64),
    field(2, "nanos", Kind::Int32),
];

/// The layout: Go's `prototext.Format` or the message's `String()`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    MultiLine,
    Compact,
}

/// The families of a delimited protobuf body in the text format `layout`.
/// The body is the gateway's own scrape: anything malformed in it ends
/// the output there rather than failing.
pub fn from_delimited(mut body: &[u8], layout: Layout) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 3);
    while !body.is_empty() {
        let Some((len, rest)) = varint(body) else {
            break;
        };
        let Some(family) = usize::try_from(len).ok().and_then(|n| rest.get(..n)) else {
            break;
        };
        body = &rest[family.len()..];
        message(&mut out, family, FAMILY, layout, 0);
        if layout == Layout::MultiLine {
            // `Format` ends a multi-line message with a newline, and
            // expfmt's `Fprintln` adds one.
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// A value of the wire format.
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// The fields of a message, in wire order; stops at anything malformed.
fn fields(mut data: &[u8]) -> Vec<(u64, Wire<'_>)> {
    let mut out = Vec::new();
    while let Some((key, rest)) = varint(data) {
        let value = match key & 7 {
            0 => varint(rest).map(|(v, r)| (Wire::Varint(v), r)),
            1 => rest
                .split_first_chunk::<8>()
                .map(|(b, r)| (Wire::Fixed64(u64::from_le_bytes(*b)), r)),
            5 => rest
                .split_first_chunk::<4>()
                .map(|(b, r)| (Wire::Fixed32(u32::from_le_bytes(*b)), r)),
            2 => varint(rest).and_then(|(n, r)| {
                let n = usize::try_from(n).ok()?;
                Some((Wire::Bytes(r.get(..n)?), &r[n..]))
            }),
            _ => None,
        };
        let Some((value, rest)) = value else {
            break;
        };
        out.push((key >> 3, value));
        data = rest;
    }
    out
}

/// Writes the fields of one message of schema `schema`, in declaration
/// order (every occurrence of a repeated field together).
fn message(out: &mut Vec<u8>, data: &[u8], schema: &[Field], layout: Layout, depth: usize) {
    let wire = fields(data);
    let mut first = true;
    for f in schema {
        for (_, value) in wire.iter().filter(|(n, _)| *n == f.number) {
            for v in scalars(f.kind, *value) {
                separate(out, layout, depth, first);
                first = false;
                out.extend_from_slice(f.name.as_bytes());
                out.push(b':');
                match (f.kind, v) {
                    (Kind::Message(inner), Wire::Bytes(b)) => {
                        out.extend_from_slice(if layout == Layout::MultiLine {
                            b" {"
                        } else {
                            b"{"
                        });
                        let before = out.len();
                        message(out, b, inner, layout, depth + 1);
                        if layout == Layout::MultiLine && out.len() > before {
                            out.push(b'\n');
                            indent(out, depth);
                        }
                        out.push(b'}');
                    }
                    (kind, v) => {
                        if layout == Layout::MultiLine {
                            out.push(b' ');
                        }
                        scalar(out, kind, v);
                    }
                }
            }
        }
    }
}

/// The values of one field occurrence: itself, or a packed repeated
/// scalar's elements.
fn scalars(kind: Kind, value: Wire<'_>) -> Vec<Wire<'_>> {
    match (kind, value) {
        (Kind::Double, Wire::Bytes(b)) => b
            .chunks_exact(8)
            .map(|c| Wire::Fixed64(u64::from_le_bytes(c.try_into().expect("eight bytes"))))
            .collect(),
        (Kind::Uint | Kind::Int64 | Kind::Int32 | Kind::Sint | Kind::Type, Wire::Bytes(mut b)) => {
            let mut all = Vec::new();
            while let Some((v, rest)) = varint(b) {
                all.push(Wire::Varint(v));
                b = rest;
            }
            all
        }
        _ => vec![value],
    }
}

/// What goes before a field: a newline and indentation, or a space.
fn separate(out: &mut Vec<u8>, layout: Layout, depth: usize, first: bool) {
    match layout {
        Layout::MultiLine if first && depth == 0 => {}
        Layout::MultiLine => {
            out.push(b'\n');
            indent(out, depth);
        }
        Layout::Compact if !first => out.push(b' '),
        Layout::Compact => {}
    }
}

fn indent(out: &mut Vec<u8>, depth: usize) {
    for _ in 0..depth {
        out.extend_from_slice(b"  ");
    }
}

fn scalar(out: &mut Vec<u8>, kind: Kind, v: Wire<'_>) {
    use std::io::Write as _;
    match (kind, v) {
        (Kind::String, Wire::Bytes(b)) => quoted(out, b),
        (Kind::Double, Wire::Fixed64(bits)) => double(out, f64::from_bits(bits)),
        (Kind::Uint, Wire::Varint(n)) => {
            let _ = write!(out, "{n}");
        }
        (Kind::Int64, Wire::Varint(n)) => {
            let _ = write!(out, "{}", n as i64);
        }
        (Kind::Int32, Wire::Varint(n)) => {
            let _ = write!(out, "{}", n as i32);
        }
        (Kind::Sint, Wire::Varint(n)) => {
            let _ = write!(out, "{}", (n >> 1) as i64 ^ -((n & 1) as i64));
        }
        (Kind::Type, Wire::Varint(n)) => match type_name(n) {
            Some(name) => out.extend_from_slice(name.as_bytes()),
            None => {
                let _ = write!(out, "{n}");
            }
        },
        // A wire type the schema does not expect: shown as a number.
        (_, Wire::Varint(n) | Wire::Fixed64(n)) => {
            let _ = write!(out, "{n}");
        }
        (_, Wire::Fixed32(n)) => {
            let _ = write!(out, "{n}");
        }
        (_, Wire::Bytes(b)) => quoted(out, b),
    }
}

fn type_name(n: u64) -> Option<&'static str> {
    Some(match n {
        0 => "COUNTER",
        1 => "GAUGE",
        2 => "SUMMARY",
        3 => "UNTYPED",
        4 => "HISTOGRAM",
        5 => "GAUGE_HISTOGRAM",
        _ => return None,
    })
}

/// A double as protobuf-go's text encoder writes it: `strconv`'s `'g'`
/// shortest form, and `nan`, `inf`, `-inf`.
fn double(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"nan");
    } else if f == f64::INFINITY {
        out.extend_from_slice(b"inf");
    } else if f == f64::NEG_INFINITY {
        out.extend_from_slice(b"-inf");
    } else if f == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() { b"-0" } else { b"0" });
    } else {
        write_go_g(out, f);
    }
}

/// A string as protobuf-go's text encoder quotes it: `"`, `\` and control
/// characters escaped, C1 controls as `\u00XX`, other UTF-8 as it is.
fn quoted(out: &mut Vec<u8>, b: &[u8]) {
    use std::io::Write as _;
    out.push(b'"');
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if c < ' ' || c == '\x7f' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if ('\u{80}'..='\u{9f}').contains(&c) => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for &byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out.push(b'"');
}

fn varint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, &data[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        Bucket, Exemplar, Extra, Histogram, Label, Metric, MetricType, Timestamp, Value,
    };
    use crate::wire::protobuf::encode_family;

    fn body() -> Vec<u8> {
        let mut out = Vec::new();
        let labels = vec![
            Label::new("job", "a\"b\\c\nd\u{85}é"),
            Label::new("le_x", "1"),
        ];
        let mut counter = Metric::new(labels.clone().into(), Value::Counter(1e6));
        counter.extra = Some(Box::new(Extra {
            created: Some(Timestamp {
                seconds: 5,
                nanos: 7,
            }),
            exemplar: Some(Exemplar {
                labels: vec![Label::new("trace_id", "t")].into(),
                value: 0.5,
                timestamp: None,
            }),
            ..Extra::default()
        }));
        encode_family(
            &mut out,
            "c_total",
            Some("A counter."),
            MetricType::Counter,
            [counter].iter(),
        );
        let h = Histogram {
            count: 3,
            sum: f64::NAN,
            buckets: vec![Bucket::new(0.25, 1), Bucket::new(f64::INFINITY, 3)],
            ..Histogram::default()
        };
        let hist = Metric::new(Vec::new().into(), Value::Histogram(Box::new(h)));
        encode_family(
            &mut out,
            "h",
            None,
            MetricType::GaugeHistogram,
            [hist].iter(),
        );
        out
    }

    #[test]
    fn multi_line_as_prototext_format() {
        let text = String::from_utf8(from_delimited(&body(), Layout::MultiLine)).unwrap();
        let want = r#"name: "c_total"
help: "A counter."
type: COUNTER
metric: {
  label: {
    name: "job"
    value: "a\"b\\c\nd\u0085é"
  }
  label: {
    name: "le_x"
    value: "1"
  }
  counter: {
    value: 1e+06
    exemplar: {
      label: {
        name: "trace_id"
        value: "t"
      }
      value: 0.5
    }
    created_timestamp: {
      seconds: 5
      nanos: 7
    }
  }
}

name: "h"
type: GAUGE_HISTOGRAM
metric: {
  histogram: {
    sample_count: 3
    sample_sum: nan
    bucket: {
      cumulative_count: 1
      upper_bound: 0.25
    }
    bucket: {
      cumulative_count: 3
      upper_bound: inf
    }
  }
}

"#;
        assert_eq!(text, want);
    }

    #[test]
    fn compact_as_string() {
        let text = String::from_utf8(from_delimited(&body(), Layout::Compact)).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                r#"name:"c_total" help:"A counter." type:COUNTER metric:{label:{name:"job" value:"a\"b\\c\nd\u0085é"} label:{name:"le_x" value:"1"} counter:{value:1e+06 exemplar:{label:{name:"trace_id" value:"t"} value:0.5} created_timestamp:{seconds:5 nanos:7}}}"#
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                r#"name:"h" type:GAUGE_HISTOGRAM metric:{histogram:{sample_count:3 sample_sum:nan bucket:{cumulative_count:1 upper_bound:0.25} bucket:{cumulative_count:3 upper_bound:inf}}}"#
            )
        );
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn packed_and_signed_scalars() {
        // A histogram message: schema -1 (zigzag 1), deltas 2 and -1
        // packed (zigzag 4, 1), two positive counts packed.
        let mut h = vec![0x28, 0x01, 0x6a, 0x02, 0x04, 0x01, 0x72, 0x10];
        h.extend_from_slice(&1.5f64.to_le_bytes());
        h.extend_from_slice(&(-0.0f64).to_le_bytes());
        let mut text = Vec::new();
        message(&mut text, &h, HISTOGRAM, Layout::Compact, 0);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "schema:-1 positive_delta:2 positive_delta:-1 positive_count:1.5 positive_count:-0"
        );
    }

    #[test]
    fn a_truncated_body_ends_the_output() {
        let mut b = body();
        b.truncate(b.len() - 3);
        let text = String::from_utf8(from_delimited(&b, Layout::Compact)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(from_delimited(&[0xff], Layout::MultiLine).is_empty());
    }
}
