//! Side-by-side benchmark of our gateway and the reference (Go 1.5.1).
//!
//! Run with `make bench` (`cargo build --release && cargo bench --bench
//! gateway`). Each server is started alone (so the two never compete for the
//! machine's two cores), gets the same workload, and is killed:
//!
//! 1. fill: `groups` PUTs of 10 families x 10 series each,
//! 2. VmRSS after the fill,
//! 3. 20 scrapes of the full store,
//! 4. 200 small PUTs to existing groups (latency per push).
//!
//! Then the extras: durable mode, idle memory, the static build (the same
//! workload on it and on the glibc build at once, request by request), the
//! HTTP front against nginx, TLS, and a mass expiry (ours only).
//!
//! Every request uses its own connection (`Connection: close`) on both
//! servers. `BENCH_SCALE` (default 1.0) scales the number of groups (1,000);
//! `PUSHGATEWAY_BIN` overrides our binary (default `target/release/pushgateway`);
//! `BENCH_ONLY=million` runs only the 1,000,000-series scenario.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) the same code runs
//! as a quick smoke test at a tiny scale against the test build of ours, so
//! the benchmark cannot rot unnoticed. The smoke run checks every answer but
//! prints no figures: a debug build's figures mean nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether figures are printed (`cargo bench`), or only checked (smoke).
static REPORT: AtomicBool = AtomicBool::new(false);

/// Everything `report!` printed, for `docs/benchmarks.md`.
static OUTPUT: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// `println!` in bench mode (and kept for `docs/benchmarks.md`), nothing
/// in the smoke run.
macro_rules! report {
    () => {
        report!("")
    };
    ($($arg:tt)*) => {
        if $crate::REPORT.load(::std::sync::atomic::Ordering::Relaxed) {
            let line = format!($($arg)*);
            println!("{line}");
            let mut out = $crate::OUTPUT.lock().unwrap_or_else(|e| e.into_inner());
            out.push_str(&line);
            out.push('\n');
        }
    };
}

/// The line of `docs/benchmarks.md` after which a full `make bench` run
/// writes its figures: every figure of the gateway lives there, once.
const RESULTS_MARK: &str = "<!-- Everything below is written by `make bench`. -->";

/// Replaces what follows [`RESULTS_MARK`] in `docs/benchmarks.md` with this
/// run's output, the machine and the commit.
fn write_results() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/benchmarks.md");
    let doc = std::fs::read_to_string(path).expect("docs/benchmarks.md is readable");
    let Some(at) = doc.find(RESULTS_MARK) else {
        panic!("docs/benchmarks.md lacks the line {RESULTS_MARK:?}");
    };
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let output = OUTPUT.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out = doc[..at + RESULTS_MARK.len()].to_owned();
    let _ = write!(
        out,
        "\n\n## The last full run\n\n{} on {cores} cores of {cpu}, commit {}:\n\n```text\n{}```\n",
        run("date", &["-u", "+%Y-%m-%d"]),
        run("git", &["rev-parse", "--short", "HEAD"]),
        output
    );
    std::fs::write(path, out).expect("docs/benchmarks.md is writable");
    println!("\nwrote the figures to docs/benchmarks.md");
}

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::Gateway;

/// Groups in the full-scale fill.
const FULL_GROUPS: f64 = 1000.0;
/// Upper bound for one phase, so a pathological server cannot hang the run.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

/// Workload size.
struct Plan {
    groups: usize,
    small_pushes: usize,
    scrapes: usize,
}

/// What one server achieved.
struct Results {
    fill: Duration,
    rss_kib: u64,
    push_median: Duration,
    push_p99: Duration,
    scrape_median: Duration,
    scrape_bytes: usize,
}

/// Family names and types of a realistic batch job's metrics.
const FAMILIES: [(&str, &str, &str); 10] = [
    (
        "batch_job_duration_seconds",
        "gauge",
        "Duration of the last run.",
    ),
    (
        "batch_records_processed_total",
        "counter",
        "Records processed.",
    ),
    (
        "batch_last_success_timestamp_seconds",
        "gauge",
        "Last successful run.",
    ),
    (
        "batch_bytes_written_total",
        "counter",
        "Bytes written to storage.",
    ),
    (
        "batch_errors_total",
        "counter",
        "Errors seen during the run.",
    ),
    (
        "batch_queue_depth",
        "gauge",
        "Items waiting when the run ended.",
    ),
    ("batch_memory_usage_bytes", "gauge", "Peak memory usage."),
    ("batch_retries_total", "counter", "Retried operations."),
    (
        "batch_items_in_flight",
        "gauge",
        "Items in flight at the end.",
    ),
    ("batch_cpu_seconds_total", "counter", "CPU time used."),
];

