//! The machine driven with bytes, as the driver would: each `feed` is one
//! read, each `drain` the socket taking everything queued.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::contract::Event;
use crate::http::budget::Budget;
use crate::http::context::Context;
use crate::http::inbox::Shared;
use crate::http::router::Routes;
use crate::pool::Pool;

/// What a connection sees of the server: the context, the inbox, limits.
struct Front {
    ctx: Context,
    shared: Arc<Shared>,
    limits: ConnLimits,
    #[cfg(feature = "tls")]
    handshakes: Pool,
    _events: Receiver<Event>,
}

impl Front {
    fn new(budget: usize, max_body_bytes: u64) -> Front {
        let (events, rx) = mpsc::channel();
        let budget = Budget::new(budget);
        // The waker outlives its poll here: waking it only sets a counter
        // nobody reads.
        let poll = mio::Poll::new().unwrap();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            wake: mio::Waker::new(poll.registry(), mio::Token(0)).unwrap(),
            web: None,
            budget: Arc::clone(&budget),
        });
        let ctx = Context {
            routes: Arc::new(Routes::new("", "/metrics", false)),
            pool: Pool::new(1),
            events,
            telemetry: crate::telemetry::Telemetry::new(),
            max_body_bytes,
            enable_lifecycle: false,
            names: crate::model::NameScheme::Legacy,
            web: None,
            limiter: None,
            beat: Arc::default(),
            access: None,
            budget,
        };
        let limits = ConnLimits {
            header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(40),
            max_connections: 10,
        };
        Front {
            ctx,
            shared,
            limits,
            #[cfg(feature = "tls")]
            handshakes: Pool::new(1),
            _events: rx,
        }
    }

    fn env(&self) -> Env<'_> {
        Env {
            ctx: &self.ctx,
            shared: &self.shared,
            limits: &self.limits,
            stopping: false,
            #[cfg(feature = "tls")]
            handshakes: &self.handshakes,
        }
    }

    /// A new plain connection.
    fn conn(&self) -> Machine {
        let peer: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        Machine::new(peer, &self.limits, self.ctx.budget.charge(Class::Head))
    }

    /// A new plain connection after its first read, `first`.
    fn open(&self, first: &[u8]) -> Machine {
        let mut m = self.conn();
        feed(&mut m, &self.env(), first);
        m
    }

    fn used(&self) -> usize {
        self.ctx.budget.used()
    }
}

/// A front with room for everything.
fn front() -> Front {
    Front::new(64 << 20, 1024)
}

/// One read of `bytes`, as the driver makes it: into the input, charged
/// first; input the budget refuses is [`Machine::over_budget`].
fn feed(m: &mut Machine, env: &Env<'_>, bytes: &[u8]) {
    assert!(m.wants_read(), "fed a connection that reads nothing");
    match m.input().append(bytes) {
        Ok(()) => m.process(env),
        Err(_) => m.over_budget(env),
    }
}

/// The socket takes everything queued: the bytes (without the Date
/// line, which changes), and what the driver is to do next.
fn drain(m: &mut Machine) -> (String, AfterWrite) {
    let mut out = Vec::new();
    while let Some(front) = m.output() {
        let n = front.len();
        out.extend_from_slice(front);
        m.wrote(n);
    }
    let text = String::from_utf8(out).unwrap();
    let text: String = text
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Date: "))
        .collect();
    (text, m.flushed(true, true))
}

/// The request the machine handed to its handler.
fn handoff(m: &mut Machine) -> Handoff {
    match m.take_task() {
        Some(Task::Handle(h)) => h,
        Some(Task::Check { .. }) => panic!("a credential check, not a request"),
        None => panic!("no request for a handler"),
    }
}

