//! Differential conformance tests: every scenario starts a fresh reference
//! Pushgateway (Go 1.5.1) and a fresh instance of ours, sends both the same
//! requests, and requires the same status codes and the same scrape of the
//! pushed metrics (push times reduced to zero/nonzero, the servers' own
//! `go_*`, `process_*` and `pushgateway_*` families left out).
//!
//! Error bodies are shown in failure messages but not compared: the contract
//! only asks for a one-line reason, not Go's exact wording.
//!
//! Agreement alone would let two servers that fail alike pass (a wrong URL
//! is 404 on both): every scenario also states the reference's answers it
//! means to get, stored or refused (`Pair::expect_answers`), and a pair that
//! sent requests without stating them fails.
//!
//! Set `PUSHGATEWAY_UNDER_TEST=/usr/bin/prometheus-pushgateway` to run the
//! reference against itself, which checks that the harness is sound, and
//! `CONFORMANCE_TRACE=1` to print every request with the reference's answer
//! (run with `--nocapture`), which shows what a scenario actually exercises.
//! `CONFORMANCE_KEEP_GOING=1` records mismatches instead of stopping at the
//! first one and reports them all when the scenario ends (later steps may then
//! differ only as a consequence of an earlier difference).

mod support;

use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};
use support::proto::{body_with_extras, protobuf_scrape};
use support::{Exposition, Gateway, Response};

/// How long a scrape difference may last before it counts (see
/// [`Pair::check_metrics`]).
const SETTLE_TIME: Duration = Duration::from_secs(2);
/// Pause between two scrape comparisons while waiting for a settled state.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// The server under test: ours, unless overridden for a self-check.
fn under_test() -> String {
    std::env::var("PUSHGATEWAY_UNDER_TEST").unwrap_or_else(|_| support::ours())
}

/// A reference and an "ours" gateway started with the same flags, plus the
/// steps sent so far (shown on failure for context).
struct Pair {
    reference: Gateway,
    ours: Gateway,
    /// Path of the scrape endpoint, including any route prefix.
    metrics_path: String,
    /// Families whose HELP may legitimately differ (pushed with several).
    ignore_help: Vec<&'static str>,
    history: Vec<String>,
    /// Mismatches recorded in keep-going mode.
    failures: Vec<String>,
    /// Last scrape difference recorded, so a lasting one is reported once.
    last_diff: String,
    /// The reference's status for every request sent through the pair, in
    /// order: what the scenario really did (see [`Pair::expect_answers`]).
    answers: Vec<u16>,
    /// Whether the scenario compared `answers` with what it meant to do;
    /// a pair that sent requests without doing so fails when dropped.
    answers_checked: bool,
}

impl Pair {
    fn start(args: &[&str]) -> Pair {
        let mut prefix = "";
        let mut telemetry = "/metrics";
        for a in args {
            if let Some(p) = a.strip_prefix("--web.route-prefix=") {
                prefix = p.trim_end_matches('/');
            }
            if let Some(t) = a.strip_prefix("--web.telemetry-path=") {
                telemetry = t;
            }
        }
        // Start both at once: each needs tens of milliseconds to come up.
        let ours_bin = under_test();
        let (reference, ours) = thread::scope(|s| {
            let r = s.spawn(|| Gateway::start(&support::reference(), args));
            let o = Gateway::start(&ours_bin, args);
            (r.join().expect("reference start panicked"), o)
        });
        Pair {
            reference,
            ours,
            metrics_path: format!("{prefix}{telemetry}"),
            ignore_help: Vec::new(),
            history: Vec::new(),
            failures: Vec::new(),
            last_diff: String::new(),
            answers: Vec::new(),
            answers_checked: false,
        }
    }

    /// Sends one request to both and requires equal status codes.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Response, Response) {
        let r = self.reference.request(method, path, headers, body);
        let o = self.ours.request(method, path, headers, body);
        let shown = String::from_utf8_lossy(body);
        if r.status != o.status {
            self.fail(format!(
                "status differs for {method} {path}\nrequest headers: {headers:?}\nrequest body: {shown:?}\n\
                 reference: {} {:?}\nours:      {} {:?}",
                r.status,
                r.text(),
                o.status,
                o.text(),
            ));
        }
        if let Some(theirs) = first_clause(r.status, &r.text())
            && first_clause(o.status, &o.text()) != Some(theirs)
        {
            self.fail(format!(
                "the refusal's first clause differs for {method} {path}\nrequest body: {shown:?}\n\
                 reference: {:?}\nours:      {:?}",
                r.text(),
                o.text(),
            ));
        }
        self.answers.push(r.status);
        let line = format!("{method} {path} {shown:?} -> {}", r.status);
        if std::env::var_os("CONFORMANCE_TRACE").is_some() {
            println!("{line} {:?}", r.text());
        }
        self.history.push(line);
        (r, o)
    }

    /// [`Pair::send`] followed by a comparison of the scrapes.
    fn step(&mut self, method: &str, path: &str, body: impl AsRef<[u8]>) {
        self.step_with(method, path, &[], body);
    }

    /// [`Pair::step`] with request headers.
    fn step_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) {
        self.send(method, path, headers, body.as_ref());
        self.check_metrics();
    }

    fn put(&mut self, path: &str, body: impl AsRef<[u8]>) {
        self.step("PUT", path, body);
    }

    fn post(&mut self, path: &str, body: impl AsRef<[u8]>) {
        self.step("POST", path, body);
    }

    fn delete(&mut self, path: &str) {
        self.step("DELETE", path, b"");
    }

    /// Status code only, for endpoints whose bodies differ by design.
    fn status(&mut self, method: &str, path: &str) {
        self.send(method, path, &[], b"");
    }

    /// Status codes of a table of body-less requests; reports every
    /// mismatch at once, since these requests do not depend on each other.
    fn statuses(&mut self, requests: &[(&str, &str)]) {
        let mut mismatches = String::new();
        for (method, path) in requests {
            let r = self.reference.request(method, path, &[], b"");
            let o = self.ours.request(method, path, &[], b"");
            if r.status != o.status {
                let _ = writeln!(
                    mismatches,
                    "  {method} {path}: reference {} {:?}, ours {} {:?}",
                    r.status,
                    truncate(&r.text()),
                    o.status,
                    truncate(&o.text())
                );
            }
            self.answers.push(r.status);
            self.history
                .push(format!("{method} {path} -> {}", r.status));
        }
        if !mismatches.is_empty() {
            self.fail(format!("status codes differ:\n{mismatches}"));
        }
    }

    /// Requires the reference's answers to every request sent so far to be
    /// `want`, written as space-separated status codes with an optional
    /// repeat count (`"200x3 400 202"`).
    ///
    /// Equal answers from both servers prove nothing when both fail alike
    /// (a wrong URL is 404 on both, a body that does not parse is 400 on
    /// both): stating what each request was meant to get, stored (200,
    /// 202) or refused (400...), is what makes a scenario able to fail.
    fn expect_answers(&mut self, want: &str) {
        self.answers_checked = true;
        let got = compact_statuses(&self.answers);
        if got != compact_statuses(&expand_statuses(want)) {
            self.fail(format!(
                "the reference's answers are not what the scenario meant to get\n\
                 expected: {want}\ngot:      {got}"
            ));
        }
    }

    /// Scrapes both and requires equal normalized pushed metrics.
    ///
    /// The reference applies deletions (and pushes answered with 202)
    /// asynchronously, after answering, so a difference is only reported
    /// if it persists for [`SETTLE_TIME`].
    fn check_metrics(&mut self) {
        let deadline = Instant::now() + SETTLE_TIME;
        loop {
            match self.compare_scrapes() {
                None => return,
                Some(_) if Instant::now() < deadline => thread::sleep(SETTLE_POLL),
                Some(failure) => {
                    if failure != self.last_diff {
                        self.last_diff = failure.clone();
                        self.fail(failure);
                    }
                    return;
                }
            }
        }
    }

    /// One scrape of each; `None` when they agree, else the difference.
    fn compare_scrapes(&self) -> Option<String> {
        let path = self.metrics_path.clone();
        let r = self.reference.get(&path);
        let o = self.ours.get(&path);
        if r.status != o.status {
            return Some(format!(
                "scrape status differs\nreference: {} {:?}\nours: {} {:?}",
                r.status,
                r.text(),
                o.status,
                o.text(),
            ));
        }
        if r.status != 200 {
            return None;
        }
        let parse = |who: &str, resp: &Response| {
            Exposition::normalized(&resp.text())
                .map(|e| e.without_help_of(&self.ignore_help))
                .map_err(|e| format!("{who} scrape does not parse: {e}"))
        };
        let (re, oe) = match (parse("reference", &r), parse("ours", &o)) {
            (Ok(re), Ok(oe)) => (re, oe),
            (Err(e), _) | (_, Err(e)) => return Some(e),
        };
        let diff = support::diff_expositions("reference", &re, "ours", &oe);
        (!diff.is_empty()).then(|| format!("scrapes differ\n{diff}"))
    }

    /// Reports a mismatch: at once, or at the end in keep-going mode.
    fn fail(&mut self, msg: String) {
        if std::env::var_os("CONFORMANCE_KEEP_GOING").is_some() {
            let after = self.history.last().cloned().unwrap_or_default();
            self.failures.push(format!("[after step: {after}]\n{msg}"));
        } else {
            panic!("{msg}\n{}", self.context());
        }
    }

    fn context(&self) -> String {
        let mut out = String::from("steps so far:\n");
        for h in &self.history {
            let _ = writeln!(out, "  {h}");
        }
        let _ = write!(
            out,
            "reference log: {}\nours log: {}",
            self.reference.log_path.display(),
            self.ours.log_path.display()
        );
        out
    }
}