/// Body of group `g`: every family with 10 series (`shard` label).
fn group_body(g: usize) -> String {
    let mut body = String::new();
    for (f, (name, kind, help)) in FAMILIES.iter().enumerate() {
        let _ = writeln!(body, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for shard in 0..10 {
            let value = (g * 100 + f * 10 + shard) as f64 * 1.25;
            let _ = writeln!(
                body,
                "{name}{{shard=\"s{shard}\",region=\"eu-west-1\"}} {value}"
            );
        }
    }
    body
}

/// A small push: two series of one family, type-consistent with the fill.
fn small_body(i: usize) -> String {
    let (name, kind, help) = FAMILIES[i % FAMILIES.len()];
    format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{shard=\"s0\",region=\"eu-west-1\"}} {i}\n{name}{{shard=\"s1\",region=\"eu-west-1\"}} {}\n",
        i * 2
    )
}

fn group_path(g: usize) -> String {
    format!("/metrics/job/bench/instance/i{g}")
}

fn check_deadline(start: Instant, phase: &str, who: &str) {
    assert!(
        start.elapsed() < PHASE_LIMIT,
        "{who}: phase {phase} exceeded {PHASE_LIMIT:?}, aborting"
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "no samples");
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// `p50 / p99 / max ms (n pushes)` of sorted push latencies, as every
/// latency row prints them.
fn latencies(sorted: &[Duration]) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.2} / {:.2} / {:.2} ms ({} pushes)",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default()),
        sorted.len()
    )
}

fn run(who: &str, bin: &str, plan: &Plan) -> Results {
    side_by_side(&[(who, bin)], plan).remove(0)
}

/// [`run`] for several binaries at once, request by request: every
/// request goes to each gateway in turn, one at a time, and each figure is
/// the sum or spread of a gateway's own request times. A quiet spell or a
/// busy one on the machine then falls on both builds alike, which two
/// runs one after the other cannot promise: the static-versus-glibc
/// comparison differs by tenths of a millisecond a push.
fn side_by_side(bins: &[(&str, &str)], plan: &Plan) -> Vec<Results> {
    let gws: Vec<Gateway> = bins
        .iter()
        .map(|(_, bin)| Gateway::start(bin, &["--persistence.file="]))
        .collect();
    let mut fills = vec![Duration::ZERO; gws.len()];
    let start = Instant::now();
    for g in 0..plan.groups {
        for (i, gw) in gws.iter().enumerate() {
            let t = Instant::now();
            let r = gw.put(&group_path(g), &group_body(g));
            fills[i] += t.elapsed();
            assert_eq!(
                r.status,
                200,
                "{}: fill PUT {g} failed: {}",
                bins[i].0,
                r.text()
            );
        }
        check_deadline(start, "fill", bins[0].0);
    }
    let rss: Vec<u64> = gws
        .iter()
        .zip(bins)
        .map(|(gw, (who, _))| {
            gw.rss_kib()
                .unwrap_or_else(|| panic!("{who}: cannot read VmRSS"))
        })
        .collect();

    let mut scrapes = vec![Vec::with_capacity(plan.scrapes); gws.len()];
    let mut scrape_bytes = vec![0; gws.len()];
    let start = Instant::now();
    for _ in 0..plan.scrapes {
        for (i, gw) in gws.iter().enumerate() {
            let t = Instant::now();
            let r = gw.get("/metrics");
            scrapes[i].push(t.elapsed());
            assert_eq!(r.status, 200, "{}: scrape failed: {}", bins[i].0, r.text());
            scrape_bytes[i] = r.body.len();
        }
        check_deadline(start, "scrape", bins[0].0);
    }

    let mut pushes = vec![Vec::with_capacity(plan.small_pushes); gws.len()];
    let start = Instant::now();
    for n in 0..plan.small_pushes {
        // Spread over the store, each group hit at most once at full scale.
        let g = (n * 7919) % plan.groups;
        let body = small_body(n);
        for (i, gw) in gws.iter().enumerate() {
            let t = Instant::now();
            let r = gw.put(&group_path(g), &body);
            pushes[i].push(t.elapsed());
            assert_eq!(
                r.status,
                200,
                "{}: small PUT {n} failed: {}",
                bins[i].0,
                r.text()
            );
        }
        check_deadline(start, "small pushes", bins[0].0);
    }
    (0..gws.len())
        .map(|i| {
            pushes[i].sort();
            scrapes[i].sort();
            Results {
                fill: fills[i],
                rss_kib: rss[i],
                push_median: percentile(&pushes[i], 0.5),
                push_p99: percentile(&pushes[i], 0.99),
                scrape_median: percentile(&scrapes[i], 0.5),
                scrape_bytes: scrape_bytes[i],
            }
        })
        .collect()
}

