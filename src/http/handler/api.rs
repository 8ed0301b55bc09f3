//! The JSON API, `/api/v1/...`, as the reference's `api/v1`: its status
//! and every group's metrics, answered by the request loop
//! (`Event::Api`), and the CORS preflight for any path under it. Its
//! answers carry the API's CORS headers.

use super::send;
use crate::contract::Event;
use crate::http::{Context, Reply, Request, cors, respond};

/// `GET /api/v1/status`: build information, flags, start time.
pub(crate) fn status(ctx: &Context, req: Request) {
    let reply_to = req.reply_to_with_cors(&ctx.pool);
    let metrics = false;
    send(ctx, Event::Api { metrics, reply_to });
}

/// `GET /api/v1/metrics`: every group's metrics.
pub(crate) fn metrics(ctx: &Context, req: Request) {
    let reply_to = req.reply_to_with_cors(&ctx.pool);
    let metrics = true;
    send(ctx, Event::Api { metrics, reply_to });
}

/// `OPTIONS /api/v1/...`: a CORS preflight, answered 200 with the API's
/// CORS headers whatever the path, as the reference does.
pub(crate) fn options(ctx: &Context, req: Request) {
    respond(&ctx.pool, req, cors::with_cors(Reply::empty(200)));
}
