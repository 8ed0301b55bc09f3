//! One client connection: its buffers, its protocol state and its deadline.
//!
//! A connection serves one request at a time, so pipelined requests are
//! answered in order: while a request is with its handler the connection
//! reads nothing more, and bytes already read wait in `inbuf`. Every state
//! has a bound: heads [`head::MAX_HEAD`], bodies `--push.max-body-size`
//! (or [`DRAIN_LIMIT`] when the body is not wanted), and a deadline.
//! Buffered input is charged to the memory budget before it grows; a
//! head the budget cannot cover is answered 503 and the connection
//! closed (see [`Conn::over_budget`]).
//!
//! A TLS handshake's crypto runs on a handshake thread: meanwhile the
//! connection stays in `Handshake` and reads nothing (see `transport`).
//!
//! ```text
//! Handshake (TLS) ─▶ Head ─▶ Body ─▶ Waiting ─▶ Writing ─▶ Head …
//!                     │        └──────(early answer)──▶ Writing
//!                     └─(bad head, timeout)─▶ Writing ─▶ Lingering ─▶ closed
//! ```

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::budget::{Charge, Class};
use super::chunked::{self, ChunkError};
use super::context::Context;
use super::gate::{self, Gate};
use super::handler::{self, Body};
use super::head::{self, BodyFraming, Head};
use super::inbox::Shared;
use super::inbuf::InBuf;
use super::limits::ConnLimits;
use super::request::{ConnResponder, Count, Request, VerdictTo};
use super::response::{self, Reply};
use super::transport::{Received, Transport};
use crate::contract::Payload;
use crate::http::router::Route;
use crate::pool::Kind;
use mio::net::TcpStream;

/// What a connection can make progress on in its state: reading input,
/// writing output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Interest {
    pub read: bool,
    pub write: bool,
}

/// A body the handler does not want (a GET with a body, a refused push) is
/// read and thrown away up to this many bytes to keep the connection; past
/// it the answer says `Connection: close`. Go's server uses the same bound.
pub(super) const DRAIN_LIMIT: u64 = 256 * 1024;

/// After the last answer on a closing connection, how long input is still
/// read and discarded, so the kernel does not reset the connection (and
/// lose the answer) while the client is still sending.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

fn no_body(env: &Env<'_>) -> Body {
    Body {
        data: Vec::new(),
        charge: env.ctx.budget.charge(Class::Body),
    }
}

/// Everything a connection needs from the server around it.
pub(super) struct Env<'a> {
    pub ctx: &'a Context,
    pub shared: &'a Arc<Shared>,
    pub limits: &'a ConnLimits,
    /// The front is shutting down: no more keep-alive.
    pub stopping: bool,
    /// Where TLS handshake steps run, off the loop.
    #[cfg(feature = "tls")]
    pub handshakes: &'a crate::pool::Pool,
}

/// A request whose head is read, on its way to its handler.
struct Pending {
    head: Head,
    action: Action,
}

enum Action {
    /// Run the handler for this route.
    Dispatch(Route),
    /// Send this answer instead (gate refusal, oversized body).
    Answer(Reply),
}

/// How the body is delimited, and what is left of it.
enum BodyReader {
    Length(u64),
    Chunked(chunked::Decoder),
}

struct BodyState {
    pending: Pending,
    reader: BodyReader,
    /// Keep the bytes (a push) or throw them away.
    keep: bool,
    data: Vec<u8>,
    /// The memory budget's charge for `data`.
    charge: Charge,
    /// The budget could not cover more of the body.
    busy: bool,
    received: u64,
    /// Most bytes accepted before giving up.
    limit: u64,
}

enum State {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Handshake,
    /// Waiting for, or reading, a request head. `started`: bytes of it
    /// have arrived (the header timeout runs, not the idle one).
    Head {
        started: bool,
    },
    Body(Box<BodyState>),
    /// With a handler, or (`Some`) with the pool checking credentials.
    Waiting(Option<Box<Pending>>),
    Writing,
    /// The answer is out and our side is shut; discarding input.
    Lingering,
    Closed,
}

