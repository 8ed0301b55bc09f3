//! Who may connect and do what: the web configuration file and what it
//! switches on (basic auth, the rate limit, response headers followed
//! without a restart, TLS), and the write scopes of `--web.access-file`.

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod rate_limit;
pub(crate) mod reload;
pub(crate) mod scopes;
#[cfg(feature = "tls")]
pub(crate) mod tls;
