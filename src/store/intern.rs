//! Interning of label names and whole label pairs shared between series.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::{Label, LabelPair};

/// Shares equal labels between series: most are repeated (`job`,
/// `instance`, one value per shard or region), so one allocation per
/// distinct pair instead of three per label cuts memory by about a third
/// on typical stores.
///
/// Names are interned on their own as well (a few dozen, each in many
/// pairs); values only as part of their pair: a value seldom appears
/// under two names, and a set entry for each of 300,000 distinct values
/// (ids, timestamps as labels) cost more than it ever saved.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) names: HashSet<Arc<str>>,
    /// Whole labels, so that a series' slice points at shared pairs.
    pub(super) pairs: HashSet<Label>,
    /// Size at which unused strings are next swept out.
    pub(super) high_water: usize,
}

impl Interner {
    pub(super) fn intern(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.names.get(&**name) {
            return Arc::clone(shared);
        }
        self.names.insert(Arc::clone(name));
        Arc::clone(name)
    }

    /// Takes `l` as the shared pair for its name and value, unless there
    /// is one already.
    pub(super) fn adopt(&mut self, l: Label) {
        if !self.pairs.contains::<LabelPair>(&l) {
            self.intern(&l.name);
            self.pairs.insert(l);
        }
    }

    /// Interns every label of a series, in place. One lookup for a label
    /// already in the store (the common case: a job pushing its series
    /// again), not a second one to fetch what the first found.
    pub(super) fn labels(&mut self, labels: &mut [Label]) {
        for l in labels.iter_mut() {
            match self.pairs.get::<LabelPair>(l) {
                Some(shared) if shared.same_pair(l) => {}
                Some(shared) => *l = shared.clone(),
                None => {
                    let name = self.intern(&l.name);
                    l.share_name(name);
                    self.pairs.insert(l.clone());
                }
            }
        }
    }

    /// Drops labels and names no series uses any more, once they could
    /// make up half of the sets: the sweep is O(set), so it runs rarely.
    pub(super) fn sweep_if_due(&mut self) {
        if self.pairs.len() + self.names.len() > self.high_water {
            // Pairs first: they hold references to the names.
            self.pairs.retain(Label::is_shared);
            self.names.retain(|s| Arc::strong_count(s) > 1);
            self.high_water = ((self.pairs.len() + self.names.len()) * 2).max(1024);
        }
    }
}