/// Pushes per second with `clients` concurrent clients, each doing
/// `per_client` small PUTs to its own few groups.
fn throughput(who: &str, bin: &str, args: &[&str], clients: usize, per_client: usize) -> f64 {
    let gw = Gateway::start(bin, args);
    let port = gw.port;
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let who = who.to_string();
            std::thread::spawn(move || {
                for i in 0..per_client {
                    let path = format!("/metrics/job/tp/instance/c{c}-{}", i % 20);
                    let r = support::put(port, &path, &small_body(i));
                    assert!(
                        r.status == 200 || r.status == 202,
                        "{who}: push failed: {}",
                        r.text()
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    (clients * per_client) as f64 / start.elapsed().as_secs_f64()
}

/// Resident memory of a freshly started gateway with an empty store.
fn idle_rss(bin: &str) -> u64 {
    let gw = Gateway::start(bin, &["--persistence.file="]);
    std::thread::sleep(Duration::from_millis(500));
    gw.rss_kib().expect("VmRSS")
}

/// Durable mode, idle memory, and our static (musl) build against the
/// default one on the main table's workload (`plan`), the two run one
/// after the other here.
fn print_extras(bench_mode: bool, plan: &Plan, ours_bin: &str, reference_bin: &str) {
    let (clients, per_client) = if bench_mode { (8, 250) } else { (2, 10) };
    let dir = std::env::temp_dir().join(format!("pushgateway-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench temp dir");
    let file = format!("--persistence.file={}", dir.join("metric.store").display());
    let memory = throughput(
        "ours",
        ours_bin,
        &["--persistence.file="],
        clients,
        per_client,
    );
    let durable = throughput(
        "ours",
        ours_bin,
        &[&file, "--persistence.interval=0"],
        clients,
        per_client,
    );
    let reference = throughput(
        "reference",
        reference_bin,
        &["--persistence.file="],
        clients,
        per_client,
    );
    let _ = std::fs::remove_dir_all(&dir);
    report!();
    report!(
        "pushes/s with {clients} concurrent clients ({} pushes):",
        clients * per_client
    );
    report!("  ours, in memory                     {memory:>10.0}");
    report!(
        "  ours, durable (--persistence.interval=0, fsync per batch) {durable:>10.0}  ({} of in-memory)",
        ratio(durable, memory)
    );
    report!(
        "  reference, in memory                {reference:>10.0}  (ours in memory is {})",
        ratio(memory, reference)
    );
    let (ours_idle, ref_idle) = (idle_rss(ours_bin), idle_rss(reference_bin));
    report!(
        "idle RSS (empty store): ours {ours_idle} KiB, reference {ref_idle} KiB ({})",
        ratio(ours_idle as f64, ref_idle as f64)
    );
    let musl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/x86_64-unknown-linux-musl/release/pushgateway"
    );
    if bench_mode && Path::new(musl).exists() {
        let mut both = side_by_side(
            &[("ours (glibc)", ours_bin), ("ours (musl static)", musl)],
            plan,
        );
        let (glibc, stat) = (both.remove(0), both.remove(0));
        // Throughput cannot go request by request: the best of three
        // rounds, the builds alternating, for each.
        let (mut g_tp, mut m_tp) = (0f64, 0f64);
        for _ in 0..3 {
            let args = &["--persistence.file="];
            g_tp = g_tp.max(throughput("ours", ours_bin, args, clients, per_client));
            m_tp = m_tp.max(throughput("ours (musl)", musl, args, clients, per_client));
        }
        report!(
            "static musl build vs default build ({} groups / {} series; both at once, each request to one then the other):",
            plan.groups,
            plan.groups * 100
        );
        // Each figure static vs glibc, with the ratio (times: static /
        // glibc, bigger = static slower; pushes/s: glibc / static).
        let secs = |d: Duration| d.as_secs_f64();
        for (what, s, g) in [
            ("fill          ", stat.fill, glibc.fill),
            ("push median   ", stat.push_median, glibc.push_median),
            ("push p99      ", stat.push_p99, glibc.push_p99),
            ("scrape median ", stat.scrape_median, glibc.scrape_median),
        ] {
            report!(
                "  {what} {} vs {} ({})",
                ms(s),
                ms(g),
                ratio(secs(s), secs(g))
            );
        }
        report!(
            "  pushes/s       {m_tp:.0} vs {g_tp:.0} ({}, best of 3 rounds each)",
            ratio(g_tp, m_tp)
        );
        report!(
            "  RSS after fill {} KiB vs {} KiB",
            stat.rss_kib,
            glibc.rss_kib
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn ratio(num: f64, den: f64) -> String {
    if den == 0.0 {
        "-".to_string()
    } else {
        format!("{:.2}x", num / den)
    }
}

fn print_table(plan: &Plan, ours: &Results, reference: &Results) {
    let series = plan.groups * 100;
    let rows: Vec<(String, String, String, String)> = vec![
        (
            format!("fill {} groups / {series} series", plan.groups),
            ms(ours.fill),
            ms(reference.fill),
            ratio(reference.fill.as_secs_f64(), ours.fill.as_secs_f64()),
        ),
        (
            format!("small push median (n={})", plan.small_pushes),
            ms(ours.push_median),
            ms(reference.push_median),
            ratio(
                reference.push_median.as_secs_f64(),
                ours.push_median.as_secs_f64(),
            ),
        ),
        (
            "small push p99".to_string(),
            ms(ours.push_p99),
            ms(reference.push_p99),
            ratio(
                reference.push_p99.as_secs_f64(),
                ours.push_p99.as_secs_f64(),
            ),
        ),
        (
            format!("scrape median (n={})", plan.scrapes),
            ms(ours.scrape_median),
            ms(reference.scrape_median),
            ratio(
                reference.scrape_median.as_secs_f64(),
                ours.scrape_median.as_secs_f64(),
            ),
        ),
        (
            "scrape size".to_string(),
            format!("{} B", ours.scrape_bytes),
            format!("{} B", reference.scrape_bytes),
            ratio(ours.scrape_bytes as f64, reference.scrape_bytes as f64),
        ),
        (
            "RSS after fill".to_string(),
            format!("{} KiB", ours.rss_kib),
            format!("{} KiB", reference.rss_kib),
            ratio(ours.rss_kib as f64, reference.rss_kib as f64),
        ),
    ];
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(4);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(9);
    report!(
        "{:w0$} | {:>w1$} | {:>w2$} | ratio",
        "metric",
        "ours",
        "reference"
    );
    report!("{}", "-".repeat(w0 + w1 + w2 + 14));
    for (m, o, r, x) in rows {
        report!("{m:w0$} | {o:>w1$} | {r:>w2$} | {x}");
    }
    report!(
        "ratio: reference/ours for times (bigger = ours faster), ours/reference for sizes and memory (smaller = ours leaner)"
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    REPORT.store(bench_mode, Ordering::Relaxed);
    let scale: f64 = match std::env::var("BENCH_SCALE") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("BENCH_SCALE must be a number, got {s:?}")),
        Err(_) => 1.0,
    };
    assert!(
        scale > 0.0 && scale <= 100.0,
        "BENCH_SCALE must be in (0, 100], got {scale}"
    );
    let plan = if bench_mode {
        Plan {
            groups: ((FULL_GROUPS * scale).round() as usize).max(1),
            small_pushes: 200,
            scrapes: 20,
        }
    } else {
        Plan {
            groups: 5,
            small_pushes: 10,
            scrapes: 3,
        }
    };
    let ours_bin = match std::env::var("PUSHGATEWAY_BIN") {
        Ok(b) => b,
        Err(_) if bench_mode => {
            let release = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/pushgateway");
            if Path::new(release).exists() {
                release.to_string()
            } else {
                // Cargo built the bench profile's binary for us anyway.
                support::ours()
            }
        }
        Err(_) => support::ours(),
    };
    let reference_bin = support::reference();
    // BENCH_ONLY=million: just the 1M-series scenario (issue 15's table),
    // for iterating on it.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("million") {
        million_bench::print(bench_mode, &[("ours", ours_bin.as_str())]);
        return;
    }
    report!(
        "{} mode: ours = {ours_bin}, reference = {reference_bin}, {} groups",
        if bench_mode { "bench" } else { "smoke" },
        plan.groups
    );
    let ours = run("ours", &ours_bin, &plan);
    let reference = run("reference", &reference_bin, &plan);
    print_table(&plan, &ours, &reference);
    print_extras(bench_mode, &plan, &ours_bin, &reference_bin);
    http_bench::print(bench_mode, &ours_bin, &reference_bin);
    expiry_bench::print(bench_mode, &ours_bin);
    let musl = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/x86_64-unknown-linux-musl/release/pushgateway"
    );
    let mut million = vec![("ours", ours_bin.as_str())];
    if bench_mode && Path::new(musl).exists() {
        million.push(("ours (musl static)", musl));
    }
    million_bench::print(bench_mode, &million);
    #[cfg(feature = "tls")]
    tls_bench::print(bench_mode, &ours_bin, &reference_bin);
    // Only a full run at full scale stands for the gateway's figures.
    if bench_mode && scale == 1.0 {
        write_results();
    }
}

/// Push throughput over TLS against plain HTTP, ours and the reference,
/// each with the same web config file and certificates (made by openssl).
/// Two client styles: a new connection per push (what the Python client
/// and curl in a cron job do: a full handshake each time) and one
/// keep-alive connection per client (what long-running pushers and
/// Prometheus do). The TLS client is rustls, already a dependency.
#[cfg(feature = "tls")]
mod tls_bench {
    use super::{Gateway, ratio, small_body, support};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::time::Instant;

    trait Stream: Read + Write {}
    impl<T: Read + Write> Stream for T {}

    /// Connects to `port`, over TLS when `tls` is given.
    fn connect(port: u16, tls: Option<&Arc<rustls::ClientConfig>>) -> Box<dyn Stream> {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        match tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let conn = rustls::ClientConnection::new(Arc::clone(config), name).expect("tls");
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        }
    }

    /// One keep-alive PUT; returns the status after reading the whole answer.
    fn put(stream: &mut dyn Stream, path: &str, body: &str) -> u16 {
        let req = format!(
            "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).expect("write");
        stream.flush().expect("flush");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).expect("read");
            assert!(n > 0, "connection closed mid-answer");
            raw.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&raw);
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if raw.len() >= end + 4 + len {
                    return text[9..12].parse().expect("status");
                }
            }
        }
    }

    /// Pushes per second: `clients` threads doing `per_client` pushes.
    fn rate(
        port: u16,
        tls: Option<&Arc<rustls::ClientConfig>>,
        keep_alive: bool,
        clients: usize,
        per_client: usize,
    ) -> f64 {
        let start = Instant::now();
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let tls = tls.cloned();
                std::thread::spawn(move || {
                    let mut conn = keep_alive.then(|| connect(port, tls.as_ref()));
                    for i in 0..per_client {
                        let path = format!("/metrics/job/tls/instance/c{c}-{}", i % 20);
                        let status = match conn.as_mut() {
                            Some(s) => put(s.as_mut(), &path, &small_body(i)),
                            None => {
                                put(connect(port, tls.as_ref()).as_mut(), &path, &small_body(i))
                            }
                        };
                        assert_eq!(
                            status,
                            200,
                            "push over {}",
                            if tls.is_some() { "TLS" } else { "HTTP" }
                        );
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("client thread");
        }
        (clients * per_client) as f64 / start.elapsed().as_secs_f64()
    }

    pub fn print(bench_mode: bool, ours_bin: &str, reference_bin: &str) {
        let (clients, per_client) = if bench_mode { (8, 250) } else { (2, 10) };
        let pki = support::Pki::new("bench");
        let cfg = pki.web_config(
            "web.yml",
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        );
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(pki.path("ca.crt")).expect("ca");
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
            roots.add(cert.expect("ca pem")).expect("add ca");
        }
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
        );
        report!();
        report!(
            "pushes/s over TLS vs plain HTTP ({clients} clients x {per_client} pushes, in memory):"
        );
        report!(
            "  {:<34} {:>10} {:>10} {:>8}",
            "",
            "plain",
            "TLS",
            "TLS/plain"
        );
        let mut tls_rates = Vec::new();
        for (who, bin) in [("ours", ours_bin), ("reference", reference_bin)] {
            let web = format!("--web.config.file={cfg}");
            let plain_gw = Gateway::start(bin, &["--persistence.file="]);
            let tls_gw = Gateway::start(bin, &["--persistence.file=", &web]);
            for keep_alive in [false, true] {
                let plain = rate(plain_gw.port, None, keep_alive, clients, per_client);
                let tls = rate(tls_gw.port, Some(&config), keep_alive, clients, per_client);
                let style = if keep_alive {
                    "keep-alive"
                } else {
                    "new connection per push"
                };
                report!(
                    "  {:<34} {plain:>10.0} {tls:>10.0} {:>8}",
                    format!("{who}, {style}"),
                    ratio(tls, plain)
                );
                tls_rates.push(tls);
            }
        }
        report!(
            "  ours over TLS vs the reference over TLS: {} (new connection), {} (keep-alive)",
            ratio(tls_rates[0], tls_rates[2]),
            ratio(tls_rates[1], tls_rates[3])
        );
    }
}

