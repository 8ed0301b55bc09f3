//! The request loop's contract: what it is asked ([`Event`]), what it
//! answers ([`Reply`]), and how an answer finds its way back
//! ([`Responder`]).
//!
//! Like the write request defined beside the store in the Go gateway
//! (`storage/interface.go`), this is the one place the loop, the HTTP
//! front, the snapshot writer and the signal thread meet, so data flows one
//! way: the front parses and digests a request into an event; the loop
//! applies it and hands a reply to the responder; nothing here knows about
//! sockets. The snapshot writer only reports [`WriteOutcome`]s; durable
//! answers wait in the loop as [`Ack`]s until their write is on disk.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::http::budget::{Budget, Charge, Class};

use crate::store::{GroupKey, PreparedPush, PushError};
use crate::wire::escape::Escaping;
use crate::wire::selector::DeleteQuery;

/// Work for the request loop, the only owner of the store.
pub(crate) enum Event {
    Push {
        push: Result<PreparedPush, (GroupKey, PushError)>,
        meta: Meta,
        started: Instant,
        /// Body bytes as received (before decompression).
        size: usize,
        reply_to: Responder,
    },
    Delete {
        key: GroupKey,
        meta: Meta,
        reply_to: Responder,
    },
    /// A scrape, its format and compression already negotiated.
    Scrape {
        format: ScrapeFormat,
        /// How names that are not classic are written.
        escaping: Escaping,
        gzip: bool,
        reply_to: Responder,
    },
    /// The web page.
    Status {
        reply_to: Responder,
        /// With write scopes: who asks, so that the page offers deletes
        /// only of the groups they may change.
        scope: Option<crate::access::scopes::Scope>,
    },
    /// `GET /api/v1/status` or `/api/v1/metrics`.
    Api {
        metrics: bool,
        reply_to: Responder,
    },
    Wipe {
        reply_to: Responder,
    },
    /// Deletes (or with `dry_run` lists) the groups the selectors match.
    DeleteMatching {
        query: DeleteQuery,
        meta: Meta,
        reply_to: Responder,
    },
    /// A selector delete's match, done on a pool thread: the groups to
    /// delete (list, with `dry_run`), in rounds (`gateway::admin`).
    DeleteMatched {
        query: DeleteQuery,
        meta: Meta,
        /// `None`: the matching ran out of time.
        keys: Option<Vec<GroupKey>>,
        reply_to: Responder,
    },
    /// One group's metrics as text, for the web page.
    GroupText {
        key: GroupKey,
        reply_to: Responder,
    },
    /// `PUT /-/quit` with `--web.enable-lifecycle`.
    Quit {
        meta: Meta,
        reply_to: Responder,
    },
    /// SIGTERM or SIGINT.
    Shutdown {
        reason: &'static str,
    },
    /// The snapshot writer finished a write.
    Persisted(WriteOutcome),
}

/// How long the request loop may work without a pause before health and
/// readiness probes say it is stuck (500), as the Go gateway's do (since
/// 1.9) when its store cannot be written. The longest legitimate round,
/// a push of a million series, takes a fraction of that.
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(5);

/// The request loop's heartbeat: since when it has been working without
/// waiting for events (0: it is waiting). Probes read it on the HTTP front,
/// so they are answered at once, never queued behind the work they check.
#[derive(Debug)]
pub(crate) struct LoopBeat {
    origin: Instant,
    /// Nanoseconds after `origin` plus one when the current round began;
    /// 0 while the loop waits.
    busy_since: std::sync::atomic::AtomicU64,
}

