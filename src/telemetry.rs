//! The gateway's own metrics: build info, HTTP request counts, push
//! duration and size summaries, store and persistence health, and
//! `process_*` read from /proc (Linux; elsewhere only
//! `process_start_time_seconds`, as the gateway's start).
//!
//! Operators alert on these with the reference's names and labels, so both
//! are kept. They are shared between the request loop and the worker threads
//! that answer requests the loop never sees (404s, parse errors), hence the
//! mutex; it guards counters only, never the store.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::contract::WriteStats;
use crate::http::budget::{Budget, Class};
use crate::model::{Label, Metric, MetricType, Summary, Value};
use crate::store::{OwnFamilies, series_order};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where the reference names its Go version: there is no Go runtime.
pub(crate) const GO_VERSION: &str = "none (Rust)";
/// The git branch built, from `build.rs`.
pub(crate) const BRANCH: &str = env!("PUSHGATEWAY_BRANCH");
/// The git commit built.
pub(crate) const REVISION: &str = env!("PUSHGATEWAY_REVISION");
/// `user@host` that built it.
pub(crate) const BUILD_USER: &str = env!("PUSHGATEWAY_BUILD_USER");
/// promu's `20060102-15:04:05`, UTC.
pub(crate) const BUILD_DATE: &str = env!("PUSHGATEWAY_BUILD_DATE");

/// Name, type and HELP of every family the gateway exposes about itself.
pub(crate) const OWN_FAMILIES: &[(&str, MetricType, &str)] = &[
    (
        "process_cpu_seconds_total",
        MetricType::Counter,
        "Total user and system CPU time spent in seconds.",
    ),
    (
        "process_max_fds",
        MetricType::Gauge,
        "Maximum number of open file descriptors.",
    ),
    (
        "process_network_receive_bytes_total",
        MetricType::Counter,
        "Number of bytes received by the process over the network.",
    ),
    (
        "process_network_transmit_bytes_total",
        MetricType::Counter,
        "Number of bytes sent by the process over the network.",
    ),
    (
        "process_open_fds",
        MetricType::Gauge,
        "Number of open file descriptors.",
    ),
    (
        "process_resident_memory_bytes",
        MetricType::Gauge,
        "Resident memory size in bytes.",
    ),
    (
        "process_start_time_seconds",
        MetricType::Gauge,
        "Start time of the process since unix epoch in seconds.",
    ),
    (
        "process_virtual_memory_bytes",
        MetricType::Gauge,
        "Virtual memory size in bytes.",
    ),
    (
        "process_virtual_memory_max_bytes",
        MetricType::Gauge,
        "Maximum amount of virtual memory available in bytes.",
    ),
    (
        "pushgateway_build_info",
        MetricType::Gauge,
        "A metric with a constant '1' value labeled by version, revision, branch, goversion from which pushgateway was built, and the goos and goarch for the build.",
    ),
    (
        "pushgateway_groups_expired_total",
        MetricType::Counter,
        "Groups deleted because their TTL (--push.group-ttl or the Pushgateway-Group-TTL header) ran out.",
    ),
    (
        "pushgateway_http_push_duration_seconds",
        MetricType::Summary,
        "HTTP request duration for pushes to the Pushgateway.",
    ),
    (
        "pushgateway_http_push_size_bytes",
        MetricType::Summary,
        "HTTP request size for pushes to the Pushgateway.",
    ),
    (
        "pushgateway_http_requests_total",
        MetricType::Counter,
        "Total HTTP requests processed by the Pushgateway, excluding scrapes.",
    ),
    (
        "pushgateway_memory_budget_bytes",
        MetricType::Gauge,
        "The --web.memory-budget: what requests in flight may hold together.",
    ),
    (
        "pushgateway_memory_budget_used_bytes",
        MetricType::Gauge,
        "Memory requests in flight hold now, charged to --web.memory-budget, by stage (head, body, parse, answer).",
    ),
    (
        "pushgateway_persistence_interval_seconds",
        MetricType::Gauge,
        "The --persistence.interval: the longest a change waits before it is written (0: durable mode).",
    ),
    (
        "pushgateway_persistence_last_restore_timestamp_seconds",
        MetricType::Gauge,
        "Unix time the store was restored from the persistence file at start-up; absent if the file was unreadable and moved aside.",
    ),
    (
        "pushgateway_persistence_last_write_duration_seconds",
        MetricType::Gauge,
        "How long the last successful write of the persistence file took.",
    ),
    (
        "pushgateway_persistence_last_write_size_bytes",
        MetricType::Gauge,
        "Size of the persistence file at its last successful write.",
    ),
    (
        "pushgateway_persistence_last_write_success_timestamp_seconds",
        MetricType::Gauge,
        "Unix time of the last successful write of the persistence file; absent before the first one.",
    ),
    (
        "pushgateway_persistence_unwritten_changes",
        MetricType::Gauge,
        "1 while the store holds changes not yet written to the persistence file, else 0.",
    ),
    (
        "pushgateway_persistence_write_failures_total",
        MetricType::Counter,
        "Writes of the persistence file that failed (the old file was kept and the write is retried).",
    ),
    (
        "pushgateway_pushes_refused_total",
        MetricType::Counter,
        "Pushes refused because they would take the store past a limit (--push.max-groups, --push.max-series), by limit.",
    ),
    (
        "pushgateway_scrape_loop_pause_seconds",
        MetricType::Summary,
        "Time the request loop spent on a scrape before a pool thread rendered it: how long a scrape held pushes up.",
    ),
    (
        "pushgateway_store_groups",
        MetricType::Gauge,
        "Groups stored.",
    ),
    (
        "pushgateway_store_groups_limit",
        MetricType::Gauge,
        "The most groups the store takes (--push.max-groups); absent when unlimited.",
    ),
    (
        "pushgateway_store_series",
        MetricType::Gauge,
        "Series stored: sample lines of the exposition, without the push-time gauges.",
    ),
    (
        "pushgateway_store_series_limit",
        MetricType::Gauge,
        "The most series the store takes (--push.max-series); absent when unlimited.",
    ),
];

