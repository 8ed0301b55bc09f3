//! Parsing and checking a request head: request line, header fields and
//! the framing they declare.
//!
//! `httparse` does the byte-level work (tokens, header bytes, line ends,
//! bare LF included); this module applies the rules on top that keep a
//! connection in step, answering as Go's net/http in the reference does:
//! one valid Content-Length, only `chunked` as transfer coding, chunked
//! winning over Content-Length, a Host on every HTTP/1.1 request, HTTP/1.x
//! only. Pure: bytes in, a [`Head`] or a [`HeadError`] out.

use std::fmt;

/// Largest head accepted, request line included: Go's
/// `DefaultMaxHeaderBytes` (1 MiB) plus the 4 KiB it allows on top.
pub(crate) const MAX_HEAD: usize = (1 << 20) + 4096;

/// Most header fields in one head. Go has no count limit, only the size;
/// 10,000 fields is far beyond any client while keeping the parser's
/// table bounded.
pub(crate) const MAX_HEADERS: usize = 10_000;

/// How the request's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, checked request head.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Head {
    pub method: String,
    /// The target in origin form (`/path?query`); an absolute-form target
    /// is reduced to it, as Go does.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Header fields in order; names as sent, values with obs-text bytes
    /// replaced (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept after the answer.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body.
    pub expect_continue: bool,
    /// The head was legal but suspicious (Content-Length beside
    /// Transfer-Encoding): answer, then close, as RFC 9112 asks.
    pub close_after: bool,
}

impl Head {
    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a head was refused; each maps to the status Go answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Over [`MAX_HEAD`] bytes or [`MAX_HEADERS`] fields: 431.
    TooLarge,
    /// Bytes that do not form an HTTP/1.x head; says which part.
    Malformed(&'static str),
    /// A well-formed version other than HTTP/1.0 and 1.1: 505.
    UnsupportedVersion,
    /// Any transfer coding but a lone `chunked`: 501.
    UnsupportedTransferEncoding,
    /// A Content-Length that is not one plain decimal number.
    BadContentLength(String),
    /// Several Content-Length fields that disagree.
    ConflictingContentLength,
    MissingHost,
    TooManyHosts,
    BadHost,
    /// An `Expect` other than `100-continue`: 417.
    UnsupportedExpectation,
}

impl HeadError {
    pub(crate) fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::UnsupportedVersion => 505,
            HeadError::UnsupportedTransferEncoding => 501,
            HeadError::UnsupportedExpectation => 417,
            _ => 400,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::TooLarge => write!(
                f,
                "request head larger than {MAX_HEAD} bytes or with more than {MAX_HEADERS} header fields"
            ),
            HeadError::Malformed(what) => write!(f, "malformed request: {what}"),
            HeadError::UnsupportedVersion => {
                f.write_str("unsupported protocol version (HTTP/1.0 and HTTP/1.1 only)")
            }
            HeadError::UnsupportedTransferEncoding => f.write_str(
                "unsupported transfer encoding (only a single \"Transfer-Encoding: chunked\")",
            ),
            HeadError::BadContentLength(v) => {
                write!(
                    f,
                    "bad Content-Length {v:?}: expected a decimal number of bytes"
                )
            }
            HeadError::ConflictingContentLength => {
                f.write_str("message cannot contain multiple differing Content-Length headers")
            }
            HeadError::MissingHost => f.write_str("missing required Host header"),
            HeadError::TooManyHosts => f.write_str("too many Host headers"),
            HeadError::BadHost => f.write_str("malformed Host header"),
            HeadError::UnsupportedExpectation => {
                f.write_str("unsupported Expect header (only \"100-continue\")")
            }
        }
    }
}

impl std::error::Error for HeadError {}

/// Where the head ends in `buf`, if it is complete: the index just past
/// the empty line. Only looks from `from` on (minus three bytes of
/// overlap), so a head trickling in is not rescanned from the start.
pub(crate) fn find_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(p) = memchr(b'\n', &buf[i..]) {
        let lf = i + p;
        // "\n\n" or "\n\r\n" ends the head. A lone leading empty line
        // (allowed before the request line) is skipped by httparse and
        // cannot end it, since the request line comes first.
        if buf.get(lf + 1) == Some(&b'\n') {
            return Some(lf + 2);
        }
        if buf.get(lf + 1) == Some(&b'\r') && buf.get(lf + 2) == Some(&b'\n') {
            return Some(lf + 3);
        }
        i = lf + 1;
    }
    None
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses a complete head (`buf` ends with its empty line).
pub(crate) fn parse(buf: &[u8]) -> Result<Head, HeadError> {
    let mut small = [httparse::EMPTY_HEADER; 64];
    match parse_with(buf, &mut small) {
        Err(HeadError::TooLarge) => {
            let mut big = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
            parse_with(buf, &mut big)
        }
        other => other,
    }
}