impl Default for LoopBeat {
    fn default() -> LoopBeat {
        LoopBeat {
            origin: Instant::now(),
            busy_since: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl LoopBeat {
    /// The loop starts a round of work.
    pub(crate) fn busy(&self) {
        let now = self.origin.elapsed().as_nanos() as u64 + 1;
        self.busy_since
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// The loop waits for events again.
    pub(crate) fn idle(&self) {
        self.busy_since
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long the current round has been going, if one is.
    pub(crate) fn busy_for(&self) -> Option<Duration> {
        match self.busy_since.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            since => {
                let now = self.origin.elapsed().as_nanos() as u64 + 1;
                Some(Duration::from_nanos(now.saturating_sub(since)))
            }
        }
    }

    /// Whether the loop has been working for longer than [`STUCK_AFTER`].
    pub(crate) fn stuck(&self) -> Option<Duration> {
        self.busy_for().filter(|d| *d > STUCK_AFTER)
    }
}

/// What the loop needs to know of a request besides its payload: for
/// request counting and logs.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub method: String,
    /// The client's address.
    pub source: String,
}

/// The formats a scrape can be answered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScrapeFormat {
    Text,
    Protobuf,
    /// Protobuf's text format, one message per family (`encoding=text`).
    ProtoText,
    /// Protobuf's compact text format, a line per family
    /// (`encoding=compact-text`).
    ProtoCompact,
}

/// `$head; escaping=<each scheme>`, in [`Escaping`]'s order.
macro_rules! escapings {
    ($head:literal) => {
        [
            concat!($head, "; escaping=allow-utf-8"),
            concat!($head, "; escaping=underscores"),
            concat!($head, "; escaping=dots"),
            concat!($head, "; escaping=values"),
        ]
    };
}

impl ScrapeFormat {
    /// The answer's Content-Type: 1.11's, with the escaping scheme.
    pub(crate) fn content_type(self, escaping: Escaping) -> &'static str {
        const TEXT: [&str; 4] = escapings!("text/plain; version=0.0.4; charset=utf-8");
        const PROTO: [&str; 4] = escapings!(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        );
        const PROTO_TEXT: [&str; 4] = escapings!(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text"
        );
        const PROTO_COMPACT: [&str; 4] = escapings!(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=compact-text"
        );
        let i = match escaping {
            Escaping::AllowUtf8 => 0,
            Escaping::Underscores => 1,
            Escaping::Dots => 2,
            Escaping::Values => 3,
        };
        match self {
            ScrapeFormat::Text => TEXT[i],
            ScrapeFormat::Protobuf => PROTO[i],
            ScrapeFormat::ProtoText => PROTO_TEXT[i],
            ScrapeFormat::ProtoCompact => PROTO_COMPACT[i],
        }
    }
}

/// A response, built anywhere and written by the HTTP front.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Payload,
    /// Compress the body with gzip before sending (done off the loop).
    pub gzip: bool,
    /// The body, when it is built off the loop (a scrape): run on a pool
    /// thread before compression. Replaces `body`.
    pub deferred: Option<Deferred>,
}

/// A body built off the request loop, from data the loop shared.
pub(crate) enum Deferred {
    /// Built for this answer alone.
    Own(Build),
    /// Built once for every answer holding the same [`SharedBody`].
    Shared(Arc<SharedBody>),
}

impl Deferred {
    pub(crate) fn new(build: impl FnOnce() -> Vec<u8> + Send + 'static) -> Deferred {
        Deferred::Own(Box::new(build))
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deferred")
    }
}

/// What builds a body off the loop.
type Build = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// One body for many answers: concurrent scrapes of one store state in one
/// format. The first answer to be sent builds it; the others wait for it
/// and send the same bytes, so a thousand scrapers that never read hold
/// one body between them, charged to the budget once.
pub(crate) struct SharedBody {
    build: Mutex<Option<Build>>,
    /// The bytes, or `None` when the budget could not cover them.
    built: OnceLock<Option<Arc<Built>>>,
    /// The expected size, charged before the body is built.
    hint: usize,
    created: Instant,
}

/// A shared body's bytes and the budget charge that covers them, given
/// back when the last answer holding them is written.
pub(crate) struct Built {
    bytes: Vec<u8>,
    _charge: Option<Charge>,
}

impl SharedBody {
    pub(crate) fn new(
        hint: usize,
        build: impl FnOnce() -> Vec<u8> + Send + 'static,
    ) -> Arc<SharedBody> {
        Arc::new(SharedBody {
            build: Mutex::new(Some(Box::new(build))),
            built: OnceLock::new(),
            hint,
            created: Instant::now(),
        })
    }

    /// How long ago the body was asked for first.
    pub(crate) fn age(&self) -> Duration {
        self.created.elapsed()
    }

    /// The bytes, built now by the first caller (the others wait), charged
    /// to `budget` when there is one. `None`: the budget cannot cover them.
    fn get(&self, budget: Option<&Arc<Budget>>) -> Option<Arc<Built>> {
        let built = self.built.get_or_init(|| {
            let charge = match budget {
                Some(b) => {
                    let mut c = b.charge(Class::Answer);
                    if !c.grow_to(self.hint) {
                        return None;
                    }
                    Some(c)
                }
                None => None,
            };
            let build = self
                .build
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()?;
            let bytes = one_at_a_time(build);
            let charge = charge.map(|mut c| {
                c.force_to(bytes.len());
                c.shrink_to(bytes.len());
                c
            });
            Some(Arc::new(Built {
                bytes,
                _charge: charge,
            }))
        });
        built.clone()
    }
}

