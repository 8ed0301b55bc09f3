//! The HTTP front: our own strict HTTP/1.1 server on `httparse`.
//!
//! Three kinds of threads, each with one job:
//! - **The I/O loop** (`server`) owns every socket: it accepts, reads and
//!   parses request heads and bodies, runs TLS, enforces limits and
//!   timeouts, and writes answers. It never blocks on a peer (all sockets
//!   are non-blocking, one `mio` poll: epoll, kqueue or IOCP) and never
//!   touches the store.
//! - **The request loop** (`gateway`) owns the store. It gets complete,
//!   parsed requests as [`Event`](crate::contract::Event)s and hands answers back through a
//!   [`contract::Responder`](crate::contract::Responder); it never touches a socket.
//! - **A bounded pool** does CPU work: decompressing and parsing pushes,
//!   bcrypt, gzip for scrapes.
//!
//! A request's way through the front: `conn` reads its head, `router`
//! finds its row in the route table (`routes`: every endpoint once, with
//! its label, memory class, access class and handler), `gate` lets it pass
//! or refuses it, `conn` reads its body if the row wants one, and the
//! row's handler (`handler/`) turns it into an [`Event`](crate::contract::Event), pool work or a
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
mod context;
mod cors;
mod gate;
mod handler;
pub(crate) mod head;
mod inbox;
mod inbuf;
mod limits;
mod listen;
pub(crate) mod negotiate;
mod request;
pub(crate) mod response;
pub(crate) mod router;
pub(crate) mod routes;
mod scope;
mod server;
mod transport;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use body::decode_body;
pub(crate) use body::{BodyError, decode_body_within, is_protobuf, openmetrics_version};
pub(crate) use context::Context;
pub(crate) use limits::ConnLimits;
pub(crate) use listen::{bind, systemd_listeners};
pub(crate) use request::{Request, respond};
pub(crate) use response::Reply;
pub(crate) use server::{DRAIN_TIMEOUT, Front};
