//! The group store: every pushed group, and an index over all of them that
//! keeps a push's cost proportional to the push, not to the store.
//!
//! The reference copies the whole store and re-gathers it on every push to
//! check consistency, so one small push costs O(everything stored). Here the
//! same rules are checked against an index kept up to date incrementally:
//!
//! - per metric name, how many groups contribute it with which type, and
//!   which HELP texts they pushed;
//! - per metric name, every series (label set) with the group that owns it,
//!   together with its exposition lines rendered once, at push time.
//!
//! A scrape is then a walk over the index concatenating pre-rendered lines.
//!
//! Only the request loop owns a `Store`; nothing here locks or does I/O.
//! Preparing a push (`prepare_push`) is pure and runs on the worker thread
//! that read the body; the loop only checks it against the index
//! (`check.rs`, one function per rule) and applies. The [`Store`] itself,
//! and what a push, a delete or a wipe does to it, is in `metric_store.rs`
//! (as the Go gateway's `storage/diskmetricstore.go`).

mod check;
mod error;
mod expiry;
mod fill;
mod group;
mod index;
mod intern;
mod limits;
mod metric_store;
mod prepare;

pub(crate) use error::*;
pub(crate) use group::*;
pub(crate) use index::*;
use intern::Interner;
pub(crate) use limits::{LimitError, Limits};
pub(crate) use metric_store::*;
pub(crate) use prepare::*;
