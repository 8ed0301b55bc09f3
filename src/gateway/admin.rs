//! Deletes by selector (`/api/v1/admin/delete?match[]=...`), which the
//! reference does not have: users otherwise run sidecars that list groups
//! and send one DELETE each.
//!
//! A delete runs in three steps, so that deleting ten thousand groups
//! never holds a push up for more than a round:
//!
//! 1. The loop copies the grouping keys (pointer copies, what a scrape
//!    costs it) and hands them to a pool thread.
//! 2. The pool thread matches them against the selectors ([`matching`])
//!    and reports back to the loop. Matching is the costly part (up to 64
//!    selectors with regexes against every group), so it runs beside the
//!    loop rather than in budgeted rounds on it: the loop spends no time
//!    per group on it at all, and the match sees the store as it was when
//!    the request arrived, not one that changed between two rounds.
//! 3. The loop deletes the matched groups in [`Rounds`], a couple of
//!    milliseconds' worth per turn, answering other requests in between,
//!    and answers the delete after its last round.
//!
//! Between the match and a group's round the store may change, and the
//! delete then does what `kubectl delete -l` does with what it listed: a
//! group already gone (a DELETE, expiry, a wipe, another selector delete)
//! is skipped and not listed in the answer; a group pushed to since is
//! still deleted, whatever the push brought (its grouping key, which is all
//! a selector sees, cannot have changed); a group created after the match
//! is left alone. Each group is deleted atomically, so every outcome is
//! one a DELETE per group, sent in some order among the pushes, would give.

use std::sync::Arc;
use std::time::Instant;

use crate::contract::{Deferred, Event, Reply, Responder};

use crate::model::Label;
use crate::store::{self, Group, GroupKey, Store};
use crate::wire::json::json_string;
use crate::wire::selector::DeleteQuery;

/// How long matching one delete's selectors may take. An expression near
/// the size limit costs its size times the length of every value it reads
/// (a grouping label value can be a megabyte), so a hostile delete could
/// otherwise hold a worker thread for hours.
pub(crate) const MATCH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The keys `query` matches, in the order given (key order, from the
/// store). Runs on a pool thread, over keys the loop copied. `None` when
/// it takes longer than `deadline`: nothing is deleted then.
pub(crate) fn matching(
    keys: Vec<GroupKey>,
    query: &DeleteQuery,
    deadline: std::time::Duration,
) -> Option<Vec<GroupKey>> {
    let started = Instant::now();
    let mut matched = Vec::new();
    for k in keys {
        if started.elapsed() >= deadline {
            return None;
        }
        if query.matches(&k) {
            matched.push(k);
        }
    }
    Some(matched)
}

/// The answer to a delete whose matching ran out of time.
pub(crate) fn too_slow_json() -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":\"timeout\",\"error\":");
    let why = format!(
        "matching the selectors took longer than {}: nothing was deleted; use simpler expressions",
        crate::time::go_duration(MATCH_DEADLINE)
    );
    json_string(&mut out, &why);
    out.push('}');
    out
}

/// A selector delete's matched groups, deleted a round at a time.
pub(crate) struct Rounds {
    /// The matched keys; the first `deleted` are those deleted so far, in
    /// match order, and the answer lists exactly them.
    keys: Vec<GroupKey>,
    /// The next key to delete.
    next: usize,
    deleted: usize,
}

impl Rounds {
    pub(crate) fn new(keys: Vec<GroupKey>) -> Rounds {
        Rounds {
            keys,
            next: 0,
            deleted: 0,
        }
    }

    /// Deletes the next matched groups until `until` has passed (`None`:
    /// all of them), skipping groups that no longer exist. At least one
    /// group per call, so every round makes progress. True when done.
    /// The deleted groups go to `freed`, for the caller to free off the
    /// loop.
    pub(crate) fn run(
        &mut self,
        store: &mut Store,
        until: Option<Instant>,
        freed: &mut Vec<Arc<Group>>,
    ) -> bool {
        let mut first = true;
        while self.next < self.keys.len() {
            if !first && until.is_some_and(|u| Instant::now() >= u) {
                return false;
            }
            first = false;
            let i = self.next;
            self.next += 1;
            if let Some(group) = store.take(&self.keys[i]) {
                freed.push(group);
                log::debug!(group = store::show_labels(&self.keys[i]); "deleted group by selector");
                // Deleted keys gather at the front, in order; the skipped
                // ones they displace are never listed.
                self.keys.swap(self.deleted, i);
                self.deleted += 1;
            }
        }
        true
    }

