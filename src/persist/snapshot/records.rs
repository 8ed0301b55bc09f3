//! A group as read back from a snapshot, and prepared for the store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Label, MetricFamily};
use crate::store::{self, Nanos, PushError, Store};
use crate::telemetry::GatewayFamilies;

/// One group as read back from a snapshot.
#[derive(Debug, PartialEq)]
pub(crate) struct RestoredGroup {
    /// Line of the `group` record (in a Go gob file, the group's byte
    /// offset), for error messages.
    pub line: usize,
    pub key: Vec<Label>,
    pub push_time: Option<Nanos>,
    pub failure_time: Option<Nanos>,
    /// The group's own TTL (`Pushgateway-Group-TTL`), if a push set one.
    pub ttl: Option<std::time::Duration>,
    pub families: Vec<MetricFamily>,
    /// When each family was last pushed, by name.
    pub family_times: Vec<(Arc<str>, Nanos)>,
    /// Its labels share their pairs already (see `Strings`).
    pub labels_shared: bool,
}

impl RestoredGroup {
    /// Puts this group back into `store`, with its recorded times, under
    /// the same consistency rules as a push.
    pub(crate) fn restore_into(self, store: &mut Store) -> Result<(), PushError> {
        self.prepare().apply(store)
    }

    /// The part of a restore that needs no store (labels, rendering), so
    /// it can run on another thread than the one filling the store.
    pub(crate) fn prepare(self) -> PreparedGroup {
        // By name, not by a scan per family: a pushed group may hold
        // hundreds of thousands of families.
        let times: HashMap<Arc<str>, Nanos> = self.family_times.into_iter().collect();
        let push = store::prepare_push(self.key.into(), self.families, true).map(|mut push| {
            push.ttl = self.ttl;
            push.labels_shared = self.labels_shared;
            for f in &mut push.families {
                f.pushed_at = times.get(&*f.name).copied();
            }
            push
        });
        PreparedGroup {
            push,
            push_time: self.push_time,
            failure_time: self.failure_time,
        }
    }
}

/// A restored group, prepared; [`PreparedGroup::apply`] puts it back.
pub(crate) struct PreparedGroup {
    push: Result<store::PreparedPush, PushError>,
    push_time: Option<Nanos>,
    failure_time: Option<Nanos>,
}

impl PreparedGroup {
    pub(crate) fn apply(self, store: &mut Store) -> Result<(), PushError> {
        store.restore_group(
            self.push?,
            self.push_time,
            self.failure_time,
            &GatewayFamilies,
        )
    }
}
