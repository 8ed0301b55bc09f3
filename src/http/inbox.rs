//! The I/O loop's inbox: what other threads (the pool, the request loop,
//! the handshake threads) hand back to it, and the waker that tells it.

use std::sync::{Arc, Mutex};

use super::budget;
use super::response::{self, Reply};
#[cfg(feature = "tls")]
use super::transport;
use crate::access::reload::WebReloader;
use crate::contract;

/// What other threads hand back to the I/O loop.
pub(super) enum Completion {
    /// An answer's bytes, ready to write.
    Reply {
        conn: u64,
        head: Vec<u8>,
        body: contract::Payload,
        keep_alive: bool,
    },
    /// The pool checked a request's credentials.
    Verdict { conn: u64, ok: bool },
    /// A handshake thread did a step of a TLS handshake.
    #[cfg(feature = "tls")]
    Handshake {
        conn: u64,
        tls: transport::Session,
        processed: Result<(), rustls::Error>,
    },
}

/// The I/O loop's inbox, shared with every thread that answers requests.
pub(super) struct Shared {
    pub(super) queue: Mutex<Vec<Completion>>,
    /// Wakes the I/O loop's poll.
    pub(super) wake: mio::Waker,
    /// `http_server_config.headers` go on every response.
    pub(super) web: Option<Arc<WebReloader>>,
    /// Charged for the answers built off the loop.
    pub(super) budget: Arc<budget::Budget>,
}

impl Shared {
    /// An answer's bytes, with the web configuration's headers.
    pub(super) fn encode(
        &self,
        reply: Reply,
        how: response::ResponseMode,
    ) -> (Vec<u8>, contract::Payload) {
        let extra = self.web.as_ref().map(|w| w.headers());
        let extra = extra.as_deref().map(Vec::as_slice).unwrap_or_default();
        response::encode(reply, how, extra)
    }

    pub(super) fn complete(&self, c: Completion) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.is_empty();
        q.push(c);
        drop(q);
        // One wake-up per batch: the loop takes the whole queue at once.
        if was_empty {
            let _ = self.wake.wake();
        }
    }

    pub(super) fn take(&self) -> Vec<Completion> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
