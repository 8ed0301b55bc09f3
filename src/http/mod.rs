//! The HTTP front: our own strict HTTP/1.1 server on `httparse`.
//!
//! Three kinds of threads, each with one job:
//! - **The I/O loop** (`server`) owns every socket: it accepts, reads and
//!   parses request heads and bodies, runs TLS, enforces limits and
//!   timeouts, and writes answers. It never blocks on a peer (all sockets
//!   are non-blocking, one `mio` poll: epoll, kqueue or IOCP) and never
//!   touches the store.
//! - **The request loop** (`gateway`) owns the store. It gets complete,
//!   parsed requests as [`Event`]s and hands answers back through a
//!   [`contract::Responder`]; it never touches a socket.
//! - **A bounded pool** does CPU work: decompressing and parsing pushes,
//!   bcrypt, gzip for scrapes.
//!
//! A request's way through the front: `conn` reads its head, `router`
//! finds its row in the route table (`routes`: every endpoint once, with
//! its label, memory class, access class and handler), `gate` lets it pass
//! or refuses it, `conn` reads its body if the row wants one, and the
//! row's handler (`handler/`) turns it into an [`Event`], pool work or a
//! direct answer.
//!
//! No thread per connection: 10,000 idle connections cost memory for their
//! state, not threads. Why not tiny_http, the library this replaced: it
//! allocated whatever Content-Length a client declared, leaked a thread per
//! HTTP/2 request line, stopped accepting for good after one EMFILE, let
//! requests be smuggled through bad Content-Lengths, and needed a thread
//! per slow client (docs/http.md).

mod body;
pub(crate) mod budget;
pub(crate) mod chunked;
mod conn;
mod cors;
mod gate;
mod handler;
pub(crate) mod head;
mod inbuf;
mod limits;
pub(crate) mod negotiate;
pub(crate) mod response;
pub(crate) mod router;
pub(crate) mod routes;
mod scope;
mod server;
mod transport;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use body::decode_body;
pub(crate) use body::{BodyError, decode_body_within, is_protobuf, openmetrics_version};
pub(crate) use limits::ConnLimits;
pub(crate) use response::Reply;
pub(crate) use server::Front;

use crate::contract::{self, Event, Meta};

use crate::access::rate_limit::RateLimiter;
use crate::access::reload::WebReloader;
use crate::http::router::Routes;
use crate::model::NameScheme;
use crate::pool::Pool;
use crate::sys;
use crate::telemetry::Telemetry;

/// A complete request as the front's handlers see it: the head, the
/// client, and the way back to its connection. The loop never sees it: it
/// gets an [`Event`] digested from it.
pub(crate) struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    peer: SocketAddr,
    responder: ConnResponder,
    /// The names a verified TLS client certificate gives (its DNS and URI
    /// SANs), read only when write scopes are on.
    client_names: Vec<String>,
}

impl Request {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// What the loop needs for counting and logs.
    pub(crate) fn meta(&self) -> Meta {
        Meta {
            method: self.method.clone(),
            source: self.source(),
        }
    }

    /// The way back, for the loop.
    pub(crate) fn reply_to(self, pool: &Pool) -> contract::Responder {
        contract::Responder::new(PoolResponder {
            conn: self.responder,
            pool: pool.clone(),
            cors: false,
        })
    }

    /// The way back for an `/api/v1` answer: with the API's CORS headers.
    pub(crate) fn reply_to_with_cors(self, pool: &Pool) -> contract::Responder {
        contract::Responder::new(PoolResponder {
            conn: self.responder,
            pool: pool.clone(),
            cors: true,
        })
    }

    /// The names a verified TLS client certificate gives.
    pub(crate) fn client_names(&self) -> &[String] {
        &self.client_names
    }

    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The client's address, for logs.
    pub(crate) fn source(&self) -> String {
        self.peer.to_string()
    }
}

/// Sends `reply` to the client of `req`. Compression runs on the pool;
/// everything else is a few header lines, written here.
pub(crate) fn respond(pool: &Pool, req: Request, reply: Reply) {
    req.responder.send_via(pool, reply);
}