/// The comparison itself must see through formatting but not through real
/// differences, or every other test here proves nothing.
#[test]
fn harness_normalization_self_check() {
    let a = "# HELP x Help.\n# TYPE x gauge\nx{b=\"2\",a=\"1\"} 1e+06\nx{a=\"0\"} NaN\n\
             # TYPE push_time_seconds gauge\npush_time_seconds{job=\"j\"} 1.7e+09\n\
             # TYPE go_goroutines gauge\ngo_goroutines 7\n";
    let b = "# TYPE x gauge\n# HELP x Help.\nx{a=\"0\"} nan\nx{a=\"1\",b=\"2\"} 1000000\n\
             # TYPE push_time_seconds gauge\npush_time_seconds{job=\"j\"} 1700000123.5\n";
    let na = Exposition::normalized(a).expect("a parses");
    let nb = Exposition::normalized(b).expect("b parses");
    assert_eq!(support::diff_expositions("a", &na, "b", &nb), "");
    for changed in [
        b.replace("1000000", "1000001"),
        b.replace("Help.", "Other."),
        b.replace("# TYPE x gauge", "# TYPE x counter"),
        b.replace("a=\"0\"", "a=\"9\""),
        b.replace("1700000123.5", "0"),
        format!("{b}y 1\n"),
    ] {
        let nc = Exposition::normalized(&changed).expect("variant parses");
        assert_ne!(na, nc, "normalization hid a real difference:\n{changed}");
    }
    assert!(Exposition::parse("x{a=\"1} 1\n").is_err());
    assert!(Exposition::parse("x 1 123\n").is_err());
}

impl Drop for Pair {
    /// Reports what keep-going mode collected (unless already failing).
    fn drop(&mut self) {
        if thread::panicking() {
            return;
        }
        if !self.answers.is_empty() && !self.answers_checked {
            panic!(
                "the scenario never said what its requests should get; add\n  \
                 p.expect_answers(\"{}\");\nafter checking that this is what it means to do\n{}",
                compact_statuses(&self.answers),
                self.context()
            );
        }
        if !self.failures.is_empty() {
            panic!(
                "{} mismatch(es):\n{}\n{}",
                self.failures.len(),
                self.failures.join("\n\n"),
                self.context()
            );
        }
    }
}

/// Status codes written compactly, runs as `CODExN` (`[200, 200, 400]`
/// becomes `"200x2 400"`), the form [`Pair::expect_answers`] takes.
/// The first clause of a refused push's answer, up to its first `: `:
/// ours may say more after it, but scripts grep for the clause (issue 28),
/// so it must be the reference's word for word.
fn first_clause(status: u16, body: &str) -> Option<&str> {
    if !(400..500).contains(&status) {
        return None;
    }
    body.split_once(": ").map(|(clause, _)| clause)
}

fn compact_statuses(statuses: &[u16]) -> String {
    let mut runs: Vec<(u16, usize)> = Vec::new();
    for &s in statuses {
        match runs.last_mut() {
            Some((code, n)) if *code == s => *n += 1,
            _ => runs.push((s, 1)),
        }
    }
    let words: Vec<String> = runs
        .iter()
        .map(|&(code, n)| match n {
            1 => code.to_string(),
            _ => format!("{code}x{n}"),
        })
        .collect();
    words.join(" ")
}

/// The status codes a compact form such as `"200x2 400"` stands for.
fn expand_statuses(compact: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for word in compact.split_whitespace() {
        let (code, n) = word.split_once('x').unwrap_or((word, "1"));
        let code: u16 = code.parse().expect("a status code");
        let n: usize = n.parse().expect("a repeat count");
        out.extend(std::iter::repeat_n(code, n));
    }
    out
}

#[test]
fn compact_statuses_round_trip() {
    let statuses = [200, 200, 400, 202, 202, 202, 200];
    assert_eq!(compact_statuses(&statuses), "200x2 400 202x3 200");
    assert_eq!(expand_statuses("200x2 400 202x3 200"), statuses);
    // Two ways of writing the same answers compare equal.
    assert_eq!(
        compact_statuses(&expand_statuses("200 200x1 400")),
        "200x2 400"
    );
}

/// First 200 characters, for one-line failure reports.
fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

// ---------------------------------------------------------------------------
// Basic push, replace and delete semantics
// ---------------------------------------------------------------------------

/// Headers `curl --data-binary` sends along with the body.
const CURL_HEADERS: [(&str, &str); 3] = [
    ("User-Agent", "curl/8.5.0"),
    ("Accept", "*/*"),
    ("Content-Type", "application/x-www-form-urlencoded"),
];

/// The flow from the upstream README, verbatim, with curl's headers.
#[test]
fn tutorial_flow() {
    let mut p = Pair::start(&[]);
    p.check_metrics();
    // echo "second_metric 99" | curl --data-binary @- http://HOST/metrics/job/some_job
    p.step_with(
        "POST",
        "/metrics/job/some_job",
        &CURL_HEADERS,
        "second_metric 99\n",
    );
    p.step_with(
        "POST",
        "/metrics/job/some_job/instance/some_instance",
        &CURL_HEADERS,
        "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n\
         # TYPE another_metric gauge\n# HELP another_metric Just an example.\n\
         another_metric 2398.283\n",
    );
    p.delete("/metrics/job/some_job/instance/some_instance");
    p.delete("/metrics/job/some_job");
    p.expect_answers("200x2 202x2");
}

