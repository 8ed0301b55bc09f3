//! The request loop itself: the [`Gateway`] that owns the store, waiting
//! for events, persistence, expiry, shutdown, and [`Gateway::handle`].

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};

use super::admin::SelectorDelete;
use super::reads::BodyKey;
use super::render;
use crate::contract::{Event, Reply, Responder, SharedBody};
use crate::model::NameScheme;
use crate::persist::Persistence;
use crate::pool::Pool;
use crate::store::{self, Store};
use crate::telemetry::Telemetry;
use crate::time::now_nanos;

pub(crate) struct Gateway {
    pub store: Store,
    pub telemetry: Telemetry,
    pub check_consistency: bool,
    pub persistence: Option<Persistence>,
    /// Shown on the status page.
    pub flags: Vec<(String, String)>,
    /// `--push.enable-utf8-names`: with `Legacy`, every stored name is
    /// classic and scrapes skip looking for names to escape.
    pub names: NameScheme,
    /// `--push.max-groups`, `--push.max-series`.
    pub limits: store::Limits,
    /// `--web.enable-admin-api`: the page offers deleting a job's groups.
    pub admin_api: bool,
    /// When a refused push was last logged, and how many since.
    pub(super) limit_log: (Option<Instant>, u64),
    /// Size of the last scrape, to allocate the next one in one go; set
    /// by the renderer on its pool thread.
    pub(super) last_scrape_len: Arc<AtomicUsize>,
    /// The pushed families as the last gzip scrape compressed them.
    pub(super) gzip_cache: Arc<std::sync::Mutex<render::GzipCache>>,
    /// The loop's heartbeat, which health probes read.
    pub beat: Arc<crate::contract::LoopBeat>,
    /// Without the consistency check: what made the store inconsistent at
    /// a generation, found once per generation, not once per scrape.
    pub(super) inconsistencies: Option<(u64, Vec<String>)>,
    /// Bodies being built or sent (scrapes, the JSON API's metrics, a
    /// group's text), for later requests that can share them.
    pub(super) shared_bodies: Vec<(BodyKey, Weak<SharedBody>)>,
    /// Where selector deletes are matched (see [`super::admin`]); without it
    /// (unit tests) they are matched on the loop.
    pub offload: Option<Offload>,
    /// Selector deletes out for matching on the pool, which the shutdown
    /// waits for.
    pub(super) matching: usize,
    /// Matched selector deletes, deleted in rounds, oldest first.
    pub(super) deletes: VecDeque<SelectorDelete>,
}

/// A pool thread to match on, and the way back to the loop.
pub(crate) struct Offload {
    pub pool: Pool,
    pub events: Sender<Event>,
}

/// The longest one round of a mass change (expiring groups, deleting the
/// groups a selector matched) keeps waiting requests from the loop: a
/// push waits for at most one round of each, a few milliseconds, however
/// many groups go.
const ROUND_BUDGET: Duration = Duration::from_millis(2);

impl Gateway {
    pub(crate) fn new(
        store: Store,
        telemetry: Telemetry,
        check_consistency: bool,
        flags: Vec<(String, String)>,
    ) -> Gateway {
        Gateway {
            store,
            telemetry,
            check_consistency,
            persistence: None,
            flags,
            names: NameScheme::Utf8,
            limits: store::Limits::default(),
            admin_api: false,
            limit_log: (None, 0),
            last_scrape_len: Arc::new(AtomicUsize::new(4096)),
            gzip_cache: Arc::default(),
            shared_bodies: Vec::new(),
            inconsistencies: None,
            beat: Arc::default(),
            offload: None,
            matching: 0,
            deletes: VecDeque::new(),
        }
    }

