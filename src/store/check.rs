//! The consistency rules a push must keep, checked against the index
//! without changing anything. Each rule is one method of [`Check`]; the
//! reference checks the same rules by re-gathering the whole store.

use super::{
    FamilyIndex, Group, GroupKey, OwnFamilies, Owners, PUSH_TIME, PreparedFamily, PreparedPush,
    PushError, SLOT_TYPES, Store, series_hash, show_labels, time_labels, type_slot,
};
use crate::model::{Label, MetricType, merged};

impl Store {
    /// Checks a prepared push against the store without changing anything.
    pub(crate) fn check(
        &self,
        push: &PreparedPush,
        own: &dyn OwnFamilies,
    ) -> Result<(), PushError> {
        let check = Check {
            store: self,
            own,
            push,
            group: self.groups.get(&push.key).map(|g| &**g),
        };
        if check.group.is_none() {
            self.check_group_collision(&push.key)?;
        }
        for fam in &push.families {
            check.one_type_per_name(fam)?;
            check.no_suffix_collision(fam)?;
            check.no_series_in_other_group(fam)?;
        }
        Ok(())
    }

    /// A new group's push-time gauges must not duplicate another group's:
    /// `{job="a"}` and `{job="a",instance=""}` are different groups with
    /// the same `push_time_seconds{instance="",job="a"}`. The reference
    /// accepts that state and then fails every scrape; we refuse to create
    /// it.
    pub(super) fn check_group_collision(&self, key: &GroupKey) -> Result<(), PushError> {
        let Some(idx) = self.families.get(PUSH_TIME) else {
            return Ok(());
        };
        let labels = time_labels(key);
        match self.owner_of(PUSH_TIME, &labels, &idx.series, None) {
            Some(owner) => Err(PushError::GroupCollision {
                group: show_labels(key),
                other: self.describe_group(owner),
            }),
            None => Ok(()),
        }
    }

    /// A group other than `gid` that has this series of family `name`:
    /// the index's candidates by hash, confirmed by their labels.
    fn owner_of(
        &self,
        name: &str,
        labels: &[Label],
        owners: &Owners,
        gid: Option<u64>,
    ) -> Option<u64> {
        self.owner_by_hash(name, (&[], labels), series_hash(&[], labels), owners, gid)
    }

    /// [`Store::owner_of`] for a series given as its own labels and its
    /// group's, with its hash already known. The labels are merged only
    /// when another group has a series of that hash.
    fn owner_by_hash(
        &self,
        name: &str,
        (own, shared): (&[Label], &[Label]),
        h: u64,
        owners: &Owners,
        gid: Option<u64>,
    ) -> Option<u64> {
        let mut candidates = owners.other_owners(h, gid).peekable();
        candidates.peek()?;
        let labels = merged(own, shared).collect_boxed();
        candidates.find(|&o| self.has_series(o, name, &labels))
    }

    fn describe_group(&self, id: u64) -> String {
        self.group_by_id(id)
            .map(|(k, _)| show_labels(k))
            .unwrap_or_else(|| format!("#{id}"))
    }
}

/// One push being checked, and what the rules look it up in.
struct Check<'a> {
    store: &'a Store,
    own: &'a dyn OwnFamilies,
    push: &'a PreparedPush,
    /// The group the push goes to, if it exists.
    group: Option<&'a Group>,
}