fn parse_with<'b>(buf: &'b [u8], table: &mut [httparse::Header<'b>]) -> Result<Head, HeadError> {
    let mut req = httparse::Request::new(table);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return later_http1(buf),
        Err(e) => return Err(HeadError::Malformed(describe(e))),
    }
    let method = req.method.unwrap_or_default().to_owned();
    let minor = req.version.unwrap_or(1);
    let target = origin_form(&method, req.path.unwrap_or_default())?;
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(trim(h.value)).into_owned();
            (h.name.to_owned(), value)
        })
        .collect();
    let mut head = Head {
        method,
        target,
        minor,
        headers,
        framing: BodyFraming::None,
        keep_alive: minor == 1,
        expect_continue: false,
        close_after: false,
    };
    check_host(&head)?;
    head.framing = framing(&head)?;
    let tokens = |t: &str| {
        head.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Connection"))
            .flat_map(|(_, v)| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(t))
    };
    if tokens("close") {
        head.keep_alive = false;
    } else if minor == 0 && tokens("keep-alive") {
        head.keep_alive = true;
    }
    if head.framing == BodyFraming::Chunked && head.header("Content-Length").is_some() {
        head.close_after = true;
    }
    // Go: 100-continue is honoured on HTTP/1.1 with a body and ignored
    // otherwise; any other expectation gets 417.
    if let Some(expect) = head.header("Expect")
        && !expect.is_empty()
    {
        if !expect.eq_ignore_ascii_case("100-continue") {
            return Err(HeadError::UnsupportedExpectation);
        }
        head.expect_continue = minor == 1 && head.framing != BodyFraming::None;
    }
    Ok(head)
}

/// Go serves `HTTP/1.x` for any single digit x as HTTP/1.1; httparse
/// refuses it, so the head is parsed again with the version rewritten.
fn later_http1(buf: &[u8]) -> Result<Head, HeadError> {
    let line = request_line(buf);
    // Only 2-9 are rewritten (to 1), so the second parse cannot come back
    // here: a line whose fault lies elsewhere ends in "HTTP/1.1" then.
    if let [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'2'..=b'9'] = version_token(line) {
        let mut fixed = buf.to_vec();
        fixed[line.len() - 1] = b'1';
        return parse(&fixed);
    }
    Err(version_error(buf))
}

/// The first line of `buf`, without its line end.
fn request_line(buf: &[u8]) -> &[u8] {
    let end = memchr(b'\n', buf).unwrap_or(buf.len());
    buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end])
}

/// What Go takes as the version: everything after the second space.
fn version_token(line: &[u8]) -> &[u8] {
    line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default()
}

/// httparse only knows HTTP/1.0 and 1.1. Go answers 505 to any other
/// well-formed `HTTP/x.y` (HTTP/2.0 included) and 400 to the rest,
/// including the HTTP/2 connection preface (`PRI * HTTP/2.0`).
fn version_error(buf: &[u8]) -> HeadError {
    let line = request_line(buf);
    if line.starts_with(b"PRI ") {
        return HeadError::Malformed("HTTP/2 connection preface (HTTP/2 is not supported)");
    }
    match version_token(line) {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1'] => {
            HeadError::Malformed("malformed request line")
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            HeadError::UnsupportedVersion
        }
        _ => HeadError::Malformed("malformed HTTP version"),
    }
}

fn describe(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header field name",
        httparse::Error::HeaderValue => "invalid byte in a header field value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::Status | httparse::Error::Version => "malformed HTTP version",
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

/// The target as Go's server sees it: origin form kept, absolute form
/// (`http://host/path`) reduced to its path, `*` only for OPTIONS.
fn origin_form(method: &str, target: &str) -> Result<String, HeadError> {
    if target.starts_with('/') {
        return Ok(target.to_owned());
    }
    if target == "*" && method == "OPTIONS" {
        return Ok(target.to_owned());
    }
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    for scheme in ["http://", "https://"] {
        if lower.starts_with(scheme) {
            let rest = &target[scheme.len()..];
            return Ok(match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].to_owned(),
                Some(i) => format!("/{}", &rest[i..]),
                None => "/".to_owned(),
            });
        }
    }
    Err(HeadError::Malformed("invalid request target"))
}

fn check_host(head: &Head) -> Result<(), HeadError> {
    let mut hosts = head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Host"));
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HeadError::TooManyHosts);
    }
    match first {
        None if head.minor == 1 => Err(HeadError::MissingHost),
        Some((_, v)) if !v.bytes().all(valid_host_byte) => Err(HeadError::BadHost),
        _ => Ok(()),
    }
}

/// Go's `httpguts.ValidHostHeader` byte set.
fn valid_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=@[]_~".contains(&b)
}