    /// Serves events until a shutdown is requested (signal or `/-/quit`).
    /// The receive timeout doubles as the persistence timer.
    pub(crate) fn run(&mut self, events: &Receiver<Event>) {
        loop {
            let write = self
                .persistence
                .as_ref()
                .and_then(|p| p.deadline(&self.store));
            let mut deadline = match (write, self.expiry_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if !self.deletes.is_empty() {
                // The next round is due at once, after what is waiting.
                deadline = Some(Instant::now());
            }
            self.beat.idle();
            let ev = match deadline {
                Some(d) => match events.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(ev) => Some(ev),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match events.recv() {
                    Ok(ev) => Some(ev),
                    Err(_) => return,
                },
            };
            self.beat.busy();
            if let Some(ev) = ev
                && !self.handle(ev)
            {
                return;
            }
            // Apply everything already queued before a write starts, so a
            // burst of durable pushes shares one write.
            while let Ok(ev) = events.try_recv() {
                if !self.handle(ev) {
                    return;
                }
            }
            self.expire();
            self.delete_rounds(Some(Instant::now() + ROUND_BUDGET));
            if let Some(p) = &mut self.persistence {
                p.tick(&self.store);
            }
        }
    }

    /// When the next group expires, on the monotonic clock.
    fn expiry_deadline(&self) -> Option<Instant> {
        let due = self.store.next_deadline()?;
        let wait = u64::try_from(due.saturating_sub(now_nanos())).unwrap_or(0);
        Some(Instant::now() + Duration::from_nanos(wait))
    }

    /// Deletes groups whose TTL ran out, for at most `ROUND_BUDGET` at a
    /// time: the loop answers waiting requests between two rounds, so a
    /// mass expiry never holds pushes up for long.
    fn expire(&mut self) {
        let mut freed = Vec::new();
        let expired = self
            .store
            .expire_due_into(now_nanos(), ROUND_BUDGET, &mut freed);
        if expired.is_empty() {
            return;
        }
        self.free_off_loop(freed);
        for key in &expired {
            log::info!(group = store::show_labels(key); "group expired (TTL ran out); deleted");
        }
        self.telemetry.count_expired(expired.len());
    }

    /// Frees deleted groups (or a wiped store) on a low-priority pool
    /// thread: freeing thousands of series (and the allocator handing
    /// pages back) is no work for the loop.
    pub(super) fn free_off_loop<T: Send + 'static>(&self, freed: T) {
        match &self.offload {
            Some(o) => o.pool.execute_background(move || drop(freed)),
            None => drop(freed),
        }
    }

    /// After the listeners are closed: answers requests still in flight,
    /// until none has arrived for `quiet` (and no selector delete is still
    /// matching or deleting) or `max` has passed.
    pub(crate) fn drain(&mut self, events: &Receiver<Event>, quiet: Duration, max: Duration) {
        let end = Instant::now() + max;
        let mut handled = 0;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let wait = if !self.deletes.is_empty() {
                Duration::ZERO
            } else if self.matching > 0 {
                left
            } else {
                quiet.min(left)
            };
            match events.recv_timeout(wait) {
                Ok(Event::Shutdown { .. }) => {}
                Ok(ev) => {
                    self.handle(ev);
                    handled += 1;
                }
                Err(RecvTimeoutError::Timeout) if !self.deletes.is_empty() => {}
                Err(_) => break,
            }
            self.delete_rounds(Some(Instant::now() + ROUND_BUDGET));
        }
        log::info!(requests = handled; "in-flight requests answered");
    }

    /// Waits for a write under way, finishes selector deletes still under
    /// way at once (the requests that wait for them are owed an answer,
    /// and no push is left to hold up), then writes the final snapshot,
    /// which answers them in durable mode like any change.
    pub(crate) fn finish(&mut self, events: &Receiver<Event>) -> Result<(), String> {
        while self.persistence.as_ref().is_some_and(|p| p.busy()) {
            match events.recv_timeout(Duration::from_secs(60)) {
                Ok(Event::Shutdown { .. }) => {}
                Ok(ev) => {
                    self.handle(ev);
                }
                Err(_) => break,
            }
        }
        self.delete_rounds(None);
        match self.persistence.as_mut() {
            Some(p) => p.shutdown(&self.store),
            None => Ok(()),
        }
    }

    /// Answers a request that changed the store: at once, or in durable
    /// mode once the change is on disk.
    pub(super) fn answer_change(&mut self, reply_to: Responder, reply: Reply) {
        match &mut self.persistence {
            Some(p) if p.durable() && reply.status < 300 => p.defer(reply_to, reply),
            _ => reply_to.send(reply),
        }
    }

    /// Handles one event; false means stop. Each kind of request is
    /// applied in the file of its endpoints: `push` (a group's changes),
    /// `reads` (scrapes, the page, the API), `admin` (wipe, selector
    /// deletes).
    pub(crate) fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Push {
                push,
                meta,
                started,
                size,
                reply_to,
            } => self.on_push(push, meta, started, size, reply_to),
            Event::Delete {
                key,
                meta,
                reply_to,
            } => self.on_delete(key, meta, reply_to),
            Event::Scrape {
                format,
                escaping,
                gzip,
                reply_to,
            } => reply_to.send(self.scrape(format, escaping, gzip)),
            Event::Status { reply_to, scope } => reply_to.send(self.status_page(scope)),
            Event::GroupText { key, reply_to } => reply_to.send(self.group_text(key)),
            Event::Api { metrics, reply_to } => reply_to.send(self.api(metrics)),
            Event::DeleteMatching {
                query,
                meta,
                reply_to,
            } => self.delete_matching(query, meta, reply_to),
            Event::DeleteMatched {
                query,
                meta,
                keys,
                reply_to,
            } => {
                self.matching = self.matching.saturating_sub(1);
                self.matched(query, meta, keys, reply_to);
            }
            Event::Wipe { reply_to } => self.wipe(reply_to),
            Event::Quit { meta, reply_to } => {
                log::info!(source = meta.source; "received termination request via web service, exiting gracefully");
                // Written before exit: the front drains owed answers.
                reply_to.send(Reply::text(200, "Requesting termination... Goodbye!"));
                return false;
            }
            Event::Shutdown { reason } => {
                log::info!(signal = reason; "received signal, exiting gracefully");
                return false;
            }
            Event::Persisted(outcome) => {
                self.telemetry.count_write(&outcome.result);
                if let Some(p) = &mut self.persistence {
                    p.finished(outcome);
                }
            }
        }
        true
    }
}