impl Check<'_> {
    fn index(&self, name: &str) -> Option<&FamilyIndex> {
        self.store.families.get(name)
    }

    /// One type per name across the store and the gateway's own metrics.
    /// The group's own previous family of that name does not count: a
    /// push may change a type it alone holds.
    fn one_type_per_name(&self, fam: &PreparedFamily) -> Result<(), PushError> {
        let (name, t) = (&*fam.name, fam.metric_type);
        if let Some((own_t, own_help)) = self.own.own_family(name) {
            // The reference gathers HELP before type.
            let pushed = fam.help.as_deref().unwrap_or("");
            if self.own.help_checked(name) && pushed != own_help {
                return Err(PushError::HelpMismatch {
                    metric: name.to_owned(),
                    pushed: pushed.to_owned(),
                    own: own_help,
                });
            }
            if own_t != t {
                return Err(type_mismatch(name, t, own_t));
            }
        }
        if let Some(idx) = self.index(name) {
            let mut counts = idx.type_counts.to_array();
            if let Some(old) = self.group.and_then(|g| g.families.get(name)) {
                counts[type_slot(old.metric_type)] -= 1;
            }
            if let Some(i) = (0..SLOT_TYPES.len()).find(|&i| counts[i] > 0 && SLOT_TYPES[i] != t) {
                return Err(type_mismatch(name, t, SLOT_TYPES[i]));
            }
        }
        Ok(())
    }

    /// The `_count`, `_sum` and `_bucket` lines of summaries and histograms
    /// must not collide with other families' names, either way round.
    fn no_suffix_collision(&self, fam: &PreparedFamily) -> Result<(), PushError> {
        let (name, t) = (&*fam.name, fam.metric_type);
        for (suffix, bases) in [
            (
                "_count",
                &[
                    MetricType::Summary,
                    MetricType::Histogram,
                    MetricType::GaugeHistogram,
                ][..],
            ),
            (
                "_sum",
                &[
                    MetricType::Summary,
                    MetricType::Histogram,
                    MetricType::GaugeHistogram,
                ][..],
            ),
            (
                "_bucket",
                &[MetricType::Histogram, MetricType::GaugeHistogram][..],
            ),
        ] {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(bt) = self.type_after(base)
                && bases.contains(&bt)
            {
                return Err(suffix_collision(name, base, bt));
            }
        }
        if t == MetricType::Summary || t.is_histogram() {
            for suffix in ["_count", "_sum", "_bucket"] {
                if suffix == "_bucket" && t == MetricType::Summary {
                    continue;
                }
                let other = format!("{name}{suffix}");
                if let Some(ot) = self.type_after(&other) {
                    return Err(suffix_collision(name, &other, ot));
                }
            }
        }
        Ok(())
    }

    /// No series may exist in two groups.
    fn no_series_in_other_group(&self, fam: &PreparedFamily) -> Result<(), PushError> {
        let Some(idx) = self.index(&fam.name) else {
            return Ok(());
        };
        let gid = self.group.map(|g| g.id);
        for (m, &h) in fam.metrics.iter().zip(self.push.hashes_of(fam)) {
            let labels = (&m.labels[..], &self.push.shared[..]);
            if let Some(owner) = self
                .store
                .owner_by_hash(&fam.name, labels, h, &idx.series, gid)
            {
                return Err(PushError::SeriesInOtherGroup {
                    metric: fam.name.to_string(),
                    labels: show_labels(&merged(labels.0, labels.1).collect_boxed()),
                    group: self.store.describe_group(owner),
                });
            }
        }
        Ok(())
    }

    /// The type `name` will have once the push is applied, if it exists
    /// then: pushed now, one of the gateway's own, or left in the store.
    fn type_after(&self, name: &str) -> Option<MetricType> {
        if let Some(f) = self.push.family(name) {
            return Some(f.metric_type);
        }
        if let Some((t, _)) = self.own.own_family(name) {
            return Some(t);
        }
        let mut counts = self.index(name).map(|f| f.type_counts.to_array())?;
        if let Some(old) = self.group.and_then(|g| g.families.get(name))
            && self.push.replace
        {
            counts[type_slot(old.metric_type)] -= 1;
        }
        counts.iter().position(|c| *c > 0).map(|i| SLOT_TYPES[i])
    }
}

fn type_mismatch(name: &str, pushed: MetricType, existing: MetricType) -> PushError {
    PushError::TypeMismatch {
        metric: name.to_owned(),
        pushed,
        existing,
    }
}

fn suffix_collision(name: &str, other: &str, other_type: MetricType) -> PushError {
    PushError::SuffixCollision {
        metric: name.to_owned(),
        other: other.to_owned(),
        other_type,
    }
}
