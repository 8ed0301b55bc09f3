//! Smoke test of the Windows build (x86_64-pc-windows-gnu, with TLS, linked
//! by mingw-w64) under Debian's wine: `make windows-test` builds it and runs
//! this with PUSHGATEWAY_WINDOWS_EXE set. From a console the gateway takes
//! pushes, serves scrapes, deletes, serves TLS, writes its final snapshot
//! on Ctrl-C (wine turns SIGINT into CTRL_C_EVENT) and restores it after a
//! restart; as a service of wine's service manager (`sc create`, `sc
//! start`, `sc stop`) a service stop is the same graceful stop.
//!
//! A missing wine, mingw-w64 or .exe fails the test: nothing is skipped.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::wine::{Wine, windows_path, wine};
use support::{Gateway, Pki, TempDir, free_port, try_request};

const EXE_VAR: &str = "PUSHGATEWAY_WINDOWS_EXE";

/// How long a console start may take. Under wine the .exe is healthy in
/// about a second; asking the service dispatcher from a console would
/// cost 10 s more (wine waits that long for a control pipe), which the
/// gateway avoids by checking its parent process first.
const CONSOLE_START: Duration = Duration::from_secs(8);

fn start(w: &Wine, args: &[&str]) -> Gateway {
    let started = Instant::now();
    let gw = Gateway::start(&w.wrapper, args);
    assert!(
        started.elapsed() < CONSOLE_START,
        "a console start took {:?}\n{}",
        started.elapsed(),
        gw.log()
    );
    gw
}

#[test]
fn pushes_scrapes_deletes_and_persists_across_ctrl_c_restarts() {
    let w = wine(EXE_VAR);
    let version = Command::new(&w.wrapper)
        .arg("--version")
        .output()
        .expect("run the .exe under wine");
    assert!(version.status.success(), "{version:?}");
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(text.starts_with("pushgateway, version "), "{version:?}");
    assert!(text.contains("platform:         windows/amd64"), "{text}");
    assert!(text.contains("tags:             tls"), "{text}");

    let dir = TempDir::new("windows");
    let store = dir.file("metric.store");
    let persist = format!("--persistence.file={}", windows_path(&store));
    let args = [persist.as_str(), "--persistence.interval=5m"];

    let mut gw = start(w, &args);
    let group = "/metrics/job/win/instance/wine";
    let r = gw.put(
        group,
        "# TYPE win_smoke gauge\nwin_smoke{case=\"push\"} 7\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.post(group, "win_other 1.5\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.put("/metrics/job/gone", "win_gone 1\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("win_gone{instance=\"\",job=\"gone\"} 1"),
        "{scrape}"
    );
    let r = gw.delete("/metrics/job/gone");
    assert_eq!(r.status, 202, "{}", r.text());
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("win_smoke{case=\"push\",instance=\"wine\",job=\"win\"} 7"),
        "{scrape}"
    );
    assert!(
        scrape.contains("win_other{instance=\"wine\",job=\"win\"} 1.5"),
        "{scrape}"
    );
    assert!(scrape.contains("push_time_seconds{"), "{scrape}");
    assert!(
        !scrape.contains("win_gone"),
        "deleted, yet scraped: {scrape}"
    );
    let r = gw.get("/api/v1/metrics");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("win_smoke"), "{}", r.text());

    assert!(!store.exists(), "nothing written before the interval");
    gw.interrupt();
    let log = gw.log();
    assert!(log.contains("signal=Ctrl-C"), "{log}");
    assert!(log.contains("final snapshot written"), "{log}");
    let first = fs::read(&store).expect("the final snapshot");
    assert!(!first.is_empty());
    drop(gw);

    // Restored; a push, and the second final snapshot replaces the first
    // file (a rename over an existing file, which Windows refuses unless
    // asked to replace).
    let mut gw = start(w, &args);
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("win_smoke{case=\"push\",instance=\"wine\",job=\"win\"} 7"),
        "restored after restart: {scrape}\n{}",
        gw.log()
    );
    assert!(scrape.contains("win_other{"), "{scrape}");
    assert!(!scrape.contains("win_gone"), "{scrape}");
    let r = gw.put("/metrics/job/second", "win_second 2\n");
    assert_eq!(r.status, 200, "{}", r.text());
    gw.interrupt();
    assert!(gw.log().contains("final snapshot written"), "{}", gw.log());
    assert_ne!(fs::read(&store).expect("the second snapshot"), first);
    assert!(!dir.file("metric.store.in_progress").exists());
    drop(gw);

    let mut gw = start(w, &args);
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("win_second{instance=\"\",job=\"second\"} 2"),
        "{scrape}"
    );
    assert!(scrape.contains("win_smoke{"), "{scrape}");
    gw.interrupt();
}

