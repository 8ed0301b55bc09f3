//! The admin API, routed only with `--web.enable-admin-api`: `PUT
//! /api/v1/admin/wipe` (the reference's `handler/wipe.go`) and our
//! selector delete, `PUT` or `POST /api/v1/admin/delete?match[]=...`. The
//! request loop deletes (`Event::Wipe`, `Event::DeleteMatching`).

use super::send;
use crate::contract::Event;
use crate::http::gate::queue_full_reply;
use crate::http::{Context, Reply, Request, cors, respond};
use crate::pool::Kind;
use crate::wire::selector::DeleteQuery;

/// Deletes every group.
pub(crate) fn wipe(ctx: &Context, req: Request) {
    let reply_to = req.reply_to(&ctx.pool);
    send(ctx, Event::Wipe { reply_to });
}

/// Deletes the groups the selectors match. Compiling regular expressions
/// is CPU work: on the pool.
pub(crate) fn delete_matching(ctx: &Context, req: Request) {
    if !ctx.pool.has_room(Kind::Match) {
        let reply = queue_full_reply("selector deletes", &req.source(), req.url());
        return respond(&ctx.pool, req, reply);
    }
    let ctx2 = ctx.clone();
    ctx.pool
        .execute_as(Kind::Match, move || parse_selectors(req, &ctx2));
}

/// Parses a delete's selectors (on the pool) and hands it to the loop, or
/// answers 400 in the API's JSON envelope.
fn parse_selectors(req: Request, ctx: &Context) {
    let query = req.url().split_once('?').map_or("", |(_, q)| q);
    match DeleteQuery::parse(query) {
        Ok(query) => {
            let meta = req.meta();
            let reply_to = req.reply_to_with_cors(&ctx.pool);
            send(
                ctx,
                Event::DeleteMatching {
                    query,
                    meta,
                    reply_to,
                },
            );
        }
        Err(e) => {
            log::warn!(source = req.source(), url = req.url(), err = e; "invalid delete selector");
            let reply = Reply::json(400, crate::gateway::admin::error_json(&e));
            respond(&ctx.pool, req, cors::with_cors(reply));
        }
    }
}
