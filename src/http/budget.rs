//! One memory budget for what requests in flight hold, charged by the
//! stage that holds it, before the memory is allocated.
//!
//! Per-request limits (`--push.max-body-size`) bound one request; this
//! bounds them all together, so any number of concurrent gzip bombs,
//! endless heads or non-reading scrapers cannot take more than
//! `--web.memory-budget`. A request that would go over it gets 503 and may
//! retry.
//!
//! The cost model, one class per stage of a request:
//!
//! | class | what is charged | when |
//! |---|---|---|
//! | [`Class::Head`] | request head bytes buffered; a TLS session's buffers | as they are read; when accepted |
//! | [`Class::Body`] | the raw body, then the decoded body | as each grows |
//! | [`Class::Parse`] | parsed records, the prepared group | per record, at an upper bound, as each is created |
//! | [`Class::Answer`] | answers held for a client | when the answer is built |
//!
//! Readers cannot starve writers: answers may hold at most
//! [`READ_SHARE`] of the budget, so pushes, deletes and health checks
//! always keep the rest. A read over its share is refused (503) before
//! anything is built; a write is refused only when writes themselves used
//! up what readers leave. Heads cannot starve bodies either: heads may
//! hold at most [`HEAD_SHARE`], so clients that never end a head leave
//! the rest of the writers' part to bodies and parsing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The stage of a request that holds memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Request heads being read.
    Head,
    /// Request bodies: as read from the socket, then decompressed.
    Body,
    /// Parsed records and prepared groups of a push.
    Parse,
    /// Answers built for clients and waiting to be written.
    Answer,
}

impl Class {
    pub(crate) const ALL: [Class; 4] = [Class::Head, Class::Body, Class::Parse, Class::Answer];

    /// The label value of `pushgateway_memory_budget_used_bytes`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Class::Head => "head",
            Class::Body => "body",
            Class::Parse => "parse",
            Class::Answer => "answer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn is_read(self) -> bool {
        self == Class::Answer
    }
}

/// The part of the budget that answers (reads) may hold: a half. The
/// other half is the writers' reserve.
pub(crate) const READ_SHARE: (usize, usize) = (1, 2);

/// The part of the budget that request heads being read may hold: a
/// quarter. A head needs a few hundred bytes; only heads that grow
/// without end come near it, and they must not take what pushes need.
pub(crate) const HEAD_SHARE: (usize, usize) = (1, 4);

pub(crate) struct Budget {
    /// Each class's bytes.
    by_class: [AtomicUsize; 4],
    /// The writing classes' bytes together (head, body, parse).
    writes: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            by_class: Default::default(),
            writes: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes charged now, all classes.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.writes.load(Ordering::Relaxed) + self.used_by(Class::Answer)
    }

    /// Bytes charged now by one class.
    pub(crate) fn used_by(&self, class: Class) -> usize {
        self.by_class[class.index()].load(Ordering::Relaxed)
    }

    /// `--web.memory-budget`.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Most bytes answers may hold together.
    fn read_limit(&self) -> usize {
        self.limit / READ_SHARE.1 * READ_SHARE.0
    }

    /// How many bytes `class` may hold now: answers their share of what
    /// writes leave; writes everything but what answers hold within their
    /// share. Answers forced past their share (bodies that exist already)
    /// thus never shrink the writers' reserve.
    fn ceiling(&self, class: Class) -> usize {
        if class.is_read() {
            let left = self
                .limit
                .saturating_sub(self.writes.load(Ordering::Acquire));
            self.read_limit().min(left)
        } else {
            let reads = self.used_by(Class::Answer).min(self.read_limit());
            self.limit - reads
        }
    }

    /// What `ceiling` is compared with: the class's own bytes for
    /// answers, all writes' bytes for a writing class.
    fn counter(&self, class: Class) -> &AtomicUsize {
        if class.is_read() {
            &self.by_class[class.index()]
        } else {
            &self.writes
        }
    }

    /// Whether a new request of `class` should be refused before it
    /// starts: what its class may hold is used up.
    pub(crate) fn exhausted_for(&self, class: Class) -> bool {
        let own = self.by_class[class.index()].load(Ordering::Relaxed);
        self.counter(class).load(Ordering::Relaxed) >= self.ceiling(class)
            || self.own_limit(class).is_some_and(|limit| own >= limit)
    }

    /// An empty charge of `class` to grow as memory is taken.
    pub(crate) fn charge(self: &Arc<Budget>, class: Class) -> Charge {
        Charge {
            budget: Arc::clone(self),
            class,
            bytes: 0,
        }
    }

    /// Most bytes `class` may hold of its own, whatever the others hold:
    /// heads their [`HEAD_SHARE`].
    fn own_limit(&self, class: Class) -> Option<usize> {
        (class == Class::Head).then(|| self.limit / HEAD_SHARE.1 * HEAD_SHARE.0)
    }

    fn take(&self, class: Class, n: usize) -> bool {
        let own = &self.by_class[class.index()];
        if let Some(limit) = self.own_limit(class) {
            // Within the class's own share first, then with the writes.
            if !add_within(own, n, limit) {
                return false;
            }
            if !add_within(&self.writes, n, self.ceiling(class)) {
                own.fetch_sub(n, Ordering::AcqRel);
                return false;
            }
            return true;
        }
        if !add_within(self.counter(class), n, self.ceiling(class)) {
            return false;
        }
        if !class.is_read() {
            own.fetch_add(n, Ordering::AcqRel);
        }
        true
    }

    /// Charges `n` bytes even past the limit: for memory that already
    /// exists, so that it is counted against new requests while it lives.
    fn force(&self, class: Class, n: usize) {
        self.by_class[class.index()].fetch_add(n, Ordering::AcqRel);
        if !class.is_read() {
            self.writes.fetch_add(n, Ordering::AcqRel);
        }
    }

    fn give_back(&self, class: Class, n: usize) {
        self.by_class[class.index()].fetch_sub(n, Ordering::AcqRel);
        if !class.is_read() {
            self.writes.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// Adds `n` to `counter` unless that takes it past `ceiling`.
fn add_within(counter: &AtomicUsize, n: usize, ceiling: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(n).filter(|&total| total <= ceiling)
        })
        .is_ok()
}

