//! Integration tests of our binary alone: behaviour the reference has no
//! counterpart for (body cap, slow clients, our deliberate differences) and
//! the tutorial flow checked line by line. Each test starts the real binary
//! on a free 127.0.0.1 port and speaks HTTP to it.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::{Gateway, ours};

/// Our pushed series without the gateway's own metrics and push times.
fn pushed(gw: &Gateway) -> Vec<String> {
    let r = gw.get("/metrics");
    assert_eq!(r.status, 200, "scrape failed: {}", r.text());
    r.text()
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && !l.starts_with("process_")
                && !l.starts_with("pushgateway_")
                && !l.starts_with("push_")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn tutorial_flow_verbatim() {
    let gw = Gateway::start(&ours(), &[]);
    let r = gw.post("/metrics/job/some_job", "second_metric 99\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = "# TYPE some_metric counter\nsome_metric{label=\"val1\"} 42\n# TYPE another_metric gauge\n# HELP another_metric Just an example.\nanother_metric 2398.283\n";
    let r = gw.post("/metrics/job/some_job/instance/some_instance", body);
    assert_eq!(r.status, 200, "{}", r.text());

    let scrape = gw.get("/metrics");
    assert_eq!(
        scrape.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    let text = scrape.text();
    for want in [
        "# HELP another_metric Just an example.\n# TYPE another_metric gauge\nanother_metric{instance=\"some_instance\",job=\"some_job\"} 2398.283\n",
        "# TYPE second_metric untyped\nsecond_metric{instance=\"\",job=\"some_job\"} 99\n",
        "# TYPE some_metric counter\nsome_metric{instance=\"some_instance\",job=\"some_job\",label=\"val1\"} 42\n",
        "push_failure_time_seconds{instance=\"some_instance\",job=\"some_job\"} 0\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let page = gw.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("some_instance"),
        "status page lists the group"
    );

    let r = gw.delete("/metrics/job/some_job/instance/some_instance");
    assert_eq!(r.status, 202);
    assert_eq!(
        pushed(&gw),
        vec!["second_metric{instance=\"\",job=\"some_job\"} 99"]
    );
}

#[test]
fn bad_bodies_get_400_with_the_line_and_change_nothing() {
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(gw.put("/metrics/job/j", "good 1\n").status, 200);
    let before = pushed(&gw);
    let cases: &[(&[u8], &str)] = &[
        (b"a 1\nb{ 2\n", "line 2"),
        (b"no_newline 1", "line 1"),
        (b"m{l=\"\xff\"} 1\n", "line 1"),
        (b"# TYPE m counter\nm 1\n# TYPE m gauge\n", "line 3"),
        (b"m 1 1700000000000\n", "timestamps"),
        (b"m{__x=\"1\"} 1\n", "reserved"),
        (b"m 1\nm 2\n", "more than once"),
    ];
    for (body, why) in cases {
        let r = gw.request("PUT", "/metrics/job/j", &[], body);
        assert_eq!(
            r.status,
            400,
            "{:?} should be rejected",
            String::from_utf8_lossy(body)
        );
        let msg = r.text();
        assert!(msg.contains(why), "reason {msg:?} should mention {why:?}");
        assert_eq!(
            msg.trim_end().lines().count(),
            1,
            "one-line reason: {msg:?}"
        );
        assert_eq!(pushed(&gw), before, "store changed by a rejected push");
    }
    assert!(gw.log().contains("rejected push"), "rejections are logged");
}

#[test]
fn bodies_over_the_cap_get_413() {
    let gw = Gateway::start(&ours(), &["--push.max-body-size=1KiB"]);
    let big = "m{l=\"x\"} 1\n".repeat(200);
    let r = gw.put("/metrics/job/j", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("max-body-size"));
    // Chunked bodies have no Content-Length: the cap applies while reading.
    let chunk = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let r = gw.request(
        "PUT",
        "/metrics/job/j",
        &[("Transfer-Encoding", "chunked")],
        chunk.as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(pushed(&gw).is_empty());
    assert_eq!(gw.put("/metrics/job/j", "small 1\n").status, 200);
}

/// Opens a push whose body never finishes arriving.
fn stalled_push(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"PUT /metrics/job/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nm")
        .expect("write");
    s
}

/// Opens a scrape whose client never reads the answer.
fn stalled_scrape(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    s
}

#[test]
fn stalled_clients_do_not_block_others() {
    let gw = Gateway::start(&ours(), &[]);
    // A store big enough that a scrape answer overflows the socket buffers.
    let mut body = String::new();
    for i in 0..20_000 {
        body.push_str(&format!(
            "filler{{i=\"{i}\",pad=\"{}\"}} {i}\n",
            "x".repeat(40)
        ));
    }
    assert_eq!(gw.put("/metrics/job/big", &body).status, 200);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(stalled_push(gw.port));
        held.push(stalled_scrape(gw.port));
    }
    std::thread::sleep(Duration::from_millis(200));
    // These would hang (and time out) if the loop waited on any stalled peer.
    for i in 0..20 {
        let r = gw.put(&format!("/metrics/job/fast/instance/{i}"), "fast 1\n");
        assert_eq!(r.status, 200);
    }
    let text = gw.get("/metrics").text();
    assert!(text.contains("fast{instance=\"19\",job=\"fast\"} 1"));
    // The stalled push finishes late and is applied then.
    let mut s = held.remove(0);
    s.write_all(&b" 1\n".repeat(333)[..999])
        .expect("write rest of body");
    let mut answer = [0u8; 12];
    s.read_exact(&mut answer).expect("answer to the late push");
    assert_eq!(
        &answer, b"HTTP/1.1 400",
        "999 bytes of ' 1\\n' after 'm' is not a valid body"
    );
}

#[test]
fn many_idle_connections_do_not_block_pushes() {
    let gw = Gateway::start(&ours(), &[]);
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.port)).expect("connect"))
        .collect();
    let r = gw.put("/metrics/job/j", "m 1\n");
    assert_eq!(r.status, 200);
    drop(idle);
}