/// A connection's responder with the pool that compresses for it: what
/// the loop gets as a [`contract::Responder`].
struct PoolResponder {
    conn: ConnResponder,
    pool: Pool,
    /// Add the API's CORS headers.
    cors: bool,
}

impl contract::Respond for PoolResponder {
    fn send(self: Box<Self>, reply: Reply) {
        let PoolResponder { conn, pool, cors } = *self;
        let reply = if cors { cors::with_cors(reply) } else { reply };
        conn.send_via(&pool, reply);
    }
}

/// The way back from a handler to the connection a request came on.
///
/// Dropped without an answer (a handler that panicked on the pool, an
/// event the request loop never took), it answers 500 and closes the
/// connection itself: a connection waiting for its answer has no
/// deadline, so nothing else would ever free it.
struct ConnResponder {
    conn: u64,
    shared: Arc<Shared>,
    how: response::ResponseMode,
    /// How the answer is counted, if the reference counts this route.
    count: Option<Count>,
    /// The answer went to the I/O loop.
    answered: bool,
}

/// A request's place in `pushgateway_http_requests_total`.
struct Count {
    telemetry: Telemetry,
    handler: &'static str,
    /// Already promhttp's label (`telemetry::method_label`).
    method: &'static str,
}

impl ConnResponder {
    /// The one place requests are counted: every handler's answer passes
    /// here, on the thread that made it, before the client can see it.
    fn send_via(self, pool: &Pool, reply: Reply) {
        if let Some(c) = &self.count {
            c.telemetry.count_request(reply.status, c.handler, c.method);
        }
        if reply.deferred.is_some() || reply.gzip {
            pool.execute_background(move || {
                let built = reply.build_body_within(Some(&self.shared.budget));
                let Some(reply) = built else {
                    let reply = gate::busy("(answer)", "(built off the loop)");
                    return self.send(reply);
                };
                let reply = if reply.gzip {
                    body::gzip_reply(reply)
                } else {
                    reply
                };
                self.send(reply)
            });
        } else {
            self.send(reply);
        }
    }

    /// Writes the head and queues the answer for the I/O loop.
    fn send(mut self, reply: Reply) {
        self.answered = true;
        let (head, body) = self.shared.encode(reply, self.how);
        self.shared.complete(Completion::Reply {
            conn: self.conn,
            head,
            body,
            keep_alive: self.how.keep_alive,
        });
    }
}

impl Drop for ConnResponder {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        log::error!(conn = self.conn; "a request's handler ended without an answer; answering 500 and closing");
        if let Some(c) = &self.count {
            c.telemetry.count_request(500, c.handler, c.method);
        }
        let how = response::ResponseMode {
            keep_alive: false,
            ..self.how
        };
        let reply = Reply::error(500, "Internal Server Error: the request's handler failed");
        let (head, body) = self.shared.encode(reply, how);
        self.shared.complete(Completion::Reply {
            conn: self.conn,
            head,
            body,
            keep_alive: false,
        });
    }
}

/// The way back from a credential check to the connection that waits for
/// it. Dropped without a verdict (a check that panicked), it sends a
/// refusal: the waiting connection has no deadline.
struct VerdictTo {
    conn: u64,
    shared: Arc<Shared>,
    sent: bool,
}

impl VerdictTo {
    fn send(mut self, ok: bool) {
        self.sent = true;
        self.shared.complete(Completion::Verdict {
            conn: self.conn,
            ok,
        });
    }
}

impl Drop for VerdictTo {
    fn drop(&mut self) {
        if !self.sent {
            log::error!(conn = self.conn; "a password check ended without a verdict; refusing the request");
            let conn = self.conn;
            self.shared
                .complete(Completion::Verdict { conn, ok: false });
        }
    }
}

/// What other threads hand back to the I/O loop.
enum Completion {
    /// An answer's bytes, ready to write.
    Reply {
        conn: u64,
        head: Vec<u8>,
        body: contract::Payload,
        keep_alive: bool,
    },
    /// The pool checked a request's credentials.
    Verdict { conn: u64, ok: bool },
    /// A handshake thread did a step of a TLS handshake.
    #[cfg(feature = "tls")]
    Handshake {
        conn: u64,
        tls: transport::Session,
        processed: Result<(), rustls::Error>,
    },
}