/// The gateway's own metric families, as the store sees them (names
/// looked up in `OWN_FAMILIES`); the store asks this on every push.
pub(crate) struct GatewayFamilies;

impl OwnFamilies for GatewayFamilies {
    fn own_family(&self, name: &str) -> Option<(MetricType, &'static str)> {
        OWN_FAMILIES
            .binary_search_by(|(n, _, _)| (*n).cmp(name))
            .ok()
            .map(|i| (OWN_FAMILIES[i].1, OWN_FAMILIES[i].2))
    }

    /// The reference's request counter and push summaries, which it
    /// creates with the first request, after it has noted its metrics'
    /// HELP texts.
    fn help_checked(&self, name: &str) -> bool {
        matches!(
            name,
            "pushgateway_http_requests_total"
                | "pushgateway_http_push_duration_seconds"
                | "pushgateway_http_push_size_bytes"
        )
    }
}

/// How long observations count towards the push summaries' quantiles, as
/// client_golang's default `MaxAge`.
const SUMMARY_MAX_AGE: Duration = Duration::from_secs(600);
/// The most observations kept per summary for quantiles.
const SUMMARY_WINDOW: usize = 2048;
const QUANTILES: [f64; 3] = [0.1, 0.5, 0.9];

#[derive(Default)]
struct Observations {
    count: u64,
    sum: f64,
    recent: VecDeque<(Instant, f64)>,
}

impl Observations {
    fn observe(&mut self, v: f64, now: Instant) {
        self.count += 1;
        self.sum += v;
        if self.recent.len() == SUMMARY_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((now, v));
    }

