//! pushgateway: a drop-in replacement for the Prometheus Pushgateway.
//!
//! The binary (`main.rs`) only calls [`app::main`]. The library exports
//! what integration tests and fuzz targets call ([`model`], [`wire`], and
//! `fuzz_checks` with the `fuzzing` feature); everything else is
//! crate-private. Data flows one way, and the folders follow it:
//!
//! - [`http`]: the front. Sockets, TLS, request heads and bodies, routing;
//!   it digests each request into a [`contract::Event`].
//! - [`wire`]: the formats, pure functions over bytes (URL grouping keys,
//!   text exposition, protobuf, JSON).
//! - [`contract`]: the request loop's inputs and outputs.
//! - [`gateway`]: the single request loop, the only owner of the [`store`],
//!   and what it renders (scrapes, the API's JSON, the web page).
//! - [`persist`]: the snapshot format and its writer thread; the import of
//!   the Go gateway's gob file.
//! - [`access`]: who may connect and do what: the web configuration file
//!   (auth, rate limit, headers, TLS) and the write scopes.
//! - [`sys`]: every libc call.
//!
//! `unsafe` is denied everywhere but `sys`.

#![deny(unsafe_code)]
#![warn(unreachable_pub)]
// The docs are for the next engineer and built with --document-private-items
// (`make lint`), so links into private modules are the point.
#![allow(rustdoc::private_intra_doc_links)]

// The library's public face is what the binary, the integration tests and
// the fuzz targets call; everything else is crate-private.
pub mod app;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz_checks;
pub mod model;
pub mod wire;

mod access;
mod cli;
mod contract;
mod gateway;
mod http;
mod logging;
mod persist;
mod pool;
mod signals;
mod store;
#[allow(unsafe_code)]
mod sys;
mod telemetry;
mod time;
