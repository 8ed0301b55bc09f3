//! From a routed request to its handler: the row's handler run with its
//! grouping key parsed, and the few helpers the handlers share.

use crate::contract::Event;
use crate::http::budget::Charge;
use crate::http::gate::queue_full_reply;
use crate::http::router::Route;
use crate::http::routes::GroupingKey;
use crate::http::routes::{Endpoint, Handler};
use crate::http::{Context, Reply, Request, respond, scope};
use crate::model::Label;
use crate::pool::Kind;
use crate::wire::path::PathError;

/// A request body with the budget charge that covers it.
pub(crate) struct Body {
    pub data: Vec<u8>,
    pub charge: Charge,
}

/// Runs the handler of `route`'s row, or sends what the router answered
/// itself (as the reference's router: 404, 405, OPTIONS, redirects).
/// `body` is the request body, read only for rows that want it (empty
/// otherwise).
pub(crate) fn dispatch(ctx: &Context, route: Route, req: Request, body: Body) {
    let direct = |req: Request, reply: Reply| respond(&ctx.pool, req, reply);
    match route {
        Route::Endpoint { endpoint, key } => run(ctx, endpoint, key, req, body),
        Route::BadPath(e) => bad_path(ctx, req, e),
        Route::NotFound => direct(req, Reply::error(404, "404 page not found")),
        Route::MethodNotAllowed { allow } => direct(
            req,
            Reply::error(405, "Method Not Allowed").with_header("Allow", allow),
        ),
        Route::Options { allow } => direct(req, Reply::empty(200).with_header("Allow", allow)),
        Route::Redirect { code, location } => {
            direct(req, Reply::empty(code).with_header("Location", location))
        }
        Route::BadRequest => direct(
            req,
            Reply::error(400, "400 Bad Request: the URL could not be decoded"),
        ),
    }
}

/// Checks the row's access class (write scopes), then runs its handler.
fn run(ctx: &Context, endpoint: &Endpoint, key: Option<GroupingKey>, req: Request, body: Body) {
    if let Some(reply) = scope::refuse_access(ctx, &req, endpoint.access) {
        return respond(&ctx.pool, req, reply);
    }
    match (endpoint.handler, key) {
        (Handler::Plain(handle), _) => handle(ctx, req),
        (Handler::Group(handle), Some(key)) => handle(ctx, req, key, body),
        (Handler::Group(_), None) => {
            // Ruled out by the table's tests: a group's handler sits on a
            // pattern that names a group, and the router gives its key.
            log::error!(route = endpoint.name; "a group's handler was routed without a group");
            respond(&ctx.pool, req, Reply::error(500, "Internal Server Error"));
        }
    }
}

/// Runs `then` with the request's grouping key: at once when the router
/// parsed it, else on the pool once parsed there (a long key; a bad one
/// is answered 400 there).
pub(super) fn with_key(
    ctx: &Context,
    req: Request,
    key: GroupingKey,
    then: impl FnOnce(&Context, Request, Vec<Label>) + Send + 'static,
) {
    let key = match key {
        GroupingKey::Parsed(key) => return then(ctx, req, key),
        unparsed => unparsed,
    };
    if !ctx.pool.has_room(Kind::Push) {
        let reply = queue_full_reply("requests with long grouping keys", &req.source(), req.url());
        return respond(&ctx.pool, req, reply);
    }
    let ctx2 = ctx.clone();
    ctx.pool
        .execute_as(Kind::Push, move || match key.parse(ctx2.names) {
            Ok(key) => then(&ctx2, req, key),
            Err(e) => bad_path(&ctx2, req, e),
        });
}

/// The 400 for a push or delete URL that names no valid group.
pub(super) fn bad_path(ctx: &Context, req: Request, e: PathError) {
    log::warn!(source = req.source(), url = req.url(), err:display = e; "invalid push URL");
    respond(&ctx.pool, req, Reply::error(400, e.to_string()));
}

/// Hands an event to the request loop.
pub(super) fn send(ctx: &Context, ev: Event) {
    // The loop only goes away at shutdown; requests still arriving then are
    // dropped, and so are their connections.
    let _ = ctx.events.send(ev);
}