    /// The groups actually deleted, in match order.
    pub(crate) fn into_deleted(mut self) -> Vec<GroupKey> {
        self.keys.truncate(self.deleted);
        self.keys
    }
}

/// The answer: the matched grouping keys (deleted unless `dry_run`) and
/// their count, in the Prometheus API's envelope.
pub(crate) fn answer_json(keys: &[GroupKey], dry_run: bool) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"dry_run\":");
    out.push_str(if dry_run { "true" } else { "false" });
    out.push_str(&format!(",\"count\":{},\"groups\":[", keys.len()));
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        labels_json(&mut out, k);
    }
    out.push_str("]}}");
    out
}

fn labels_json(out: &mut String, labels: &[Label]) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, &l.name);
        out.push(':');
        json_string(out, &l.value);
    }
    out.push('}');
}

/// A refused request, in the Prometheus API's error envelope.
pub(crate) fn error_json(msg: &str) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":");
    json_string(&mut out, msg);
    out.push('}');
    out
}

/// A selector delete between its match and its answer.
pub(super) struct SelectorDelete {
    query: DeleteQuery,
    meta: crate::contract::Meta,
    rounds: Rounds,
    reply_to: Responder,
}

/// The loop's steps of a selector delete (see the module's doc).
impl super::Gateway {
    /// Step 1: copies the grouping keys (pointer copies, as for a scrape)
    /// and hands them to a pool thread to match.
    pub(super) fn delete_matching(
        &mut self,
        query: DeleteQuery,
        meta: crate::contract::Meta,
        reply_to: Responder,
    ) {
        let keys: Vec<GroupKey> = self.store.groups().map(|(k, _)| k.clone()).collect();
        match &self.offload {
            Some(o) => {
                let events = o.events.clone();
                self.matching += 1;
                o.pool.execute(move || {
                    let keys = matching(keys, &query, MATCH_DEADLINE);
                    // The loop only goes away at shutdown, which
                    // waits for matches out (`drain`).
                    let _ = events.send(Event::DeleteMatched {
                        query,
                        meta,
                        keys,
                        reply_to,
                    });
                });
            }
            None => {
                let keys = matching(keys, &query, MATCH_DEADLINE);
                self.matched(query, meta, keys, reply_to);
            }
        }
    }

    /// A selector delete's match is in: a dry run is answered at once, a
    /// delete waits for its rounds.
    pub(super) fn matched(
        &mut self,
        query: DeleteQuery,
        meta: crate::contract::Meta,
        keys: Option<Vec<store::GroupKey>>,
        reply_to: Responder,
    ) {
        let Some(keys) = keys else {
            log::warn!(source = meta.source; "selector delete refused: matching took longer than {}", crate::time::go_duration(MATCH_DEADLINE));
            return reply_to.send(Reply::json(503, too_slow_json()));
        };
        if query.dry_run || keys.is_empty() {
            self.answer_delete(query, meta, keys, reply_to);
        } else {
            self.deletes.push_back(SelectorDelete {
                query,
                meta,
                rounds: Rounds::new(keys),
                reply_to,
            });
        }
    }

    /// Deletes the groups matched by the oldest selector deletes until
    /// `until` (`None`: all of them), answering each after its last round.
    pub(super) fn delete_rounds(&mut self, until: Option<Instant>) {
        let mut freed = Vec::new();
        while let Some(d) = self.deletes.front_mut() {
            if !d.rounds.run(&mut self.store, until, &mut freed) {
                break;
            }
            if let Some(d) = self.deletes.pop_front() {
                let keys = d.rounds.into_deleted();
                self.answer_delete(d.query, d.meta, keys, d.reply_to);
            }
        }
        if !freed.is_empty() {
            self.free_off_loop(freed);
        }
    }

