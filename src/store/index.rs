//! The index over all groups: per metric name, the types, HELP texts and
//! series every group contributes, kept up to date incrementally.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::*;
use crate::model::{Label, MetricType};

/// Index entry for one metric name across all groups.
#[derive(Debug, Default)]
pub(super) struct FamilyIndex {
    /// How many groups contribute this family, per type (indexed by
    /// `type_slot`). With the consistency check on, one slot at most is
    /// non-zero.
    pub(super) type_counts: [u32; 5],
    /// HELP texts pushed for this name and how many groups pushed each; the
    /// most recently pushed one is last and is the one exposed. Families
    /// pushed without HELP are not counted: they never decide what is
    /// exposed, and most big pushes have none.
    pub(super) helps: Vec<(Option<Box<str>>, u32)>,
    /// Every series with its owning group, for the consistency check (a
    /// series may not be in two groups). Its lines live with the group.
    pub(super) series: Owners,
    /// The store's generation when any group's part of this family last
    /// changed: a scrape's cached rendering of the family is good while
    /// this stays the same.
    pub(super) version: u64,
}

/// A series' identity in the index: a 64-bit hash of its labels, keyed
/// at random per process so that no client can aim collisions.
///
/// The index keeps this hash, not the labels (8 bytes a series, not a
/// 16-byte label pointer), and a hit against another group is confirmed
/// against that group's own series before a push is refused (see
/// `Check::no_series_in_other_group`). Two distinct series of one family
/// sharing a hash (about one chance in 10^7 with a million of them) can
/// therefore never refuse a good push; at worst one conflicting push
/// after such a pair's removal goes unnoticed, as with the check off.
pub(super) fn series_hash(labels: &[Label]) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one(labels)
}

/// The identity hasher for keys that already are hashes.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Which group owns each series of a family, by [`series_hash`]: a hash
/// map, so a push or a restore of a million series costs a hash per
/// series, not a walk down a tree of label comparisons. With the
/// consistency check on, a series has one owner; pushes that skip the
/// check can give it more, kept in `more` (empty otherwise, and ordered,
/// so that a push of many shared series stays O(n log n)) and reported by
/// `Store::inconsistencies`.
#[derive(Debug, Default)]
pub(super) struct Owners {
    first: First,
    /// Boxed: every family's index entry has one, few ever fill it.
    #[allow(clippy::box_collection)] // 8 bytes, not 24, in every index entry.
    more: Option<Box<BTreeSet<(u64, u64)>>>,
}

type HashToGroup = HashMap<u64, u64, BuildHasherDefault<Prehashed>>;

/// The first owner of each series. Most families of most groups hold one
/// series: that one is kept inline, without a map's allocation.
#[derive(Debug, Default)]
enum First {
    #[default]
    Empty,
    One(u64, u64),
    /// Boxed, so that the common cases stay two words.
    Map(Box<HashToGroup>),
}

impl First {
    fn get(&self, key: u64) -> Option<u64> {
        match self {
            First::Empty => None,
            First::One(k, g) => (*k == key).then_some(*g),
            First::Map(m) => m.get(&key).copied(),
        }
    }

    /// Sets the owner of `key`, whether it had one or not.
    fn set(&mut self, key: u64, gid: u64) {
        match self {
            First::Empty => *self = First::One(key, gid),
            First::One(k, g) if *k == key => *g = gid,
            First::One(k, g) => {
                let mut m = Box::<HashToGroup>::default();
                m.insert(*k, *g);
                m.insert(key, gid);
                *self = First::Map(m);
            }
            First::Map(m) => {
                m.insert(key, gid);
            }
        }
    }

    fn remove(&mut self, key: u64) {
        match self {
            First::One(k, _) if *k == key => *self = First::Empty,
            First::Map(m) => {
                m.remove(&key);
            }
            _ => {}
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        match self {
            First::Empty => true,
            First::One(..) => false,
            First::Map(m) => m.is_empty(),
        }
    }
}

impl Owners {
    pub(super) fn insert(&mut self, key: u64, gid: u64) {
        match self.first.get(key) {
            None => self.first.set(key, gid),
            Some(owner) if owner != gid => {
                self.more.get_or_insert_default().insert((key, gid));
            }
            Some(_) => {}
        }
    }

    pub(super) fn remove(&mut self, key: u64, gid: u64) {
        if self.more_remove(key, gid) {
            return;
        }
        if self.first.get(key) == Some(gid) {
            let next = self.extra_owners(key).next();
            match next {
                // Another group still has it: it becomes the owner.
                Some(g) => {
                    self.more_remove(key, g);
                    self.first.set(key, g);
                }
                None => self.first.remove(key),
            }
        }
    }

    /// Removes an extra owner; false if `gid` was not one of `key`.
    fn more_remove(&mut self, key: u64, gid: u64) -> bool {
        let Some(more) = &mut self.more else {
            return false;
        };
        let removed = more.remove(&(key, gid));
        if more.is_empty() {
            self.more = None;
        }
        removed
    }

