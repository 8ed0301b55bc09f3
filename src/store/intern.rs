//! Interning of label names and values shared between series.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::{Label, LabelPair};

/// Shares equal label names and values between series: most are repeated
/// (`job`, `instance`, one value per shard or region), so one allocation
/// per distinct string instead of two per label cuts memory by about a
/// third on typical stores.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) strings: HashSet<Arc<str>>,
    /// Whole labels, so that a series' slice points at shared pairs.
    pub(super) pairs: HashSet<Label>,
    /// Size at which unused strings are next swept out.
    pub(super) high_water: usize,
}

impl Interner {
    pub(super) fn intern(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.strings.get(&**s) {
            return Arc::clone(shared);
        }
        self.strings.insert(Arc::clone(s));
        Arc::clone(s)
    }

    /// Takes `l` as the shared pair for its name and value, unless there
    /// is one already.
    pub(super) fn adopt(&mut self, l: Label) {
        if !self.pairs.contains::<LabelPair>(&l) {
            self.intern(&l.name);
            self.intern(&l.value);
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
                    let (name, value) = (self.intern(&l.name), self.intern(&l.value));
                    l.share_parts(name, value);
                    self.pairs.insert(l.clone());
                }
            }
        }
    }

    /// Drops strings no series uses any more, once they could make up half
    /// of the set: the sweep is O(set), so it runs rarely.
    pub(super) fn sweep_if_due(&mut self) {
        if self.pairs.len() + self.strings.len() > self.high_water {
            // Pairs first: they hold references to the strings.
            self.pairs.retain(Label::is_shared);
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.high_water = ((self.pairs.len() + self.strings.len()) * 2).max(1024);
        }
    }
}