#[test]
fn colliding_grouping_keys_are_refused_without_poisoning_the_store() {
    // {job="a",instance=""} and {job="a"} would both own
    // push_time_seconds{instance="",job="a"}. The reference accepts the
    // second group's failure timestamp and then fails every scrape with 500;
    // we refuse the push and keep serving.
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(
        gw.put("/metrics/job/a/instance/", "m{x=\"1\"} 1\n").status,
        200
    );
    let r = gw.put("/metrics/job/a", "m{x=\"2\"} 1\n");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("push_time_seconds"), "{}", r.text());
    assert_eq!(gw.get("/metrics").status, 200);
    assert_eq!(pushed(&gw), vec!["m{instance=\"\",job=\"a\",x=\"1\"} 1"]);
}

#[test]
fn unchecked_pushes_are_202_and_inconsistency_fails_scrapes() {
    let gw = Gateway::start(&ours(), &["--push.disable-consistency-check"]);
    assert_eq!(
        gw.put("/metrics/job/a", "# TYPE m counter\nm 1\n").status,
        202
    );
    assert_eq!(gw.get("/metrics").status, 200);
    assert_eq!(
        gw.put("/metrics/job/b", "# TYPE m gauge\nm 1\n").status,
        202
    );
    let r = gw.get("/metrics");
    assert_eq!(r.status, 500);
    assert!(r.text().contains("\"m\""), "{}", r.text());
    assert_eq!(gw.delete("/metrics/job/b").status, 202);
    assert_eq!(gw.get("/metrics").status, 200);
}

#[test]
fn start_up_log_lines_in_both_formats() {
    let gw = Gateway::start(&ours(), &[]);
    let log = gw.log();
    let first = log.lines().next().unwrap_or_default();
    assert!(first.starts_with("ts=20"), "{first}");
    assert!(
        first.contains("level=info msg=\"starting pushgateway\" version="),
        "{first}"
    );
    assert!(
        log.contains(&format!("address=127.0.0.1:{}", gw.port)),
        "{log}"
    );
    drop(gw);
    let gw = Gateway::start(&ours(), &["--log.format=json", "--log.level=debug"]);
    let log = gw.log();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("{\"ts\":\"20") && first.ends_with('}'),
        "{first}"
    );
    assert!(
        first.contains("\"msg\":\"starting pushgateway\""),
        "{first}"
    );
}

