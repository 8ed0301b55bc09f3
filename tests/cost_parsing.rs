//! What a push costs to parse and prepare, against the real binary on
//! 127.0.0.1: every byte a client sends has a bounded price.
//!
//! Time: each adversarial shape (many families, many labels on one series,
//! many series, HELP and TYPE lines, collected summaries, OpenMetrics
//! families and histograms, protobuf nesting
//! and repeated fields, long grouping keys in the URL, many matchers in a
//! delete) is pushed at size n and 8n on the same gateway; the ratio of
//! the CPU time the gateway spends on them must stay under 24 (linear is
//! about 8, quadratic 64). CPU time, summed over the gateway's threads
//! from /proc, rather than wall time: other processes on a busy machine
//! delay an answer, they do not add to its CPU time. Only ratios are
//! compared.
//!
//! Memory: one push's peak (VmHWM) may grow by at most 32 times its
//! decoded size for text and 16 times for protobuf, and a push the memory
//! budget cannot cover is refused with 503 while it is parsed or prepared,
//! before it is allocated.
//!
//! After each case the process is alive, `/-/healthy` answers and a
//! sentinel group pushed first still scrapes. The tests take a lock, so
//! that no two of them measure each other's load.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use pushgateway::model::{Bucket, Histogram, Label, Metric, MetricType, Value};
use pushgateway::wire::protobuf;
use support::raw::{self, connect};
use support::{Gateway, Response, gzip, ours, request};

const SENTINEL_BODY: &str = "sentinel_metric 1\n";
const SENTINEL_SERIES: &str = "sentinel_metric{instance=\"\",job=\"sentinel\"} 1";

/// Linear work at 8n takes about 8 times as long as at n, quadratic 64.
const MAX_RATIO: f64 = 24.0;
/// Peak memory of one push, as a multiple of its decoded size.
const TEXT_AMPLIFICATION: u64 = 32;
const PROTOBUF_AMPLIFICATION: u64 = 16;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A gateway with its sentinel group pushed.
fn start(args: &[&str]) -> Gateway {
    let gw = Gateway::start(&ours(), args);
    let r = gw.put("/metrics/job/sentinel", SENTINEL_BODY);
    // 202 when pushes skip the consistency check.
    assert!(
        matches!(r.status, 200 | 202),
        "sentinel push: {} {}",
        r.status,
        r.text()
    );
    sentinel_scrapes(&gw, "right after the sentinel push");
    gw
}

fn sentinel_scrapes(gw: &Gateway, what: &str) {
    let r = gw.get("/metrics");
    assert_eq!(r.status, 200, "{what}: scrape");
    assert!(
        r.text().contains(SENTINEL_SERIES),
        "{what}: the sentinel is missing from the scrape"
    );
}

/// After a case: alive, healthy, the sentinel intact.
fn assert_survived(gw: &Gateway, what: &str) {
    assert!(
        raw::alive(gw.pid()),
        "{what}: the gateway is gone\n--- log ---\n{}",
        gw.log()
    );
    assert_eq!(gw.get("/-/healthy").status, 200, "{what}: healthy");
    sentinel_scrapes(gw, &format!("{what}: afterwards"));
}

/// One request of a shape: method, path, headers and body.
struct Push {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Push {
    fn text(body: Vec<u8>) -> Push {
        Push {
            method: "PUT",
            path: "/metrics/job/shape".into(),
            headers: Vec::new(),
            body,
        }
    }

    fn protobuf(body: Vec<u8>) -> Push {
        Push {
            headers: vec![("Content-Type", protobuf::CONTENT_TYPE)],
            ..Push::text(body)
        }
    }

    fn openmetrics(mut body: Vec<u8>) -> Push {
        body.extend_from_slice(b"# EOF\n");
        Push {
            headers: vec![(
                "Content-Type",
                "application/openmetrics-text; version=1.0.0",
            )],
            ..Push::text(body)
        }
    }

    fn gzipped(mut self) -> Push {
        self.body = gzip(&self.body);
        self.headers.push(("Content-Encoding", "gzip"));
        self
    }

    /// Sends the push; its answer and the CPU time the gateway spent
    /// until then.
    fn send(&self, gw: &Gateway) -> (Response, Duration) {
        let before = cpu_time(gw.pid());
        let r = request(gw.port, self.method, &self.path, &self.headers, &self.body);
        (r, cpu_time(gw.pid()).saturating_sub(before))
    }
}

/// CPU time of all threads of `pid` so far (the first field of each
/// thread's schedstat, in nanoseconds).
fn cpu_time(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("cannot list the threads of {pid}: {e}"));
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// The least CPU time of `runs` sends of `push`, each answered `want`.
fn fastest(gw: &Gateway, what: &str, push: &Push, runs: usize, want: u16) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let (r, took) = push.send(gw);
        assert_eq!(r.status, want, "{what}: {}", r.text());
        best = best.min(took);
    }
    best
}

