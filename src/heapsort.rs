//! A heapsort for the sorts off the hot paths (a JSON object's keys, a
//! grouping key, the groups of a page or a scrape, the gateway's own
//! families).
//!
//! Every call of the standard library's sorts with its own element type
//! or comparator is its own two to four kilobytes of code, and the static
//! binary has a size budget. This is a few hundred bytes per element type
//! (the comparator is a trait object), needs no allocation, and stays
//! O(n log n) whatever the input, so a client cannot make it quadratic.
//! It is not stable; every caller sorts keys that are unique or whose
//! equal elements are interchangeable.

use std::cmp::Ordering;

/// Sorts `v` in ascending order by `cmp`.
pub(crate) fn sort_by<T>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering) {
    let n = v.len();
    for start in (0..n / 2).rev() {
        sift_down(v, start, n, cmp);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, cmp);
    }
}

/// Restores the max-heap below `root` in `v[..end]`.
fn sift_down<T>(v: &mut [T], mut root: usize, end: usize, cmp: &dyn Fn(&T, &T) -> Ordering) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && cmp(&v[child], &v[child + 1]) == Ordering::Less {
            child += 1;
        }
        if cmp(&v[root], &v[child]) != Ordering::Less {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_the_standard_sort() {
        let mut seed = 7u64;
        for len in [0, 1, 2, 3, 5, 8, 13, 100, 1000] {
            let mut v: Vec<u64> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    seed >> 54
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            sort_by(&mut v, &|a, b| a.cmp(b));
            assert_eq!(v, want, "length {len}");
        }
        let mut words = vec!["b", "a", "c", "a"];
        sort_by(&mut words, &|a, b| b.cmp(a));
        assert_eq!(words, ["c", "b", "a", "a"]);
    }
}