/// The HTTP front under load, with nginx as the ceiling: wrk with 16
/// keep-alive connections against `GET /-/healthy` (ours, the reference,
/// and nginx's `return 200` with one worker) and small pushes (ours and
/// the reference); then 10,000 idle connections held open against each
/// gateway while pushes are timed, with the RSS and threads they cost.
mod http_bench {
    use super::{Gateway, percentile, ratio, small_body, support};
    use std::net::TcpStream;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// nginx with one worker answering `return 200` on `port`; killed on drop.
    struct Nginx {
        child: Child,
        dir: std::path::PathBuf,
    }

    impl Nginx {
        fn start(port: u16) -> Nginx {
            let dir = std::env::temp_dir()
                .join(format!("pushgateway-bench-nginx-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("nginx dir");
            let conf = dir.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "worker_processes 1;\ndaemon off;\npid {pid};\nerror_log stderr error;\n\
                     events {{ worker_connections 4096; }}\n\
                     http {{ access_log off; client_body_temp_path {tmp}; \
                     server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"OK\\n\"; }} }} }}\n",
                    pid = dir.join("nginx.pid").display(),
                    tmp = dir.display(),
                ),
            )
            .expect("write nginx.conf");
            let child = Command::new("nginx")
                .args([
                    "-p",
                    &dir.display().to_string(),
                    "-c",
                    &conf.display().to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx (make deps installs nginx-light)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "nginx did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
            Nginx { child, dir }
        }
    }

    impl Drop for Nginx {
        /// SIGTERM, not SIGKILL: the master then stops its worker, which
        /// would otherwise outlive it (holding the port and our stdout).
        fn drop(&mut self) {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Requests per second wrk measured with 16 keep-alive connections.
    fn wrk(url: &str, seconds: u32, script: Option<&str>) -> f64 {
        let mut cmd = Command::new("wrk");
        cmd.args(["-t2", "-c16", &format!("-d{seconds}s")]);
        let dir =
            std::env::temp_dir().join(format!("pushgateway-bench-wrk-{}", std::process::id()));
        if let Some(lua) = script {
            std::fs::create_dir_all(&dir).expect("wrk dir");
            let file = dir.join("script.lua");
            std::fs::write(&file, lua).expect("write wrk script");
            cmd.args(["-s", &file.display().to_string()]);
        }
        let out = cmd
            .arg(url)
            .output()
            .expect("run wrk (make deps installs it)");
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("Non-2xx"),
            "wrk saw error answers from {url}:\n{text}"
        );
        text.lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no rate in wrk's output for {url}:\n{text}"))
    }

    const PUSH_SCRIPT: &str =
        "wrk.method = \"PUT\"\nwrk.body = \"small_metric{a=\\\"b\\\"} 1\\n\"\n";

    pub fn print(bench_mode: bool, ours_bin: &str, reference_bin: &str) {
        let secs = if bench_mode { 5 } else { 1 };
        let ours = Gateway::start(ours_bin, &["--persistence.file="]);
        let healthy_ours = wrk(
            &format!("http://127.0.0.1:{}/-/healthy", ours.port),
            secs,
            None,
        );
        let push_url = format!("http://127.0.0.1:{}/metrics/job/wrk", ours.port);
        let push_ours = wrk(&push_url, secs, Some(PUSH_SCRIPT));
        drop(ours);
        let reference = Gateway::start(reference_bin, &["--persistence.file="]);
        let healthy_ref = wrk(
            &format!("http://127.0.0.1:{}/-/healthy", reference.port),
            secs,
            None,
        );
        let push_url = format!("http://127.0.0.1:{}/metrics/job/wrk", reference.port);
        let push_ref = wrk(&push_url, secs, Some(PUSH_SCRIPT));
        drop(reference);
        let port = support::free_port();
        let nginx = Nginx::start(port);
        let healthy_nginx = wrk(&format!("http://127.0.0.1:{port}/-/healthy"), secs, None);
        drop(nginx);
        report!();
        report!("HTTP front, wrk with 16 keep-alive connections, {secs} s each (requests/s):");
        report!(
            "  GET /-/healthy   ours {healthy_ours:>9.0}  reference {healthy_ref:>9.0}  nginx return 200 {healthy_nginx:>9.0}"
        );
        report!(
            "                   ours/nginx {}  ours/reference {}",
            ratio(healthy_ours, healthy_nginx),
            ratio(healthy_ours, healthy_ref)
        );
        report!("  small PUT push   ours {push_ours:>9.0}  reference {push_ref:>9.0}");
        report!(
            "                   ours/nginx's healthy {}  ours/reference {}",
            ratio(push_ours, healthy_nginx),
            ratio(push_ours, push_ref)
        );
        let idle = if bench_mode { 10_000 } else { 200 };
        for (who, bin) in [("ours", ours_bin), ("reference", reference_bin)] {
            idle_connections(who, bin, idle);
        }
    }

    /// Holds `n` idle connections (each served one request first) and
    /// times pushes on new connections meanwhile.
    fn idle_connections(who: &str, bin: &str, n: usize) {
        raise_nofile_limit(n as u64 + 1024);
        let gw = Gateway::start(bin, &["--persistence.file="]);
        let rss_before = gw.rss_kib().unwrap_or(0);
        let threads_before = threads(gw.pid());
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
            use std::io::{Read, Write};
            c.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("write");
            let mut buf = [0u8; 512];
            let _ = c.read(&mut buf).expect("read");
            held.push(c);
        }
        std::thread::sleep(Duration::from_millis(500));
        let rss = gw.rss_kib().unwrap_or(0);
        let thr = threads(gw.pid());
        let mut times = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            let r = support::put(
                gw.port,
                &format!("/metrics/job/idle/instance/{}", i % 10),
                &small_body(i),
            );
            assert!(r.status == 200 || r.status == 202, "{who}: push failed");
            times.push(t.elapsed());
        }
        times.sort();
        report!(
            "  {n} idle connections, {who}: RSS {rss_before} -> {rss} KiB (+{:.1} KiB each), threads {threads_before} -> {thr}, push p50 {:.2} ms p99 {:.2} ms",
            (rss.saturating_sub(rss_before)) as f64 / n as f64,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        );
        drop(held);
    }

