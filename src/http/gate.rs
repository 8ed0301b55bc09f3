//! The checks a request passes before its handler runs, and the
//! refusals they answer with: rate limit, a broken web configuration and
//! basic auth ([`gate`]), the memory budget ([`over_budget`], [`busy`]),
//! the body size limit ([`too_large`]) and a full pool queue
//! ([`queue_full_reply`]). Kept apart from the handlers so that a newcomer
//! finds every reason a request never reached its handler in one place.
//! Runs on the I/O loop: nothing here blocks (bcrypt goes to the pool).

use std::sync::Arc;

use super::router::Route;
use super::{Context, Reply};
use crate::access::auth::Auth;

/// What the gate decided about a request, before its body is read.
pub(super) enum Gate {
    Pass,
    /// Answer this instead of running the handler.
    Refuse(Reply),
    /// The credentials need a bcrypt check on the pool.
    Check(Arc<Auth>),
}

/// The checks every request passes before its handler, in the reference's
/// order: rate limit (429), a broken web configuration (500), basic auth
/// (401), from the cache when the same credentials passed before.
pub(super) fn gate(ctx: &Context, authorization: Option<&str>, source: &str, url: &str) -> Gate {
    if let Some(limiter) = &ctx.limiter
        && !limiter.allow()
    {
        log::debug!(source = source, url = url; "rate limit reached");
        return Gate::Refuse(Reply::error(429, "Too Many Requests"));
    }
    let auth = match ctx.web.as_ref().map(|w| w.current()) {
        None => return Gate::Pass,
        Some(Ok(active)) => active.auth.clone(),
        // Already logged when the file went bad.
        Some(Err(_)) => return Gate::Refuse(Reply::error(500, "Internal Server Error")),
    };
    match auth {
        None => Gate::Pass,
        Some(auth) if auth.cached(authorization) => Gate::Pass,
        Some(auth) => Gate::Check(auth),
    }
}

/// Whether the request's handler would take memory in proportion to the
/// data (see [`Route::memory`]) while the class it is charged to has used
/// its share of the budget: it is refused with [`busy`] before it starts.
pub(super) fn over_budget(ctx: &Context, route: &Route) -> bool {
    route.memory().is_some_and(|c| ctx.budget.exhausted_for(c))
}

/// The answer to a request whose credentials failed.
pub(super) fn unauthorized(source: &str, url: &str) -> Reply {
    log::warn!(source = source, url = url; "unauthorized request");
    Reply::error(401, "Unauthorized").with_header("WWW-Authenticate", "Basic")
}

/// The 413 for a push body over `--push.max-body-size`. `early` (the
/// method, and the route's `handler` label) is given when the answer
/// goes out early, past the responder that counts requests.
pub(super) fn too_large(
    ctx: &Context,
    early: Option<(&str, &'static str)>,
    source: &str,
    url: &str,
) -> Reply {
    let msg = format!(
        "request body larger than {} bytes (--push.max-body-size), before or after decompression",
        ctx.max_body_bytes
    );
    log::warn!(source = source, url = url; "{msg}");
    if let Some((method, handler)) = early {
        let method = crate::telemetry::method_label(method);
        ctx.telemetry.count_request(413, handler, method);
    }
    Reply::error(413, msg)
}

/// The 503 for a request the memory budget cannot cover now.
pub(super) fn busy(source: &str, url: &str) -> Reply {
    log::warn!(source = source, url = url; "memory budget for requests in flight used up (--web.memory-budget); answering 503");
    Reply::error(
        503,
        "Service Unavailable: the memory for requests in flight (--web.memory-budget) is used up; retry shortly",
    )
    .with_header("Retry-After", "1")
}

/// The 503 for a request whose kind of work has filled its queue on the
/// pool (see `pool::Kind`): other kinds are still served.
pub(super) fn queue_full_reply(what: &str, source: &str, url: &str) -> Reply {
    log::warn!(source = source, url = url; "too many {what} waiting for a worker thread; answering 503");
    Reply::error(
        503,
        format!("Service Unavailable: too many {what} are waiting to be processed; retry shortly"),
    )
    .with_header("Retry-After", "1")
}
