//! A real Prometheus server (Debian's `prometheus`) on a free loopback
//! port with a given configuration, its data and log in a temporary
//! directory; killed (by PID) when dropped.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `config` (the text of prometheus.yml) and
    /// waits (up to 60 s) until `/-/ready` answers 200.
    pub fn start(config: &str) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS_BIN).exists(),
            "prometheus not installed: apt-get install -y prometheus (or make deps)"
        );
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let config_path = dir.write("prometheus.yml", config);
        let log = fs::File::create(dir.file("prometheus.log")).expect("log file");
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.file("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, port, dir };
        p.wait_until("Prometheus ready", || {
            try_request(port, "GET", "/-/ready", &[], b"", Duration::from_secs(1))
                .map(|r| r.status == 200)
                .unwrap_or(false)
        });
        p
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.file("prometheus.log")).unwrap_or_default()
    }

    /// Polls `cond` every 200 ms for up to 60 s; panics with the log after.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The raw JSON answer of an instant query.
    pub fn query(&self, promql: &str) -> String {
        let mut q = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' {
                q.push(b as char);
            } else {
                q.push_str(&format!("%{b:02X}"));
            }
        }
        let r = get(self.port, &format!("/api/v1/query?query={q}"));
        assert_eq!(r.status, 200, "query {promql}: {}", r.text());
        r.text()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
