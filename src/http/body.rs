//! Request bodies after framing: content codings (gzip, snappy) with the
//! size cap applied after decompression too, and the Content-Type test for
//! protobuf pushes. Pure functions, run on pool threads.

use std::io::{self, Read};

use super::Reply;
use crate::contract::Payload;

/// Why a body could not be decoded.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over `--push.max-body-size` after decompression.
    TooLarge,
    /// The memory budget cannot cover the decompressed body now.
    Busy,
    Decompress {
        encoding: &'static str,
        err: io::Error,
    },
}

/// Why a body does not decompress, for its 400: first in the words of
/// the Go gateway's libraries (compress/gzip, compress/flate, snappy), as
/// scripts grep for them, then ours.
pub(crate) fn decompress_message(encoding: &str, err: &io::Error) -> String {
    let text = err.to_string();
    let go = if err.kind() == io::ErrorKind::UnexpectedEof {
        "unexpected EOF"
    } else if encoding != "gzip" {
        "snappy: corrupt input"
    } else if text.contains("header") {
        "gzip: invalid header"
    } else if text.contains("checksum") {
        "gzip: invalid checksum"
    } else {
        "flate: corrupt input"
    };
    format!("{go} (cannot decompress the {encoding} request body: {text})")
}

/// [`decode_body_within`] without a memory budget (tests and fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_body(
    encoding: Option<&str>,
    body: Vec<u8>,
    max: u64,
) -> Result<Vec<u8>, BodyError> {
    decode_body_within(encoding, body, max, &mut |_| true)
}

/// Undoes `Content-Encoding: gzip` or `snappy` (framed). The size cap
/// applies to the decompressed body too, so a decompression bomb stops at
/// `max` bytes instead of exhausting memory. Other encodings are read as
/// they are, as the reference does. `grow(capacity)` is asked before the
/// output grows, so a memory budget is charged as the body inflates rather
/// than after.
pub(crate) fn decode_body_within(
    encoding: Option<&str>,
    body: Vec<u8>,
    max: u64,
    grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, BodyError> {
    let encoding = encoding.unwrap_or("").trim().to_ascii_lowercase();
    let (name, mut reader): (&'static str, Box<dyn Read + '_>) = match encoding.as_str() {
        "gzip" | "x-gzip" => ("gzip", Box::new(flate2::read::GzDecoder::new(&body[..]))),
        "snappy" => ("snappy", Box::new(snap::read::FrameDecoder::new(&body[..]))),
        _ => return Ok(body),
    };
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(BodyError::Decompress {
                    encoding: name,
                    err,
                });
            }
        };
        if (out.len() + n) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        if out.capacity() - out.len() < n {
            // Doubling, but never past the cap: a bomb costs `max`, not 2x.
            let want = (out.len() + n).max(out.capacity() * 2).min(max as usize);
            out.reserve_exact(want - out.len());
        }
        if !grow(out.capacity()) {
            return Err(BodyError::Busy);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Is this the Content-Type of the delimited protobuf format? Parameters
/// may come in any order, with spaces, and quoted; the media type and
/// parameter names are case-insensitive, the values are not (as in the
/// reference, which uses Go's mime.ParseMediaType).
pub(crate) fn is_protobuf(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        return false;
    }
    let (mut proto, mut encoding) = (None, None);
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = Some(v.to_owned()),
            "encoding" => encoding = Some(v.to_owned()),
            _ => {}
        }
    }
    proto.as_deref() == Some("io.prometheus.client.MetricFamily")
        && encoding.as_deref() == Some("delimited")
}

/// Whether a Content-Type names OpenMetrics text: `None` for any other
/// media type; `Some(Err(version))` for a version other than 1.0.0 or
/// 0.0.1 (none given is 1.0.0, as the spec has ingestors default to).
///
/// The reference reads every non-protobuf push as text 0.0.4, and
/// Prometheus reads any `application/openmetrics-text` with its 1.0
/// parser whatever the version; a push is refused instead, as
/// prometheus/common's `NewOpenMetricsFormat` refuses an unknown version
/// string: a later version (2.0 changes the grammar) read by the 1.0
/// rules would be stored wrong or refused for the wrong reason.
pub(crate) fn openmetrics_version(content_type: Option<&str>) -> Option<Result<(), String>> {
    let mut parts = content_type?.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(crate::wire::openmetrics::MEDIA_TYPE) {
        return None;
    }
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("version") {
            let v = v.trim().trim_matches('"');
            if !crate::wire::openmetrics::VERSIONS.contains(&v) {
                return Some(Err(v.to_owned()));
            }
        }
    }
    Some(Ok(()))
}

