//! What the front needs to route requests and build events, from the
//! flags and the web configuration.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use super::budget;
use super::router::Routes;
use crate::access::rate_limit::RateLimiter;
use crate::access::reload::WebReloader;
use crate::contract::Event;
use crate::model::NameScheme;
use crate::pool::Pool;
use crate::telemetry::Telemetry;

/// What the front needs to route requests and build events.
#[derive(Clone)]
pub(crate) struct Context {
    pub routes: Arc<Routes>,
    pub pool: Pool,
    pub events: Sender<Event>,
    pub telemetry: Telemetry,
    pub max_body_bytes: u64,
    pub enable_lifecycle: bool,
    /// Name rules for pushed bodies (`--push.enable-utf8-names`).
    pub names: NameScheme,
    /// The web config file's users and headers, when there is one.
    pub web: Option<Arc<WebReloader>>,
    /// `rate_limit` of the web configuration.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The request loop's heartbeat, for health probes.
    pub beat: Arc<crate::contract::LoopBeat>,
    /// `--web.access-file`: who may change, read or administer what.
    pub access: Option<Arc<crate::access::scopes::AccessReloader>>,
    /// What all requests in flight may hold (`--web.memory-budget`).
    pub budget: Arc<budget::Budget>,
}
