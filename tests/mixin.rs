//! The monitoring mixin in deploy/mixin (alert and recording rules, the
//! Grafana dashboard) checked by promtool, its alerts seen firing in a real
//! Prometheus scraping our binary, and the persistence metrics they rely on.
//!
//! Needs `promtool` and `prometheus` (apt `prometheus`) and `python3`; `make
//! deps` installs them. A missing tool fails the test, never skips it.
//! Everything listens on 127.0.0.1 and every wait is bounded.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Gateway, Prometheus, TempDir, ours};

fn mixin(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/mixin")
        .join(file)
}

/// Runs promtool; (success, stdout + stderr). Panics when it is missing.
fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool not installed ({e}): apt-get install -y prometheus (or make deps)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn check_rules(path: &Path) {
    let (ok, out) = promtool(&["check", "rules", &path.display().to_string()]);
    assert!(ok, "promtool check rules {}:\n{out}", path.display());
}

/// The names of the alerts in alerts.yml, with each one's block of text.
fn alerts() -> Vec<(String, String)> {
    let text = fs::read_to_string(mixin("alerts.yml")).expect("read alerts.yml");
    text.split("- alert: ")
        .skip(1)
        .map(|block| {
            let name = block.lines().next().unwrap_or_default().trim().to_owned();
            (name, block.to_owned())
        })
        .collect()
}

#[test]
fn rule_files_pass_promtool_check() {
    for file in ["alerts.yml", "rules.yml"] {
        check_rules(&mixin(file));
    }
}

#[test]
fn every_alert_has_severity_summary_and_description() {
    let alerts = alerts();
    assert!(alerts.len() >= 6, "{alerts:?}");
    for (name, block) in &alerts {
        for key in ["severity: ", "summary: ", "description: "] {
            assert!(block.contains(key), "{name} has no {key}");
        }
    }
}

/// promtool's unit tests pass, and show every alert both firing (a
/// non-empty `exp_alerts`) and not firing (`exp_alerts: []`).
#[test]
fn rule_unit_tests_pass_and_cover_every_alert_both_ways() {
    let tests = mixin("tests.yml");
    let (ok, out) = promtool(&["test", "rules", &tests.display().to_string()]);
    assert!(ok, "promtool test rules:\n{out}");
    let text = fs::read_to_string(&tests).expect("read tests.yml");
    let mut cases = text.split("alertname: ").skip(1);
    let mut seen: Vec<(String, bool)> = Vec::new();
    for case in cases.by_ref() {
        let mut lines = case.lines();
        let name = lines.next().unwrap_or_default().trim().to_owned();
        let empty = lines.next().is_some_and(|l| l.trim() == "exp_alerts: []");
        seen.push((name, !empty));
    }
    for (name, _) in alerts() {
        for firing in [true, false] {
            assert!(
                seen.contains(&(name.clone(), firing)),
                "tests.yml never shows {name} {}",
                if firing { "firing" } else { "not firing" }
            );
        }
    }
}

/// Every PromQL expression of the dashboard, its variables replaced by
/// what Grafana would put there, passes `promtool check rules` as a
/// recording rule. Python reads the JSON (and so checks it parses) and
/// writes the rules file: JSON strings are valid YAML double-quoted ones.
#[test]
fn dashboard_queries_pass_promtool_check() {
    let dir = TempDir::new("mixin-dashboard");
    let rules = dir.file("dashboard-rules.yml");
    let script = r#"
import json, sys
dash = json.load(open(sys.argv[1]))
exprs = []
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "expr":
                exprs.append(x)
            else:
                walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
walk(dash)
subst = [("$__rate_interval", "5m"), ("$instance", ".*"), ("$job", "pushgateway")]
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        for var, value in subst:
            e = e.replace(var, value)
        assert "$" not in e, e
        out.write("      - record: dashboard:expr_%d\n        expr: %s\n" % (i, json.dumps(e)))
print(len(exprs))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(mixin("dashboard.json"))
        .arg(&rules)
        .output()
        .expect("python3 not installed (make deps)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count: usize = stdout.trim().parse().expect("expression count");
    assert!(count >= 20, "only {count} expressions");
    check_rules(&rules);

    let text = fs::read_to_string(&rules).expect("read extracted rules");
    for needed in [
        "time() - push_time_seconds",
        "push_failure_time_seconds > push_time_seconds",
        "pushgateway_http_requests_total",
        "pushgateway_http_push_duration_seconds",
        "scrape_duration_seconds",
        "pushgateway_store_series",
        "pushgateway_persistence_last_write_success_timestamp_seconds",
        "pushgateway_persistence_write_failures_total",
    ] {
        assert!(
            text.contains(needed),
            "the dashboard never queries {needed}"
        );
    }
}

/// A Prometheus server scraping `target_port` every second and evaluating
/// `rules` (written into `dir`) every second.
fn prometheus(dir: &TempDir, target_port: u16, rules: &str) -> Prometheus {
    let rules_path = dir.write("alerts.yml", rules);
    Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    \
         static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
        rules_path.display()
    ))
}

