//! Snapshot records for what only protobuf carries: created timestamps and
//! exemplars. They follow the `series` record they belong to:
//!
//! ```text
//! series {job="j"} 17
//! created 1700000000:500000000
//! exemplar counter {trace_id="abc"} 1.5 1700000001:0
//! exemplar bucket=2 {trace_id="def"} 0.3 -
//! exemplar native {trace_id="ghi"} 0.7 1700000002:7
//! ```
//!
//! Times are protobuf's seconds and nanoseconds as pushed (`-` for none),
//! so they come back bit for bit; `bucket=N` is the classic bucket's index.

use crate::model::{Exemplar, Extra, Metric, Timestamp, Value};

use super::fields::{parse_f64, parse_labels, write_f64, write_labels};

/// Appends the records for `m`'s extras, if it has any.
pub(super) fn write(out: &mut Vec<u8>, m: &Metric) {
    let Some(extra) = m.extra.as_deref() else {
        return;
    };
    if let Some(t) = extra.created {
        out.extend_from_slice(b"created ");
        write_time(out, Some(t));
        out.push(b'\n');
    }
    if let Some(e) = &extra.exemplar {
        write_exemplar(out, "counter", e);
    }
    for (i, e) in &extra.bucket_exemplars {
        write_exemplar(out, &format!("bucket={i}"), e);
    }
    for e in &extra.exemplars {
        write_exemplar(out, "native", e);
    }
}

fn write_exemplar(out: &mut Vec<u8>, place: &str, e: &Exemplar) {
    out.extend_from_slice(b"exemplar ");
    out.extend_from_slice(place.as_bytes());
    out.push(b' ');
    write_labels(out, &e.labels);
    out.push(b' ');
    write_f64(out, e.value);
    out.push(b' ');
    write_time(out, e.timestamp);
    out.push(b'\n');
}

fn write_time(out: &mut Vec<u8>, t: Option<Timestamp>) {
    match t {
        Some(t) => out.extend_from_slice(format!("{}:{}", t.seconds, t.nanos).as_bytes()),
        None => out.push(b'-'),
    }
}

fn parse_time(s: &str) -> Result<Option<Timestamp>, String> {
    if s == "-" {
        return Ok(None);
    }
    let bad = || format!("{s:?} is not seconds:nanoseconds");
    let (secs, nanos) = s.split_once(':').ok_or_else(bad)?;
    Ok(Some(Timestamp {
        seconds: secs.parse().map_err(|_| bad())?,
        nanos: nanos.parse().map_err(|_| bad())?,
    }))
}

/// Reads a `created` record into the series it follows.
pub(super) fn read_created(m: &mut Metric, rest: &str) -> Result<(), String> {
    if matches!(m.value, Value::Gauge(_) | Value::Untyped(_)) {
        return Err("gauges and untyped series have no created timestamp".into());
    }
    let extra = m.extra.get_or_insert_with(Box::default);
    if extra.created.is_some() {
        return Err("a second created record for the same series".into());
    }
    extra.created = parse_time(rest)?;
    if extra.created.is_none() {
        return Err("expected seconds:nanoseconds".into());
    }
    Ok(())
}

/// Reads an `exemplar` record into the series it follows.
pub(super) fn read_exemplar(m: &mut Metric, rest: &str) -> Result<(), String> {
    let (place, rest) = rest.split_once(' ').ok_or("expected a place and labels")?;
    let (labels, tail) = parse_labels(rest)?;
    let mut parts = tail.trim_start_matches(' ').split(' ');
    let (Some(value), Some(time), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected labels, a value and a time".into());
    };
    let e = Exemplar {
        labels: labels.into(),
        value: parse_f64(value)?,
        timestamp: parse_time(time)?,
    };
    let buckets = match &m.value {
        Value::Histogram(h) => Some(h.buckets.len()),
        Value::Counter(_) => None,
        _ => return Err("only counters and histograms have exemplars".into()),
    };
    let extra = m.extra.get_or_insert_with(Box::default);
    place_exemplar(extra, place, buckets, e)
}

fn place_exemplar(
    extra: &mut Extra,
    place: &str,
    buckets: Option<usize>,
    e: Exemplar,
) -> Result<(), String> {
    match (place, buckets) {
        ("counter", None) if extra.exemplar.is_none() => extra.exemplar = Some(e),
        ("counter", None) => return Err("a second exemplar for the same counter".into()),
        ("native", Some(_)) => extra.exemplars.push(e),
        (p, Some(n)) if p.starts_with("bucket=") => {
            let i: u32 = p["bucket=".len()..]
                .parse()
                .map_err(|_| format!("{p:?} is not a bucket index"))?;
            if i as usize >= n {
                return Err(format!("bucket {i} does not exist (the series has {n})"));
            }
            if extra.bucket_exemplar(i as usize).is_some() {
                return Err(format!("a second exemplar for bucket {i}"));
            }
            extra.bucket_exemplars.push((i, e));
        }
        (p, _) => {
            return Err(format!(
                "{p:?} is not a place for an exemplar of this series"
            ));
        }
    }
    Ok(())
}