/// The body framing the head declares, under Go's rules: Transfer-Encoding
/// only as one `chunked` field (ignored on HTTP/1.0), overriding any
/// Content-Length; Content-Length fields must agree and be plain decimal.
fn framing(head: &Head) -> Result<BodyFraming, HeadError> {
    fn fields<'h>(head: &'h Head, name: &'h str) -> impl Iterator<Item = &'h str> {
        head.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    let te: Vec<&str> = fields(head, "Transfer-Encoding").collect();
    if !te.is_empty() && head.minor == 1 {
        if te.len() != 1 || !te[0].eq_ignore_ascii_case("chunked") {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        return Ok(BodyFraming::Chunked);
    }
    let mut lengths = fields(head, "Content-Length");
    let Some(first) = lengths.next() else {
        return Ok(BodyFraming::None);
    };
    if lengths.any(|v| v != first) {
        return Err(HeadError::ConflictingContentLength);
    }
    parse_length(first).map(BodyFraming::Length)
}

/// Digits only: no sign, no spaces inside, no hex, no fractions, no lists.
fn parse_length(v: &str) -> Result<u64, HeadError> {
    let bad = || HeadError::BadContentLength(v.chars().take(40).collect());
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    v.parse::<u64>()
        .ok()
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(bad)
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = v.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Head, HeadError> {
        let end = find_end(raw.as_bytes(), 0).expect("complete head");
        parse(&raw.as_bytes()[..end])
    }

    #[test]
    fn plain_get() {
        let h = head("GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/-/healthy");
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(h.keep_alive);
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn bare_lf_is_accepted() {
        let h = head("GET /-/healthy HTTP/1.1\nHost: x\n\n").unwrap();
        assert_eq!(h.target, "/-/healthy");
    }

    #[test]
    fn end_is_found_incrementally() {
        let raw = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest";
        assert_eq!(find_end(raw, 0), Some(raw.len() - 4));
        assert_eq!(find_end(raw, 26), Some(raw.len() - 4));
        assert_eq!(find_end(&raw[..20], 0), None);
    }

    #[test]
    fn content_length_rules() {
        let cl = |v: &str| head(&format!("PUT / HTTP/1.1\r\nHost: x\r\n{v}\r\n\r\n"));
        assert_eq!(
            cl("Content-Length: 4").unwrap().framing,
            BodyFraming::Length(4)
        );
        assert_eq!(
            cl("Content-Length: 4\r\nContent-Length: 4")
                .unwrap()
                .framing,
            BodyFraming::Length(4)
        );
        for bad in ["-1", "4.0", "0x4", "+4", "4, 4", "", "99999999999999999999"] {
            assert!(
                matches!(
                    cl(&format!("Content-Length: {bad}")),
                    Err(HeadError::BadContentLength(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            cl("Content-Length: 4\r\nContent-Length: 5"),
            Err(HeadError::ConflictingContentLength)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let te = |v: &str| head(&format!("PUT / HTTP/1.1\r\nHost: x\r\n{v}\r\n\r\n"));
        let h = te("Content-Length: 4\r\nTransfer-Encoding: chunked").unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert!(h.close_after);
        assert_eq!(
            te("Transfer-Encoding: CHUNKED").unwrap().framing,
            BodyFraming::Chunked
        );
        for bad in [
            "Transfer-Encoding: identity",
            "Transfer-Encoding: gzip, chunked",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        ] {
            assert_eq!(
                te(bad),
                Err(HeadError::UnsupportedTransferEncoding),
                "{bad}"
            );
        }
        let h = head("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n")
            .unwrap();
        assert_eq!(h.framing, BodyFraming::Length(2));
    }

    #[test]
    fn versions_and_prefaces() {
        assert_eq!(
            head("GET / HTTP/2.0\r\nHost: x\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        );
        assert_eq!(
            head("GET / HTTP/0.9\r\nHost: x\r\n\r\n"),
            Err(HeadError::UnsupportedVersion)
        );
        assert_eq!(head("GET / HTTP/1.2\r\nHost: x\r\n\r\n").unwrap().minor, 1);
        // Found by the fuzzer: a bad line ending in HTTP/1.0 was rewritten
        // and parsed again without end (a stack overflow).
        assert!(parse(b"0 $00 HTTP/1 HTTP/1.0\n\n").is_err());
        assert!(parse(b"0 $00 HTTP/1 HTTP/1.7\n\n").is_err());
        assert!(matches!(
            head("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("GET / FOO/1.1\r\nHost: x\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn host_rules() {
        assert_eq!(head("GET / HTTP/1.1\r\n\r\n"), Err(HeadError::MissingHost));
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HeadError::TooManyHosts)
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            Err(HeadError::BadHost)
        );
        assert!(head("GET / HTTP/1.1\r\nHost: [::1]:9091\r\n\r\n").is_ok());
    }

    #[test]
    fn header_bytes() {
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\u{e9}\r\n\r\n").is_ok());
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("GET / HTTP/1.1\r\nHost: x\r\nX\u{e9}: a\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            head("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn targets() {
        let h = head("GET http://x:1/-/healthy?a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(h.target, "/-/healthy?a");
        assert_eq!(
            head("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap()
                .target,
            "*"
        );
        assert!(head("GET -/healthy HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
    }

    #[test]
    fn expectations() {
        let h =
            head("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                .unwrap();
        assert!(h.expect_continue);
        assert_eq!(
            head("PUT / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n"),
            Err(HeadError::UnsupportedExpectation)
        );
    }

    #[test]
    fn many_headers_are_bounded() {
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..100 {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert_eq!(head(&raw).unwrap().headers.len(), 101);
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for _ in 0..MAX_HEADERS {
            raw.push_str("a:\r\n");
        }
        raw.push_str("\r\n");
        assert_eq!(head(&raw), Err(HeadError::TooLarge));
    }
}
