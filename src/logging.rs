//! Log lines in the reference's shapes: logfmt
//! (`ts=... caller=... level=info msg="..." key=value`) or one JSON object
//! per line, with a UTC timestamp in milliseconds.
//!
//! Log shippers parse these lines, so the field names are the reference's.
//! Structured fields come from `log`'s key-values (`info!(key = v; "msg")`).

use crate::time::rfc3339_millis;
use std::fmt::Write as _;
use std::io::Write;
use std::time::SystemTime;

use crate::cli::LogFormat;
use crate::wire::json::json_string;

/// Writes each record as one line to stderr, in one write, so lines from
/// several threads never interleave. All a logger needs to do here; a
/// logging framework would add filters by module and colours nobody uses.
struct Stderr {
    format: LogFormat,
}

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format_record(record, self.format, SystemTime::now());
            // Nowhere to report a failed log write to.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger. `RUST_LOG` is not consulted: `--log.level` decides,
/// as with the reference.
pub(crate) fn init(level: log::LevelFilter, format: LogFormat) {
    // A second init (as in tests) keeps the first logger; nothing to do.
    if log::set_boxed_logger(Box::new(Stderr { format })).is_ok() {
        log::set_max_level(level);
    }
}

fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug | log::Level::Trace => "debug",
    }
}

/// Formats one record as a complete line, newline included.
pub(crate) fn format_record(
    record: &log::Record<'_>,
    format: LogFormat,
    now: SystemTime,
) -> String {
    let ts = rfc3339_millis(now);
    let file = record.file().unwrap_or("?");
    let file = file.rsplit('/').next().unwrap_or(file);
    let caller = format!("{}:{}", file, record.line().unwrap_or(0));
    let mut fields: Vec<(String, String)> = vec![
        ("ts".into(), ts),
        ("caller".into(), caller),
        ("level".into(), level_name(record.level()).into()),
        ("msg".into(), record.args().to_string()),
    ];
    let mut kv = Collect(Vec::new());
    let _ = record.key_values().visit(&mut kv);
    fields.extend(kv.0);
    let mut out = String::new();
    match format {
        LogFormat::Logfmt => {
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push('=');
                logfmt_value(&mut out, v);
            }
        }
        LogFormat::Json => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&mut out, k);
                out.push(':');
                json_string(&mut out, v);
            }
            out.push('}');
        }
    }
    out.push('\n');
    out
}

struct Collect(Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Collect {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

/// Quotes a logfmt value when it holds anything but plain characters.
fn logfmt_value(out: &mut String, v: &str) {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\');
    if plain {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn logfmt_and_json_lines() {
        let kvs: &[(&str, &str)] = &[("listen_address", ":9091"), ("err", "a \"b\"")];
        let rec = log::Record::builder()
            .args(format_args!("starting pushgateway"))
            .level(log::Level::Info)
            .file(Some("src/main.rs"))
            .line(Some(7))
            .key_values(&kvs)
            .build();
        let line = format_record(&rec, LogFormat::Logfmt, UNIX_EPOCH);
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.000Z caller=main.rs:7 level=info msg=\"starting pushgateway\" listen_address=:9091 err=\"a \\\"b\\\"\"\n"
        );
        let json = format_record(&rec, LogFormat::Json, UNIX_EPOCH);
        assert!(json.starts_with("{\"ts\":\"1970-01-01T00:00:00.000Z\",\"caller\":\"main.rs:7\",\"level\":\"info\",\"msg\":\"starting pushgateway\""), "{json}");
        assert!(json.ends_with("\"err\":\"a \\\"b\\\"\"}\n"), "{json}");
    }
}
