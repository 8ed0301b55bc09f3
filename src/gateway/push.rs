//! Changes of one group, applied to the store: a push (the reference's
//! `handler/push.go`) and a delete (`delete.go`). The HTTP front parsed
//! and prepared them (`http::handler::push`, `http::handler::delete`);
//! here they are checked against the consistency index and the store's
//! limits, applied, and answered (in durable mode once on disk).

use std::time::{Duration, Instant};

use super::Gateway;
use crate::contract::{Meta, Reply, Responder};
use crate::store::{self, GroupKey};
use crate::telemetry::GatewayFamilies;
use crate::time::now_nanos;

/// Refused pushes are logged at most this often (a job retrying in a
/// loop against a full store would flood the log otherwise).
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);

impl Gateway {
    /// Applies a push (or records its failure) and answers it; `started`
    /// (when the front began reading it) and `size` (its body's bytes)
    /// are for the push metrics.
    pub(super) fn on_push(
        &mut self,
        push: Result<store::PreparedPush, (GroupKey, store::PushError)>,
        meta: Meta,
        started: Instant,
        size: usize,
        reply_to: Responder,
    ) {
        let method = meta.method;
        let reply = self.push(push, &meta.source, &method);
        self.telemetry
            .observe_push(&method, started.elapsed(), size);
        self.answer_change(reply_to, reply);
    }

    /// Deletes one group: 202 whether it existed or not.
    pub(super) fn on_delete(&mut self, key: GroupKey, meta: Meta, reply_to: Responder) {
        // Debug builds only: lets a test make the loop panic.
        #[cfg(debug_assertions)]
        if let Ok(job) = std::env::var("PUSHGATEWAY_TEST_PANIC_JOB")
            && store::show_labels(&key).contains(&format!("job=\"{job}\""))
        {
            panic!("test hook: a panic in the request loop");
        }
        // Debug builds only: lets a test stall the loop for longer
        // than a probe waits.
        #[cfg(debug_assertions)]
        if let Ok(job) = std::env::var("PUSHGATEWAY_TEST_STALL_JOB")
            && store::show_labels(&key).contains(&format!("job=\"{job}\""))
        {
            std::thread::sleep(crate::contract::STUCK_AFTER + Duration::from_secs(3));
        }
        let existed = self.store.delete(&key);
        log::debug!(source = meta.source, group = store::show_labels(&key), existed = existed; "deleted group");
        self.answer_change(reply_to, Reply::empty(202));
    }

    fn push(
        &mut self,
        push: Result<store::PreparedPush, (store::GroupKey, store::PushError)>,
        source: &str,
        method: &str,
    ) -> Reply {
        let now = now_nanos();
        let checked = push.and_then(|p| {
            if self.check_consistency {
                self.store
                    .check(&p, &GatewayFamilies)
                    .map_err(|e| (p.key.clone(), e))?;
            }
            Ok(p)
        });
        if let Ok(p) = &checked
            && let Err(e) = self.store.check_limits(p, self.limits)
        {
            return self.refuse_over_limit(&p.key, &e, source, now);
        }
        match checked {
            Ok(p) => {
                log::debug!(group = store::show_labels(&p.key), method = method; "push accepted");
                if let Some(replaced) = self.store.apply_keeping(p, now) {
                    self.free_off_loop(replaced);
                }
                Reply::empty(if self.check_consistency { 200 } else { 202 })
            }
            Err((key, e)) => {
                log::warn!(source = source, method = method, group = store::show_labels(&key), err:display = e; "rejected push");
                self.store.record_failure(&key, now);
                if self.check_consistency {
                    Reply::error(400, e.to_string())
                } else {
                    // The reference answers unchecked pushes before it
                    // looks at them: a timestamped push is 202, stored
                    // nowhere, and shows only as the failure time.
                    Reply::empty(202)
                }
            }
        }
    }

    /// A push that would take the store past a limit: 429, the failure
    /// recorded on its group only if the group exists (creating one would
    /// break the group limit), a warning at most every `LIMIT_LOG_EVERY`.
    fn refuse_over_limit(
        &mut self,
        key: &store::GroupKey,
        e: &store::LimitError,
        source: &str,
        now: crate::time::Nanos,
    ) -> Reply {
        if self.store.group(key).is_some() {
            self.store.record_failure(key, now);
        }
        self.telemetry.count_refused(e.label());
        let (last, suppressed) = &mut self.limit_log;
        if last.is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY) {
            log::warn!(source = source, group = store::show_labels(key), refused_since_last_warning = *suppressed, err:display = e; "push refused: store limit reached");
            *last = Some(Instant::now());
            *suppressed = 0;
        } else {
            *suppressed += 1;
        }
        Reply::error(429, e.to_string())
    }
}
