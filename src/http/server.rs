//! The I/O loop: one thread, one `mio` poll, every socket.
//!
//! It accepts (shedding connections past the cap, surviving descriptor
//! exhaustion), reads and writes connections as they become ready, takes
//! answers from other threads through [`Shared`], and once every
//! [`SWEEP`] closes connections whose deadline passed. Connection ids
//! carry a generation, so an answer for a connection that closed meanwhile
//! is dropped instead of reaching a new one in the same slot.
//!
//! mio's readiness is edge-triggered: an event says that something
//! changed, once. Each socket is registered once, for reading and
//! writing, and never re-registered; what an event reported stays noted
//! until the socket says `WouldBlock` ([`Conn::readable`],
//! [`ListenerSlot::ready`]). A connection or listener left with input it
//! did not take (four reads per round, 64 accepts, a connection that
//! reads nothing while its request is handled, a listener resting after
//! descriptor exhaustion) is driven again by the loop itself when it can
//! take more, as a level-triggered poll would report it again.

use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::budget::Class;
use super::conn::{Conn, Env};
use super::context::Context;
use super::inbox::{Completion, Shared};
use super::limits::ConnLimits;
use crate::sys;
use mio::net::{TcpListener as MioListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// How long the front waits for answers still being written at exit.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often deadlines are checked and paused listeners resumed.
const SWEEP: Duration = Duration::from_millis(100);
/// Quiet time after which freed memory is handed back to the system.
const TRIM_AFTER: Duration = Duration::from_secs(1);
/// A listener that hit the descriptor limit rests this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Warnings about shed connections or exhausted descriptors, at most this often.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// The waker's token. Listener `i` has token `LISTENER_BASE + i`; a
/// connection, its slot in the [`Slab`] (below `LISTENER_BASE`).
const WAKE: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX / 2;

const SHED_REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: 54\r\n\r\n503 Service Unavailable: too many open connections\r\n\r\n";

const RUNNING: u8 = 0;
const STOP_ACCEPTING: u8 = 1;
const FINISH: u8 = 2;

/// The TLS settings of the moment, when the listeners speak TLS.
#[cfg(feature = "tls")]
pub(super) type Tls = Arc<crate::access::tls::Reloader>;
#[cfg(not(feature = "tls"))]
pub(super) type Tls = std::convert::Infallible;

/// The running front; dropping it does not stop it, [`Front::finish`] does.
pub(crate) struct Front {
    shared: Arc<Shared>,
    state: Arc<AtomicU8>,
    thread: Option<JoinHandle<()>>,
}

impl Front {
    /// Starts the I/O loop on `listeners`, with TLS when `tls` is given.
    pub(crate) fn start(
        listeners: Vec<TcpListener>,
        tls: Option<Tls>,
        ctx: Context,
        limits: ConnLimits,
    ) -> io::Result<Front> {
        let poll = Poll::new()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::new()),
            wake: mio::Waker::new(poll.registry(), WAKE)?,
            web: ctx.web.clone(),
            budget: Arc::clone(&ctx.budget),
        });
        let state = Arc::new(AtomicU8::new(RUNNING));
        let mut slots = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut listener = MioListener::from_std(l);
            poll.registry().register(
                &mut listener,
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
            slots.push(Some(ListenerSlot {
                listener,
                paused_until: None,
                ready: false,
            }));
        }
        let mut server = Server {
            poll,
            listeners: slots,
            conns: Slab::default(),
            again: Vec::new(),
            ctx,
            shared: Arc::clone(&shared),
            limits,
            tls,
            spare: sys::spare_descriptor(),
            last_warning: None,
            state: Arc::clone(&state),
            #[cfg(feature = "tls")]
            handshakes: crate::pool::Pool::new(handshake_threads()),
        };
        let thread = thread::Builder::new()
            .name("http-io".into())
            .spawn(move || server.run())?;
        Ok(Front {
            shared,
            state,
            thread: Some(thread),
        })
    }

    /// Closes the listeners; connections already open are still served.
    pub(crate) fn stop_accepting(&self) {
        let _ = self.state.compare_exchange(
            RUNNING,
            STOP_ACCEPTING,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        let _ = self.shared.wake.wake();
    }

    /// Writes the answers still owed (for up to `timeout`), then closes
    /// every connection and ends the I/O loop.
    pub(crate) fn finish(mut self, timeout: Duration) {
        self.state.store(FINISH, Ordering::SeqCst);
        let _ = self.shared.wake.wake();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let end = Instant::now() + timeout + Duration::from_secs(1);
        while !thread.is_finished() && Instant::now() < end {
            thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            log::warn!("some answers were still being written at exit");
        }
    }
}