    /// Logs a finished selector delete (or dry run) and answers it with
    /// the groups it deleted (or listed).
    fn answer_delete(
        &mut self,
        query: DeleteQuery,
        meta: crate::contract::Meta,
        keys: Vec<store::GroupKey>,
        reply_to: Responder,
    ) {
        let selectors: Vec<String> = query.selectors.iter().map(|s| s.to_string()).collect();
        let (selectors, groups) = (selectors.join(" or "), keys.len());
        if query.dry_run {
            log::info!(source = meta.source, selectors = selectors, groups = groups; "dry run: groups matching the selectors listed, none deleted");
        } else {
            log::info!(source = meta.source, selectors = selectors, groups = groups; "deleted groups by selector");
        }
        // Thousands of groups make an answer of hundreds of kilobytes:
        // written off the loop, like a scrape.
        let (dry_run, empty) = (query.dry_run, keys.is_empty());
        let mut reply = Reply::json(200, String::new());
        reply.deferred = Some(Deferred::new(move || {
            answer_json(&keys, dry_run).into_bytes()
        }));
        if dry_run || empty {
            reply_to.send(reply);
        } else {
            self.answer_change(reply_to, reply);
        }
    }

    /// `PUT /api/v1/admin/wipe`: deletes every group, freed off the loop.
    pub(super) fn wipe(&mut self, reply_to: Responder) {
        let (groups, wiped) = self.store.wipe();
        self.free_off_loop(wiped);
        log::info!(groups = groups; "wiped the metric store via the admin API");
        self.answer_change(reply_to, Reply::empty(202));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_json_envelopes() {
        let keys: Vec<GroupKey> = vec![vec![Label::new("job", "a\"<")].into()];
        assert_eq!(
            answer_json(&keys, true),
            r#"{"status":"success","data":{"dry_run":true,"count":1,"groups":[{"job":"a\"\u003c"}]}}"#
        );
        assert_eq!(
            error_json("bad \"x\""),
            r#"{"status":"error","errorType":"bad_data","error":"bad \"x\""}"#
        );
    }

    fn key(job: &str) -> GroupKey {
        vec![Label::new("job", job)].into()
    }

    #[test]
    fn matching_stops_at_its_deadline() {
        let query = DeleteQuery::parse("match[]=%7Bjob%3D~%22a.*%22%7D").unwrap();
        let keys = vec![key("ab"), key("b"), key("ac")];
        let long = std::time::Duration::from_secs(60);
        assert_eq!(
            matching(keys.clone(), &query, long),
            Some(vec![key("ab"), key("ac")])
        );
        assert_eq!(matching(keys, &query, std::time::Duration::ZERO), None);
        assert!(too_slow_json().contains("\"errorType\":\"timeout\""));
    }

    fn push(store: &mut Store, job: &str) {
        let fams = crate::wire::text_format::parse(b"m 1\n").expect("body parses");
        let p = store::prepare_push(key(job), fams, true).expect("push prepares");
        store
            .check(&p, &crate::telemetry::GatewayFamilies)
            .expect("push checks");
        store.apply(p, 0);
    }

    fn jobs(keys: &[GroupKey]) -> Vec<String> {
        keys.iter().map(|k| k[0].value.to_string()).collect()
    }

    #[test]
    fn rounds_delete_what_still_exists_one_group_at_least_per_round() {
        let mut store = Store::new();
        for job in ["a", "b", "c", "d", "e"] {
            push(&mut store, job);
        }
        let query = DeleteQuery::parse("match[]=%7Bjob%3D~%22%5Ba-d%5D%22%7D").expect("parses");
        let keys = store.groups().map(|(k, _)| k.clone()).collect();
        let mut rounds = Rounds::new(matching(keys, &query, MATCH_DEADLINE).unwrap());
        // A budget already spent still deletes one group per round.
        let spent = Some(Instant::now());
        let mut freed = Vec::new();
        assert!(!rounds.run(&mut store, spent, &mut freed));
        assert_eq!(store.group_count(), 4, "a is gone");
        assert_eq!(freed.len(), 1, "a is handed over to be freed");
        // Between rounds: b is deleted by someone else, c is pushed to
        // again, f is created.
        assert!(store.delete(&key("b")));
        push(&mut store, "c");
        push(&mut store, "f");
        assert!(
            !rounds.run(&mut store, spent, &mut Vec::new()),
            "b skipped, c deleted"
        );
        assert!(rounds.run(&mut store, None, &mut freed), "d deleted, done");
        assert_eq!(freed.len(), 3, "c and d too");
        assert!(
            rounds.run(&mut store, spent, &mut Vec::new()),
            "done stays done"
        );
        assert_eq!(jobs(&rounds.into_deleted()), ["a", "c", "d"]);
        let left: Vec<String> = store
            .groups()
            .map(|(k, _)| k[0].value.to_string())
            .collect();
        assert_eq!(left, ["e", "f"], "created after the match: kept");
    }
}
