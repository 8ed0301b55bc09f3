//! The single request loop: the only code that touches the store.
//!
//! Each event is a request whose slow parts (reading, parsing, writing) are
//! done elsewhere, so the loop's own work per event is small: check and
//! apply a push, delete a group, or concatenate pre-rendered lines for a
//! scrape. No locks around the store, no data races by construction.
//!
//! `request_loop`: the loop itself (waiting, persistence, expiry,
//! shutdown) and [`Gateway::handle`], which hands each event to the file
//! of its endpoints, as the HTTP front's `handler/` does: `push` (a group's
//! push or delete), `reads` (scrapes, the page, a group's text, the JSON
//! API), `admin` (wipe, selector deletes). Rendering is in `render`
//! (scrapes), `api` (JSON) and `ui` (the page).

pub(crate) mod admin;
pub(crate) mod api;
mod native;
mod push;
mod reads;
mod render;
mod request_loop;
pub(crate) mod ui;

pub(crate) use request_loop::{Gateway, Offload};
