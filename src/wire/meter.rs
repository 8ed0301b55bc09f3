//! What parsing a body may cost: the meter the parsers ask before each
//! record and the upper bounds they ask for.

/// What a parser asks before it creates a record, so that a body's parsed
/// form can never outgrow what the caller is willing to hold.
///
/// The parsers stay pure functions over bytes: the gateway's meter charges
/// its memory budget, tests and restores use [`Unmetered`]. A meter that
/// says no ends the parse with the parser's "over budget" error.
pub trait Meter {
    /// Takes `bytes` more; false when they cannot be covered.
    fn take(&mut self, bytes: usize) -> bool;
}

/// A meter that covers everything: tests, fuzzing, and restores (whose
/// input is the gateway's own file, already bounded).
pub struct Unmetered;

impl Meter for Unmetered {
    fn take(&mut self, _bytes: usize) -> bool {
        true
    }
}

impl<F: FnMut(usize) -> bool> Meter for F {
    fn take(&mut self, bytes: usize) -> bool {
        self(bytes)
    }
}

/// Adds a parsed series to its family's vector: the first into room for
/// [`cost::FIRST_SERIES_ROOM`] (see there), and once that is full, the
/// vector grows to a power of two and doubles from there as any vector
/// does. Doubling from three instead left a family of 125,000 series in
/// 196,608 slots, not 131,072: too empty to be stored as it is, so it was
/// copied, and the copy left a hole behind.
pub fn push_series(metrics: &mut Vec<crate::model::Metric>, m: crate::model::Metric) {
    let n = metrics.len();
    if n == 0 {
        metrics.reserve_exact(cost::FIRST_SERIES_ROOM);
    } else if n == metrics.capacity() && !n.is_power_of_two() {
        metrics.reserve_exact(n.next_power_of_two() - n);
    }
    metrics.push(m);
}

/// Upper bounds of what parsed records cost in memory, for the meters.
/// Generous on purpose: allocator headers and the doubling of growing
/// vectors are included, so a charge is never below what is allocated.
pub mod cost {
    use crate::model::{Extra, Histogram, Label, Metric, Summary};
    use std::mem::size_of;

    /// The allocator's header and rounding, per allocation.
    pub const ALLOC: usize = 16;

    /// The series a family's vector has room for when its first comes:
    /// most families hold one, but this block is the size of a stored
    /// one-series family (`store::StoredFamily` in its `Arc`, 120 bytes),
    /// which takes its place when the push is stored. With room for one,
    /// a push of 300,000 one-series families left as many 48-byte holes
    /// in the parsing thread's heap that nothing else of the push fits.
    pub const FIRST_SERIES_ROOM: usize = 3;

    /// One label: its slot in a growing vector (twice, for the doubling),
    /// the shared pair and its two strings.
    pub fn label(name: usize, value: usize) -> usize {
        2 * size_of::<Label>() + 48 + 2 * 16 + name + value + 3 * ALLOC
    }

    /// One series record in a growing vector, without its labels.
    pub fn metric() -> usize {
        2 * size_of::<Metric>()
    }

    /// The first series of a family, in the room its vector starts with
    /// ([`FIRST_SERIES_ROOM`] series, one block).
    pub fn first_metric() -> usize {
        FIRST_SERIES_ROOM * size_of::<Metric>() + ALLOC
    }

    /// The boxed value of a summary or a histogram.
    pub fn summary() -> usize {
        size_of::<Summary>() + ALLOC
    }

    pub fn histogram() -> usize {
        size_of::<Histogram>() + ALLOC
    }

    /// The boxed extras of a series (a timestamp, exemplars).
    pub fn extra() -> usize {
        size_of::<Extra>() + ALLOC
    }

    /// `n` elements of `size` bytes in a growing vector.
    pub fn items(n: usize, size: usize) -> usize {
        n.saturating_mul(size).saturating_mul(2)
    }

    /// A string of `len` bytes held once.
    pub fn string(len: usize) -> usize {
        len + ALLOC
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metric, Value};

    /// Room for three first, then powers of two, as a vector grows.
    #[test]
    fn series_vectors_grow_from_three_to_powers_of_two() {
        let mut v = Vec::new();
        let mut caps = Vec::new();
        for i in 0..20 {
            push_series(
                &mut v,
                Metric::new(Box::new([]), Value::Gauge(f64::from(i))),
            );
            caps.push(v.capacity());
        }
        caps.dedup();
        assert_eq!(caps, [cost::FIRST_SERIES_ROOM, 4, 8, 16, 32]);
    }
}
