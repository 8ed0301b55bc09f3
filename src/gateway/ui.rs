//! The web page at `/`: every group with its labels, when it last pushed
//! and whether that worked, its metrics on demand, a delete button, and a
//! status view (flags, build, start time).
//!
//! One self-contained HTML document rendered on the server: no external
//! assets, no CDN, a few lines of script for the filter box (labels and
//! metric names), the delete button and remembering which rows are open
//! across reloads (`sessionStorage`, as the Go page since 1.7). Links are
//! relative, so the page works under any route prefix and behind a reverse
//! proxy.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::native;
use crate::model::Value;
use crate::store::{Group, Nanos, StoreView};
use crate::time::rfc3339_millis;
use crate::wire::exposition;
use crate::wire::json::json_string;
use crate::wire::path::{encode_base64, escape_name};

/// Everything the page shows besides the store.
pub(crate) struct PageInfo<'a> {
    pub flags: &'a [(String, String)],
    pub build: &'a [(&'static str, String)],
    pub start_time: Nanos,
    pub now: Nanos,
    /// `--web.enable-admin-api` (and, with write scopes, the right to use
    /// it): offer deleting a whole job's groups, and all groups.
    pub admin_api: bool,
    /// With write scopes, who asks: a group's delete button is offered
    /// only where they may change it.
    pub scope: Option<&'a crate::access::scopes::Scope>,
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
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

