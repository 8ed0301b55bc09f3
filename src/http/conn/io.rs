//! The driver of a connection: the socket, the TLS session, and the
//! [`Machine`] they feed.
//!
//! Everything here is I/O or hand-over: reading into the machine's input
//! (a few reads per wake-up), writing its output, shutting our side when
//! it lingers, moving a TLS handshake step to a handshake thread, and
//! doing the machine's [`Task`]s (building the [`Request`] for a handler,
//! sending credentials to the pool). The protocol decisions are all the
//! machine's, so they are tested without a socket.

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::machine::{AfterWrite, Handoff, Machine, Task};
use super::{Env, Interest};
use crate::http::budget::Charge;
use crate::http::handler;
use crate::http::limits::ConnLimits;
use crate::http::request::{ConnResponder, Count, Request, VerdictTo};
use crate::http::transport::{Received, Transport};
use crate::pool::Kind;
use mio::net::TcpStream;

/// The most one connection writes in one round of the server. A socket
/// takes as much as its send buffer holds, which Linux grows to megabytes
/// (and on loopback the reader's window besides): 300 clients that asked
/// for a 10 MB scrape and never read took seconds of kernel copying in
/// one round, and a push arriving meanwhile waited 1.3 to 2.7 s for it.
/// With a share, the loop goes round, and serves everyone else, between
/// every 64 KiB of any one answer: the same push took at most 0.36 s.
const WRITE_SHARE: usize = 64 * 1024;

pub(in crate::http) struct Conn {
    pub sock: TcpStream,
    pub peer: SocketAddr,
    pub id: u64,
    transport: Transport,
    machine: Machine,
    /// The socket may hold input not read yet: the poll reported it
    /// (edge-triggered, once), and no read has said `WouldBlock` since.
    pub readable: bool,
    /// The socket may take more of our output: the last flush stopped at
    /// its share of a round ([`WRITE_SHARE`]), not at `WouldBlock`.
    pub writable: bool,
    /// Queued for the server's next round (see [`Conn::readable`] and
    /// [`Conn::writable`]).
    pub queued: bool,
    /// Nothing was read yet (a TLS port checks the first byte).
    fresh: bool,
    /// The TLS configuration verifies client certificates against client
    /// CAs: only then are a certificate's names an identity (write scopes).
    pub(in crate::http) clients_verified: bool,
    /// The budget's charge for what a TLS session's buffers may hold
    /// ([`crate::access::tls::SESSION_HOLDS`]), for the connection's life.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    session_charge: Option<Charge>,
}

impl Conn {
    /// `charge` pays for the input buffer (see [`Class::Head`]).
    ///
    /// [`Class::Head`]: crate::http::budget::Class::Head
    pub(in crate::http) fn plain(
        sock: TcpStream,
        peer: SocketAddr,
        id: u64,
        limits: &ConnLimits,
        charge: Charge,
    ) -> Conn {
        let machine = Machine::new(peer, limits, charge);
        Conn::new(sock, peer, id, Transport::Plain, machine)
    }

    #[cfg(feature = "tls")]
    pub(in crate::http) fn tls(
        sock: TcpStream,
        peer: SocketAddr,
        id: u64,
        tls: rustls::ServerConnection,
        limits: &ConnLimits,
        (charge, held): (Charge, Charge),
    ) -> Conn {
        // As Go: the handshake is bounded by the header timeout too.
        let limit = crate::access::tls::HANDSHAKE_TIMEOUT.min(limits.header_timeout);
        let machine = Machine::new(peer, limits, charge).handshaking(limit);
        let transport = Transport::Tls(Box::new(tls));
        let mut c = Conn::new(sock, peer, id, transport, machine);
        c.session_charge = Some(held);
        c
    }

    fn new(
        sock: TcpStream,
        peer: SocketAddr,
        id: u64,
        transport: Transport,
        machine: Machine,
    ) -> Conn {
        Conn {
            sock,
            peer,
            id,
            transport,
            machine,
            readable: false,
            writable: false,
            queued: false,
            fresh: true,
            session_charge: None,
            clients_verified: false,
        }
    }

    /// When the connection's current state runs out of time.
    pub(in crate::http) fn deadline(&self) -> Option<Instant> {
        self.machine.deadline()
    }

    pub(in crate::http) fn is_closed(&self) -> bool {
        self.machine.is_closed()
    }

    /// Whether an answer is still owed or being written (shutdown waits
    /// for these).
    pub(in crate::http) fn is_busy(&self) -> bool {
        self.machine.is_busy()
    }

    /// What the connection can make progress on in the current state.
    pub(in crate::http) fn interest(&self) -> Interest {
        let read = if self.machine.is_handshake() {
            // Nothing to read into while the session is on a handshake thread.
            !self.transport.is_away()
        } else {
            self.machine.wants_read()
        };
        let write = self.machine.output().is_some() || self.transport.wants_write();
        Interest { read, write }
    }

