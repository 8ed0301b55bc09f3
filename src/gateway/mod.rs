//! The single request loop: the only code that touches the store.
//!
//! Each event is a request whose slow parts (reading, parsing, writing) are
//! done elsewhere, so the loop's own work per event is small: check and
//! apply a push, delete a group, or concatenate pre-rendered lines for a
//! scrape. No locks around the store, no data races by construction.

pub(crate) mod admin;
pub(crate) mod api;
mod native;
mod render;
pub(crate) mod ui;

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};

use crate::contract::{Deferred, Event, Reply, Responder, ScrapeFormat, SharedBody};
use crate::model::NameScheme;
use crate::persist::Persistence;
use crate::pool::Pool;
use crate::store::{self, GroupKey, Store};
use crate::telemetry::{Own, Telemetry};
use crate::time::now_nanos;
use crate::wire::escape::Escaping;
use crate::wire::selector::DeleteQuery;

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
    limit_log: (Option<Instant>, u64),
    /// Size of the last scrape, to allocate the next one in one go; set
    /// by the renderer on its pool thread.
    last_scrape_len: Arc<AtomicUsize>,
    /// The pushed families as the last gzip scrape compressed them.
    gzip_cache: Arc<std::sync::Mutex<render::GzipCache>>,
    /// The loop's heartbeat, which health probes read.
    pub beat: Arc<crate::contract::LoopBeat>,
    /// Without the consistency check: what made the store inconsistent at
    /// a generation, found once per generation, not once per scrape.
    inconsistencies: Option<(u64, Vec<String>)>,
    /// Bodies being built or sent (scrapes, the JSON API's metrics, a
    /// group's text), for later requests that can share them.
    shared_bodies: Vec<(BodyKey, Weak<SharedBody>)>,
    /// Where selector deletes are matched (see [`admin`]); without it
    /// (unit tests) they are matched on the loop.
    pub offload: Option<Offload>,
    /// Selector deletes out for matching on the pool, which the shutdown
    /// waits for.
    matching: usize,
    /// Matched selector deletes, deleted in rounds, oldest first.
    deletes: VecDeque<SelectorDelete>,
}

/// A pool thread to match on, and the way back to the loop.
pub(crate) struct Offload {
    pub pool: Pool,
    pub events: Sender<Event>,
}

/// A selector delete between its match and its answer.
struct SelectorDelete {
    query: DeleteQuery,
    meta: crate::contract::Meta,
    rounds: admin::Rounds,
    reply_to: Responder,
}

/// What makes two scrapes' bodies the same bytes: the store's state and
/// the answer's shape.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ScrapeKey {
    generation: u64,
    format: ScrapeFormat,
    escaping: Escaping,
    gzip: bool,
}

/// What makes two answers' bodies the same bytes.
#[derive(Clone, PartialEq, Eq)]
enum BodyKey {
    Scrape(ScrapeKey),
    /// `GET /api/v1/metrics` at a store generation.
    ApiMetrics(u64),
    /// One group's text for the page, at a store generation.
    GroupText(u64, GroupKey),
}

/// The JSON API writes a series in about twice the bytes of its text
/// line, and a family of one series in about five; building it takes
/// about twice its size again (per-group strings joined).
const API_BYTES_PER_TEXT_BYTE: usize = 4;
const API_BYTES_PER_FAMILY: usize = 256;

/// How long a scrape body is offered to later scrapes of the same store
/// state. Our own metrics (request counts, process figures) in a shared
/// body are as old as the body, so it is not shared for longer: a
/// thousand scrapers arriving together get one body, a scraper every few
/// seconds still sees fresh figures.
const SHARE_SCRAPES_FOR: Duration = Duration::from_secs(1);