/// `reply` with its body gzipped (on a pool thread).
pub(super) fn gzip_reply(mut reply: Reply) -> Reply {
    let body = match std::mem::take(&mut reply.body) {
        Payload::Owned(bytes) => bytes,
        shared => shared.to_vec(),
    };
    reply.body = crate::wire::gzip::gzip(body).into();
    reply.headers.push(("Content-Encoding", "gzip".into()));
    reply.gzip = false;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_content_types() {
        assert!(is_protobuf(Some(crate::wire::protobuf::CONTENT_TYPE)));
        assert!(is_protobuf(Some(
            "Application/Vnd.Google.Protobuf;encoding=delimited;  PROTO=\"io.prometheus.client.MetricFamily\""
        )));
        assert!(!is_protobuf(Some(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text"
        )));
        assert!(!is_protobuf(Some("text/plain; version=0.0.4")));
        assert!(!is_protobuf(None));
    }

    #[test]
    fn openmetrics_content_types() {
        let om = |ct| openmetrics_version(Some(ct));
        assert_eq!(
            om("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Some(Ok(()))
        );
        assert_eq!(
            om("Application/OpenMetrics-Text;Version=\"0.0.1\""),
            Some(Ok(()))
        );
        assert_eq!(om("application/openmetrics-text"), Some(Ok(())));
        assert_eq!(
            om("application/openmetrics-text; version=2.0.0"),
            Some(Err("2.0.0".into()))
        );
        assert_eq!(om("text/plain; version=0.0.4"), None);
        assert_eq!(openmetrics_version(None), None);
    }

    #[test]
    fn decompression_is_capped() {
        use std::io::Write as _;
        let zeros = vec![0u8; 1 << 20];
        let z = crate::wire::gzip::gzip(zeros.clone());
        assert!(z.len() < 10_000);
        assert!(matches!(
            decode_body(Some("gzip"), z.clone(), 1000),
            Err(BodyError::TooLarge)
        ));
        assert_eq!(
            decode_body(Some("GZIP"), z, 1 << 21).unwrap().len(),
            1 << 20
        );
        let mut snappy = snap::write::FrameEncoder::new(Vec::new());
        snappy.write_all(b"m 1\n").unwrap();
        let framed = snappy.into_inner().unwrap();
        assert_eq!(decode_body(Some("snappy"), framed, 100).unwrap(), b"m 1\n");
        let Err(BodyError::Decompress { encoding, err }) =
            decode_body(Some("gzip"), b"not gzip at all\n".to_vec(), 100)
        else {
            panic!("not gzip decompressed");
        };
        let msg = decompress_message(encoding, &err);
        assert!(
            msg.starts_with("gzip: invalid header (cannot decompress"),
            "{msg}"
        );
        let mut truncated = crate::wire::gzip::gzip(b"m 1\n".to_vec());
        truncated.truncate(truncated.len() - 4);
        let Err(BodyError::Decompress { encoding, err }) =
            decode_body(Some("gzip"), truncated, 100)
        else {
            panic!("a truncated gzip body decompressed");
        };
        let msg = decompress_message(encoding, &err);
        assert!(msg.starts_with("unexpected EOF ("), "{msg}");
        let Err(BodyError::Decompress { encoding, err }) =
            decode_body(Some("snappy"), b"not snappy".to_vec(), 100)
        else {
            panic!("not snappy decompressed");
        };
        let msg = decompress_message(encoding, &err);
        assert!(msg.starts_with("snappy: corrupt input ("), "{msg}");
        assert_eq!(
            decode_body(Some("br"), b"as is".to_vec(), 100).unwrap(),
            b"as is"
        );
    }
}
