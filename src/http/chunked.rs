//! An incremental decoder for `Transfer-Encoding: chunked` bodies.
//!
//! Fed whatever bytes have arrived, it hands out body data and says how
//! much it consumed, so the connection keeps any pipelined bytes that
//! follow the body. Its rules follow Go's chunked reader: a size line ends
//! in CRLF (a bare LF is refused since Go 1.23.8, CVE-2025-22871),
//! extensions after `;` are skipped, data must be followed
//! by exactly CRLF, sizes fit in 64 bits, and lines and trailers are
//! bounded so a client cannot make us buffer or spin without limit.

use std::fmt;

/// Longest chunk-size line (with extensions), as Go's `maxLineLength`.
pub(crate) const MAX_LINE: usize = 4096;
/// Most trailer bytes after the last chunk.
pub(crate) const MAX_TRAILERS: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// A size line that is not hexadecimal digits.
    BadSize,
    /// A size of more than 16 hex digits.
    SizeTooLarge,
    /// A size line or extension over [`MAX_LINE`] bytes.
    LineTooLong,
    /// Chunk data, or a size line, not ended by CRLF.
    MissingCrlf,
    /// Trailers over [`MAX_TRAILERS`] bytes.
    TrailersTooLarge,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "malformed chunked encoding: bad chunk size",
            ChunkError::SizeTooLarge => "malformed chunked encoding: chunk size too large",
            ChunkError::LineTooLong => "malformed chunked encoding: chunk size line too long",
            ChunkError::MissingCrlf => "malformed chunked encoding: a line not ended by CRLF",
            ChunkError::TrailersTooLarge => "malformed chunked encoding: trailers too large",
        })
    }
}

impl std::error::Error for ChunkError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a size.
    Size {
        value: u64,
        digits: u8,
    },
    /// Skipping an extension or whitespace up to the line end.
    SizeRest {
        value: u64,
    },
    /// A CR ended the size line; LF must follow.
    SizeLf {
        value: u64,
    },
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line, or inside one.
    Trailer {
        line_start: bool,
    },
    /// A CR at the start of a trailer line: the body ends at the next LF.
    TrailerEnd,
    Done,
}

/// Decoding state of one chunked body.
#[derive(Clone, Debug)]
pub(crate) struct Decoder {
    state: State,
    line: usize,
    trailers: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub(crate) fn new() -> Decoder {
        Decoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line: 0,
            trailers: 0,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, passing body data to `data`. Returns how many
    /// bytes of `input` were consumed; stops right after the body's end.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        data: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { left } = self.state {
                let take = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                data(&input[i..i + take]);
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { left }
                };
                continue;
            }
            self.step(input[i])?;
            i += 1;
        }
        Ok(i)
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::Size { value, digits } => {
                self.count_line()?;
                match hex(b) {
                    Some(d) if digits < 16 => State::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return Err(ChunkError::SizeTooLarge),
                    None if digits == 0 => return Err(ChunkError::BadSize),
                    None if b == b'\r' => State::SizeLf { value },
                    None if b == b'\n' => return Err(ChunkError::MissingCrlf),
                    None if matches!(b, b';' | b' ' | b'\t') => State::SizeRest { value },
                    None => return Err(ChunkError::BadSize),
                }
            }
            State::SizeRest { value } => {
                self.count_line()?;
                match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkError::MissingCrlf),
                    _ => State::SizeRest { value },
                }
            }
            State::SizeLf { value } if b == b'\n' => self.end_size(value),
            State::SizeLf { .. } => return Err(ChunkError::MissingCrlf),
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => {
                self.line = 0;
                State::Size {
                    value: 0,
                    digits: 0,
                }
            }
            State::DataCr | State::DataLf => return Err(ChunkError::MissingCrlf),
            State::Trailer { line_start } => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(ChunkError::TrailersTooLarge);
                }
                match b {
                    b'\n' if line_start => State::Done,
                    b'\r' if line_start => State::TrailerEnd,
                    b'\n' => State::Trailer { line_start: true },
                    _ => State::Trailer { line_start: false },
                }
            }
            State::TrailerEnd if b == b'\n' => State::Done,
            State::TrailerEnd => State::Trailer { line_start: false },
            State::Data { .. } | State::Done => unreachable!("handled by feed"),
        };
        Ok(())
    }

    fn count_line(&mut self) -> Result<(), ChunkError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(ChunkError::LineTooLong);
        }
        Ok(())
    }

    fn end_size(&mut self, value: u64) -> State {
        self.line = 0;
        if value == 0 {
            State::Trailer { line_start: true }
        } else {
            State::Data { left: value }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let n = d.feed(piece, &mut |b| out.extend_from_slice(b))?;
            used += n;
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done(), "body not complete");
        Ok((out, used))
    }

    #[test]
    fn decodes_in_any_pieces() {
        let body = b"4\r\na 1\n\r\nA;ext=1\r\n0123456789\r\n0\r\n\r\nNEXT";
        for step in [1, 2, 3, 7, 100] {
            let (data, used) = decode(body, step).unwrap();
            assert_eq!(data, b"a 1\n0123456789");
            assert_eq!(used, body.len() - 4, "step {step}");
        }
    }

    #[test]
    fn trailers() {
        let (data, _) = decode(b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", 1).unwrap();
        assert_eq!(data, b"abc");
        let (data, _) = decode(b"0\r\nA: b\nC: d\n\n", 5).unwrap();
        assert!(data.is_empty());
    }

    #[test]
    fn rejects_bad_framing() {
        let err = |input: &[u8]| {
            let mut d = Decoder::new();
            d.feed(input, &mut |_| {}).unwrap_err()
        };
        assert_eq!(err(b"zz\r\n"), ChunkError::BadSize);
        assert_eq!(err(b"\r\n"), ChunkError::BadSize);
        assert_eq!(err(b"ffffffffffffffffff\r\n"), ChunkError::SizeTooLarge);
        assert_eq!(err(b"3\r\nabcX"), ChunkError::MissingCrlf);
        assert_eq!(err(b"3\r\nabc\n"), ChunkError::MissingCrlf);
        assert_eq!(err(b"3\nabc"), ChunkError::MissingCrlf);
        assert_eq!(err(b"3;x\nabc"), ChunkError::MissingCrlf);
        assert_eq!(err(b"3\rabc"), ChunkError::MissingCrlf);
        let long = [b"1;".as_slice(), &[b'x'; MAX_LINE]].concat();
        assert_eq!(err(&long), ChunkError::LineTooLong);
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b'x', MAX_TRAILERS + 1));
        assert_eq!(err(&trailers), ChunkError::TrailersTooLarge);
    }

    #[test]
    fn huge_sizes_need_no_memory() {
        let mut d = Decoder::new();
        let mut seen = 0usize;
        let n = d
            .feed(b"fffffffffffffff\r\nabc", &mut |b| seen += b.len())
            .unwrap();
        assert_eq!((n, seen), (20, 3));
        assert!(!d.is_done());
    }
}
