//! The process's own endpoints, as in the reference's `main.go`: health
//! and readiness probes, answered on the I/O loop from the request loop's
//! heartbeat (never queued behind the work they check), and `/-/quit`,
//! which stops the gateway with `--web.enable-lifecycle`.

use super::send;
use crate::contract::Event;
use crate::http::{Context, Reply, Request, respond};

/// `GET /-/healthy` and `/-/ready`: 200, or 500 when the request loop
/// has been working on one round for longer than
/// [`STUCK_AFTER`](crate::contract::STUCK_AFTER) (stuck, or so far behind
/// that writes wait as long).
pub(crate) fn probe(ctx: &Context, req: Request) {
    let reply = match ctx.beat.stuck() {
        None => Reply::text(200, "OK"),
        Some(busy) => {
            let busy = crate::time::go_duration(busy);
            log::error!(busy = busy.as_str(); "health probe failed: the request loop is stuck");
            Reply::error(
                500,
                format!(
                    "the request loop has been busy for {busy} without answering: it is stuck or far behind"
                ),
            )
        }
    };
    respond(&ctx.pool, req, reply);
}

/// `PUT` or `POST /-/quit`: the loop answers, then stops; 403 without
/// `--web.enable-lifecycle`.
pub(crate) fn quit(ctx: &Context, req: Request) {
    if !ctx.enable_lifecycle {
        return respond(
            &ctx.pool,
            req,
            Reply::text(403, "Lifecycle API is not enabled."),
        );
    }
    let meta = req.meta();
    let reply_to = req.reply_to(&ctx.pool);
    send(ctx, Event::Quit { meta, reply_to });
}

/// `GET /-/quit`, at the root whatever the prefix: the reference
/// registers a handler that explains which methods work.
pub(crate) fn quit_by_get(ctx: &Context, req: Request) {
    respond(
        &ctx.pool,
        req,
        Reply::text(405, "Only POST or PUT requests allowed."),
    );
}