/// The loop fed events directly, its replies captured: no process, no
/// sockets.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Deferred, Meta, Respond, ScrapeFormat};
    use crate::model::Label;
    use crate::wire::escape::Escaping;
    use crate::wire::selector::DeleteQuery;
    use std::sync::mpsc;

    struct Capture(mpsc::Sender<Reply>);

    impl Respond for Capture {
        fn send(self: Box<Self>, reply: Reply) {
            let _ = self.0.send(reply);
        }
    }

    struct Harness {
        gw: Gateway,
        tx: mpsc::Sender<Reply>,
        rx: mpsc::Receiver<Reply>,
    }

    impl Harness {
        fn new() -> Harness {
            let (tx, rx) = mpsc::channel();
            let gw = Gateway::new(Store::new(), Telemetry::new(), true, Vec::new());
            Harness { gw, tx, rx }
        }

        fn reply_to(&self) -> Responder {
            Responder::new(Capture(self.tx.clone()))
        }

        /// Handles `ev`; returns the reply and whether the loop goes on.
        fn send(&mut self, ev: Event) -> (Reply, bool) {
            let go_on = self.gw.handle(ev);
            let reply = self.rx.try_recv().expect("the loop answered at once");
            // What the HTTP front does on a pool thread.
            let reply = reply.build_body();
            (reply, go_on)
        }

        fn push(&mut self, job: &str, body: &str) -> Reply {
            let key: store::GroupKey = vec![Label::new("job", job)].into();
            let families = crate::wire::text_format::parse(body.as_bytes()).expect("body parses");
            let push = store::prepare_push(key.clone(), families, true).map_err(|e| (key, e));
            let ev = Event::Push {
                push,
                meta: meta("PUT"),
                started: Instant::now(),
                size: body.len(),
                reply_to: self.reply_to(),
            };
            self.send(ev).0
        }

        fn scrape(&mut self) -> String {
            let ev = Event::Scrape {
                format: ScrapeFormat::Text,
                escaping: Escaping::Underscores,
                gzip: false,
                reply_to: self.reply_to(),
            };
            let (reply, _) = self.send(ev);
            assert_eq!(reply.status, 200);
            String::from_utf8(reply.body.to_vec()).expect("text scrape")
        }
    }

    fn meta(method: &str) -> Meta {
        Meta {
            method: method.into(),
            source: "in-process".into(),
        }
    }

    /// The body a scrape's reply will be built from, unbuilt.
    fn shared_body(h: &mut Harness, gzip: bool) -> Arc<SharedBody> {
        let ev = Event::Scrape {
            format: ScrapeFormat::Text,
            escaping: Escaping::Underscores,
            gzip,
            reply_to: h.reply_to(),
        };
        h.gw.handle(ev);
        match h.rx.try_recv().expect("answered at once").deferred {
            Some(Deferred::Shared(body)) => body,
            _ => panic!("a scrape's body is built off the loop, shared"),
        }
    }

    #[test]
    fn concurrent_scrapes_of_one_state_share_one_body() {
        let mut h = Harness::new();
        h.push("a", "m 1\n");
        let first = shared_body(&mut h, false);
        let second = shared_body(&mut h, false);
        assert!(
            Arc::ptr_eq(&first, &second),
            "same state, same format: one body"
        );
        let zipped = shared_body(&mut h, true);
        assert!(!Arc::ptr_eq(&first, &zipped), "gzip is another body");
        h.push("a", "m 2\n");
        let after = shared_body(&mut h, false);
        assert!(!Arc::ptr_eq(&first, &after), "a push changes the state");
        drop((first, second, after));
        let fresh = shared_body(&mut h, false);
        let again = shared_body(&mut h, false);
        assert!(Arc::ptr_eq(&fresh, &again));
        drop((fresh, again));
        let alone = shared_body(&mut h, false);
        assert_eq!(
            Arc::strong_count(&alone),
            1,
            "a body nobody holds any more is not kept for later scrapes"
        );
    }

    #[test]
    fn push_scrape_reject_delete_quit() {
        let mut h = Harness::new();
        assert_eq!(h.push("a", "# TYPE m gauge\nm 1\n").status, 200);
        assert!(h.scrape().contains("m{instance=\"\",job=\"a\"} 1\n"));

        let refused = h.push("b", "# TYPE m counter\nm 2\n");
        assert_eq!(refused.status, 400, "type mismatch across groups");
        let text = h.scrape();
        assert!(
            !text.contains("job=\"b\"} 2"),
            "nothing of a refused push is stored"
        );
        assert!(
            text.contains("push_failure_time_seconds{instance=\"\",job=\"b\"}"),
            "a refused push records its failure time"
        );

        let key: store::GroupKey = vec![Label::new("job", "a")].into();
        let ev = Event::Delete {
            key,
            meta: meta("DELETE"),
            reply_to: h.reply_to(),
        };
        assert_eq!(h.send(ev).0.status, 202);
        assert!(!h.scrape().contains("m{instance=\"\",job=\"a\"}"));

        let quit = Event::Quit {
            meta: meta("PUT"),
            reply_to: h.reply_to(),
        };
        let (reply, go_on) = h.send(quit);
        assert_eq!(reply.status, 200);
        assert!(!go_on, "quit stops the loop");
    }

    #[test]
    fn concurrent_selector_deletes_each_answer_what_they_deleted() {
        let mut h = Harness::new();
        for job in ["a", "b", "c"] {
            assert_eq!(h.push(job, "m 1\n").status, 200);
        }
        let delete = |h: &Harness, query: &str| Event::DeleteMatching {
            query: DeleteQuery::parse(query).expect("parses"),
            meta: meta("POST"),
            reply_to: h.reply_to(),
        };
        // {job=~"a|b"}, then {job=~"b|c"}, then a dry run of {job="a"}.
        let first = delete(&h, "match[]=%7Bjob%3D~%22a%7Cb%22%7D");
        let second = delete(&h, "match[]=%7Bjob%3D~%22b%7Cc%22%7D");
        assert!(h.gw.handle(first) && h.gw.handle(second));
        assert!(h.rx.try_recv().is_err(), "deletes wait for their rounds");
        let (dry, _) = h.send(delete(&h, "match[]=%7Bjob%3D%22a%22%7D&dry_run=true"));
        assert!(String::from_utf8_lossy(&dry.body).contains(r#""dry_run":true,"count":1,"#));
        // A spent budget: one group per round.
        let mut answers = Vec::new();
        for _ in 0..10 {
            h.gw.delete_rounds(Some(Instant::now()));
            answers.extend(
                h.rx.try_iter()
                    .map(|r| String::from_utf8_lossy(&r.build_body().body).into_owned()),
            );
        }
        assert_eq!(
            answers,
            [
                r#"{"status":"success","data":{"dry_run":false,"count":2,"groups":[{"job":"a"},{"job":"b"}]}}"#,
                r#"{"status":"success","data":{"dry_run":false,"count":1,"groups":[{"job":"c"}]}}"#,
            ],
            "b, deleted by the first, is not listed by the second"
        );
        assert_eq!(h.gw.store.group_count(), 0);
    }

    #[test]
    fn api_and_page_answer_from_the_store() {
        let mut h = Harness::new();
        assert_eq!(h.push("api", "x 3\n").status, 200);
        let ev = Event::Api {
            metrics: true,
            reply_to: h.reply_to(),
        };
        let (reply, _) = h.send(ev);
        assert_eq!(reply.content_type, Some("application/json"));
        assert!(String::from_utf8_lossy(&reply.body).contains("\"job\":\"api\""));
        let (page, _) = h.send(Event::Status {
            reply_to: h.reply_to(),
            scope: None,
        });
        assert!(String::from_utf8_lossy(&page.body).contains("<html"));
    }
}