    /// The owners of `key` beyond the first.
    fn extra_owners(&self, key: u64) -> impl Iterator<Item = u64> + '_ {
        let more = self
            .more
            .iter()
            .flat_map(move |m| m.range((key, 0)..=(key, u64::MAX)));
        more.map(|(_, g)| *g)
    }

    /// Every group other than `gid` that has a series with this hash:
    /// candidates, to be confirmed against their labels.
    pub(super) fn other_owners(
        &self,
        key: u64,
        gid: Option<u64>,
    ) -> impl Iterator<Item = u64> + '_ {
        let first = self.first.get(key);
        first
            .into_iter()
            .chain(self.extra_owners(key))
            .filter(move |g| Some(*g) != gid)
    }

    /// (hash, extra owner) of series with more than one owner (unchecked
    /// pushes only).
    pub(super) fn shared(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.more.iter().flat_map(|m| m.iter().copied())
    }

    /// The first owner of a series with this hash.
    pub(super) fn owner(&self, key: u64) -> Option<u64> {
        self.first.get(key)
    }
}

pub(super) fn type_slot(t: MetricType) -> usize {
    t.number()
}

pub(super) const SLOT_TYPES: [MetricType; 5] = MetricType::ALL;

impl FamilyIndex {
    pub(super) fn groups(&self) -> u32 {
        self.type_counts.iter().sum()
    }

    /// The type exposed: the most common one (the only one when consistent).
    pub(super) fn metric_type(&self) -> MetricType {
        let mut best = 0;
        for i in 1..5 {
            if self.type_counts[i] > self.type_counts[best] {
                best = i;
            }
        }
        SLOT_TYPES[best]
    }

    pub(super) fn help(&self) -> Option<&str> {
        self.helps.iter().rev().find_map(|(h, _)| h.as_deref())
    }

    pub(super) fn add_help(&mut self, help: Option<&str>) {
        if help.is_none() {
            return;
        }
        if let Some(i) = self.helps.iter().position(|(h, _)| h.as_deref() == help) {
            let mut e = self.helps.remove(i);
            e.1 += 1;
            self.helps.push(e);
        } else {
            if self.helps.is_empty() {
                // One HELP text is the rule: no room for three more.
                self.helps.reserve_exact(1);
            }
            self.helps.push((help.map(Into::into), 1));
        }
    }

    pub(super) fn remove_help(&mut self, help: Option<&str>) {
        if help.is_none() {
            return;
        }
        if let Some(i) = self.helps.iter().position(|(h, _)| h.as_deref() == help) {
            self.helps[i].1 -= 1;
            if self.helps[i].1 == 0 {
                self.helps.remove(i);
            }
        }
    }
}

/// A family's name, HELP and type as a scrape exposes them; shared with
/// the scrape's renderer off the loop.
#[derive(Clone, Debug)]
pub(crate) struct FamilyMeta {
    pub name: Arc<str>,
    pub help: Option<Arc<str>>,
    pub metric_type: MetricType,
    /// Changes whenever the family's series, HELP or type change.
    pub version: u64,
}

pub(super) fn unindex_family(
    families: &mut BTreeMap<Box<str>, FamilyIndex>,
    name: &str,
    fam: &StoredFamily,
    gid: u64,
    generation: u64,
) {
    let Some(idx) = families.get_mut(name) else {
        return;
    };
    idx.version = generation;
    idx.type_counts[type_slot(fam.metric_type)] -= 1;
    idx.remove_help(fam.help.as_deref());
    for m in &fam.metrics {
        idx.series.remove(series_hash(&m.labels), gid);
    }
    if idx.groups() == 0 {
        families.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;

    #[test]
    fn owners_keep_extra_owners_of_unchecked_pushes() {
        let k = series_hash(&[Label::new("job", "a")]);
        let others = |o: &Owners, gid| o.other_owners(k, gid).collect::<Vec<_>>();
        let mut o = Owners::default();
        o.insert(k, 1);
        o.insert(k, 1);
        assert_eq!(others(&o, Some(1)), []);
        assert_eq!(others(&o, None), [1]);
        o.insert(k, 2);
        assert_eq!(others(&o, Some(1)), [2]);
        assert_eq!(o.shared().count(), 1);
        // The first owner goes: the second takes over.
        o.remove(k, 1);
        assert_eq!(others(&o, None), [2]);
        assert_eq!(o.shared().count(), 0);
        o.remove(k, 2);
        assert_eq!(others(&o, None), []);
        assert!(o.first.is_empty());
    }

    #[test]
    fn series_hashes_follow_the_labels() {
        let a = [Label::new("job", "a"), Label::new("x", "1")];
        let b = [Label::new("job", "a"), Label::new("x", "1")];
        let c = [Label::new("job", "a"), Label::new("x", "2")];
        assert_eq!(series_hash(&a), series_hash(&b));
        assert_ne!(series_hash(&a), series_hash(&c));
        // Moving a character between name and value is another series.
        let d = [Label::new("joba", ""), Label::new("x", "1")];
        assert_ne!(series_hash(&a), series_hash(&d));
    }
}