/// Clients such as curl (large bodies) and some libraries ask for
/// `100 Continue` first; explicit text content types must work too.
#[test]
fn request_header_variants() {
    let mut p = Pair::start(&[]);
    p.step_with(
        "PUT",
        "/metrics/job/hdr",
        &[("Expect", "100-continue")],
        "# TYPE e gauge\ne 1\n",
    );
    p.step_with(
        "PUT",
        "/metrics/job/hdr/instance/i",
        &[("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
        "# TYPE e gauge\ne 2\n",
    );
    p.step_with(
        "POST",
        "/metrics/job/hdr/instance/j",
        &[("Content-Type", "application/json")],
        "# TYPE e gauge\ne 3\n",
    );
    p.step_with(
        "POST",
        "/metrics/job/hdr/instance/k",
        &[(
            "Content-Type",
            "application/vnd.google.protobuf; proto=other.Message; encoding=delimited",
        )],
        "# TYPE e gauge\ne 4\n",
    );
    p.expect_answers("200x4");
}

#[test]
fn put_replaces_group_post_replaces_families() {
    let mut p = Pair::start(&[]);
    let g = "/metrics/job/sem/instance/i1";
    p.put(g, "a 1\nb{x=\"1\"} 2\nb{x=\"2\"} 3\n");
    // POST replaces family b wholesale (x="2" disappears), keeps a, adds c.
    p.post(g, "b{x=\"1\"} 20\nc 4\n");
    // PUT replaces everything.
    p.put(g, "c 5\n");
    p.post(g, "# TYPE d counter\nd 1\n");
    // Another group is untouched by all of this.
    p.put("/metrics/job/sem/instance/i2", "a 100\n");
    p.put(g, "a 7\n");
    p.post("/metrics/job/sem/instance/i2", "a 101\n");
    p.expect_answers("200x7");
}

#[test]
fn empty_bodies() {
    let mut p = Pair::start(&[]);
    let g = "/metrics/job/empty";
    p.put(g, "");
    p.post(g, "");
    p.put(g, "a 1\nb 2\n");
    p.post(g, "");
    p.put(g, "");
    p.post("/metrics/job/empty_post_new", "");
    // A body of only comments and blank lines is empty as well.
    p.put(g, "# just a comment\n\n");
    p.expect_answers("200x7");
}

#[test]
fn delete_semantics() {
    let mut p = Pair::start(&[]);
    p.delete("/metrics/job/missing");
    p.delete("/metrics/job/missing/instance/x");
    p.put("/metrics/job/d", "m 1\n");
    p.put("/metrics/job/d/instance/i", "m 2\n");
    p.put("/metrics/job/d/instance/i/extra/e", "m 3\n");
    // Only the exact grouping key goes, not groups with more labels.
    p.delete("/metrics/job/d/instance/i");
    p.delete("/metrics/job/d");
    p.delete("/metrics/job/d/instance/i");
    // Label order in the path does not matter for identity.
    p.put("/metrics/job/d2/a/1/b/2", "n 1\n");
    p.delete("/metrics/job/d2/b/2/a/1");
    p.put("/metrics/job@base64/ZDM", "o 1\n");
    p.delete("/metrics/job/d3");
    p.delete("/metrics/job/d/odd");
    p.delete("/metrics/job/d/__bad/x");
    p.expect_answers("202x2 200x3 202x3 200 202 200 202 400x2");
}

// ---------------------------------------------------------------------------
// Grouping key
// ---------------------------------------------------------------------------

#[test]
fn grouping_key_base64() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job@base64/Zm9v", "b 1\n"); // foo
    p.put("/metrics/job@base64/Zm9vYg==", "b 2\n"); // foob, padded
    p.put("/metrics/job@base64/Zm9vYmE", "b 3\n"); // fooba, unpadded
    p.put("/metrics/job/j/v@base64/YS9i", "b 4\n"); // "a/b" stays one value
    p.put("/metrics/job/j/v@base64/Pz8_", "b 5\n"); // "???" url-safe alphabet
    p.put("/metrics/job/j/v@base64/w6k", "b 6\n"); // "é"
    p.put("/metrics/job/j/v@base64/=", "b 7\n"); // empty value
    p.put("/metrics/job/j2/v@base64/", "b 7\n");
    p.put("/metrics/job@base64/=", "b 8\n"); // empty job
    p.put("/metrics/job/j/v@base64/!!", "b 9\n");
    p.put("/metrics/job/j/v@base64/Zm9v!", "b 9\n");
    p.put("/metrics/job/j/v@base64/Z", "b 9\n");
    p.put("/metrics/job/j/v@base64/Pz8+", "b 9\n"); // standard alphabet
    p.put("/metrics/job/j/v@base64/Zm9v===", "b 9\n");
    p.put("/metrics/job/j/v@base64/Zm=9v", "b 9\n");
    p.put("/metrics/job/j/__v@base64/Zm9v", "b 9\n");
    p.delete("/metrics/job@base64/Zm9v");
    p.expect_answers("200x8 400x5 200 400x2 202");
}

#[test]
fn grouping_key_percent_encoding() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job/a%20b", "pe 1\n");
    p.put("/metrics/job/caf%C3%A9/x/%41", "pe 2\n");
    p.put("/metrics/job/j/x/100%25", "pe 3\n");
    p.put("/metrics/job/j/x/a+b", "pe 4\n");
    // Go decodes the path before splitting it: %2F separates.
    p.put("/metrics/job/j%2Fx/y", "pe 5\n");
    p.put("/metrics/job/j/x/a%2Fb", "pe 6\n");
    p.put("/metrics/job/j/x/a%2fb/c", "pe 7\n");
    p.put("/metrics/job/j/x/bad%zz", "pe 8\n");
    p.delete("/metrics/job/a%20b");
    p.expect_answers("200x5 400 200 400 202");
}

#[test]
fn grouping_key_errors() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job/ok", "g 1\n");
    p.put("/metrics/job/ok/x", "g 1\n");
    p.put("/metrics/job/ok/x/y/z", "g 1\n");
    p.put("/metrics/job/ok/__x/y", "g 1\n");
    p.put("/metrics/job/ok/__name__/y", "g 1\n");
    p.put("/metrics/job/ok/1x/y", "g 1\n");
    p.put("/metrics/job/ok/x-y/y", "g 1\n");
    p.put("/metrics/job/ok/x.y/y", "g 1\n");
    p.put("/metrics/job/ok/%C3%A9/y", "g 1\n");
    p.put("/metrics/job/ok/_x/y", "g 1\n");
    p.put("/metrics/job/ok/x_1/y", "g 1\n");
    p.post("/metrics/job/ok/x/y/z", "g 1\n");
    p.post("/metrics/job@base64/=", "g 1\n");
    p.put("/metrics/job", "g 1\n");
    p.expect_answers("200 400x8 200x2 400x2 404");
}

/// Trailing slashes and empty components, where Go's router redirects.
#[test]
fn grouping_key_path_shapes() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job/j/", "s 1\n");
    p.put("/metrics/job/j/x/y/", "s 1\n");
    p.put("/metrics/job/j/x/", "s 1\n");
    p.status("PUT", "/metrics/job/");
    p.status("PUT", "/metrics/job//x/y");
    p.status("GET", "/metrics/");
    p.check_metrics();
    p.expect_answers("200 400 200 307 301x2");
}

#[test]
fn grouping_labels_override_body_labels() {
    let mut p = Pair::start(&[]);
    p.put(
        "/metrics/job/j/instance/i",
        "m{job=\"other\",instance=\"x\",l=\"v\"} 1\n",
    );
    p.put("/metrics/job/j2", "m{job=\"other\"} 1\n");
    p.put("/metrics/job/j3", "m{instance=\"keep\"} 1\n");
    p.put("/metrics/job/j4/x/1", "m{x=\"2\",y=\"3\"} 1\n");
    // After the override both series are identical: rejected.
    p.put("/metrics/job/j5/x/1", "m{x=\"2\"} 1\nm{x=\"3\"} 2\n");
    p.put(
        "/metrics/job/j6/quantile/q",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n",
    );
    p.put(
        "/metrics/job/j7/le/q",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    );
    p.put("/metrics/job/j8/instance/", "m 1\n");
    p.expect_answers("200x4 400x2 200x2");
}

// ---------------------------------------------------------------------------
// Text format: accepted input
// ---------------------------------------------------------------------------

#[test]
fn metric_types() {
    let mut p = Pair::start(&[]);
    let g = "/metrics/job/types";
    p.put(
        g,
        "# HELP c_total A counter.\n# TYPE c_total counter\nc_total{code=\"200\"} 10\nc_total{code=\"500\"} 1\n\
         # HELP g A gauge.\n# TYPE g gauge\ng -3.5\n\
         # TYPE u untyped\nu 7\n\
         plain 8\n\
         # HELP s A summary.\n# TYPE s summary\n\
         s{quantile=\"0.5\"} 0.2\ns{quantile=\"0.9\"} 0.7\ns{quantile=\"0.99\"} 1.1\ns_sum 12.5\ns_count 40\n\
         # HELP h A histogram.\n# TYPE h histogram\n\
         h_bucket{le=\"0.1\"} 2\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"+Inf\"} 6\nh_sum 3.25\nh_count 6\n",
    );
    // Histogram without the +Inf bucket, and one with labels.
    p.put(
        "/metrics/job/types2",
        "# TYPE hn histogram\nhn_bucket{le=\"1\"} 1\nhn_bucket{le=\"2\"} 3\nhn_sum 4\nhn_count 3\n\
         # TYPE hl histogram\nhl_bucket{path=\"/a\",le=\"1\"} 1\nhl_bucket{path=\"/a\",le=\"+Inf\"} 2\nhl_sum{path=\"/a\"} 3\nhl_count{path=\"/a\"} 2\n\
         hl_bucket{path=\"/b\",le=\"1\"} 0\nhl_sum{path=\"/b\"} 0\nhl_count{path=\"/b\"} 0\n",
    );
    // Summaries without quantiles or without _sum; a histogram without _count.
    p.put(
        "/metrics/job/types3",
        "# TYPE s1 summary\ns1_sum 1\ns1_count 2\n# TYPE s2 summary\ns2_count 5\n\
         # TYPE h2 histogram\nh2_bucket{le=\"1\"} 1\n",
    );
    // A TYPE with no samples.
    p.put(
        "/metrics/job/types4",
        "# TYPE lonely gauge\n# HELP lonely2 Alone.\n",
    );
    p.put("/metrics/job/types5", "# TYPE neg counter\nneg -1\n");
    p.put(
        "/metrics/job/types6",
        "# TYPE unsorted histogram\nunsorted_bucket{le=\"+Inf\"} 3\nunsorted_bucket{le=\"1\"} 1\nunsorted_count 3\nunsorted_sum 1\n",
    );
    p.expect_answers("200x6");
}

