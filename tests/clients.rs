//! Real client libraries pushing to our gateway and to the reference, the
//! scrapes of both compared after every step: Python's `prometheus_client`,
//! Go's `client_golang` push package (delimited protobuf, the text format,
//! exemplars, native histograms) and Node's `prom-client` (chunked bodies
//! on keep-alive connections).
//!
//! `make deps` installs what they need: `prometheus_client` (pip),
//! `prom-client` (npm, into tests/node), and Go with Debian's client_golang
//! source (golang-go, golang-github-prometheus-client-golang-dev). The Go
//! program, tests/go/main.go, is built offline in GOPATH mode against
//! /usr/share/gocode into cargo's temporary directory. A missing tool or
//! library fails the test with the command that installs it; nothing is
//! skipped. Everything listens on 127.0.0.1.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::go::go_client;
use support::{Exposition, Gateway, diff_expositions, ours, reference};

/// Both gateways, fresh and in memory.
fn both() -> (Gateway, Gateway) {
    (
        Gateway::start(&ours(), &[]),
        Gateway::start(&reference(), &[]),
    )
}

fn url(gw: &Gateway) -> String {
    format!("http://127.0.0.1:{}", gw.port)
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Compares the normalized text scrapes (pushed families only, push times
/// as zero/nonzero) of both gateways and returns ours.
fn assert_same_scrapes(ours_gw: &Gateway, ref_gw: &Gateway, when: &str) -> Exposition {
    let ours_x = Exposition::normalized(&ours_gw.get("/metrics").text())
        .unwrap_or_else(|e| panic!("{when}: parse our scrape: {e}"));
    let ref_x = Exposition::normalized(&ref_gw.get("/metrics").text())
        .unwrap_or_else(|e| panic!("{when}: parse the reference scrape: {e}"));
    let diff = diff_expositions("ours", &ours_x, "reference", &ref_x);
    assert!(diff.is_empty(), "{when}: text scrapes differ:\n{diff}");
    ours_x
}

/// Lines in `left` missing from `right` and the other way round, for a
/// readable failure message; empty when equal.
fn line_diff(left_name: &str, left: &str, right_name: &str, right: &str) -> String {
    if left == right {
        return String::new();
    }
    let l: Vec<&str> = left.lines().collect();
    let r: Vec<&str> = right.lines().collect();
    let mut out = String::new();
    for line in &l {
        if !r.contains(line) {
            out.push_str(&format!("  only in {left_name}:  {line}\n"));
        }
    }
    for line in &r {
        if !l.contains(line) {
            out.push_str(&format!("  only in {right_name}: {line}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("  (same lines, different order)\n");
    }
    out.push_str(&format!(
        "--- {left_name} ---\n{left}--- {right_name} ---\n{right}"
    ));
    out
}

// ---------------------------------------------------------------- Python

/// Runs a Python script using prometheus_client against `port`.
fn python(port: u16, script: &str) {
    let full = format!(
        "import sys\nfrom prometheus_client import CollectorRegistry, Gauge, Counter, Histogram, Summary\n\
         from prometheus_client import push_to_gateway, pushadd_to_gateway, delete_from_gateway\n\
         GW = '127.0.0.1:{port}'\n{script}"
    );
    // Creation timestamps are wall-clock values that differ between runs.
    let out = Command::new("python3")
        .arg("-c")
        .arg(&full)
        .env("PROMETHEUS_DISABLE_CREATED_SERIES", "True")
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed (pip install prometheus_client, or make deps):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_client_pushes_like_against_the_reference() {
    let (ours_gw, ref_gw) = both();
    let steps = [
        // push_to_gateway: PUT, grouping key value with '/' goes base64.
        "reg = CollectorRegistry()\n\
         g = Gauge('job_last_success_unixtime', 'Last time the batch job succeeded.', registry=reg)\n\
         g.set(1234567890.5)\n\
         c = Counter('records_processed', 'Records processed.', ['kind'], registry=reg)\n\
         c.labels('a').inc(3)\n\
         h = Histogram('duration_seconds', 'Duration.', registry=reg, buckets=(0.1, 1.0))\n\
         h.observe(0.5)\n\
         s = Summary('size_bytes', 'Size.', registry=reg)\n\
         s.observe(42)\n\
         push_to_gateway(GW, job='batch', registry=reg, grouping_key={'path': '/var/tmp', 'instance': 'x'})\n",
        // pushadd_to_gateway: POST, replaces only the pushed families.
        "reg = CollectorRegistry()\n\
         g = Gauge('job_last_success_unixtime', 'Last time the batch job succeeded.', registry=reg)\n\
         g.set(1234567999)\n\
         pushadd_to_gateway(GW, job='batch', registry=reg, grouping_key={'path': '/var/tmp', 'instance': 'x'})\n\
         reg2 = CollectorRegistry()\n\
         Gauge('other', 'Other job.', registry=reg2).set(7)\n\
         push_to_gateway(GW, job='other/job', registry=reg2)\n",
        // delete_from_gateway: DELETE of exactly that group.
        "delete_from_gateway(GW, job='other/job')\n",
    ];
    for (i, step) in steps.iter().enumerate() {
        python(ours_gw.port, step);
        python(ref_gw.port, step);
        assert_same_scrapes(&ours_gw, &ref_gw, &format!("after python step {i}"));
        if i == 0 {
            let text = ours_gw.get("/metrics").text();
            assert!(
                text.contains("job_last_success_unixtime{instance=\"x\",job=\"batch\",path=\"/var/tmp\"} 1.2345678905e+09"),
                "{text}"
            );
        }
    }
}

/// prometheus_client's OpenMetrics exposition, pushed as it is: its
/// exemplars reach protobuf scrapes (the reference reads no OpenMetrics,
/// so there is nothing to compare with).
#[test]
fn python_openmetrics_exposition_pushes_with_its_exemplars() {
    use pushgateway::wire::protobuf;
    let gw = Gateway::start(&ours(), &[]);
    python(
        gw.port,
        "import urllib.request, urllib.error\n\
         from prometheus_client.openmetrics.exposition import generate_latest\n\
         reg = CollectorRegistry()\n\
         c = Counter('om_py_jobs', 'Jobs done.', registry=reg)\n\
         c.inc(exemplar={'trace_id': 'abc'})\n\
         h = Histogram('om_py_seconds', 'Latency.', registry=reg, buckets=(0.1, 1.0))\n\
         h.observe(0.5, exemplar={'trace_id': 'def'})\n\
         req = urllib.request.Request('http://' + GW + '/metrics/job/py', data=generate_latest(reg),\n\
             method='PUT', headers={'Content-Type': 'application/openmetrics-text; version=1.0.0; charset=utf-8'})\n\
         try: urllib.request.urlopen(req)\n\
         except urllib.error.HTTPError as e: sys.exit('push refused: %d %s' % (e.code, e.read().decode()))\n",
    );
    let r = gw.request(
        "GET",
        "/metrics",
        &[("Accept", protobuf::CONTENT_TYPE)],
        b"",
    );
    let families = protobuf::decode(&r.body).expect("our protobuf scrape decodes");
    let family = |name: &str| {
        families
            .iter()
            .find(|f| &*f.name == name)
            .unwrap_or_else(|| panic!("no {name} in {families:?}"))
    };
    let extra = |name: &str| {
        family(name).metrics[0]
            .extra
            .clone()
            .unwrap_or_else(|| panic!("{name} has no exemplar"))
    };
    let counter = extra("om_py_jobs_total");
    let ex = counter.exemplar.as_ref().expect("the counter's exemplar");
    assert_eq!(
        (&*ex.labels[0].name, &*ex.labels[0].value),
        ("trace_id", "abc")
    );
    assert_eq!(ex.value, 1.0);
    assert!(ex.timestamp.is_some(), "prometheus_client stamps exemplars");
    let histogram = extra("om_py_seconds");
    let ex = histogram
        .bucket_exemplar(1)
        .expect("the 1.0 bucket's exemplar");
    assert_eq!((&*ex.labels[0].value, ex.value), ("def", 0.5));
    let text = gw.get("/metrics").text();
    assert!(
        text.contains("om_py_jobs_total{instance=\"\",job=\"py\"} 1"),
        "{text}"
    );
}

// ---------------------------------------------------------------- Go

/// Runs one scenario of the Go program against both gateways (one
/// registry, so both get exactly the same pushes).
fn go(scenario: &str, gateways: &[&Gateway]) {
    let out = Command::new(go_client())
        .arg(scenario)
        .args(gateways.iter().map(|g| url(g)))
        .output()
        .expect("run the Go push program");
    assert!(
        out.status.success(),
        "Go scenario {scenario} failed:\n{}",
        output_text(&out)
    );
}

/// The pushed families of a delimited protobuf scrape as client_golang's
/// expfmt decodes them, in the Go program's canonical text form.
fn go_scrape(gw: &Gateway) -> String {
    let out = Command::new(go_client())
        .arg("scrape")
        .arg(url(gw))
        .output()
        .expect("run the Go scrape");
    assert!(
        out.status.success(),
        "Go protobuf scrape of {} failed:\n{}",
        gw.bin,
        output_text(&out)
    );
    String::from_utf8(out.stdout).expect("UTF-8 scrape dump")
}

/// Compares the protobuf scrapes of both gateways as the Go client sees
/// them; returns ours.
fn assert_same_protobuf_scrapes(ours_gw: &Gateway, ref_gw: &Gateway, when: &str) -> String {
    let ours_pb = go_scrape(ours_gw);
    let ref_pb = go_scrape(ref_gw);
    let diff = line_diff("ours", &ours_pb, "reference", &ref_pb);
    assert!(diff.is_empty(), "{when}: protobuf scrapes differ:\n{diff}");
    ours_pb
}

/// Push (PUT, delimited protobuf), Add (POST), a job name and a grouping
/// value containing '/' (client_golang's `@base64` form) next to an empty
/// grouping value (`@base64/=`) and one `url.QueryEscape`d (a space sent
/// as `+` stays `+`), the text format, Delete: after each, the
/// text scrapes and the Go client's decoding of the protobuf scrapes of
/// both gateways are the same.
#[test]
fn go_client_pushes_like_against_the_reference() {
    let (ours_gw, ref_gw) = both();
    let gws = [&ours_gw, &ref_gw];
    for scenario in ["push", "add", "slash", "text", "delete"] {
        go(scenario, &gws);
        let when = format!("after Go scenario {scenario}");
        let x = assert_same_scrapes(&ours_gw, &ref_gw, &when);
        assert_same_protobuf_scrapes(&ours_gw, &ref_gw, &when);
        // The scenario did what it says (both gateways could be wrong alike).
        let series = |family: &str| -> Vec<String> {
            x.family(family)
                .map(|f| {
                    f.samples
                        .iter()
                        .map(|s| {
                            let labels: Vec<String> =
                                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            format!("{} {}", labels.join(","), s.value)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let text = x.lines().join("\n");
        match scenario {
            "push" => {
                assert_eq!(
                    series("cg_job_last_success_unixtime"),
                    ["instance=x,job=go_batch 1.2345678905e9"],
                    "{text}"
                );
                assert_eq!(series("cg_records_processed_total").len(), 2, "{text}");
                assert_eq!(series("cg_size_bytes").len(), 4, "{text}");
            }
            "add" => {
                assert_eq!(
                    series("cg_job_last_success_unixtime"),
                    ["instance=x,job=go_batch 1.234567999e9"],
                    "{text}"
                );
                assert_eq!(
                    series("cg_records_processed_total").len(),
                    2,
                    "Add keeps the other families: {text}"
                );
                assert_eq!(series("cg_other"), ["instance=,job=go_other 7e0"], "{text}");
            }
            "slash" => assert_eq!(
                series("cg_slashed"),
                ["empty=,instance=,job=go/slashed/job,note=a+b?c&d=é,path=/var/tmp 1.1e1"],
                "{text}"
            ),
            "text" => {
                assert_eq!(
                    series("cg_text_total"),
                    ["instance=t,job=go_text,v=quote\" backslash\\ newline\n 5e0"],
                    "{text}"
                );
                assert_eq!(series("cg_text_seconds").len(), 5, "{text}");
            }
            "delete" => {
                assert!(series("cg_other").is_empty(), "deleted: {text}");
                assert!(
                    !series("push_time_seconds")
                        .iter()
                        .any(|s| s.contains("job=go_other")),
                    "the whole group is gone: {text}"
                );
                assert_eq!(series("cg_slashed").len(), 1, "{text}");
            }
            _ => unreachable!(),
        }
    }
}

/// Native histograms (client_golang 1.14's NativeHistogramBucketFactor),
/// one sparse only and one with classic buckets too, observations below
/// zero, in the zero bucket and above: the protobuf scrape keeps schema,
/// zero bucket, spans and deltas like the reference; the text scrape shows
/// what text can (count, sum, classic buckets).
#[test]
fn go_client_native_histograms_survive_like_the_reference() {
    let (ours_gw, ref_gw) = both();
    go("native", &[&ours_gw, &ref_gw]);
    assert_same_scrapes(&ours_gw, &ref_gw, "after native histograms");
    let pb = assert_same_protobuf_scrapes(&ours_gw, &ref_gw, "after native histograms");
    for expected in [
        "native schema=3 zero_threshold=2.938735877055719e-39 zero_count=1",
        "native schema=0 zero_threshold=0.001 zero_count=2",
        "positive spans=[-2:6 3:1 12:1] deltas=[2 -2 1 0 -1 1 0 0]",
    ] {
        assert!(pb.contains(expected), "{expected:?} missing:\n{pb}");
    }
}

/// Exemplars on a counter (AddWithExemplar) and on classic histogram
/// buckets (ObserveWithExemplar, one on +Inf): the reference keeps them in
/// its protobuf scrape. Text 0.0.4 has no exemplars, so the text scrapes
/// are compared first and must agree either way.
#[test]
fn go_client_exemplars_survive_like_the_reference() {
    let (ours_gw, ref_gw) = both();
    go("exemplars", &[&ours_gw, &ref_gw]);
    assert_same_scrapes(&ours_gw, &ref_gw, "after exemplars");
    let ref_pb = go_scrape(&ref_gw);
    for expected in [
        "exemplar {trace_id=\"abc123\"} value=3 timestamp=",
        "exemplar {trace_id=\"def456\"} value=0.05 timestamp=",
        "exemplar {span=\"s1\",trace_id=\"ghi789\"} value=5 timestamp=",
    ] {
        assert!(
            ref_pb.contains(expected),
            "the reference lost {expected:?}:\n{ref_pb}"
        );
    }
    assert_same_protobuf_scrapes(&ours_gw, &ref_gw, "after exemplars");
}

// ---------------------------------------------------------------- Node

/// tests/node/node_modules, asserting prom-client is installed there.
fn node_modules() -> PathBuf {
    let modules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules");
    assert!(
        modules.join("prom-client").is_dir(),
        "prom-client is not installed in {}; run `make deps`",
        modules.display()
    );
    modules
}

/// Runs one step of tests/node/pushclient.js against `gw`; returns its
/// JSON lines (one per request: status, socket reused, chunked body).
fn node_step(step: &str, gw: &Gateway) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/pushclient.js");
    let out = Command::new("node")
        .arg(&script)
        .args([step, &url(gw)])
        .env("NODE_PATH", node_modules())
        .output()
        .expect("run node (apt-get install -y nodejs, or make deps)");
    assert!(
        out.status.success(),
        "node step {step} against {} failed:\n{}",
        gw.bin,
        output_text(&out)
    );
    String::from_utf8(out.stdout).expect("UTF-8 node output")
}

/// prom-client's push (PUT), pushAdd (POST, once gzipped) and delete with
/// groupings, every request of a step on one keep-alive socket with a
/// chunked body: the same statuses as the reference (a '/' in a grouping
/// value is sent as %2F, which both decode into an empty path segment and
/// redirect; the odd paths of the `edges` step), the same sockets reused,
/// the same scrapes.
#[test]
fn node_client_pushes_like_against_the_reference() {
    let (ours_gw, ref_gw) = both();
    for step in ["push", "add", "edges", "delete"] {
        let ours_out = node_step(step, &ours_gw);
        let ref_out = node_step(step, &ref_gw);
        let diff = line_diff("ours", &ours_out, "reference", &ref_out);
        assert!(diff.is_empty(), "node step {step}: answers differ:\n{diff}");
        let x = assert_same_scrapes(&ours_gw, &ref_gw, &format!("after node step {step}"));
        let text = x.lines().join("\n");
        match step {
            "push" => {
                assert!(
                    ours_out.contains(
                        "{\"what\":\"pushAdd gzip\",\"status\":200,\"reused\":true,\"chunked\":true}"
                    ),
                    "a gzipped chunked push on the kept-alive socket: {ours_out}"
                );
                assert!(x.family("node_size_bytes").is_some(), "{text}");
                assert!(x.family("node_gzipped").is_some(), "{text}");
            }
            "add" => {
                assert!(
                    ours_out.contains("{\"what\":\"push escaped\",\"status\":200,\"reused\":true"),
                    "{ours_out}"
                );
                let other = x.family("node_other").map(|f| f.samples.len());
                assert_eq!(other, Some(2), "{text}");
                assert!(text.contains("job=\"node other\""), "{text}");
                assert!(text.contains("zone=\"eu west\""), "{text}");
            }
            "edges" => {
                for expected in [
                    "{\"what\":\"push no job\",\"status\":405}",
                    "{\"what\":\"pushAdd slashed job\",\"status\":400}",
                    "{\"what\":\"push empty value\",\"status\":200,\"reused\":true",
                ] {
                    assert!(ours_out.contains(expected), "{expected}: {ours_out}");
                }
                let edge = x.family("node_edge").map(|f| f.samples.len());
                assert_eq!(edge, Some(4), "{text}");
                assert!(text.contains("job=\"日本\""), "{text}");
            }
            "delete" => {
                assert!(x.family("node_gzipped").is_none(), "deleted: {text}");
                assert!(!text.contains("job=\"node other\""), "deleted: {text}");
                assert!(x.family("node_records_total").is_some(), "{text}");
            }
            _ => unreachable!(),
        }
    }
}

/// Node's `prom-client` sends chunked bodies on keep-alive connections. A
/// push refused before its body is read (a bad path) must leave the
/// connection in step, so the next push on the same socket succeeds (the
/// old front answered it with a spurious 400).
#[test]
fn node_client_pushes_chunked_on_keep_alive_after_a_rejected_push() {
    let gw = Gateway::start(&ours(), &[]);
    let modules = node_modules();
    let script = format!(
        "const http = require('http');\n\
         const client = require('prom-client');\n\
         const agent = new http.Agent({{ keepAlive: true, maxSockets: 1 }});\n\
         const registry = new client.Registry();\n\
         new client.Gauge({{ name: 'node_job_last_success', help: 'Last success.', registers: [registry] }}).set(42);\n\
         const gw = new client.Pushgateway('http://127.0.0.1:{port}', {{ agent, timeout: 30000 }}, registry);\n\
         (async () => {{\n\
           let rejected = '';\n\
           try {{ await gw.pushAdd({{ jobName: 'bad/job' }}); }} catch (e) {{ rejected = e.message; }}\n\
           const ok = await gw.pushAdd({{ jobName: 'node_job', groupings: {{ instance: 'i1' }} }});\n\
           const again = await gw.push({{ jobName: 'node_job', groupings: {{ instance: 'i2' }} }});\n\
           console.log(JSON.stringify({{ rejected, status: ok.resp.statusCode, reused: ok.resp.req.reusedSocket,\n\
             chunked: ok.resp.req.getHeader('content-length') === undefined, again: again.resp.statusCode }}));\n\
           agent.destroy();\n\
         }})().catch(e => {{ console.error(e); process.exit(1); }});\n",
        port = gw.port
    );
    let out = Command::new("node")
        .args(["-e", &script])
        .env("NODE_PATH", &modules)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("push failed with status 400"), "{stdout}");
    assert!(stdout.contains("\"status\":200"), "{stdout}");
    assert!(
        stdout.contains("\"reused\":true"),
        "same connection: {stdout}"
    );
    assert!(
        stdout.contains("\"chunked\":true"),
        "chunked body: {stdout}"
    );
    assert!(stdout.contains("\"again\":200"), "{stdout}");
    let scrape = gw.get("/metrics").text();
    for instance in ["i1", "i2"] {
        let line = format!("node_job_last_success{{instance=\"{instance}\",job=\"node_job\"}} 42");
        assert!(scrape.contains(&line), "{line} missing:\n{scrape}");
    }
}

/// Waits (bounded) until the gateway logs that the group of `job` expired
/// (a line it writes only for a group it held), then requires the group
/// to be gone from the scrape. The log, unlike a scrape right after the
/// push, cannot miss a group whose short TTL ran out on a slow machine
/// before anyone looked; the bound is wide for the same reason.
fn expired_by_ttl(gw: &Gateway, job: &str) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let group = format!(r#"{{job=\"{job}\"}}"#);
    let logged = || {
        gw.log()
            .lines()
            .any(|l| l.contains("group expired") && l.contains(&group))
    };
    while !logged() {
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !gw.get("/metrics")
        .text()
        .contains(&format!("job=\"{job}\""))
}

/// The `Pushgateway-Group-TTL` header from client_golang (through its
/// HTTPDoer) and from the Python client (through a handler): the group
/// is stored, and expires once its TTL has run out (the gateway runs
/// without --push.group-ttl, so only the header can expire it).
#[test]
fn client_libraries_set_a_group_ttl() {
    let gw = Gateway::start(&ours(), &[]);
    go("ttl", &[&gw]);
    assert!(
        expired_by_ttl(&gw, "go_ttl"),
        "the Go client's group never expired\n{}",
        gw.log()
    );
    python(
        gw.port,
        "from prometheus_client.exposition import default_handler\n\
         def ttl(url, method, timeout, headers, data):\n\
         \x20   return default_handler(url, method, timeout, headers + [('Pushgateway-Group-TTL', '500ms')], data)\n\
         r = CollectorRegistry()\n\
         Gauge('py_ttl_probe', 'Expires soon.', registry=r).set(1)\n\
         push_to_gateway(GW, job='py_ttl', registry=r, handler=ttl)\n",
    );
    assert!(
        expired_by_ttl(&gw, "py_ttl"),
        "the Python client's group never expired\n{}",
        gw.log()
    );
}
