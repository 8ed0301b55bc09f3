//! pushgateway: a drop-in replacement for the Prometheus Pushgateway.
//!
//! The binary (`main.rs`) wires these modules together. They form a library
//! so that tests, fuzz targets and the benchmark can call the parts
//! directly. Data flows one way, and the folders follow it:
//!
//! - [`http`]: the front. Sockets, TLS, request heads and bodies, routing;
//!   it digests each request into a [`contract::Event`].
//! - [`wire`]: the formats, pure functions over bytes (URL grouping keys,
//!   text exposition, protobuf, JSON).
//! - [`contract`]: the request loop's inputs and outputs.
//! - [`gateway`]: the single request loop, the only owner of the [`store`],
//!   and what it renders (scrapes, the API's JSON, the web page).
//! - [`persist`]: the snapshot format and its writer thread.
//! - [`web`]: the web configuration file: auth, rate limit, headers, TLS.
//! - [`sys`]: every libc call.
//!
//! `unsafe` is denied everywhere but `sys`.

#![deny(unsafe_code)]

pub mod cli;
pub mod contract;
pub mod fuzz_checks;
pub mod gateway;
pub mod http;
pub mod logging;
pub mod model;
pub mod persist;
pub mod pool;
pub mod signals;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod telemetry;
pub mod time;
pub mod web;
pub mod wire;