#[test]
fn help_type_order_comments_blank_lines() {
    let mut p = Pair::start(&[]);
    p.put(
        "/metrics/job/o1",
        "# TYPE a gauge\n# HELP a Help after type.\na 1\n",
    );
    p.put(
        "/metrics/job/o2",
        "# HELP b Help before type.\n# TYPE b gauge\nb 1\n",
    );
    p.put(
        "/metrics/job/o3",
        "\n\n# a comment\n#another\n# HELP c\nc 1\n\n# TYPE d counter\n\nd 2\n",
    );
    p.put("/metrics/job/o4", "e 1\n# HELP e Help after samples.\n");
    p.put(
        "/metrics/job/o5",
        "#HELP f no space after hash\n#TYPE f gauge\nf 1\n",
    );
    p.put(
        "/metrics/job/o6",
        "# HELP g   leading and trailing spaces   \ng 1\n",
    );
    p.put(
        "/metrics/job/o7",
        "# HELP   h extra spaces before name\nh 1\n",
    );
    p.put(
        "/metrics/job/o8",
        "# TYPE i summary\ni_count 1\n# HELP i late help\n",
    );
    p.put("/metrics/job/o9", "# TYPE j gauge\nk 1\nj 2\n");
    p.expect_answers("200x9");
}

#[test]
fn escapes() {
    let mut p = Pair::start(&[]);
    p.put(
        "/metrics/job/esc",
        "# HELP esc Back\\\\slash, new\\nline and \"quotes\".\n# TYPE esc gauge\n\
         esc{a=\"back\\\\slash\",b=\"quo\\\"te\",c=\"new\\nline\",d=\"ünï\u{1F600}\",e=\"\"} 1\n",
    );
    p.put("/metrics/job/esc2", "esc2{a=\"}{,=\"} 1\n");
    // Escapes outside the allowed set.
    p.put("/metrics/job/esc3", "# HELP esc3 Tab \\t escape.\nesc3 1\n");
    p.put(
        "/metrics/job/esc3",
        "# HELP esc3 Quote \\\" escape.\nesc3 1\n",
    );
    p.put("/metrics/job/esc3", "esc3{a=\"tab\\t\"} 1\n");
    p.put("/metrics/job/esc3", "esc3{a=\"trailing\\\"} 1\n");
    p.put("/metrics/job/esc3", "esc3{a=\"raw\ttab\"} 1\n");
    p.expect_answers("200x2 400x4 200");
}

#[test]
fn special_floats() {
    let mut p = Pair::start(&[]);
    let values = [
        "+Inf",
        "-Inf",
        "NaN",
        "Inf",
        "inf",
        "-inf",
        "nan",
        "NAN",
        "infinity",
        "+Infinity",
        "1e308",
        "-1e308",
        "1e309",
        "4.9e-324",
        "-0",
        "0",
        "0.1",
        "1e-7",
        "123456789",
        "1.5E+10",
        "+5",
        "1e+06",
        ".5",
        "5.",
        "007",
        "1_000",
        "0x10",
        "0x1p3",
        "1e",
        "--1",
        "1.7976931348623157e308",
        "0.30000000000000004",
    ];
    for (i, v) in values.iter().enumerate() {
        p.put(
            &format!("/metrics/job/floats/case/c{i}"),
            format!("f{{v=\"{v}\"}} {v}\n"),
        );
    }
    p.expect_answers("200x12 400 200x12 400x5 200x2");
}

#[test]
fn whitespace_variants() {
    let mut p = Pair::start(&[]);
    let bodies = [
        "ws\t1\n",
        "ws 2   \n",
        "ws \t 3\t\n",
        " ws 4\n",
        "ws{ a = \"x\" , b=\"y\" , } 5\n",
        "ws{a=\"x\",} 6\n",
        "ws{} 7\n",
        "ws {a=\"x\"} 8\n",
        "ws{a=\"x\"}9\n",
        "ws 10\r\n",
        "ws{a=\"x\"\t,\tb=\"y\"}\t11\n",
        "#\tTYPE ws2 gauge\nws2 12\n",
    ];
    for (i, b) in bodies.iter().enumerate() {
        p.put(&format!("/metrics/job/ws/case/c{i}"), b);
    }
    p.expect_answers("200 400x2 200x6 400 200x2");
}

// ---------------------------------------------------------------------------
// Text format: rejected input (the group must stay as it was)
// ---------------------------------------------------------------------------

#[test]
fn parse_errors() {
    let mut p = Pair::start(&[]);
    let g = "/metrics/job/err";
    p.put(g, "keep 1\n");
    let bodies: [&[u8]; 31] = [
        b"no_newline 1",
        b"1bad 1\n",
        b"m{1a=\"x\"} 1\n",
        b"m{a\"x\"} 1\n",
        b"m{a=\"x} 1\n",
        b"m{a=\"\\q\"} 1\n",
        b"m abc\n",
        b"m 1\n# TYPE m gauge\n",
        b"# HELP m a\n# HELP m b\nm 1\n",
        b"# TYPE m gauge\n# TYPE m counter\nm 1\n",
        b"# TYPE m foo\nm 1\n",
        b"# TYPE m\nm 1\n",
        b"m 1 1234567890\n",
        b"m{a=\"1\",a=\"2\"} 1\n",
        b"m{__name__=\"x\"} 1\n",
        b"m{__x=\"x\"} 1\n",
        b"m 1\nm 2\n",
        b"m 1\nm{} 2\n",
        b"m{a=\"\xff\"} 1\n",
        b"m\xff 1\n",
        b"m{a=\"x\"}\n",
        b"m{a=\"x\"} 1 2 3\n",
        b"m{a=x} 1\n",
        b"m{a=\"x\" 1\n",
        b"# TYPE s summary\ns{quantile=\"x\"} 1\n",
        b"# TYPE s summary\ns 1\n",
        b"# TYPE h histogram\nh_bucket{le=\"abc\"} 1\n",
        b"# TYPE h histogram\nh_bucket 1\n",
        b"# TYPE h histogram\nh 1\n",
        b"m{a=\"1\"} 1\nm{a=\"\"} 2\nm 3\n",
        b"m-x 1\n",
    ];
    for b in bodies {
        p.put(g, b);
        p.post(g, b);
    }
    // A failing push to a group that does not exist yet.
    p.put("/metrics/job/err_new", "m 1 1234567890\n");
    p.put("/metrics/job/err_new2", "1bad 1\n");
    // Each body is sent twice (PUT, POST). All are refused but five that
    // the reference accepts and that ours must accept alike: a TYPE line
    // without a type (body 11), a summary sample without quantile (25), a
    // histogram bucket without `le` (27), a histogram sample without suffix
    // (28), and `m{a=""}` beside `m` (29).
    p.expect_answers("200 400x22 200x2 400x26 200x2 400x2 200x6 400x4");
}

// ---------------------------------------------------------------------------
// Consistency across groups
// ---------------------------------------------------------------------------

#[test]
fn consistency_type_conflict() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job/a", "# TYPE c counter\nc 1\n");
    p.put("/metrics/job/b", "# TYPE c gauge\nc 1\n");
    p.put("/metrics/job/b", "c 1\n"); // untyped vs counter
    p.put("/metrics/job/b", "# TYPE c counter\nc 2\n");
    p.post("/metrics/job/a", "# TYPE c gauge\nc 3\n"); // a alone holds... not b
    p.delete("/metrics/job/b");
    p.post("/metrics/job/a", "# TYPE c gauge\nc 3\n");
    p.expect_answers("200 400x2 200 400 202 200");
}

#[test]
fn consistency_same_series_in_two_groups() {
    let mut p = Pair::start(&[]);
    // Both end up as m{instance="",job="j",x="1",y="2"}.
    p.put("/metrics/job/j/x/1", "m{y=\"2\"} 1\n");
    p.put("/metrics/job/j/y/2", "m{x=\"1\"} 1\n");
    p.put("/metrics/job/j/y/2", "m{x=\"3\"} 1\n");
    p.post("/metrics/job/j/x/1", "m{y=\"3\"} 1\n");
    p.expect_answers("200 400 200x2");
}

#[test]
fn consistency_suffix_collisions() {
    let mut p = Pair::start(&[]);
    p.put(
        "/metrics/job/a",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n",
    );
    p.put("/metrics/job/b", "s_count 5\n");
    p.put("/metrics/job/b", "s_sum 5\n");
    p.put("/metrics/job/b", "# TYPE s_count gauge\ns_count 5\n");
    p.put(
        "/metrics/job/c",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    );
    p.put("/metrics/job/d", "h_bucket{le=\"1\"} 1\n");
    p.put("/metrics/job/d", "h_count 1\n");
    // Reverse order: the plain name first, then the summary.
    p.put("/metrics/job/e", "t_count 1\n");
    p.put("/metrics/job/f", "# TYPE t summary\nt_sum 1\nt_count 1\n");
    // Within one push.
    p.put("/metrics/job/g", "# TYPE x gauge\nx 1\nx_count 2\n");
    p.put(
        "/metrics/job/g",
        "# TYPE y summary\ny_count 1\n# TYPE y_sum gauge\ny_sum 2\n",
    );
    p.expect_answers("200 400x3 200 400x2 200 400 200 400");
}

