//! The web configuration file and what it switches on: basic auth, the
//! rate limit, response headers (followed without a restart), and TLS.

pub mod auth;
pub mod config;
pub mod rate_limit;
pub mod reload;
#[cfg(feature = "tls")]
pub mod tls;
