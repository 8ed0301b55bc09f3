//! Request bodies after framing: content codings (gzip, snappy) with the
//! size cap applied after decompression too, and the Content-Type test for
//! protobuf pushes. Pure functions, run on pool threads.

use std::io::{self, Read};

use super::Reply;

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

/// `reply` with its body gzipped (on a pool thread); sent uncompressed if
/// compression fails.
pub(super) fn gzip_reply(mut reply: Reply) -> Reply {
    match gzip(&reply.body) {
        Ok(z) => {
            reply.body = z;
            reply.headers.push(("Content-Encoding", "gzip".into()));
        }
        Err(e) => log::warn!(err:display = e; "gzip failed; sending uncompressed"),
    }
    reply.gzip = false;
    reply
}

/// Bodies at least this large are compressed on several cores.
const PARALLEL_GZIP: usize = 8 << 20;

/// Gzip at the fastest level: scrapes are large and compressed per request.
/// A large body is cut into one part per core, each deflated on its own
/// thread, as pigz does: every part but the last ends with a sync flush (so
/// it ends on a byte boundary, without a final block), and the parts are
/// joined into ONE gzip member with the CRC-32 of the whole. One member,
/// because not every reader takes several (curl 7.88 stops after the
/// first, silently); parts, because a scrape of a million series then
/// compresses in a fraction of the time.
pub(crate) fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = if data.len() < PARALLEL_GZIP { 1 } else { cores };
    let size = data.len().div_ceil(parts.max(1)).max(1);
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    let last = chunks.len().saturating_sub(1);
    let deflated: Vec<io::Result<(Vec<u8>, crc32fast::Hasher)>> = std::thread::scope(|s| {
        let jobs: Vec<_> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| s.spawn(move || deflate_part(chunk, i == last)))
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    // Header: magic, deflate, no flags, no time, fastest, unknown OS.
    let mut out = Vec::with_capacity(data.len() / 8 + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
    let mut crc = crc32fast::Hasher::new();
    for part in deflated {
        let (bytes, part_crc) = part?;
        out.extend_from_slice(&bytes);
        crc.combine(&part_crc);
    }
    if data.is_empty() {
        out.extend_from_slice(&deflate_part(&[], true)?.0);
    }
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(out)
}

/// Raw deflate of one part and its CRC-32: finished if it is the last,
/// else sync-flushed so the next part's blocks can follow it.
fn deflate_part(part: &[u8], last: bool) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
    use std::io::Write as _;
    let mut crc = crc32fast::Hasher::new();
    crc.update(part);
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(part.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(part)?;
    if last {
        return Ok((enc.finish()?, crc));
    }
    enc.flush()?;
    // Taken before the encoder's drop writes its final block (into the
    // emptied buffer, then discarded).
    Ok((std::mem::take(enc.get_mut()), crc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body large enough to be compressed in parts reads back whole
    /// through a reader that takes one gzip member only.
    #[test]
    fn large_bodies_compress_in_members_that_read_back_whole() {
        use std::io::Read as _;
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < PARALLEL_GZIP + 12345 {
            data.extend_from_slice(format!("metric{{shard=\"{i}\"}} {}\n", i * 7).as_bytes());
            i += 1;
        }
        let z = gzip(&data).unwrap();
        let mut back = Vec::new();
        // A single-member reader: every part must be in the one member.
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(
            z.len() < data.len() / 3,
            "compressed: {} of {}",
            z.len(),
            data.len()
        );
    }

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
    fn decompression_is_capped() {
        use std::io::Write as _;
        let zeros = vec![0u8; 1 << 20];
        let z = gzip(&zeros).unwrap();
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
        assert!(matches!(
            decode_body(Some("gzip"), b"not gzip".to_vec(), 100),
            Err(BodyError::Decompress { .. })
        ));
        assert_eq!(
            decode_body(Some("br"), b"as is".to_vec(), 100).unwrap(),
            b"as is"
        );
    }
}
