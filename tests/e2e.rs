//! End to end with unmodified third-party software: a real Prometheus
//! server scraping our binary with `honor_labels: true` (the Python
//! `prometheus_client` library pushing to it over TLS), promtool, curl.
//! The client library tests against the reference are in tests/clients.rs.
//!
//! Needs `prometheus` (apt) and `prometheus_client` (pip); `make deps`
//! installs both. Everything listens on 127.0.0.1 and every wait is bounded.

mod support;

use std::fs;
use std::process::{Command, Stdio};

use support::{Gateway, Prometheus, TempDir, ours};

/// A Prometheus server scraping one target every second.
fn prometheus(target_port: u16) -> Prometheus {
    prometheus_with(target_port, "")
}

/// Like `prometheus`, with `extra` lines (indented four spaces) added to the
/// scrape job: `scheme`, `tls_config`, `basic_auth`...
fn prometheus_with(target_port: u16, extra: &str) -> Prometheus {
    Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n{extra}    \
         static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    ))
}

#[test]
fn prometheus_scrapes_the_tutorial_pushes_and_sees_the_delete() {
    let gw = Gateway::start(&ours(), &[]);
    let prom = prometheus(gw.port);

    assert_eq!(
        gw.post("/metrics/job/some_job", "second_metric 99\n")
            .status,
        200
    );
    let body = "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n# TYPE another_metric gauge\n# HELP another_metric Just an example.\nanother_metric 2398.283\n";
    assert_eq!(
        gw.post("/metrics/job/some_job/instance/some_instance", body)
            .status,
        200
    );

    // honor_labels keeps the pushed job and instance; the empty instance
    // the gateway adds to {job="some_job"} means "no instance label" to
    // Prometheus, not the gateway's address.
    let target = format!("127.0.0.1:{}", gw.port);
    prom.wait_until("some_metric in Prometheus", || {
        let r = prom.query("some_metric");
        r.contains("\"job\":\"some_job\"")
            && r.contains("\"instance\":\"some_instance\"")
            && r.contains("\"42\"")
    });
    let r = prom.query("second_metric");
    assert!(
        r.contains("\"job\":\"some_job\"") && r.contains("\"99\""),
        "{r}"
    );
    assert!(!r.contains("\"instance\""), "no instance label: {r}");
    let r = prom.query("up");
    assert!(r.contains(&format!("\"instance\":\"{target}\"")), "{r}");
    let r = prom.query("another_metric");
    assert!(r.contains("\"2398.283\""), "{r}");
    let r = prom.query("up");
    assert!(r.contains("\"1\""), "the scrape itself succeeds: {r}");

    assert_eq!(
        gw.delete("/metrics/job/some_job/instance/some_instance")
            .status,
        202
    );
    prom.wait_until("some_metric to go stale", || {
        prom.query("some_metric").contains("\"result\":[]")
    });
    assert!(
        prom.query("second_metric").contains("\"99\""),
        "the other group stays"
    );
}

/// With `--push.enable-utf8-names`, a UTF-8 name must not break the
/// scrape of Debian's Prometheus 2.x, which cannot parse quoted names:
/// the gateway escapes them (`underscores`, the default) and Prometheus
/// stores the escaped names, next to the classic ones.
#[test]
fn prometheus_2_scrapes_utf8_names_escaped() {
    let gw = Gateway::start(&ours(), &["--push.enable-utf8-names"]);
    let body = "{\"my.metric\",\"a.b\"=\"1\"} 7\nclassic_metric 3\n";
    assert_eq!(gw.put("/metrics/job/utf8", body).status, 200);
    let prom = prometheus(gw.port);
    prom.wait_until("my_metric in Prometheus", || {
        let r = prom.query("my_metric");
        r.contains("\"a_b\":\"1\"") && r.contains("\"7\"")
    });
    assert!(prom.query("classic_metric").contains("\"3\""));
    assert!(
        prom.query("up").contains("\"1\""),
        "the scrape itself succeeds"
    );
}

/// Issue 9's end to end: Prometheus scrapes us over HTTPS with basic auth
/// (`scheme: https`, `tls_config`, `basic_auth`), and the Python client
/// pushes through HTTPS with its basic-auth handler.
#[cfg(feature = "tls")]
#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let pki = support::Pki::new("e2e");
    let hash = bcrypt::hash("s3cret", 6).expect("bcrypt");
    let cfg = pki.web_config(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    );
    let gw = Gateway::start(&ours(), &[&format!("--web.config.file={cfg}")]);
    let ca = pki.path("ca.crt");

    let push = |password: &str| {
        let script = format!(
            "from prometheus_client import CollectorRegistry, Gauge, push_to_gateway\n\
             from prometheus_client.exposition import basic_auth_handler\n\
             def auth(url, method, timeout, headers, data):\n\
             \x20   return basic_auth_handler(url, method, timeout, headers, data, 'prometheus', '{password}')\n\
             reg = CollectorRegistry()\n\
             Gauge('tls_job_last_success', 'When the job last succeeded.', registry=reg).set(1700000000)\n\
             push_to_gateway('https://localhost:{port}', job='tls_batch', registry=reg, handler=auth)\n",
            port = gw.port
        );
        // Python's ssl module trusts the test CA through SSL_CERT_FILE.
        Command::new("python3")
            .args(["-c", &script])
            .env("SSL_CERT_FILE", &ca)
            .output()
            .expect("run python3")
    };
    let bad = push("wrong");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let good = push("s3cret");
    assert!(
        good.status.success(),
        "python push over TLS failed:\n{}",
        String::from_utf8_lossy(&good.stderr)
    );

    let prom = prometheus_with(
        gw.port,
        &format!(
            "    scheme: https\n    tls_config:\n      ca_file: {ca}\n      server_name: localhost\n\
             \x20   basic_auth:\n      username: prometheus\n      password: s3cret\n"
        ),
    );
    prom.wait_until("the TLS push in Prometheus", || {
        let r = prom.query("tls_job_last_success");
        r.contains("\"job\":\"tls_batch\"") && r.contains("\"1700000000\"")
    });
    let up = prom.query("up");
    assert!(up.contains("\"1\""), "scrapes succeed over TLS: {up}");
}