/// Pushes `shape(n)` and `shape(8n)` to one gateway; the second may take
/// at most [`MAX_RATIO`] times as long as the first.
fn assert_near_linear(
    what: &str,
    args: &[&str],
    n: usize,
    want: u16,
    shape: impl Fn(usize) -> Push,
) {
    let _serial = serial();
    let gw = start(args);
    let (small, big) = (shape(n), shape(8 * n));
    // Warm up: the first push of a shape creates what later ones replace.
    fastest(&gw, what, &small, 1, want);
    let t_small = fastest(&gw, &format!("{what} at n={n}"), &small, 5, want);
    // The least of several: a big working set is what other processes'
    // cache traffic slows down.
    let t_big = fastest(&gw, &format!("{what} at 8n={}", 8 * n), &big, 5, want);
    let ratio = t_big.as_secs_f64() / t_small.as_secs_f64().max(1e-6);
    eprintln!(
        "{what}: n={n} {:.1} ms CPU ({} bytes), 8n {:.1} ms CPU ({} bytes), ratio {ratio:.1}",
        t_small.as_secs_f64() * 1e3,
        small.body.len() + small.path.len(),
        t_big.as_secs_f64() * 1e3,
        big.body.len() + big.path.len(),
    );
    assert!(
        ratio < MAX_RATIO,
        "{what}: 8n took {ratio:.1} times as long as n ({t_small:?} -> {t_big:?}); linear is about 8"
    );
    assert_survived(&gw, what);
}

fn lines(n: usize, line: impl Fn(usize) -> String) -> Vec<u8> {
    (0..n).map(line).collect::<String>().into_bytes()
}

fn gauge(labels: &[(&str, &str)], v: f64) -> Metric {
    let labels: Vec<Label> = labels.iter().map(|(n, v)| Label::new(n, v)).collect();
    Metric::new(labels.into(), Value::Gauge(v))
}

fn family(out: &mut Vec<u8>, name: &str, t: MetricType, metrics: &[Metric]) {
    protobuf::encode_family(out, name, None, t, metrics.iter());
}

// ---------------------------------------------------------------------------
// Time: text bodies

#[test]
fn text_distinct_families_are_linear() {
    assert_near_linear("text: one-sample families", &[], 20_000, 200, |n| {
        Push::text(lines(n, |i| format!("family_{i} 1\n")))
    });
}

#[test]
fn text_labels_of_one_series_are_linear() {
    assert_near_linear("text: labels of one series", &[], 20_000, 200, |n| {
        let labels: Vec<String> = (0..n).map(|i| format!("l{i}=\"v\"")).collect();
        Push::text(format!("m{{{}}} 1\n", labels.join(",")).into_bytes())
    });
}

#[test]
fn text_series_of_one_family_are_linear() {
    assert_near_linear("text: series of one family", &[], 40_000, 200, |n| {
        Push::text(lines(n, |i| format!("m{{i=\"{i}\"}} 1\n")))
    });
}

#[test]
fn text_help_and_type_lines_are_linear() {
    assert_near_linear("text: HELP and TYPE per family", &[], 8_000, 200, |n| {
        Push::text(lines(n, |i| {
            format!("# HELP f{i} Help of f{i}.\n# TYPE f{i} counter\nf{i} 1\n")
        }))
    });
}

#[test]
fn text_summaries_collected_over_lines_are_linear() {
    assert_near_linear("text: summaries over lines", &[], 6_000, 200, |n| {
        let mut body = b"# TYPE s summary\n".to_vec();
        body.extend(lines(n, |i| {
            format!(
                "s{{i=\"{i}\",quantile=\"0.5\"}} 1\ns_sum{{i=\"{i}\"}} 2\ns_count{{i=\"{i}\"}} 3\n"
            )
        }));
        Push::text(body)
    });
}

// ---------------------------------------------------------------------------
// Time: OpenMetrics bodies

#[test]
fn openmetrics_distinct_families_are_linear() {
    assert_near_linear("OpenMetrics: typed families", &[], 8_000, 200, |n| {
        Push::openmetrics(lines(n, |i| {
            format!(
                "# TYPE f{i} counter\n# HELP f{i} Help of f{i}.\nf{i}_total 1 # {{trace_id=\"{i}\"}} 1\nf{i}_created 1.5e9\n"
            )
        }))
    });
}