/// The I/O loop's inbox, shared with every thread that answers requests.
struct Shared {
    queue: Mutex<Vec<Completion>>,
    /// Wakes the I/O loop's poll.
    wake: mio::Waker,
    /// `http_server_config.headers` go on every response.
    web: Option<Arc<WebReloader>>,
    /// Charged for the answers built off the loop.
    budget: Arc<budget::Budget>,
}

impl Shared {
    /// An answer's bytes, with the web configuration's headers.
    fn encode(&self, reply: Reply, how: response::ResponseMode) -> (Vec<u8>, contract::Payload) {
        let extra = self.web.as_ref().map(|w| w.headers());
        let extra = extra.as_deref().map(Vec::as_slice).unwrap_or_default();
        response::encode(reply, how, extra)
    }

    fn complete(&self, c: Completion) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.is_empty();
        q.push(c);
        drop(q);
        // One wake-up per batch: the loop takes the whole queue at once.
        if was_empty {
            let _ = self.wake.wake();
        }
    }

    fn take(&self) -> Vec<Completion> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What the front needs to route requests and build events.
#[derive(Clone)]
pub(crate) struct Context {
    pub routes: Arc<Routes>,
    pub pool: Pool,
    pub events: Sender<Event>,
    pub telemetry: Telemetry,
    pub max_body_bytes: u64,
    pub enable_lifecycle: bool,
    /// Name rules for pushed bodies (`--push.enable-utf8-names`).
    pub names: NameScheme,
    /// The web config file's users and headers, when there is one.
    pub web: Option<Arc<WebReloader>>,
    /// `rate_limit` of the web configuration.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The request loop's heartbeat, for health probes.
    pub beat: Arc<crate::contract::LoopBeat>,
    /// `--web.access-file`: who may change, read or administer what.
    pub access: Option<Arc<crate::access::scopes::AccessReloader>>,
    /// What all requests in flight may hold (`--web.memory-budget`).
    pub budget: Arc<budget::Budget>,
}

/// Binds one `--web.listen-address`. A bare `:port` means every interface,
/// IPv6 and IPv4 alike, as in Go.
pub(crate) fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let listener = if let Some(port) = addr.strip_prefix(':') {
        TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")))?
    } else {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        TcpListener::bind(&addrs[..])?
    };
    nodelay(&listener);
    if let Err(e) = sys::raise_backlog(&listener) {
        log::warn!(err:display = e; "cannot raise the listen backlog; bursts of new connections may wait");
    }
    Ok(listener)
}

/// TCP_NODELAY on a listener, for the connections it accepts (Linux; on
/// other systems the I/O loop sets it on each connection, see
/// [`sys::NODELAY_INHERITED`]).
#[cfg(target_os = "linux")]
fn nodelay(listener: &TcpListener) {
    if let Err(e) = sys::set_nodelay(listener) {
        log::warn!(err:display = e; "cannot set TCP_NODELAY; keep-alive answers may be delayed");
    }
}

#[cfg(not(target_os = "linux"))]
fn nodelay(_listener: &TcpListener) {}

/// Socket activation is systemd's: on other systems the flag stops the
/// start with this.
#[cfg(not(target_os = "linux"))]
pub(crate) fn systemd_listeners() -> Result<Vec<TcpListener>, String> {
    Err(format!(
        "socket activation is systemd's and only available on Linux (this is {}); listen with --web.listen-address instead",
        std::env::consts::OS
    ))
}

