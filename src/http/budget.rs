//! One memory budget for what connections hold privately: request bodies
//! being read, bodies being decompressed, and answers waiting for a client
//! that reads slowly.
//!
//! Per-request limits (`--push.max-body-size`) bound one request; this
//! bounds them all together, so any number of concurrent gzip bombs or
//! non-reading scrapers cannot take more than `--web.memory-budget`. A
//! request that would go over it gets 503 and may retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.used() >= self.limit
    }

    /// An empty charge to grow as memory is taken.
    pub(crate) fn charge(self: &Arc<Budget>) -> Charge {
        Charge {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    /// Charges `n` bytes even past the limit: for memory that already
    /// exists (an answer rendered by the loop), so that it is counted
    /// against new requests while it waits for its client.
    fn force(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }
}

/// Bytes charged to the budget, given back when dropped.
pub(crate) struct Charge {
    budget: Arc<Budget>,
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
        if !self.budget.take(total - self.bytes) {
            return false;
        }
        self.bytes = total;
        true
    }

    /// Raises the charge to `total` whatever the budget says.
    pub(crate) fn force_to(&mut self, total: usize) {
        if total > self.bytes {
            self.budget.force(total - self.bytes);
            self.bytes = total;
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_bounded_and_given_back() {
        let b = Budget::new(100);
        let mut a = b.charge();
        assert!(a.grow_to(60));
        let mut c = b.charge();
        assert!(!c.grow_to(50), "60 + 50 is over 100");
        assert!(c.grow_to(40));
        assert!(b.exhausted());
        drop(a);
        assert_eq!(b.used(), 40);
        assert!(c.grow_to(90));
        c.force_to(150);
        assert_eq!(b.used(), 150);
        drop(c);
        assert_eq!(b.used(), 0);
    }
}