#[test]
fn consistency_help_differs_is_tolerated() {
    let mut p = Pair::start(&[]);
    // Which of the HELP strings wins is not specified.
    p.ignore_help.push("hm");
    p.put("/metrics/job/a", "# HELP hm First help.\nhm{v=\"a\"} 1\n");
    p.put("/metrics/job/b", "# HELP hm Second help.\nhm{v=\"b\"} 1\n");
    p.put("/metrics/job/c", "hm{v=\"c\"} 1\n");
    p.put(
        "/metrics/job/d",
        "# TYPE hm untyped\n# HELP hm Third help.\nhm{v=\"d\"} 1\n",
    );
    p.post(
        "/metrics/job/a",
        "# HELP hm First help, changed.\nhm{v=\"a\"} 2\n",
    );
    // Whichever wins, it must be one of those still pushed (group c has none).
    let scrape = Exposition::parse(&p.ours.get("/metrics").text()).expect("ours scrape parses");
    let help = scrape.family("hm").map(|f| f.help.clone());
    let allowed = [
        None,
        Some("First help, changed."),
        Some("Second help."),
        Some("Third help."),
    ];
    assert!(
        help.as_ref()
            .is_some_and(|h| allowed.contains(&h.as_deref())),
        "HELP of hm is {help:?}, expected one of {allowed:?}"
    );
    p.expect_answers("200x5");
}

/// Pushes that collide with the gateway's own metrics. The usual scrape
/// comparison cannot see their outcome: it leaves out `pushgateway_*`
/// families and reduces push times to zero or nonzero. So this scenario
/// looks at both itself.
#[test]
fn consistency_with_own_metrics() {
    let mut p = Pair::start(&[]);
    // A counter or untyped `pushgateway_build_info` clashes with the
    // gateway's own gauge and is refused; a gauge joins the family.
    p.put(
        "/metrics/job/own",
        "# TYPE pushgateway_build_info counter\npushgateway_build_info 1\n",
    );
    p.put("/metrics/job/own", "pushgateway_build_info 1\n");
    p.put(
        "/metrics/job/own_info",
        "# TYPE pushgateway_build_info gauge\npushgateway_build_info 2\n",
    );
    // Another name under the gateway's prefix is an ordinary pushed family.
    p.put("/metrics/job/own_custom", "pushgateway_custom_thing 3\n");
    assert_pushed_own_series(
        &p,
        &[
            "pushgateway_build_info{instance=\"\",job=\"own_info\"} 2",
            "pushgateway_custom_thing{instance=\"\",job=\"own_custom\"} 3",
        ],
    );
    // Pushed push time gauges are overridden by the gateway's own.
    p.put("/metrics/job/own", "push_time_seconds 5\n");
    assert_push_time_is_now(&p, "own");
    p.put(
        "/metrics/job/own",
        "# TYPE push_time_seconds counter\npush_time_seconds 5\n",
    );
    assert_push_time_is_now(&p, "own");
    p.put(
        "/metrics/job/own2",
        "push_failure_time_seconds{x=\"1\"} 5\n",
    );
    assert_push_time_is_now(&p, "own2");
    p.expect_answers("400x2 200x5");
}

/// The reference rewrites the HELP of pushed families named like its
/// metrics that exist at start-up (`pushgateway_build_info`), but checks
/// it for those that appear with the first request (its request counter
/// and push summaries): those need the gateway's own HELP.
#[test]
fn help_of_families_named_like_the_gateways_request_metrics() {
    let mut p = Pair::start(&[]);
    // A first request, so that the reference's request counter exists.
    p.put("/metrics/job/warm", "warm 1\n");
    let counter = "pushgateway_http_requests_total";
    let own_help = "Total HTTP requests processed by the Pushgateway, excluding scrapes.";
    p.put(
        "/metrics/job/own",
        format!("# TYPE {counter} counter\n{counter} 1\n"),
    );
    p.put(
        "/metrics/job/own",
        format!("# HELP {counter} other\n# TYPE {counter} counter\n{counter} 1\n"),
    );
    p.put(
        "/metrics/job/own",
        format!("# HELP {counter} {own_help}\n# TYPE {counter} counter\n{counter} 1\n"),
    );
    p.put(
        "/metrics/job/own2",
        "# HELP pushgateway_build_info other\n# TYPE pushgateway_build_info gauge\npushgateway_build_info 1\n",
    );
    p.expect_answers("200 400x2 200x2");
}

/// Requires the pushed series (those with a `job` label) of the
/// `pushgateway_*` families to be `want` on both servers, and the
/// gateway's own `pushgateway_build_info` series to stay alone beside them.
fn assert_pushed_own_series(p: &Pair, want: &[&str]) {
    for (who, gw) in [("reference", &p.reference), ("ours", &p.ours)] {
        let scrape = Exposition::parse(&gw.get(&p.metrics_path).text())
            .unwrap_or_else(|e| panic!("{who} scrape does not parse: {e}"));
        let mut pushed = Vec::new();
        let mut own_build_info = 0;
        for f in scrape
            .families
            .iter()
            .filter(|f| f.name.starts_with("pushgateway_"))
        {
            for s in &f.samples {
                if !s.labels.iter().any(|(k, _)| k == "job") {
                    own_build_info += usize::from(f.name == "pushgateway_build_info");
                    continue;
                }
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                let value: f64 = s.value.parse().expect("a number");
                pushed.push(format!("{}{{{}}} {value}", s.name, labels.join(",")));
            }
        }
        pushed.sort();
        assert_eq!(
            pushed, want,
            "{who}: pushed series of pushgateway_* families"
        );
        assert_eq!(
            own_build_info, 1,
            "{who}: its own pushgateway_build_info series"
        );
    }
}

/// Requires `push_time_seconds` of group `job` to be the time of the last
/// push on both servers, give or take ten minutes (the same clock), and
/// not the value 5 a pusher tried to set.
fn assert_push_time_is_now(p: &Pair, job: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    for (who, gw) in [("reference", &p.reference), ("ours", &p.ours)] {
        let text = gw.get(&p.metrics_path).text();
        let scrape =
            Exposition::parse(&text).unwrap_or_else(|e| panic!("{who} scrape does not parse: {e}"));
        let values: Vec<f64> = scrape
            .family("push_time_seconds")
            .into_iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.labels.iter().any(|(k, v)| k == "job" && v == job))
            .map(|s| s.value.parse().expect("a number"))
            .collect();
        assert!(
            values.len() == 1 && (values[0] - now).abs() < 600.0,
            "{who}: push_time_seconds of job {job} is {values:?}, not the push's time (about {now})\n{text}"
        );
    }
}

#[test]
fn disable_consistency_check() {
    let mut p = Pair::start(&["--push.disable-consistency-check"]);
    p.put("/metrics/job/a", "# TYPE c counter\nc 1\n");
    p.post("/metrics/job/a", "d 1\n");
    p.put("/metrics/job/b", "e{x=\"1\"} 1\n");
    p.put("/metrics/job/b", "1bad 1\n");
    p.put("/metrics/job/b/__x/y", "e 1\n");
    p.delete("/metrics/job/a");
    p.delete("/metrics/job/nope");
    // The one rule left: a timestamped push is 202, stored nowhere, and
    // recorded as the group's failure.
    p.put("/metrics/job/ts", "m 1 1700000000000\n");
    p.put("/metrics/job/b", "n 1 1700000000000\n");
    // Accepted without checking; the scrape afterwards is not compared.
    p.send(
        "PUT",
        "/metrics/job/c",
        &[],
        b"# TYPE e gauge\ne{x=\"1\"} 1\n",
    );
    p.expect_answers("202x3 400x2 202x5");
}

// ---------------------------------------------------------------------------
// Other endpoints, flags and encodings
// ---------------------------------------------------------------------------

#[test]
fn not_found_and_method_not_allowed() {
    let mut p = Pair::start(&[]);
    p.statuses(&[
        ("GET", "/nope"),
        ("GET", "/metrics/job/foo"),
        ("HEAD", "/metrics/job/foo"),
        ("PATCH", "/metrics/job/foo"),
        ("PUT", "/metrics"),
        ("POST", "/metrics"),
        ("DELETE", "/metrics"),
        ("PUT", "/metrics/job"),
        ("POST", "/-/healthy"),
        ("GET", "/-/healthy"),
        ("GET", "/-/ready"),
        ("PUT", "/-/quit"),
        ("POST", "/-/quit"),
        ("GET", "/-/quit"),
        ("GET", "/"),
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/metrics"),
        ("PUT", "/api/v1/admin/wipe"),
        ("GET", "/api/v1/nope"),
    ]);
    p.check_metrics();
    p.expect_answers("404 405x6 404 405 200x2 403x2 405 200x3 404x2");
}

