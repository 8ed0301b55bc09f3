//! A connection's protocol, without its socket: bytes in, actions out.
//!
//! The machine holds what HTTP needs (the state, the unread input, the
//! answer being written, the deadline) and nothing that touches the
//! network, so the whole protocol can be driven from a unit test. The
//! driver (`io.rs`) reads into [`Machine::input`] and calls
//! [`Machine::process`]; writes [`Machine::output`] and reports
//! [`Machine::wrote`] and [`Machine::flushed`]; passes on the events of
//! the world around (an answer, a verdict, a deadline, the peer's end).
//! What the machine wants done beyond writing comes back as a [`Task`]
//! (run a handler, check credentials) or as [`AfterWrite::ShutWrite`].
//!
//! Buffered input is charged to the memory budget before it grows; a
//! head the budget cannot cover is answered 503 and the connection
//! closed (see [`Machine::over_budget`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Env;
use crate::access::auth::Auth;
use crate::contract::Payload;
use crate::http::budget::{Charge, Class};
use crate::http::gate::{self, Gate};
use crate::http::handler::Body;
use crate::http::head::{self, Head};
use crate::http::inbuf::InBuf;
use crate::http::limits::ConnLimits;
use crate::http::response::{self, Reply};
use crate::http::router::Route;
use crate::pool::Kind;

mod body;
#[cfg(test)]
mod tests;

/// A body the handler does not want (a GET with a body, a refused push) is
/// read and thrown away up to this many bytes to keep the connection; past
/// it the answer says `Connection: close`. Go's server uses the same bound.
pub(super) const DRAIN_LIMIT: u64 = 256 * 1024;

/// After the last answer on a closing connection, how long input is still
/// read and discarded, so the kernel does not reset the connection (and
/// lose the answer) while the client is still sending.
const LINGER: Duration = Duration::from_secs(1);

/// Work the machine hands to the world around it; the driver does it
/// before anything else happens on the connection.
pub(super) enum Task {
    /// Run the handler: the request is complete.
    Handle(Handoff),
    /// Check these credentials on the pool; the verdict comes back
    /// through [`Machine::on_verdict`].
    Check {
        auth: Arc<Auth>,
        authorization: Option<String>,
    },
}

/// A complete request, for its handler.
pub(super) struct Handoff {
    pub route: Route,
    pub head: Head,
    /// How the answer is to be written (HEAD, keep-alive, HTTP/1.0).
    pub how: response::ResponseMode,
    pub body: Body,
}

/// What the driver does once everything queued is written.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterWrite {
    Nothing,
    /// The last answer of a closing connection is out: shut our side
    /// (TLS: close_notify first). The machine lingers.
    ShutWrite,
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

enum State {
    Handshake,
    /// Waiting for, or reading, a request head. `started`: bytes of it
    /// have arrived (the header timeout runs, not the idle one).
    Head {
        started: bool,
    },
    Body(Box<body::BodyState>),
    /// With a handler, or (`Some`) with the pool checking credentials.
    Waiting(Option<Box<Pending>>),
    Writing,
    /// The answer is out and our side is shut; discarding input.
    Lingering,
    Closed,
}

pub(super) struct Machine {
    /// For logs and the gate's refusals.
    peer: SocketAddr,
    state: State,
    /// Bytes read and not yet consumed, charged to the budget.
    inbuf: InBuf,
    /// How far the unread input was searched for the end of a head.
    scanned: usize,
    out: VecDeque<Payload>,
    out_pos: usize,
    /// Close once `out` is written.
    close_after: bool,
    deadline: Option<Instant>,
    /// The budget's charge for an answer waiting in `out`.
    out_charge: Option<Charge>,
    /// How long an answer may wait for the client to read some of it.
    write_timeout: Duration,
    /// Work for the driver (at most one: the connection then waits).
    task: Option<Task>,
}

