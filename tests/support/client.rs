//! A tiny HTTP/1.1 client: one request per connection, the whole answer
//! read back; and gzip for request bodies.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use super::*;

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

/// `data` gzip-compressed, for request bodies.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip in memory")
}
