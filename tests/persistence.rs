//! Persistence through restarts, crashes and bad files, against the real
//! binary: what users of `--persistence.file` rely on.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::proto::{body_with_extras, protobuf_scrape};
use support::{Gateway, TempDir, ours};

fn file_flag(p: &Path) -> String {
    format!("--persistence.file={}", p.display())
}

/// `/metrics` without the gateway's own families, which legitimately differ
/// between two processes.
fn pushed_exposition(gw: &Gateway) -> String {
    let r = gw.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    let mut out = String::new();
    let mut skip = false;
    for line in r.text().lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        if line.starts_with("# ") || !skip {
            skip = name.starts_with("process_") || name.starts_with("pushgateway_");
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn sigkill(gw: &Gateway) {
    let _ = Command::new("kill")
        .args(["-KILL", &gw.pid().to_string()])
        .status();
}

const EVERY_FEATURE: &str = "# HELP c A counter \\\\ with\\nescapes.\n# TYPE c counter\n\
c{path=\"/var/tmp\",quote=\"a\\\"b\",nl=\"x\\ny\",utf=\"é日本\"} 1e-7\n\
# TYPE g gauge\ng{v=\"nan\"} NaN\ng{v=\"inf\"} +Inf\ng{v=\"neg\"} -Inf\ng{v=\"zero\"} -0\n\
# TYPE s summary\ns{quantile=\"0.5\"} 1.5\ns{quantile=\"0.99\"} 3\ns_sum 123456789.123\ns_count 18\n\
# TYPE h histogram\n# HELP h \n# HELP x Untyped help.\nh_bucket{le=\"0.005\"} 1\nh_bucket{le=\"1e+06\"} 2\nh_sum 0.1\nh_count 2\n\
x 6.02214076e+23\n";

#[test]
fn restart_gives_byte_identical_metrics() {
    let dir = TempDir::new("roundtrip");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let mut gw = Gateway::start(&ours(), &[&flag, "--persistence.interval=5m"]);
    assert_eq!(
        gw.put("/metrics/job/all/instance/i1", EVERY_FEATURE).status,
        200
    );
    assert_eq!(
        gw.post("/metrics/job@base64/L3Zhci90bXA/a@base64/=", "m 1\n")
            .status,
        200
    );
    assert_eq!(gw.put("/metrics/job/empty", "").status, 200);
    // A failed push leaves a failure time to restore.
    assert_eq!(
        gw.put("/metrics/job/failed", "# TYPE c gauge\nc 1\n")
            .status,
        400
    );
    // Exemplars and created timestamps, which only protobuf carries.
    let extras = gw.request(
        "PUT",
        "/metrics/job/extras",
        &[("Content-Type", pushgateway::wire::protobuf::CONTENT_TYPE)],
        &body_with_extras(),
    );
    assert_eq!(extras.status, 200, "{}", extras.text());
    let before = pushed_exposition(&gw);
    let extras_before = protobuf_scrape(&gw).1;
    assert!(
        before.contains("push_failure_time_seconds{instance=\"\",job=\"failed\"} 1"),
        "{before}"
    );
    assert!(extras_before.contains("exemplar: Some"), "{extras_before}");
    gw.stop();
    assert!(gw.log().contains("final snapshot written"), "{}", gw.log());
    let text = fs::read_to_string(&file).expect("snapshot written at shutdown");
    assert!(text.starts_with("pushgateway-snapshot 2\n"), "{text}");
    assert!(
        text.contains("\nexemplar counter {trace_id=\"c0ffee\"}"),
        "{text}"
    );

    let gw = Gateway::start(&ours(), &[&flag]);
    assert_eq!(pushed_exposition(&gw), before);
    assert_eq!(protobuf_scrape(&gw).1, extras_before);
    assert!(gw.log().contains("metrics restored"), "{}", gw.log());
}

#[test]
fn interval_writes_survive_a_kill() {
    let dir = TempDir::new("interval");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let gw = Gateway::start(&ours(), &[&flag, "--persistence.interval=300ms"]);
    assert_eq!(gw.put("/metrics/job/j", "m 42\n").status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("} 42.0\n")
    {
        assert!(
            Instant::now() < deadline,
            "not persisted in time:\n{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
    sigkill(&gw);
    drop(gw);
    let gw = Gateway::start(&ours(), &[&flag]);
    assert!(pushed_exposition(&gw).contains("m{instance=\"\",job=\"j\"} 42\n"));
}

/// Pushes until stopped, recording every push that got a 2xx.
fn pusher(port: u16, stop: Arc<AtomicBool>, round: usize) -> Vec<usize> {
    let mut acked = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) && i < 100_000 {
        let body = format!("seq{{round=\"{round}\"}} {i}\n");
        let path = format!("/metrics/job/crash/instance/r{round}-{i}");
        match support::try_request(
            port,
            "PUT",
            &path,
            &[],
            body.as_bytes(),
            Duration::from_secs(5),
        ) {
            Ok(r) if r.status == 200 => acked.push(i),
            Ok(r) => panic!("push {i} got {}: {}", r.status, r.text()),
            Err(_) => break, // Killed.
        }
        i += 1;
    }
    acked
}

#[test]
fn durable_pushes_survive_sigkill_at_random_moments() {
    let dir = TempDir::new("crash");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let mut all_acked: Vec<(usize, usize)> = Vec::new();
    // A cheap deterministic spread of kill delays (no rand crate).
    let delays = [37u64, 5, 120, 61, 2, 250, 90, 14, 180, 45, 8, 300];
    for (round, delay) in delays.iter().enumerate() {
        let gw = Gateway::start(&ours(), &[&flag, "--persistence.interval=0"]);
        // Everything acknowledged in earlier rounds is still there.
        let text = pushed_exposition(&gw);
        for (r, i) in &all_acked {
            let want = format!("seq{{instance=\"r{r}-{i}\",job=\"crash\",round=\"{r}\"}} {i}\n");
            assert!(
                text.contains(&want),
                "round {round}: lost acknowledged push {r}-{i}"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (port, stop2) = (gw.port, Arc::clone(&stop));
        let h = thread::spawn(move || pusher(port, stop2, round));
        thread::sleep(Duration::from_millis(*delay));
        sigkill(&gw);
        stop.store(true, Ordering::Relaxed);
        let acked = h.join().expect("pusher thread");
        all_acked.extend(acked.into_iter().map(|i| (round, i)));
        drop(gw);
        // The file is complete after every kill: it parses (the next start
        // restores it) and no temporary file is mistaken for it.
        let data = fs::read_to_string(&file).unwrap_or_default();
        if !data.is_empty() {
            assert!(
                data.ends_with('\n') && data.lines().last().unwrap_or("").starts_with("end "),
                "torn file"
            );
        }
    }
    assert!(
        all_acked.len() > 10,
        "the test pushed too little to mean anything"
    );
    eprintln!(
        "{} acknowledged pushes over {} kills",
        all_acked.len(),
        delays.len()
    );
    let gw = Gateway::start(&ours(), &[&flag]);
    let text = pushed_exposition(&gw);
    for (r, i) in &all_acked {
        let want = format!("seq{{instance=\"r{r}-{i}\",job=\"crash\",round=\"{r}\"}} {i}\n");
        assert!(text.contains(&want), "lost acknowledged push {r}-{i}");
    }
}

/// Runs the binary expecting it to refuse to start; returns its stderr.
fn refuses_to_start(args: &[&str]) -> String {
    let out = Command::new(ours())
        .arg("--web.listen-address=127.0.0.1:0")
        .args(args)
        .output()
        .expect("run binary");
    assert!(!out.status.success(), "{args:?} should not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_files_refuse_start_and_stay_untouched() {
    let dir = TempDir::new("corrupt");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let good = "pushgateway-snapshot 1\ngroup {job=\"a\"}\ntimes 1 -\nfamily m gauge\nseries {instance=\"\",job=\"a\"} 1.0\nend groups=1 series=1\n";
    let twice = good
        .replace(
            "family m gauge",
            "family m counter\nseries {instance=\"\",job=\"a\"} 2.0\nfamily m gauge",
        )
        .replace("series=1", "series=2");
    let clash = good.replace(
        "end groups=1 series=1",
        "group {job=\"b\"}\nfamily m counter\nseries {instance=\"\",job=\"b\"} 2.0\nend groups=2 series=2",
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good.as_bytes()[..good.len() - 10].to_vec(), "truncated"),
        (good.replace("1.0\n", "one\n").into_bytes(), "line 5"),
        (
            good.replace("snapshot 1", "snapshot 7").into_bytes(),
            "newer",
        ),
        (
            b"\x0e\xff\x81\x03\x01\x01\x02\xff\x82\x00".to_vec(),
            "Go Pushgateway",
        ),
        (twice.into_bytes(), "line 6"),
        (clash.into_bytes(), "line 6: group {job="),
    ];
    for (content, want) in &cases {
        fs::write(&file, content).expect("write test file");
        let err = refuses_to_start(&[&flag]);
        assert!(
            err.contains(&file.display().to_string()),
            "names the file: {err}"
        );
        assert!(err.contains(want), "mentions {want:?}: {err}");
        assert_eq!(
            fs::read(&file).expect("file still there"),
            *content,
            "file changed"
        );
    }
    // Opting in to start empty moves the bad file aside instead.
    let gw = Gateway::start(&ours(), &[&flag, "--persistence.start-empty-if-unreadable"]);
    assert!(!file.exists(), "bad file moved away");
    let aside: Vec<_> = fs::read_dir(dir.path())
        .expect("list dir")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("metric.store.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(gw.log().contains("moved aside"), "{}", gw.log());
}

#[test]
fn unwritable_locations_are_start_up_errors() {
    let err = refuses_to_start(&["--persistence.file=/proc/pushgateway.store"]);
    assert!(
        err.contains("not writable") && err.contains("/proc"),
        "{err}"
    );
    let err = refuses_to_start(&["--persistence.file=/nonexistent-dir/metric.store"]);
    assert!(err.contains("not writable"), "{err}");
}

#[test]
fn a_full_disk_keeps_the_old_file_and_answers_durable_pushes_with_500() {
    let dir = TempDir::new("full");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    // ulimit -f limits the size of any file the process writes: a stand-in
    // for a full disk that needs no root and no mount.
    let wrapper = dir.file("limited.sh");
    fs::write(
        &wrapper,
        format!("#!/bin/sh\nulimit -f 8\nexec {} \"$@\"\n", ours()),
    )
    .expect("write wrapper");
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let wrapper = wrapper.display().to_string();
    let gw = Gateway::start(&wrapper, &[&flag, "--persistence.interval=0"]);
    assert_eq!(gw.put("/metrics/job/small", "m 1\n").status, 200);
    let good = fs::read(&file).expect("small snapshot written");
    let big = format!("big{{i=\"{}\"}} 1\n", "y".repeat(20_000));
    let r = gw.put("/metrics/job/big", &big);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("could not be written"), "{}", r.text());
    assert_eq!(fs::read(&file).expect("old file kept"), good);
    assert!(
        !file.with_file_name("metric.store.in_progress").exists(),
        "temporary file left behind"
    );
    assert!(
        gw.log().contains("error persisting metrics"),
        "{}",
        gw.log()
    );
    // The gateway goes on serving.
    assert_eq!(gw.get("/metrics").status, 200);
}

/// A panic in the request loop (a bug; debug builds have a hook to cause
/// one) still writes the final snapshot: the pushes since the last write
/// survive, and the process exits with an error.
#[test]
fn a_panic_in_the_loop_still_writes_the_final_snapshot() {
    let dir = TempDir::new("panic");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let mut gw = Gateway::start_with_env(
        &ours(),
        &[&flag, "--persistence.interval=1h"],
        &[("PUSHGATEWAY_TEST_PANIC_JOB", "boom")],
    );
    assert_eq!(gw.put("/metrics/job/kept", "kept_metric 7\n").status, 200);
    assert!(
        !fs::read_to_string(&file)
            .unwrap_or_default()
            .contains("kept_metric"),
        "nothing is written before the hour is up"
    );
    // The answer never comes: the loop panics on this request.
    let _ = support::try_request(
        gw.port,
        "DELETE",
        "/metrics/job/boom",
        &[],
        b"",
        Duration::from_secs(5),
    );
    let status = gw
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("the gateway did not exit:\n{}", gw.log()));
    assert!(!status.success(), "a panic must not look like a clean exit");
    let saved = fs::read_to_string(&file).unwrap_or_default();
    assert!(saved.contains("kept_metric"), "{saved}\n{}", gw.log());
    drop(gw);
    let gw = Gateway::start(&ours(), &[&flag]);
    assert!(pushed_exposition(&gw).contains("kept_metric{instance=\"\",job=\"kept\"} 7\n"));
}

const PROTO: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// A protobuf push: a native histogram (with one classic bucket too) and a
/// gauge with HELP.
fn protobuf_body() -> Vec<u8> {
    use pushgateway::model::{
        Bucket, Histogram, Label, Metric, MetricType, NativeHistogram, Span, Value,
    };
    use pushgateway::wire::protobuf::encode_family;
    let native = NativeHistogram {
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: 1,
        negative_spans: vec![Span {
            offset: -2,
            length: 1,
        }],
        negative_deltas: vec![2],
        positive_spans: vec![
            Span {
                offset: 0,
                length: 2,
            },
            Span {
                offset: 3,
                length: 1,
            },
        ],
        positive_deltas: vec![1, 1, -1],
        ..NativeHistogram::default()
    };
    let h = Metric {
        labels: vec![Label::new("le_kind", "native")].into(),
        value: Value::Histogram(Box::new(Histogram {
            count: 7,
            sum: 12.5,
            buckets: vec![Bucket::new(1.0, 3)],
            native: Some(Box::new(native)),
            ..Histogram::default()
        })),
        extra: None,
    };
    let g = Metric {
        labels: vec![Label::new("via", "protobuf")].into(),
        value: Value::Gauge(-2.5),
        extra: None,
    };
    let mut body = Vec::new();
    encode_family(
        &mut body,
        "nh",
        Some("A native histogram."),
        MetricType::Histogram,
        [h].iter(),
    );
    encode_family(
        &mut body,
        "pg",
        Some("Pushed as protobuf."),
        MetricType::Gauge,
        [g].iter(),
    );
    body
}

/// Lets the reference (1.5.1) fill `file` with every kind of group; returns
/// its text scrape (push times exact) and its protobuf families.
fn reference_writes(file: &Path) -> (support::Exposition, Vec<pushgateway::model::MetricFamily>) {
    let mut go = Gateway::start(
        &support::reference(),
        &[&file_flag(file), "--persistence.interval=100ms"],
    );
    let ok = |path: &str, body: &str| {
        let r = go.put(path, body);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    };
    ok("/metrics/job/all/instance/i1", EVERY_FEATURE);
    ok("/metrics/job/empty/a@base64/=", "# HELP u Untyped.\nu 1\n");
    ok("/metrics/job/slash/path@base64/L3Zhci90bXA", "m 2\n");
    let r = go.request(
        "PUT",
        "/metrics/job/proto",
        &[("Content-Type", PROTO)],
        &protobuf_body(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Failures: a new group with only a failure time, and a failure after a
    // success in an existing group.
    assert_eq!(
        go.put("/metrics/job/failed", "# TYPE c gauge\nc 1\n")
            .status,
        400
    );
    assert_eq!(
        go.post("/metrics/job/slash/path@base64/L3Zhci90bXA", "m 3 1000\n")
            .status,
        400
    );
    let text = go.get("/metrics").text();
    let scrape = support::Exposition::parse(&text)
        .expect("reference scrape parses")
        .without_internal();
    for want in [
        "push_failure_time_seconds",
        "nh",
        "pg",
        "u",
        "c",
        "s",
        "h",
        "x",
    ] {
        assert!(scrape.family(want).is_some(), "{want} missing:\n{text}");
    }
    let proto = go.request("GET", "/metrics", &[("Accept", PROTO)], b"");
    let families = pushed_families(&proto.body);
    let nh = families.iter().find(|f| &*f.name == "nh").expect("nh");
    assert!(
        matches!(&nh.metrics[0].value, pushgateway::model::Value::Histogram(h) if h.native.is_some()),
        "the reference keeps native histograms: {nh:?}"
    );
    let failures = scrape.family("push_failure_time_seconds").unwrap();
    let pushes = scrape.family("push_time_seconds").unwrap();
    for (f, nonzero) in [(failures, 2), (pushes, 4)] {
        let n = f
            .samples
            .iter()
            .filter(|s| s.value.parse::<f64>() != Ok(0.0))
            .count();
        assert_eq!(n, nonzero, "{f:?}");
    }
    go.stop();
    (scrape, families)
}

/// A protobuf scrape without the gateway's own families, series sorted.
fn pushed_families(body: &[u8]) -> Vec<pushgateway::model::MetricFamily> {
    let mut fams = pushgateway::wire::protobuf::decode(body).expect("protobuf scrape decodes");
    fams.retain(|f| !support::is_internal(&f.name));
    for f in &mut fams {
        f.metrics
            .sort_by(|a, b| format!("{:?}", a.labels).cmp(&format!("{:?}", b.labels)));
    }
    fams.sort_by(|a, b| a.name.cmp(&b.name));
    fams
}

fn assert_same_scrape(
    gw: &Gateway,
    want: &support::Exposition,
    want_proto: &[pushgateway::model::MetricFamily],
) {
    let got = support::Exposition::parse(&gw.get("/metrics").text())
        .unwrap()
        .without_internal();
    let diff = support::diff_expositions("reference before the swap", want, "ours", &got);
    assert!(diff.is_empty(), "{diff}\n{}", gw.log());
    let proto = gw.request("GET", "/metrics", &[("Accept", PROTO)], b"");
    let got = pushed_families(&proto.body);
    for (w, g) in want_proto.iter().zip(&got) {
        // Compared as Debug text, where NaN equals NaN and -0 differs from 0.
        assert_eq!(
            format!("{w:?}"),
            format!("{g:?}"),
            "protobuf scrapes differ"
        );
    }
    assert_eq!(want_proto.len(), got.len(), "protobuf scrapes differ");
}

#[test]
fn the_go_gateways_file_is_imported_once_and_kept() {
    let dir = TempDir::new("gob-import");
    let file = dir.file("metric.store");
    let (want, want_proto) = reference_writes(&file);
    let gob = fs::read(&file).expect("the reference persisted on SIGTERM");
    assert!(!gob.starts_with(b"pushgateway-snapshot"));

    let mut gw = Gateway::start(&ours(), &[&file_flag(&file), "--persistence.interval=5m"]);
    assert_same_scrape(&gw, &want, &want_proto);
    assert!(
        gw.log()
            .contains("imported the Go Pushgateway's persistence file"),
        "{}",
        gw.log()
    );
    let aside = dir.file("metric.store.gob-imported");
    assert_eq!(
        fs::read(&aside).expect("original kept"),
        gob,
        "kept copy differs"
    );
    // With the reference's permissions: it writes 0600.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&aside).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ours_now = fs::read(&file).expect("our snapshot written");
    assert!(ours_now.starts_with(b"pushgateway-snapshot 2\n"));

    // From now on it is our format, and it reads back the same.
    gw.stop();
    drop(gw);
    let gw = Gateway::start(&ours(), &[&file_flag(&file)]);
    assert_same_scrape(&gw, &want, &want_proto);
    assert!(
        !gw.log().contains("imported"),
        "imported twice:\n{}",
        gw.log()
    );
    assert_eq!(fs::read(&aside).expect("original still kept"), gob);
}

#[test]
fn damaged_gob_files_refuse_start_and_stay_untouched() {
    let dir = TempDir::new("gob-bad");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let (_, _) = reference_writes(&file);
    let gob = fs::read(&file).expect("the reference persisted on SIGTERM");
    let mut flipped = gob.clone();
    let at = gob
        .windows(7)
        .position(|w| w == b"Metrics")
        .expect("type definition");
    flipped[at] = b'N';
    let aside_differs = dir.file("metric.store.gob-imported");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (gob[..gob.len() / 2].to_vec(), "truncated"),
        (flipped, "not what the Go Pushgateway writes"),
        (gob.clone(), "already exists with different content"),
    ];
    for (i, (content, want)) in cases.iter().enumerate() {
        if i == 2 {
            fs::write(&aside_differs, b"something else").unwrap();
        }
        fs::write(&file, content).expect("write test file");
        let err = refuses_to_start(&[&flag]);
        assert!(
            err.contains(&file.display().to_string()),
            "names the file: {err}"
        );
        assert!(err.contains(want), "mentions {want:?}: {err}");
        if i < 2 {
            assert!(err.contains("imported: byte "), "names an offset: {err}");
        }
        assert_eq!(fs::read(&file).unwrap(), *content, "file changed");
    }
    assert_eq!(fs::read(&aside_differs).unwrap(), b"something else");
    // A crash after the copy but before our snapshot replaced the file
    // leaves an identical copy: the next start imports again and reuses it.
    fs::write(&aside_differs, &gob).unwrap();
    fs::write(&file, &gob).unwrap();
    let gw = Gateway::start(&ours(), &[&flag]);
    assert!(
        fs::read(&file)
            .unwrap()
            .starts_with(b"pushgateway-snapshot 2\n")
    );
    assert_eq!(fs::read(&aside_differs).unwrap(), gob);
    assert!(
        pushed_exposition(&gw).contains("job=\"proto\""),
        "{}",
        gw.log()
    );
}

/// One changed byte in a snapshot (a bit flip on disk, a bad copy) fails
/// its checksum: the start is refused with the file and line, and the file
/// is left as it is.
#[test]
fn a_changed_byte_in_the_snapshot_refuses_start() {
    let dir = TempDir::new("checksum");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let mut gw = Gateway::start(&ours(), &[&flag]);
    assert_eq!(gw.put("/metrics/job/a", "m 12345\n").status, 200);
    gw.stop();
    let good = fs::read_to_string(&file).expect("snapshot");
    let bad = good.replacen("12345", "12346", 1);
    assert_ne!(good, bad);
    fs::write(&file, &bad).unwrap();
    let err = refuses_to_start(&[&flag]);
    assert!(err.contains("damaged") && err.contains("crc32="), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), bad, "left untouched");
}

/// A file written with `--push.enable-utf8-names` and restored without
/// the flag keeps its names and scrapes them escaped, as with the flag
/// (1.11 escapes on output whatever it stores); pushes of such names are
/// still refused. The other way round, a file of classic names restores
/// alike with or without the flag.
#[test]
fn utf8_names_survive_a_restart_without_the_flag() {
    let dir = TempDir::new("utf8-restart");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let body = "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"a.b\"=\"x.y\"} 1\nclassic 2\n";
    let mut gw = Gateway::start(&ours(), &[&flag, "--push.enable-utf8-names"]);
    assert_eq!(gw.put("/metrics/job/j/U__foo_2e_bar/baz", body).status, 200);
    let with_flag = pushed_exposition(&gw);
    gw.stop();

    let mut gw = Gateway::start(&ours(), &[&flag]);
    let text = pushed_exposition(&gw);
    assert!(
        text.contains("my_metric{a_b=\"x.y\",foo_bar=\"baz\",instance=\"\",job=\"j\"} 1\n"),
        "escaped as a scraper without UTF-8 support needs them:\n{text}"
    );
    assert!(
        !text.contains("my.metric") && !text.contains("{\""),
        "{text}"
    );
    assert_eq!(text, with_flag, "the same scrape as with the flag");
    let r = gw.put("/metrics/job/k", "{\"other.metric\"} 1\n");
    assert_eq!(
        r.status,
        400,
        "without the flag UTF-8 names are refused: {}",
        r.text()
    );
    gw.stop();

    let dir = TempDir::new("classic-restart");
    let file = dir.file("metric.store");
    let flag = file_flag(&file);
    let mut gw = Gateway::start(&ours(), &[&flag]);
    assert_eq!(gw.put("/metrics/job/c", "classic{k=\"v\"} 3\n").status, 200);
    let without_flag = pushed_exposition(&gw);
    gw.stop();
    let gw = Gateway::start(&ours(), &[&flag, "--push.enable-utf8-names"]);
    assert_eq!(pushed_exposition(&gw), without_flag);
}