impl Machine {
    /// A connection waiting for its first head. `charge` pays for the
    /// input buffer (see [`Class::Head`]).
    pub(super) fn new(peer: SocketAddr, limits: &ConnLimits, charge: Charge) -> Machine {
        Machine {
            peer,
            state: State::Head { started: false },
            inbuf: InBuf::new(charge),
            scanned: 0,
            out: VecDeque::new(),
            out_pos: 0,
            close_after: false,
            // A new connection gets the header timeout for its first head.
            deadline: Some(Instant::now() + limits.header_timeout),
            out_charge: None,
            write_timeout: limits.write_timeout,
            task: None,
        }
    }

    /// A connection that first does a TLS handshake, within `limit`.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(super) fn handshaking(mut self, limit: Duration) -> Machine {
        self.state = State::Handshake;
        self.deadline = Some(Instant::now() + limit);
        self
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub(super) fn is_handshake(&self) -> bool {
        matches!(self.state, State::Handshake)
    }

    pub(super) fn is_lingering(&self) -> bool {
        matches!(self.state, State::Lingering)
    }

    /// Whether an answer is still owed or being written (shutdown waits
    /// for these).
    pub(super) fn is_busy(&self) -> bool {
        matches!(self.state, State::Waiting(_) | State::Writing) || !self.out.is_empty()
    }

    /// Whether input can move the state on (in `Handshake`, the driver
    /// knows better: it depends on where the TLS session is).
    pub(super) fn wants_read(&self) -> bool {
        match self.state {
            State::Handshake | State::Body(_) | State::Lingering => true,
            State::Head { .. } => self.inbuf.len() <= head::MAX_HEAD,
            State::Waiting(_) | State::Writing | State::Closed => false,
        }
    }

    /// Where the driver puts the plaintext it reads (growth is charged;
    /// a refused growth is [`Machine::over_budget`]).
    pub(super) fn input(&mut self) -> &mut InBuf {
        &mut self.inbuf
    }

    /// The work the last event left for the driver.
    pub(super) fn take_task(&mut self) -> Option<Task> {
        self.task.take()
    }

    /// The handshake is over: requests may come.
    pub(super) fn handshake_done(&mut self) {
        if self.is_handshake() {
            self.state = State::Head { started: false };
        }
    }

