//! What a connection is given by the server around it: its [`Env`], and
//! the [`Interest`] it reports back.

use std::sync::Arc;

use crate::http::context::Context;
use crate::http::inbox::Shared;
use crate::http::limits::ConnLimits;

/// What a connection can make progress on in its state: reading input,
/// writing output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::http) struct Interest {
    pub read: bool,
    pub write: bool,
}

/// Everything a connection needs from the server around it.
pub(in crate::http) struct Env<'a> {
    pub ctx: &'a Context,
    pub shared: &'a Arc<Shared>,
    pub limits: &'a ConnLimits,
    /// The front is shutting down: no more keep-alive.
    pub stopping: bool,
    /// Where TLS handshake steps run, off the loop.
    #[cfg(feature = "tls")]
    pub handshakes: &'a crate::pool::Pool,
}
