//! What the Go Pushgateway declines and we offer, opt-in: deletes by
//! selector, store limits and group expiry (README, "Beyond the Go
//! Pushgateway"). Each test starts the real binary on a free loopback
//! port and speaks HTTP to it.

mod support;

use std::fs;

use support::{Gateway, TempDir, ours};

/// Percent-encodes a query value as a form would.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn delete_url(selectors: &[&str], dry_run: bool) -> String {
    let mut url = String::from("/api/v1/admin/delete?");
    for s in selectors {
        url.push_str(&format!("match[]={}&", encode(s)));
    }
    if dry_run {
        url.push_str("dry_run=true");
    }
    url
}

/// The grouping keys that have a `push_time_seconds` series, as
/// `job/instance` strings, sorted.
fn groups(gw: &Gateway) -> Vec<String> {
    let r = gw.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut out: Vec<String> = r
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("push_time_seconds{"))
        .map(|l| {
            let value = |name: &str| {
                let start = l.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
                start.map_or("", |s| &l[s..s + l[s..].find('"').unwrap_or(0)])
            };
            format!("{}/{}", value("job"), value("instance"))
        })
        .collect();
    out.sort();
    out
}

fn push_all(gw: &Gateway) {
    for path in [
        "/metrics/job/backup/instance/a",
        "/metrics/job/backup/instance/b",
        "/metrics/job/batch/instance/db-1",
        "/metrics/job/batch/instance/db-2",
        "/metrics/job/batch/instance/web-1",
        "/metrics/job/other",
    ] {
        let r = gw.put(path, "m 1\n");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
}

#[test]
fn deletes_by_selector() {
    let dir = TempDir::new("delete-by-selector");
    let file = dir.file("store");
    let flag = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(
        &ours(),
        &["--web.enable-admin-api", &flag, "--persistence.interval=0"],
    );
    push_all(&gw);
    let all = groups(&gw);
    assert_eq!(all.len(), 6, "{all:?}");

    // A dry run lists and keeps.
    let r = gw.post(
        &delete_url(&[r#"{job="batch",instance=~"db-.*"}"#], true),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.text(),
        r#"{"status":"success","data":{"dry_run":true,"count":2,"groups":[{"instance":"db-1","job":"batch"},{"instance":"db-2","job":"batch"}]}}"#
    );
    assert_eq!(groups(&gw), all);

    // The real thing, with PUT; the union of two selectors.
    let r = gw.put(
        &delete_url(
            &[r#"{job="batch",instance=~"db-.*"}"#, r#"{job='other'}"#],
            false,
        ),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"count\":3,"), "{}", r.text());
    assert_eq!(
        groups(&gw),
        ["backup/a", "backup/b", "batch/web-1"],
        "exactly the matched groups are gone"
    );
    // Persisted before the answer (durable mode).
    let snapshot = fs::read_to_string(&file).expect("snapshot written");
    assert!(
        !snapshot.contains("db-1") && !snapshot.contains("\"other\""),
        "{snapshot}"
    );
    assert!(snapshot.contains("web-1"), "{snapshot}");

    // Matching nothing is a success with nothing in it.
    let r = gw.post(&delete_url(&[r#"{job="nope"}"#], false), "");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("\"count\":0,\"groups\":[]"),
        "{}",
        r.text()
    );
    assert!(
        gw.log().contains("deleted groups by selector"),
        "{}",
        gw.log()
    );
}

#[test]
fn bad_selectors_are_refused_and_change_nothing() {
    let gw = Gateway::start(&ours(), &["--web.enable-admin-api"]);
    push_all(&gw);
    let all = groups(&gw);
    for (selector, why) in [
        ("{}", "every matcher matches the empty string"),
        (r#"{job=~".*"}"#, "every matcher matches the empty string"),
        (
            r#"{job!="x",instance=""}"#,
            "every matcher matches the empty string",
        ),
        (r#"up{job="x"}"#, "metric name"),
        (r#"{job="x",instance~"y"}"#, "byte 17"),
        (r#"{job=~"a("}"#, "invalid regular expression"),
        (r#"{job="x""#, "expected ',' or '}'"),
    ] {
        let r = gw.post(&delete_url(&[selector], false), "");
        assert_eq!(r.status, 400, "{selector}: {}", r.text());
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert!(r.text().contains(why), "{selector}: {}", r.text());
        assert!(
            r.text()
                .starts_with(r#"{"status":"error","errorType":"bad_data","error":"#)
        );
    }
    let r = gw.post("/api/v1/admin/delete", "");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("no match[]"), "{}", r.text());
    let r = gw.post("/api/v1/admin/delete?match[]=%ZZ", "");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        gw.get(&delete_url(&[r#"{job="batch"}"#], false)).status,
        405
    );
    assert_eq!(groups(&gw), all, "nothing was deleted");
    assert!(gw.log().contains("invalid delete selector"), "{}", gw.log());
}

#[test]
fn delete_by_selector_needs_the_admin_api() {
    let gw = Gateway::start(&ours(), &[]);
    push_all(&gw);
    let r = gw.post(&delete_url(&[r#"{job="batch"}"#], false), "");
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(groups(&gw).len(), 6);
}