    /// Reads what the socket has and moves the protocol on.
    pub(in crate::http) fn on_readable(&mut self, env: &Env<'_>, scratch: &mut [u8]) {
        #[cfg(feature = "tls")]
        if self.fresh && self.machine.is_handshake() && !self.first_bytes_are_tls() {
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
                    self.machine.close();
                    return;
                }
                Ok(Received::Some) => {}
                Ok(Received::OverBudget) => {
                    self.machine.over_budget(env);
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
                    self.machine.close();
                    return;
                }
            }
            if self.machine.is_lingering() {
                continue;
            }
            self.process(env);
        }
        self.flush();
    }

    /// Reads once into the machine's input.
    fn read_some(&mut self, scratch: &mut [u8]) -> io::Result<Received> {
        if self.machine.is_lingering() {
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
            .read(&mut self.sock, self.peer, scratch, self.machine.input())?;
        self.after_handshake();
        Ok(got)
    }

    /// The handshake is over: requests may come.
    fn after_handshake(&mut self) {
        if !self.transport.is_handshaking() {
            self.machine.handshake_done();
        }
    }

    /// Moves the protocol on with the input buffered, and does the task
    /// that leaves.
    fn process(&mut self, env: &Env<'_>) {
        self.machine.process(env);
        self.run_task(env);
    }

    /// Does what the machine handed over: a request to its handler, or
    /// credentials to the pool.
    fn run_task(&mut self, env: &Env<'_>) {
        match self.machine.take_task() {
            None => {}
            Some(Task::Handle(handoff)) => self.dispatch(env, handoff),
            Some(Task::Check {
                auth,
                authorization,
            }) => {
                // A check that panics still answers through `to`'s drop.
                let to = VerdictTo {
                    conn: self.id,
                    shared: Arc::clone(env.shared),
                    sent: false,
                };
                env.ctx.pool.execute_as(Kind::Auth, move || {
                    to.send(auth.check(authorization.as_deref()));
                });
            }
        }
    }

    /// Gives a complete request to its handler, with the way back here.
    fn dispatch(&self, env: &Env<'_>, h: Handoff) {
        let Handoff {
            route,
            head,
            how,
            body,
        } = h;
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
        handler::dispatch(env.ctx, route, req, body);
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
            let processed = crate::http::transport::handshake_step(&mut tls);
            shared.complete(crate::http::inbox::Completion::Handshake {
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
    pub(in crate::http) fn on_handshake_step(
        &mut self,
        env: &Env<'_>,
        tls: crate::http::transport::Session,
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
            self.machine.input(),
        );
        self.after_handshake();
        match got {
            Ok(Received::Some) => self.process(env),
            Ok(Received::OverBudget) => self.machine.over_budget(env),
            Ok(_) => return self.machine.close(),
            Err(e) => {
                log::debug!(source:display = self.peer, err:display = e; "TLS handshake step failed");
                return self.machine.close();
            }
        }
        self.flush();
    }

    /// Plain HTTP on a TLS port gets Go's hint and is closed.
    #[cfg(feature = "tls")]
    fn first_bytes_are_tls(&mut self) -> bool {
        use crate::http::transport::FirstByte;
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
                self.machine.close();
                false
            }
        }
    }

    /// The pool's answer on a request's credentials.
    pub(in crate::http) fn on_verdict(&mut self, env: &Env<'_>, ok: bool) {
        if self.machine.on_verdict(env, ok) {
            self.run_task(env);
            self.flush();
        }
    }

    /// A handler's answer arrived from another thread.
    pub(in crate::http) fn on_reply(
        &mut self,
        env: &Env<'_>,
        head: Vec<u8>,
        body: crate::contract::Payload,
        keep_alive: bool,
    ) {
        if self.machine.on_reply(env, head, body, keep_alive) {
            self.flush();
        }
    }

    /// Writes what the socket takes, up to [`WRITE_SHARE`] bytes; the
    /// server comes back for the rest in its next round
    /// ([`Conn::writable`]).
    pub(in crate::http) fn flush(&mut self) {
        let mut progress = false;
        let mut share = WRITE_SHARE;
        self.writable = false;
        loop {
            if share == 0 {
                self.writable = self.machine.output().is_some() || self.transport.wants_write();
                break;
            }
            let out = self.machine.output().map(|o| &o[..o.len().min(share)]);
            match self.transport.write(&mut self.sock, out) {
                Ok(None) => break,
                Ok(Some(n)) => {
                    progress = true;
                    share -= n;
                    self.machine.wrote(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!(source:display = self.peer, err:display = e; "connection write failed");
                    return self.machine.close();
                }
            }
        }
        let idle = !self.transport.wants_write();
        if self.machine.flushed(progress, idle) == AfterWrite::ShutWrite {
            self.shut_write();
        }
    }

    /// Called after an answer went out on a kept connection: serve any
    /// pipelined request, or wait idle.
    pub(in crate::http) fn resume(&mut self, env: &Env<'_>) {
        if self.machine.resume(env) {
            self.run_task(env);
            self.flush();
        }
    }

    /// Shuts our side and discards input for a moment before closing.
    #[cfg(feature = "tls")]
    fn linger(&mut self) {
        self.shut_write();
        self.machine.linger();
    }

    /// Shuts our side of the connection (TLS: close_notify first).
    fn shut_write(&mut self) {
        self.transport.close_notify(&mut self.sock);
        let _ = self.sock.shutdown(Shutdown::Write);
    }

    /// The peer reset the connection, or it failed (EPOLLHUP, EPOLLERR on
    /// Linux). A connection that reads nothing now (waiting for its
    /// answer) would otherwise only learn of it once the answer is
    /// written, and its answer can no longer reach anyone. It is closed;
    /// a late answer finds no connection. Connections still reading or
    /// writing learn of it from the socket.
    pub(in crate::http) fn on_hangup(&mut self) {
        if !self.interest().read && !self.interest().write {
            log::debug!(source:display = self.peer; "connection reset while its request was handled");
            self.machine.close();
        }
    }

    /// The deadline passed: a slow head or body gets 408, anything else
    /// is closed.
    pub(in crate::http) fn on_timeout(&mut self) {
        if self.machine.on_timeout() {
            self.flush();
        }
    }
}
