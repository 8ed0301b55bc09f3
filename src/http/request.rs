//! A request as the front's handlers see it, and the ways back to its
//! connection: the answer (`ConnResponder`, through the pool when it is
//! built or compressed off the loop) and a credential check's verdict
//! (`VerdictTo`), both handed to the I/O loop's inbox (`inbox.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use super::inbox::{Completion, Shared};
use super::response::{self, Reply};
use super::{body, cors, gate};
use crate::contract::{self, Meta};
use crate::pool::Pool;
use crate::telemetry::Telemetry;

/// A complete request as the front's handlers see it: the head, the
/// client, and the way back to its connection. The loop never sees it: it
/// gets an [`Event`](crate::contract::Event) digested from it.
pub(crate) struct Request {
    pub(super) method: String,
    pub(super) url: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) peer: SocketAddr,
    pub(super) responder: ConnResponder,
    /// The names a verified TLS client certificate gives (its DNS and URI
    /// SANs), read only when write scopes are on.
    pub(super) client_names: Vec<String>,
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
pub(super) struct PoolResponder {
    pub(super) conn: ConnResponder,
    pub(super) pool: Pool,
    /// Add the API's CORS headers.
    pub(super) cors: bool,
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
pub(super) struct ConnResponder {
    pub(super) conn: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) how: response::ResponseMode,
    /// How the answer is counted, if the reference counts this route.
    pub(super) count: Option<Count>,
    /// The answer went to the I/O loop.
    pub(super) answered: bool,
}

/// A request's place in `pushgateway_http_requests_total`.
pub(super) struct Count {
    pub(super) telemetry: Telemetry,
    pub(super) handler: &'static str,
    /// Already promhttp's label (`telemetry::method_label`).
    pub(super) method: &'static str,
}

impl ConnResponder {
    /// The one place requests are counted: every handler's answer passes
    /// here, on the thread that made it, before the client can see it.
    pub(super) fn send_via(self, pool: &Pool, reply: Reply) {
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
    pub(super) fn send(mut self, reply: Reply) {
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
pub(super) struct VerdictTo {
    pub(super) conn: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) sent: bool,
}

impl VerdictTo {
    pub(super) fn send(mut self, ok: bool) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::budget;
    use std::sync::Mutex;
    use std::time::Duration;

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
