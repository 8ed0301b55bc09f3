//! Starting a gateway process (ours or the reference) on a free loopback
//! port, waiting until it is healthy, and reading its log and memory.

use std::collections::HashSet;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// Path of the reference implementation (Debian package `prometheus-pushgateway`).
pub const REFERENCE_BIN: &str = "/usr/bin/prometheus-pushgateway";

/// How long a freshly spawned gateway may take to answer `/-/healthy`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness probes.
const STARTUP_POLL: Duration = Duration::from_millis(20);
/// Read/write timeout of ordinary requests: generous, so a slow debug build
/// under a parallel test run is not mistaken for a hang, yet still bounded.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at finding a port that nobody else grabs between our probe bind
/// and the child's own bind.
const START_ATTEMPTS: usize = 5;

/// Our binary as built by cargo for this test run, or the one named by
/// `PUSHGATEWAY_BIN` (to run a suite against the static build).
pub fn ours() -> String {
    std::env::var("PUSHGATEWAY_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_pushgateway").to_string())
}

/// The reference binary. Panics (the test must fail, not silently skip) when
/// it is not installed, because every differential test needs it.
pub fn reference() -> String {
    assert!(
        Path::new(REFERENCE_BIN).exists(),
        "reference not installed: apt-get install -y prometheus-pushgateway"
    );
    REFERENCE_BIN.to_string()
}

/// A running gateway process, killed (by PID) and reaped when dropped.
pub struct Gateway {
    child: Child,
    /// Loopback port the gateway listens on.
    pub port: u16,
    /// Route prefix (`--web.route-prefix`), "" when none; the readiness probe
    /// and the lifecycle endpoints live under it.
    pub prefix: String,
    /// Binary that was started, for failure messages.
    pub bin: String,
    /// File receiving the child's stdout and stderr, shown when something fails.
    pub log_path: PathBuf,
}

