//! The web configuration file and what it switches on: basic auth, the
//! rate limit, response headers (followed without a restart), and TLS.

pub(crate) mod access;
pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod rate_limit;
pub(crate) mod reload;
#[cfg(feature = "tls")]
pub(crate) mod tls;