/// "3 minutes ago" style age of `t` at `now`.
pub(crate) fn ago(t: Option<Nanos>, now: Nanos) -> String {
    let Some(t) = t.filter(|t| *t > 0) else {
        return "never".into();
    };
    let secs = (now - t).max(0) / 1_000_000_000;
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// "expires in 3 minutes" style time until `t` at `now`.
fn expires_in(t: Nanos, now: Nanos) -> String {
    let left = ago(Some(now.max(1)), t.max(now));
    format!("expires in {}", left.trim_end_matches(" ago"))
}

/// The URL path (relative to the page) that deletes this group. Every
/// value is base64-encoded and every name `U__`-escaped where it is not a
/// legacy name, so any byte, `/` and `..` included, survives and the path
/// names exactly this group.
fn delete_path(key: &[crate::model::Label]) -> String {
    let b64 = |v: &str| {
        if v.is_empty() {
            "=".to_owned()
        } else {
            encode_base64(v.as_bytes())
        }
    };
    let job = key
        .iter()
        .find(|l| &*l.name == "job")
        .map(|l| &*l.value)
        .unwrap_or("");
    let mut p = format!("metrics/job@base64/{}", b64(job));
    for l in key.iter().filter(|l| &*l.name != "job") {
        let _ = write!(p, "/{}@base64/{}", escape_name(&l.name), b64(&l.value));
    }
    p
}

/// The page's style, readable in `page/style.css`.
const STYLE: &str = include_str!("page/style.css");

/// The page's behaviour, readable in `page/script.js`.
const SCRIPT: &str = include_str!("page/script.js");

/// The positions of the group's metric names in the store's sorted list
/// of names (`Store::family_names`), space-separated. The page carries
/// that list once (lower-cased, the filter ignores case) and each row only
/// these positions: groups of one job share their names, so the page stays
/// small while the filter still finds a group by a metric it pushed ("which
/// job pushes backup_last_success?").
fn name_ids(group: &Group, names: &[&str]) -> String {
    let mut out = String::new();
    for name in group.families.keys() {
        if let Ok(i) = names.binary_search(&&**name) {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{i}");
        }
    }
    out
}

/// One group's row; `may_delete`: offer its delete button.
fn group_row(
    h: &mut String,
    key: &[crate::model::Label],
    group: &Group,
    (now, may_delete): (Nanos, bool),
    names: &[&str],
) {
    let mut text = String::new();
    let mut labels = String::new();
    for l in key {
        let _ = write!(
            labels,
            "<span class=\"label\"><b>{}</b>=\"{}\"</span>",
            escape(&l.name),
            escape(&l.value)
        );
        let _ = write!(text, "{}=\"{}\" ", l.name, l.value);
    }
    let series: usize = group.families.values().map(|f| f.metrics.len()).sum();
    let ok = group.last_push_successful();
    let _ = write!(
        h,
        "<tr class=\"group\" data-text=\"{}\" data-f=\"{}\"><td><details data-path=\"ui/group/{}\"><summary>{labels} <small>({} famil{}, {series} series)</small></summary><pre>",
        escape(&text.to_lowercase()),
        name_ids(group, names),
        escape(&delete_path(key)),
        group.families.len(),
        if group.families.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    // Filled in when the row is expanded, so the page stays small however
    // many series the groups hold.
    h.push_str("loading\u{2026}</pre></details></td>");
    let expiry = group.deadline.map_or(String::new(), |d| {
        format!("<small class=\"expiry\">{}</small>", expires_in(d, now))
    });
    let _ = write!(
        h,
        "<td class=\"when\">{}<small>{}</small>{expiry}</td>",
        ago(group.push_time, now),
        time(group.push_time)
    );
    if ok {
        h.push_str("<td><span class=\"ok\">&#10003; OK</span></td>");
    } else {
        let _ = write!(
            h,
            "<td class=\"when\"><span class=\"failed\">&#10007; failed</span><small>{}</small></td>",
            time(group.failure_time)
        );
    }
    if may_delete {
        let _ = write!(
            h,
            "<td><button class=\"delete\" data-path=\"{}\" data-name=\"{}\">Delete</button></td></tr>",
            escape(&delete_path(key)),
            escape(text.trim_end())
        );
    } else {
        h.push_str("<td></td></tr>");
    }
}

/// The native part of a histogram, which the text format cannot carry, as
/// a comment after the series' lines: the string 1.11's page shows as
/// "Native Histogram representation" (`formatHistogram` in
/// `handler/status.go`, that is `Histogram.String`).
fn write_native(out: &mut Vec<u8>, v: &Value) {
    let Value::Histogram(h) = v else { return };
    let Some(n) = native::native(h) else { return };
    out.extend_from_slice(b"# native histogram: ");
    out.extend_from_slice(n.go_string().as_bytes());
    out.push(b'\n');
}

/// One group's metrics in the text format, for an expanded row; None if
/// the group is gone.
pub(crate) fn group_text(group: &Group) -> String {
    let mut exp = Vec::new();
    for (name, fam) in group.families.iter() {
        exposition::write_header(&mut exp, name, fam.help.as_deref(), fam.metric_type);
        for m in &fam.metrics {
            exposition::write_metric(&mut exp, name, &group.exposed(m));
            write_native(&mut exp, &m.value);
        }
    }
    if exp.is_empty() {
        return "(no metrics: the last push was empty)".into();
    }
    String::from_utf8_lossy(&exp).into_owned()
}

/// A row before a job's groups offering to delete them all at once
/// (`/api/v1/admin/delete` with `{job="..."}`), for jobs with several.
fn job_row(h: &mut String, job: &str, n: usize) {
    if n < 2 {
        return;
    }
    let job = escape(job);
    let _ = write!(
        h,
        "<tr class=\"job\"><td colspan=\"4\"><button class=\"deljob\" data-job=\"{job}\" data-n=\"{n}\">Delete all {n} groups of job {job}</button></td></tr>"
    );
}

/// The whole page.
pub(crate) fn status_page(store: &StoreView, info: &PageInfo) -> String {
    let mut h = String::with_capacity(8192 + store.groups.len() * 400);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Pushgateway</title><style>{STYLE}</style></head><body>\
         <header><h1><span>&#9650;</span> Pushgateway</h1><nav><a href=\"#groups\">Metrics</a><a href=\"#status\">Status</a></nav></header><main>"
    );
    let failed = store
        .groups
        .iter()
        .filter(|(_, g)| !g.last_push_successful())
        .count();
    let _ = write!(
        h,
        "<p class=\"summary\" id=\"groups\"><span id=\"count\">{}</span> groups, {} series, {} with a failed last push. Showing <span id=\"shown\">{}</span>.</p>\
         <input id=\"filter\" type=\"search\" placeholder=\"Filter groups by label or metric name, e.g. job=&quot;backup&quot;\" autocomplete=\"off\">",
        store.groups.len(),
        store.series,
        failed,
        store.groups.len()
    );
    if info.admin_api && !store.groups.is_empty() {
        // Upstream's page has the same button, calling the same wipe.
        let _ = write!(
            h,
            "<p><button class=\"wipe\" data-n=\"{}\">Delete all groups</button></p>",
            store.groups.len()
        );
    }
    h.push_str("<table><thead><tr><th>Group</th><th>Last push</th><th>Status</th><th></th></tr></thead><tbody>");
    if store.groups.is_empty() {
        h.push_str("<tr><td colspan=\"4\" class=\"empty\">No metrics pushed yet. Try:<pre>echo \"some_metric 3.14\" | curl --data-binary @- http://HOST:9091/metrics/job/some_job</pre></td></tr>");
    }
    // People look for a job first, then its instances.
    let mut groups: Vec<(&[crate::model::Label], &Group)> =
        store.groups.iter().map(|(k, g)| (&**k, &**g)).collect();
    let job = |k: &[crate::model::Label]| {
        k.iter()
            .find(|l| &*l.name == "job")
            .map(|l| l.value.clone())
    };
    groups.sort_unstable_by(|(a, _), (b, _)| job(a).cmp(&job(b)).then_with(|| a.cmp(b)));
    let names: Vec<&str> = store.names.iter().map(|n| &**n).collect();
    for (i, (key, group)) in groups.iter().enumerate() {
        let this = job(key);
        if info.admin_api && (i == 0 || job(groups[i - 1].0) != this) {
            let n = groups[i..]
                .iter()
                .take_while(|(k, _)| job(k) == this)
                .count();
            job_row(&mut h, this.as_deref().unwrap_or(""), n);
        }
        let may_delete = info.scope.is_none_or(|s| s.may_push(key));
        group_row(&mut h, key, group, (info.now, may_delete), &names);
    }
    h.push_str("</tbody></table><h2 id=\"status\">Status</h2><table><tbody>");
    let uptime = ago(Some(info.start_time), info.now);
    let _ = write!(
        h,
        "<tr><td class=\"k\">Start time</td><td>{} (up {})</td></tr>",
        time(Some(info.start_time)),
        uptime.trim_end_matches(" ago")
    );
    for (k, v) in info.build {
        let v = if v.is_empty() { "unknown" } else { v };
        let _ = write!(
            h,
            "<tr><td class=\"k\">{}</td><td>{}</td></tr>",
            escape(k),
            escape(v)
        );
    }
    h.push_str("</tbody></table><h2>Flags</h2><table><tbody>");
    for (k, v) in info.flags {
        let _ = write!(
            h,
            "<tr><td class=\"k\">--{}</td><td>{}</td></tr>",
            escape(k),
            escape(v)
        );
    }
    // JSON as Go writes it escapes <, > and &, so no name can end the
    // script element.
    h.push_str("</tbody></table></main><script type=\"application/json\" id=\"names\">[");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            h.push(',');
        }
        json_string(&mut h, &n.to_lowercase());
    }
    let _ = writeln!(h, "]</script><script>{SCRIPT}</script></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;
    use crate::store::Store;

    #[test]
    fn expiry_and_job_deletes_on_the_page() {
        let s = 1_000_000_000;
        assert_eq!(
            expires_in(1000 * s + 90 * s, 1000 * s),
            "expires in 1 minute"
        );
        assert_eq!(expires_in(5, 1000 * s), "expires in 0 seconds");
        let mut store = Store::new();
        store.set_default_ttl(Duration::from_secs(7200));
        for i in 0..3 {
            let key: Vec<Label> =
                vec![Label::new("job", "a\"<b>"), Label::new("i", &i.to_string())];
            let fams = crate::wire::text_format::parse(b"m 1\n").unwrap();
            let push = crate::store::prepare_push(key.into(), fams, true).unwrap();
            store.apply(push, 5 * s);
        }
        let mut info = PageInfo {
            flags: &[],
            build: &[],
            start_time: 0,
            now: 6 * s,
            admin_api: false,
            scope: None,
        };
        let page = status_page(&store.view(), &info);
        assert_eq!(page.matches("expires in 1 hour").count(), 3, "{page}");
        assert!(
            !page.contains("class=\"deljob\""),
            "no job delete without the admin API"
        );
        assert!(
            !page.contains("button class=\"wipe\""),
            "no wipe without the admin API"
        );
        info.admin_api = true;
        let page = status_page(&store.view(), &info);
        assert_eq!(page.matches("class=\"deljob\"").count(), 1);
        assert!(page.contains("data-job=\"a&quot;&lt;b&gt;\" data-n=\"3\">Delete all 3 groups of job a&quot;&lt;b&gt;</button>"), "{page}");
        assert!(page.contains("<button class=\"wipe\" data-n=\""), "{page}");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn delete_paths_survive_any_value() {
        let key = vec![
            Label::new("instance", ""),
            Label::new("job", "a/b"),
            Label::new("path", "/var/tmp"),
        ];
        assert_eq!(
            delete_path(&key),
            "metrics/job@base64/YS9i/instance@base64/=/path@base64/L3Zhci90bXA"
        );
    }

    #[test]
    fn delete_paths_name_exactly_their_group() {
        use crate::model::NameScheme;
        let key = vec![
            Label::new("../../../../metrics/job/victim/x", "v"),
            Label::new("job", "j"),
            Label::new("a/b", ""),
        ];
        let p = delete_path(&key);
        assert!(!p.contains("/../") && !p.contains("/./"), "{p}");
        let routes =
            crate::http::router::Routes::new("", "/metrics", false).with_names(NameScheme::Utf8);
        let mut want: Vec<Label> = key.clone();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        match routes.route("DELETE", &format!("/{p}")) {
            crate::http::router::Route::Endpoint {
                endpoint,
                key: Some(key),
            } if endpoint.label == Some("delete") => {
                let mut got = key.parse(NameScheme::Utf8).expect("a short key parses");
                got.sort_by(|a, b| a.name.cmp(&b.name));
                assert_eq!(got, want);
            }
            other => panic!("{p} routes to {other:?}"),
        }
    }

    #[test]
    fn ages() {
        let s = 1_000_000_000;
        assert_eq!(ago(Some(100 * s), 100 * s), "0 seconds ago");
        assert_eq!(ago(Some(100 * s), 161 * s), "1 minute ago");
        assert_eq!(ago(Some(1), 7300 * s), "2 hours ago");
        assert_eq!(ago(None, 5), "never");
    }

    #[test]
    fn page_carries_metric_names_for_the_filter() {
        let mut store = Store::new();
        let key: Vec<Label> = vec![Label::new("job", "backup")];
        let body = b"backup_last_success 1\n# TYPE Size_Bytes gauge\nSize_Bytes 2\n";
        let fams = crate::wire::text_format::parse(body).unwrap();
        let push = crate::store::prepare_push(key.into(), fams, true).unwrap();
        store.apply(push, 5);
        let info = PageInfo {
            flags: &[],
            build: &[],
            start_time: 0,
            now: 10,
            admin_api: false,
            scope: None,
        };
        let page = status_page(&store.view(), &info);
        // The store's names once (in its order, lower-cased like the
        // query); the row points at its own.
        assert!(
            page.contains("<script type=\"application/json\" id=\"names\">[\"size_bytes\",\"backup_last_success\",\"push_failure_time_seconds\",\"push_time_seconds\"]</script>"),
            "{page}"
        );
        assert!(page.contains("data-text=\"job=&quot;backup&quot; \" data-f=\"0 1\""));
        assert!(page.contains("data-name=\"job=&quot;backup&quot;\""));

        // A UTF-8 name with markup cannot end the script element.
        let fam = crate::model::MetricFamily {
            name: "\"><script>alert(1)</script>".into(),
            help: None,
            metric_type: crate::model::MetricType::Untyped,
            metrics: vec![crate::model::Metric::new(
                Vec::new().into(),
                Value::Untyped(1.0),
            )],
        };
        let key: Vec<Label> = vec![Label::new("job", "evil")];
        let push = crate::store::prepare_push(key.into(), vec![fam], true).unwrap();
        store.apply(push, 6);
        let page = status_page(&store.view(), &info);
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("[\"\\\"\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\",")
        );
    }

    #[test]
    fn group_text_shows_native_histograms() {
        use crate::model::{Histogram, Metric, MetricFamily, MetricType, NativeHistogram, Span};
        let mut store = Store::new();
        let key: Vec<Label> = vec![Label::new("job", "j")];
        let h = Histogram {
            count: 2,
            sum: 1.5,
            native: Some(Box::new(NativeHistogram {
                positive_spans: vec![Span {
                    offset: 0,
                    length: 1,
                }],
                positive_deltas: vec![2],
                ..NativeHistogram::default()
            })),
            ..Histogram::default()
        };
        let fam = MetricFamily {
            name: "lat".into(),
            help: None,
            metric_type: MetricType::Histogram,
            metrics: vec![Metric::new(
                Vec::new().into(),
                Value::Histogram(Box::new(h)),
            )],
        };
        let push = crate::store::prepare_push(key.clone().into(), vec![fam], true).unwrap();
        store.apply(push, 5);
        let text = group_text(store.groups().next().unwrap().1);
        assert!(
            text.contains("lat_count{instance=\"\",job=\"j\"} 2\n# native histogram: {count:2, sum:1.5, (0.5,1]:2}\n"),
            "{text}"
        );
    }

    #[test]
    fn page_lists_groups_and_hostile_values_stay_inert() {
        let mut store = Store::new();
        let key: Vec<Label> = vec![Label::new("job", "<script>alert(1)</script>")];
        let fams = crate::wire::text_format::parse(b"m{x=\"</pre><b>\"} 1\n").unwrap();
        let push = crate::store::prepare_push(key.into(), fams, true).unwrap();
        store.apply(push, 5);
        let info = PageInfo {
            flags: &[],
            build: &[],
            start_time: 0,
            now: 10,
            admin_api: false,
            scope: None,
        };
        let page = status_page(&store.view(), &info);
        assert!(!page.contains("<script>alert"), "job label escaped");
        assert!(!page.contains("</pre><b>"), "label value escaped");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(page.matches("<tr class=\"group\"").count(), 1);
    }
}
