//! The front's timeouts and connection cap, from the flags: the I/O loop
//! (`server.rs`) applies them and each connection (`conn/`) reads them.

use std::time::Duration;

/// Timeouts and caps, from the flags.
#[derive(Clone, Debug)]
pub(crate) struct ConnLimits {
    /// From a connection's first byte of a head to its end
    /// (`--web.read-header-timeout`).
    pub header_timeout: Duration,
    /// For a request's body, from the end of its head
    /// (`--web.read-timeout`).
    pub read_timeout: Duration,
    /// How long a kept connection may wait for its next request
    /// (`--web.idle-timeout`).
    pub idle_timeout: Duration,
    /// How long an answer may wait for the client to read any of it.
    pub write_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed
    /// (`--web.max-connections`).
    pub max_connections: usize,
}

impl ConnLimits {
    /// The cap when no flag sets it: the descriptor limit minus a reserve
    /// for listeners, the snapshot file and the like.
    pub(crate) fn default_max_connections(nofile: u64) -> usize {
        let reserve = (nofile / 16).max(32);
        nofile.saturating_sub(reserve).max(1) as usize
    }
}