/// The listening sockets systemd passed (`--web.systemd-socket`): file
/// descriptors 3 to 3+LISTEN_FDS-1, meant for us if LISTEN_PID is our pid.
#[cfg(target_os = "linux")]
pub(crate) fn systemd_listeners() -> Result<Vec<TcpListener>, String> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            format!("{name} is not set; is the gateway started by a systemd .socket unit?")
        })
    };
    let pid: u32 = var("LISTEN_PID")?
        .parse()
        .map_err(|_| "LISTEN_PID is not a number".to_owned())?;
    if pid != std::process::id() {
        return Err(format!(
            "LISTEN_PID {pid} is not this process ({})",
            std::process::id()
        ));
    }
    let n: i32 = var("LISTEN_FDS")?
        .parse()
        .map_err(|_| "LISTEN_FDS is not a number".to_owned())?;
    if !(1..=64).contains(&n) {
        return Err(format!("LISTEN_FDS={n}: expected between 1 and 64 sockets"));
    }
    let mut out = Vec::new();
    for fd in 3..3 + n {
        let listener = sys::inherited_listener(fd).map_err(|e| {
            format!("file descriptor {fd} from systemd {e}; the socket unit must pass listening TCP sockets (ListenStream= with an address or port, Accept=no)")
        })?;
        nodelay(&listener);
        out.push(listener);
    }
    Ok(out)
}

/// How long the front waits for answers still being written at exit.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        // The waker outlives its poll here: waking it only sets a counter
        // nobody reads.
        let poll = mio::Poll::new().unwrap();
        Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            wake: mio::Waker::new(poll.registry(), mio::Token(0)).unwrap(),
            web: None,
            budget: budget::Budget::new(1 << 20),
        })
    }

    fn responder(shared: &Arc<Shared>, conn: u64) -> ConnResponder {
        ConnResponder {
            conn,
            shared: Arc::clone(shared),
            how: response::ResponseMode {
                head_only: false,
                keep_alive: true,
                http10: false,
            },
            count: None,
            answered: false,
        }
    }

    /// The answers queued for the I/O loop: (connection, status line,
    /// keep-alive).
    fn answers(shared: &Shared) -> Vec<(u64, String, bool)> {
        shared
            .take()
            .into_iter()
            .map(|c| match c {
                Completion::Reply {
                    conn,
                    head,
                    keep_alive,
                    ..
                } => {
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let status = head.lines().next().unwrap_or("").to_owned();
                    (conn, status, keep_alive)
                }
                Completion::Verdict { conn, .. } => (conn, "verdict".into(), true),
                #[cfg(feature = "tls")]
                Completion::Handshake { conn, .. } => (conn, "handshake".into(), true),
            })
            .collect()
    }

    #[test]
    fn a_responder_dropped_unanswered_answers_500_and_closes() {
        let shared = shared();
        drop(responder(&shared, 7));
        let got = answers(&shared);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, 7);
        assert!(got[0].1.starts_with("HTTP/1.1 500"), "{got:?}");
        assert!(!got[0].2, "the connection closes after the 500");
    }

    #[test]
    fn an_answered_responder_answers_once() {
        let shared = shared();
        responder(&shared, 3).send(Reply::text(200, "OK"));
        let got = answers(&shared);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].1.starts_with("HTTP/1.1 200"), "{got:?}");
        assert!(got[0].2);
    }

    #[test]
    fn a_check_that_ends_without_a_verdict_refuses() {
        let shared = shared();
        let to = |conn| VerdictTo {
            conn,
            shared: Arc::clone(&shared),
            sent: false,
        };
        to(1).send(true);
        drop(to(2));
        let got: Vec<_> = shared
            .take()
            .into_iter()
            .map(|c| match c {
                Completion::Verdict { conn, ok } => (conn, ok),
                Completion::Reply { conn, .. } => (conn, true),
                #[cfg(feature = "tls")]
                Completion::Handshake { conn, .. } => (conn, true),
            })
            .collect();
        assert_eq!(got, [(1, true), (2, false)]);
    }

    /// The case the drop is for: a handler job that panics on the pool.
    #[test]
    fn a_pool_job_that_panics_still_answers_its_connection() {
        let shared = shared();
        let pool = Pool::new(1);
        let r = responder(&shared, 9);
        pool.execute(move || {
            let _r = r;
            panic!("a bug in a handler");
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            got = answers(&shared);
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, 9);
        assert!(got[0].1.starts_with("HTTP/1.1 500"), "{got:?}");
    }
}
