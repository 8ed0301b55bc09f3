//! What the Go Pushgateway declines and we offer, opt-in: deletes by
//! selector, store limits and group expiry (docs/beyond-upstream.md, "Beyond the Go
//! Pushgateway"). Each test starts the real binary on a free loopback
//! port and speaks HTTP to it.

mod support;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::{Gateway, TempDir, ours, raw};

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

/// The value of an unlabelled own gauge in a scrape, if exposed.
fn own_value(gw: &Gateway, name: &str) -> Option<f64> {
    let text = gw.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map(|v| v.parse().expect("a number"))
}

#[test]
fn store_limits_hold_at_exactly_the_limit() {
    let gw = Gateway::start(&ours(), &["--push.max-groups=2", "--push.max-series=16"]);
    assert_eq!(own_value(&gw, "pushgateway_store_groups_limit"), Some(2.0));
    assert_eq!(own_value(&gw, "pushgateway_store_series_limit"), Some(16.0));
    // A histogram with 10 buckets is 13 series (with +Inf, _sum, _count).
    let mut histogram = String::from("# TYPE h histogram\n");
    for le in 1..=10 {
        histogram.push_str(&format!("h_bucket{{le=\"{le}\"}} 0\n"));
    }
    histogram.push_str("h_sum 0\nh_count 0\n");
    assert_eq!(gw.put("/metrics/job/a", &histogram).status, 200);
    assert_eq!(own_value(&gw, "pushgateway_store_series"), Some(13.0));
    // To exactly 16 passes.
    assert_eq!(gw.put("/metrics/job/b", "x 1\ny 1\nz 1\n").status, 200);
    assert_eq!(own_value(&gw, "pushgateway_store_series"), Some(16.0));
    // One past is refused with 429, names the limit, changes nothing and
    // records the failure on the existing group.
    let r = gw.post("/metrics/job/b", "w 1\n");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("--push.max-series"), "{}", r.text());
    let text = gw.get("/metrics").text();
    assert!(!text.contains("\nw{"), "{text}");
    let failure = text
        .lines()
        .find(|l| l.starts_with("push_failure_time_seconds{instance=\"\",job=\"b\"}"))
        .expect("group b has a failure time");
    assert!(!failure.ends_with(" 0"), "{failure}");
    // A third group is refused and not created, not even for its failure.
    let r = gw.put("/metrics/job/c", "q 1\n");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("--push.max-groups"), "{}", r.text());
    let text = gw.get("/metrics").text();
    assert!(!text.contains("job=\"c\""), "{text}");
    assert_eq!(own_value(&gw, "pushgateway_store_groups"), Some(2.0));
    assert!(
        text.contains("pushgateway_pushes_refused_total{limit=\"groups\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("pushgateway_pushes_refused_total{limit=\"series\"} 1\n"),
        "{text}"
    );
    // Replacing a group with fewer series still works at the limit.
    assert_eq!(gw.put("/metrics/job/b", "x 2\n").status, 200);
    assert_eq!(own_value(&gw, "pushgateway_store_series"), Some(14.0));
    assert!(gw.log().contains("store limit reached"), "{}", gw.log());
}

#[test]
fn without_limits_no_limit_gauges() {
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(own_value(&gw, "pushgateway_store_groups_limit"), None);
    assert_eq!(own_value(&gw, "pushgateway_store_groups"), Some(0.0));
}

fn put_with_ttl(gw: &Gateway, path: &str, ttl: &str) -> support::Response {
    gw.request("PUT", path, &[("Pushgateway-Group-TTL", ttl)], b"m 1\n")
}

/// Waits (bounded) until `cond` holds; false if it never did.
fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    cond()
}

#[test]
fn groups_expire_by_flag_and_header() {
    let gw = Gateway::start(&ours(), &["--push.group-ttl=600ms"]);
    let started = Instant::now();
    assert_eq!(gw.put("/metrics/job/flag", "m 1\n").status, 200);
    assert_eq!(put_with_ttl(&gw, "/metrics/job/never", "0").status, 200);
    assert_eq!(put_with_ttl(&gw, "/metrics/job/long", "1h").status, 200);
    // A push without the header keeps the group's TTL.
    assert_eq!(gw.put("/metrics/job/long", "m 2\n").status, 200);
    assert!(
        eventually(Duration::from_secs(10), || !groups(&gw)
            .contains(&"flag/".to_owned())),
        "the group under --push.group-ttl never expired: {:?}",
        groups(&gw)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "expired early"
    );
    assert_eq!(groups(&gw), ["long/", "never/"]);
    let text = gw.get("/metrics").text();
    assert!(
        text.contains("pushgateway_groups_expired_total 1\n"),
        "{text}"
    );
    assert!(gw.log().contains("group expired"), "{}", gw.log());
}