/// Plain-text answers byte for byte (no added newline on `OK`, Go's
/// `http.Error` newline on 404 and 405), and `pushgateway_http_requests_total`
/// with the reference's handler labels after a mix of requests: what is
/// counted (push, delete, status, the API, wipe, health) and what is not
/// (scrapes, `/-/quit`, the router's own answers).
#[test]
fn plain_text_answers_and_request_counts() {
    let mut p = Pair::start(&["--web.enable-admin-api"]);
    // (method, path, body, compare the answer's bytes)
    let requests: [(&str, &str, &str, bool); 20] = [
        ("GET", "/-/healthy", "", true),
        ("GET", "/-/ready", "", true),
        ("GET", "/nope", "", true),
        ("POST", "/metrics", "", true),
        ("PATCH", "/metrics/job/a", "", true),
        ("GET", "/-/quit", "", true),
        ("PUT", "/-/quit", "", true),
        ("POST", "/-/quit", "", true),
        ("PUT", "/metrics/job/a", "m 1\n", true),
        ("POST", "/metrics/job/a", "n 2\n", true),
        ("PUT", "/metrics/job/a", "bad line here\n", false),
        ("PUT", "/metrics/job/b/odd", "m 1\n", false),
        ("DELETE", "/metrics/job/a", "", true),
        ("OPTIONS", "/api/v1/status", "", true),
        ("GET", "/api/v1/status", "", false),
        ("GET", "/api/v1/metrics", "", false),
        ("GET", "/", "", false),
        ("GET", "/metrics", "", false),
        ("PUT", "/api/v1/admin/wipe", "", true),
        ("OPTIONS", "/metrics/job/a", "", true),
    ];
    for (method, path, body, bytes) in requests {
        let (r, o) = p.send(method, path, &[], body.as_bytes());
        if bytes && r.body != o.body {
            p.fail(format!(
                "{method} {path}: bodies differ\nreference: {:?}\nours:      {:?}",
                r.text(),
                o.text()
            ));
        }
    }
    let counts = |gw: &Gateway| -> Vec<String> {
        let mut lines: Vec<String> = gw
            .get("/metrics")
            .text()
            .lines()
            .filter(|l| l.starts_with("pushgateway_http_requests_total{"))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    // The reference counts after answering: let it settle.
    let deadline = Instant::now() + SETTLE_TIME;
    loop {
        let (r, o) = (counts(&p.reference), counts(&p.ours));
        if r == o {
            assert!(r.len() >= 8, "the requests were counted: {r:?}");
            break;
        }
        if Instant::now() > deadline {
            p.fail(format!(
                "pushgateway_http_requests_total differs\nreference:\n{}\nours:\n{}",
                r.join("\n"),
                o.join("\n")
            ));
            break;
        }
        thread::sleep(SETTLE_POLL);
    }
    p.expect_answers("200x2 404 405x3 403x2 200x2 400x2 202 200x5 202 200");
}

/// A protobuf metric without the value its family's type needs is a
/// consistency failure in the reference: 400, and the group's failure
/// time is recorded.
#[test]
fn protobuf_value_of_the_wrong_kind() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job/wk", "other 1\n");
    // MetricFamily{name:"x", type:GAUGE, metric:[{counter:{value:1}}]}
    let mut family = vec![0x0a, 0x01, b'x', 0x18, 0x01, 0x22, 0x0b, 0x1a, 0x09, 0x09];
    family.extend_from_slice(&1.0f64.to_le_bytes());
    let mut body = vec![family.len() as u8];
    body.extend_from_slice(&family);
    p.step_with(
        "PUT",
        "/metrics/job/wk",
        &[("Content-Type", PROTO_CT)],
        &body,
    );
    p.step_with(
        "POST",
        "/metrics/job/new",
        &[("Content-Type", PROTO_CT)],
        &body,
    );
    p.expect_answers("200 400x2");
}

/// A protobuf label name the text format would refuse is, like a value of
/// the wrong kind, a consistency failure in the reference: 400, and the
/// group's failure time is recorded (a zero push time beside it).
#[test]
fn protobuf_invalid_label_name_records_a_failure() {
    let mut p = Pair::start(&[]);
    let bad = proto_family("g", "", 1, &[(&[("1bad", "x")], 1.0)]);
    p.step_with("PUT", "/metrics/job/c", &[("Content-Type", PROTO_CT)], &bad);
    p.check_metrics();
    p.expect_answers("400");
}

#[test]
fn lifecycle_quit() {
    let mut p = Pair::start(&["--web.enable-lifecycle"]);
    p.status("GET", "/-/quit");
    p.status("PUT", "/-/quit");
    let timeout = Duration::from_secs(10);
    assert!(
        p.reference.wait_exit(timeout).is_some(),
        "reference still running after /-/quit"
    );
    assert!(
        p.ours.wait_exit(timeout).is_some(),
        "ours still running after /-/quit"
    );
    p.expect_answers("405 200");
}

#[test]
fn admin_wipe() {
    let mut p = Pair::start(&["--web.enable-admin-api"]);
    p.put("/metrics/job/a", "m 1\n");
    p.put("/metrics/job/b/instance/i", "n 1\n");
    p.step("PUT", "/api/v1/admin/wipe", b"");
    p.put("/metrics/job/c", "m 2\n");
    p.expect_answers("200x2 202 200");
}

#[test]
fn route_prefix_and_telemetry_path() {
    let mut p = Pair::start(&["--web.route-prefix=/pg", "--web.telemetry-path=/m"]);
    p.put("/pg/metrics/job/j", "a 1\n");
    p.post("/pg/metrics/job/j/instance/i", "b 2\n");
    p.statuses(&[
        ("PUT", "/metrics/job/j"),
        ("GET", "/metrics"),
        ("GET", "/m"),
        ("GET", "/pg/metrics"),
        ("GET", "/pg/-/healthy"),
        ("GET", "/pg/-/ready"),
        ("GET", "/-/healthy"),
        ("GET", "/"),
    ]);
    p.delete("/pg/metrics/job/j");
    p.expect_answers("200x2 404x4 200x2 404x2 202");
}

/// The scrape must be served as text 0.0.4 whatever Prometheus asks for
/// first (see SPEC: OpenMetrics would rename counters).
#[test]
fn scrape_content_type() {
    let mut p = Pair::start(&[]);
    p.put("/metrics/job/ct", "# TYPE c counter\nc 1\n");
    for accept in [
        None,
        Some("text/plain"),
        Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let (r, o) = p.send("GET", "/metrics", &headers, b"");
        let (rt, ot) = (
            r.header("Content-Type"),
            without_escaping(o.header("Content-Type")),
        );
        if rt != ot.as_deref() {
            p.fail(format!(
                "Content-Type differs for Accept {accept:?}: reference {rt:?}, ours {ot:?}"
            ));
            continue;
        }
        let re = Exposition::normalized(&r.text()).expect("reference scrape parses");
        let oe = Exposition::normalized(&o.text()).expect("ours scrape parses");
        let diff = support::diff_expositions("reference", &re, "ours", &oe);
        if !diff.is_empty() {
            p.fail(format!("scrapes differ for Accept {accept:?}\n{diff}"));
        }
    }
    // Binary answers: only the negotiated headers are compared here.
    for headers in [
        [("Accept", PROTO_CT), ("Accept-Encoding", "identity")],
        [("Accept", "text/plain"), ("Accept-Encoding", "gzip")],
        [("Accept", PROTO_CT), ("Accept-Encoding", "gzip, deflate")],
    ] {
        let (r, o) = p.send("GET", "/metrics", &headers, b"");
        for name in ["Content-Type", "Content-Encoding"] {
            let (rh, oh) = (r.header(name), without_escaping(o.header(name)));
            if rh != oh.as_deref() {
                p.fail(format!(
                    "{name} differs for request headers {headers:?}: reference {rh:?}, ours {oh:?}"
                ));
            }
        }
    }
    p.expect_answers("200x7");
}

/// 1.11 names the escaping scheme in a scrape's Content-Type and 1.5.1
/// does not: ours must say `escaping=underscores` (the default), and
/// without it must equal the reference's.
fn without_escaping(ct: Option<&str>) -> Option<String> {
    let ct = ct?;
    if !ct.starts_with("text/plain") && !ct.starts_with("application/vnd.google.protobuf") {
        return Some(ct.to_owned());
    }
    match ct.strip_suffix("; escaping=underscores") {
        Some(rest) => Some(rest.to_owned()),
        None => Some(format!("{ct} (without escaping=underscores)")),
    }
}

