//! The index over all groups: per metric name, the types, HELP texts and
//! series every group contributes, kept up to date incrementally.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::*;
use crate::model::MetricType;

/// Index entry for one metric name across all groups.
#[derive(Debug, Default)]
pub(super) struct FamilyIndex {
    /// How many groups contribute this family, per type (indexed by
    /// `type_slot`). With the consistency check on, one slot at most is
    /// non-zero.
    pub(super) type_counts: [u32; 5],
    /// HELP texts pushed for this name and how many groups pushed each; the
    /// most recently pushed one is last and is the one exposed.
    pub(super) helps: Vec<(Option<Box<str>>, u32)>,
    /// Every series with its owning group, for the consistency check (a
    /// series may not be in two groups). Its lines live with the group.
    pub(super) series: Owners,
}

/// Which group owns each series of a family: a hash map, so a push or a
/// restore of a million series costs a hash per series, not a walk down a
/// tree of label comparisons. With the consistency check on, a series has
/// one owner; pushes that skip the check can give it more, kept in
/// `more` (empty otherwise) and reported by `Store::inconsistencies`.
#[derive(Debug, Default)]
pub(super) struct Owners {
    first: HashMap<SeriesKey, u64>,
    more: Vec<(SeriesKey, u64)>,
}

impl Owners {
    pub(super) fn insert(&mut self, key: SeriesKey, gid: u64) {
        match self.first.entry(key) {
            Entry::Vacant(v) => {
                v.insert(gid);
            }
            Entry::Occupied(o) => {
                if *o.get() != gid && !self.more.iter().any(|(k, g)| *g == gid && k == o.key()) {
                    self.more.push((o.key().clone(), gid));
                }
            }
        }
    }

    pub(super) fn remove(&mut self, key: &SeriesKey, gid: u64) {
        if let Some(i) = self.more.iter().position(|(k, g)| *g == gid && k == key) {
            self.more.swap_remove(i);
            return;
        }
        if self.first.get(key) == Some(&gid) {
            match self.more.iter().position(|(k, _)| k == key) {
                // Another group still has it: it becomes the owner.
                Some(i) => {
                    let (_, g) = self.more.swap_remove(i);
                    self.first.insert(key.clone(), g);
                }
                None => {
                    self.first.remove(key);
                }
            }
        }
    }

    /// An owner of `key` other than `gid`, if there is one.
    pub(super) fn other_owner(&self, key: &SeriesKey, gid: Option<u64>) -> Option<u64> {
        match self.first.get(key) {
            Some(&o) if Some(o) != gid => Some(o),
            _ => self
                .more
                .iter()
                .find(|(k, g)| k == key && Some(*g) != gid)
                .map(|(_, g)| *g),
        }
    }

    /// Series owned by more than one group (unchecked pushes only).
    pub(super) fn shared(&self) -> impl Iterator<Item = &SeriesKey> {
        self.more.iter().map(|(k, _)| k)
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
        if let Some(i) = self.helps.iter().position(|(h, _)| h.as_deref() == help) {
            let mut e = self.helps.remove(i);
            e.1 += 1;
            self.helps.push(e);
        } else {
            self.helps.push((help.map(Into::into), 1));
        }
    }

    pub(super) fn remove_help(&mut self, help: Option<&str>) {
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
}

pub(super) fn unindex_family(
    families: &mut BTreeMap<Box<str>, FamilyIndex>,
    name: &str,
    fam: &StoredFamily,
    gid: u64,
) {
    let Some(idx) = families.get_mut(name) else {
        return;
    };
    idx.type_counts[type_slot(fam.metric_type)] -= 1;
    idx.remove_help(fam.help.as_deref());
    for m in &fam.metrics {
        idx.series.remove(&SeriesKey(m.labels.clone()), gid);
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
        let k = SeriesKey(vec![Label::new("job", "a")].into());
        let mut o = Owners::default();
        o.insert(k.clone(), 1);
        o.insert(k.clone(), 1);
        assert_eq!(o.other_owner(&k, Some(1)), None);
        assert_eq!(o.other_owner(&k, None), Some(1));
        o.insert(k.clone(), 2);
        assert_eq!(o.other_owner(&k, Some(1)), Some(2));
        assert_eq!(o.shared().count(), 1);
        // The first owner goes: the second takes over.
        o.remove(&k, 1);
        assert_eq!(o.other_owner(&k, None), Some(2));
        assert_eq!(o.shared().count(), 0);
        o.remove(&k, 2);
        assert_eq!(o.other_owner(&k, None), None);
        assert!(o.first.is_empty());
    }
}
