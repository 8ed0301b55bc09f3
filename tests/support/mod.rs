//! Shared helpers for the integration tests and the benchmark: starting a
//! gateway process on a free loopback port, a tiny HTTP/1.1 client, and a
//! text-exposition parser that normalizes scrapes so two servers can be
//! compared semantically.
//!
//! Everything here uses only `std`, because the crate may not grow
//! dev-dependencies. Each test binary includes this module with `mod support;`
//! and uses a different subset of it, hence the blanket `dead_code` allowance.
#![allow(dead_code)]

pub mod raw;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Path of the reference implementation (Debian package `prometheus-pushgateway`).
pub const REFERENCE_BIN: &str = "/usr/bin/prometheus-pushgateway";

/// How long a freshly spawned gateway may take to answer `/-/healthy`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two readiness probes.
const STARTUP_POLL: Duration = Duration::from_millis(20);
/// Read/write timeout of ordinary requests: generous, so a slow debug build
/// under a parallel test run is not mistaken for a hang, yet still bounded.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at finding a port that nobody else grabs between our probe bind
/// and the child's own bind.
const START_ATTEMPTS: usize = 5;

/// Our binary as built by cargo for this test run.
pub fn ours() -> String {
    env!("CARGO_BIN_EXE_pushgateway").to_string()
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
static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

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
            let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
            let log_path = std::env::temp_dir().join(format!(
                "pushgateway-test-{}-{}-{}.log",
                std::process::id(),
                port,
                n
            ));
            let log = File::create(&log_path).expect("create gateway log file in temp dir");
            let log_err = log.try_clone().expect("clone gateway log file handle");
            let child = Command::new(bin)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {bin}: {e}"));
            let mut gw = Gateway {
                child,
                port,
                prefix: prefix.clone(),
                bin: bin.to_string(),
                log_path,
            };
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

    /// Polls the health endpoint until it answers 200 *from our child*:
    /// another process might hold the port, so ownership is checked too.
    fn wait_healthy(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let health = format!("{}/-/healthy", self.prefix);
        let mut last = String::from("no attempt yet");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("poll child status") {
                let log = self.log();
                if log.contains("address already in use") {
                    return Err(StartError::PortStolen);
                }
                return Err(StartError::Failed(format!("exited early with {status}")));
            }
            match try_request(self.port, "GET", &health, &[], b"", Duration::from_secs(1)) {
                // 401: the gateway is up but wants credentials (basic auth).
                // 400 with Go's hint: it is up and serves TLS on this port.
                Ok(r) if r.status == 200 || r.status == 401 || is_tls_hint(&r) => {
                    return if pid_listens_on(self.child.id(), self.port) {
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

/// Whether process `pid` owns the listening TCP socket on `port`: the inode
/// from /proc/net/tcp{,6} must be among the process's open file descriptors.
fn pid_listens_on(pid: u32, port: u16) -> bool {
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

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, invalid UTF-8 replaced, for messages and parsing.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads
/// the whole answer. Panics on transport errors: a test cannot go on then.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(port, method, path, headers, body, REQUEST_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port} failed: {e}"))
}

pub fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, &[], b"")
}

pub fn put(port: u16, path: &str, body: &str) -> Response {
    request(port, "PUT", path, &[], body.as_bytes())
}

pub fn post(port: u16, path: &str, body: &str) -> Response {
    request(port, "POST", path, &[], body.as_bytes())
}

pub fn delete(port: u16, path: &str) -> Response {
    request(port, "DELETE", path, &[], b"")
}

/// Like [`request`] but returns transport errors, with an explicit timeout
/// (the readiness probe uses a short one).
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;

    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    let _ = write!(
        head,
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    // A server may answer and close before reading a body it rejects; the
    // answer is what matters then, so a failed write is only fatal when no
    // response follows.
    let write_result = stream.write_all(&out).and_then(|()| stream.flush());

    let head_request = method == "HEAD";
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // Stop as soon as the response is complete, so a server that
                // ignores `Connection: close` costs no read timeout.
                if response_complete(&raw, head_request) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset after a complete answer (unread request body) is fine.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(write_result.err().unwrap_or(e)),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    match parse_response(&raw, head_request) {
        Err(e) => Err(write_result.err().unwrap_or(e)),
        ok => ok,
    }
}

/// Whether `raw` already holds a whole response whose end is known from its
/// headers (Content-Length, final chunk, or no body at all).
fn response_complete(raw: &[u8], head_request: bool) -> bool {
    let raw = skip_interim(raw);
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let Ok(head) = std::str::from_utf8(&raw[..end]) else {
        return false;
    };
    let body_len = raw.len() - end - 4;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if head_request || status < 200 || status == 204 || status == 304 {
        return true;
    }
    for line in head.split("\r\n").skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("Content-Length") {
            return v.parse::<usize>().is_ok_and(|len| body_len >= len);
        }
        if k.eq_ignore_ascii_case("Transfer-Encoding") && v.to_ascii_lowercase().contains("chunked")
        {
            return raw.ends_with(b"\r\n0\r\n\r\n")
                || (body_len == 5 && raw.ends_with(b"0\r\n\r\n"));
        }
    }
    false // body runs until the server closes
}

/// Drops complete interim `1xx` answers (e.g. `100 Continue` to a request
/// with `Expect: 100-continue`) before the final response; `101` is final.
fn skip_interim(mut raw: &[u8]) -> &[u8] {
    while raw.starts_with(b"HTTP/1.1 1") || raw.starts_with(b"HTTP/1.0 1") {
        if raw.starts_with(b"HTTP/1.1 101") || raw.starts_with(b"HTTP/1.0 101") {
            break;
        }
        match raw.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => raw = &raw[end + 4..],
            None => break,
        }
    }
    raw
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses a complete HTTP/1.1 response read until EOF, honouring
/// Content-Length and chunked transfer-encoding. Answers to HEAD, 1xx, 204
/// and 304 have no body whatever their headers say.
fn parse_response(raw: &[u8], head_request: bool) -> io::Result<Response> {
    let raw = skip_interim(raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(format!("no header end in {} bytes", raw.len())))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("header not UTF-8"))?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = resp
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let bodyless = head_request || status < 200 || status == 204 || status == 304;
    resp.body = if bodyless {
        Vec::new()
    } else if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = resp.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| bad("bad Content-Length"))?;
        if rest.len() < len {
            return Err(bad(format!(
                "body truncated: {} of {len} bytes",
                rest.len()
            )));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

fn decode_chunked(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("chunk size line not terminated"))?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| bad("chunk size"))?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| bad(format!("bad chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body); // trailers, if any, are ignored
        }
        if data.len() < size + 2 {
            return Err(bad("chunk truncated"));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// Exposition parsing and normalization
// ---------------------------------------------------------------------------

/// One sample line: name, labels sorted by name, normalized value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: String,
}

/// One metric family as it appears in a scrape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Family {
    pub name: String,
    /// Declared type; "untyped" when no TYPE line was given.
    pub kind: String,
    pub help: Option<String>,
    /// Sorted, so series order does not matter for equality.
    pub samples: Vec<Sample>,
}

/// A whole scrape, families sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

/// Families owned by the server itself rather than by pushers; they differ
/// between implementations (Go runtime stats, request counters, ...).
pub const INTERNAL_PREFIXES: [&str; 3] = ["go_", "process_", "pushgateway_"];
/// Per-group gauges holding wall-clock times, never equal across servers.
pub const PUSH_TIME_FAMILIES: [&str; 2] = ["push_time_seconds", "push_failure_time_seconds"];

pub fn is_internal(name: &str) -> bool {
    INTERNAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// How to treat the wall-clock push time gauges when normalizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTimes {
    /// Keep the values as they are.
    Keep,
    /// Replace each value by "0" (never) or "nonzero" (some time).
    ZeroOrNonzero,
}

impl Exposition {
    /// Parses text format 0.0.4. Errors name the offending line, so a
    /// malformed scrape from the server under test is reported clearly.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut families: Vec<Family> = Vec::new();
        // Index of the family that the previous HELP/TYPE/sample belongs to.
        let mut current: Option<usize> = None;
        for (i, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}: {line:?}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let comment = comment.trim_start_matches([' ', '\t']);
                let (keyword, rest) = split_token(comment);
                if keyword != "HELP" && keyword != "TYPE" {
                    continue; // ordinary comment
                }
                let (name, rest) = split_token(rest);
                if name.is_empty() {
                    return Err(err("HELP/TYPE without metric name"));
                }
                let idx = match current {
                    Some(c) if families[c].name == name => c,
                    _ => {
                        families.push(Family {
                            name: name.to_string(),
                            kind: "untyped".to_string(),
                            help: None,
                            samples: Vec::new(),
                        });
                        families.len() - 1
                    }
                };
                current = Some(idx);
                if keyword == "HELP" {
                    families[idx].help = Some(unescape(rest, false).map_err(|e| err(&e))?);
                } else {
                    families[idx].kind = rest.trim().to_string();
                }
                continue;
            }
            let sample = parse_sample(line).map_err(|e| err(&e))?;
            let idx = match current {
                Some(c) if belongs_to(&families[c], &sample.name) => c,
                _ => {
                    families.push(Family {
                        name: sample.name.clone(),
                        kind: "untyped".to_string(),
                        help: None,
                        samples: Vec::new(),
                    });
                    families.len() - 1
                }
            };
            current = Some(idx);
            families[idx].samples.push(sample);
        }
        for f in &mut families {
            f.samples.sort();
        }
        families.sort();
        Ok(Exposition { families })
    }

    /// Drops the server's own families (see [`INTERNAL_PREFIXES`]).
    pub fn without_internal(mut self) -> Exposition {
        self.families.retain(|f| !is_internal(&f.name));
        self
    }

    /// Applies the push time treatment to the push time gauges.
    pub fn with_push_times(mut self, mode: PushTimes) -> Exposition {
        if mode == PushTimes::ZeroOrNonzero {
            for f in &mut self.families {
                if PUSH_TIME_FAMILIES.contains(&f.name.as_str()) {
                    for s in &mut f.samples {
                        let zero = s.value.parse::<f64>().is_ok_and(|v| v == 0.0);
                        s.value = if zero { "0" } else { "nonzero" }.to_string();
                    }
                    f.samples.sort();
                }
            }
        }
        self
    }

    /// Forgets the HELP text of the named family (where the contract allows
    /// servers to pick a different one of several pushed HELP strings).
    pub fn without_help_of(mut self, names: &[&str]) -> Exposition {
        for f in &mut self.families {
            if names.contains(&f.name.as_str()) {
                f.help = None;
            }
        }
        self
    }

    /// The usual view for comparisons: pushed families only, push times
    /// reduced to zero/nonzero.
    pub fn normalized(text: &str) -> Result<Exposition, String> {
        Ok(Exposition::parse(text)?
            .without_internal()
            .with_push_times(PushTimes::ZeroOrNonzero))
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// One line per HELP, TYPE and sample, in a canonical form, for diffs.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.families {
            if let Some(h) = &f.help {
                out.push(format!("# HELP {} {h:?}", f.name));
            }
            out.push(format!("# TYPE {} {}", f.name, f.kind));
            for s in &f.samples {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                out.push(format!("{}{{{}}} {}", s.name, labels.join(","), s.value));
            }
        }
        out
    }
}

