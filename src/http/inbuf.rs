//! A connection's input: bytes read from the socket and not yet consumed
//! by the head parser or the body reader.
//!
//! Two costs are bounded here. Memory: the buffer is charged to the
//! budget ([`Class::Head`]) before it grows, so a thousand unfinished
//! heads cannot take more than their share of `--web.memory-budget`.
//! Time: consuming a request moves a read offset instead of shifting the
//! rest of the buffer down, so many small pipelined requests in one read
//! cost time in proportion to their bytes; the buffer is compacted only
//! when that moves no more bytes than were consumed since the last time.
//!
//! [`Class::Head`]: super::budget::Class::Head

use super::budget::Charge;

/// Bytes of buffer a connection may hold whatever the budget says, as
/// part of its fixed price (Go's server keeps a 4 KiB reader per
/// connection too). Bounded by `--web.max-connections`, and what lets a
/// small request in while large heads hold the budget.
pub(super) const FREE_BYTES: usize = 4096;

/// The smallest buffer allocated, so a head arriving in small pieces does
/// not grow it a few bytes at a time.
const MIN_CAPACITY: usize = 1024;

/// The budget cannot cover more buffered input.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct OverBudget;

pub(super) struct InBuf {
    buf: Vec<u8>,
    /// Bytes before this offset are consumed.
    start: usize,
    /// Covers `buf.capacity()` at all times.
    charge: Charge,
}

impl InBuf {
    /// An empty buffer whose growth is charged to `charge`.
    pub(super) fn new(charge: Charge) -> InBuf {
        InBuf {
            buf: Vec::new(),
            start: 0,
            charge,
        }
    }

    /// The bytes read and not yet consumed.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// How many bytes are unread.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks the first `n` unread bytes as consumed.
    pub(super) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len(), "consumed more than was read");
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            // Nothing left: starting over costs no copy.
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Throws away everything unread, keeping the memory.
    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Throws away everything and gives the memory and its charge back.
    pub(super) fn free(&mut self) {
        self.buf = Vec::new();
        self.start = 0;
        self.charge.shrink_to(0);
    }

    /// With nothing unread, gives back a buffer larger than
    /// [`FREE_BYTES`]: a parsed head or an idle connection keeps no large
    /// buffer from a large request.
    pub(super) fn shrink_idle(&mut self) {
        if self.is_empty() && self.buf.capacity() > FREE_BYTES {
            self.free();
        }
    }

    /// Appends `data`, first charging the budget for any growth.
    pub(super) fn append(&mut self, data: &[u8]) -> Result<(), OverBudget> {
        if self.buf.len() + data.len() > self.buf.capacity() {
            self.make_room(data.len())?;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Makes room for `n` more bytes: by compacting when that is cheap,
    /// else by growing (doubling when the budget allows, else exactly).
    fn make_room(&mut self, n: usize) -> Result<(), OverBudget> {
        let unread = self.len();
        if self.start > 0 && self.start >= unread {
            // Moves at most as many bytes as were consumed: amortised.
            self.buf.drain(..self.start);
            self.start = 0;
            if self.buf.len() + n <= self.buf.capacity() {
                return Ok(());
            }
        }
        let need = self.buf.len() + n;
        let doubled = need.max(self.buf.capacity() * 2).max(MIN_CAPACITY);
        let capacity = if self.cover(doubled) {
            doubled
        } else if self.cover(need) {
            need
        } else {
            return Err(OverBudget);
        };
        self.buf.reserve_exact(capacity - self.buf.len());
        // The allocator may round up: the charge follows what is held.
        self.charge.force_to(self.buf.capacity());
        Ok(())
    }

    /// Charges a buffer of `capacity` bytes: free up to [`FREE_BYTES`]
    /// (counted all the same), from the budget beyond.
    fn cover(&mut self, capacity: usize) -> bool {
        if capacity <= FREE_BYTES {
            self.charge.force_to(capacity);
            return true;
        }
        self.charge.grow_to(capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::budget::{Budget, Class};

    #[test]
    fn growth_is_charged_before_it_happens_and_given_back() {
        let budget = Budget::new(64 * 1024);
        let mut b = InBuf::new(budget.charge(Class::Head));
        b.append(&[b'a'; 100]).unwrap();
        assert!(budget.used_by(Class::Head) >= b.buf.capacity());
        // Grows up to what the Head share of the budget allows, then no more.
        let mut refused = false;
        for _ in 0..64 {
            if b.append(&[b'b'; 1000]) == Err(OverBudget) {
                refused = true;
                break;
            }
            assert!(budget.used_by(Class::Head) >= b.buf.capacity());
        }
        assert!(refused, "the budget never said no");
        assert!(budget.used_by(Class::Head) <= 64 * 1024);
        let before = b.len();
        assert_eq!(b.append(&[b'c'; 1000]), Err(OverBudget));
        assert_eq!(b.len(), before, "a refused append adds nothing");
        b.consume(b.len());
        b.shrink_idle();
        assert_eq!(budget.used(), 0);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn small_buffers_are_free_even_when_the_budget_is_spent() {
        let budget = Budget::new(1024 * 1024);
        let mut hog = budget.charge(Class::Body);
        assert!(hog.grow_to(1024 * 1024));
        let mut b = InBuf::new(budget.charge(Class::Head));
        b.append(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(budget.used() > 1024 * 1024, "counted all the same");
        assert_eq!(b.append(&[0; FREE_BYTES]), Err(OverBudget));
        drop(b);
        assert_eq!(budget.used(), 1024 * 1024);
    }

    #[test]
    fn consuming_moves_an_offset_and_compaction_is_amortised() {
        let budget = Budget::new(1 << 30);
        let mut b = InBuf::new(budget.charge(Class::Head));
        let req = b"GET / HTTP/1.1\r\n\r\n";
        b.append(&req.repeat(1000)).unwrap();
        let cap = b.buf.capacity();
        for i in 0..999 {
            assert!(b.unread().starts_with(req), "request {i}");
            b.consume(req.len());
        }
        assert_eq!(b.unread(), req);
        // Plenty consumed before: compacting makes room without growing.
        b.append(&req.repeat(900)).unwrap();
        assert_eq!(b.buf.capacity(), cap);
        assert_eq!(b.len(), req.len() * 901);
        b.consume(b.len());
        assert_eq!((b.start, b.buf.len()), (0, 0));
    }
}