pub(super) struct Conn {
    pub sock: TcpStream,
    pub peer: SocketAddr,
    pub id: u64,
    transport: Transport,
    state: State,
    /// Bytes read and not yet consumed, charged to the budget.
    inbuf: InBuf,
    /// How far the unread input was searched for the end of a head.
    scanned: usize,
    out: VecDeque<Payload>,
    out_pos: usize,
    /// Close once `out` is written.
    close_after: bool,
    pub deadline: Option<Instant>,
    /// The socket may hold input not read yet: the poll reported it
    /// (edge-triggered, once), and no read has said `WouldBlock` since.
    pub readable: bool,
    /// Queued for the server's next round (see [`Conn::readable`]).
    pub queued: bool,
    /// Nothing was read yet (a TLS port checks the first byte).
    fresh: bool,
    /// The budget's charge for an answer waiting in `out`.
    out_charge: Option<Charge>,
    /// The TLS configuration verifies client certificates against client
    /// CAs: only then are a certificate's names an identity (write scopes).
    pub(super) clients_verified: bool,
    /// The budget's charge for what a TLS session's buffers may hold
    /// ([`crate::access::tls::SESSION_HOLDS`]), for the connection's life.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    session_charge: Option<Charge>,
    /// How long an answer may wait for the client to read some of it.
    write_timeout: std::time::Duration,
}

impl Conn {
    /// `charge` pays for the input buffer (see [`Class::Head`]).
    pub(super) fn plain(
        sock: TcpStream,
        peer: SocketAddr,
        id: u64,
        limits: &ConnLimits,
        charge: Charge,
    ) -> Conn {
        let state = State::Head { started: false };
        Conn::new(sock, peer, id, Transport::Plain, state, limits, charge)
    }

    #[cfg(feature = "tls")]
    pub(super) fn tls(
        sock: TcpStream,
        peer: SocketAddr,
        id: u64,
        tls: rustls::ServerConnection,
        limits: &ConnLimits,
        (charge, held): (Charge, Charge),
    ) -> Conn {
        let mut c = Conn::new(
            sock,
            peer,
            id,
            Transport::Tls(Box::new(tls)),
            State::Handshake,
            limits,
            charge,
        );
        c.session_charge = Some(held);
        // As Go: the handshake is bounded by the header timeout too.
        let limit = crate::access::tls::HANDSHAKE_TIMEOUT.min(limits.header_timeout);
        c.deadline = Some(Instant::now() + limit);
        c
    }