#[test]
fn openmetrics_labels_of_one_series_are_linear() {
    assert_near_linear("OpenMetrics: labels of one series", &[], 20_000, 200, |n| {
        let labels: Vec<String> = (0..n).map(|i| format!("l{i}=\"v\"")).collect();
        Push::openmetrics(format!("m{{{}}} 1\n", labels.join(",")).into_bytes())
    });
}

#[test]
fn openmetrics_series_of_one_histogram_are_linear() {
    assert_near_linear("OpenMetrics: histogram series", &[], 4_000, 200, |n| {
        let mut body = b"# TYPE h histogram\n".to_vec();
        body.extend(lines(n, |i| {
            format!(
                "h_bucket{{i=\"{i}\",le=\"1\"}} 1 # {{t=\"a\"}} 0.5\nh_bucket{{i=\"{i}\",le=\"+Inf\"}} 2\n\
                 h_count{{i=\"{i}\"}} 2\nh_sum{{i=\"{i}\"}} 3\n"
            )
        }));
        Push::openmetrics(body)
    });
}

// ---------------------------------------------------------------------------
// Time: protobuf bodies

#[test]
fn protobuf_distinct_families_are_linear() {
    assert_near_linear("protobuf: one-series families", &[], 12_000, 200, |n| {
        let mut body = Vec::new();
        let one = [gauge(&[], 1.0)];
        for i in 0..n {
            family(&mut body, &format!("family_{i}"), MetricType::Gauge, &one);
        }
        Push::protobuf(body)
    });
}

/// Protobuf may repeat a family name; the last one wins.
#[test]
fn protobuf_repeated_family_names_are_linear() {
    assert_near_linear("protobuf: one name repeated", &[], 12_000, 200, |n| {
        let mut body = Vec::new();
        for i in 0..n {
            let one = [gauge(&[], i as f64)];
            family(&mut body, "m", MetricType::Gauge, &one);
        }
        Push::protobuf(body)
    });
}

#[test]
fn protobuf_labels_of_one_series_are_linear() {
    assert_near_linear("protobuf: labels of one series", &[], 60_000, 200, |n| {
        let names: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|l| (l.as_str(), "v")).collect();
        let mut body = Vec::new();
        family(&mut body, "m", MetricType::Gauge, &[gauge(&pairs, 1.0)]);
        Push::protobuf(body)
    });
}

#[test]
fn protobuf_series_of_one_family_are_linear() {
    assert_near_linear("protobuf: series of one family", &[], 40_000, 200, |n| {
        let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let metrics: Vec<Metric> = values.iter().map(|v| gauge(&[("i", v)], 1.0)).collect();
        let mut body = Vec::new();
        family(&mut body, "m", MetricType::Gauge, &metrics);
        Push::protobuf(body)
    });
}

/// Repeated fields inside one message: classic buckets of one histogram.
#[test]
fn protobuf_repeated_buckets_are_linear() {
    assert_near_linear(
        "protobuf: buckets of one histogram",
        &[],
        60_000,
        200,
        |n| {
            let h = Histogram {
                count: n as u64,
                sum: 1.0,
                buckets: (0..n).map(|i| Bucket::new(i as f64, i as u64)).collect(),
                ..Histogram::default()
            };
            let m = Metric::new(Box::new([]), Value::Histogram(Box::new(h)));
            let mut body = Vec::new();
            family(&mut body, "h", MetricType::Histogram, &[m]);
            Push::protobuf(body)
        },
    );
}

// ---------------------------------------------------------------------------
// Time: URLs and selectors

/// `/metrics/job/j/k0/1/k1/1/...`: parsed on the I/O loop.
#[test]
fn grouping_key_pairs_are_linear() {
    assert_near_linear("URL: grouping key pairs", &[], 12_000, 200, |n| {
        let pairs: String = (0..n).map(|i| format!("/k{i}/1")).collect();
        Push {
            path: format!("/metrics/job/j{pairs}"),
            ..Push::text(b"m 1\n".to_vec())
        }
    });
}

/// One label name given again and again: the last value wins.
#[test]
fn repeated_grouping_label_names_are_linear() {
    assert_near_linear("URL: one label name repeated", &[], 12_000, 200, |n| {
        let pairs: String = (0..n).map(|i| format!("/k/{i}")).collect();
        Push {
            path: format!("/metrics/job/j{pairs}"),
            ..Push::text(b"m 1\n".to_vec())
        }
    });
}

/// A delete by selector with many matchers.
#[test]
fn delete_selector_matchers_are_linear() {
    assert_near_linear(
        "delete: matchers of one selector",
        &["--web.enable-admin-api"],
        6_000,
        200,
        |n| {
            let matchers: Vec<String> = (0..n).map(|i| format!("k{i}%3D%221%22")).collect();
            Push {
                method: "POST",
                path: format!("/api/v1/admin/delete?match[]=%7B{}%7D", matchers.join(",")),
                ..Push::text(Vec::new())
            }
        },
    );
}

