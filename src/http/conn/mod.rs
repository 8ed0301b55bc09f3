//! One client connection: its buffers, its protocol state and its deadline.
//!
//! Two halves. [`machine`] is the protocol, sans I/O: bytes in, answers
//! and tasks out, unit-tested by feeding it bytes. [`io`] is the thin
//! driver around it: it owns the socket and the TLS session, reads into
//! the machine, writes what it queued, and hands its tasks (a request
//! for a handler, credentials for the pool) to the rest of the front.
//!
//! A connection serves one request at a time, so pipelined requests are
//! answered in order: while a request is with its handler the connection
//! reads nothing more, and bytes already read wait in its input buffer.
//! Every state has a bound: heads [`MAX_HEAD`](super::head::MAX_HEAD),
//! bodies `--push.max-body-size` (or [`DRAIN_LIMIT`](machine::DRAIN_LIMIT)
//! when the body is not wanted), and a deadline.
//!
//! A TLS handshake's crypto runs on a handshake thread: meanwhile the
//! connection stays in `Handshake` and reads nothing (see `transport`).
//!
//! ```text
//! Handshake (TLS) ─▶ Head ─▶ Body ─▶ Waiting ─▶ Writing ─▶ Head …
//!                     │        └──────(early answer)──▶ Writing
//!                     └─(bad head, timeout)─▶ Writing ─▶ Lingering ─▶ closed
//! ```

mod env;
mod io;
mod machine;

pub(super) use env::{Env, Interest};
pub(super) use io::Conn;
