//! The handlers, one file per group of endpoints as in the reference's
//! `handler/` (push.go, delete.go, wipe.go, status.go): each turns a
//! routed request into an [`Event`](crate::contract::Event) for the
//! request loop, work for the pool, or a direct answer. [`dispatch()`]
//! (in `dispatch.rs`) runs the handler of a request's row in the route
//! table (`routes`), once the row's access class let it through.
//! Handlers run on the I/O loop, so none may block: CPU work goes to the
//! pool, store work to the request loop.

pub(super) mod admin;
pub(super) mod api;
pub(super) mod delete;
mod dispatch;
pub(super) mod lifecycle;
pub(super) mod metrics;
pub(super) mod push;
pub(super) mod status;

pub(crate) use dispatch::Body;
pub(super) use dispatch::dispatch;
use dispatch::{bad_path, send, with_key};