/// Bytes charged to the budget, given back when dropped.
pub(crate) struct Charge {
    budget: Arc<Budget>,
    class: Class,
    bytes: usize,
}

impl Charge {
    /// Raises the charge to `total` bytes; false (and unchanged) when the
    /// budget cannot cover it.
    #[must_use]
    pub(crate) fn grow_to(&mut self, total: usize) -> bool {
        if total <= self.bytes {
            return true;
        }
        self.grow_by(total - self.bytes)
    }

    /// Raises the charge by `n` bytes; false (and unchanged) when the
    /// budget cannot cover it.
    #[must_use]
    pub(crate) fn grow_by(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        if !self.budget.take(self.class, n) {
            return false;
        }
        self.bytes += n;
        true
    }

    /// Raises the charge to `total` whatever the budget says.
    pub(crate) fn force_to(&mut self, total: usize) {
        if total > self.bytes {
            self.budget.force(self.class, total - self.bytes);
            self.bytes = total;
        }
    }

    /// Lowers the charge to `total` bytes, giving the rest back.
    pub(crate) fn shrink_to(&mut self, total: usize) {
        if total < self.bytes {
            self.budget.give_back(self.class, self.bytes - total);
            self.bytes = total;
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.class, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_given_back() {
        let b = Budget::new(100);
        let mut a = b.charge(Class::Body);
        assert!(a.grow_to(60));
        let mut c = b.charge(Class::Parse);
        assert!(!c.grow_to(50), "60 + 50 is over 100");
        assert!(c.grow_to(40));
        assert!(b.exhausted_for(Class::Head));
        drop(a);
        assert_eq!(b.used(), 40);
        assert!(c.grow_to(90));
        c.force_to(150);
        assert_eq!(b.used(), 150);
        assert!(b.exhausted_for(Class::Answer));
        c.shrink_to(10);
        assert_eq!((b.used(), b.used_by(Class::Parse)), (10, 10));
        drop(c);
        assert_eq!(b.used(), 0);
        assert_eq!(b.used_by(Class::Parse), 0);
    }

    #[test]
    fn heads_keep_to_their_quarter() {
        let b = Budget::new(100);
        let mut head = b.charge(Class::Head);
        assert!(!head.grow_to(26), "heads may hold a quarter");
        assert_eq!(b.used(), 0, "a refused charge leaves nothing");
        assert!(head.grow_to(25));
        assert!(b.exhausted_for(Class::Head));
        let mut read = b.charge(Class::Answer);
        assert!(read.grow_to(50));
        let mut write = b.charge(Class::Body);
        assert!(
            write.grow_to(25),
            "heads and answers leave bodies a quarter"
        );
        assert!(!write.grow_by(1));
        drop(head);
        let mut late = b.charge(Class::Head);
        assert!(late.grow_to(25), "what a head gave back");
        assert!(!late.grow_by(1));
    }

    #[test]
    fn readers_keep_to_their_share_and_writers_keep_theirs() {
        let b = Budget::new(100);
        let mut read = b.charge(Class::Answer);
        assert!(!read.grow_to(51), "answers may hold half");
        assert!(read.grow_to(50));
        assert!(b.exhausted_for(Class::Answer));
        assert!(
            !b.exhausted_for(Class::Body),
            "writers still have their half"
        );
        let mut write = b.charge(Class::Body);
        assert!(write.grow_to(50), "the writers' half is whole");
        assert!(!write.grow_by(1));
        drop(read);
        assert!(write.grow_to(100), "writers may use what readers leave");
        let mut late = b.charge(Class::Answer);
        assert!(!late.grow_by(1), "and then readers wait");
        assert_eq!(
            b.used_by(Class::Answer),
            0,
            "a refused charge leaves nothing"
        );
        drop(write);
        late.force_to(400);
        assert!(b.exhausted_for(Class::Answer));
        let mut after = b.charge(Class::Parse);
        assert!(
            after.grow_to(50),
            "answers forced past their share leave writers their half"
        );
        assert!(!after.grow_to(51));
    }
}