/// A counted repetition compiles to far more than it spells: refused.
#[test]
fn huge_compiled_regex_is_refused_with_400() {
    let _serial = serial();
    let gw = start(&["--web.enable-admin-api"]);
    let matchers = ["job=~%22(a%7B100%7D)%7B100%7D%22"; 64];
    let query: String = matchers
        .iter()
        .map(|m| format!("match[]=%7B{m}%7D&"))
        .collect();
    let r = request(
        gw.port,
        "POST",
        &format!("/api/v1/admin/delete?{query}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("too large"), "{}", r.text());
    assert_survived(&gw, "huge regex");
}

/// An expression near the size limit costs its size times every value it
/// reads: matching that runs past its deadline (10 s) is stopped, the
/// delete answered 503 with nothing deleted, and the gateway keeps
/// answering meanwhile (before, one such delete held a worker for hours).
#[test]
fn selector_matching_that_runs_too_long_is_stopped() {
    let _serial = serial();
    let gw = start(&["--web.enable-admin-api"]);
    let value = "a".repeat(100_000);
    for g in 0..30 {
        let r = gw.put(
            &format!("/metrics/job/slow/g/{g}/v/{value}"),
            "slow_metric 1\n",
        );
        assert_eq!(r.status, 200, "group {g}: {}", r.text());
    }
    // `v=~".*.{800}b"`: some 800 states over each 100 KB value.
    let query = "match[]=%7Bv%3D~%22.*.%7B800%7Db%22%7D";
    let started = std::time::Instant::now();
    let r = support::try_request(
        gw.port,
        "POST",
        &format!("/api/v1/admin/delete?{query}"),
        &[],
        b"",
        Duration::from_secs(120),
    )
    .expect("the delete is answered");
    let took = started.elapsed();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("took longer than 10s"), "{}", r.text());
    assert!(took < Duration::from_secs(60), "answered after {took:?}");
    let scrape = gw.get("/metrics").text();
    assert_eq!(
        scrape.matches("slow_metric{").count(),
        30,
        "nothing deleted"
    );
    assert_survived(&gw, "a selector delete past its deadline");
}

// ---------------------------------------------------------------------------
// The I/O loop stays responsive

/// While big bodies and long URLs are parsed, `/-/healthy` answers within
/// a second on another connection.
#[test]
fn healthy_answers_while_big_pushes_are_parsed() {
    let _serial = serial();
    let gw = start(&[]);
    let port = gw.port;
    let done = Arc::new(AtomicBool::new(false));
    let pusher = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let pairs: String = (0..100_000).map(|i| format!("/k{i}/1")).collect();
            let url = format!("/metrics/job/j{pairs}");
            let text = lines(400_000, |i| format!("m{{i=\"{i}\"}} 1\n"));
            for _ in 0..3 {
                let r = request(port, "PUT", &url, &[], b"m 1\n");
                assert_eq!(r.status, 200, "long URL: {}", r.text());
                let r = request(port, "PUT", "/metrics/job/big", &[], &text);
                assert_eq!(r.status, 200, "big body: {}", r.text());
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut checks = 0;
    while !done.load(Ordering::SeqCst) {
        let mut c = connect(port);
        c.send_ok(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.expect_status_within("healthy during big pushes", 200, Duration::from_secs(1));
        checks += 1;
        thread::sleep(Duration::from_millis(20));
    }
    pusher.join().expect("the pushes succeed");
    assert!(checks > 0, "no health check ran during the pushes");
    assert_survived(&gw, "big pushes");
}

// ---------------------------------------------------------------------------
// Memory

/// The peak resident memory a push adds, in KiB, and its answer.
fn peak_of(gw: &Gateway, push: &Push) -> (Response, u64) {
    thread::sleep(Duration::from_millis(200));
    let before = raw::peak_rss_kib(gw.pid()).max(raw::rss_kib(gw.pid()));
    let (r, _) = push.send(gw);
    let after = raw::peak_rss_kib(gw.pid());
    (r, after.saturating_sub(before))
}

fn assert_amplification(what: &str, push: &Push, decoded: usize, factor: u64, want: u16) {
    let _serial = serial();
    let gw = start(&[]);
    let (r, grown_kib) = peak_of(&gw, push);
    assert_eq!(r.status, want, "{what}: {}", r.text());
    let limit_kib = factor * decoded as u64 / 1024;
    eprintln!(
        "{what}: {decoded} bytes decoded, peak +{grown_kib} KiB ({:.1}x, limit {factor}x)",
        grown_kib as f64 * 1024.0 / decoded as f64
    );
    assert!(
        grown_kib <= limit_kib,
        "{what}: the peak grew by {grown_kib} KiB for {decoded} decoded bytes (at most {factor}x: {limit_kib} KiB)"
    );
    assert_survived(&gw, what);
}

/// A text push of `body` is stored within the text rule.
fn assert_text_amplification(what: &str, body: Vec<u8>) {
    let size = body.len();
    assert_amplification(what, &Push::text(body), size, TEXT_AMPLIFICATION, 200);
}

/// Four MiB of `m{i="<n>"} 1` lines.
#[test]
fn text_series_peak_is_bounded() {
    let body = lines(260_000, |i| format!("m{{i=\"{i}\"}} 1\n"));
    assert_text_amplification("text: 4 MiB of series", body);
}

/// Three MiB of distinct one-sample families of long names.
#[test]
fn text_families_peak_is_bounded() {
    let body = lines(125_000, |i| format!("some_family_name_{i} 1\n"));
    assert_text_amplification("text: 3 MiB of families", body);
}

/// Three MiB of distinct one-sample families named as briefly as they
/// can be (`f0 1`, `f1 1`, ...): what the store holds for each family
/// (its block, its name, its index and group entries) against 10 bytes
/// of line.
#[test]
fn text_tiny_families_peak_is_bounded() {
    let body = lines(300_000, |i| format!("f{i} 1\n"));
    assert_text_amplification("text: 3 MiB of tiny families", body);
}

/// One family of `n` `Metric` messages of two bytes each (`22 00`): no
/// value, so the push is refused; nothing is built for them meanwhile.
fn empty_metrics_bomb(n: usize) -> Vec<u8> {
    gauge_family_of(n, &[0x22, 0x00])
}

/// A delimited gauge family named `g` of `n` copies of `metric`.
fn gauge_family_of(n: usize, metric: &[u8]) -> Vec<u8> {
    let mut fam = vec![0x0a, 0x01, b'g', 0x18, 0x01];
    for _ in 0..n {
        fam.extend_from_slice(metric);
    }
    let mut body = Vec::new();
    let mut len = fam.len();
    while len >= 0x80 {
        body.push((len as u8) | 0x80);
        len >>= 7;
    }
    body.push(len as u8);
    body.extend_from_slice(&fam);
    body
}

#[test]
fn protobuf_empty_metrics_bomb_peak_is_bounded() {
    let body = empty_metrics_bomb(2_000_000);
    let size = body.len();
    let push = Push::protobuf(body).gzipped();
    assert!(
        push.body.len() < 16 * 1024,
        "the bomb is {} bytes",
        push.body.len()
    );
    assert_amplification(
        "protobuf: 2M empty metrics (gzip)",
        &push,
        size,
        PROTOBUF_AMPLIFICATION,
        400,
    );
}

/// The same bomb against a budget smaller than its decoded size.
#[test]
fn protobuf_empty_metrics_bomb_over_the_budget_is_503() {
    let _serial = serial();
    let gw = start(&["--web.memory-budget=2MiB"]);
    let push = Push::protobuf(empty_metrics_bomb(2_000_000)).gzipped();
    let (r, _) = push.send(&gw);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_survived(&gw, "bomb over the budget");
}

/// Valid records the budget cannot cover: the parse stops with 503 as
/// soon as it runs out, the peak stays near the budget.
#[test]
fn records_over_the_budget_are_503_while_parsed() {
    let _serial = serial();
    let gw = start(&["--web.memory-budget=24MiB"]);
    // A million gauges of value 0 (`22 02 12 00`), 4 MiB decoded.
    let push = Push::protobuf(gauge_family_of(1_000_000, &[0x22, 0x02, 0x12, 0x00])).gzipped();
    let (r, grown) = peak_of(&gw, &push);
    assert_eq!(r.status, 503, "protobuf records: {}", r.text());
    assert!(
        grown < 64 * 1024,
        "protobuf records: the peak grew by {grown} KiB"
    );
    let text = Push::text(lines(300_000, |i| format!("m{{i=\"{i}\"}} 1\n"))).gzipped();
    let (r, grown) = peak_of(&gw, &text);
    assert_eq!(r.status, 503, "text records: {}", r.text());
    assert!(
        grown < 64 * 1024,
        "text records: the peak grew by {grown} KiB"
    );
    assert_survived(&gw, "records over the budget");
}

/// A grouping key of 100,000 pairs is written into every line of a scrape:
/// a body of a thousand series under it would make gigabytes of text that
/// no scrape could render within the budget, and is refused before
/// anything is allocated for it.
#[test]
fn long_grouping_key_times_many_series_is_503() {
    let _serial = serial();
    let gw = start(&[]);
    let pairs: String = (0..100_000).map(|i| format!("/k{i}/1")).collect();
    let push = Push {
        path: format!("/metrics/job/j{pairs}"),
        ..Push::text(lines(1_000, |i| format!("m{{i=\"{i}\"}} 1\n")))
    };
    let (r, grown) = peak_of(&gw, &push);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(grown < 256 * 1024, "the peak grew by {grown} KiB");
    assert_survived(&gw, "long key times many series");
}

/// A grouping key is held once per group, not copied into each series:
/// under a key of 20,000 pairs, a push of 200 series keeps about what a
/// push of one series keeps (copied, the key's labels and text would cost
/// 200 times as much), and a scrape still shows the whole key in every
/// line.
#[test]
fn a_long_grouping_key_is_held_once_per_group() {
    let _serial = serial();
    let gw = start(&[]);
    let pairs: String = (0..20_000).map(|i| format!("/k{i}/1")).collect();
    let held_kib = |job: &str, series: usize| -> u64 {
        // Idle RSS: the gateway hands freed memory back a second after a
        // burst.
        thread::sleep(Duration::from_millis(1500));
        let before = raw::rss_kib(gw.pid());
        let push = Push {
            path: format!("/metrics/job/{job}{pairs}"),
            ..Push::text(lines(series, |i| format!("m_{job}{{i=\"{i}\"}} 1\n")))
        };
        let (r, _) = push.send(&gw);
        assert_eq!(r.status, 200, "{job}: {}", r.text());
        thread::sleep(Duration::from_millis(1500));
        raw::rss_kib(gw.pid()).saturating_sub(before)
    };
    let one = held_kib("one", 1);
    let many = held_kib("many", 200);
    eprintln!("a key of 20,000 pairs: 1 series keeps {one} KiB, 200 series {many} KiB");
    assert!(
        many < 3 * one + 8 * 1024,
        "200 series under the key keep {many} KiB, one series {one} KiB: the key is copied"
    );
    let text = gw.get("/metrics").text();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m_many{")).collect();
    assert_eq!(lines.len(), 200);
    assert!(
        lines
            .iter()
            .all(|l| l.contains(",job=\"many\",k0=\"1\",") && l.contains(",k19999=\"1\"")),
        "every line shows the whole key"
    );
    assert_survived(&gw, "long key held once");
}

/// Without the consistency check, pushes may put one series in two
/// groups; a scrape then lists every such series (and fails, as the
/// reference does). Listing them is linear too.
#[test]
fn series_shared_by_unchecked_pushes_are_listed_in_linear_time() {
    let _serial = serial();
    let gw = start(&["--push.disable-consistency-check"]);
    // Small enough that 8n still fits in a last-level cache: listing the
    // series sorts them, and a sort that leaves the cache half-way pays
    // its misses on top of its log n.
    let n = 6_000;
    let mut times = Vec::new();
    for size in [n, 8 * n] {
        let body = lines(size, |i| format!("shared{{i=\"{i}\"}} 1\n"));
        // {job="a"} and {job="a",instance=""}: the same series.
        for group in ["/metrics/job/a", "/metrics/job/a/instance@base64/="] {
            let push = Push {
                path: group.into(),
                ..Push::text(body.clone())
            };
            let (r, _) = push.send(&gw);
            assert_eq!(r.status, 202, "{}", r.text());
        }
        let scrape = Push {
            method: "GET",
            ..Push::text(Vec::new())
        };
        let scrape = Push {
            path: "/metrics".into(),
            ..scrape
        };
        times.push(fastest(
            &gw,
            "scrape of an inconsistent store",
            &scrape,
            3,
            500,
        ));
    }
    let ratio = times[1].as_secs_f64() / times[0].as_secs_f64().max(1e-6);
    eprintln!(
        "shared series listed: n {:?}, 8n {:?} CPU, ratio {ratio:.1}",
        times[0], times[1]
    );
    assert!(
        ratio < MAX_RATIO,
        "8n took {ratio:.1} times as long as n: {times:?}"
    );
    assert!(raw::alive(gw.pid()));
}

// ---------------------------------------------------------------------------
// Time: scrapes of a store of many groups

/// Groups `from..to`, each holding one family of its own.
fn groups_of_own_families(gw: &Gateway, from: usize, to: usize) {
    for g in from..to {
        let r = gw.put(
            &format!("/metrics/job/own/g/{g}"),
            &format!("own_family_{g} 1\n"),
        );
        assert_eq!(r.status, 200, "group {g}: {}", r.text());
    }
}

/// A scrape costs what the store holds: each family's groups are found
/// by one walk over the groups, not by asking every group for every
/// family (families times groups: 20,000 groups of a family each took
/// 12 s a scrape), and a gzip scrape compresses small families together.
#[test]
fn scrapes_of_many_groups_of_distinct_families_are_linear() {
    let _serial = serial();
    let gw = start(&[]);
    let n = 1_500;
    let scrapes = [
        ("text", Vec::new()),
        ("gzip", vec![("Accept-Encoding", "gzip")]),
    ];
    let time_scrapes = |what: &str| -> Vec<Duration> {
        scrapes
            .iter()
            .map(|(kind, headers)| {
                let scrape = Push {
                    method: "GET",
                    path: "/metrics".into(),
                    headers: headers.clone(),
                    body: Vec::new(),
                };
                fastest(&gw, &format!("{kind} scrape {what}"), &scrape, 5, 200)
            })
            .collect()
    };
    groups_of_own_families(&gw, 0, n);
    let small = time_scrapes("at n");
    groups_of_own_families(&gw, n, 8 * n);
    let big = time_scrapes("at 8n");
    for (((kind, _), s), b) in scrapes.iter().zip(small).zip(big) {
        let ratio = b.as_secs_f64() / s.as_secs_f64().max(1e-6);
        eprintln!(
            "{kind} scrape of {n} groups {s:?}, of {} groups {b:?}, ratio {ratio:.1}",
            8 * n
        );
        assert!(
            ratio < MAX_RATIO,
            "{kind} scrape: 8n groups took {ratio:.1} times as long as n ({s:?} -> {b:?}); linear is about 8"
        );
    }
    assert_survived(&gw, "many groups of their own families");
}

// ---------------------------------------------------------------------------
// Time: what a small request costs the request loop in a large store

/// What must not grow with the store at all: a request at 8n may cost the
/// loop at most this many times what it costs at n (constant is 1, linear
/// 8).
const MAX_FLAT_RATIO: f64 = 3.0;

/// Loop CPU times under this are compared as this much: below it, what a
/// ratio measures is a busy machine's noise (a timer, an interner sweep),
/// not the request.
const FLAT_FLOOR: Duration = Duration::from_millis(2);

/// CPU time so far of the request loop, the process's main thread:
/// rendering and compressing on the pool does not count, only what holds
/// every other request up.
fn loop_cpu_time(pid: u32) -> Duration {
    let path = format!("/proc/{pid}/task/{pid}/schedstat");
    let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let ns = stat.split_whitespace().next().and_then(|s| s.parse().ok());
    Duration::from_nanos(ns.unwrap_or_else(|| panic!("{path}: {stat:?}")))
}

/// The least loop CPU time of `runs` sends of `push`, each answered
/// `want`; `around` runs before each send and what it returns is finished
/// after it (a reader in flight while the push is applied).
fn fastest_on_loop<R>(
    gw: &Gateway,
    what: &str,
    push: &Push,
    want: u16,
    around: impl Fn() -> R,
    finish: impl Fn(R),
) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let reader = around();
        let before = loop_cpu_time(gw.pid());
        let r = request(gw.port, push.method, &push.path, &push.headers, &push.body);
        let took = loop_cpu_time(gw.pid()).saturating_sub(before);
        assert_eq!(r.status, want, "{what}: {}", r.text());
        finish(reader);
        best = best.min(took);
    }
    best
}

/// `big` (at 8n) may cost at most [`MAX_FLAT_RATIO`] times `small` (at n).
fn assert_flat(what: &str, small: Duration, big: Duration) {
    let ratio = big.as_secs_f64() / small.max(FLAT_FLOOR).as_secs_f64();
    eprintln!("{what}: n {small:?}, 8n {big:?} loop CPU, ratio {ratio:.1} (floor {FLAT_FLOOR:?})");
    assert!(
        ratio < MAX_FLAT_RATIO,
        "{what}: 8n took {ratio:.1} times as long as n ({small:?} -> {big:?}); it should not grow with the store"
    );
}

/// A push refused because one of its series is another group's costs
/// what it sent: the other group is found by its id, and the series in
/// its family by a binary search, not by hashing every series of the
/// family (a one-line push against a family of 800,000 series took 107
/// ms of the loop's time).
#[test]
fn a_refused_series_conflict_costs_what_it_sent() {
    let _serial = serial();
    let gw = start(&[]);
    let n = 25_000;
    let mut times = Vec::new();
    for size in [n, 8 * n] {
        let victim = lines(size, |i| format!("m{{x=\"{i}\"}} {i}\n"));
        let r = gw.request("PUT", "/metrics/job/a", &[], &victim);
        assert_eq!(r.status, 200, "victim at {size}: {}", r.text());
        // {job="a",x="<last>"} pushing m: the victim's last series.
        let attack = Push {
            path: format!("/metrics/job/a/x/{}", size - 1),
            ..Push::text(b"m 1\n".to_vec())
        };
        let what = format!("conflicting push at {size}");
        let took = fastest_on_loop(&gw, &what, &attack, 400, || (), |()| ());
        // The victim's group, named as before.
        let r = request(gw.port, "PUT", &attack.path, &[], &attack.body);
        assert!(
            r.text().contains("already exists in group {job=\"a\"}"),
            "{}",
            r.text()
        );
        times.push(took);
    }
    assert_flat("a refused series conflict", times[0], times[1]);
    assert_survived(&gw, "refused series conflicts");
}

/// Starts a protobuf scrape of the whole store and leaves it rendering on
/// the pool: a reader that shares every group while a push is applied.
/// Protobuf, because it is encoded anew for every scrape (a gzip scrape
/// of an unchanged family is a copy of the last one, over too soon).
fn scrape_in_flight(gw: &Gateway) -> raw::Conn {
    let mut c = connect(gw.port);
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {}\r\n\r\n",
        protobuf::CONTENT_TYPE
    );
    c.send_ok(head.as_bytes());
    // Long enough for the loop to take the scrape's view, far shorter
    // than encoding a large group in a debug build.
    thread::sleep(Duration::from_millis(5));
    c
}

/// A change to a group that a reader (a scrape, a snapshot write)
/// shares copies the group's fields and its families' pointers, never a
/// family: a one-line POST, or a refused push that only records its
/// failure time, into a group with one family of 400,000 series took
/// 263 ms of the loop's time while a gzip scrape was rendering.
#[test]
fn small_changes_to_a_group_being_read_cost_what_they_change() {
    let _serial = serial();
    let gw = start(&[]);
    let n = 25_000;
    let cases: [(&str, &[u8], u16); 2] = [
        ("POST of one line", b"tiny 1\n", 200),
        ("refused push (a timestamp)", b"tiny 1 1000\n", 400),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    for size in [n, 8 * n] {
        let big = lines(size, |i| format!("m{{x=\"{i}\"}} {i}\n"));
        let r = gw.request("PUT", "/metrics/job/big", &[], &big);
        assert_eq!(r.status, 200, "group at {size}: {}", r.text());
        for ((what, body, want), t) in cases.iter().zip(&mut times) {
            let push = Push {
                method: "POST",
                path: "/metrics/job/big".into(),
                ..Push::text(body.to_vec())
            };
            let what = format!("{what} at {size} during a scrape");
            let finish = |mut c: raw::Conn| {
                c.expect_status("the scrape in flight", 200);
            };
            t.push(fastest_on_loop(
                &gw,
                &what,
                &push,
                *want,
                || scrape_in_flight(&gw),
                finish,
            ));
        }
    }
    for ((what, _, _), t) in cases.iter().zip(&times) {
        assert_flat(&format!("{what} into a group being scraped"), t[0], t[1]);
    }
    assert_survived(&gw, "changes to a group being read");
}

/// A scrape holds the loop for what changed since the last one, not for
/// every family: the list of names, HELP texts and types is kept between
/// scrapes, in pieces, and brought up to date where names changed, came
/// or went (800,000 families with a HELP text each held the loop 197 ms
/// a scrape when each built the list).
#[test]
fn a_scrape_holds_the_loop_for_what_changed_not_for_every_family() {
    let _serial = serial();
    let gw = start(&[]);
    let n = 20_000;
    let help = "h".repeat(100);
    let mut times = Vec::new();
    for size in [n, 8 * n] {
        let body = lines(size, |i| format!("# HELP f{i} {help}\nf{i} {i}\n"));
        let r = gw.request("PUT", "/metrics/job/big", &[], &body);
        assert_eq!(r.status, 200, "families at {size}: {}", r.text());
        assert_eq!(gw.get("/metrics").status, 200, "first scrape at {size}");
        let scrape = Push {
            method: "GET",
            path: "/metrics".into(),
            ..Push::text(Vec::new())
        };
        // A small change between scrapes, so none shares the last one's
        // answer: a family changed and a name new to the store.
        let added = std::sync::atomic::AtomicUsize::new(0);
        let change = || {
            let k = added.fetch_add(1, Ordering::Relaxed);
            let r = gw.post("/metrics/job/other", &format!("x 1\nnew_{size}_{k} 1\n"));
            assert_eq!(r.status, 200, "{}", r.text());
        };
        let what = format!("scrape of {size} families");
        times.push(fastest_on_loop(&gw, &what, &scrape, 200, change, |()| ()));
    }
    assert_flat("a scrape's loop time", times[0], times[1]);
    assert_survived(&gw, "scrapes of many families");
}