/// Human-readable difference between two expositions, empty when equal.
pub fn diff_expositions(
    left_name: &str,
    left: &Exposition,
    right_name: &str,
    right: &Exposition,
) -> String {
    if left == right {
        return String::new();
    }
    let l = left.lines();
    let r = right.lines();
    let mut out = String::new();
    for line in &l {
        if !r.contains(line) {
            let _ = writeln!(out, "  only in {left_name}:  {line}");
        }
    }
    for line in &r {
        if !l.contains(line) {
            let _ = writeln!(out, "  only in {right_name}: {line}");
        }
    }
    if out.is_empty() {
        out.push_str("  (same lines, different grouping into families)\n");
    }
    let _ = writeln!(out, "--- {left_name} ---\n{}", l.join("\n"));
    let _ = writeln!(out, "--- {right_name} ---\n{}", r.join("\n"));
    out
}

/// The raw scrape text without the server's own families, for byte-level
/// comparisons of formatting. Push time values are masked as with
/// [`PushTimes`] when `mask_push_times` is set.
pub fn strip_internal(text: &str, mask_push_times: bool) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let name = if let Some(c) = line.strip_prefix('#') {
            let (kw, rest) = split_token(c.trim_start());
            if kw == "HELP" || kw == "TYPE" {
                split_token(rest).0
            } else {
                ""
            }
        } else {
            metric_name_of(line)
        };
        if is_internal(name) {
            continue;
        }
        let masked =
            mask_push_times && !line.starts_with('#') && PUSH_TIME_FAMILIES.contains(&name);
        if let Some((series, value)) = line.rsplit_once(' ').filter(|_| masked) {
            let zero = value.parse::<f64>().is_ok_and(|v| v == 0.0);
            let _ = writeln!(out, "{series} {}", if zero { "0" } else { "nonzero" });
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn metric_name_of(line: &str) -> &str {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    &line[..end]
}

/// Splits off the first whitespace-separated token; the rest keeps its
/// inner spacing but loses the single separator.
fn split_token(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// Whether a sample named `sample` belongs to family `f` (summaries and
/// histograms spread over several sample names).
fn belongs_to(f: &Family, sample: &str) -> bool {
    if sample == f.name {
        return true;
    }
    let Some(suffix) = sample.strip_prefix(f.name.as_str()) else {
        return false;
    };
    match f.kind.as_str() {
        "summary" => suffix == "_sum" || suffix == "_count",
        "histogram" => suffix == "_sum" || suffix == "_count" || suffix == "_bucket",
        _ => false,
    }
}

/// Undoes text-format escapes: `\\` and `\n` everywhere, `\"` in label values.
fn unescape(s: &str, label_value: bool) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label_value => out.push('"'),
            // Go's parser keeps unknown escapes in HELP verbatim.
            Some(other) if !label_value => {
                out.push('\\');
                out.push(other);
            }
            other => return Err(format!("bad escape \\{other:?}")),
        }
    }
    Ok(out)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name = metric_name_of(line);
    if name.is_empty() {
        return Err("sample without metric name".to_string());
    }
    let mut rest = &line[name.len()..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let mut tokens = rest.split_whitespace();
    let raw_value = tokens.next().ok_or("sample without value")?;
    if tokens.next().is_some() {
        // Gateways never expose timestamps; a timestamp is a difference.
        return Err("sample carries a timestamp".to_string());
    }
    labels.sort();
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: normalize_value(raw_value),
    })
}

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;