    fn new(
        sock: TcpStream,
        peer: SocketAddr,
        id: u64,
        transport: Transport,
        state: State,
        limits: &ConnLimits,
        charge: Charge,
    ) -> Conn {
        Conn {
            sock,
            peer,
            id,
            transport,
            state,
            inbuf: InBuf::new(charge),
            scanned: 0,
            out: VecDeque::new(),
            out_pos: 0,
            close_after: false,
            // A new connection gets the header timeout for its first head.
            deadline: Some(Instant::now() + limits.header_timeout),
            readable: false,
            queued: false,
            fresh: true,
            out_charge: None,
            session_charge: None,
            clients_verified: false,
            write_timeout: limits.write_timeout,
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether an answer is still owed or being written (shutdown waits
    /// for these).
    pub(super) fn is_busy(&self) -> bool {
        matches!(self.state, State::Waiting(_) | State::Writing) || !self.out.is_empty()
    }

    /// What the connection can make progress on in the current state.
    pub(super) fn interest(&self) -> Interest {
        let read = match self.state {
            // Nothing to read into while the session is on a handshake thread.
            State::Handshake => !self.transport.is_away(),
            State::Body(_) | State::Lingering => true,
            State::Head { .. } => self.inbuf.len() <= head::MAX_HEAD,
            State::Waiting(_) | State::Writing | State::Closed => false,
        };
        let write = !self.out.is_empty() || self.transport.wants_write();
        Interest { read, write }
    }

    /// Reads what the socket has and moves the protocol on.
    pub(super) fn on_readable(&mut self, env: &Env<'_>, scratch: &mut [u8]) {
        #[cfg(feature = "tls")]
        if self.fresh && matches!(self.state, State::Handshake) && !self.first_bytes_are_tls() {
            return;
        }
        self.fresh = false;
        // A few reads per wake-up, so one fast client cannot starve the rest.
        for _ in 0..4 {
            if !self.interest().read {
                break;
            }
            match self.read_some(scratch) {
                Ok(Received::End) => {
                    // The client is gone, or half-closed before a request
                    // was complete: nothing to answer.
                    self.close();
                    return;
                }
                Ok(Received::Some) => {}
                Ok(Received::OverBudget) => {
                    self.over_budget(env);
                    break;
                }
                #[cfg(feature = "tls")]
                Ok(Received::Handshake) => {
                    self.offload_handshake(env);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) => {
                    log::debug!(source:display = self.peer, err:display = e; "connection read failed");
                    self.close();
                    return;
                }
            }
            if matches!(self.state, State::Lingering) {
                continue;
            }
            self.process(env);
        }
        self.flush();
    }

    /// Reads once into `inbuf`.
    fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<Received> {
        if matches!(self.state, State::Lingering) {
            // Raw bytes, thrown away: TLS is over (or never began).
            let n = self.sock.read(scratch)?;
            return Ok(if n == 0 {
                Received::End
            } else {
                Received::Some
            });
        }
        let got = self
            .transport
            .read(&mut self.sock, self.peer, scratch, &mut self.inbuf)?;
        self.after_handshake();
        Ok(got)
    }

    /// The handshake is over: requests may come.
    fn after_handshake(&mut self) {
        if matches!(self.state, State::Handshake) && !self.transport.is_handshaking() {
            self.state = State::Head { started: false };
        }
    }

    /// Sends the TLS session to a handshake thread for the crypto the
    /// records just read call for. The connection reads nothing until it
    /// is back ([`Conn::on_handshake_step`]); its handshake deadline runs
    /// on, so a session lost to a panic costs the connection, no more.
    #[cfg(feature = "tls")]
    fn offload_handshake(&mut self, env: &Env<'_>) {
        let Some(mut tls) = self.transport.take_for_handshake() else {
            return;
        };
        let (shared, conn) = (Arc::clone(env.shared), self.id);
        env.handshakes.execute(move || {
            let processed = super::transport::handshake_step(&mut tls);
            shared.complete(super::inbox::Completion::Handshake {
                conn,
                tls,
                processed,
            });
        });
    }

    /// A handshake thread did its step: the session is back. Sends what
    /// the step produced, and serves a request that came right behind
    /// the handshake.
    #[cfg(feature = "tls")]
    pub(super) fn on_handshake_step(
        &mut self,
        env: &Env<'_>,
        tls: super::transport::Session,
        processed: Result<(), rustls::Error>,
    ) {
        if !self.transport.is_away() {
            return;
        }
        let got = self.transport.resume_handshake(
            tls,
            processed,
            &mut self.sock,
            self.peer,
            &mut self.inbuf,
        );
        self.after_handshake();
        match got {
            Ok(Received::Some) => self.process(env),
            Ok(Received::OverBudget) => self.over_budget(env),
            Ok(_) => return self.close(),
            Err(e) => {
                log::debug!(source:display = self.peer, err:display = e; "TLS handshake step failed");
                return self.close();
            }
        }
        self.flush();
    }

    /// Plain HTTP on a TLS port gets Go's hint and is closed.
    #[cfg(feature = "tls")]
    fn first_bytes_are_tls(&mut self) -> bool {
        use super::transport::FirstByte;
        match self.transport.check_first_byte(&mut self.sock, self.peer) {
            FirstByte::Tls => true,
            FirstByte::NotTls => {
                self.linger();
                false
            }
            FirstByte::NotYet => {
                self.readable = false;
                false
            }
            FirstByte::Failed => {
                self.close();
                false
            }
        }
    }

    /// Moves through as many states as the buffered input allows.
    fn process(&mut self, env: &Env<'_>) {
        loop {
            match &mut self.state {
                State::Head { started } => {
                    if self.inbuf.is_empty() {
                        return;
                    }
                    if !*started {
                        *started = true;
                        self.deadline = Some(Instant::now() + env.limits.header_timeout);
                    }
                    let Some(end) = head::find_end(self.inbuf.unread(), self.scanned) else {
                        self.scanned = self.inbuf.len();
                        if self.inbuf.len() > head::MAX_HEAD {
                            self.refuse(&head::HeadError::TooLarge.to_string(), 431);
                        }
                        return;
                    };
                    self.scanned = 0;
                    let parsed = if end > head::MAX_HEAD {
                        Err(head::HeadError::TooLarge)
                    } else {
                        head::parse(&self.inbuf.unread()[..end])
                    };
                    self.inbuf.consume(end);
                    // The head is parsed: its bytes are given back.
                    self.inbuf.shrink_idle();
                    match parsed {
                        Ok(h) => self.start_request(env, h),
                        Err(e) => {
                            log::debug!(source:display = self.peer, err:display = e; "bad request head");
                            self.refuse(&e.to_string(), e.status());
                            return;
                        }
                    }
                }
                State::Body(_) => {
                    if !self.feed_body(env) {
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// A head was read: gate it, then read or skip its body.
    fn start_request(&mut self, env: &Env<'_>, head: Head) {
        if head.target == "*" {
            // `OPTIONS *`: Go's server answers it itself.
            let pending = Pending {
                head,
                action: Action::Answer(Reply::empty(200)),
            };
            return self.begin_body(env, pending);
        }
        let route = env.ctx.routes.route(&head.method, &head.target);
        let source = self.peer.to_string();
        let mut gate = gate::gate(env.ctx, head.header("Authorization"), &source, &head.target);
        if matches!(gate, Gate::Pass) && gate::over_budget(env.ctx, &route) {
            gate = Gate::Refuse(gate::busy(&source, &head.target));
        }
        let mut pending = Pending {
            head,
            action: Action::Dispatch(route),
        };
        match gate {
            Gate::Pass => self.begin_body(env, pending),
            Gate::Refuse(reply) => {
                pending.action = Action::Answer(reply);
                self.begin_body(env, pending);
            }
            Gate::Check(auth) => {
                if !env.ctx.pool.has_room(Kind::Auth) {
                    let source = self.peer.to_string();
                    let reply =
                        gate::queue_full_reply("credential checks", &source, &pending.head.target);
                    pending.action = Action::Answer(reply);
                    return self.begin_body(env, pending);
                }
                let authorization = pending.head.header("Authorization").map(str::to_owned);
                // A check that panics still answers through `to`'s drop.
                let to = VerdictTo {
                    conn: self.id,
                    shared: Arc::clone(env.shared),
                    sent: false,
                };
                env.ctx.pool.execute_as(Kind::Auth, move || {
                    to.send(auth.check(authorization.as_deref()));
                });
                self.deadline = None;
                self.state = State::Waiting(Some(Box::new(pending)));
            }
        }
    }

    /// The pool's answer on a request's credentials.
    pub(super) fn on_verdict(&mut self, env: &Env<'_>, ok: bool) {
        let State::Waiting(Some(_)) = self.state else {
            return;
        };
        let State::Waiting(Some(mut pending)) = std::mem::replace(&mut self.state, State::Writing)
        else {
            unreachable!("checked above");
        };
        if !ok {
            let reply = gate::unauthorized(&self.peer.to_string(), &pending.head.target);
            pending.action = Action::Answer(reply);
        }
        self.begin_body(env, *pending);
        self.process(env);
        self.flush();
    }

    /// Decides what happens to the body: read and kept (a push), read and
    /// thrown away (small, unwanted), or left unread with the connection
    /// closed after the answer.
    fn begin_body(&mut self, env: &Env<'_>, pending: Pending) {
        let wanted = matches!(&pending.action, Action::Dispatch(route) if route.wants_body());
        let framing = pending.head.framing;
        let expect = pending.head.expect_continue;
        let max = env.ctx.max_body_bytes;
        let reader = match framing {
            BodyFraming::None => return self.finish(env, pending, no_body(env)),
            BodyFraming::Length(n) => BodyReader::Length(n),
            BodyFraming::Chunked => BodyReader::Chunked(chunked::Decoder::new()),
        };
        let (keep, limit) = match framing {
            BodyFraming::Length(n) if wanted && n > max => {
                let reply = self.too_large(env, &pending);
                self.close_after = true;
                return self.answer(env, &pending.head, reply);
            }
            _ if wanted => (true, max),
            BodyFraming::Length(n) if n <= DRAIN_LIMIT && !expect => (false, DRAIN_LIMIT),
            BodyFraming::Chunked if !expect => (false, DRAIN_LIMIT),
            _ => {
                // Not worth reading: answer and close.
                self.close_after = true;
                return self.finish(env, pending, no_body(env));
            }
        };
        if keep && expect {
            self.out
                .push_back(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec().into());
        }
        // Grown as bytes arrive: a declared length costs nothing until sent.
        let capacity = match framing {
            BodyFraming::Length(n) if keep => n.min(64 * 1024) as usize,
            _ => 0,
        };
        let mut charge = env.ctx.budget.charge(Class::Body);
        if !charge.grow_to(capacity) {
            let reply = gate::busy(&self.peer.to_string(), &pending.head.target);
            self.close_after = true;
            return self.answer(env, &pending.head, reply);
        }
        self.deadline = Some(Instant::now() + env.limits.read_timeout);
        self.state = State::Body(Box::new(BodyState {
            pending,
            reader,
            keep,
            data: Vec::with_capacity(capacity),
            charge,
            busy: false,
            received: 0,
            limit,
        }));
    }

    /// Feeds buffered input to the body. True when the state moved on.
    fn feed_body(&mut self, env: &Env<'_>) -> bool {
        let State::Body(body) = &mut self.state else {
            return false;
        };
        let (keep, limit) = (body.keep, body.limit);
        let (data, received) = (&mut body.data, &mut body.received);
        let (charge, busy) = (&mut body.charge, &mut body.busy);
        let mut sink = |d: &[u8]| {
            *received += d.len() as u64;
            if keep && *received <= limit && !*busy {
                data.reserve(d.len());
                if charge.grow_to(data.capacity()) {
                    data.extend_from_slice(d);
                } else {
                    *busy = true;
                }
            }
        };
        let used = match &mut body.reader {
            BodyReader::Length(left) => {
                let take = (self.inbuf.len() as u64).min(*left) as usize;
                sink(&self.inbuf.unread()[..take]);
                *left -= take as u64;
                Ok(take)
            }
            BodyReader::Chunked(dec) => dec.feed(self.inbuf.unread(), &mut sink),
        };
        let done = match &body.reader {
            BodyReader::Length(left) => *left == 0,
            BodyReader::Chunked(dec) => dec.is_done(),
        };
        let over = body.received > body.limit;
        if body.busy {
            let State::Body(body) = std::mem::replace(&mut self.state, State::Writing) else {
                unreachable!("in the body state");
            };
            self.close_after = true;
            let reply = gate::busy(&self.peer.to_string(), &body.pending.head.target);
            self.answer(env, &body.pending.head, reply);
            return true;
        }
        match used {
            Ok(n) => self.inbuf.consume(n),
            Err(e) => {
                self.body_error(env, e);
                return true;
            }
        }
        if over {
            let State::Body(body) = std::mem::replace(&mut self.state, State::Writing) else {
                unreachable!("in the body state");
            };
            self.close_after = true;
            if body.keep {
                let reply = self.too_large(env, &body.pending);
                self.answer(env, &body.pending.head, reply);
            } else {
                // An unwanted body too large to drain: answer, then close.
                self.finish(env, body.pending, no_body(env));
            }
            return true;
        }
        if !done {
            return false;
        }
        let State::Body(body) = std::mem::replace(&mut self.state, State::Writing) else {
            unreachable!("in the body state");
        };
        let BodyState {
            pending,
            data,
            charge,
            ..
        } = *body;
        self.finish(env, pending, Body { data, charge });
        true
    }

    fn body_error(&mut self, env: &Env<'_>, e: ChunkError) {
        log::debug!(source:display = self.peer, err:display = e; "bad request body");
        let State::Body(body) = std::mem::replace(&mut self.state, State::Writing) else {
            return;
        };
        self.close_after = true;
        let reply = response::refusal(400, &e.to_string());
        self.answer(env, &body.pending.head, reply);
    }

    /// The 413 for a body the handler wanted, counted under its route's
    /// label: it goes out before the handler runs.
    fn too_large(&self, env: &Env<'_>, pending: &Pending) -> Reply {
        let head = &pending.head;
        let early = match &pending.action {
            Action::Dispatch(route) => route.counted_as(&head.method),
            Action::Answer(_) => None,
        }
        .map(|handler| (head.method.as_str(), handler));
        gate::too_large(env.ctx, early, &self.peer.to_string(), &head.target)
    }

    /// The body is in (or skipped): run the handler or send the answer.
    fn finish(&mut self, env: &Env<'_>, pending: Pending, body: Body) {
        let Pending { head, action } = pending;
        let route = match action {
            Action::Answer(reply) => return self.answer(env, &head, reply),
            Action::Dispatch(route) => route,
        };
        let how = self.response_mode(env, &head);
        let count = route.counted_as(&head.method).map(|handler| Count {
            telemetry: env.ctx.telemetry.clone(),
            handler,
            method: crate::telemetry::method_label(&head.method),
        });
        // A certificate that was only asked for, not verified, says
        // nothing of who the client is.
        let client_names = match env.ctx.access {
            Some(_) if self.clients_verified => self.transport.client_names(),
            _ => Vec::new(),
        };
        let req = Request {
            method: head.method,
            url: head.target,
            headers: head.headers,
            peer: self.peer,
            client_names,
            responder: ConnResponder {
                conn: self.id,
                shared: Arc::clone(env.shared),
                how,
                count,
                answered: false,
            },
        };
        self.deadline = None;
        self.state = State::Waiting(None);
        handler::dispatch(env.ctx, route, req, body);
    }

    fn response_mode(&mut self, env: &Env<'_>, head: &Head) -> response::ResponseMode {
        if !head.keep_alive || head.close_after || env.stopping {
            self.close_after = true;
        }
        response::ResponseMode {
            head_only: head.method == "HEAD",
            keep_alive: !self.close_after,
            http10: head.minor == 0,
        }
    }

    /// Queues an answer made on the I/O loop itself.
    fn answer(&mut self, env: &Env<'_>, head: &Head, reply: Reply) {
        let how = self.response_mode(env, head);
        let (head, body) = env.shared.encode(reply, how);
        self.queue(head, body);
    }

    /// Answers a request whose head could not be read, and closes.
    fn refuse(&mut self, reason: &str, status: u16) {
        self.refuse_with(response::refusal(status, reason));
    }

    /// Sends `reply` for a request whose head could not be read, and closes.
    fn refuse_with(&mut self, reply: Reply) {
        let how = response::ResponseMode {
            head_only: false,
            keep_alive: false,
            http10: false,
        };
        // Go's own refusals carry no handler headers.
        let (head, body) = response::encode(reply, how, &[]);
        self.close_after = true;
        self.inbuf.clear();
        self.queue(head, body);
    }

    fn queue(&mut self, head: Vec<u8>, body: Payload) {
        self.out.push_back(head.into());
        if !body.is_empty() {
            self.out.push_back(body);
        }
        self.state = State::Writing;
        self.deadline = Some(Instant::now() + self.write_timeout);
    }

    /// A handler's answer arrived from another thread.
    pub(super) fn on_reply(
        &mut self,
        env: &Env<'_>,
        head: Vec<u8>,
        body: Payload,
        keep_alive: bool,
    ) {
        if !matches!(self.state, State::Waiting(None)) {
            return;
        }
        if !body.is_empty() && !body.is_charged() {
            // Counted while it waits for the client, so slow readers make
            // new requests wait instead of growing memory without bound.
            // A shared body is charged once, by whoever built it.
            let mut charge = env.ctx.budget.charge(Class::Answer);
            charge.force_to(head.len() + body.len());
            self.out_charge = Some(charge);
        }
        if !keep_alive {
            self.close_after = true;
        }
        self.queue(head, body);
        self.flush();
    }

    /// Writes what can be written; moves on when everything is out.
    pub(super) fn flush(&mut self) {
        let mut progress = false;
        loop {
            let front = self.out.front().map(|f| &f[self.out_pos..]);
            match self.transport.write(&mut self.sock, front) {
                Ok(None) => break,
                Ok(Some(n)) => {
                    progress = true;
                    self.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!(source:display = self.peer, err:display = e; "connection write failed");
                    return self.close();
                }
            }
        }
        if progress && matches!(self.state, State::Writing) {
            // A client that reads slowly but steadily keeps its connection.
            self.deadline = Some(Instant::now() + self.write_timeout);
        }
        if self.out.is_empty() && !self.transport.wants_write() {
            self.written();
        }
    }

    fn advance(&mut self, n: usize) {
        self.out_pos += n;
        if let Some(front) = self.out.front()
            && self.out_pos >= front.len()
        {
            self.out.pop_front();
            self.out_pos = 0;
        }
    }

    /// Everything queued is written.
    fn written(&mut self) {
        self.out_charge = None;
        if !matches!(self.state, State::Writing) {
            return;
        }
        if self.close_after {
            return self.linger();
        }
        // An idle connection keeps no large buffer from its last request.
        self.inbuf.shrink_idle();
        self.state = State::Head { started: false };
        self.deadline = None;
    }

    /// Called after an answer went out on a kept connection: serve any
    /// pipelined request, or wait idle.
    pub(super) fn resume(&mut self, env: &Env<'_>) {
        if let State::Head { started: false } = self.state
            && self.deadline.is_none()
        {
            self.deadline = Some(Instant::now() + env.limits.idle_timeout);
            self.process(env);
            self.flush();
        }
    }

    /// Shuts our side and discards input for a moment before closing.
    fn linger(&mut self) {
        self.transport.close_notify(&mut self.sock);
        let _ = self.sock.shutdown(Shutdown::Write);
        self.inbuf.free();
        self.state = State::Lingering;
        self.deadline = Some(Instant::now() + LINGER);
    }

    pub(super) fn close(&mut self) {
        self.state = State::Closed;
        self.out.clear();
        self.out_charge = None;
        self.inbuf.free();
    }

    /// The peer reset the connection, or it failed (EPOLLHUP, EPOLLERR on
    /// Linux). A connection that reads nothing now (waiting for its
    /// answer) would otherwise only learn of it once the answer is
    /// written, and its answer can no longer reach anyone. It is closed;
    /// a late answer finds no connection. Connections still reading or
    /// writing learn of it from the socket.
    pub(super) fn on_hangup(&mut self) {
        if !self.interest().read && !self.interest().write {
            log::debug!(source:display = self.peer; "connection reset while its request was handled");
            self.close();
        }
    }

    /// The budget cannot cover more buffered input. A head gets 503 with
    /// Retry-After and the connection is closed: its bytes are given back
    /// at once, where a paused connection would keep them (and its
    /// descriptor) until the header timeout, and with every head paused
    /// none could finish to free anything. A legitimate head is far
    /// smaller than what the budget leaves; one that keeps growing while
    /// the budget is spent is the one to shed. A body gets the same 503
    /// as when its own growth is refused.
    fn over_budget(&mut self, env: &Env<'_>) {
        match &mut self.state {
            State::Head { .. } => {
                let reply = gate::busy(&self.peer.to_string(), "(request head)");
                self.refuse_with(reply);
            }
            State::Body(body) => {
                body.busy = true;
                self.feed_body(env);
            }
            _ => self.close(),
        }
    }

    /// The deadline passed: a slow head or body gets 408, anything else
    /// is closed.
    pub(super) fn on_timeout(&mut self) {
        match self.state {
            State::Head { started: true } | State::Body(_) => {
                log::debug!(source:display = self.peer; "request timed out");
                self.refuse("the request did not arrive in time", 408);
                self.flush();
            }
            _ => self.close(),
        }
    }
}