/// Byte-for-byte comparison of the pushed part of the scrape: float
/// spelling, label and series order, escaping, added `+Inf` buckets.
#[test]
fn exposition_bytes() {
    let mut p = Pair::start(&[]);
    p.put(
        "/metrics/job/bytes/instance/i",
        "# HELP z Last family.\n# TYPE z gauge\nz{b=\"2\",a=\"1\"} 1e+06\nz{a=\"0\"} 0.1\nz{a=\"10\"} -0\nz{a=\"9\"} 123456789\n\
         # HELP a First family with \\\\ and \\n.\n# TYPE a counter\na{v=\"q\\\"\\\\\\n\"} 2398.283\n\
         # TYPE s summary\ns{quantile=\"0.99\"} 3\ns{quantile=\"0.5\"} 1e-7\ns_sum 1.5e+300\ns_count 7\n\
         # TYPE h histogram\nh_bucket{le=\"10\"} 2\nh_bucket{le=\"0.5\"} 1\nh_sum NaN\nh_count 3\n\
         u +Inf\nu2 -Inf\n",
    );
    p.put(
        "/metrics/job/bytes/instance/j",
        "# HELP z Last family.\n# TYPE z gauge\nz{a=\"1\"} 5\n",
    );
    let r = p.reference.get("/metrics").text();
    let o = p.ours.get("/metrics").text();
    let (r, o) = (
        support::strip_internal(&r, true),
        support::strip_internal(&o, true),
    );
    // Within a family, ours writes series group by group (see
    // gateway/render.rs), the reference sorts the family as a whole: the
    // same lines, in another order only across groups. So compare the
    // bytes with each family's lines sorted, and each group's own lines in
    // their order.
    assert_eq!(
        lines_sorted_per_family(&r),
        lines_sorted_per_family(&o),
        "pushed part of the scrape differs byte-wise (left: reference, right: ours)"
    );
    for group in ["instance=\"i\"", "instance=\"j\""] {
        let of = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.contains(group))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(of(&r), of(&o), "lines of the group with {group} in order");
    }
    p.expect_answers("200x2");
}

/// `text` with each family's sample lines sorted (headers kept in place).
fn lines_sorted_per_family(text: &str) -> String {
    let mut out = String::new();
    let mut block: Vec<&str> = Vec::new();
    let flush = |block: &mut Vec<&str>, out: &mut String| {
        block.sort();
        for l in block.drain(..) {
            out.push_str(l);
            out.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut block, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            block.push(line);
        }
    }
    flush(&mut block, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Request body encodings
// ---------------------------------------------------------------------------

/// Wraps `data` in a gzip member using stored (uncompressed) deflate
/// blocks: valid gzip that needs no compression library.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = u8::from(chunks.peek().is_none());
        let len = u16::try_from(chunk.len()).expect("chunks are at most 0xffff bytes");
        out.push(last);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    let size = u32::try_from(data.len() % (1 << 32)).expect("reduced modulo 2^32");
    out.extend_from_slice(&size.to_le_bytes());
    out
}

/// CRC-32 (IEEE), bitwise; bodies here are tiny.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn gzip_request_body() {
    let mut p = Pair::start(&[]);
    let body = gzip_stored(b"# TYPE gz gauge\ngz{a=\"1\"} 3\n");
    p.send(
        "PUT",
        "/metrics/job/gz",
        &[("Content-Encoding", "gzip")],
        &body,
    );
    p.check_metrics();
    p.send(
        "POST",
        "/metrics/job/gz",
        &[("Content-Encoding", "gzip")],
        &gzip_stored(b"gz2 1\n"),
    );
    p.check_metrics();
    p.send(
        "PUT",
        "/metrics/job/gz",
        &[("Content-Encoding", "gzip")],
        b"not gzip at all\n",
    );
    p.check_metrics();
    p.expect_answers("200x2 400");
}

const PROTO_CT: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(u8::try_from(v & 0x7f).expect("masked to 7 bits") | 0x80);
        v >>= 7;
    }
    out.push(u8::try_from(v).expect("below 0x80"));
}

