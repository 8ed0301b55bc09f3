//! Answers that read the store: scrapes, the web page, one group's text
//! and the JSON API. The loop only shares the store's state (pointer
//! copies); each body is built off the loop, charged to the memory budget
//! before it is built, and shared by concurrent requests for the same
//! bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Gateway, api, render, ui};
use crate::contract::{Deferred, Reply, ScrapeFormat, SharedBody};
use crate::store::{GroupKey, Store};
use crate::telemetry::GatewayFamilies;
use crate::time::now_nanos;
use crate::wire::escape::Escaping;

/// What makes two scrapes' bodies the same bytes: the store's state and
/// the answer's shape.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct ScrapeKey {
    generation: u64,
    format: ScrapeFormat,
    escaping: Escaping,
    gzip: bool,
}

/// What makes two answers' bodies the same bytes.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum BodyKey {
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

impl Gateway {
    /// `GET /api/v1/status` or (`metrics`) `/api/v1/metrics`.
    pub(super) fn api(&mut self, metrics: bool) -> Reply {
        let mut reply = if metrics {
            self.api_metrics()
        } else {
            let start = self.telemetry.start_nanos();
            let build = crate::telemetry::build_info();
            Reply::text(200, api::status(&self.flags, start, &build))
        };
        reply.content_type = Some("application/json");
        reply
    }

    /// The web page, rendered off the loop from a
    /// [`StoreView`](crate::store::StoreView):
    /// thousands of groups make a page of megabytes.
    pub(super) fn status_page(&self, scope: Option<crate::access::scopes::Scope>) -> Reply {
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

    pub(super) fn scrape(&mut self, format: ScrapeFormat, escaping: Escaping, gzip: bool) -> Reply {
        if !self.check_consistency {
            let generation = self.store.generation();
            if self.inconsistencies.as_ref().map(|(g, _)| *g) != Some(generation) {
                let found = self.store.inconsistencies(&GatewayFamilies);
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
    pub(super) fn group_text(&mut self, key: GroupKey) -> Reply {
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
            self.store.family_metas(&GatewayFamilies),
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
                crate::wire::gzip::gzip(view.render(format))
            })
        } else {
            SharedBody::new(hint, move || view.render(format))
        };
        self.shared_bodies
            .push((BodyKey::Scrape(key), Arc::downgrade(&body)));
        body
    }
}
