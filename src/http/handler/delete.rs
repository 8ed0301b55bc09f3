//! `DELETE /metrics/job/...`: deletes one group, as the reference's
//! `handler/delete.go`. Answered 202 by the request loop whether the group
//! existed or not (`Event::Delete`).

use super::{Body, send, with_key};
use crate::contract::Event;
use crate::http::routes::GroupingKey;
use crate::http::{Context, Request, respond, scope};

/// Deletes the group of `key`, once the write scopes allow it.
pub(crate) fn delete(ctx: &Context, req: Request, key: GroupingKey, _body: Body) {
    with_key(ctx, req, key, |ctx, req, key| {
        if let Some(reply) = scope::refuse_change(ctx, &req, &key) {
            return respond(&ctx.pool, req, reply);
        }
        let meta = req.meta();
        let reply_to = req.reply_to(&ctx.pool);
        let key = key.into();
        send(
            ctx,
            Event::Delete {
                key,
                meta,
                reply_to,
            },
        );
    });
}