/// Appends a length-delimited field.
fn field_bytes(num: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(num << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// Appends a double field.
fn field_f64(num: u64, v: f64, out: &mut Vec<u8>) {
    varint(num << 3 | 1, out);
    out.extend_from_slice(&v.to_le_bytes());
}

/// One delimited `MetricFamily` of a simple type (0 counter, 1 gauge,
/// 3 untyped) with one metric per (labels, value); the value message goes in
/// field 3, 2 or 5 of `Metric` respectively.
fn proto_family(name: &str, help: &str, kind: u64, metrics: &[(&[(&str, &str)], f64)]) -> Vec<u8> {
    let value_field = match kind {
        0 => 3,
        1 => 2,
        _ => 5,
    };
    let mut mf = Vec::new();
    field_bytes(1, name.as_bytes(), &mut mf);
    if !help.is_empty() {
        field_bytes(2, help.as_bytes(), &mut mf);
    }
    varint(3 << 3, &mut mf);
    varint(kind, &mut mf);
    for (labels, value) in metrics {
        let mut m = Vec::new();
        for (k, v) in *labels {
            let mut pair = Vec::new();
            field_bytes(1, k.as_bytes(), &mut pair);
            field_bytes(2, v.as_bytes(), &mut pair);
            field_bytes(1, &pair, &mut m);
        }
        let mut val = Vec::new();
        field_f64(1, *value, &mut val);
        field_bytes(value_field, &val, &mut m);
        field_bytes(4, &m, &mut mf);
    }
    let mut out = Vec::new();
    varint(mf.len() as u64, &mut out);
    out.extend_from_slice(&mf);
    out
}

#[test]
fn protobuf_request_body() {
    let mut p = Pair::start(&[]);
    let mut body = proto_family(
        "pb_counter",
        "A counter.",
        0,
        &[(&[("a", "1")], 5.0), (&[("a", "2")], 6.0)],
    );
    body.extend(proto_family("pb_gauge", "", 1, &[(&[], -2.5)]));
    body.extend(proto_family(
        "pb_untyped",
        "Untyped.",
        3,
        &[(&[("job", "overridden")], 1.0)],
    ));
    p.send(
        "PUT",
        "/metrics/job/pb",
        &[("Content-Type", PROTO_CT)],
        &body,
    );
    p.check_metrics();
    let more = proto_family("pb_gauge", "Now with help.", 1, &[(&[("b", "x")], 7.0)]);
    p.send(
        "POST",
        "/metrics/job/pb",
        &[("Content-Type", PROTO_CT)],
        &more,
    );
    p.check_metrics();
    // Truncated message.
    p.send(
        "PUT",
        "/metrics/job/pb",
        &[("Content-Type", PROTO_CT)],
        &body[..body.len() - 3],
    );
    p.check_metrics();
    // Same bytes without the protobuf content type are parsed as text.
    p.send("PUT", "/metrics/job/pb2", &[], &more);
    p.check_metrics();
    p.expect_answers("200x2 400x2");
}

/// Exemplars and created timestamps survive a protobuf push and come back
/// in protobuf scrapes, as in the reference, which keeps client_model
/// messages whole. Text scrapes show neither, in both.
#[test]
fn protobuf_exemplars_and_created_timestamps() {
    let mut p = Pair::start(&[]);
    let body = body_with_extras();
    p.send(
        "PUT",
        "/metrics/job/ex",
        &[("Content-Type", PROTO_CT)],
        &body,
    );
    p.check_metrics();
    let (raw, reference) = protobuf_scrape(&p.reference);
    let (_, ours) = protobuf_scrape(&p.ours);
    for trace in ["c0ffee", "b0", "b2", "n0"] {
        let found = raw.windows(trace.len()).any(|w| w == trace.as_bytes());
        assert!(
            found,
            "the reference's scrape lacks exemplar {trace}: the test pushes nothing"
        );
    }
    assert!(reference.contains("created: Some"), "{reference}");
    assert_eq!(
        ours, reference,
        "protobuf scrapes differ (left ours, right the reference)"
    );
    // A POST of another family leaves the extras of the others in place.
    p.send("POST", "/metrics/job/ex", &[], b"ex_other 1\n");
    p.check_metrics();
    assert_eq!(protobuf_scrape(&p.ours).1, protobuf_scrape(&p.reference).1);
    p.expect_answers("200x2");
}

/// Normalizes an `/api/v1/metrics` answer for comparison: groups sorted by
/// their labels, wall-clock values (`time_stamp`, push-time values) reduced
/// to "set" or "zero". Runs in python3, which has a JSON parser (std Rust
/// has none, and the crate takes no serde).
const NORMALIZE_API: &str = r#"
import json, sys
def norm(doc):
    d = json.loads(doc)
    assert d["status"] == "success", d
    groups = []
    for g in d["data"]:
        out = {}
        for k, v in g.items():
            if isinstance(v, dict) and "metrics" in v:
                v = dict(v)
                v["time_stamp"] = "set" if v["time_stamp"] else "missing"
                if k in ("push_time_seconds", "push_failure_time_seconds"):
                    v["metrics"] = [dict(m, value="zero" if m["value"] == "0" else "set") for m in v["metrics"]]
            out[k] = v
        groups.append(out)
    groups.sort(key=lambda g: json.dumps(g["labels"], sort_keys=True))
    return json.dumps(groups, sort_keys=True, indent=1)
ours, ref = norm(open(sys.argv[1]).read()), norm(open(sys.argv[2]).read())
if ours != ref:
    import difflib
    print("\n".join(difflib.unified_diff(ref.splitlines(), ours.splitlines(), "reference", "ours", lineterm="")))
    sys.exit(1)
"#;

#[test]
fn json_api_matches_the_reference() {
    let mut p = Pair::start(&["--web.enable-admin-api"]);
    p.step("POST", "/metrics/job/some_job", b"second_metric 99\n");
    p.step(
        "PUT",
        "/metrics/job/some_job/instance/some_instance",
        b"# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n# HELP another_metric Just an \"example\" <b>.\n# TYPE another_metric gauge\nanother_metric 2398.283\n\
          # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2.5\ns_count 3\n\
          # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\nspecial{v=\"q\\\"b\\\\s\\nn \xc3\xa9\"} -Inf\n",
    );
    p.step(
        "PUT",
        "/metrics/job/failed",
        b"# TYPE some_metric gauge\nsome_metric 1\n",
    );
    p.step("PUT", "/metrics/job@base64/L3Zhci90bXA/empty@base64/=", b"");
    let dir = std::env::temp_dir().join(format!("pushgateway-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ours_file, ref_file) = (dir.join("ours.json"), dir.join("reference.json"));
    std::fs::write(&ours_file, p.ours.get("/api/v1/metrics").body).expect("write");
    std::fs::write(&ref_file, p.reference.get("/api/v1/metrics").body).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-c", NORMALIZE_API])
        .arg(&ours_file)
        .arg(&ref_file)
        .output()
        .expect("run python3");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "/api/v1/metrics differs from the reference:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    p.expect_answers("200x2 400 200");
}

/// The API's CORS headers, on answers and on preflights anywhere under
/// `/api/v1/`, are the reference's.
#[test]
fn api_cors_headers_match_the_reference() {
    let p = Pair::start(&[]);
    let cors = |r: &Response| {
        [
            "Access-Control-Allow-Headers",
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Origin",
            "Access-Control-Expose-Headers",
            "Cache-Control",
        ]
        .map(|h| format!("{h}: {:?}", r.header(h)))
        .join("\n")
    };
    for (method, path) in [
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/metrics"),
        ("OPTIONS", "/api/v1/status"),
        ("OPTIONS", "/api/v1/anything"),
    ] {
        let ours = p.ours.request(method, path, &[], b"");
        let reference = p.reference.request(method, path, &[], b"");
        // Served, not refused alike (a wrong path is 404 on both).
        assert_eq!(reference.status, 200, "{method} {path}");
        assert_eq!(ours.status, reference.status, "{method} {path}");
        assert_eq!(cors(&ours), cors(&reference), "{method} {path}");
        assert!(ours.header("Access-Control-Allow-Origin").is_some());
    }
}

/// Malformed and unusual requests, sent as raw bytes on a fresh connection
/// to both servers: the status line must agree. The cases are those where
/// Go's answer did not change between the reference's Go (1.19) and the
/// Go that builds upstream 1.11 (docs/http.md lists the few that
/// did and what we answer there).
#[test]
fn malformed_requests_get_the_references_status() {
    use support::raw;
    let big_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2 << 20));
    let big_header = format!(
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2 << 20)
    );
    let push = |extra: &str, body: &str| {
        format!("PUT /metrics/job/x HTTP/1.1\r\nHost: x\r\n{extra}\r\n{body}")
    };
    let cases: Vec<(&str, String)> =
        vec![
        ("CL 4, 4", push("Content-Length: 4, 4\r\n", "a 1\n")),
        ("CL -1", push("Content-Length: -1\r\n", "a 1\n")),
        ("CL 4.0", push("Content-Length: 4.0\r\n", "a 1\n")),
        ("CL 0x4", push("Content-Length: 0x4\r\n", "a 1\n")),
        ("CL +4", push("Content-Length: +4\r\n", "a 1\n")),
        ("CL overflow", push("Content-Length: 99999999999999999999\r\n", "a 1\n")),
        ("CL 4 and 5", push("Content-Length: 4\r\nContent-Length: 5\r\n", "a 1\n")),
        ("CL 4 and 4", push("Content-Length: 4\r\nContent-Length: 4\r\n", "a 1\n")),
        (
            "CL beside chunked",
            push(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "4\r\na 1\n\r\n0\r\n\r\n",
            ),
        ),
        ("TE identity", push("Transfer-Encoding: identity\r\n", "")),
        ("TE gzip, chunked", push("Transfer-Encoding: gzip, chunked\r\n", "")),
        (
            "TE twice",
            push("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", ""),
        ),
        (
            "TE CHUNKED with extension",
            push("Transfer-Encoding: CHUNKED\r\n", "4;x=y\r\na 1\n\r\n0\r\nT: 1\r\n\r\n"),
        ),
        ("2 MiB request line", big_line),
        ("2 MiB header", big_header),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n".into()),
        ("HTTP/0.9", "GET / HTTP/0.9\r\nHost: x\r\n\r\n".into()),
        ("HTTP/1.2", "GET /-/healthy HTTP/1.2\r\nHost: x\r\n\r\n".into()),
        ("FOO/1.1", "GET / FOO/1.1\r\nHost: x\r\n\r\n".into()),
        ("junk before HTTP/1.0", "0 $00 HTTP/1 HTTP/1.0\n\n".into()),
        ("junk before HTTP/1.5", "GET / x HTTP/1.5\r\nHost: x\r\n\r\n".into()),
        ("PRI preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".into()),
        ("no Host", "GET /-/healthy HTTP/1.1\r\n\r\n".into()),
        ("two Hosts", "GET /-/healthy HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n".into()),
        ("Host a/b", "GET /-/healthy HTTP/1.1\r\nHost: a/b\r\n\r\n".into()),
        ("HTTP/1.0 no Host", "GET /-/healthy HTTP/1.0\r\n\r\n".into()),
        ("bare LF", "GET /-/healthy HTTP/1.1\nHost: x\n\n".into()),
        ("Host : x", "GET /-/healthy HTTP/1.1\r\nHost : x\r\n\r\n".into()),
        ("no colon", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n".into()),
        ("NUL in value", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n".into()),
        ("DEL in value", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n".into()),
        ("name X(a)", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-(a): b\r\n\r\n".into()),
        ("UTF-8 value", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-A: caf\u{e9}\r\n\r\n".into()),
        ("Expect: foo", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n".into()),
        ("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        ("GET *", "GET * HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        ("HEAD", "HEAD /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        ("lowercase method", "get /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        ("absolute form", "GET http://x/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        ("no leading slash", "GET -/healthy HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        ("bad escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n".into()),
        (
            "CRLF in a redirect",
            "GET /x%0d%0aSet-Cookie:%20a=b/./ HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        ),
        (
            "huge CL on a GET",
            "GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n".into(),
        ),
        (
            "Expect 100-continue on HTTP/1.0",
            "PUT /metrics/job/x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\na 1\n"
                .into(),
        ),
    ];
    let reference = Gateway::start(&support::reference(), &[]);
    let ours = Gateway::start(&under_test(), &[]);
    let status = |port: u16, bytes: &[u8]| {
        let mut c = raw::connect(port);
        let _ = c.send(bytes);
        match c.read_response_for(Duration::from_secs(5), bytes.starts_with(b"HEAD")) {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("no answer ({e:?})"),
        }
    };
    let mut mismatches = Vec::new();
    for (what, bytes) in &cases {
        let want = status(reference.port, bytes.as_bytes());
        let got = status(ours.port, bytes.as_bytes());
        if std::env::var_os("CONFORMANCE_TRACE").is_some() {
            println!("{what}: reference {want}, ours {got}");
        }
        if want != got {
            mismatches.push(format!("{what}: reference {want}, ours {got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