#[test]
fn a_bad_ttl_header_changes_nothing() {
    let gw = Gateway::start(&ours(), &[]);
    for bad in ["soon", "-5m", "5", "1x"] {
        let r = put_with_ttl(&gw, "/metrics/job/bad", bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("Pushgateway-Group-TTL"), "{}", r.text());
    }
    assert!(
        groups(&gw).is_empty(),
        "no group, not even a failure: {:?}",
        groups(&gw)
    );
}

#[test]
fn deadlines_survive_a_restart() {
    let dir = TempDir::new("expiry-restart");
    let file = dir.file("store");
    let flag = format!("--persistence.file={}", file.display());
    let mut gw = Gateway::start(&ours(), &[&flag]);
    assert_eq!(put_with_ttl(&gw, "/metrics/job/short", "700ms").status, 200);
    assert_eq!(put_with_ttl(&gw, "/metrics/job/long", "1h").status, 200);
    assert_eq!(gw.put("/metrics/job/plain", "m 1\n").status, 200);
    gw.stop();
    let snapshot = fs::read_to_string(&file).expect("snapshot written");
    assert!(snapshot.contains("\nttl 3600000000000\n"), "{snapshot}");
    assert_eq!(snapshot.matches("\nttl ").count(), 2, "{snapshot}");
    thread::sleep(Duration::from_millis(800));
    // `short` expired while the gateway was down; `plain` follows the
    // flag, which a restart may change.
    let gw = Gateway::start(&ours(), &[&flag, "--push.group-ttl=1h"]);
    assert_eq!(groups(&gw), ["long/", "plain/"]);
    assert!(
        gw.log()
            .contains("groups expired while the gateway was down"),
        "{}",
        gw.log()
    );
    let text = gw.get("/metrics").text();
    assert!(
        text.contains("pushgateway_groups_expired_total 1\n"),
        "{text}"
    );
}

#[test]
fn the_json_api_carries_the_deadline() {
    let gw = Gateway::start(&ours(), &["--push.group-ttl=1h"]);
    assert_eq!(gw.put("/metrics/job/a", "m 1\n").status, 200);
    assert_eq!(put_with_ttl(&gw, "/metrics/job/b", "0").status, 200);
    let json = gw.get("/api/v1/metrics").text();
    assert_eq!(json.matches("\"expires_at\":\"").count(), 1, "{json}");
    let at = json.split("\"expires_at\":\"").nth(1).unwrap();
    assert!(at.starts_with("20") && at[..30].contains('T'), "{json}");
    let page = gw.get("/").text();
    assert_eq!(page.matches("expires in 59 minutes").count(), 1, "{page}");
}

/// A delete carrying as many costly regular expressions as a request head
/// holds: refused past 64 selectors, and compiled off the I/O loop, so
/// other clients are answered meanwhile.
#[test]
fn a_head_full_of_costly_selectors_stalls_nobody() {
    let gw = Gateway::start(&ours(), &["--web.enable-admin-api"]);
    push_all(&gw);
    // Just under the compiled-size limit (256 KiB): costly, but compiled.
    let costly = r#"{job=~"(a|b|c|d|e|f|g|h){600}"}"#;
    let url = delete_url(&vec![costly; 65], false);
    let port = gw.port;
    let pid = gw.pid();
    let (io0, all0) = (raw::io_thread_ticks(pid), raw::process_ticks(pid));
    // One after another: 64 selectors compiled each time, the 65th
    // refused, enough CPU in all to tell where it was spent.
    let hostile = thread::spawn(move || {
        let mut last = None;
        for _ in 0..50 {
            last = Some(support::post(port, &url, ""));
        }
        last.expect("fifty requests")
    });
    // Other clients are answered all along.
    let mut probes = 0;
    while !hostile.is_finished() {
        let r = support::get(port, "/-/healthy");
        assert_eq!(r.status, 200);
        probes += 1;
        thread::sleep(Duration::from_millis(10));
    }
    let r = hostile.join().expect("hostile request");
    let (io, all) = (
        raw::io_thread_ticks(pid) - io0,
        raw::process_ticks(pid) - all0,
    );
    assert!(
        probes >= 1 && all >= 10,
        "{probes} probes, {all} ticks: too quick to tell"
    );
    // Compiled on the I/O thread, the selectors would be nearly all of
    // the process's CPU time there.
    assert!(
        (io as f64) < 0.25 * all as f64,
        "the I/O thread spent {io} of the process's {all} ticks on 50 costly deletes"
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("more than 64"), "{}", r.text());
    let too_big = r#"{job=~"[a-z]{1000}{1000}"}"#;
    let r = gw.post(&delete_url(&[too_big], false), "");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("regular expression too large"),
        "{}",
        r.text()
    );
    assert_eq!(groups(&gw).len(), 6, "nothing deleted");
}