#[test]
fn command_line_help_version_and_errors() {
    let run = |args: &[&str]| {
        Command::new(ours())
            .args(args)
            .output()
            .expect("run binary")
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--web.listen-address=:9091",
        "--web.telemetry-path=\"/metrics\"",
        "--persistence.interval=5m",
        "--push.disable-consistency-check",
        "--log.format=logfmt",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("pushgateway, version "));
    for (args, want) in [
        (&["--no-such-flag"][..], "--no-such-flag"),
        (&["--log.level=loud"][..], "log.level"),
        (&["--persistence.interval=5"][..], "unit"),
        (
            &["--web.config.file=/nonexistent/x.yml"][..],
            "/nonexistent/x.yml",
        ),
        (&["--web.listen-address=256.0.0.1:1"][..], "cannot listen"),
    ] {
        let out = run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `--version`, `pushgateway_build_info` and the status API name the git
/// commit that was built (build.rs), not "unknown".
#[test]
fn build_information_comes_from_the_build() {
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git is needed to build and test from a clone");
    assert!(head.status.success(), "not a git clone");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let version = Command::new(ours()).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.contains(&format!("revision: {head})")), "{version}");
    let date = version
        .lines()
        .find_map(|l| l.trim().strip_prefix("build date:"))
        .expect("a build date line")
        .trim();
    assert!(
        date.len() == 17 && date.as_bytes()[8] == b'-',
        "build date {date:?} is not promu's 20060102-15:04:05"
    );
    let gw = Gateway::start(&ours(), &[]);
    let scrape = gw.get("/metrics").text();
    let info = scrape
        .lines()
        .find(|l| l.starts_with("pushgateway_build_info{"))
        .expect("pushgateway_build_info");
    assert!(info.contains(&format!("revision=\"{head}\"")), "{info}");
    // 1.11's labels: the build tags too (our Cargo features).
    assert!(info.contains(",tags=\""), "{info}");
    // client_golang's process collector reads these from /proc (1.11).
    for counter in [
        "process_network_receive_bytes_total ",
        "process_network_transmit_bytes_total ",
    ] {
        let value = scrape
            .lines()
            .find_map(|l| l.strip_prefix(counter))
            .unwrap_or_else(|| panic!("no {counter}in the scrape"));
        assert!(
            value.parse::<f64>().is_ok_and(|v| v > 0.0),
            "{counter}{value}"
        );
    }
    let status = gw.get("/api/v1/status").text();
    assert!(
        status.contains(&format!("\"revision\":\"{head}\"")),
        "{status}"
    );
    assert!(
        status.contains(&format!("\"buildDate\":\"{date}\"")),
        "{status}"
    );
}

/// `/-/healthy` and `/-/ready` tell whether the request loop keeps up, as
/// 1.11's answer from its store: answered at once by the HTTP front, never
/// queued behind the work they check, 200 while the loop is idle or
/// working, 500 with the reason once it has been on one round for over
/// 5 s (debug builds have a hook that stalls it for 8 s), and 200 again
/// when it is back.
#[test]
fn probes_fail_while_the_request_loop_is_stuck() {
    let gw = Gateway::start_with_env(
        env!("CARGO_BIN_EXE_pushgateway"),
        &[],
        &[("PUSHGATEWAY_TEST_STALL_JOB", "stall")],
    );
    let port = gw.port;
    let stalled = std::thread::spawn(move || {
        support::try_request(
            port,
            "DELETE",
            "/metrics/job/stall",
            &[],
            b"",
            Duration::from_secs(30),
        )
    });
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let quick = |path: &str| {
        let asked = std::time::Instant::now();
        let r = gw.get(path);
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        r
    };
    // Busy for half a second: working, not stuck.
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(quick(path).status, 200, "{path} while busy");
    }
    std::thread::sleep(Duration::from_millis(5_500).saturating_sub(started.elapsed()));
    for path in ["/-/healthy", "/-/ready"] {
        let r = quick(path);
        assert_eq!(r.status, 500, "{path} while stuck: {}", r.text());
        assert!(
            r.text()
                .starts_with("the request loop has been busy for 5."),
            "{path}: {}",
            r.text()
        );
    }
    let deleted = stalled.join().expect("the stalled delete");
    assert_eq!(
        deleted.map(|r| r.status).ok(),
        Some(202),
        "the stalled delete is answered"
    );
    assert_eq!(gw.get("/-/healthy").status, 200);
    assert_eq!(gw.get("/-/ready").status, 200);
    assert!(gw.log().contains("health probe failed"), "{}", gw.log());
}