    fn summary(&self, now: Instant) -> Summary {
        let mut vals: Vec<f64> = self
            .recent
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= SUMMARY_MAX_AGE)
            .map(|(_, v)| *v)
            .collect();
        vals.sort_unstable_by(f64::total_cmp);
        let quantiles = QUANTILES
            .iter()
            .map(|&q| {
                let v = if vals.is_empty() {
                    f64::NAN
                } else {
                    let i = ((q * vals.len() as f64).ceil() as usize).clamp(1, vals.len()) - 1;
                    vals[i]
                };
                (q, v)
            })
            .collect();
        Summary {
            count: self.count,
            sum: self.sum,
            quantiles,
        }
    }
}

#[derive(Default)]
struct Counters {
    /// (code, handler, method) → count.
    requests: BTreeMap<(u16, &'static str, &'static str), u64>,
    push_duration: BTreeMap<String, Observations>,
    push_size: BTreeMap<String, Observations>,
    /// Refused pushes by the limit they hit.
    refused: BTreeMap<&'static str, u64>,
    expired: u64,
    scrape_pause: Observations,
    store: StoreUsage,
    /// None without `--persistence.file`: the families are absent then,
    /// not zero, so no alert mistakes "not configured" for "failing".
    persistence: Option<PersistenceHealth>,
}

/// What the persistence families show.
#[derive(Clone, Copy, Debug, Default)]
struct PersistenceHealth {
    interval: f64,
    restored_at: Option<f64>,
    /// Unix time, duration (seconds) and size of the last successful write.
    last_write: Option<(f64, f64, u64)>,
    failures: u64,
}

/// The store's size and limits (0: unlimited), as the loop last saw them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StoreUsage {
    pub groups: usize,
    pub series: usize,
    pub max_groups: usize,
    pub max_series: usize,
    /// Changes not yet in the persistence file (shown only with one).
    pub unwritten: bool,
}

/// Unix time now, in seconds.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The architecture in Go's spelling (`amd64`, `arm64`), as dashboards
/// built on the reference's `pushgateway_build_info` expect.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// Build information, as the status API and `pushgateway_build_info` show it.
/// The values come from `build.rs` (git, `SOURCE_DATE_EPOCH`, or the
/// environment), as promu stamps them into the Go gateway.
pub(crate) fn build_info() -> Vec<(&'static str, String)> {
    vec![
        ("branch", BRANCH.to_owned()),
        ("buildDate", BUILD_DATE.to_owned()),
        ("buildUser", BUILD_USER.to_owned()),
        ("goVersion", GO_VERSION.to_owned()),
        ("revision", REVISION.to_owned()),
        ("version", VERSION.to_owned()),
    ]
}

/// promhttp's `method` label: the method in lower case if it is one
/// promhttp knows (spelt all upper or all lower case), else `unknown`.
pub(crate) fn method_label(method: &str) -> &'static str {
    const KNOWN: [(&str, &str); 10] = [
        ("GET", "get"),
        ("PUT", "put"),
        ("HEAD", "head"),
        ("POST", "post"),
        ("DELETE", "delete"),
        ("CONNECT", "connect"),
        ("OPTIONS", "options"),
        ("NOTIFY", "notify"),
        ("TRACE", "trace"),
        ("PATCH", "patch"),
    ];
    KNOWN
        .iter()
        .find(|(upper, lower)| method == *upper || method == *lower)
        .map_or("unknown", |(_, lower)| lower)
}

/// Shared handle to the gateway's own counters.
#[derive(Clone)]
pub(crate) struct Telemetry {
    inner: Arc<Mutex<Counters>>,
    start_time: f64,
    /// The front's memory budget, shown by class once the front is up.
    budget: Arc<std::sync::OnceLock<Arc<Budget>>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    pub(crate) fn new() -> Telemetry {
        Telemetry {
            inner: Arc::default(),
            start_time: process_start_time().unwrap_or_else(unix_now),
            budget: Arc::default(),
        }
    }

    /// Shows `budget` in `pushgateway_memory_budget_*`.
    pub(crate) fn show_budget(&self, budget: &Arc<Budget>) {
        let _ = self.budget.set(Arc::clone(budget));
    }