    fn threads(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The bench itself holds the idle connections: it needs descriptors.
    fn raise_nofile_limit(want: u64) {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain libc calls on a live rlimit.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            if lim.rlim_cur < want {
                lim.rlim_cur = want.min(lim.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

/// Mass expiry: `groups` groups pushed with `Pushgateway-Group-TTL`
/// headers chosen so that they all fall due at the same instant, while a
/// client keeps pushing to another group; the pushes' latency around that
/// instant against before it. Expiry runs in 2 ms rounds between requests,
/// so the worst push should wait a few milliseconds, not the whole purge.
mod expiry_bench {
    use super::{Gateway, support};
    use std::thread;
    use std::time::{Duration, Instant};

    fn body(g: usize) -> String {
        let mut b = String::from("# TYPE expiring_bytes gauge\n");
        for s in 0..10 {
            b.push_str(&format!(
                "expiring_bytes{{shard=\"s{s}\"}} {}\n",
                g * 10 + s
            ));
        }
        b
    }

    pub fn print(bench_mode: bool, ours_bin: &str) {
        let groups = if bench_mode { 10_000 } else { 50 };
        let gw = Gateway::start(ours_bin, &["--persistence.file="]);
        // One instant for every deadline, far enough ahead for the fill.
        let due = Instant::now() + Duration::from_millis(2000 + groups as u64);
        for g in 0..groups {
            let left = due.saturating_duration_since(Instant::now());
            assert!(
                left > Duration::from_millis(300),
                "the fill is too slow to finish before the deadline"
            );
            let ttl = format!("{}ms", left.as_millis());
            let r = support::request(
                gw.port,
                "PUT",
                &format!("/metrics/job/expiring/instance/i{g}"),
                &[("Pushgateway-Group-TTL", &ttl)],
                body(g).as_bytes(),
            );
            assert_eq!(r.status, 200, "fill push: {}", r.text());
        }
        // Push to a group that never expires until well after the instant.
        let end = due + Duration::from_secs(3);
        let mut before = Vec::new();
        let mut around = Vec::new();
        while Instant::now() < end {
            let t = Instant::now();
            let r = support::request(
                gw.port,
                "PUT",
                "/metrics/job/probe",
                &[("Pushgateway-Group-TTL", "0")],
                super::small_body(before.len() + around.len()).as_bytes(),
            );
            assert_eq!(r.status, 200, "probe push: {}", r.text());
            if t + Duration::from_millis(100) < due {
                before.push(t.elapsed());
            } else {
                around.push(t.elapsed());
            }
            thread::sleep(Duration::from_millis(1));
        }
        let text = gw.get("/metrics").text();
        let expired = text
            .lines()
            .find_map(|l| l.strip_prefix("pushgateway_groups_expired_total "))
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(expired, Some(groups as f64), "every group expired");
        assert!(!text.contains("job=\"expiring\""), "no expiring group left");
        before.sort();
        around.sort();
        report!();
        report!(
            "mass expiry: {groups} groups (10 series each) due at one instant, pushes meanwhile (ours only; the reference has no expiry):"
        );
        report!(
            "  push latency before: p50 / p99 / max {}",
            super::latencies(&before)
        );
        report!(
            "  push latency from 100 ms before the instant to 3 s after: p50 / p99 / max {}",
            super::latencies(&around)
        );
    }
}

/// A million series (10,000 groups × 100 series, `host` labels), ours
/// alone: fill, pushes with and without a scraper running back to back
/// (gzip), the scrape itself, memory, the snapshot, a restart, and last
/// (on the restarted gateway, after its memory is read) a selector delete
/// of every group with pushes meanwhile. Issue 15's table; run for the
/// glibc build and the static musl build.
mod million_bench {
    use super::{Gateway, percentile, support};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;
    use std::time::{Duration, Instant};

    /// One keep-alive connection; answers framed by Content-Length.
    struct Client {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    impl Client {
        fn new(port: u16) -> Client {
            let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            Client {
                stream,
                buf: Vec::new(),
            }
        }

        /// Sends one request; returns the status and the body's length.
        fn request(
            &mut self,
            method: &str,
            path: &str,
            headers: &str,
            body: &[u8],
        ) -> (u16, usize) {
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n{headers}\r\n",
                body.len()
            );
            self.stream.write_all(head.as_bytes()).expect("write head");
            self.stream.write_all(body).expect("write body");
            let end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                self.fill();
            };
            let text = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let status = text[9..12].parse().expect("status");
            let len: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("length"))
                .expect("answers carry Content-Length");
            while self.buf.len() < end + len {
                self.fill();
            }
            self.buf.drain(..end + len);
            (status, len)
        }

        fn fill(&mut self) {
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn body(g: usize) -> String {
        let mut b = String::new();
        for f in 0..10 {
            b.push_str(&format!("# TYPE big_metric_{f} gauge\n"));
            for s in 0..10 {
                b.push_str(&format!(
                    "big_metric_{f}{{host=\"host-{g}.example.org\",shard=\"s{s}\"}} {}\n",
                    g * 100 + f * 10 + s
                ));
            }
        }
        b
    }

    fn status_kib(pid: u32, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Small pushes on one keep-alive connection for `n` pushes or until
    /// `stop`; their latencies, sorted.
    fn pushes(port: u16, n: usize, stop: Option<&AtomicBool>) -> Vec<Duration> {
        let mut c = Client::new(port);
        let mut out = Vec::new();
        for i in 0..n {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                break;
            }
            let t = Instant::now();
            let (status, _) = c.request(
                "PUT",
                &format!("/metrics/job/probe/instance/p{}", i % 10),
                "",
                super::small_body(i).as_bytes(),
            );
            assert_eq!(status, 200, "probe push");
            out.push(t.elapsed());
            thread::sleep(Duration::from_millis(2));
        }
        out.sort();
        out
    }

    /// Each build is filled alone; then the quiet small pushes go to all
    /// of them in turn (one push to each, then the next), so that the
    /// machine's spells fall on every build alike: this sub-millisecond
    /// figure moved by half between runs made one after the other. The
    /// rest runs for one build after the other.
    pub fn print(bench_mode: bool, bins: &[(&str, &str)]) {
        let groups = if bench_mode { 10_000 } else { 20 };
        let filled: Vec<Filled> = bins
            .iter()
            .map(|(who, bin)| fill(who, bin, groups))
            .collect();
        let ports: Vec<u16> = filled.iter().map(|f| f.gw.port).collect();
        // A p99 of 1,000 is their tenth largest, not the third of 300.
        let quiet = pushes_in_turn(&ports, if bench_mode { 1000 } else { 300 });
        for (f, quiet) in filled.into_iter().zip(quiet) {
            run(f, quiet, groups);
        }
    }

    /// A gateway filled with the million series, and what filling it took.
    struct Filled {
        who: String,
        bin: String,
        gw: Gateway,
        /// Holds the persistence file.
        _dir: support::TempDir,
        file: std::path::PathBuf,
        flag: String,
        fill: Duration,
        rss_fill: u64,
    }

    fn fill(who: &str, bin: &str, groups: usize) -> Filled {
        let dir = support::TempDir::new("million");
        let file = dir.file("metric.store");
        let flag = format!("--persistence.file={}", file.display());
        let gw = Gateway::start(bin, &[&flag, "--persistence.interval=1h"]);
        let started = Instant::now();
        let workers = 2;
        thread::scope(|s| {
            for w in 0..workers {
                let port = gw.port;
                s.spawn(move || {
                    let mut c = Client::new(port);
                    for g in (w..groups).step_by(workers) {
                        let path = format!("/metrics/job/million/instance/i{g}");
                        let (status, _) = c.request("PUT", &path, "", body(g).as_bytes());
                        assert_eq!(status, 200, "fill push");
                    }
                });
            }
        });
        let fill = started.elapsed();
        let rss_fill = gw.rss_kib().unwrap_or(0);
        Filled {
            who: who.to_string(),
            bin: bin.to_string(),
            gw,
            _dir: dir,
            file,
            flag,
            fill,
            rss_fill,
        }
    }

    /// `n` small pushes to each gateway in turn, each on its own
    /// keep-alive connection; their latencies per gateway, sorted.
    fn pushes_in_turn(ports: &[u16], n: usize) -> Vec<Vec<Duration>> {
        let mut clients: Vec<Client> = ports.iter().map(|&p| Client::new(p)).collect();
        let mut out = vec![Vec::with_capacity(n); ports.len()];
        for i in 0..n {
            let path = format!("/metrics/job/probe/instance/p{}", i % 10);
            let body = super::small_body(i);
            for (c, times) in clients.iter_mut().zip(&mut out) {
                let t = Instant::now();
                let (status, _) = c.request("PUT", &path, "", body.as_bytes());
                assert_eq!(status, 200, "probe push");
                times.push(t.elapsed());
            }
            thread::sleep(Duration::from_millis(2));
        }
        for times in &mut out {
            times.sort();
        }
        out
    }

    fn run(filled: Filled, quiet: Vec<Duration>, groups: usize) {
        let Filled {
            who,
            bin,
            mut gw,
            _dir,
            file,
            flag,
            fill,
            rss_fill,
        } = filled;
        let (who, bin) = (who.as_str(), bin.as_str());
        // A scraper back to back, pushes meanwhile.
        let stop = Arc::new(AtomicBool::new(false));
        let port = gw.port;
        let stop2 = Arc::clone(&stop);
        let scraper = thread::spawn(move || {
            let mut c = Client::new(port);
            let mut times = Vec::new();
            let mut size = 0;
            while !stop2.load(Ordering::Relaxed) || times.is_empty() {
                let t = Instant::now();
                let (status, len) = c.request("GET", "/metrics", "Accept-Encoding: gzip\r\n", b"");
                assert_eq!(status, 200, "scrape");
                times.push(t.elapsed());
                size = len;
            }
            times.sort();
            (times, size)
        });
        thread::sleep(Duration::from_millis(200));
        let busy = pushes(gw.port, 1500, None);
        stop.store(true, Ordering::Relaxed);
        let (scrapes, gz_size) = scraper.join().expect("scraper");
        let peak = status_kib(gw.pid(), "VmHWM:");
        let pause = gw
            .get("/metrics")
            .text()
            .lines()
            .find_map(|l| {
                l.strip_prefix("pushgateway_scrape_loop_pause_seconds{quantile=\"0.9\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        // The final snapshot at SIGTERM, then a restart from it.
        let t = Instant::now();
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(gw.pid() as libc::pid_t, libc::SIGTERM) };
        gw.wait_exit(Duration::from_secs(120)).expect("exits");
        let stop_time = t.elapsed();
        let snapshot = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        let t = Instant::now();
        let gw = Gateway::start(
            bin,
            &[&flag, "--persistence.interval=1h", "--web.enable-admin-api"],
        );
        let restart = t.elapsed();
        let rss_restart = gw.rss_kib().unwrap_or(0);
        // Every group deleted by one selector, small pushes meanwhile
        // (the delete goes in rounds; the pushes must not wait for it).
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let port = gw.port;
        let pusher = thread::spawn(move || pushes(port, usize::MAX, Some(&stop2)));
        let t = Instant::now();
        let (status, answer_len) = Client::new(gw.port).request(
            "POST",
            "/api/v1/admin/delete?match[]=%7Bjob%3D%22million%22%7D",
            "",
            b"",
        );
        let delete = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        let during_delete = pusher.join().expect("pusher");
        assert_eq!(status, 200, "selector delete");
        assert!(answer_len > groups * 20, "the answer lists every group");
        assert!(
            !gw.get("/metrics").text().contains("job=\"million\""),
            "every group deleted"
        );
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let series = groups * 100;
        report!();
        report!("{series} series ({groups} groups x 100), {who} ({bin}):");
        report!(
            "  fill ({groups} PUTs, 2 keep-alive clients)     {:>9.0} ms",
            ms(fill)
        );
        report!(
            "  small push, no scraper: p50 / p99           {:.2} / {:.2} ms",
            ms(percentile(&quiet, 0.5)),
            ms(percentile(&quiet, 0.99))
        );
        report!(
            "  small push, scraper back to back: p50 / p99 / max  {}",
            super::latencies(&busy)
        );
        report!(
            "  gzip scrape: median / max                   {:.0} / {:.0} ms ({} scrapes, {:.1} MB compressed)",
            ms(percentile(&scrapes, 0.5)),
            ms(scrapes.last().copied().unwrap_or_default()),
            scrapes.len(),
            gz_size as f64 / 1e6
        );
        report!(
            "  loop time per scrape (p90)                  {:.3} ms",
            pause * 1e3
        );
        report!(
            "  RSS after fill / peak                       {:.0} / {:.0} MB",
            rss_fill as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        report!(
            "  snapshot file, final write at SIGTERM       {:.1} MB, stop took {:.0} ms",
            snapshot as f64 / 1e6,
            ms(stop_time)
        );
        report!(
            "  restart from the file (to ready) / RSS      {:.0} ms / {:.0} MB",
            ms(restart),
            rss_restart as f64 / 1024.0
        );
        report!(
            "  selector delete of all {groups} groups         {:>9.0} ms",
            ms(delete)
        );
        report!(
            "  small push during it: p50 / p99 / max       {}",
            super::latencies(&during_delete)
        );
    }
}