    /// Moves through as many states as the buffered input allows.
    pub(super) fn process(&mut self, env: &Env<'_>) {
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
                    if !self.read_head(env) {
                        return;
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

    /// Parses a head if all of it is buffered. True when the state moved
    /// on (to a body, an answer, a handler).
    fn read_head(&mut self, env: &Env<'_>) -> bool {
        let Some(end) = head::find_end(self.inbuf.unread(), self.scanned) else {
            self.scanned = self.inbuf.len();
            if self.inbuf.len() > head::MAX_HEAD {
                self.refuse(&head::HeadError::TooLarge.to_string(), 431);
            }
            return false;
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
            Ok(h) => {
                self.start_request(env, h);
                true
            }
            Err(e) => {
                log::debug!(source:display = self.peer, err:display = e; "bad request head");
                self.refuse(&e.to_string(), e.status());
                false
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
                    let reply =
                        gate::queue_full_reply("credential checks", &source, &pending.head.target);
                    pending.action = Action::Answer(reply);
                    return self.begin_body(env, pending);
                }
                let authorization = pending.head.header("Authorization").map(str::to_owned);
                self.task = Some(Task::Check {
                    auth,
                    authorization,
                });
                self.deadline = None;
                self.state = State::Waiting(Some(Box::new(pending)));
            }
        }
    }

    /// The pool's answer on a request's credentials. False when no
    /// request was waiting for one.
    pub(super) fn on_verdict(&mut self, env: &Env<'_>, ok: bool) -> bool {
        let State::Waiting(Some(_)) = self.state else {
            return false;
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
        true
    }

    /// The body is in (or skipped): run the handler or send the answer.
    fn finish(&mut self, env: &Env<'_>, pending: Pending, body: Body) {
        let Pending { head, action } = pending;
        let route = match action {
            Action::Answer(reply) => return self.answer(env, &head, reply),
            Action::Dispatch(route) => route,
        };
        let how = self.response_mode(env, &head);
        self.deadline = None;
        self.state = State::Waiting(None);
        self.task = Some(Task::Handle(Handoff {
            route,
            head,
            how,
            body,
        }));
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

    /// A handler's answer arrived from another thread. False when no
    /// request was waiting for one (the answer is dropped).
    pub(super) fn on_reply(
        &mut self,
        env: &Env<'_>,
        head: Vec<u8>,
        body: Payload,
        keep_alive: bool,
    ) -> bool {
        if !matches!(self.state, State::Waiting(None)) {
            return false;
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
        true
    }

    /// The bytes to write next, if any.
    pub(super) fn output(&self) -> Option<&[u8]> {
        self.out.front().map(|f| &f[self.out_pos..])
    }

    /// `n` bytes of [`Machine::output`] were written.
    pub(super) fn wrote(&mut self, n: usize) {
        self.out_pos += n;
        if let Some(front) = self.out.front()
            && self.out_pos >= front.len()
        {
            self.out.pop_front();
            self.out_pos = 0;
        }
    }

    /// The driver wrote what the socket took: `progress` if anything,
    /// `transport_idle` when the transport holds nothing unsent either.
    pub(super) fn flushed(&mut self, progress: bool, transport_idle: bool) -> AfterWrite {
        if progress && matches!(self.state, State::Writing) {
            // A client that reads slowly but steadily keeps its connection.
            self.deadline = Some(Instant::now() + self.write_timeout);
        }
        if self.out.is_empty() && transport_idle {
            return self.written();
        }
        AfterWrite::Nothing
    }

    /// Everything queued is written.
    fn written(&mut self) -> AfterWrite {
        self.out_charge = None;
        if !matches!(self.state, State::Writing) {
            return AfterWrite::Nothing;
        }
        if self.close_after {
            self.linger();
            return AfterWrite::ShutWrite;
        }
        // An idle connection keeps no large buffer from its last request.
        self.inbuf.shrink_idle();
        self.state = State::Head { started: false };
        self.deadline = None;
        AfterWrite::Nothing
    }

    /// Called after an answer went out on a kept connection: serve any
    /// pipelined request, or wait idle. True when it did either.
    pub(super) fn resume(&mut self, env: &Env<'_>) -> bool {
        if let State::Head { started: false } = self.state
            && self.deadline.is_none()
        {
            self.deadline = Some(Instant::now() + env.limits.idle_timeout);
            self.process(env);
            return true;
        }
        false
    }

    /// Discards input for a moment before closing; the driver has shut
    /// (or shuts) our side.
    pub(super) fn linger(&mut self) {
        self.inbuf.free();
        self.state = State::Lingering;
        self.deadline = Some(Instant::now() + LINGER);
    }

    /// The peer is gone, the socket failed, or the connection is done.
    pub(super) fn close(&mut self) {
        self.state = State::Closed;
        self.out.clear();
        self.out_charge = None;
        self.inbuf.free();
    }

    /// The budget cannot cover more buffered input. A head gets 503 with
    /// Retry-After and the connection is closed: its bytes are given back
    /// at once, where a paused connection would keep them (and its
    /// descriptor) until the header timeout, and with every head paused
    /// none could finish to free anything. A legitimate head is far
    /// smaller than what the budget leaves; one that keeps growing while
    /// the budget is spent is the one to shed. A body gets the same 503
    /// as when its own growth is refused.
    pub(super) fn over_budget(&mut self, env: &Env<'_>) {
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

    /// The deadline passed: a slow head or body gets 408 (true: an
    /// answer is queued), anything else is closed.
    pub(super) fn on_timeout(&mut self) -> bool {
        match self.state {
            State::Head { started: true } | State::Body(_) => {
                log::debug!(source:display = self.peer; "request timed out");
                self.refuse("the request did not arrive in time", 408);
                true
            }
            _ => {
                self.close();
                false
            }
        }
    }
}