/// The active alerts, one JSON object's text each.
fn active_alerts(prom: &Prometheus) -> Vec<String> {
    let r = support::get(prom.port, "/api/v1/alerts");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .split("{\"labels\":")
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// Whether `alerts` has `name` firing for the pushing job `job`.
fn firing(alerts: &[String], name: &str, job: &str) -> bool {
    alerts.iter().any(|a| {
        a.contains(&format!("\"alertname\":\"{name}\""))
            && a.contains(&format!("\"job\":\"{job}\""))
            && a.contains("\"state\":\"firing\"")
    })
}

/// A script that runs our binary with `ulimit -f 8`: any file it writes
/// beyond 8 blocks fails, a stand-in for a full disk that needs no root and
/// no mount (the pattern of tests/persistence.rs).
fn disk_limited_binary(dir: &TempDir) -> String {
    let wrapper = dir.file("limited.sh");
    fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -f 8\nexec {} \"$@\"\n", ours()),
    )
    .expect("write wrapper");
    let chmod = Command::new("chmod").arg("+x").arg(&wrapper).status();
    assert!(chmod.expect("chmod").success());
    wrapper.display().to_string()
}

/// A push too big for the disk-limited binary to persist.
fn too_big_to_persist() -> String {
    format!("big{{i=\"{}\"}} 1\n", "y".repeat(20_000))
}

/// The real push pattern: a job that declared a 2 s interval and stopped,
/// one that declared an hour, a group whose last push failed and one that
/// failed before it succeeded, then a push the (full) disk cannot take.
/// With the `for:` durations shortened to 0s (and the 1 s evaluation), the
/// stale and failed-push alerts fire for exactly the first and the third,
/// and the persistence alert for the gateway.
#[test]
fn prometheus_fires_the_stale_failed_push_and_persistence_alerts() {
    let dir = TempDir::new("mixin-e2e");
    let file = format!("--persistence.file={}", dir.file("metric.store").display());
    let gw = Gateway::start(
        &disk_limited_binary(&dir),
        &[&file, "--persistence.interval=1s"],
    );
    let declare = |job: &str, seconds: u32| {
        let body =
            format!("pushgateway_expected_push_interval_seconds {seconds}\n{job}_last_run 1\n");
        let r = gw.put(&format!("/metrics/job/{job}"), &body);
        assert_eq!(r.status, 200, "{}", r.text());
    };
    declare("stale_job", 2);
    declare("hourly_job", 3600);
    let counter = "# TYPE shared_total counter\nshared_total 1\n";
    let conflicting = "# TYPE shared_total gauge\nshared_total 2\n";
    assert_eq!(gw.put("/metrics/job/typed", counter).status, 200);
    assert_eq!(gw.put("/metrics/job/broken", "ok 1\n").status, 200);
    thread::sleep(Duration::from_millis(20));
    assert_eq!(gw.put("/metrics/job/broken", conflicting).status, 400);
    assert_eq!(gw.put("/metrics/job/recovered", conflicting).status, 400);
    thread::sleep(Duration::from_millis(20));
    assert_eq!(gw.put("/metrics/job/recovered", "ok 1\n").status, 200);
    assert_eq!(
        gw.put("/metrics/job/big", &too_big_to_persist()).status,
        200
    );

    let rules = fs::read_to_string(mixin("alerts.yml"))
        .expect("read alerts.yml")
        .replace("for: 5m", "for: 0s")
        .replace("for: 15m", "for: 0s");
    let rules_dir = TempDir::new("mixin-rules");
    let prom = prometheus(&rules_dir, gw.port, &rules);
    prom.wait_until("the stale-job, failed-push and persistence alerts", || {
        let alerts = active_alerts(&prom);
        firing(&alerts, "PushgatewayGroupStale", "stale_job")
            && firing(&alerts, "PushgatewayPushFailed", "broken")
            && firing(&alerts, "PushgatewayPersistenceWriteFailing", "pushgateway")
    });
    // A few more evaluations: the others stay quiet.
    thread::sleep(Duration::from_secs(3));
    let alerts = active_alerts(&prom);
    for (name, job) in [
        ("PushgatewayGroupStale", "hourly_job"),
        ("PushgatewayGroupStale", "typed"),
        ("PushgatewayPushFailed", "recovered"),
        ("PushgatewayPushFailed", "typed"),
        ("PushgatewayDown", "pushgateway"),
        // Behind only after twice the interval and a minute.
        ("PushgatewayPersistenceNotWritten", "pushgateway"),
    ] {
        assert!(!firing(&alerts, name, job), "{name} for {job}: {alerts:?}");
    }
}

