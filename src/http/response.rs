//! Responses: what handlers build ([`Reply`]) and the bytes that go on the
//! wire.
//!
//! Every header value is checked here, where the head is written: a byte
//! under 0x20 (CR, LF, NUL, ...) or DEL never reaches a client. Go's
//! net/http replaces CR and LF in header values with spaces; we do the same
//! for every control byte, and log it, since it means a handler built a
//! value it should have escaped.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::contract::Payload;
pub(crate) use crate::contract::Reply;

/// The answer to a request the front refuses before any handler sees
/// it, worded as Go's net/http words it: `400 Bad Request: reason`.
pub(crate) fn refusal(status: u16, reason: &str) -> Reply {
    Reply::text(
        status,
        format!("{status} {}: {reason}", reason_phrase(status)),
    )
}

/// How the request being answered shapes its response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResponseMode {
    /// HEAD: the head says what a GET would send, without the body.
    pub head_only: bool,
    /// Keep the connection after this response.
    pub keep_alive: bool,
    /// The request was HTTP/1.0 (keep-alive must then be said).
    pub http10: bool,
}

/// Writes the status line and headers for `reply`, with `extra` headers
/// (the web configuration's) after the handler's own.
pub(crate) fn encode_head(
    reply: &Reply,
    body_len: usize,
    how: ResponseMode,
    extra: &[(String, String)],
) -> Vec<u8> {
    let mut out = String::with_capacity(160);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        reason_phrase(reply.status)
    );
    if let Some(ct) = reply.content_type {
        header(&mut out, "Content-Type", ct);
    }
    for (k, v) in &reply.headers {
        header(&mut out, k, v);
    }
    for (k, v) in extra {
        header(&mut out, k, v);
    }
    if reply.status >= 200 && reply.status != 204 && reply.status != 304 {
        let _ = write!(out, "Content-Length: {body_len}\r\n");
    }
    header(&mut out, "Date", &crate::time::http_date(SystemTime::now()));
    if !how.keep_alive {
        out.push_str("Connection: close\r\n");
    } else if how.http10 {
        out.push_str("Connection: keep-alive\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The bytes of an answer: head, and the body when it is worth a write of
/// its own (over 16 KiB); a small body rides with the head, and a HEAD
/// request gets none (its Content-Length still says what GET would send).
pub(crate) fn encode(
    reply: Reply,
    how: ResponseMode,
    extra: &[(String, String)],
) -> (Vec<u8>, Payload) {
    let mut head = encode_head(&reply, reply.body.len(), how, extra);
    let body = reply.body;
    if how.head_only {
        return (head, Payload::default());
    }
    if body.len() <= 16 * 1024 {
        head.extend_from_slice(&body);
        return (head, Payload::default());
    }
    (head, body)
}

fn header(out: &mut String, name: &str, value: &str) {
    if !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        log::error!(name = name; "refusing to send a header with an invalid name");
        return;
    }
    out.push_str(name);
    out.push_str(": ");
    if value.bytes().any(is_forbidden) {
        log::error!(name = name; "header value had control bytes; replaced by spaces");
        out.extend(value.chars().map(|c| {
            if c.is_ascii() && is_forbidden(c as u8) {
                ' '
            } else {
                c
            }
        }));
    } else {
        out.push_str(value);
    }
    out.push_str("\r\n");
}

fn is_forbidden(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: ResponseMode = ResponseMode {
        head_only: false,
        keep_alive: true,
        http10: false,
    };

    #[test]
    fn bodies_ride_with_small_heads_and_never_with_head_requests() {
        let small = encode(Reply::text(200, "OK"), KEEP, &[]);
        assert!(small.0.ends_with(b"\r\n\r\nOK") && small.1.is_empty());
        let big = encode(Reply::text(200, "x".repeat(20_000)), KEEP, &[]);
        assert!(big.0.ends_with(b"\r\n\r\n") && big.1.len() == 20_000);
        let head = ResponseMode {
            head_only: true,
            ..KEEP
        };
        let (h, b) = encode(Reply::text(200, "OK"), head, &[]);
        assert!(String::from_utf8_lossy(&h).contains("Content-Length: 2\r\n"));
        assert!(h.ends_with(b"\r\n\r\n") && b.is_empty());
    }

    #[test]
    fn control_bytes_never_reach_a_header() {
        let reply = Reply::empty(301).with_header("Location", "/x\r\nSet-Cookie: a=b\0");
        let head = String::from_utf8(encode_head(&reply, 0, KEEP, &[])).unwrap();
        assert!(
            head.contains("Location: /x  Set-Cookie: a=b \r\n"),
            "{head}"
        );
        assert_eq!(head.matches("\r\n").count(), 5, "{head}");
        let bad_name = Reply::empty(200).with_header("X\r\nY", "v");
        let head = String::from_utf8(encode_head(&bad_name, 0, KEEP, &[])).unwrap();
        assert!(!head.contains("X\r\nY"));
    }

    #[test]
    fn framing_headers() {
        let reply = Reply::text(200, "OK");
        let head =
            String::from_utf8(encode_head(&reply, 3, KEEP, &[("X-A".into(), "b".into())])).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-A: b\r\nContent-Length: 3\r\nDate: "));
        assert!(!head.contains("Connection"));
        let close = ResponseMode {
            keep_alive: false,
            ..KEEP
        };
        assert!(
            String::from_utf8(encode_head(&reply, 3, close, &[]))
                .unwrap()
                .contains("Connection: close\r\n")
        );
        let old = ResponseMode {
            http10: true,
            ..KEEP
        };
        assert!(
            String::from_utf8(encode_head(&reply, 3, old, &[]))
                .unwrap()
                .contains("Connection: keep-alive\r\n")
        );
        assert_eq!(
            &*refusal(431, "too big").body,
            b"431 Request Header Fields Too Large: too big"
        );
    }
}
