//! Exposition lines with their group's labels left out: rendered once per
//! series when pushed, completed when scraped.
//!
//! Every series of a group carries the group's labels (the grouping key,
//! and `instance=""` unless the key has an instance). Rendered into each
//! line, a key of a hundred thousand pairs from one long URL would be
//! copied into every series pushed under it, and even a two-pair key costs
//! a million series some twenty bytes each. So a stored line holds, where
//! a run of the group's labels goes, a marker naming the run, and the
//! group renders its labels once ([`KeyText`]); a scrape splices them in
//! ([`expand`]).
//!
//! A marker is the byte `0xFF`, which no UTF-8 text holds (everything
//! rendered comes from `str`), then where the run starts in the group's
//! text and how many bytes it takes, each in base 16: digits
//! `0xC0..=0xCF` while more follow, the last one `0xD0..=0xDF`. No marker
//! byte is ASCII, so a newline count over a template (the sample limits)
//! still counts lines. Byte positions, not label numbers: a scrape then
//! reads nothing of the group's but its text, one allocation.

use std::sync::Arc;

use crate::model::Label;
use crate::wire::exposition;

/// Starts a marker.
pub const MARK: u8 = 0xFF;
const MORE: u8 = 0xC0;
const LAST: u8 = 0xD0;

/// A group's labels rendered once, `a="1",b="2",`, with where each starts:
/// what a push's lines are rendered against. The group keeps the text.
#[derive(Clone, Debug, Default)]
pub struct KeyText {
    /// The labels, then [`WIDE`] bytes never spliced: a run at the end
    /// of a short key still has a whole block behind it for [`copy`].
    text: Arc<[u8]>,
    /// The offset of each label in `text`, then `text`'s length.
    starts: Box<[u32]>,
}

impl KeyText {
    /// `labels` (sorted by name) rendered as a line would show them.
    pub fn new(labels: &[Label]) -> KeyText {
        let mut text = Vec::new();
        let mut starts = Vec::with_capacity(labels.len() + 1);
        for l in labels {
            starts.push(offset(text.len()));
            exposition::write_label(&mut text, l);
            text.push(b',');
        }
        starts.push(offset(text.len()));
        text.extend_from_slice(&[0; WIDE]);
        KeyText {
            text: text.into(),
            starts: starts.into(),
        }
    }

    /// The rendered labels, which [`expand`] splices from.
    pub fn text(&self) -> &Arc<[u8]> {
        &self.text
    }
}

impl exposition::Markers for KeyText {
    /// Appends a marker for labels `first..first + len` (comma-separated,
    /// without the last label's comma).
    fn write_marker(&self, out: &mut Vec<u8>, first: usize, len: usize) {
        let a = self.starts[first] as usize;
        let b = self.starts[first + len] as usize - 1;
        out.push(MARK);
        write_number(out, a);
        write_number(out, b - a);
    }
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a grouping key's text is far below 4 GiB")
}

fn write_number(out: &mut Vec<u8>, n: usize) {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        let d = ((n >> (4 * i)) & 0xF) as u8;
        out.push(if i == 0 { LAST | d } else { MORE | d });
    }
}

/// Reads a number written by [`write_number`] from the front of `bytes`;
/// returns it and the rest.
fn read_number(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        match b & 0xF0 {
            MORE => n = (n << 4) | usize::from(b & 0xF),
            LAST => return Some(((n << 4) | usize::from(b & 0xF), &bytes[i + 1..])),
            _ => return None,
        }
    }
    None
}

/// Appends `template` to `out` with every marker replaced by the bytes
/// of `key` (a group's [`KeyText::text`]) it names.
pub fn expand(out: &mut Vec<u8>, template: &[u8], key: &[u8]) {
    let mut rest = template;
    while let Some(at) = find_mark(rest) {
        copy(out, rest, at);
        let Some((start, len, after)) = read_marker(&rest[at..]) else {
            debug_assert!(false, "a malformed marker");
            return;
        };
        match key.get(start..) {
            Some(run) if run.len() >= len => copy(out, run, len),
            _ => debug_assert!(false, "a marker outside its group's labels"),
        }
        rest = after;
    }
    out.extend_from_slice(rest);
}

/// The block [`copy`] moves short pieces in.
const WIDE: usize = 32;

