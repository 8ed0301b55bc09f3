//! Group expiry (`--push.group-ttl`, the `Pushgateway-Group-TTL` header):
//! a group whose last successful push, or its creation if it never had
//! one, is older than its TTL is deleted as a DELETE would delete it.
//!
//! Upstream declines this (a metric that vanishes looks like a job that
//! stopped, the staleness argument); users run cleaner sidecars instead.
//! Here it is opt-in: without the flag or the header nothing expires.
//!
//! Deadlines live in a set ordered by time, so finding what is due costs
//! the due groups, never a scan of the store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Group, GroupKey, Nanos, Store};

/// The deadlines of every group that has one, soonest first.
#[derive(Default)]
pub(super) struct Deadlines {
    /// `--push.group-ttl`; zero is never.
    pub default_ttl: Duration,
    pub due: BTreeSet<(Nanos, GroupKey)>,
}

impl Deadlines {
    /// When `group` is due, from its own TTL or the default.
    fn deadline_of(&self, group: &Group) -> Option<Nanos> {
        let ttl = group.ttl.unwrap_or(self.default_ttl);
        if ttl.is_zero() {
            return None;
        }
        let from = group.push_time.unwrap_or(group.created);
        let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        Some(from.saturating_add(ttl))
    }
}

impl Store {
    /// Sets `--push.group-ttl`; call before the first group arrives.
    pub(crate) fn set_default_ttl(&mut self, ttl: Duration) {
        self.deadlines.default_ttl = ttl;
    }

    /// Recomputes `key`'s deadline after its times or TTL changed.
    pub(super) fn reschedule(&mut self, key: &GroupKey) {
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        let next = self.deadlines.deadline_of(group);
        if next == group.deadline {
            return;
        }
        if let Some(old) = group.deadline {
            self.deadlines.due.remove(&(old, key.clone()));
        }
        if let Some(new) = next {
            self.deadlines.due.insert((new, key.clone()));
        }
        std::sync::Arc::make_mut(group).deadline = next;
    }

    /// Forgets a deleted group's deadline.
    pub(super) fn unschedule(&mut self, key: &GroupKey, deadline: Option<Nanos>) {
        if let Some(d) = deadline {
            self.deadlines.due.remove(&(d, key.clone()));
        }
    }

    /// The soonest deadline, for the loop's timer.
    pub(crate) fn next_deadline(&self) -> Option<Nanos> {
        self.deadlines.due.first().map(|(d, _)| *d)
    }

    /// Deletes groups due at `now`, soonest first, until none is due or
    /// `budget` has passed (the loop then answers waiting requests before
    /// it goes on). Returns the deleted keys.
    pub(crate) fn expire_due(&mut self, now: Nanos, budget: Duration) -> Vec<GroupKey> {
        self.expire_due_into(now, budget, &mut Vec::new())
    }

    /// [`Store::expire_due`], handing the deleted groups to `freed`, for
    /// the caller to free off the loop.
    pub(crate) fn expire_due_into(
        &mut self,
        now: Nanos,
        budget: Duration,
        freed: &mut Vec<Arc<Group>>,
    ) -> Vec<GroupKey> {
        let started = Instant::now();
        let mut expired = Vec::new();
        while let Some((d, key)) = self.deadlines.due.first().cloned() {
            if d > now || (!expired.is_empty() && started.elapsed() >= budget) {
                break;
            }
            freed.extend(self.take(&key));
            expired.push(key);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;
    use crate::store::prepare_push;
    use crate::telemetry::GatewayFamilies;

    const MIN: Nanos = 60_000_000_000;

    fn push(store: &mut Store, job: &str, ttl: Option<Duration>, now: Nanos) {
        let key: GroupKey = vec![Label::new("job", job)].into();
        let fams = crate::wire::text_format::parse(b"m 1\n").unwrap();
        let mut p = prepare_push(key, fams, true).unwrap();
        p.ttl = ttl;
        store.check(&p, &GatewayFamilies).unwrap();
        store.apply(p, now);
    }

    fn jobs(keys: &[GroupKey]) -> Vec<String> {
        keys.iter().map(|k| k[0].value.to_string()).collect()
    }

    #[test]
    fn groups_expire_by_their_own_ttl_or_the_default() {
        let mut store = Store::new();
        store.set_default_ttl(Duration::from_secs(600));
        push(&mut store, "default", None, 0);
        push(&mut store, "short", Some(Duration::from_secs(60)), 0);
        push(&mut store, "never", Some(Duration::ZERO), 0);
        assert_eq!(store.next_deadline(), Some(MIN));
        assert!(store.expire_due(MIN - 1, Duration::MAX).is_empty());
        assert_eq!(jobs(&store.expire_due(MIN, Duration::MAX)), ["short"]);
        // A push refreshes; a push without the header keeps the TTL.
        push(&mut store, "default", None, 5 * MIN);
        assert!(store.expire_due(10 * MIN, Duration::MAX).is_empty());
        assert_eq!(
            jobs(&store.expire_due(15 * MIN, Duration::MAX)),
            ["default"]
        );
        assert_eq!(store.next_deadline(), None, "never is never");
        assert_eq!(store.group_count(), 1);
    }

    #[test]
    fn failed_pushes_do_not_refresh() {
        let mut store = Store::new();
        store.set_default_ttl(Duration::from_secs(60));
        let key: GroupKey = vec![Label::new("job", "f")].into();
        store.record_failure(&key, 0);
        assert_eq!(store.next_deadline(), Some(MIN), "from its creation");
        store.record_failure(&key, MIN / 2);
        assert_eq!(store.next_deadline(), Some(MIN));
        assert_eq!(store.expire_due(MIN, Duration::MAX).len(), 1);
        assert_eq!(store.group_count(), 0);
    }

    #[test]
    fn deletes_forget_deadlines() {
        let mut store = Store::new();
        store.set_default_ttl(Duration::from_secs(60));
        push(&mut store, "a", None, 0);
        store.delete(&vec![Label::new("job", "a")].into());
        assert_eq!(store.next_deadline(), None);
        push(&mut store, "b", None, 0);
        store.wipe();
        assert_eq!(store.next_deadline(), None);
    }
}
