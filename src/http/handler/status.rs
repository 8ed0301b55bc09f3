//! The web page, as the reference's `handler/status.go`: `GET /` (and
//! `/status`), and the page's request for one group's metrics when a row
//! is expanded (`GET /ui/group/...`, ours). Both are rendered off the
//! request loop (`gateway::ui`).

use super::{Body, send, with_key};
use crate::contract::Event;
use crate::http::routes::GroupingKey;
use crate::http::{Context, Request, scope};

/// The page; with write scopes, it offers changes only where the
/// requester's identity may make them.
pub(crate) fn page(ctx: &Context, req: Request) {
    let scope = scope::scope_of(ctx, &req);
    let reply_to = req.reply_to(&ctx.pool);
    send(ctx, Event::Status { reply_to, scope });
}

/// One group's metrics as text, for an expanded row of the page.
pub(crate) fn group_text(ctx: &Context, req: Request, key: GroupingKey, _body: Body) {
    with_key(ctx, req, key, |ctx, req, key| {
        let reply_to = req.reply_to(&ctx.pool);
        send(
            ctx,
            Event::GroupText {
                key: key.into(),
                reply_to,
            },
        );
    });
}
