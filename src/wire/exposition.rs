//! Writer for the text exposition format 0.0.4, byte-compatible with the
//! reference's `expfmt.MetricFamilyToText`.
//!
//! Byte compatibility matters beyond tidiness: people diff scrapes, and
//! recording rules and tests compare strings. So floats are written the way
//! Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes them (shortest
//! round-trip digits, exponent form below 1e-4 and from 1e+06 on, at least
//! two exponent digits), histograms get the implicit `+Inf` bucket, and
//! escaping follows the reference exactly.

use std::io;

use crate::model::{
    Label, Metric, MetricType, Side, Value, is_valid_label_name, is_valid_metric_name, merged,
};

/// The content type of the text format, as the reference sends it.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends `# HELP` (when there is help text) and `# TYPE` lines.
pub fn write_header(out: &mut Vec<u8>, name: &str, help: Option<&str>, t: MetricType) {
    if let Some(help) = help {
        out.extend_from_slice(b"# HELP ");
        write_name(out, name, is_valid_metric_name(name));
        out.push(b' ');
        escape_into(out, help, false);
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    write_name(out, name, is_valid_metric_name(name));
    out.push(b' ');
    out.extend_from_slice(t.as_str().as_bytes());
    out.push(b'\n');
}

/// Appends every sample line of one series.
pub fn write_metric(out: &mut Vec<u8>, name: &str, metric: &Metric) {
    write_lines(out, name, metric, LineLabels::Plain(&metric.labels));
}

/// Where a run of a group's labels goes in a stored line: a marker that
/// points into the group's rendered labels (`template::KeyText`, which
/// depends on this module's label writer, not the other way round).
pub trait Markers {
    /// Appends a marker for the group's labels `first..first + len`.
    fn write_marker(&self, out: &mut Vec<u8>, first: usize, len: usize);
}

/// Appends every sample line of one stored series whose labels are its
/// own (`metric.labels`) and its group's (`shared`): the own ones are
/// written, the group's become markers ([`template`](super::template)).
pub fn write_metric_template(
    out: &mut Vec<u8>,
    name: &str,
    metric: &Metric,
    (shared, key): (&[Label], &dyn Markers),
) {
    let labels = LineLabels::Spliced {
        own: &metric.labels,
        shared,
        key,
    };
    write_lines(out, name, metric, labels);
}

/// The labels of a line: written out, or the group's left as markers.
#[derive(Clone, Copy)]
enum LineLabels<'a> {
    Plain(&'a [Label]),
    Spliced {
        own: &'a [Label],
        shared: &'a [Label],
        /// `shared` rendered, where the markers point.
        key: &'a dyn Markers,
    },
}

impl LineLabels<'_> {
    fn is_empty(self) -> bool {
        match self {
            LineLabels::Plain(l) => l.is_empty(),
            LineLabels::Spliced { own, shared, .. } => own.is_empty() && shared.is_empty(),
        }
    }

    /// Writes the labels, each preceded by `sep` and then a comma.
    fn write(self, out: &mut Vec<u8>, sep: &mut u8) {
        match self {
            LineLabels::Plain(labels) => {
                for l in labels {
                    out.push(*sep);
                    write_label(out, l);
                    *sep = b',';
                }
            }
            LineLabels::Spliced { own, shared, key } => write_spliced(out, sep, own, shared, key),
        }
    }
}

/// Own labels written, runs of the group's as markers, in name order.
fn write_spliced(
    out: &mut Vec<u8>,
    sep: &mut u8,
    own: &[Label],
    shared: &[Label],
    key: &dyn Markers,
) {
    let mut run: Option<(usize, usize)> = None;
    let flush = |out: &mut Vec<u8>, sep: &mut u8, run: &mut Option<(usize, usize)>| {
        if let Some((first, len)) = run.take() {
            out.push(*sep);
            key.write_marker(out, first, len);
            *sep = b',';
        }
    };
    let mut labels = merged(own, shared);
    while let Some((l, side)) = labels.next_with_side() {
        match side {
            Side::Shared(i) => match &mut run {
                Some((first, len)) if *first + *len == i => *len += 1,
                _ => {
                    flush(out, sep, &mut run);
                    run = Some((i, 1));
                }
            },
            Side::Own => {
                flush(out, sep, &mut run);
                out.push(*sep);
                write_label(out, l);
                *sep = b',';
            }
        }
    }
    flush(out, sep, &mut run);
}

/// Appends `name="value"`, the name quoted when it is not a classic one.
pub fn write_label(out: &mut Vec<u8>, l: &Label) {
    write_name(out, &l.name, is_valid_label_name(&l.name));
    out.extend_from_slice(b"=\"");
    escape_into(out, &l.value, true);
    out.push(b'"');
}