struct ListenerSlot {
    listener: MioListener,
    /// Resting after descriptor exhaustion, until then.
    paused_until: Option<Instant>,
    /// Connections may be waiting: an event said so, and `accept` has not
    /// said `WouldBlock` since.
    ready: bool,
}

/// Connections by slot, each slot with a generation. A slot's index is
/// its connection's token.
#[derive(Default)]
struct Slab {
    slots: Vec<Option<Conn>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    /// Slots emptied in this round of the loop: reused only from the next
    /// one ([`Slab::recycle`]), so that an event of this round's batch for
    /// a closed connection cannot reach a new one in its slot.
    released: Vec<u32>,
    len: usize,
}

impl Slab {
    fn next_id(&mut self) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = &mut self.generations[index as usize];
        *generation = (*generation + 1) & 0x3fff_ffff;
        u64::from(*generation) << 32 | u64::from(index)
    }

    fn insert(&mut self, conn: Conn) {
        let index = (conn.id & 0xffff_ffff) as usize;
        self.slots[index] = Some(conn);
        self.len += 1;
    }

    fn get(&mut self, id: u64) -> Option<&mut Conn> {
        let index = (id & 0xffff_ffff) as usize;
        self.slots.get_mut(index)?.as_mut().filter(|c| c.id == id)
    }

    /// The connection in slot `index`, by the token of an event.
    fn at(&mut self, index: usize) -> Option<&mut Conn> {
        self.slots.get_mut(index)?.as_mut()
    }

    fn remove(&mut self, id: u64) {
        let index = (id & 0xffff_ffff) as usize;
        if self.slots[index].take().is_some() {
            self.len -= 1;
            self.released.push(index as u32);
        }
    }

    /// Between rounds: slots emptied in the last one may be reused.
    fn recycle(&mut self) {
        self.free.append(&mut self.released);
    }

    fn ids(&self) -> Vec<u64> {
        self.slots.iter().flatten().map(|c| c.id).collect()
    }
}

/// The token of connection `id`: its slot.
fn token_of(id: u64) -> Token {
    Token((id & 0xffff_ffff) as usize)
}

/// What one event reported.
#[derive(Clone, Copy, Debug)]
struct Ready {
    token: Token,
    readable: bool,
    writable: bool,
    /// Error or hang-up (EPOLLERR or EPOLLHUP on Linux): the next read or
    /// write tells which.
    hangup: bool,
}

impl Ready {
    fn of(e: &mio::event::Event) -> Ready {
        Ready {
            token: e.token(),
            readable: e.is_readable() || e.is_read_closed(),
            writable: e.is_writable(),
            hangup: e.is_error() || (e.is_read_closed() && e.is_write_closed()),
        }
    }
}

struct Server {
    poll: Poll,
    listeners: Vec<Option<ListenerSlot>>,
    conns: Slab,
    /// Connections to drive in the next round without an event: they may
    /// have unread input and want it (see the module's note on edges).
    again: Vec<u64>,
    ctx: Context,
    shared: Arc<Shared>,
    limits: ConnLimits,
    tls: Option<Tls>,
    /// Kept open so that, out of descriptors, one can still be freed to
    /// accept and close a waiting connection.
    spare: Option<File>,
    last_warning: Option<Instant>,
    state: Arc<AtomicU8>,
    /// Threads for the crypto of TLS handshakes (see `transport`).
    #[cfg(feature = "tls")]
    handshakes: crate::pool::Pool,
}

/// Threads for TLS handshakes: half the cores, so a flood of handshakes
/// leaves the other half to pushes and the I/O loop. Each connection has
/// at most one step queued, so the queue is bounded by the connections.
#[cfg(feature = "tls")]
fn handshake_threads() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .div_ceil(2)
}

