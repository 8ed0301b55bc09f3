//! `GET /metrics` (`--web.telemetry-path`): the scrape. The format and
//! compression are negotiated here; the request loop only shares the
//! store's state with a body built on the pool (`Event::Scrape`).

use super::send;
use crate::contract::Event;
use crate::http::negotiate::{gzip_accepted, negotiate};
use crate::http::{Context, Request};

/// Asks the loop for a scrape in the format `Accept` names.
pub(crate) fn scrape(ctx: &Context, req: Request) {
    let (format, escaping) = negotiate(req.header("Accept"));
    let gzip = gzip_accepted(req.header("Accept-Encoding"));
    let reply_to = req.reply_to(&ctx.pool);
    send(
        ctx,
        Event::Scrape {
            format,
            escaping,
            gzip,
            reply_to,
        },
    );
}
