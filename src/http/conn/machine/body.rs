//! A request's body: read and kept (a push), read and thrown away (small,
//! unwanted), or left unread with the connection closed after the answer.
//! Kept bytes are charged to the budget before the buffer grows; every
//! body has a limit and the read timeout.

use std::time::Instant;

use super::{Action, DRAIN_LIMIT, Machine, Pending, State};
use crate::http::budget::{Charge, Class};
use crate::http::chunked::{self, ChunkError};
use crate::http::conn::Env;
use crate::http::gate;
use crate::http::handler::Body;
use crate::http::head::BodyFraming;
use crate::http::response::{self, Reply};

/// How the body is delimited, and what is left of it.
enum BodyReader {
    Length(u64),
    Chunked(chunked::Decoder),
}

pub(super) struct BodyState {
    pending: Pending,
    reader: BodyReader,
    /// Keep the bytes (a push) or throw them away.
    keep: bool,
    data: Vec<u8>,
    /// The memory budget's charge for `data`.
    charge: Charge,
    /// The budget could not cover more of the body.
    pub(super) busy: bool,
    received: u64,
    /// Most bytes accepted before giving up.
    limit: u64,
}

fn no_body(env: &Env<'_>) -> Body {
    Body {
        data: Vec::new(),
        charge: env.ctx.budget.charge(Class::Body),
    }
}

impl Machine {
    /// Decides what happens to the body: read and kept (a push), read and
    /// thrown away (small, unwanted), or left unread with the connection
    /// closed after the answer.
    pub(super) fn begin_body(&mut self, env: &Env<'_>, pending: Pending) {
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
    pub(super) fn feed_body(&mut self, env: &Env<'_>) -> bool {
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
            let body = self.take_body();
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
            let body = self.take_body();
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
        let BodyState {
            pending,
            data,
            charge,
            ..
        } = *self.take_body();
        self.finish(env, pending, Body { data, charge });
        true
    }

    /// Leaves the body state for `Writing` (what comes next sets the
    /// state it really goes to).
    fn take_body(&mut self) -> Box<BodyState> {
        let State::Body(body) = std::mem::replace(&mut self.state, State::Writing) else {
            unreachable!("in the body state");
        };
        body
    }

    fn body_error(&mut self, env: &Env<'_>, e: ChunkError) {
        log::debug!(source:display = self.peer, err:display = e; "bad request body");
        let body = self.take_body();
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
}
