//! pushgateway: a drop-in replacement for the Prometheus Pushgateway.
//!
//! The binary (`main.rs`) wires these modules together. They form a library
//! so that fuzz targets and benchmarks can call the parsers directly. Data
//! flows one way: request (`http`, `router`) -> parse (`path`,
//! `text_format`, `protobuf`) -> validate and apply (`store`, in the single
//! loop of `gateway`) -> respond (`exposition`, `api`, `ui`).
//!
//! `unsafe` is denied everywhere but `sys`, the one module that calls libc.

#![deny(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod contract;
pub mod exposition;
pub mod fuzz_checks;
pub mod gateway;
pub mod http;
pub mod json;
pub mod logging;
pub mod model;
pub mod path;
pub mod persistence;
pub mod pool;
pub mod protobuf;
pub mod rate_limit;
pub mod router;
pub mod signals;
pub mod snapshot;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod telemetry;
pub mod text_format;
pub mod time;
#[cfg(feature = "tls")]
pub mod tls;
pub mod ui;
pub mod web_config;
pub mod web_reload;