/// Ports handed out by this test process, so two gateways started in
/// parallel by the same test binary never race for the same port.
static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Makes log file names unique within this process.
pub(crate) static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Gateway {
    /// Starts `bin` listening on a fresh 127.0.0.1 port with the extra `args`
    /// and waits until `GET <prefix>/-/healthy` answers 200.
    ///
    /// Unless `args` set `--persistence.file` themselves, `--persistence.file=`
    /// (memory only) is passed: the Debian reference otherwise defaults to
    /// /var/lib/prometheus/pushgateway.data, which every test process would
    /// share, load at start and write on `/-/quit`.
    ///
    /// Panics with the process log if it never becomes healthy.
    pub fn start(bin: &str, args: &[&str]) -> Gateway {
        Gateway::start_with_env(bin, args, &[])
    }

    /// Like [`Gateway::start`], with extra environment variables.
    pub fn start_with_env(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let prefix = route_prefix(args);
        let mut args: Vec<&str> = args.to_vec();
        if !args.iter().any(|a| a.starts_with("--persistence.file")) {
            args.insert(0, "--persistence.file=");
        }
        let args = args.as_slice();
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let mut gw = Gateway::spawn(bin, port, &prefix, args, env);
            match gw.wait_healthy() {
                Ok(()) => return gw,
                // Somebody else took the port: try again with another one.
                Err(StartError::PortStolen) => {
                    last_log = gw.log();
                    continue;
                }
                Err(StartError::Failed(why)) => {
                    panic!(
                        "{bin} {args:?} on port {port} did not become healthy: {why}\n--- log {} ---\n{}",
                        gw.log_path.display(),
                        gw.log()
                    );
                }
            }
        }
        panic!(
            "{bin} {args:?}: no usable port after {START_ATTEMPTS} attempts\n--- last log ---\n{last_log}"
        );
    }

    /// Starts `bin` on the given loopback `port` (e.g. again where a stopped
    /// gateway listened) with the extra `args`, exactly as given (no
    /// `--persistence.file=` added), and waits until it is healthy. Panics
    /// with the log if it is not, including when the port is taken.
    pub fn start_on(bin: &str, port: u16, args: &[&str]) -> Gateway {
        let mut gw = Gateway::spawn(bin, port, &route_prefix(args), args, &[]);
        if let Err(e) = gw.wait_healthy() {
            let why = match e {
                StartError::PortStolen => "port taken by another process".to_string(),
                StartError::Failed(why) => why,
            };
            panic!(
                "{bin} {args:?} on port {port} did not become healthy: {why}\n--- log {} ---\n{}",
                gw.log_path.display(),
                gw.log()
            );
        }
        gw
    }

    /// Spawns `bin` on `port`, its output going to a fresh log file.
    fn spawn(bin: &str, port: u16, prefix: &str, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
        let log_path = std::env::temp_dir().join(format!(
            "pushgateway-test-{}-{}-{}.log",
            std::process::id(),
            port,
            n
        ));
        let log = File::create(&log_path).expect("create gateway log file in temp dir");
        let log_err = log.try_clone().expect("clone gateway log file handle");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = spawn_script(&mut cmd).unwrap_or_else(|e| panic!("cannot spawn {bin}: {e}"));
        Gateway {
            child,
            port,
            prefix: prefix.to_string(),
            bin: bin.to_string(),
            log_path,
        }
    }

    /// Polls the health endpoint until it answers 200 *from our child*:
    /// another process might hold the port, so ownership is checked too.
    fn wait_healthy(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let health = format!("{}/-/healthy", self.prefix);
        let mut last = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll child status") {
                let log = self.log();
                // Go says "address already in use", Rust's std "Address
                // already in use".
                if log.to_lowercase().contains("address already in use") {
                    return Err(StartError::PortStolen);
                }
                return Err(StartError::Failed(format!("exited early with {status}")));
            }
            match try_request(self.port, "GET", &health, &[], b"", Duration::from_secs(1)) {
                // 401: the gateway is up but wants credentials (basic auth).
                // 400 with Go's hint: it is up and serves TLS on this port.
                Ok(r) if r.status == 200 || r.status == 401 || is_tls_hint(&r) => {
                    return if pid_listens_on(self.child.id(), self.port)
                        || logs_listening_on(&self.log(), self.port)
                    {
                        Ok(())
                    } else {
                        Err(StartError::PortStolen)
                    };
                }
                Ok(r) => last = format!("status {} body {:?}", r.status, r.text()),
                Err(e) => last = e.to_string(),
            }
            thread::sleep(STARTUP_POLL);
        }
        Err(StartError::Failed(format!(
            "not healthy within {STARTUP_TIMEOUT:?}, last probe: {last}"
        )))
    }

    /// Sends SIGTERM to `pid` (the gateway's own, or a process inside
    /// it such as a chrooted gateway's) and requires a clean exit of this
    /// process within `timeout`: the graceful stop every restart test needs.
    pub fn terminate(&mut self, pid: u32, timeout: Duration) {
        send_sigterm(pid);
        let exit = self
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("no exit within {timeout:?} after SIGTERM\n{}", self.log()));
        assert!(exit.success(), "exit status {exit:?}\n{}", self.log());
    }

    /// [`Gateway::terminate`] on the gateway's own process.
    pub fn stop(&mut self) {
        self.terminate(self.pid(), Duration::from_secs(30));
    }

    /// Stops the gateway (SIGTERM) and requires the final snapshot at
    /// `store`, which must not exist before (a `--persistence.interval`
    /// longer than the test): what a graceful stop writes.
    pub fn stop_writing_final_snapshot(mut self, store: &std::path::Path) {
        assert!(!store.exists(), "nothing written before the interval");
        self.stop();
        assert!(
            std::fs::metadata(store)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "no final snapshot at {}\n{}",
            store.display(),
            self.log()
        );
    }

    /// Sends SIGINT to the gateway's process and requires a clean exit
    /// within 30 s. Under wine that is Ctrl-C (wine turns SIGINT into
    /// CTRL_C_EVENT; SIGTERM ends the process without one), the graceful
    /// stop of the Windows build.
    pub fn interrupt(&mut self) {
        send_signal(self.pid(), "INT");
        let timeout = Duration::from_secs(30);
        let exit = self
            .wait_exit(timeout)
            .unwrap_or_else(|| panic!("no exit within {timeout:?} after SIGINT\n{}", self.log()));
        assert!(exit.success(), "exit status {exit:?}\n{}", self.log());
    }

    /// The process id, e.g. to read `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<log unreadable: {e}>"))
    }

    /// Waits (bounded) for the process to exit by itself, e.g. after `/-/quit`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll child status") {
                return Some(status);
            }
            thread::sleep(STARTUP_POLL);
        }
        None
    }

    /// Resident set size in KiB (VmRSS), or None if the process is gone.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.port, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.port, path)
    }

    pub fn put(&self, path: &str, body: &str) -> Response {
        put(self.port, path, body)
    }

    pub fn post(&self, path: &str, body: &str) -> Response {
        post(self.port, path, body)
    }

    pub fn delete(&self, path: &str) -> Response {
        delete(self.port, path)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Kill by PID (Child::kill targets exactly this process); errors only
        // mean it already exited, e.g. after /-/quit.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "gateway {} (port {}) log kept at {}",
                self.bin,
                self.port,
                self.log_path.display()
            );
        } else {
            let _ = fs::remove_file(&self.log_path);
        }
    }
}

