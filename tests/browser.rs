//! The web page in a real browser: headless Chromium driven through
//! chromedriver's WebDriver HTTP API (spoken with the std-only client of
//! `support`). Load the page with pushed groups, filter, expand one, delete
//! one through its button, and see it gone from `/metrics`.
//!
//! Needs `chromium` and `chromium-driver` (apt); `make deps` installs them.

mod support;

use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Gateway, ours};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C WebDriver key under which an element reference comes back.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The string value following `"key":"` in a JSON answer, unescaped.
fn json_str(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat)? + pat.len();
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// A JSON string literal (for the few values we send).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A chromedriver process and one browser session; both ended on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    profile: std::path::PathBuf,
}

impl Browser {
    fn start() -> Browser {
        for bin in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} missing: apt-get install -y chromium chromium-driver (or make deps)"
            );
        }
        let port = support::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = support::try_request(port, "GET", "/status", &[], b"", Duration::from_secs(1))
                .map(|r| r.text().contains("\"ready\":true"))
                .unwrap_or(false);
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            thread::sleep(Duration::from_millis(100));
        }
        // One profile per browser: the tests of this file run in parallel
        // and Chromium locks its profile directory.
        static BROWSERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = BROWSERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile =
            std::env::temp_dir().join(format!("pushgateway-chromium-{}-{n}", std::process::id()));
        // The flags keep Chromium off the network entirely (this machine
        // has none) and run it as root in a container.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1366,900",
        ];
        let mut arg_list: Vec<String> = args.iter().map(|a| quote(a)).collect();
        arg_list.push(quote(&format!("--user-data-dir={}", profile.display())));
        let caps = format!(
            "{{\"capabilities\":{{\"alwaysMatch\":{{\"browserName\":\"chrome\",\"goog:chromeOptions\":{{\"binary\":{},\"args\":[{}]}}}}}}}}",
            quote(CHROMIUM),
            arg_list.join(",")
        );
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            profile,
        };
        let r = b.call("POST", "/session", &caps);
        b.session = json_str(&r, "sessionId").unwrap_or_else(|| panic!("no session: {r}"));
        b
    }

    fn call(&self, method: &str, path: &str, body: &str) -> String {
        let r = support::request(
            self.port,
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let text = r.text();
        assert_eq!(r.status, 200, "{method} {path} {body}: {text}");
        text
    }

    fn session_call(&self, method: &str, path: &str, body: &str) -> String {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn goto(&self, url: &str) {
        self.session_call("POST", "/url", &format!("{{\"url\":{}}}", quote(url)));
    }

    fn find(&self, css: &str) -> String {
        let r = self.session_call(
            "POST",
            "/element",
            &format!("{{\"using\":\"css selector\",\"value\":{}}}", quote(css)),
        );
        json_str(&r, ELEMENT_KEY).unwrap_or_else(|| panic!("no element {css}: {r}"))
    }

    fn click(&self, element: &str) {
        self.session_call("POST", &format!("/element/{element}/click"), "{}");
    }

    fn text(&self, element: &str) -> String {
        let r = self.session_call("GET", &format!("/element/{element}/text"), "");
        json_str(&r, "value").unwrap_or_default()
    }

    fn type_into(&self, element: &str, text: &str) {
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            &format!("{{\"text\":{}}}", quote(text)),
        );
    }

    /// Polls the text of `css` until it contains `needle` (a group's
    /// metrics arrive after its row opens); returns the last text seen.
    fn wait_text(&self, css: &str, needle: &str) -> String {
        let element = self.find(css);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut text = self.text(&element);
        while !text.contains(needle) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            text = self.text(&element);
        }
        text
    }

    /// Runs a script returning a number.
    fn eval_number(&self, script: &str) -> i64 {
        let r = self.session_call(
            "POST",
            "/execute/sync",
            &format!(
                "{{\"script\":{},\"args\":[]}}",
                quote(&format!("return {script};"))
            ),
        );
        let v = r.split("\"value\":").nth(1).unwrap_or("");
        v.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a number: {r}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = support::try_request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                &[],
                b"",
                Duration::from_secs(10),
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[test]
fn page_filter_expand_and_delete_in_a_real_browser() {
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(
        gw.post("/metrics/job/some_job", "second_metric 99\n")
            .status,
        200
    );
    let body = "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n";
    assert_eq!(
        gw.post("/metrics/job/some_job/instance/some_instance", body)
            .status,
        200
    );
    for i in 0..5 {
        let path = format!("/metrics/job/backup/instance/db-{i}/path@base64/L3Zhci90bXA");
        assert_eq!(gw.put(&path, "backup_bytes 1000\n").status, 200);
    }

    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/", gw.port));
    let rows = "document.querySelectorAll('tr.group').length";
    assert_eq!(b.eval_number(rows), 7);

    // The filter box hides the groups that do not match.
    let visible =
        "[...document.querySelectorAll('tr.group')].filter(r => r.style.display !== 'none').length";
    let filter = b.find("#filter");
    b.type_into(&filter, "backup");
    assert_eq!(b.eval_number(visible), 5);
    b.type_into(&filter, "\u{E003}\u{E003}\u{E003}\u{E003}\u{E003}\u{E003}"); // Backspace.
    assert_eq!(b.eval_number(visible), 7);

    // Expanding a group shows its metrics.
    let row = "tr.group[data-text*='some_instance']";
    b.click(&b.find(&format!("{row} summary")));
    // The row fetches its metrics when it opens.
    let pre = b.find(&format!("{row} pre"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = b.text(&pre);
    while !metrics.contains("some_metric") && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        metrics = b.text(&pre);
    }
    assert!(
        metrics
            .contains("some_metric{instance=\"some_instance\",job=\"some_job\",label=\"val1\"} 42"),
        "{metrics}"
    );

    // Delete through the button, accepting the confirmation.
    b.click(&b.find(&format!("{row} button.delete")));
    b.session_call("POST", "/alert/accept", "{}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.get("/metrics").text().contains("some_metric") {
        assert!(
            Instant::now() < deadline,
            "group not deleted through the page"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(b.eval_number(rows), 6, "the row is gone from the page too");
    assert!(
        gw.get("/metrics").text().contains("second_metric"),
        "other groups stay"
    );

    // A group whose label value holds '/' is deleted through base64.
    let row = "tr.group[data-text*='db-3']";
    b.click(&b.find(&format!("{row} button.delete")));
    b.session_call("POST", "/alert/accept", "{}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.get("/metrics").text().contains("db-3") {
        assert!(
            Instant::now() < deadline,
            "group with '/' in a label not deleted"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Rows the filter leaves visible.
const VISIBLE: &str =
    "[...document.querySelectorAll('tr.group')].filter(r => r.style.display !== 'none')";

#[test]
fn filter_matches_metric_names() {
    let gw = Gateway::start(&ours(), &[]);
    for (job, body) in [
        ("nightly", "backup_last_success 1.7e9\nbackup_bytes 10\n"),
        ("hourly", "backup_bytes 20\n"),
        ("web", "requests 3\n"),
    ] {
        assert_eq!(gw.put(&format!("/metrics/job/{job}"), body).status, 200);
    }
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/", gw.port));
    let filter = b.find("#filter");
    // Metrics are not loaded (no row is open), the names are in the page.
    b.type_into(&filter, "backup_last_success");
    assert_eq!(b.eval_number(&format!("{VISIBLE}.length")), 1);
    let only_nightly =
        format!("{VISIBLE}.every(r => r.dataset.text.includes('job=\"nightly\"')) ? 1 : 0");
    assert_eq!(b.eval_number(&only_nightly), 1);
    assert_eq!(b.text(&b.find("#shown")), "1");
    // A shared metric name matches every group pushing it.
    b.type_into(&filter, &"\u{E003}".repeat(20));
    b.type_into(&filter, "backup_bytes");
    assert_eq!(b.eval_number(&format!("{VISIBLE}.length")), 2);
}

#[test]
fn expanded_groups_stay_expanded_across_a_reload() {
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(gw.put("/metrics/job/alpha", "a_metric 1\n").status, 200);
    assert_eq!(gw.put("/metrics/job/beta", "b_metric 2\n").status, 200);
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/", gw.port));
    let row = |job: &str| format!("tr.group[data-text*='{job}']");
    let open = |job: &str| {
        b.eval_number(&format!(
            "document.querySelector(\"{} details\").open ? 1 : 0",
            row(job)
        ))
    };
    b.click(&b.find(&format!("{} summary", row("alpha"))));
    let pre = format!("{} pre", row("alpha"));
    assert!(b.wait_text(&pre, "a_metric{").contains("a_metric{"));
    assert_eq!((open("alpha"), open("beta")), (1, 0));

    b.session_call("POST", "/refresh", "{}");
    assert_eq!(
        (open("alpha"), open("beta")),
        (1, 0),
        "state kept over a reload"
    );
    // Reopened, the row loads its metrics again.
    let text = b.wait_text(&pre, "a_metric{");
    assert!(
        text.contains("a_metric{instance=\"\",job=\"alpha\"} 1"),
        "{text}"
    );

    // Closing is remembered too. The page records it in its (async)
    // toggle handler: wait for that before reloading.
    b.click(&b.find(&format!("{} summary", row("alpha"))));
    let stored = format!(
        "sessionStorage.getItem('coll_' + document.querySelector(\"{} details\").dataset.path) === 'false' ? 1 : 0",
        row("alpha")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.eval_number(&stored) != 1 {
        assert!(
            Instant::now() < deadline,
            "the page never recorded the close"
        );
        thread::sleep(Duration::from_millis(20));
    }
    b.session_call("POST", "/refresh", "{}");
    assert_eq!((open("alpha"), open("beta")), (0, 0));
}

#[test]
fn opened_group_shows_its_native_histogram() {
    use pushgateway::model::{Histogram, Metric, MetricType, NativeHistogram, Span, Value};
    let gw = Gateway::start(&ours(), &[]);
    let h = Histogram {
        count: 3,
        sum: 2.5,
        native: Some(Box::new(NativeHistogram {
            schema: 1,
            zero_threshold: 0.001,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_deltas: vec![1, 1],
            ..NativeHistogram::default()
        })),
        ..Histogram::default()
    };
    let series = [Metric {
        labels: Vec::new().into(),
        value: Value::Histogram(Box::new(h)),
        extra: None,
    }];
    let mut body = Vec::new();
    pushgateway::wire::protobuf::encode_family(
        &mut body,
        "latency_seconds",
        Some("Latency."),
        MetricType::Histogram,
        series.iter(),
    );
    let proto = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
    let r = gw.request(
        "PUT",
        "/metrics/job/native",
        &[("Content-Type", proto)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/", gw.port));
    b.click(&b.find("tr.group[data-text*='native'] summary"));
    let text = b.wait_text("tr.group[data-text*='native'] pre", "native histogram");
    // Schema 1: bounds 2^(i/2); Histogram.String as 1.11's page shows it.
    assert!(
        text.contains("# native histogram: {count:3, sum:2.5, (0.7071067811865475,1]:1, (1,1.414213562373095]:2}"),
        "{text}"
    );
}

/// Waits until `done` holds, failing with `what` after ten seconds.
fn within_ten_seconds(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn expiry_shown_and_a_whole_job_deleted_from_the_page() {
    let gw = Gateway::start(&ours(), &["--web.enable-admin-api", "--push.group-ttl=2h"]);
    for i in 0..3 {
        let path = format!("/metrics/job/nightly/instance/n{i}");
        assert_eq!(gw.put(&path, "nightly_ok 1\n").status, 200);
    }
    assert_eq!(gw.put("/metrics/job/other", "other_ok 1\n").status, 200);
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/", gw.port));
    let expiry = b.text(&b.find("tr.group small.expiry"));
    assert_eq!(expiry, "expires in 1 hour", "{expiry}");
    let button = b.find("button.deljob");
    assert_eq!(b.text(&button), "Delete all 3 groups of job nightly");
    b.click(&button);
    b.session_call("POST", "/alert/accept", "{}");
    within_ten_seconds("job not deleted through the page", || {
        !gw.get("/metrics").text().contains("nightly_ok")
    });
    assert!(
        gw.get("/metrics").text().contains("other_ok"),
        "other jobs stay"
    );
    // The page reloads without the job.
    let rows = "document.querySelectorAll('tr.group').length";
    within_ten_seconds("the page still shows the deleted job", || {
        b.eval_number(rows) == 1
    });
}

/// 1.11's page offers deleting every group (the admin API's wipe), after
/// a confirmation, when the admin API is on.
#[test]
fn every_group_deleted_from_the_page() {
    let gw = Gateway::start(&ours(), &["--web.enable-admin-api"]);
    for job in ["a", "b"] {
        assert_eq!(
            gw.put(&format!("/metrics/job/{job}"), "wiped_ok 1\n")
                .status,
            200
        );
    }
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{}/", gw.port));
    let button = b.find("button.wipe");
    assert_eq!(b.text(&button), "Delete all groups");
    b.click(&button);
    b.session_call("POST", "/alert/accept", "{}");
    within_ten_seconds("groups not wiped through the page", || {
        !gw.get("/metrics").text().contains("wiped_ok")
    });
    let rows = "document.querySelectorAll('tr.group').length";
    within_ten_seconds("the page still shows wiped groups", || {
        b.eval_number(rows) == 0
    });
}
