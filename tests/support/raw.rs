//! Raw-socket tools for the hostile-client tests (`tests/hostile.rs`):
//! connections that send exactly the bytes a test wants, a response reader
//! that keeps everything it received for failure messages, detection of a
//! connection the server closed, and the server process's threads,
//! descriptors and memory from `/proc`.
//!
//! Everything is bounded: every read has a deadline, every loop a count.
//! Only loopback addresses are ever used.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::Gateway;

/// Default deadline for one response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of the sent and received bytes a failure message shows.
const SHOW_BYTES: usize = 600;

static SCRIPT_COUNTER: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
// Showing bytes
// ---------------------------------------------------------------------------

/// Bytes as escaped text, long runs shortened in the middle, so a failure
/// message stays readable even after sending megabytes.
pub fn show(bytes: &[u8]) -> String {
    fn esc(out: &mut String, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
    let mut out = String::new();
    if bytes.len() <= SHOW_BYTES {
        esc(&mut out, bytes);
    } else {
        esc(&mut out, &bytes[..SHOW_BYTES / 2]);
        let _ = write!(out, "[... {} bytes ...]", bytes.len() - SHOW_BYTES);
        esc(&mut out, &bytes[bytes.len() - SHOW_BYTES / 2..]);
    }
    format!("\"{out}\" ({} bytes)", bytes.len())
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// One response exactly as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// Header lines split at the first colon; the value is the raw bytes
    /// with surrounding blanks removed (no other processing).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The head: status line and header lines, up to and including the
    /// empty line.
    pub head: Vec<u8>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First header with this name (case-insensitive), as lossy text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Every header with this name.
    pub fn headers_named(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Whether a `Connection` header lists `token` (case-insensitive).
    pub fn connection_has(&self, token: &str) -> bool {
        self.headers_named("Connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why no complete response could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// The server closed the connection (read returned 0).
    Closed,
    /// The connection was reset.
    Reset,
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// What arrived is not an HTTP response.
    Malformed,
}

/// How a connection ended up after waiting for the server to close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseState {
    /// Orderly close from the server (read returned 0).
    Closed,
    /// Reset by the server.
    Reset,
    /// Still open when the wait ended.
    Open,
}

impl CloseState {
    pub fn is_closed(self) -> bool {
        self != CloseState::Open
    }
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// A loopback connection that remembers what went over it, so a failed
/// assertion can show the whole exchange.
pub struct Conn {
    pub stream: TcpStream,
    pub port: u16,
    /// Everything written (kept up to a few KiB, plus the total count).
    sent: Vec<u8>,
    sent_total: usize,
    /// Everything received, in order.
    pub received: Vec<u8>,
    /// Received bytes not yet consumed by `read_response`.
    pending: Vec<u8>,
    /// Set once the server closed or reset the connection.
    pub eof: Option<CloseState>,
}

/// Opens a connection to 127.0.0.1:`port`, panicking with a clear message
/// when the connection cannot be made.
pub fn connect(port: u16) -> Conn {
    try_connect(port, READ_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"))
}

/// Opens a connection to 127.0.0.1:`port`.
pub fn try_connect(port: u16, timeout: Duration) -> io::Result<Conn> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(Conn {
        stream,
        port,
        sent: Vec::new(),
        sent_total: 0,
        received: Vec::new(),
        pending: Vec::new(),
        eof: None,
    })
}

impl Conn {
    fn record_sent(&mut self, bytes: &[u8]) {
        const KEEP: usize = 4096;
        self.sent_total += bytes.len();
        if self.sent.len() < KEEP {
            let room = KEEP - self.sent.len();
            self.sent.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.record_sent(bytes);
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Like [`Conn::send`] but panics, with the exchange, on a write error.
    pub fn send_ok(&mut self, bytes: &[u8]) {
        if let Err(e) = self.send(bytes) {
            panic!("write failed: {e}\n{}", self.transcript());
        }
    }

    /// What was sent and received so far, for failure messages.
    pub fn transcript(&self) -> String {
        let more = if self.sent_total > self.sent.len() {
            format!(
                " [first {} of {} bytes shown]",
                self.sent.len(),
                self.sent_total
            )
        } else {
            String::new()
        };
        format!(
            "  sent:     {}{more}\n  received: {}\n  connection: {}",
            show(&self.sent),
            show(&self.received),
            match self.eof {
                None => "open as far as we know",
                Some(CloseState::Closed) => "closed by the server",
                Some(CloseState::Reset) => "reset by the server",
                Some(CloseState::Open) => "open",
            }
        )
    }

    /// Reads once, waiting at most until `deadline`. Ok(0) means EOF.
    fn fill(&mut self, deadline: Instant) -> Result<usize, ReadFailure> {
        if let Some(state) = self.eof {
            return Err(match state {
                CloseState::Reset => ReadFailure::Reset,
                _ => ReadFailure::Closed,
            });
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadFailure::Timeout);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(wait))
                .expect("set read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = Some(CloseState::Closed);
                    return Err(ReadFailure::Closed);
                }
                Ok(n) => {
                    self.received.extend_from_slice(&buf[..n]);
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => {
                    self.eof = Some(CloseState::Reset);
                    return Err(ReadFailure::Reset);
                }
            }
        }
    }

    /// Reads one response (a `1xx` interim answer counts as one), waiting
    /// at most `timeout`. `head_request`: the answer has no body.
    pub fn read_response_for(
        &mut self,
        timeout: Duration,
        head_request: bool,
    ) -> Result<RawResponse, ReadFailure> {
        let deadline = Instant::now() + timeout;
        // The head.
        let (head_end, sep) = loop {
            if let Some(found) = find_head_end(&self.pending) {
                break found;
            }
            self.fill(deadline)?;
        };
        let head = self.pending[..head_end + sep].to_vec();
        let (version, status, reason, headers) =
            parse_head(&self.pending[..head_end]).ok_or(ReadFailure::Malformed)?;
        self.pending.drain(..head_end + sep);
        let mut resp = RawResponse {
            version,
            status,
            reason,
            headers,
            head,
            body: Vec::new(),
        };
        if head_request || status < 200 || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("Transfer-Encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = self.read_chunked(deadline)?;
        } else if let Some(len) = resp.header("Content-Length") {
            let len: usize = len.trim().parse().map_err(|_| ReadFailure::Malformed)?;
            while self.pending.len() < len {
                self.fill(deadline)?;
            }
            resp.body = self.pending.drain(..len).collect();
        } else {
            // Delimited by the close of the connection.
            loop {
                match self.fill(deadline) {
                    Ok(_) => {}
                    Err(ReadFailure::Closed) | Err(ReadFailure::Reset) => break,
                    Err(e) => return Err(e),
                }
            }
            resp.body = std::mem::take(&mut self.pending);
        }
        Ok(resp)
    }

    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadFailure> {
        let mut body = Vec::new();
        for _ in 0..100_000 {
            let line_end = loop {
                if let Some(p) = self.pending.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                self.fill(deadline)?;
            };
            let line = String::from_utf8_lossy(&self.pending[..line_end]).into_owned();
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| ReadFailure::Malformed)?;
            self.pending.drain(..line_end + 2);
            if size == 0 {
                // Trailers until an empty line.
                for _ in 0..1000 {
                    let end = loop {
                        if let Some(p) = self.pending.windows(2).position(|w| w == b"\r\n") {
                            break p;
                        }
                        self.fill(deadline)?;
                    };
                    self.pending.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
                return Err(ReadFailure::Malformed);
            }
            while self.pending.len() < size + 2 {
                self.fill(deadline)?;
            }
            body.extend_from_slice(&self.pending[..size]);
            self.pending.drain(..size + 2);
        }
        Err(ReadFailure::Malformed)
    }

    /// Reads one response within [`READ_TIMEOUT`].
    pub fn read_response(&mut self) -> Result<RawResponse, ReadFailure> {
        self.read_response_for(READ_TIMEOUT, false)
    }

    /// Reads one response and checks its status; on anything else panics
    /// with `what`, the request bytes sent and the bytes received.
    pub fn expect_status(&mut self, what: &str, want: u16) -> RawResponse {
        self.expect_status_within(what, want, READ_TIMEOUT)
    }

    pub fn expect_status_within(
        &mut self,
        what: &str,
        want: u16,
        timeout: Duration,
    ) -> RawResponse {
        match self.read_response_for(timeout, false) {
            Ok(r) if r.status == want => r,
            Ok(r) => panic!(
                "{what}: expected status {want}, got {} {}\n{}",
                r.status,
                r.reason,
                self.transcript()
            ),
            Err(e) => panic!(
                "{what}: expected status {want}, but no complete response: {e:?}\n{}",
                self.transcript()
            ),
        }
    }

    /// Like [`Conn::expect_status`] but accepts any of `want`.
    pub fn expect_one_of(&mut self, what: &str, want: &[u16]) -> RawResponse {
        match self.read_response() {
            Ok(r) if want.contains(&r.status) => r,
            Ok(r) => panic!(
                "{what}: expected one of {want:?}, got {} {}\n{}",
                r.status,
                r.reason,
                self.transcript()
            ),
            Err(e) => panic!(
                "{what}: expected one of {want:?}, but no complete response: {e:?}\n{}",
                self.transcript()
            ),
        }
    }

    /// Waits up to `timeout` for the server to close the connection.
    /// Bytes arriving meanwhile are kept (see `received`, `pending`).
    pub fn wait_closed(&mut self, timeout: Duration) -> CloseState {
        let deadline = Instant::now() + timeout;
        for _ in 0..1_000_000 {
            match self.fill(deadline) {
                Ok(_) => {}
                Err(ReadFailure::Closed) => return CloseState::Closed,
                Err(ReadFailure::Reset) => return CloseState::Reset,
                Err(_) => return CloseState::Open,
            }
        }
        CloseState::Open
    }

    /// Asserts the server closes the connection within `timeout`, with
    /// nothing more arriving before the close.
    pub fn expect_closed(&mut self, what: &str, timeout: Duration) {
        let before = self.pending.len();
        let state = self.wait_closed(timeout);
        assert!(
            state.is_closed(),
            "{what}: the server should have closed the connection within {timeout:?}\n{}",
            self.transcript()
        );
        assert!(
            self.pending.len() == before,
            "{what}: unexpected bytes before the close\n{}",
            self.transcript()
        );
    }

    /// Asserts the connection stays open (no close, no reset, no bytes)
    /// for `wait`.
    pub fn expect_open(&mut self, what: &str, wait: Duration) {
        let before = self.pending.len();
        let state = self.wait_closed(wait);
        assert!(
            state == CloseState::Open && self.pending.len() == before,
            "{what}: the connection should have stayed open and quiet for {wait:?}\n{}",
            self.transcript()
        );
    }

    /// Bytes received but not consumed as a response.
    pub fn unread(&self) -> &[u8] {
        &self.pending
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Where the head ends: index of the terminating empty line and its length.
/// Accepts CRLF and bare LF line ends, so a sloppy server is still read.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4));
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

type Head = (String, u16, String, Vec<(String, Vec<u8>)>);

fn parse_head(head: &[u8]) -> Option<Head> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = std::str::from_utf8(lines.next()?).ok()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?.to_string();
    if !version.starts_with("HTTP/") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for line in lines {
        // A line without a colon is kept with an empty name, so a test can
        // see it instead of the whole response being unreadable.
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            headers.push((String::new(), line.to_vec()));
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
        let value = line[colon + 1..].trim_ascii().to_vec();
        headers.push((name, value));
    }
    Some((version, status, reason, headers))
}

/// Opens a connection, sends `request` and reads one response. Panics,
/// with the exchange, when the status is not `want`.
pub fn exchange(port: u16, what: &str, request: &[u8], want: u16) -> (Conn, RawResponse) {
    let mut c = connect(port);
    // A server may answer and close before taking all of the request; the
    // answer is what counts, so the write result is only checked by reading.
    let _ = c.send(request);
    let r = c.expect_status(what, want);
    (c, r)
}

/// Sends `total` bytes made by `piece(i)` from a second thread while this
/// one reads a response, so a server that answers (and closes) early is
/// heard. Returns the response (or why none came) and the write error, if
/// any, with the bytes written before it.
pub fn send_while_reading(
    conn: &mut Conn,
    pieces: impl Iterator<Item = Vec<u8>> + Send + 'static,
    timeout: Duration,
) -> (Result<RawResponse, ReadFailure>, Option<(usize, io::Error)>) {
    let mut writer = conn.stream.try_clone().expect("clone stream");
    let handle = thread::spawn(move || {
        let mut written = 0usize;
        let mut first = Vec::new();
        for p in pieces {
            if first.len() < 4096 {
                first.extend_from_slice(&p[..p.len().min(4096 - first.len())]);
            }
            if let Err(e) = writer.write_all(&p) {
                return (written, first, Some(e));
            }
            written += p.len();
        }
        (written, first, None)
    });
    let resp = conn.read_response_for(timeout, false);
    // Answered (or given up on): the writer may be blocked on a server
    // that no longer reads; make it fail now instead of at its timeout.
    let _ = conn.stream.shutdown(Shutdown::Write);
    let (written, first, err) = handle.join().expect("writer thread");
    conn.record_sent(&first);
    conn.sent_total = conn.sent_total - first.len() + written;
    (resp, err.map(|e| (written, e)))
}

// ---------------------------------------------------------------------------
// Building requests
// ---------------------------------------------------------------------------

/// A chunked body: `data` cut into chunks of at most `chunk` bytes, and
/// the last chunk.
pub fn chunked(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Standard base64 (with padding), for `Authorization: Basic`.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// `Basic ...` credentials.
pub fn basic_auth(user: &str, pass: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Number of threads of process `pid` (`Threads:` in /proc/PID/status).
pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:").unwrap_or_else(|| panic!("process {pid} is gone"))
}

/// Number of open file descriptors of process `pid`.
pub fn fds(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}"))
        .count() as u64
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:").unwrap_or_else(|| panic!("process {pid} is gone"))
}

/// Peak resident set size of process `pid` in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:").unwrap_or_else(|| panic!("process {pid} is gone"))
}

/// Whether process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("?");
    state != "Z" && state != "X"
}

/// Polls `measure` every 100 ms for up to `timeout` until it is at most
/// `limit`; returns the last value (which may still be above `limit`).
pub fn settle_at_most(timeout: Duration, limit: u64, mut measure: impl FnMut() -> u64) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut last = measure();
    for _ in 0..10_000 {
        if last <= limit || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        last = measure();
    }
    last
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (a test with
/// thousands of sockets needs them; gateways started afterwards inherit it).
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a pointer to a live, zeroed struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            panic!("getrlimit: {}", io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                panic!("setrlimit: {}", io::Error::last_os_error());
            }
        }
        lim.rlim_cur as u64
    }
}

/// Starts `bin` through `prlimit --nofile=N:N`, so the gateway runs with at
/// most `nofile` descriptors. `Gateway::start` puts its own listen flag
/// first, so the limit goes into a small wrapper script (`exec` keeps the
/// process id, so `pid()` and the `/proc` readings are the gateway's).
pub fn start_with_nofile(bin: &str, nofile: u32, args: &[&str]) -> (Gateway, PathBuf) {
    let n = SCRIPT_COUNTER.fetch_add(1, Ordering::Relaxed);
    let script = std::env::temp_dir().join(format!(
        "pushgateway-hostile-prlimit-{}-{n}.sh",
        std::process::id()
    ));
    fs::write(
        &script,
        format!("#!/bin/sh\nexec prlimit --nofile={nofile}:{nofile} -- '{bin}' \"$@\"\n"),
    )
    .expect("write prlimit wrapper");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    let gw = Gateway::start(script.to_str().expect("utf-8 temp path"), args);
    (gw, script)
}

/// The soft RLIMIT_NOFILE of process `pid` ("Max open files").
pub fn nofile_of(pid: u32) -> Option<u64> {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------
// Gzip bomb
// ---------------------------------------------------------------------------

/// A gzip stream of `mib` MiB of newlines (blank lines: a valid, empty
/// text-format push, so only a size limit can reject it). Built from one
/// compressed MiB repeated: after a full flush the compressor starts from
/// scratch, so every further MiB compresses to the same bytes; the CRC of
/// the whole is combined from the CRC of one MiB.
pub fn gzip_bomb(mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress};
    let block = vec![b'\n'; 1 << 20];
    let mut c = Compress::new(Compression::best(), false);
    let deflate = |c: &mut Compress, input: &[u8], flush: FlushCompress| -> Vec<u8> {
        let mut out = Vec::new();
        let mut consumed = 0usize;
        for _ in 0..10_000 {
            let before_in = c.total_in();
            out.reserve(256 * 1024);
            let status = c
                .compress_vec(&input[consumed..], &mut out, flush)
                .expect("deflate");
            consumed += (c.total_in() - before_in) as usize;
            let done = match flush {
                FlushCompress::Finish => status == flate2::Status::StreamEnd,
                // Output space left over: the flush is complete.
                _ => consumed == input.len() && out.len() < out.capacity(),
            };
            if done {
                return out;
            }
        }
        panic!("deflate did not finish");
    };
    let first = deflate(&mut c, &block, FlushCompress::Full);
    let second = deflate(&mut c, &block, FlushCompress::Full);
    let third = deflate(&mut c, &block, FlushCompress::Full);
    assert_eq!(second, third, "full flush makes blocks repeat");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&first);
    for _ in 1..mib {
        out.extend_from_slice(&second);
    }
    out.extend_from_slice(&deflate(&mut c, &[], FlushCompress::Finish));
    let mut one = Crc::new();
    one.update(&block);
    let mut crc = Crc::new();
    for _ in 0..mib {
        crc.combine(&one);
    }
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&((mib as u64 * (1 << 20)) as u32).to_le_bytes());
    out
}

/// CPU time (user + system, in clock ticks of 10 ms) of the gateway's
/// I/O thread, the one named `http-io`.
pub fn io_thread_ticks(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the gateway's threads");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "http-io" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).expect("read thread stat");
        // After "(comm)": state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(')').expect("stat has a comm").1;
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        return f[11] + f[12];
    }
    panic!("the gateway {pid} has no http-io thread");
}

/// CPU time (user + system, in clock ticks) of the whole gateway process.
pub fn process_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read process stat");
    let rest = stat.rsplit_once(')').expect("stat has a comm").1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    f[11] + f[12]
}