/// The value of the unlabelled series `name` in a text scrape.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const SUCCESS: &str = "pushgateway_persistence_last_write_success_timestamp_seconds";
const SIZE: &str = "pushgateway_persistence_last_write_size_bytes";
const DURATION: &str = "pushgateway_persistence_last_write_duration_seconds";
const FAILURES: &str = "pushgateway_persistence_write_failures_total";
const UNWRITTEN: &str = "pushgateway_persistence_unwritten_changes";
const RESTORE: &str = "pushgateway_persistence_last_restore_timestamp_seconds";
const INTERVAL: &str = "pushgateway_persistence_interval_seconds";

#[test]
fn no_persistence_metrics_without_a_file() {
    let gw = Gateway::start(&ours(), &[]);
    let text = gw.get("/metrics").text();
    assert!(!text.contains("pushgateway_persistence_"), "{text}");
}

/// On a "full disk" (`disk_limited_binary`): the write metrics appear after
/// the first write, and a failed write counts as a failure while the last
/// success stays as it was.
#[test]
fn write_metrics_change_after_a_write_and_after_a_failed_write() {
    let dir = TempDir::new("mixin-full");
    let file = dir.file("metric.store");
    let flag = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(
        &disk_limited_binary(&dir),
        &[&flag, "--persistence.interval=0"],
    );

    let before = gw.get("/metrics").text();
    assert_eq!(sample(&before, INTERVAL), Some(0.0), "{before}");
    assert_eq!(sample(&before, FAILURES), Some(0.0));
    assert_eq!(sample(&before, UNWRITTEN), Some(0.0));
    assert_eq!(sample(&before, SUCCESS), None, "no write yet");

    let pushed = unix_now();
    assert_eq!(gw.put("/metrics/job/small", "m 1\n").status, 200);
    let written = gw.get("/metrics").text();
    let success = sample(&written, SUCCESS).expect("a success time");
    assert!(success >= pushed - 1.0 && success <= unix_now() + 1.0);
    let bytes = fs::metadata(&file).expect("file written").len() as f64;
    assert_eq!(sample(&written, SIZE), Some(bytes));
    assert!(sample(&written, DURATION).is_some_and(|d| (0.0..10.0).contains(&d)));
    assert_eq!(sample(&written, UNWRITTEN), Some(0.0));

    assert_eq!(
        gw.put("/metrics/job/big", &too_big_to_persist()).status,
        500
    );
    let failed = gw.get("/metrics").text();
    assert!(
        sample(&failed, FAILURES).is_some_and(|n| n >= 1.0),
        "{failed}"
    );
    assert_eq!(sample(&failed, SUCCESS), Some(success), "success unchanged");
    assert_eq!(sample(&failed, SIZE), Some(bytes));
    assert_eq!(sample(&failed, UNWRITTEN), Some(1.0), "the big push waits");
}

/// The restore time is set by a start that loads the file (or finds none
/// yet), and absent when an unreadable file was moved aside.
#[test]
fn restore_time_after_a_load_and_not_after_moving_a_bad_file_aside() {
    let dir = TempDir::new("mixin-restore");
    let file = dir.file("metric.store");
    let flag = format!("--persistence.file={}", file.display());
    let durable = ["--persistence.interval=0"];
    {
        let first = Gateway::start(&ours(), &[&flag, durable[0]]);
        assert!(sample(&first.get("/metrics").text(), RESTORE).is_some());
        assert_eq!(first.put("/metrics/job/kept", "kept 7\n").status, 200);
    }
    let started = unix_now();
    let second = Gateway::start(&ours(), &[&flag, durable[0]]);
    let text = second.get("/metrics").text();
    assert!(
        text.contains("kept{instance=\"\",job=\"kept\"} 7"),
        "{text}"
    );
    let restored = sample(&text, RESTORE).expect("a restore time");
    assert!(restored >= started - 1.0 && restored <= unix_now() + 1.0);
    assert_eq!(sample(&text, SUCCESS), None, "nothing written since");
    drop(second);

    fs::write(&file, "not a snapshot\n").expect("spoil the file");
    let aside = Gateway::start(&ours(), &[&flag, "--persistence.start-empty-if-unreadable"]);
    let text = aside.get("/metrics").text();
    assert_eq!(sample(&text, RESTORE), None, "{text}");
    assert_eq!(sample(&text, INTERVAL), Some(300.0));
}