fn write_lines(out: &mut Vec<u8>, name: &str, metric: &Metric, labels: LineLabels<'_>) {
    match &metric.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
            write_sample(out, name, "", labels, None, *v);
        }
        Value::Summary(s) => {
            for &(q, v) in &s.quantiles {
                write_sample(out, name, "", labels, Some(("quantile", q)), v);
            }
            write_sample(out, name, "_sum", labels, None, s.sum);
            write_sample(out, name, "_count", labels, None, s.count as f64);
        }
        Value::Histogram(h) => {
            let mut inf_seen = false;
            for b in &h.buckets {
                let le = Some(("le", b.upper_bound));
                write_sample(out, name, "_bucket", labels, le, b.exposed_count());
                inf_seen |= b.upper_bound == f64::INFINITY;
            }
            if !inf_seen {
                let le = Some(("le", f64::INFINITY));
                write_sample(out, name, "_bucket", labels, le, h.exposed_count());
            }
            write_sample(out, name, "_sum", labels, None, h.sum);
            write_sample(out, name, "_count", labels, None, h.exposed_count());
        }
    }
}

/// Appends one gauge line from bare labels and a value.
pub fn write_gauge(out: &mut Vec<u8>, name: &str, labels: &[Label], value: f64) {
    write_sample(out, name, "", LineLabels::Plain(labels), None, value);
}