/// A body's bytes: the answer's own, or shared with other answers.
#[derive(Clone)]
pub(crate) enum Payload {
    Owned(Vec<u8>),
    Shared(Arc<Built>),
}

impl Payload {
    /// Whether the bytes are charged already (shared bodies are, once).
    pub(crate) fn is_charged(&self) -> bool {
        matches!(self, Payload::Shared(_))
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Payload::Owned(v) => v,
            Payload::Shared(b) => &b.bytes,
        }
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::Owned(Vec::new())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::Owned(v)
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Payload({} bytes)", self.len())
    }
}

/// Runs `build`, one at a time across the process: a body under
/// construction is not yet charged to the memory budget, and a scrape of
/// a million series is a hundred megabytes, so eight concurrent scrapes
/// must not build eight at once.
fn one_at_a_time(build: Build) -> Vec<u8> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    build()
}

impl Reply {
    /// A text/plain answer with exactly `body`, as Go's `w.Write`.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            headers: Vec::new(),
            body: body.into().into_bytes().into(),
            gzip: false,
            deferred: None,
        }
    }

    /// An error answer as Go's `http.Error` writes it: the message and a
    /// newline, with `X-Content-Type-Options: nosniff`.
    pub(crate) fn error(status: u16, msg: impl Into<String>) -> Reply {
        let mut body = msg.into();
        body.push('\n');
        Reply::text(status, body).with_header("X-Content-Type-Options", "nosniff")
    }

    /// A JSON answer, as the API writes them.
    pub(crate) fn json(status: u16, body: String) -> Reply {
        let mut reply = Reply::text(status, body);
        reply.content_type = Some("application/json");
        reply
    }

    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Payload::default(),
            gzip: false,
            deferred: None,
        }
    }

    /// Builds a deferred body now, without a budget; a no-op for a reply
    /// that has none. Tests call it wherever they are.
    #[cfg(test)]
    pub(crate) fn build_body(self) -> Reply {
        self.build_body_within(None)
            .expect("without a budget a body is always built")
    }

    /// Builds a deferred body now (the HTTP front calls it on a pool
    /// thread), a shared body charged to `budget`. `None` when the budget
    /// cannot cover it: the caller answers 503 instead.
    pub(crate) fn build_body_within(mut self, budget: Option<&Arc<Budget>>) -> Option<Reply> {
        match self.deferred.take() {
            None => {}
            Some(Deferred::Own(build)) => self.body = Payload::Owned(one_at_a_time(build)),
            Some(Deferred::Shared(shared)) => self.body = Payload::Shared(shared.get(budget)?),
        }
        Some(self)
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Where a reply goes: the HTTP front implements it for a connection;
/// tests can implement it to capture replies.
pub(crate) trait Respond: Send {
    fn send(self: Box<Self>, reply: Reply);
}

/// The way back from the loop to whoever asked.
pub(crate) struct Responder(Box<dyn Respond>);

impl Responder {
    pub(crate) fn new(r: impl Respond + 'static) -> Responder {
        Responder(Box::new(r))
    }

    pub(crate) fn send(self, reply: Reply) {
        self.0.send(reply);
    }
}

/// A durable-mode answer waiting for its change to reach the disk (Go's
/// `Done` channel of a write request).
pub(crate) struct Ack {
    pub reply_to: Responder,
    pub reply: Reply,
}

impl Ack {
    /// Sends the answer once the write is known: the reply itself if it
    /// worked, a 500 saying why if not.
    pub(crate) fn settle(self, written: Result<(), &str>) {
        let reply = match written {
            Ok(()) => self.reply,
            Err(e) => Reply::text(
                500,
                format!(
                    "the change is applied in memory but could not be written to the persistence file: {e}"
                ),
            ),
        };
        self.reply_to.send(reply);
    }
}

/// The result of one snapshot write, reported back to the loop.
pub(crate) struct WriteOutcome {
    pub generation: u64,
    /// How long the loop was held up collecting the groups for this write.
    pub pause: Duration,
    pub result: Result<WriteStats, String>,
}

#[derive(Debug)]
pub(crate) struct WriteStats {
    pub groups: usize,
    pub bytes: u64,
    pub duration: Duration,
}
