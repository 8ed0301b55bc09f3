//! The index over all groups: per metric name, the types, HELP texts and
//! series every group contributes, kept up to date incrementally.

use std::collections::{BTreeMap, BTreeSet};

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
    pub(super) series: BTreeSet<(SeriesKey, u64)>,
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
        idx.series.remove(&(SeriesKey(m.labels.clone()), gid));
    }
    if idx.groups() == 0 {
        families.remove(name);
    }
}