    /// Process start time in nanoseconds since the epoch.
    pub(crate) fn start_nanos(&self) -> i64 {
        (self.start_time * 1e9) as i64
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic elsewhere while holding the lock leaves plain counters
        // behind, which are still fine to read and bump.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one answered request, as `pushgateway_http_requests_total`.
    /// `method` is a [`method_label`]. Only the HTTP front calls it.
    pub(crate) fn count_request(&self, code: u16, handler: &'static str, method: &'static str) {
        *self
            .lock()
            .requests
            .entry((code, handler, method))
            .or_default() += 1;
    }

    /// Counts a push refused at a limit (`groups` or `series`).
    pub(crate) fn count_refused(&self, limit: &'static str) {
        *self.lock().refused.entry(limit).or_default() += 1;
    }

    /// Counts groups removed by expiry.
    pub(crate) fn count_expired(&self, groups: usize) {
        self.lock().expired += groups as u64;
    }

    /// Records how long the loop spent on one scrape.
    pub(crate) fn observe_scrape_pause(&self, pause: Duration) {
        self.lock()
            .scrape_pause
            .observe(pause.as_secs_f64(), Instant::now());
    }

    /// Sets what the store gauges show; the loop calls it before a scrape.
    pub(crate) fn set_store_usage(&self, usage: StoreUsage) {
        self.lock().store = usage;
    }

    /// Turns the persistence families on (`--persistence.file` is set).
    /// `restored`: whether the start-up load succeeded, just now.
    pub(crate) fn enable_persistence(&self, interval: Duration, restored: bool) {
        self.lock().persistence = Some(PersistenceHealth {
            interval: interval.as_secs_f64(),
            restored_at: restored.then(unix_now),
            ..PersistenceHealth::default()
        });
    }

    /// Records a snapshot write's outcome, as the writer reported it to
    /// the loop: alerts need to see failures and how stale the file is.
    pub(crate) fn count_write(&self, result: &Result<WriteStats, String>) {
        if let Some(p) = &mut self.lock().persistence {
            match result {
                Ok(s) => p.last_write = Some((unix_now(), s.duration.as_secs_f64(), s.bytes)),
                Err(_) => p.failures += 1,
            }
        }
    }

    /// Records one push's duration and body size.
    pub(crate) fn observe_push(&self, method: &str, duration: Duration, size: usize) {
        let now = Instant::now();
        let method = method.to_ascii_lowercase();
        let mut c = self.lock();
        c.push_duration
            .entry(method.clone())
            .or_default()
            .observe(duration.as_secs_f64(), now);
        c.push_size
            .entry(method)
            .or_default()
            .observe(size as f64, now);
    }

    /// Every own family as (name, series in exposition order).
    pub(crate) fn families(&self) -> Vec<(&'static str, Vec<Metric>)> {
        let now = Instant::now();
        let mut out: Vec<(&'static str, Vec<Metric>)> = Vec::new();
        let mut add = |name: &'static str, labels: Vec<Label>, value: Value| {
            let metric = Metric::new(labels.into(), value);
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some((_, series)) => series.push(metric),
                None => out.push((name, vec![metric])),
            }
        };
        let proc = ProcessStats::read();
        if let Some(v) = proc.cpu_seconds {
            add("process_cpu_seconds_total", vec![], Value::Counter(v));
        }
        if let Some(v) = proc.max_fds {
            add("process_max_fds", vec![], Value::Gauge(v));
        }
        if let Some((received, sent)) = proc.network_bytes {
            add(
                "process_network_receive_bytes_total",
                vec![],
                Value::Counter(received),
            );
            add(
                "process_network_transmit_bytes_total",
                vec![],
                Value::Counter(sent),
            );
        }
        if let Some(v) = proc.open_fds {
            add("process_open_fds", vec![], Value::Gauge(v));
        }
        if let Some(v) = proc.resident_bytes {
            add("process_resident_memory_bytes", vec![], Value::Gauge(v));
        }
        add(
            "process_start_time_seconds",
            vec![],
            Value::Gauge(self.start_time),
        );
        if let Some(v) = proc.virtual_bytes {
            add("process_virtual_memory_bytes", vec![], Value::Gauge(v));
        }
        if let Some(v) = proc.virtual_max_bytes {
            add("process_virtual_memory_max_bytes", vec![], Value::Gauge(v));
        }
        add(
            "pushgateway_build_info",
            vec![
                Label::new("branch", BRANCH),
                Label::new("goarch", go_arch()),
                Label::new("goos", std::env::consts::OS),
                Label::new("goversion", "rust"),
                Label::new("revision", REVISION),
                Label::new("tags", build_tags()),
                Label::new("version", VERSION),
            ],
            Value::Gauge(1.0),
        );
        if let Some(b) = self.budget.get() {
            add(
                "pushgateway_memory_budget_bytes",
                vec![],
                Value::Gauge(b.limit() as f64),
            );
            for class in Class::ALL {
                add(
                    "pushgateway_memory_budget_used_bytes",
                    vec![Label::new("class", class.as_str())],
                    Value::Gauge(b.used_by(class) as f64),
                );
            }
        }
        let c = self.lock();
        add(
            "pushgateway_groups_expired_total",
            vec![],
            Value::Counter(c.expired as f64),
        );
        if let Some(p) = c.persistence {
            persistence_families(&p, c.store.unwritten, &mut add);
        }
        for (limit, n) in &c.refused {
            let labels = vec![Label::new("limit", limit)];
            add(
                "pushgateway_pushes_refused_total",
                labels,
                Value::Counter(*n as f64),
            );
        }
        if c.scrape_pause.count > 0 {
            add(
                "pushgateway_scrape_loop_pause_seconds",
                vec![],
                Value::Summary(Box::new(c.scrape_pause.summary(now))),
            );
        }
        let s = c.store;
        let gauges = [
            ("pushgateway_store_groups", s.groups, true),
            (
                "pushgateway_store_groups_limit",
                s.max_groups,
                s.max_groups > 0,
            ),
            ("pushgateway_store_series", s.series, true),
            (
                "pushgateway_store_series_limit",
                s.max_series,
                s.max_series > 0,
            ),
        ];
        for (name, v, shown) in gauges {
            if shown {
                add(name, vec![], Value::Gauge(v as f64));
            }
        }
        for (method, obs) in &c.push_duration {
            let labels = vec![Label::new("method", method)];
            add(
                "pushgateway_http_push_duration_seconds",
                labels,
                Value::Summary(Box::new(obs.summary(now))),
            );
        }
        for (method, obs) in &c.push_size {
            let labels = vec![Label::new("method", method)];
            add(
                "pushgateway_http_push_size_bytes",
                labels,
                Value::Summary(Box::new(obs.summary(now))),
            );
        }
        for ((code, handler, method), n) in &c.requests {
            let labels = vec![
                Label::new("code", &code.to_string()),
                Label::new("handler", handler),
                Label::new("method", method),
            ];
            add(
                "pushgateway_http_requests_total",
                labels,
                Value::Counter(*n as f64),
            );
        }
        drop(c);
        for (_, series) in &mut out {
            series.sort_unstable_by(|a, b| series_order(&a.labels, &b.labels));
        }
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// The persistence families, through `families`' `add`.
fn persistence_families(
    p: &PersistenceHealth,
    unwritten: bool,
    add: &mut impl FnMut(&'static str, Vec<Label>, Value),
) {
    let mut gauge = |name, v| add(name, vec![], Value::Gauge(v));
    gauge("pushgateway_persistence_interval_seconds", p.interval);
    if let Some(t) = p.restored_at {
        gauge("pushgateway_persistence_last_restore_timestamp_seconds", t);
    }
    if let Some((at, secs, bytes)) = p.last_write {
        gauge("pushgateway_persistence_last_write_duration_seconds", secs);
        gauge(
            "pushgateway_persistence_last_write_size_bytes",
            bytes as f64,
        );
        gauge(
            "pushgateway_persistence_last_write_success_timestamp_seconds",
            at,
        );
    }
    gauge(
        "pushgateway_persistence_unwritten_changes",
        f64::from(u8::from(unwritten)),
    );
    add(
        "pushgateway_persistence_write_failures_total",
        vec![],
        Value::Counter(p.failures as f64),
    );
}

/// What /proc says about this process; fields are None where it could not
/// be read (for example in a container without /proc), and always on
/// systems other than Linux, whose /proc (if any) is another format.
#[derive(Default)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    max_fds: Option<f64>,
    open_fds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    virtual_max_bytes: Option<f64>,
    /// Bytes received and sent (see [`network_bytes`]).
    network_bytes: Option<(f64, f64)>,
}

/// Clock ticks per second for /proc/self/stat; 100 on every Linux we target.
#[cfg(target_os = "linux")]
const CLK_TCK: f64 = 100.0;

impl ProcessStats {
    #[cfg(not(target_os = "linux"))]
    fn read() -> ProcessStats {
        ProcessStats::default()
    }

    #[cfg(target_os = "linux")]
    fn read() -> ProcessStats {
        let mut s = ProcessStats::default();
        if let Some(fields) = stat_fields() {
            // Fields after the command name: state is index 0, utime 11,
            // stime 12, starttime 19, vsize 20, rss 21 (in pages).
            let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
            if let (Some(u), Some(st)) = (num(11), num(12)) {
                s.cpu_seconds = Some((u + st) / CLK_TCK);
            }
            s.virtual_bytes = num(20);
            s.resident_bytes = num(21).map(|p| p * 4096.0);
        }
        s.network_bytes = std::fs::read_to_string("/proc/self/net/netstat")
            .ok()
            .and_then(|t| network_bytes(&t));
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            s.open_fds = Some(entries.count() as f64);
        }
        if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
            for line in limits.lines() {
                let soft = || line.split_whitespace().rev().nth(2);
                let value = |v: Option<&str>| match v {
                    Some("unlimited") => Some(18446744073709551615u64 as f64),
                    Some(n) => n.parse().ok(),
                    None => None,
                };
                if line.starts_with("Max open files") {
                    s.max_fds = value(soft());
                } else if line.starts_with("Max address space") {
                    s.virtual_max_bytes = value(soft());
                }
            }
        }
        s
    }
}

