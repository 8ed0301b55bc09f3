//! Readers cannot starve writers: scrapers that never read their answer
//! share one body, stay inside their share of `--web.memory-budget`, and
//! leave pushes, deletes and health checks the rest; memory comes back
//! after the burst.
//!
//! Each test starts its own gateway on 127.0.0.1, fills a store of several
//! megabytes of exposition, runs the hostile readers, and checks the
//! answers, that the process lives, that writes keep answering within a
//! second, and the resident memory against the budget.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use support::raw::{self, exchange};
use support::{Gateway, ours};

/// One test at a time: each measures the process's memory.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1024;

/// A store of `groups` groups of 1,000 series with longish labels: about
/// 100 bytes of exposition a series.
fn fill(gw: &Gateway, groups: usize) {
    for g in 0..groups {
        let mut body = String::with_capacity(100_000);
        for i in 0..1000 {
            body.push_str(&format!(
                "filler_metric_with_a_long_name{{path=\"/some/long/request/path/{i}\",status=\"200\"}} {i}\n"
            ));
        }
        let r = gw.put(&format!("/metrics/job/fill/g/{g}"), &body);
        assert_eq!(r.status, 200, "fill push {g}: {}", r.text());
    }
}

fn push_request(job: &str) -> Vec<u8> {
    let body = "small_push 1\n";
    format!(
        "PUT /metrics/job/{job} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A push and a health check on fresh connections, each answered 200
/// within a second.
fn writes_keep_answering(gw: &Gateway, what: &str) {
    for (name, req) in [
        ("small push", push_request("writer")),
        ("health check", get_request("/-/healthy")),
    ] {
        let started = Instant::now();
        exchange(gw.port, &format!("{what}: {name}"), &req, 200);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{what}: the {name} took {took:?} while readers held their answers"
        );
    }
}

/// Opens `n` connections that each ask for `path` and never read.
fn non_readers(gw: &Gateway, n: usize, path: &str) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", gw.port))
                .unwrap_or_else(|e| panic!("non-reader {i}: cannot connect: {e}"));
            s.write_all(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes())
                .unwrap_or_else(|e| panic!("non-reader {i}: cannot send: {e}"));
            s
        })
        .collect()
}

fn scrape_len(gw: &Gateway) -> u64 {
    let (_, r) = exchange(gw.port, "a full scrape", &get_request("/metrics"), 200);
    r.body.len() as u64
}

/// `pushgateway_memory_budget_used_bytes{class}` as a scrape shows it.
fn budget_used(gw: &Gateway, class: &str) -> f64 {
    let (_, r) = exchange(
        gw.port,
        "a scrape for the budget",
        &get_request("/metrics"),
        200,
    );
    let line = format!("pushgateway_memory_budget_used_bytes{{class=\"{class}\"}} ");
    let text = r.text();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line}in the scrape"));
    value
        .parse()
        .unwrap_or_else(|e| panic!("{line}{value}: {e}"))
}

#[test]
fn non_reading_scrapers_share_one_body_and_leave_writers_their_share() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    raw::raise_nofile_limit();
    let gw = Gateway::start(&ours(), &["--web.memory-budget=256MiB"]);
    let start = raw::rss_kib(gw.pid());
    fill(&gw, 100);
    let body_kib = scrape_len(&gw) / 1024;
    assert!(
        body_kib > 8 * MIB,
        "the store should scrape to megabytes, got {body_kib} KiB"
    );
    thread::sleep(Duration::from_millis(300));
    let base = raw::rss_kib(gw.pid());

    let readers = non_readers(&gw, 300, "/metrics");
    // While the answers pour into 300 sockets (the kernel takes megabytes
    // into each before it says `WouldBlock`), and after: every reader's
    // request has arrived and been answered (or refused).
    let pouring = Instant::now();
    while pouring.elapsed() < Duration::from_secs(2) {
        writes_keep_answering(&gw, "300 scrapers that never read");
        thread::sleep(Duration::from_millis(100));
    }
    let held = raw::rss_kib(gw.pid()).saturating_sub(base);
    // The read share is half of 256 MiB; each distinct body is a few
    // times smaller. Without sharing, 300 bodies were gigabytes.
    assert!(
        held < 128 * MIB + 64 * MIB,
        "300 non-reading scrapers of a {body_kib} KiB store hold {} MiB",
        held / MIB
    );
    let answers = budget_used(&gw, "answer");
    assert!(
        answers > 0.0 && answers <= 128.0 * 1024.0 * 1024.0,
        "answers held for the readers are charged, within their half of the budget: {answers} bytes"
    );
    assert!(raw::alive(gw.pid()), "the gateway died");
    drop(readers);
    writes_keep_answering(&gw, "after the readers left");
    // The answers' memory goes back to the system once the burst is over.
    let limit = 4 * start + 64 * MIB;
    let now = raw::settle_at_most(Duration::from_secs(20), limit, || raw::rss_kib(gw.pid()));
    assert!(
        now <= limit,
        "20 s after the readers left RSS is {} MiB; it started at {} MiB (a {} MiB store held since)",
        now / MIB,
        start / MIB,
        (base - start) / MIB
    );
}

/// The JSON API's metrics and the page's group text are built off the
/// loop, shared by concurrent requests of one store state and charged
/// before they are built: 200 readers that never read hold one body of
/// each, not 200 (they held gigabytes, past the budget, when each built
/// its own and was charged after).
#[test]
fn non_reading_api_and_page_readers_share_one_body() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    raw::raise_nofile_limit();
    let gw = Gateway::start(&ours(), &["--web.memory-budget=256MiB"]);
    fill(&gw, 100);
    let (_, api) = exchange(gw.port, "the API", &get_request("/api/v1/metrics"), 200);
    let api_kib = api.body.len() as u64 / 1024;
    assert!(
        api_kib > 8 * MIB,
        "the API answer should be megabytes, got {api_kib} KiB"
    );
    thread::sleep(Duration::from_millis(300));
    let base = raw::rss_kib(gw.pid());
    // Group g=7 of job fill, as the page asks for it (base64 of "fill").
    let group = "/ui/group/metrics/job@base64/ZmlsbA/g@base64/Nw";
    let (_, text) = exchange(gw.port, "a group's text", &get_request(group), 200);
    assert!(
        text.text().contains("filler_metric_with_a_long_name{"),
        "{}",
        text.text()
    );

    let mut readers = non_readers(&gw, 100, "/api/v1/metrics");
    readers.extend(non_readers(&gw, 100, group));
    thread::sleep(Duration::from_secs(2));
    writes_keep_answering(&gw, "200 API and page readers that never read");
    let held = raw::rss_kib(gw.pid()).saturating_sub(base);
    assert!(
        held < 128 * MIB + 64 * MIB,
        "100 non-reading API readers of a {api_kib} KiB answer and 100 of a group hold {} MiB",
        held / MIB
    );
    let answers = budget_used(&gw, "answer");
    assert!(
        answers > 0.0 && answers <= 128.0 * 1024.0 * 1024.0,
        "the held answers are charged, within the readers' half: {answers} bytes"
    );
    assert!(raw::alive(gw.pid()), "the gateway died");
}