fn write_sample(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: LineLabels<'_>,
    extra: Option<(&str, f64)>,
    value: f64,
) {
    // A UTF-8 metric name is written quoted as the first entry inside the
    // braces: {"my.metric",label="v"} 1.
    let legacy = is_valid_metric_name(name);
    let mut sep = b'{';
    if legacy {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(suffix.as_bytes());
    } else {
        out.push(b'{');
        let full = format!("{name}{suffix}");
        write_name(out, &full, false);
        sep = b',';
    }
    if !labels.is_empty() || extra.is_some() || !legacy {
        labels.write(out, &mut sep);
        if let Some((n, v)) = extra {
            out.push(sep);
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"=\"");
            write_float(out, v);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
    write_float(out, value);
    out.push(b'\n');
}

/// A name as is, or quoted and escaped when it is not a classic name.
fn write_name(out: &mut Vec<u8>, name: &str, plain: bool) {
    if plain {
        out.extend_from_slice(name.as_bytes());
    } else {
        out.push(b'"');
        escape_into(out, name, true);
        out.push(b'"');
    }
}

/// Escapes `\` and newline, and `"` inside label values.
pub fn escape_into(out: &mut Vec<u8>, s: &str, quotes: bool) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quotes => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// Writes a float as the reference's `writeFloat` does.
pub fn write_float(out: &mut Vec<u8>, f: f64) {
    if f == 1.0 {
        out.push(b'1');
    } else if f == 0.0 {
        out.push(b'0'); // Also for -0, as the reference does.
    } else if f == -1.0 {
        out.extend_from_slice(b"-1");
    } else if f.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if f == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if f == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else {
        write_go_g(out, f);
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` for finite, non-zero `f`.
///
/// Rust's `{:e}` yields the same shortest round-trip digits; only the layout
/// differs, so the digits and exponent are taken from it and laid out again
/// by Go's rules (`%e` when the exponent is < -4 or >= 6, else `%f`).
/// Without allocating: every stored series' line is rendered here, and a
/// restore renders a million of them.
pub fn write_go_g(out: &mut Vec<u8>, f: f64) {
    // Integers below 10^6 (counts, most gauges) print as integers.
    if f.fract() == 0.0 && f.abs() < 1e6 {
        write_int(out, f as i64);
        return;
    }
    let mut buf = [0u8; 48];
    let len = {
        let mut cur = &mut buf[..];
        // Cannot fail: the shortest form of an f64 takes at most 24 bytes.
        let _ = io::Write::write_fmt(&mut cur, format_args!("{:e}", f.abs()));
        48 - cur.len()
    };
    let sci = &buf[..len];
    let e_at = sci.iter().position(|&b| b == b'e').unwrap_or(len);
    let exp = parse_exp(sci.get(e_at + 1..).unwrap_or_default());
    let mut digits = [0u8; 24];
    let mut nd = 0usize;
    for &b in sci[..e_at].iter().filter(|b| b.is_ascii_digit()) {
        if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let digits = &digits[..nd];
    let nd = nd as i32;
    if f < 0.0 {
        out.push(b'-');
    }
    if !(-4..6).contains(&exp) {
        out.push(digits[0]);
        if nd > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        write_int(out, i64::from(e));
        return;
    }
    // Fixed notation; `dp` is the position of the decimal point in `digits`.
    let dp = exp + 1;
    if dp > 0 {
        for i in 0..dp {
            out.push(if i < nd { digits[i as usize] } else { b'0' });
        }
    } else {
        out.push(b'0');
    }
    let frac = (nd - dp).max(0);
    if frac > 0 {
        out.push(b'.');
        for i in 0..frac {
            let j = dp + i;
            out.push(if (0..nd).contains(&j) {
                digits[j as usize]
            } else {
                b'0'
            });
        }
    }
}

/// The exponent after `e` in Rust's `{:e}` output (`-7`, `12`).
fn parse_exp(s: &[u8]) -> i32 {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let n = digits
        .iter()
        .fold(0i32, |n, d| n * 10 + i32::from(d.wrapping_sub(b'0')));
    if neg { -n } else { n }
}

/// An integer in decimal.
fn write_int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bucket, Histogram, Summary};

    fn g(f: f64) -> String {
        let mut v = Vec::new();
        write_float(&mut v, f);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn floats_match_go() {
        // Expected strings are what Go's strconv.FormatFloat(f, 'g', -1, 64)
        // prints for these values.
        let cases: &[(f64, &str)] = &[
            (2398.283, "2398.283"),
            (99.0, "99"),
            (42.0, "42"),
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (-999999.0, "-999999"),
            (-1000000.0, "-1e+06"),
            (7.0, "7"),
            (1e-320, "1e-320"),
            (-1.25e-10, "-1.25e-10"),
            (1000000.0, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (1.7955782728786948e9, "1.7955782728786948e+09"),
            (1e21, "1e+21"),
            (1e308, "1e+308"),
            (-2.5, "-2.5"),
            (5e-324, "5e-324"),
            (1.5e-5, "1.5e-05"),
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.0, "-1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (18446744073709551615u64 as f64, "1.8446744073709552e+19"),
        ];
        for (f, want) in cases {
            assert_eq!(g(*f), *want, "formatting {f:e}");
        }
    }

    #[test]
    fn floats_round_trip() {
        for f in [0.1 + 0.2, 1.0 / 3.0, 6.02214076e23, 1e-300, 123.456e10] {
            assert_eq!(g(f).parse::<f64>().unwrap(), f);
        }
    }

    fn metric(labels: &[(&str, &str)], value: Value) -> Metric {
        let labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(n, v)).collect();
        Metric::new(labels.into(), value)
    }

    #[test]
    fn header_and_escaping() {
        let mut out = Vec::new();
        write_header(&mut out, "m", Some("a\\b\nc \"q\""), MetricType::Gauge);
        let m = metric(&[("a", "x\"y\\z\nw")], Value::Gauge(1.5));
        write_metric(&mut out, "m", &m);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP m a\\\\b\\nc \"q\"\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\nw\"} 1.5\n"
        );
    }

    #[test]
    fn utf8_names_are_quoted() {
        let mut out = Vec::new();
        write_header(&mut out, "my.metric", Some("h"), MetricType::Summary);
        let s = Summary {
            count: 1,
            sum: 2.0,
            quantiles: vec![],
        };
        write_metric(
            &mut out,
            "my.metric",
            &metric(&[("a.b", "x"), ("job", "j")], Value::Summary(Box::new(s))),
        );
        write_metric(
            &mut out,
            "plain",
            &metric(&[("a.b", "x")], Value::Gauge(1.0)),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP \"my.metric\" h\n# TYPE \"my.metric\" summary\n\
             {\"my.metric_sum\",\"a.b\"=\"x\",job=\"j\"} 2\n{\"my.metric_count\",\"a.b\"=\"x\",job=\"j\"} 1\n\
             plain{\"a.b\"=\"x\"} 1\n"
        );
        // What we write, we read back.
        let back = crate::wire::text_format::parse_with(
            b"# TYPE \"my.metric\" gauge\n{\"my.metric\",\"a.b\"=\"x\"} 1\n",
            crate::model::NameScheme::Utf8,
        )
        .unwrap();
        assert_eq!(&*back[0].name, "my.metric");
        assert_eq!(&*back[0].metrics[0].labels[0].name, "a.b");
    }

    #[test]
    fn summary_and_histogram_lines() {
        let mut out = Vec::new();
        let s = Summary {
            count: 5,
            sum: 2.5,
            quantiles: vec![(0.5, 1.0)],
        };
        write_metric(
            &mut out,
            "s",
            &metric(&[("j", "x")], Value::Summary(Box::new(s))),
        );
        let h = Histogram {
            count: 3,
            sum: 0.25,
            buckets: vec![Bucket::new(0.1, 1)],
            ..Histogram::default()
        };
        write_metric(&mut out, "h", &metric(&[], Value::Histogram(Box::new(h))));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "s{j=\"x\",quantile=\"0.5\"} 1\ns_sum{j=\"x\"} 2.5\ns_count{j=\"x\"} 5\n\
             h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 0.25\nh_count 3\n"
        );
    }
}