/// `InOctets` and `OutOctets` of the `IpExt` lines in
/// `/proc/<pid>/net/netstat`, as client_golang's process collector reads
/// them for `process_network_*_bytes_total` (the counters of the network
/// namespace the process is in). The file pairs a line of names with a
/// line of values under the same prefix.
#[cfg(target_os = "linux")]
fn network_bytes(netstat: &str) -> Option<(f64, f64)> {
    let mut ip_ext = netstat.lines().filter(|l| l.starts_with("IpExt:"));
    let (names, values) = (ip_ext.next()?, ip_ext.next()?);
    let field = |want: &str| {
        let i = names.split_whitespace().position(|n| n == want)?;
        values.split_whitespace().nth(i)?.parse::<f64>().ok()
    };
    Some((field("InOctets")?, field("OutOctets")?))
}

/// The `tags` label of `pushgateway_build_info`: the Cargo features built
/// in, where Go names its build tags (`unknown` when there are none, as
/// Go's `version.GetTags`).
fn build_tags() -> &'static str {
    if cfg!(feature = "tls") {
        "tls"
    } else {
        "unknown"
    }
}

/// The fields of /proc/self/stat after the parenthesised command name.
#[cfg(target_os = "linux")]
fn stat_fields() -> Option<Vec<String>> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The process start time from /proc, in Unix seconds (elsewhere: none,
/// and the gateway's start stands in).
#[cfg(not(target_os = "linux"))]
fn process_start_time() -> Option<f64> {
    None
}

/// The process start time from /proc, in Unix seconds.
#[cfg(target_os = "linux")]
fn process_start_time() -> Option<f64> {
    let fields = stat_fields()?;
    let start_ticks: f64 = fields.get(19)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: f64 = uptime
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime + start_ticks / CLK_TCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn network_bytes_come_from_the_ip_ext_lines() {
        let netstat = "TcpExt: SyncookiesSent InOctets\nTcpExt: 9 9\n\
                       IpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 1234 5678\n";
        assert_eq!(network_bytes(netstat), Some((1234.0, 5678.0)));
        assert_eq!(network_bytes("IpExt: InOctets\n"), None, "no values line");
        let own = std::fs::read_to_string("/proc/self/net/netstat").unwrap();
        assert!(network_bytes(&own).is_some(), "this machine's file parses");
    }

    #[test]
    fn method_labels_as_promhttp() {
        assert_eq!(method_label("GET"), "get");
        assert_eq!(method_label("delete"), "delete");
        assert_eq!(method_label("Get"), "unknown");
        assert_eq!(method_label("PROPFIND"), "unknown");
    }

    #[test]
    fn own_families_are_sorted_for_binary_search() {
        assert!(OWN_FAMILIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(
            GatewayFamilies.own_family("process_open_fds").map(|x| x.0),
            Some(MetricType::Gauge)
        );
        assert!(GatewayFamilies.own_family("push_time_seconds").is_none());
    }

    #[test]
    fn summary_quantiles_over_recent_observations() {
        let mut o = Observations::default();
        let now = Instant::now();
        for v in 1..=10 {
            o.observe(v as f64, now);
        }
        let s = o.summary(now);
        assert_eq!(s.count, 10);
        assert_eq!(s.sum, 55.0);
        assert_eq!(s.quantiles, vec![(0.1, 1.0), (0.5, 5.0), (0.9, 9.0)]);
    }

    /// The value of an unlabelled series of `name`, if exposed.
    fn value_of(t: &Telemetry, name: &str) -> Option<f64> {
        let families = t.families();
        let (_, series) = families.iter().find(|(n, _)| *n == name)?;
        match series[0].value {
            Value::Gauge(v) | Value::Counter(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn persistence_families_follow_writes_and_only_with_a_file() {
        let t = Telemetry::new();
        let interval = "pushgateway_persistence_interval_seconds";
        assert_eq!(value_of(&t, interval), None, "absent without a file");
        t.count_write(&Err("ignored".into()));
        assert_eq!(
            value_of(&t, "pushgateway_persistence_write_failures_total"),
            None
        );

        t.enable_persistence(Duration::from_secs(300), true);
        assert_eq!(value_of(&t, interval), Some(300.0));
        let restored = value_of(&t, "pushgateway_persistence_last_restore_timestamp_seconds");
        assert!(restored.is_some_and(|r| (r - unix_now()).abs() < 60.0));
        let success = "pushgateway_persistence_last_write_success_timestamp_seconds";
        assert_eq!(value_of(&t, success), None, "no write yet");

        t.count_write(&Ok(WriteStats {
            groups: 2,
            bytes: 1234,
            duration: Duration::from_millis(250),
        }));
        assert!(value_of(&t, success).is_some_and(|s| s >= restored.unwrap_or(0.0)));
        let size = "pushgateway_persistence_last_write_size_bytes";
        assert_eq!(value_of(&t, size), Some(1234.0));
        let duration = "pushgateway_persistence_last_write_duration_seconds";
        assert_eq!(value_of(&t, duration), Some(0.25));

        t.count_write(&Err("disk full".into()));
        let failures = "pushgateway_persistence_write_failures_total";
        assert_eq!(value_of(&t, failures), Some(1.0));
        assert_eq!(
            value_of(&t, size),
            Some(1234.0),
            "a failure keeps the last success"
        );

        let unwritten = "pushgateway_persistence_unwritten_changes";
        assert_eq!(value_of(&t, unwritten), Some(0.0));
        t.set_store_usage(StoreUsage {
            unwritten: true,
            ..StoreUsage::default()
        });
        assert_eq!(value_of(&t, unwritten), Some(1.0));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn process_stats_are_read_on_linux() {
        let s = ProcessStats::read();
        assert!(s.resident_bytes.unwrap_or(0.0) > 0.0);
        assert!(s.open_fds.unwrap_or(0.0) >= 1.0);
    }
}
