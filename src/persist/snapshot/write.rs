//! Writing a snapshot: one pass over the groups, every record a line.

use std::io::{self, Write};
use std::sync::Arc;

use crate::model::{Label, Metric, NativeHistogram, Span, Value, merged};
use crate::store::{Group, GroupKey, Nanos};

use super::extras;
use super::fields::{write_f64, write_labels, write_name};
use super::version::{MAGIC, VERSION};

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

/// How much of the file is rendered before it is handed on: records go
/// straight into one buffer, so each byte is copied once on its way to the
/// writer and checksummed in large runs, rather than a line at a time.
const BATCH: usize = 1 << 20;

/// Everything but the end record; returns the group and series counts.
fn write_groups(
    out: &mut dyn Write,
    groups: &[(GroupKey, Arc<Group>)],
) -> io::Result<(usize, usize)> {
    writeln!(out, "{MAGIC} {VERSION}")?;
    writeln!(
        out,
        "# Written by pushgateway {}. Format: see docs/persistence.md.",
        env!("CARGO_PKG_VERSION")
    )?;
    let mut series = 0usize;
    let mut batch = Vec::with_capacity(BATCH + (64 << 10));
    for (key, group) in groups {
        batch.extend_from_slice(b"group ");
        write_labels(&mut batch, key.iter());
        batch.extend_from_slice(b"\ntimes ");
        write_time(&mut batch, group.push_time);
        batch.push(b' ');
        write_time(&mut batch, group.failure_time);
        batch.push(b'\n');
        if let Some(ttl) = group.ttl {
            let _ = writeln!(batch, "ttl {}", ttl.as_nanos());
        }
        for (name, fam) in group.families.iter() {
            batch.extend_from_slice(b"family ");
            write_name(&mut batch, name);
            batch.push(b' ');
            batch.extend_from_slice(fam.metric_type.keyword().as_bytes());
            let _ = writeln!(batch, " {}", fam.pushed_at);
            if let Some(help) = &fam.help {
                batch.extend_from_slice(b"help ");
                for &b in help.as_bytes() {
                    match b {
                        b'\\' => batch.extend_from_slice(b"\\\\"),
                        b'\n' => batch.extend_from_slice(b"\\n"),
                        _ => batch.push(b),
                    }
                }
                batch.push(b'\n');
            }
            for m in &fam.metrics {
                write_series(&mut batch, m, group.time_label_slice());
                extras::write(&mut batch, m);
                series += 1;
                if batch.len() >= BATCH {
                    out.write_all(&batch)?;
                    batch.clear();
                }
            }
        }
    }
    out.write_all(&batch)?;
    Ok((groups.len(), series))
}

fn write_time(out: &mut Vec<u8>, t: Option<Nanos>) {
    match t {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push(b'-'),
    }
}

/// One series with all its labels, its own and its group's: the file
/// shows every series as a scrape does.
fn write_series(out: &mut Vec<u8>, m: &Metric, shared: &[Label]) {
    out.extend_from_slice(b"series ");
    write_labels(out, merged(&m.labels, shared));
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
                let _ = write!(out, ":{}", b.count);
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
    let _ = write!(out, " count={count}");
}

/// `text` with its end record's checksum recomputed, as after a
/// deliberate edit: what is left to find is the edit itself.
#[cfg(test)]
pub(crate) fn reseal(text: &str) -> String {
    let start = text.trim_end().rfind('\n').unwrap() + 1;
    let (body, end) = text.split_at(start);
    let end = end.split(" crc32=").next().unwrap().trim_end();
    format!(
        "{body}{end} crc32={:08x}\n",
        crc32fast::hash(body.as_bytes())
    )
}