/// Parses `name="value",...}` and returns the labels and what follows `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value not quoted")?;
        // Find the closing quote, skipping escaped characters.
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err("unterminated label value".to_string());
        }
        labels.push((name, unescape(&s[..i], true)?));
        s = s[i + 1..].trim_start();
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.starts_with('}') {
            return Err("expected ',' or '}' after label".to_string());
        }
    }
}

/// Canonical spelling of a sample value, so `1e+06` equals `1000000`.
pub fn normalize_value(raw: &str) -> String {
    match raw.parse::<f64>() {
        Ok(v) if v.is_nan() => "NaN".to_string(),
        Ok(v) if v == f64::INFINITY => "+Inf".to_string(),
        Ok(v) if v == f64::NEG_INFINITY => "-Inf".to_string(),
        Ok(v) => format!("{v:e}"),
        // Rust does not read Go's "+Inf"; anything else stays visible as is.
        Err(_) => match raw {
            "+Inf" | "+inf" => "+Inf".to_string(),
            _ => format!("unparsed:{raw}"),
        },
    }
}

/// Go's (and our) answer to plain HTTP on a TLS port.
fn is_tls_hint(r: &Response) -> bool {
    r.status == 400 && r.text().contains("HTTP request to an HTTPS server")
}

/// Certificates for TLS tests, made with the `openssl` command line in a
/// fresh temp directory: a CA (`ca.crt`), a server certificate for
/// `localhost` and 127.0.0.1 (`server.crt`/`server.key`), a client
/// certificate with SAN `client.example` (`client.crt`/`client.key`), and a
/// client certificate from a CA the server does not trust
/// (`rogue-client.crt`/`rogue-client.key`).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("pushgateway-pki-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create pki dir");
        let pki = Pki { dir };
        pki.ca("ca");
        pki.ca("rogue-ca");
        pki.issue(
            "server",
            "ca",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        pki.issue(
            "client",
            "ca",
            "client",
            "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth",
        );
        pki.issue(
            "rogue-client",
            "rogue-ca",
            "client",
            "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth",
        );
        pki
    }

    /// Absolute path of one of the files.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl (apt-get install -y openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `openssl req`: a new P-256 key into `key`, and a request (or with
    /// `-x509` a self-signed certificate) for `subj` into `out`.
    fn new_key(&self, extra: &[&str], key: &str, out: &str, subj: &str) {
        let mut args = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        args.extend_from_slice(extra);
        args.extend(["-keyout", key, "-out", out, "-subj", subj]);
        self.openssl(&args);
    }

    fn ca(&self, name: &str) {
        let (key, crt, subj) = (
            format!("{name}.key"),
            format!("{name}.crt"),
            format!("/CN={name}"),
        );
        self.new_key(&["-x509", "-days", "2"], &key, &crt, &subj);
    }

    /// A certificate `name.crt`/`name.key` signed by CA `ca` with the
    /// given `openssl x509 -extfile` extension lines.
    pub fn issue(&self, name: &str, ca: &str, cn: &str, extensions: &str) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        fs::write(self.dir.join(&ext), format!("{extensions}\n")).expect("write ext file");
        let subj = format!("/CN={cn}");
        self.new_key(&[], &key, &csr, &subj);
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    /// Writes a web config file into the directory and returns its path.
    pub fn web_config(&self, name: &str, yaml: &str) -> String {
        let p = self.dir.join(name);
        fs::write(&p, yaml).expect("write web config");
        p.display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What `curl` did: its exit code (0: an HTTP answer came; 35, 56, 60...:
/// TLS failures), the status code and the body.
#[derive(Debug)]
pub struct Curl {
    pub exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// Runs `curl -sS` with `args`, bounded to 10 s, and splits off the status.
pub fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl (apt-get install -y curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