enum StartError {
    PortStolen,
    Failed(String),
}

/// Route prefix implied by the arguments, without trailing slash.
fn route_prefix(args: &[&str]) -> String {
    let mut prefix = "";
    for a in args {
        if let Some(p) = a.strip_prefix("--web.route-prefix=") {
            prefix = p;
        }
    }
    prefix.trim_end_matches('/').to_string()
}

/// A port that was free a moment ago and that this process has not handed
/// out before. The probe listener is dropped so the child can bind it.
pub fn free_port() -> u16 {
    let mut used = USED_PORTS.lock().expect("port registry poisoned");
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind probe listener on 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("probe listener has an address")
            .port();
        if used.insert(port) {
            return port;
        }
    }
    panic!("the OS kept handing out ports this process already uses");
}

/// Whether process `pid`, or one of its descendants, owns the listening TCP
/// socket on `port`: the inode from /proc/net/tcp{,6} must be among the
/// process's open file descriptors. Descendants count for gateways started
/// through a wrapper that forks (tests/image.rs: unshare, then chroot).
fn pid_listens_on(pid: u32, port: u16) -> bool {
    one_pid_listens_on(pid, port)
        || descendants(pid)
            .into_iter()
            .any(|p| one_pid_listens_on(p, port))
}

/// Whether the gateway's log says it listens on 127.0.0.1:`port` (ours
/// and Go's both log `msg="Listening on" address=127.0.0.1:PORT`): it
/// bound the port, so the answer came from it. The proof for a gateway
/// whose socket no process of its own holds: under wine the listening
/// socket lives in the wineserver, not in the Windows process.
fn logs_listening_on(log: &str, port: u16) -> bool {
    let address = format!("address=127.0.0.1:{port}");
    log.lines()
        .any(|l| l.contains("msg=\"Listening on\"") && l.split_whitespace().any(|f| f == address))
}

/// The process ids of all descendants of `pid` (children, their children...),
/// from the parent ids in /proc/*/stat.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, then the parent id.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((p, ppid));
        }
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, pp) in &parents {
            if pp == parent && !found.contains(&p) {
                found.push(p);
                frontier.push(p);
            }
        }
    }
    found
}

fn one_pid_listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // Fields: sl local rem st ... inode (index 9). State 0A is LISTEN.
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
            .unwrap_or(false)
    })
}

/// `kill -TERM pid`, required to succeed.
pub fn send_sigterm(pid: u32) {
    send_signal(pid, "TERM");
}

/// `kill -SIGNAL pid` (SIGNAL as kill names it: TERM, INT), required to
/// succeed.
pub fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Spawns `cmd`, retrying a few times on ETXTBSY ("Text file busy").
///
/// Tests write wrapper scripts and run them. While one test thread holds a
/// script open for writing, a child forked by another thread inherits that
/// descriptor until it execs, and running the script in that window fails.
/// The window is microseconds wide, so a short bounded retry closes it.
pub fn spawn_script(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}
