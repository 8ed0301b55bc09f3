//! The web page at `/`: every group with its labels, last push time and
//! status, and its metrics. Served from the binary with no external assets.
//!
//! This is the plain first version: one server-rendered HTML page, readable
//! without JavaScript.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use crate::exposition;
use crate::logging::rfc3339_millis;
use crate::store::{Nanos, Store};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(t: Option<Nanos>) -> String {
    match t {
        Some(n) if n > 0 => rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(n as u64)),
        _ => "never".to_owned(),
    }
}

pub fn status_page(store: &Store, flags: &[(String, String)]) -> String {
    let mut h = String::with_capacity(4096 + store.series_count() * 64);
    h.push_str(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Pushgateway</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}\
         .label{display:inline-block;background:#eef;border-radius:3px;padding:0 .4em;margin:0 .2em .2em 0;font-family:monospace}\
         .ok{color:#070}.failed{color:#b00}pre{background:#f6f6f6;padding:.5em;overflow:auto}\
         </style></head><body><h1>Pushgateway</h1>",
    );
    let _ = write!(
        h,
        "<p>{} group(s), {} series.</p>",
        store.group_count(),
        store.series_count()
    );
    h.push_str("<table><tr><th>Group</th><th>Last push</th><th>Status</th></tr>");
    for (key, group) in store.groups() {
        h.push_str("<tr><td><details><summary>");
        for l in key.iter() {
            let _ = write!(
                h,
                "<span class=\"label\">{}=\"{}\"</span>",
                escape(&l.name),
                escape(&l.value)
            );
        }
        h.push_str("</summary><pre>");
        for (name, fam) in &group.families {
            let mut text = Vec::new();
            exposition::write_header(&mut text, name, fam.help.as_deref(), fam.metric_type);
            for m in &fam.metrics {
                exposition::write_metric(&mut text, name, m);
            }
            h.push_str(&escape(&String::from_utf8_lossy(&text)));
        }
        h.push_str("</pre></details></td>");
        let failed =
            matches!((group.failure_time, group.push_time), (Some(f), p) if f > p.unwrap_or(0));
        let _ = write!(
            h,
            "<td>{}</td><td class=\"{}\">{}</td></tr>",
            time(group.push_time),
            if failed { "failed" } else { "ok" },
            if failed {
                format!("last push failed at {}", time(group.failure_time))
            } else {
                "ok".into()
            }
        );
    }
    h.push_str("</table><h2>Flags</h2><table>");
    for (k, v) in flags {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
