//! Shared helpers for the integration tests and the benchmark, one file
//! per concern: `process` (a gateway on a free loopback port), `client`
//! (a tiny HTTP/1.1 client, gzip), `exposition` (normalized scrapes to
//! compare two servers), `go` (the Go push program), `pki` (certificates and curl), `raw` (raw-socket
//! requests for the hostile suite), `proto` (protobuf bodies with
//! exemplars, decoded protobuf scrapes), `prometheus` (a real Prometheus
//! server with a given configuration), `qemu` (foreign-architecture
//! binaries under qemu-user: ELF checks, wrapper scripts), `temp` (temporary directories that
//! clean up after themselves), `wine` (the Windows build under wine).
//!
//! Each test binary includes this module with `mod support;` and uses a
//! different subset of it, hence the blanket `dead_code` allowance.
#![allow(dead_code)]

pub mod client;
pub mod exposition;
pub mod go;
pub mod pki;
pub mod process;
pub mod prometheus;
pub mod proto;
pub mod qemu;
pub mod raw;
pub mod temp;
pub mod wine;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use client::*;
#[allow(unused_imports)]
pub use exposition::*;
#[allow(unused_imports)]
pub use pki::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use prometheus::*;
#[allow(unused_imports)]
pub use temp::*;