/// PUTs `groups` groups of `job` with `series` series each, on two
/// keep-alive connections.
fn fill(gw: &Gateway, job: &str, groups: usize, series: usize) {
    thread::scope(|s| {
        for w in 0..2 {
            let port = gw.port;
            s.spawn(move || {
                let mut c = support::raw::connect(port);
                for g in (w..groups).step_by(2) {
                    let mut body = String::from("# TYPE fill_metric gauge\n");
                    for i in 0..series {
                        body.push_str(&format!("fill_metric{{shard=\"s{i}\"}} {g}\n"));
                    }
                    let head = format!(
                        "PUT /metrics/job/{job}/instance/i{g} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    c.send_ok(format!("{head}{body}").as_bytes());
                    c.expect_status("fill push", 200);
                }
            });
        }
    });
}

/// The `"groups":[...]` of a delete's answer, one `{...}` per group.
fn listed(answer: &str) -> Vec<String> {
    let list = answer
        .split_once("\"groups\":[")
        .and_then(|(_, rest)| rest.strip_suffix("]}}"))
        .unwrap_or_else(|| panic!("not a delete answer: {answer}"));
    list.split("},")
        .filter(|g| !g.is_empty())
        .map(|g| g.trim_end_matches('}').to_string())
        .collect()
}

/// A selector delete of thousands of groups is done in rounds of a couple
/// of milliseconds: pushes on another connection are answered while it
/// is under way. Were the groups deleted in one loop turn, every push sent
/// meanwhile would wait for that turn and be answered after the delete
/// (bar the one or two while the selectors are parsed and matched).
///
/// The debug log, written by the loop thread alone, shows the order in
/// which the loop did things: pushes accepted between the delete's first
/// and last group are pushes it did not hold up, however slow the machine.
#[test]
fn a_delete_of_thousands_of_groups_holds_no_push_up() {
    const GROUPS: usize = 4000;
    let gw = Gateway::start(&ours(), &["--web.enable-admin-api", "--log.level=debug"]);
    fill(&gw, "fill", GROUPS, 50);
    let port = gw.port;
    let stop = AtomicBool::new(false);
    let (r, sent, probes) = thread::scope(|s| {
        let pusher = s.spawn(|| {
            let mut c = support::raw::connect(port);
            let mut answers = Vec::new();
            let body = "probe_metric 1\n";
            let put = format!(
                "PUT /metrics/job/probe HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            while !stop.load(Ordering::Relaxed) {
                c.send_ok(put.as_bytes());
                c.expect_status("probe push", 200);
                answers.push(Instant::now());
            }
            answers
        });
        thread::sleep(Duration::from_millis(100));
        let sent = Instant::now();
        let r = support::post(port, &delete_url(&[r#"{job="fill"}"#], false), "");
        stop.store(true, Ordering::Relaxed);
        (r, sent, pusher.join().expect("pusher"))
    });
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains(&format!("\"count\":{GROUPS},")), "{text}");
    assert_eq!(listed(&text).len(), GROUPS);
    assert!(
        probes.iter().any(|t| *t < sent),
        "the pusher was under way before the delete"
    );
    let during = pushes_between_rounds(&gw.log(), r#"{job=\"probe\"}"#);
    assert!(
        during >= 10,
        "only {during} probe pushes accepted between the delete's first and last group: it held the loop"
    );
    assert_eq!(groups(&gw), ["probe/"], "all of job fill deleted");
}

/// How many "push accepted" debug lines whose group contains `group` lie
/// between the first and the last [`ROUND_LINE`] of `log`.
fn pushes_between_rounds(log: &str, group: &str) -> usize {
    let (Some(first), Some(last)) = (log.find(ROUND_LINE), log.rfind(ROUND_LINE)) else {
        panic!("no selector delete round in the log:\n{log}");
    };
    log[first..last]
        .lines()
        .filter(|l| l.contains("push accepted") && l.contains(group))
        .count()
}

/// Selector deletes in flight together each answer with the groups they
/// deleted themselves: overlapping selectors list each group once, in
/// whichever answer deleted it.
#[test]
fn concurrent_selector_deletes_share_out_the_groups() {
    const GROUPS: usize = 1000;
    let gw = Gateway::start(&ours(), &["--web.enable-admin-api"]);
    fill(&gw, "fill", GROUPS, 10);
    let port = gw.port;
    let answers: Vec<String> = thread::scope(|s| {
        let threads: Vec<_> = [
            r#"{job="fill",instance=~"i1.*"}"#,
            r#"{job="fill"}"#,
            r#"{instance=~"i.*5"}"#,
        ]
        .into_iter()
        .map(|sel| {
            s.spawn(move || {
                let r = support::post(port, &delete_url(&[sel], false), "");
                assert_eq!(r.status, 200, "{}", r.text());
                r.text()
            })
        })
        .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("delete"))
            .collect()
    });
    let mut all = Vec::new();
    for a in &answers {
        let groups = listed(a);
        assert!(a.contains(&format!("\"count\":{},", groups.len())), "{a}");
        all.extend(groups);
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "no group listed twice: {answers:?}");
    assert_eq!(total, GROUPS, "every group listed once: {answers:?}");
    assert!(groups(&gw).is_empty());
}

/// A SIGTERM while a selector delete is under way: the delete is finished
/// and answered, the gateway exits cleanly, and the final snapshot holds
/// the store without the deleted groups.
///
/// The debug log shows the delete's rounds (one line per group deleted),
/// the signal and the delete's end, all written by the gateway's one loop
/// thread: the signal is sent once a round has begun, and the log's order
/// proves that the delete was still running when the signal arrived.
#[test]
fn a_stop_during_a_selector_delete_finishes_it() {
    const GROUPS: usize = 3000;
    let dir = TempDir::new("delete-at-stop");
    let file = dir.file("store");
    let flag = format!("--persistence.file={}", file.display());
    let args = ["--web.enable-admin-api", &flag, "--persistence.interval=1h"];
    let mut gw = Gateway::start(&ours(), &[&args[..], &["--log.level=debug"]].concat());
    fill(&gw, "fill", GROUPS, 50);
    assert_eq!(gw.put("/metrics/job/keep", "m 1\n").status, 200);
    let port = gw.port;
    let delete =
        thread::spawn(move || support::post(port, &delete_url(&[r#"{job="fill"}"#], false), ""));
    assert!(
        eventually(Duration::from_secs(30), || gw.log().contains(ROUND_LINE)),
        "the delete never began:\n{}",
        gw.log()
    );
    gw.stop();
    let r = delete.join().expect("delete");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(listed(&r.text()).len(), GROUPS, "{}", r.text());
    let (before, after) = rounds_around_the_signal(&gw.log());
    assert!(
        before > 0 && after > 0,
        "the delete was not under way at the signal: {before} groups deleted before it, {after} after"
    );
    let gw = Gateway::start(&ours(), &args);
    assert_eq!(groups(&gw), ["keep/"], "the final snapshot has the delete");
}

/// The debug line of one group deleted in a selector delete's round.
const ROUND_LINE: &str = "deleted group by selector";

/// How many groups the log shows deleted before the signal's line and
/// after it; panics unless the delete's closing line follows the signal.
fn rounds_around_the_signal(log: &str) -> (usize, usize) {
    let signal = log
        .find("received signal, exiting gracefully")
        .unwrap_or_else(|| panic!("no signal in the log:\n{log}"));
    let done = log
        .find("deleted groups by selector")
        .unwrap_or_else(|| panic!("the delete never ended in the log:\n{log}"));
    assert!(
        done > signal,
        "the delete ended before the signal arrived:\n{log}"
    );
    let (head, tail) = log.split_at(signal);
    (
        head.matches(ROUND_LINE).count(),
        tail.matches(ROUND_LINE).count(),
    )
}