/// Answers the request with the handler's bytes `answer`.
fn reply(m: &mut Machine, env: &Env<'_>, answer: &str, keep_alive: bool) {
    let head = answer.as_bytes().to_vec();
    assert!(m.on_reply(env, head, Payload::default(), keep_alive));
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";

#[test]
fn a_get_goes_to_its_handler_and_its_answer_out() {
    let f = front();
    let env = f.env();
    let mut m = f.open(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
    let h = handoff(&mut m);
    assert_eq!(h.route, f.ctx.routes.route("GET", "/-/healthy"));
    assert_eq!(
        (h.head.method.as_str(), h.head.target.as_str()),
        ("GET", "/-/healthy")
    );
    assert!(h.how.keep_alive && !h.how.head_only && !h.how.http10);
    assert!(h.body.data.is_empty());
    // With its handler: nothing to read or write, no deadline.
    assert!(!m.wants_read() && m.output().is_none() && m.is_busy());
    assert_eq!(m.deadline(), None);

    reply(&mut m, &env, OK, true);
    assert!(m.deadline().is_some(), "the write timeout runs");
    assert_eq!(drain(&mut m), (OK.into(), AfterWrite::Nothing));
    assert!(!m.is_busy() && m.wants_read());
    // Kept: idle until the next request, under the idle timeout.
    assert!(m.resume(&env));
    let idle = m.deadline().unwrap() - Instant::now();
    assert!(idle > Duration::from_secs(25), "{idle:?}");
    assert!(m.take_task().is_none());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let f = front();
    let env = f.env();
    let mut m = f.open(
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\nGET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(handoff(&mut m).head.target, "/-/healthy");
    // The second waits in the buffer while the first is answered.
    assert!(m.take_task().is_none() && !m.wants_read());
    reply(&mut m, &env, "HTTP/1.1 200 OK\r\n\r\nfirst", true);
    // A second answer for the same request finds nothing waiting for it.
    assert!(!m.on_reply(&env, b"stray".to_vec(), Payload::default(), true));
    assert_eq!(drain(&mut m).0, "HTTP/1.1 200 OK\r\n\r\nfirst");
    assert!(m.resume(&env));
    assert_eq!(handoff(&mut m).head.target, "/-/ready");
    reply(&mut m, &env, "HTTP/1.1 200 OK\r\n\r\nsecond", true);
    assert_eq!(drain(&mut m).0, "HTTP/1.1 200 OK\r\n\r\nsecond");
}

#[test]
fn a_body_with_content_length_is_read_across_reads() {
    let f = front();
    let env = f.env();
    let mut m = f.open(b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
    assert!(m.take_task().is_none() && m.wants_read());
    let left = m.deadline().unwrap() - Instant::now();
    assert!(left > Duration::from_secs(15), "the read timeout: {left:?}");
    feed(&mut m, &env, b"cde");
    let h = handoff(&mut m);
    assert!(h.route.wants_body());
    assert_eq!(h.body.data, b"abcde");
    assert!(
        f.ctx.budget.used_by(Class::Body) >= 5,
        "the body is charged"
    );
}

#[test]
fn a_chunked_body_is_decoded_from_bytes_in_any_pieces() {
    let f = front();
    let env = f.env();
    let mut m = f.conn();
    let req = b"POST /metrics/job/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    for byte in req {
        feed(&mut m, &env, &[*byte]);
    }
    assert_eq!(handoff(&mut m).body.data, b"abcde");
}

#[test]
fn a_head_over_the_limit_is_answered_431_and_closed() {
    let f = front();
    let env = f.env();
    let mut m = f.open(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    let piece = [b'a'; 64 * 1024];
    while m.wants_read() {
        feed(&mut m, &env, &piece);
    }
    let (answer, next) = drain(&mut m);
    let body = format!(
        "431 Request Header Fields Too Large: request head larger than {} bytes or with more than 10000 header fields",
        head::MAX_HEAD
    );
    let want = format!(
        "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(answer, want);
    assert_eq!(next, AfterWrite::ShutWrite);
    assert!(m.is_lingering());
}

/// The 413 a push over 16 bytes gets.
const TOO_LARGE: &str = "HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
    X-Content-Type-Options: nosniff\r\nContent-Length: 88\r\nConnection: close\r\n\r\n\
    request body larger than 16 bytes (--push.max-body-size), before or after decompression\n";

#[test]
fn a_push_over_the_limit_is_answered_413_before_its_body_is_read() {
    let f = Front::new(64 << 20, 16);
    let mut m = f.open(b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n");
    assert!(m.take_task().is_none(), "the handler never runs");
    assert_eq!(drain(&mut m), (TOO_LARGE.into(), AfterWrite::ShutWrite));
    assert!(m.is_lingering());
}

#[test]
fn an_early_answer_goes_out_while_the_body_still_arrives() {
    let f = Front::new(64 << 20, 16);
    let env = f.env();
    let mut m = f.open(b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n");
    assert!(m.output().is_none() && m.wants_read(), "within the limit");
    feed(&mut m, &env, b"10\r\n0123456789abcdef\r\n");
    // Over the limit with the body unfinished: answered, then closed.
    assert!(m.take_task().is_none() && !m.wants_read());
    assert_eq!(drain(&mut m), (TOO_LARGE.into(), AfterWrite::ShutWrite));
    assert!(
        m.is_lingering() && m.wants_read(),
        "the rest is read and thrown away"
    );
}

#[test]
fn a_bad_chunk_is_answered_400_and_closed() {
    let f = front();
    let mut m = f.open(
        b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    );
    let (answer, next) = drain(&mut m);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("\r\nConnection: close\r\n\r\n400 Bad Request: "),
        "{answer}"
    );
    assert_eq!(next, AfterWrite::ShutWrite);
}

#[test]
fn a_small_unwanted_body_is_drained_and_the_connection_kept() {
    let f = front();
    let env = f.env();
    let mut m = f.conn();
    // Bytes of a body that looks like a head: thrown away, not parsed.
    let body = b"GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut req = format!(
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req.extend_from_slice(b"GET /-/quit HTTP/1.1\r\nHost: x\r\n\r\n");
    feed(&mut m, &env, &req);
    let h = handoff(&mut m);
    assert!(h.how.keep_alive && h.body.data.is_empty());
    reply(&mut m, &env, OK, true);
    assert_eq!(drain(&mut m), (OK.into(), AfterWrite::Nothing));
    assert!(m.resume(&env));
    assert_eq!(handoff(&mut m).head.target, "/-/quit");
}

#[test]
fn an_unwanted_body_past_the_drain_limit_closes_the_connection() {
    let f = front();
    let env = f.env();
    // Declared too large: not read at all, the answer closes.
    let mut m = f.conn();
    let req = format!(
        "GET /-/healthy HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        DRAIN_LIMIT + 1
    );
    feed(&mut m, &env, req.as_bytes());
    assert!(!handoff(&mut m).how.keep_alive);
    // Chunked: drained until it passes the limit, then answered.
    let mut m = f.conn();
    let req = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n40000\r\n";
    feed(&mut m, &env, req);
    feed(&mut m, &env, &vec![b'x'; DRAIN_LIMIT as usize]);
    assert!(m.take_task().is_none(), "at the limit, still draining");
    feed(&mut m, &env, b"\r\n1\r\nx");
    let h = handoff(&mut m);
    assert!(!h.how.keep_alive && h.body.data.is_empty());
    reply(&mut m, &env, OK, false);
    assert_eq!(drain(&mut m), (OK.into(), AfterWrite::ShutWrite));
}

/// The 408 of a request that did not arrive in time.
const TIMED_OUT: &str = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n\
    Content-Length: 55\r\nConnection: close\r\n\r\n408 Request Timeout: the request did not arrive in time";

#[test]
fn a_head_or_body_that_does_not_arrive_in_time_gets_408() {
    let f = front();
    let mut m = f.open(b"GET /-/healthy HT");
    assert!(m.on_timeout());
    assert_eq!(drain(&mut m), (TIMED_OUT.into(), AfterWrite::ShutWrite));

    let mut m = f.open(b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
    assert!(m.on_timeout());
    assert_eq!(drain(&mut m), (TIMED_OUT.into(), AfterWrite::ShutWrite));
}

#[test]
fn an_idle_connection_that_times_out_is_closed_without_an_answer() {
    let f = front();
    let mut m = f.conn();
    assert!(!m.on_timeout());
    assert!(m.is_closed() && m.output().is_none());
}

#[test]
fn the_peer_closing_mid_request_gives_everything_back() {
    let f = front();
    let mut m =
        f.open(b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nsome");
    assert!(f.used() > 0);
    // The driver read the end of the stream.
    m.close();
    assert!(m.is_closed() && m.output().is_none() && !m.wants_read());
    assert_eq!(
        f.used(),
        0,
        "the input and the body's charge are given back"
    );
}

#[test]
fn a_closing_answer_lingers_then_closes() {
    let f = front();
    let env = f.env();
    let mut m = f.open(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!handoff(&mut m).how.keep_alive);
    reply(&mut m, &env, OK, false);
    assert_eq!(drain(&mut m), (OK.into(), AfterWrite::ShutWrite));
    assert!(m.is_lingering() && m.wants_read() && !m.is_busy());
    let left = m.deadline().unwrap() - Instant::now();
    assert!(left <= Duration::from_secs(1), "{left:?}");
    assert!(!m.resume(&env), "no next request");
    assert!(!m.on_timeout());
    assert!(m.is_closed());
}

#[test]
fn a_head_the_budget_cannot_cover_is_answered_503_and_closed() {
    let f = Front::new(64 * 1024, 1024);
    let env = f.env();
    let mut m = f.open(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    let piece = [b'a'; 8 * 1024];
    while m.wants_read() {
        feed(&mut m, &env, &piece);
    }
    let want = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
        X-Content-Type-Options: nosniff\r\nRetry-After: 1\r\nContent-Length: 103\r\n\
        Connection: close\r\n\r\nService Unavailable: the memory for requests in flight \
        (--web.memory-budget) is used up; retry shortly\n";
    assert_eq!(drain(&mut m), (want.into(), AfterWrite::ShutWrite));
    assert_eq!(f.used(), 0, "the head's bytes are given back");
}

#[test]
fn a_push_that_expects_100_continue_gets_it_before_its_body() {
    let f = front();
    let env = f.env();
    let mut m = f.open(b"PUT /metrics/job/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_eq!(
        drain(&mut m),
        ("HTTP/1.1 100 Continue\r\n\r\n".into(), AfterWrite::Nothing)
    );
    assert!(m.wants_read(), "still reading the body");
    feed(&mut m, &env, b"ok");
    assert_eq!(handoff(&mut m).body.data, b"ok");
}

#[test]
fn a_front_that_stops_closes_after_the_answer() {
    let f = front();
    let env = Env {
        stopping: true,
        ..f.env()
    };
    let mut m = f.conn();
    feed(&mut m, &env, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!handoff(&mut m).how.keep_alive);
}
