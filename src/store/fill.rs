//! The order in which a push's families go into the store's B-trees, so
//! that their nodes come out full.
//!
//! std's `BTreeMap` splits a full node (eleven keys) around its middle.
//! Keys inserted in ascending order therefore leave every leaf behind
//! with six keys and five empty slots: the index and a group's map, when
//! a push of many new names went in in name order, were 45% empty (an
//! index entry of 72 bytes took 137 of leaves). Taken in runs of twelve
//! keys, inserting all but the 7th to 11th of each run first leaves
//! leaves of six with the run's last key above them; the 7th to 11th,
//! inserted after, then fill each leaf's gap to eleven without a split
//! (80 bytes an index entry, internal nodes included).
//!
//! Only memory depends on std's policy: any order stores the same.

/// Keys to a leaf of std's B-trees (11), plus the one above it.
const RUN: usize = 12;

/// Whether the item at `i` of a sorted run goes in the second pass: the
/// 7th to 11th of each twelve.
fn second(i: usize) -> bool {
    (6..RUN - 1).contains(&(i % RUN))
}

/// Calls `insert` on every item of `items`, which are in key order, in
/// the order that fills the B-tree nodes they go into (see the module).
/// Holds back at most five twelfths of them meanwhile.
pub(super) fn in_fill_order<T>(items: Vec<T>, mut insert: impl FnMut(T)) {
    let mut later = Vec::with_capacity(items.len() * 5 / RUN + 5);
    for (i, item) in items.into_iter().enumerate() {
        if second(i) {
            later.push(item);
        } else {
            insert(item);
        }
    }
    later.into_iter().for_each(insert);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: usize) -> Vec<usize> {
        let mut out = Vec::new();
        in_fill_order((0..n).collect(), |i| out.push(i));
        out
    }

    #[test]
    fn every_item_is_inserted_once() {
        for n in [0, 1, 6, 7, 11, 12, 13, 100, 1000] {
            let mut got = order(n);
            got.sort_unstable();
            assert_eq!(got, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn the_seventh_to_eleventh_of_each_twelve_come_last() {
        let got = order(26);
        assert_eq!(
            got,
            [
                0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16, 17, 23, 24, 25, // first
                6, 7, 8, 9, 10, 18, 19, 20, 21, 22 // second
            ]
        );
    }
}