/// Refused pushes are logged at most this often (a job retrying in a
/// loop against a full store would flood the log otherwise).
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);

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

    /// Deletes the groups matched by the oldest selector deletes until
    /// `until` (`None`: all of them), answering each after its last round.
    fn delete_rounds(&mut self, until: Option<Instant>) {
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

    /// Frees deleted groups (or a wiped store) on a low-priority pool
    /// thread: freeing thousands of series (and the allocator handing
    /// pages back) is no work for the loop.
    fn free_off_loop<T: Send + 'static>(&self, freed: T) {
        match &self.offload {
            Some(o) => o.pool.execute_background(move || drop(freed)),
            None => drop(freed),
        }
    }

    /// A selector delete's match is in: a dry run is answered at once, a
    /// delete waits for its rounds.
    fn matched(
        &mut self,
        query: DeleteQuery,
        meta: crate::contract::Meta,
        keys: Option<Vec<store::GroupKey>>,
        reply_to: Responder,
    ) {
        let Some(keys) = keys else {
            log::warn!(source = meta.source; "selector delete refused: matching took longer than {}", crate::time::go_duration(admin::MATCH_DEADLINE));
            return reply_to.send(Reply::json(503, admin::too_slow_json()));
        };
        if query.dry_run || keys.is_empty() {
            self.answer_delete(query, meta, keys, reply_to);
        } else {
            self.deletes.push_back(SelectorDelete {
                query,
                meta,
                rounds: admin::Rounds::new(keys),
                reply_to,
            });
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
            admin::answer_json(&keys, dry_run).into_bytes()
        }));
        if dry_run || empty {
            reply_to.send(reply);
        } else {
            self.answer_change(reply_to, reply);
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
    fn answer_change(&mut self, reply_to: Responder, reply: Reply) {
        match &mut self.persistence {
            Some(p) if p.durable() && reply.status < 300 => p.defer(reply_to, reply),
            _ => reply_to.send(reply),
        }
    }

    /// Handles one event; false means stop.
    pub(crate) fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Push {
                push,
                meta,
                started,
                size,
                reply_to,
            } => {
                let method = meta.method;
                let reply = self.push(push, &meta.source, &method);
                self.telemetry
                    .observe_push(&method, started.elapsed(), size);
                self.answer_change(reply_to, reply);
            }
            Event::Delete {
                key,
                meta,
                reply_to,
            } => {
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
            Event::Scrape {
                format,
                escaping,
                gzip,
                reply_to,
            } => reply_to.send(self.scrape(format, escaping, gzip)),
            Event::Status { reply_to, scope } => reply_to.send(self.status_page(scope)),
            Event::GroupText { key, reply_to } => reply_to.send(self.group_text(key)),
            Event::Api { metrics, reply_to } => {
                let mut reply = if metrics {
                    self.api_metrics()
                } else {
                    let start = self.telemetry.start_nanos();
                    let build = crate::telemetry::build_info();
                    Reply::text(200, api::status(&self.flags, start, &build))
                };
                reply.content_type = Some("application/json");
                reply_to.send(reply);
            }
            Event::DeleteMatching {
                query,
                meta,
                reply_to,
            } => {
                // Pointer copies, as for a scrape; the matching is done
                // beside the loop (see `admin`).
                let keys: Vec<store::GroupKey> =
                    self.store.groups().map(|(k, _)| k.clone()).collect();
                match &self.offload {
                    Some(o) => {
                        let events = o.events.clone();
                        self.matching += 1;
                        o.pool.execute(move || {
                            let keys = admin::matching(keys, &query, admin::MATCH_DEADLINE);
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
                        let keys = admin::matching(keys, &query, admin::MATCH_DEADLINE);
                        self.matched(query, meta, keys, reply_to);
                    }
                }
            }
            Event::DeleteMatched {
                query,
                meta,
                keys,
                reply_to,
            } => {
                self.matching = self.matching.saturating_sub(1);
                self.matched(query, meta, keys, reply_to);
            }
            Event::Wipe { reply_to } => {
                let (groups, wiped) = self.store.wipe();
                self.free_off_loop(wiped);
                log::info!(groups = groups; "wiped the metric store via the admin API");
                self.answer_change(reply_to, Reply::empty(202));
            }
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

    fn push(
        &mut self,
        push: Result<store::PreparedPush, (store::GroupKey, store::PushError)>,
        source: &str,
        method: &str,
    ) -> Reply {
        let now = now_nanos();
        let checked = push.and_then(|p| {
            if self.check_consistency {
                self.store.check(&p, &Own).map_err(|e| (p.key.clone(), e))?;
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
                self.store.apply(p, now);
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

    /// The web page, rendered off the loop from a [`store::StoreView`]:
    /// thousands of groups make a page of megabytes.
    fn status_page(&self, scope: Option<crate::web::access::Scope>) -> Reply {
        let view = self.store.view();
        let flags = self.flags.clone();
        let (start_time, now) = (self.telemetry.start_nanos(), now_nanos());
        let admin_api = self.admin_api;
        let mut reply = Reply::empty(200);
        reply.deferred = Some(Deferred::new(move || {
            let info = ui::PageInfo {
                flags: &flags,
                build: &crate::telemetry::build_info(),
                start_time,
                now,
                admin_api: admin_api && scope.as_ref().is_none_or(|s| s.may_admin()),
                scope: scope.as_ref(),
            };
            ui::status_page(&view, &info).into_bytes()
        }));
        reply.content_type = Some("text/html; charset=utf-8");
        reply
    }

    fn scrape(&mut self, format: ScrapeFormat, escaping: Escaping, gzip: bool) -> Reply {
        if !self.check_consistency {
            let generation = self.store.generation();
            if self.inconsistencies.as_ref().map(|(g, _)| *g) != Some(generation) {
                let found = self.store.inconsistencies(&Own);
                self.inconsistencies = Some((generation, found));
            }
            let problems = self
                .inconsistencies
                .as_ref()
                .map_or(&[][..], |(_, p)| &p[..]);
            if !problems.is_empty() {
                let mut msg = format!(
                    "An error has occurred while serving metrics:\n\n{} error(s) occurred:",
                    problems.len()
                );
                for p in problems {
                    msg.push_str("\n* ");
                    msg.push_str(p);
                }
                log::error!(errors = problems.len(); "store is inconsistent (pushed with --push.disable-consistency-check); failing scrape like the reference");
                return Reply::error(500, msg);
            }
        }
        self.telemetry
            .set_store_usage(crate::telemetry::StoreUsage {
                groups: self.store.group_count(),
                series: self.store.sample_count(),
                max_groups: self.limits.max_groups,
                max_series: self.limits.max_series,
                unwritten: self
                    .persistence
                    .as_ref()
                    .is_some_and(|p| p.unwritten(&self.store)),
            });
        let key = ScrapeKey {
            generation: self.store.generation(),
            format,
            escaping,
            gzip,
        };
        let mut reply = Reply::empty(200);
        reply.content_type = Some(format.content_type(escaping));
        if gzip {
            reply.headers.push(("Content-Encoding", "gzip".into()));
        }
        let body = match self.shared_body(&BodyKey::Scrape(key)) {
            Some(body) => body,
            None => self.new_scrape(key),
        };
        reply.deferred = Some(Deferred::Shared(body));
        reply
    }

    /// A body of `key` that is still being built or sent, and young
    /// enough to share.
    fn shared_body(&mut self, key: &BodyKey) -> Option<Arc<SharedBody>> {
        self.shared_bodies
            .retain(|(_, body)| body.upgrade().is_some_and(|b| b.age() < SHARE_SCRAPES_FOR));
        self.shared_bodies
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, body)| body.upgrade())
    }

    /// `key`'s shared body, or a new one from `build`, charged `hint`
    /// bytes before it is built (503 when the budget cannot cover them).
    fn share(
        &mut self,
        key: BodyKey,
        hint: impl FnOnce(&Store) -> usize,
        build: impl FnOnce() -> Vec<u8> + Send + 'static,
    ) -> Arc<SharedBody> {
        if let Some(body) = self.shared_body(&key) {
            return body;
        }
        let body = SharedBody::new(hint(&self.store), build);
        self.shared_bodies.push((key, Arc::downgrade(&body)));
        body
    }

    /// Every series as JSON, rendered off the loop from shared group
    /// snapshots like a scrape, shared by concurrent requests and charged
    /// before it is built.
    fn api_metrics(&mut self) -> Reply {
        let key = BodyKey::ApiMetrics(self.store.generation());
        let groups = self.store.snapshot();
        let hint = |store: &Store| {
            let families: usize = store.groups().map(|(_, g)| g.families.len() + 2).sum();
            store.exposed_bytes() * API_BYTES_PER_TEXT_BYTE + families * API_BYTES_PER_FAMILY
        };
        let body = self.share(key, hint, move || api::metrics(&groups).into_bytes());
        let mut r = Reply::empty(200);
        r.deferred = Some(Deferred::Shared(body));
        r
    }

    /// One group's text for the page, rendered off the loop from the
    /// group's shared snapshot, charged before it is built.
    fn group_text(&mut self, key: GroupKey) -> Reply {
        let Some(group) = self.store.group_shared(&key) else {
            return Reply::error(404, "no such group (deleted?)");
        };
        let text_len: usize = group.families.values().map(|f| f.exposed).sum();
        let hint = |_: &Store| 2 * text_len + API_BYTES_PER_FAMILY * group.families.len();
        let shared = Arc::clone(&group);
        let build = move || ui::group_text(&shared).into_bytes();
        let body = self.share(
            BodyKey::GroupText(self.store.generation(), key),
            hint,
            build,
        );
        let mut r = Reply::empty(200);
        r.content_type = Some("text/plain; charset=utf-8");
        r.deferred = Some(Deferred::Shared(body));
        r
    }

    /// Shares the store's state with a body to be built off the loop, and
    /// offers that body to the scrapes that follow.
    fn new_scrape(&mut self, key: ScrapeKey) -> Arc<SharedBody> {
        let started = Instant::now();
        let view = render::ScrapeView::new(
            self.store.family_metas(&Own),
            self.store.snapshot(),
            self.telemetry.clone(),
            (self.names, key.escaping),
            self.last_scrape_len.clone(),
        );
        let pause = started.elapsed();
        self.telemetry.observe_scrape_pause(pause);
        log::debug!(loop_pause = crate::time::go_duration(pause), groups = view.groups.len(); "scrape handed to the pool");
        // Charged before the body is built: at least the pushed series'
        // text as the store counts it (a store that grew since the last
        // scrape, by a group key spliced into many series, say, is
        // refused before it is rendered, not after).
        let last = self
            .last_scrape_len
            .load(std::sync::atomic::Ordering::Relaxed);
        let hint = last.max(self.store.exposed_bytes());
        let format = key.format;
        let body = if key.gzip && format == ScrapeFormat::Text {
            // Compressed as it is rendered, family by family, reusing the
            // families unchanged since the last gzip scrape.
            let cache = Arc::clone(&self.gzip_cache);
            SharedBody::new(hint / 4, move || view.render_gzip(&cache))
        } else if key.gzip {
            SharedBody::new(hint / 4, move || {
                crate::wire::gzip::gzip(&view.render(format))
            })
        } else {
            SharedBody::new(hint, move || view.render(format))
        };
        self.shared_bodies
            .push((BodyKey::Scrape(key), Arc::downgrade(&body)));
        body
    }
}

/// The loop fed events directly, its replies captured: no process, no
/// sockets.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Meta, Respond};
    use crate::model::Label;
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
