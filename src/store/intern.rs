//! Interning of label names and values shared between series.

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::{Label, Labels};

/// Shares equal label names and values between series: most are repeated
/// (`job`, `instance`, one value per shard or region), so one allocation
/// per distinct string instead of two per label cuts memory by about a
/// third on typical stores.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) strings: HashSet<Arc<str>>,
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

    /// `labels` with every name and value interned; in place when the
    /// set is not shared (a fresh push's), so no new slice is allocated.
    pub(super) fn labels(&mut self, mut labels: Labels) -> Labels {
        if let Some(slice) = Arc::get_mut(&mut labels) {
            for l in slice.iter_mut() {
                l.name = self.intern(&l.name);
                l.value = self.intern(&l.value);
            }
            return labels;
        }
        labels
            .iter()
            .map(|l| Label {
                name: self.intern(&l.name),
                value: self.intern(&l.value),
            })
            .collect()
    }

    /// Drops strings no series uses any more, once they could make up half
    /// of the set: the sweep is O(set), so it runs rarely.
    pub(super) fn sweep_if_due(&mut self) {
        if self.strings.len() > self.high_water {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.high_water = (self.strings.len() * 2).max(1024);
        }
    }
}