impl Server {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        let mut scratch = vec![0u8; 64 * 1024];
        let mut next_sweep = Instant::now() + SWEEP;
        let mut finishing: Option<Instant> = None;
        let (mut last_activity, mut trimmed) = (Instant::now(), true);
        loop {
            self.conns.recycle();
            // Input left from the last round is taken in this one, without
            // waiting, as a level-triggered poll would report it again at
            // once.
            let leftovers = std::mem::take(&mut self.again);
            let timeout = if !leftovers.is_empty() || self.listener_leftovers() {
                Duration::ZERO
            } else {
                SWEEP
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!(err:display = e; "polling the sockets failed");
                thread::sleep(SWEEP);
            }
            for r in events.iter().map(Ready::of) {
                let conn = self.conns.at(r.token.0).map(|c| c.id);
                self.guarded(conn, |s| s.on_ready(r, &mut scratch));
            }
            self.drive_leftovers(leftovers, &mut scratch);
            self.guarded(None, Server::take_completions);
            let now = Instant::now();
            if !events.is_empty() {
                (last_activity, trimmed) = (now, false);
            }
            if now >= next_sweep {
                next_sweep = now + SWEEP;
                self.sweep(now);
                // After a burst, once quiet: hand freed memory back, so
                // idle RSS returns near where it started.
                if !trimmed && now >= last_activity + TRIM_AFTER {
                    sys::trim_heap();
                    trimmed = true;
                }
            }
            match self.state.load(Ordering::SeqCst) {
                RUNNING => {}
                STOP_ACCEPTING => self.close_listeners(),
                _ => {
                    self.close_listeners();
                    let end = *finishing.get_or_insert(now + DRAIN_TIMEOUT);
                    let busy = self.conns.slots.iter().flatten().any(Conn::is_busy);
                    if !busy || now >= end {
                        return;
                    }
                }
            }
        }
    }

    /// Listeners with connections waiting that they can accept now.
    fn listener_leftovers(&self) -> bool {
        self.listeners
            .iter()
            .flatten()
            .any(|l| l.ready && l.paused_until.is_none())
    }

    /// Reads the connections left with input from the last round (`ids`)
    /// and accepts on the listeners that have connections waiting, up to
    /// the same bounds as after an event.
    fn drive_leftovers(&mut self, ids: Vec<u64>, scratch: &mut [u8]) {
        for id in ids {
            self.guarded(Some(id), |s| s.drive(id, scratch));
        }
        for i in 0..self.listeners.len() {
            if let Some(Some(l)) = self.listeners.get(i)
                && l.ready
                && l.paused_until.is_none()
            {
                self.guarded(None, |s| s.accept(i));
            }
        }
    }

    /// A connection with unread input it wants, or output its socket can
    /// take, as if an event said so.
    fn drive(&mut self, id: u64, scratch: &mut [u8]) {
        let (env, conns) = self.split();
        let Some(conn) = conns.get(id) else {
            return;
        };
        conn.queued = false;
        if conn.writable && conn.interest().write {
            conn.flush();
        }
        if conn.readable {
            conn.on_readable(&env, scratch);
        }
        conn.resume(&env);
        self.update(id);
    }

    /// What a connection needs from the server, beside the connections
    /// themselves (borrowed apart so a connection can be handed both).
    fn split(&mut self) -> (Env<'_>, &mut Slab) {
        let env = Env {
            ctx: &self.ctx,
            shared: &self.shared,
            limits: &self.limits,
            stopping: self.state.load(Ordering::Relaxed) != RUNNING,
            #[cfg(feature = "tls")]
            handshakes: &self.handshakes,
        };
        (env, &mut self.conns)
    }

    /// Runs `f`; a panic in it (a bug) costs the connection it was
    /// serving (`conn`), not the I/O loop and with it every other client.
    fn guarded(&mut self, conn: Option<u64>, f: impl FnOnce(&mut Server)) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        if result.is_err() {
            log::error!(conn = conn; "internal error while serving a connection; closed it");
            if let Some(id) = conn {
                self.conns.remove(id);
            }
        }
    }

    fn on_ready(&mut self, r: Ready, scratch: &mut [u8]) {
        if r.token == WAKE {
            // The answers are taken after every round anyway.
            return;
        }
        if r.token.0 >= LISTENER_BASE {
            if let Some(Some(l)) = self.listeners.get_mut(r.token.0 - LISTENER_BASE) {
                l.ready = true;
            }
            return;
        }
        let (env, conns) = self.split();
        let Some(conn) = conns.at(r.token.0) else {
            return;
        };
        let id = conn.id;
        if r.readable || r.hangup {
            conn.readable = true;
        }
        if r.hangup {
            conn.on_hangup();
        }
        // Only what a level-triggered poll registered for writing would
        // have reported: a connection with something to write.
        if r.writable && conn.interest().write {
            conn.flush();
        }
        if r.readable || r.hangup {
            conn.on_readable(&env, scratch);
        }
        conn.resume(&env);
        self.update(id);
    }

    /// Drops a connection once closed, or queues it for the next round
    /// when it wants input, or has output the socket can take, that no
    /// event will report again.
    fn update(&mut self, id: u64) {
        let Some(conn) = self.conns.get(id) else {
            return;
        };
        if conn.is_closed() {
            // Closing the socket also takes it out of the poll.
            self.conns.remove(id);
            return;
        }
        let interest = conn.interest();
        let more = (conn.readable && interest.read) || (conn.writable && interest.write);
        if more && !conn.queued {
            conn.queued = true;
            self.again.push(id);
        }
    }

    fn take_completions(&mut self) {
        // Answers made while handling answers (a pipelined request) come
        // back through the queue too; a few rounds take them all.
        for _ in 0..8 {
            let batch = self.shared.take();
            if batch.is_empty() {
                return;
            }
            for c in batch {
                let id = match c {
                    Completion::Reply {
                        conn,
                        head,
                        body,
                        keep_alive,
                    } => {
                        let (env, conns) = self.split();
                        if let Some(c) = conns.get(conn) {
                            c.on_reply(&env, head, body, keep_alive);
                        }
                        conn
                    }
                    Completion::Verdict { conn, ok } => {
                        let (env, conns) = self.split();
                        if let Some(c) = conns.get(conn) {
                            c.on_verdict(&env, ok);
                        }
                        conn
                    }
                    #[cfg(feature = "tls")]
                    Completion::Handshake {
                        conn,
                        tls,
                        processed,
                    } => {
                        let (env, conns) = self.split();
                        if let Some(c) = conns.get(conn) {
                            c.on_handshake_step(&env, tls, processed);
                        }
                        conn
                    }
                };
                self.after_write(id);
            }
        }
    }

    /// A connection that finished an answer may hold a pipelined request.
    fn after_write(&mut self, id: u64) {
        let (env, conns) = self.split();
        if let Some(c) = conns.get(id) {
            c.resume(&env);
        }
        self.update(id);
    }

    fn sweep(&mut self, now: Instant) {
        for id in self.conns.ids() {
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            if c.deadline().is_some_and(|d| d <= now) {
                c.on_timeout();
                self.update(id);
            }
        }
        // A rested listener is accepted on again in the next round (it
        // is still `ready`: the connections it left are waiting).
        for l in self.listeners.iter_mut().flatten() {
            if l.paused_until.is_some_and(|t| t <= now) {
                l.paused_until = None;
            }
        }
    }

    fn close_listeners(&mut self) {
        for slot in &mut self.listeners {
            if let Some(mut l) = slot.take() {
                // Explicitly: a socket systemd passed stays open in
                // systemd, and closing ours alone would leave it polled.
                let _ = self.poll.registry().deregister(&mut l.listener);
            }
        }
    }

    fn accept(&mut self, index: usize) {
        for _ in 0..64 {
            let Some(Some(slot)) = self.listeners.get_mut(index) else {
                return;
            };
            match slot.listener.accept() {
                Ok((sock, peer)) => self.admit(sock, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    slot.ready = false;
                    return;
                }
                Err(e) if sys::is_descriptor_exhaustion(&e) => return self.exhausted(index, &e),
                // The client gave up before we took it (ECONNABORTED), a
                // signal, ...: nothing to do but go on.
                Err(e) => log::debug!(err:display = e; "accept failed"),
            }
        }
    }

    fn admit(&mut self, sock: TcpStream, peer: SocketAddr) {
        if self.conns.len >= self.limits.max_connections {
            if self.warn_now() {
                log::warn!(limit = self.limits.max_connections, source:display = peer; "too many open connections (--web.max-connections); shedding new ones");
            }
            return self.shed(sock);
        }
        // mio's accept makes it non-blocking already.
        if !sys::NODELAY_INHERITED
            && let Err(e) = sock.set_nodelay(true)
        {
            log::debug!(err:display = e; "cannot set TCP_NODELAY on a connection");
        }
        let id = self.conns.next_id();
        let mut conn = match self.new_conn(sock, peer, id) {
            Some(c) => c,
            None => return self.conns.free.push((id & 0xffff_ffff) as u32),
        };
        // Once, for both directions: edges are noted, never re-registered.
        let both = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut conn.sock, token_of(id), both)
        {
            log::warn!(err:display = e; "cannot watch a new connection");
            return self.conns.free.push((id & 0xffff_ffff) as u32);
        }
        self.conns.insert(conn);
    }

    #[cfg(feature = "tls")]
    fn new_conn(&self, sock: TcpStream, peer: SocketAddr, id: u64) -> Option<Conn> {
        let charge = self.ctx.budget.charge(Class::Head);
        let Some(tls) = &self.tls else {
            return Some(Conn::plain(sock, peer, id, &self.limits, charge));
        };
        // What the session's own buffers may hold, paid for up front: a
        // connection the budget cannot cover is not started.
        let mut held = self.ctx.budget.charge(Class::Head);
        if !held.grow_by(crate::access::tls::SESSION_HOLDS) {
            log::debug!(source:display = peer; "TLS connection refused: the memory budget for heads is used up");
            return None;
        }
        // Already logged when a reload failed: new handshakes are refused.
        let config = tls.current().ok()?;
        let verified = tls.verifies_clients();
        match rustls::ServerConnection::new(config) {
            Ok(mut t) => {
                t.set_buffer_limit(Some(crate::access::tls::SEND_BUFFER));
                let mut conn = Conn::tls(sock, peer, id, t, &self.limits, (charge, held));
                conn.clients_verified = verified;
                Some(conn)
            }
            Err(e) => {
                log::warn!(err:display = e; "cannot start a TLS connection");
                None
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    fn new_conn(&self, sock: TcpStream, peer: SocketAddr, id: u64) -> Option<Conn> {
        if let Some(never) = &self.tls {
            match *never {}
        }
        let charge = self.ctx.budget.charge(Class::Head);
        Some(Conn::plain(sock, peer, id, &self.limits, charge))
    }

    /// A connection past the cap: a one-line 503 if it is plain HTTP, then
    /// closed.
    fn shed(&self, mut sock: TcpStream) {
        // Non-blocking already (mio's accept): a full buffer drops the line.
        if self.tls.is_none() {
            let _ = sock.write(SHED_REPLY);
        }
    }

    /// Out of descriptors: free the spare one to accept and close a waiting
    /// client, so the backlog does not fill and the loop does not spin,
    /// then rest the listener briefly. Service resumes by itself as soon
    /// as descriptors free up.
    fn exhausted(&mut self, index: usize, e: &io::Error) {
        if self.warn_now() {
            log::warn!(err:display = e, connections = self.conns.len; "out of file descriptors; refusing new connections until some close");
        }
        let Some(Some(slot)) = self.listeners.get_mut(index) else {
            return;
        };
        drop(self.spare.take());
        if let Ok((sock, _)) = slot.listener.accept() {
            drop(sock);
        }
        self.spare = sys::spare_descriptor();
        slot.paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
    }

    fn warn_now(&mut self) -> bool {
        let now = Instant::now();
        if self.last_warning.is_some_and(|t| now < t + WARN_EVERY) {
            return false;
        }
        self.last_warning = Some(now);
        true
    }
}