/// The periodic write (the writer thread, not the shutdown) replaces the
/// file while the gateway runs, without failures.
#[test]
fn periodic_snapshots_replace_the_file_while_running() {
    let w = wine(EXE_VAR);
    let dir = TempDir::new("windows-interval");
    let store = dir.file("metric.store");
    let persist = format!("--persistence.file={}", windows_path(&store));
    let mut gw = start(w, &[persist.as_str(), "--persistence.interval=200ms"]);
    let mut previous = Vec::new();
    for n in 1..=3 {
        let r = gw.put("/metrics/job/tick", &format!("win_tick {n}\n"));
        assert_eq!(r.status, 200, "{}", r.text());
        let deadline = Instant::now() + Duration::from_secs(20);
        let written = loop {
            let written = fs::read(&store).unwrap_or_default();
            if gauge(&gw, "pushgateway_persistence_unwritten_changes") == Some(0.0)
                && !written.is_empty()
                && written != previous
            {
                break written;
            }
            assert!(
                Instant::now() < deadline,
                "push {n} not written within 20 s\n{}",
                gw.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        previous = written;
    }
    assert_eq!(
        gauge(&gw, "pushgateway_persistence_write_failures_total"),
        Some(0.0),
        "{}",
        gw.log()
    );
    assert!(!gw.log().contains("level=error"), "{}", gw.log());
    gw.interrupt();
    drop(gw);
    let mut gw = start(w, &[persist.as_str()]);
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("win_tick{instance=\"\",job=\"tick\"} 3"),
        "{scrape}"
    );
    gw.interrupt();
}

/// An unlabelled sample of the gateway's own metrics.
fn gauge(gw: &Gateway, name: &str) -> Option<f64> {
    let scrape = gw.get("/metrics").text();
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The Windows build includes TLS (ring's C compiled by mingw-w64).
#[test]
fn serves_tls_under_wine() {
    let w = wine(EXE_VAR);
    let pki = Pki::new("windows");
    let cfg = pki.web_config(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let cfg = windows_path(Path::new(&cfg));
    let mut gw = start(w, &[&format!("--web.config.file={cfg}")]);
    support::pki::tls_push_and_scrape(&pki, gw.port, "win_tls");
    gw.interrupt();
}

/// A service of wine's service manager: removed when dropped, stopped
/// first if it still runs.
///
/// Wine counts a service's process among its system processes and ends
/// them all, its service manager too, once no other wine process runs:
/// the test keeps a console gateway of its own running meanwhile
/// ([`runs_as_a_service_and_a_service_stop_writes_the_final_snapshot`]),
/// as the other tests' gateways would if they ran at the same time.
struct Service<'a> {
    wine: &'a Wine,
    name: String,
}

impl Service<'_> {
    fn sc(&self, verb: &str) -> String {
        let out = self.wine.sc(&[verb, &self.name]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "sc {verb} {} failed ({}): {text}",
            self.name,
            out.status
        );
        text
    }

    /// `sc query`'s STATE line, e.g. "4  RUNNING".
    fn state(&self) -> String {
        let text = self.sc("query");
        field(&text, "STATE").unwrap_or_else(|| panic!("no STATE in sc query: {text}"))
    }

    fn wait_state(&self, want: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.sc("query");
            if field(&text, "STATE").is_some_and(|s| s.ends_with(want)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "service {} not {want} within {timeout:?}: {text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = self.wine.sc(&["stop", &self.name]);
        let _ = self.wine.sc(&["delete", &self.name]);
    }
}

/// The value of `NAME : value` in sc's output.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

fn wait_healthy(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match try_request(port, "GET", "/-/healthy", &[], b"", Duration::from_secs(1)) {
            Ok(r) if r.status == 200 => return,
            other => assert!(
                Instant::now() < deadline,
                "the service is not healthy on port {port} within {timeout:?}: {:?}",
                other.map(|r| r.status)
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A service stop (SERVICE_CONTROL_STOP) is the graceful stop: the final
/// snapshot is written, the service reports itself stopped with exit code
/// 0 and the process ends; started again, it restores the snapshot.
#[test]
fn runs_as_a_service_and_a_service_stop_writes_the_final_snapshot() {
    let w = wine(EXE_VAR);
    // Keeps wine from ending the service as soon as no other wine
    // process runs (see `Service`); alive until the test ends.
    let mut keeper = start(w, &[]);
    let dir = TempDir::new("windows-service");
    let store = dir.file("metric.store");
    let port = free_port();
    let name = format!("pushgateway-test-{}", std::process::id());
    // The service manager starts the process with this command line; its
    // working directory is system32, hence the absolute path.
    let bin_path = format!(
        "\"{}\" --web.listen-address=127.0.0.1:{port} --persistence.file={} --persistence.interval=5m",
        windows_path(&w.exe),
        windows_path(&store)
    );
    let created = w.sc(&["create", &name, "binPath=", &bin_path]);
    assert!(created.status.success(), "sc create: {created:?}");
    let service = Service { wine: w, name };

    service.sc("start");
    wait_healthy(port, Duration::from_secs(30));
    assert!(service.state().ends_with("RUNNING"), "{}", service.state());
    let r = support::put(port, "/metrics/job/svc", "win_service 3\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!store.exists(), "nothing written before the interval");

    service.sc("stop");
    let stopped = service.wait_state("STOPPED", Duration::from_secs(30));
    assert_eq!(
        field(&stopped, "WIN32_EXIT_CODE")
            .as_deref()
            .and_then(|v| v.split_whitespace().next()),
        Some("0"),
        "{stopped}"
    );
    assert!(
        fs::metadata(&store).map(|m| m.len() > 0).unwrap_or(false),
        "no final snapshot at {} after the service stop",
        store.display()
    );
    // The process is gone: nothing listens on the port any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while try_request(port, "GET", "/-/healthy", &[], b"", Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still answering after the service stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    service.sc("start");
    wait_healthy(port, Duration::from_secs(30));
    let scrape = support::get(port, "/metrics").text();
    assert!(
        scrape.contains("win_service{instance=\"\",job=\"svc\"} 3"),
        "restored after the service's restart: {scrape}"
    );
    service.sc("stop");
    service.wait_state("STOPPED", Duration::from_secs(30));
    drop(service);
    keeper.interrupt();
}
