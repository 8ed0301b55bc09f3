//! Gzip as scrapes need it: ONE member assembled from raw-deflate parts.
//!
//! A part is deflated on its own and ends with a sync flush, so it stops on
//! a byte boundary without a final block and the next part's blocks can
//! follow it; the member ends with an empty final block and the CRC-32 of
//! the whole. Parts are what lets a large body be compressed on every core
//! (as pigz does) and a family's compressed form be kept between scrapes
//! and copied into the next one. One member, because not every reader
//! takes several: curl 7.88 stops after the first, silently.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Bodies at least this large are compressed on several cores.
pub(crate) const PARALLEL_GZIP: usize = 8 << 20;

/// The largest part when a body is cut for several cores: small enough to
/// share the work out evenly, large enough that restarting the dictionary
/// costs nothing measurable.
const MAX_PART: usize = 2 << 20;

/// Raw deflate of some bytes, sync-flushed, with their CRC-32 and length:
/// what a member is assembled from.
#[derive(Clone)]
pub(crate) struct Deflated {
    pub bytes: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Deflated {
    /// Deflates `data` at the fastest level (scrapes are large and
    /// compressed per request).
    pub(crate) fn new(data: &[u8]) -> Deflated {
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        let bytes = deflate_flushed(data).unwrap_or_else(|e| {
            // Cannot happen when writing to memory; stored blocks keep
            // the answer valid if it ever does.
            log::error!(err:display = e; "deflate failed; sending stored blocks");
            stored(data)
        });
        Deflated {
            bytes,
            crc,
            len: data.len() as u64,
        }
    }

    /// Several parts joined into one, in order.
    pub(crate) fn join(parts: Vec<Deflated>) -> Deflated {
        let mut out = Deflated {
            bytes: Vec::with_capacity(parts.iter().map(|p| p.bytes.len()).sum()),
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        for p in parts {
            out.bytes.extend_from_slice(&p.bytes);
            out.crc.combine(&p.crc);
            out.len += p.len;
        }
        out
    }

    /// Its uncompressed length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

fn deflate_flushed(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(data.len() / 8 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.flush()?;
    // Taken before the encoder's drop writes its final block (into the
    // emptied buffer, then discarded).
    Ok(std::mem::take(enc.get_mut()))
}

/// `data` as stored (uncompressed) deflate blocks, none of them final.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 5);
    for chunk in data.chunks(65535) {
        let n = chunk.len() as u16;
        out.push(0);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(!n).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// `data` cut into parts of at most [`MAX_PART`] bytes (one part if it is
/// smaller than [`PARALLEL_GZIP`]).
fn parts(data: &[u8]) -> std::slice::Chunks<'_, u8> {
    let size = if data.len() < PARALLEL_GZIP {
        data.len()
    } else {
        MAX_PART
    };
    data.chunks(size.max(1))
}

/// A large body being deflated on several cores.
struct Spreading {
    data: Vec<u8>,
    /// The next part to take.
    next: AtomicUsize,
    /// Each part's result, in its own slot: no sorting afterwards.
    slots: Vec<OnceLock<Deflated>>,
}

impl Spreading {
    /// Deflates the next part not taken, until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(part) = parts(&self.data).nth(i) else {
                return;
            };
            let _ = self.slots[i].set(Deflated::new(part));
        }
    }
}

/// Deflates `data` in parts of at most [`MAX_PART`] bytes, on as many
/// threads as there are cores when it is large (jobs
/// [`spread`](crate::pool::spread) over the cores, each taking the next
/// part when done with one); the parts in order, and `data` back.
pub(crate) fn deflate_all(data: Vec<u8>) -> (Vec<Deflated>, Vec<u8>) {
    let count = parts(&data).count();
    let threads = if data.len() < PARALLEL_GZIP {
        1
    } else {
        crate::pool::cores()
    };
    let threads = threads.min(count).max(1);
    if threads == 1 {
        let deflated = parts(&data).map(Deflated::new).collect();
        return (deflated, data);
    }
    let spreading = Arc::new(Spreading {
        data,
        next: AtomicUsize::new(0),
        slots: (0..count).map(|_| OnceLock::new()).collect(),
    });
    let helpers: Vec<_> = (1..threads)
        .map(|_| {
            let s = Arc::clone(&spreading);
            crate::pool::spread(move || s.work())
        })
        .collect();
    spreading.work();
    // A helper no thread has taken finds no part left; joining also
    // passes on a helper's panic.
    for helper in helpers {
        helper.join();
    }
    // Every helper has run to its end and let go of its reference.
    match Arc::try_unwrap(spreading) {
        Ok(done) => {
            let deflated = done.slots.into_iter().filter_map(OnceLock::into_inner);
            (deflated.collect(), done.data)
        }
        Err(shared) => {
            let deflated = shared.slots.iter().filter_map(|s| s.get().cloned());
            (deflated.collect(), shared.data.clone())
        }
    }
}

/// One gzip member, assembled part by part.
pub(crate) struct Member {
    out: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Member {
    pub(crate) fn new(capacity: usize) -> Member {
        let mut out = Vec::with_capacity(capacity + 32);
        // Magic, deflate, no flags, no time, fastest, unknown OS.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255]);
        Member {
            out,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, part: &Deflated) {
        self.out.extend_from_slice(&part.bytes);
        self.crc.combine(&part.crc);
        self.len += part.len;
    }

    /// The member: an empty final block (fixed Huffman, end of block
    /// only), then the CRC-32 and the length modulo 2^32.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0x03, 0x00]);
        self.out
            .extend_from_slice(&self.crc.finalize().to_le_bytes());
        self.out.extend_from_slice(&(self.len as u32).to_le_bytes());
        self.out
    }
}

/// Gzip of `data`: a large body in parts, compressed on every core.
pub(crate) fn gzip(data: Vec<u8>) -> Vec<u8> {
    let mut member = Member::new(data.len() / 8);
    for d in deflate_all(data).0 {
        member.push(&d);
    }
    member.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// Decodes with a reader that takes one gzip member only.
    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    fn lines(min: usize) -> Vec<u8> {
        let mut data = Vec::new();
        let mut i = 0u64;
        while data.len() < min {
            data.extend_from_slice(format!("metric{{shard=\"{i}\"}} {}\n", i * 7).as_bytes());
            i += 1;
        }
        data
    }

    /// A body large enough to be compressed in parts reads back whole
    /// through a reader that takes one gzip member only.
    #[test]
    fn large_bodies_compress_in_parts_that_read_back_whole() {
        let data = lines(PARALLEL_GZIP + 12345);
        assert!(parts(&data).count() > 1);
        let z = gzip(data.clone());
        assert_eq!(gunzip(&z), data);
        assert!(
            z.len() < data.len() / 3,
            "compressed: {} of {}",
            z.len(),
            data.len()
        );
    }

    #[test]
    fn parts_kept_and_joined_make_one_member() {
        let (a, b, c) = (lines(1000), lines(5000), Vec::new());
        let joined = Deflated::join(vec![Deflated::new(&a), Deflated::new(&b)]);
        assert_eq!(joined.len(), (a.len() + b.len()) as u64);
        let mut m = Member::new(0);
        m.push(&joined);
        m.push(&Deflated::new(&c));
        m.push(&Deflated::new(&a));
        assert_eq!(gunzip(&m.finish()), [&a[..], &b, &a].concat());
        assert_eq!(gunzip(&gzip(Vec::new())), b"");
    }

    #[test]
    fn stored_blocks_are_valid_deflate() {
        let data = lines(70_000);
        let mut m = Member::new(0);
        let mut d = Deflated::new(&data);
        d.bytes = stored(&data);
        m.push(&d);
        assert_eq!(gunzip(&m.finish()), data);
    }
}