/// Runs `cmd` with `input` on stdin; returns (success, stdout + stderr).
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> (bool, String) {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_accepts_our_full_metrics_output() {
    let gw = Gateway::start(&ours(), &[]);
    let body = "# HELP jobs_processed_total Jobs processed.\n# TYPE jobs_processed_total counter\njobs_processed_total{kind=\"a\"} 3\n\
                # HELP job_duration_seconds Job duration.\n# TYPE job_duration_seconds histogram\n\
                job_duration_seconds_bucket{le=\"1\"} 1\njob_duration_seconds_bucket{le=\"+Inf\"} 2\njob_duration_seconds_sum 3.5\njob_duration_seconds_count 2\n\
                # HELP job_size_bytes Job size.\n# TYPE job_size_bytes summary\njob_size_bytes{quantile=\"0.5\"} 10\njob_size_bytes_sum 20\njob_size_bytes_count 2\n";
    assert_eq!(gw.put("/metrics/job/batch/instance/a", body).status, 200);
    // A rejected push adds a failure timestamp to the exposition too.
    let conflicting = "# TYPE jobs_processed_total gauge\njobs_processed_total 1\n";
    assert_eq!(
        gw.put("/metrics/job/batch/instance/b", conflicting).status,
        400
    );
    let text = gw.get("/metrics").text();
    let (ok, out) = run_with_stdin(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
    );
    assert!(
        ok,
        "promtool check metrics:\n{out}\n--- exposition ---\n{text}"
    );
}

#[test]
fn json_api_stays_valid_for_hostile_label_values() {
    let gw = Gateway::start(&ours(), &[]);
    // Quotes, backslashes, a newline, a tab, control bytes, HTML and non-ASCII.
    let value = "q\"b\\s\nn\t\u{1}\u{7f}<script>&é日本\u{2028}";
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    let body = format!("# HELP m Help with \\\\ and </script>.\nm{{v=\"{escaped}\"}} 1\n");
    let r = gw.put("/metrics/job/hostile", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let json = gw.get("/api/v1/metrics").text();
    assert!(!json.contains("<script>"), "HTML must be escaped in JSON");
    let script = "import json,sys\nd=json.load(sys.stdin)\nv=d['data'][0]['m']['metrics'][0]['labels']['v']\n\
                  assert v == sys.argv[1], (repr(v), repr(sys.argv[1]))\nprint('ok')";
    let (ok, out) = run_with_stdin(
        Command::new("python3").args(["-c", script, value]),
        json.as_bytes(),
    );
    assert!(ok && out.contains("ok"), "{out}\n{json}");
    let status = gw.get("/api/v1/status").text();
    let (ok, out) = run_with_stdin(
        Command::new("python3").args(["-c", "import json,sys; d=json.load(sys.stdin); assert d['status']=='success'; print(d['data']['flags']['web.telemetry-path'])"]),
        status.as_bytes(),
    );
    assert!(ok && out.trim() == "/metrics", "{out}\n{status}");
}

/// curl sends `Expect: 100-continue` for bodies over 1 MiB and waits for
/// the interim answer before sending them: a 5 MB push gets `100 Continue`
/// and then 200; over `--push.max-body-size` it gets 413 without the body
/// being sent at all.
#[test]
fn curl_expect_100_continue_on_a_5_mb_push() {
    let gw = Gateway::start(&ours(), &["--push.max-body-size=8MiB"]);
    let dir = TempDir::new("e2e-expect");
    let mut body = String::new();
    let mut i = 0;
    while body.len() < 5_000_000 {
        body.push_str(&format!("big_push_metric{{n=\"{i}\"}} {i}\n"));
        i += 1;
    }
    let file = dir.file("body.txt");
    fs::write(&file, &body).expect("write body");
    let curl = |url: String| {
        let out = Command::new("curl")
            .args(["-sS", "-v", "-X", "PUT", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .args(["-o", "/dev/null", "-w", "%{http_code}", &url])
            .output()
            .expect("run curl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, trace) = curl(format!("http://127.0.0.1:{}/metrics/job/big", gw.port));
    assert_eq!(code, "200", "{trace}");
    assert!(trace.contains("Expect: 100-continue"), "{trace}");
    assert!(trace.contains("HTTP/1.1 100 Continue"), "{trace}");
    let scrape = gw.get("/metrics").text();
    let last = format!(
        "big_push_metric{{instance=\"\",job=\"big\",n=\"{}\"}} {}",
        i - 1,
        i - 1
    );
    assert!(scrape.contains(&last), "{last} missing");

    let small = Gateway::start(&ours(), &["--push.max-body-size=1MiB"]);
    let (code, trace) = curl(format!("http://127.0.0.1:{}/metrics/job/big", small.port));
    assert_eq!(code, "413", "{trace}");
    assert!(!trace.contains("100 Continue"), "{trace}");
}