/// Appends `src[..n]`. A piece of up to four [`WIDE`] blocks with whole
/// blocks behind it is copied block by block into zeroed room, array
/// assignments the compiler turns into a few moves, and the excess cut
/// off: not a call to `memcpy` for a few dozen bytes, twice per line of a
/// scrape (musl's, in the static build, takes longer to start than such a
/// copy takes; and at opt-level s even `extend_from_slice` of a fixed 32
/// bytes stays a call that ends in `memcpy`).
fn copy(out: &mut Vec<u8>, src: &[u8], n: usize) {
    let blocks = n.div_ceil(WIDE);
    let (wide, _) = src.as_chunks::<WIDE>();
    match wide.get(..blocks) {
        Some(wide) if blocks <= 4 => {
            let at = out.len();
            out.resize(at + blocks * WIDE, 0);
            let (room, _) = out[at..].as_chunks_mut::<WIDE>();
            for (to, from) in room.iter_mut().zip(wide) {
                *to = *from;
            }
            out.truncate(at + n);
        }
        _ => out.extend_from_slice(&src[..n]),
    }
}

/// The length [`expand`] makes of `template` with `key`: what a scrape
/// writes for it, known without writing it.
pub fn expanded_len(template: &[u8], key: &[u8]) -> usize {
    let mut rest = template;
    let mut total = 0usize;
    while let Some(at) = find_mark(rest) {
        total += at;
        let Some((_, len, after)) = read_marker(&rest[at..]) else {
            return total;
        };
        total = total.saturating_add(len.min(key.len()));
        rest = after;
    }
    total + rest.len()
}

/// The run a marker at the front of `bytes` names, and what follows it.
fn read_marker(bytes: &[u8]) -> Option<(usize, usize, &[u8])> {
    let after = bytes.strip_prefix(&[MARK])?;
    let (start, after) = read_number(after)?;
    let (len, after) = read_number(after)?;
    Some((start, len, after))
}

/// The first [`MARK`] in `bytes`, eight bytes at a time: a scrape of a
/// million series finds a million markers in some sixty megabytes.
fn find_mark(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        // A byte of `word` is 0xFF where that of `!word` is zero.
        let word = !u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if word.wrapping_sub(ONES) & !word & HIGHS != 0 {
            let j = chunk
                .iter()
                .position(|&b| b == MARK)
                .expect("a mark in the chunk");
            return Some(8 * i + j);
        }
    }
    let tail = chunks.remainder();
    let j = tail.iter().position(|&b| b == MARK)?;
    Some(bytes.len() - tail.len() + j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::exposition::Markers;

    #[test]
    fn numbers_round_trip_in_non_ascii_digits() {
        for n in [0, 1, 15, 16, 255, 256, 120_000, usize::MAX >> 4] {
            let mut out = Vec::new();
            write_number(&mut out, n);
            assert!(out.iter().all(|b| *b >= 0xC0 && *b < 0xE0), "{out:?}");
            assert_eq!(read_number(&out), Some((n, &[][..])));
        }
    }

    #[test]
    fn markers_are_found_wherever_they_sit() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = MARK;
                assert_eq!(find_mark(&bytes), Some(at), "{len} {at}");
            }
            assert_eq!(find_mark(&vec![0xFE; len]), None);
        }
    }

    #[test]
    fn pieces_are_copied_exactly_whatever_their_length() {
        let src: Vec<u8> = (0..200u8).collect();
        for len in 0..=src.len() {
            for n in 0..=len {
                let mut out = b"ab".to_vec();
                copy(&mut out, &src[..len], n);
                assert_eq!(&out[..2], b"ab");
                assert_eq!(&out[2..], &src[..n], "{len} {n}");
            }
        }
    }

    #[test]
    fn runs_of_the_key_are_spliced_in() {
        let key = [
            Label::new("b", "1"),
            Label::new("d", "x\"y"),
            Label::new("f", ""),
        ];
        let text = KeyText::new(&key);
        let mut t = b"m{a=\"0\",".to_vec();
        text.write_marker(&mut t, 0, 1);
        t.extend_from_slice(b",c=\"2\",");
        text.write_marker(&mut t, 1, 2);
        t.extend_from_slice(b"} 1\n");
        let mut out = Vec::new();
        expand(&mut out, &t, text.text());
        assert_eq!(expanded_len(&t, text.text()), out.len());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "m{a=\"0\",b=\"1\",c=\"2\",d=\"x\\\"y\",f=\"\"} 1\n"
        );
    }
}
