//! From a complete request, past the gate (`gate`), to its handler:
//! the request loop, the pool or a direct answer. Runs on the I/O loop, so
//! nothing here may block: push parsing goes to the pool.

use std::time::Instant;

use super::budget::{Charge, Class};
use super::gate::{busy, queue_full_reply, too_large};
use super::negotiate::{gzip_accepted, negotiate};
use super::{
    Context, Reply, Request, decode_body_within, is_protobuf, openmetrics_version, respond, scope,
};
use crate::contract::Event;
use crate::http::BodyError;
use crate::http::router::{GroupingKey, Route};
use crate::model::Label;
use crate::pool::Kind;
use crate::store::{self, GroupKey, PushError};
use crate::wire::Meter;
use crate::wire::path::PathError;
use crate::wire::protobuf::{self, ProtoErrorKind};
use crate::wire::selector::DeleteQuery;
use crate::wire::{openmetrics, text_format};

/// Pushes at most this large and not compressed are parsed right on the
/// I/O loop: tens of microseconds, cheaper than a hop to the pool.
const INLINE_PUSH: usize = 16 * 1024;

/// ... and only with a grouping key at most this long: every series gets a
/// copy of the key, so a small body under a key of a hundred thousand
/// pairs is a lot of work, for the pool.
const INLINE_KEY_LABELS: usize = 64;

/// A health or readiness probe's answer: 200, or 500 when the request
/// loop has been working on one round for longer than
/// [`STUCK_AFTER`](crate::contract::STUCK_AFTER) (stuck, or so far behind
/// that writes wait as long).
fn probe(ctx: &Context) -> Reply {
    match ctx.beat.stuck() {
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
    }
}

/// A request body with the budget charge that covers it.
pub(super) struct Body {
    pub data: Vec<u8>,
    pub charge: Charge,
}

/// Runs the handler for `route`. `body` is the request body, read only
/// for pushes (empty otherwise).
pub(super) fn dispatch(ctx: &Context, route: Route, req: Request, body: Body) {
    let direct = |req: Request, reply: Reply| respond(&ctx.pool, req, reply);
    if let Some(reply) = scope::refuse_route(ctx, &req, &route) {
        return direct(req, reply);
    }
    match route {
        Route::Push {
            key: GroupingKey::Parsed(key),
            replace,
        } => {
            if let Some(reply) = scope::refuse_change(ctx, &req, &key) {
                return direct(req, reply);
            }
            let Some((req, target)) = target(ctx, req, key, replace) else {
                return;
            };
            let inline = body.data.len() <= INLINE_PUSH
                && target.key.len() <= INLINE_KEY_LABELS
                && req.header("Content-Encoding").is_none();
            if inline {
                read_push(req, body, target, ctx);
            } else {
                if !ctx.pool.has_room(Kind::Push) {
                    let reply = queue_full_reply("pushes", &req.source(), req.url());
                    return direct(req, reply);
                }
                let ctx2 = ctx.clone();
                let job = move || read_push(req, body, target, &ctx2);
                ctx.pool.execute_as(Kind::Push, job);
            }
        }
        // A long grouping key is parsed by the worker that reads the push.
        Route::Push { key, replace } => {
            if !ctx.pool.has_room(Kind::Push) {
                let reply = queue_full_reply("pushes", &req.source(), req.url());
                return direct(req, reply);
            }
            let ctx2 = ctx.clone();
            let job = move || match key.parse(ctx2.names) {
                Ok(key) => {
                    if let Some(reply) = scope::refuse_change(&ctx2, &req, &key) {
                        return respond(&ctx2.pool, req, reply);
                    }
                    if let Some((req, target)) = target(&ctx2, req, key, replace) {
                        read_push(req, body, target, &ctx2);
                    }
                }
                Err(e) => bad_path(&ctx2, req, e),
            };
            ctx.pool.execute_as(Kind::Push, job);
        }
        Route::Delete { key } => with_key(ctx, req, key, |ctx, req, key| {
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
        }),
        Route::Scrape => {
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
        Route::Status => {
            let scope = scope::scope_of(ctx, &req);
            let reply_to = req.reply_to(&ctx.pool);
            send(ctx, Event::Status { reply_to, scope });
        }
        Route::ApiStatus | Route::ApiMetrics => {
            let metrics = matches!(route, Route::ApiMetrics);
            let reply_to = req.reply_to_with_cors(&ctx.pool);
            send(ctx, Event::Api { metrics, reply_to });
        }
        Route::Wipe => send(
            ctx,
            Event::Wipe {
                reply_to: req.reply_to(&ctx.pool),
            },
        ),
        // Compiling regular expressions is CPU work: on the pool.
        Route::DeleteMatching => {
            if !ctx.pool.has_room(Kind::Match) {
                let reply = queue_full_reply("selector deletes", &req.source(), req.url());
                return direct(req, reply);
            }
            let ctx2 = ctx.clone();
            ctx.pool
                .execute_as(Kind::Match, move || delete_matching(req, &ctx2));
        }
        Route::GroupText { key } => with_key(ctx, req, key, |ctx, req, key| {
            let reply_to = req.reply_to(&ctx.pool);
            send(
                ctx,
                Event::GroupText {
                    key: key.into(),
                    reply_to,
                },
            );
        }),
        Route::Healthy | Route::Ready => direct(req, probe(ctx)),
        Route::Quit if ctx.enable_lifecycle => {
            let meta = req.meta();
            send(
                ctx,
                Event::Quit {
                    meta,
                    reply_to: req.reply_to(&ctx.pool),
                },
            );
        }
        Route::QuitByGet => direct(req, Reply::text(405, "Only POST or PUT requests allowed.")),
        Route::Quit => direct(req, Reply::text(403, "Lifecycle API is not enabled.")),
        Route::BadPath(e) => bad_path(ctx, req, e),
        Route::NotFound => direct(req, Reply::error(404, "404 page not found")),
        Route::MethodNotAllowed { allow } => direct(
            req,
            Reply::error(405, "Method Not Allowed").with_header("Allow", allow),
        ),
        Route::Options { allow } => direct(req, Reply::empty(200).with_header("Allow", allow)),
        Route::ApiOptions => direct(req, super::cors::with_cors(Reply::empty(200))),
        Route::Redirect { code, location } => {
            direct(req, Reply::empty(code).with_header("Location", location))
        }
        Route::BadRequest => direct(
            req,
            Reply::error(400, "400 Bad Request: the URL could not be decoded"),
        ),
    }
}

/// The 400 for a push or delete URL that names no valid group.
/// Runs `then` with the request's grouping key: at once when the router
/// parsed it, else on the pool once parsed there (a long key; a bad one
/// is answered 400 there).
fn with_key(
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

fn bad_path(ctx: &Context, req: Request, e: PathError) {
    log::warn!(source = req.source(), url = req.url(), err:display = e; "invalid push URL");
    respond(&ctx.pool, req, Reply::error(400, e.to_string()));
}

/// Where a push goes, with the TTL its header sets; `None` once a bad
/// header has been answered with 400.
fn target(
    ctx: &Context,
    req: Request,
    key: Vec<Label>,
    replace: bool,
) -> Option<(Request, Target)> {
    let key: GroupKey = key.into();
    match group_ttl(req.header(TTL_HEADER)) {
        Ok(ttl) => Some((req, Target { key, replace, ttl })),
        Err(msg) => {
            log::warn!(source = req.source(), group = store::show_labels(&key), err = msg.as_str(); "rejected push");
            respond(&ctx.pool, req, Reply::error(400, msg));
            None
        }
    }
}

/// Parses a delete's selectors (on the pool) and hands it to the loop, or
/// answers 400 in the API's JSON envelope.
fn delete_matching(req: Request, ctx: &Context) {
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
            respond(&ctx.pool, req, super::cors::with_cors(reply));
        }
    }
}

fn send(ctx: &Context, ev: Event) {
    // The loop only goes away at shutdown; requests still arriving then are
    // dropped, and so are their connections.
    let _ = ctx.events.send(ev);
}

/// The request header that sets a group's own TTL (see `store::expiry`).
pub(super) const TTL_HEADER: &str = "Pushgateway-Group-TTL";

/// The TTL a push sets, in Go's duration syntax (`30m`, `1h30m`; `0` is
/// never); an absent header keeps the group's.
fn group_ttl(header: Option<&str>) -> Result<Option<std::time::Duration>, String> {
    let Some(v) = header else {
        return Ok(None);
    };
    crate::cli::parse_duration(v.trim())
        .map(Some)
        .map_err(|why| format!("invalid {TTL_HEADER} header {v:?}: {why} (a duration like 30m or 1h30m; 0 is never)"))
}

/// Where a push goes and what it sets besides its metrics.
struct Target {
    key: GroupKey,
    replace: bool,
    ttl: Option<std::time::Duration>,
}

/// Decompresses, parses and prepares a push, then hands it to the loop.
fn read_push(req: Request, raw: Body, target: Target, ctx: &Context) {
    let started = Instant::now();
    let size = raw.data.len();
    match prepare(&req, raw, target, ctx) {
        Ok((push, charge)) => {
            let meta = req.meta();
            let reply_to = req.reply_to(&ctx.pool);
            send(
                ctx,
                Event::Push {
                    push,
                    meta,
                    started,
                    size,
                    reply_to,
                },
            );
            // The store owns the push now.
            drop(charge);
        }
        // Every charge of the push was given back before the answer goes
        // out: a client that goes on at once finds the budget free.
        Err(reply) => respond(&ctx.pool, req, reply),
    }
}

/// A prepared push, or the inconsistency the loop records for its group.
type Prepared = Result<store::PreparedPush, (GroupKey, PushError)>;

/// The body of a push decompressed, parsed and prepared, with the charge
/// that covers the prepared push; the answer instead when it is refused.
/// The decoded body stays charged while it is parsed, each record is
/// charged as it is made, and the prepared push before it is built.
fn prepare(
    req: &Request,
    raw: Body,
    target: Target,
    ctx: &Context,
) -> Result<(Prepared, Charge), Reply> {
    let Target { key, replace, ttl } = target;
    let Body { data: raw, charge } = raw;
    let invalid = |msg: String| {
        log::warn!(source = req.source(), group = store::show_labels(&key), err = msg.as_str(); "rejected push");
        Reply::error(400, msg)
    };
    let refused = || busy(&req.source(), req.url());
    let mut out_charge = ctx.budget.charge(Class::Body);
    let decoded = decode_body_within(
        req.header("Content-Encoding"),
        raw,
        ctx.max_body_bytes,
        &mut |capacity| out_charge.grow_to(capacity),
    );
    let body = match decoded {
        Ok(b) => b,
        Err(BodyError::Busy) => return Err(refused()),
        Err(BodyError::TooLarge) => return Err(too_large(ctx, None, &req.source(), req.url())),
        Err(BodyError::Decompress { encoding, err }) => {
            return Err(invalid(super::body::decompress_message(encoding, &err)));
        }
    };
    let mut parse_charge = ctx.budget.charge(Class::Parse);
    let families = match parse_push(req, &body, ctx, &mut parse_charge) {
        Ok(families) => families,
        Err(Refusal::Invalid(e)) => return Err(invalid(e)),
        Err(Refusal::Busy) => return Err(refused()),
        Err(Refusal::Inconsistent(e)) => return Ok((Err((key, e)), parse_charge)),
    };
    // The raw and decoded bodies are gone now.
    drop(body);
    drop((charge, out_charge));
    // Every series gets a copy of the grouping key.
    let cost = store::prepared_cost(&key, &families);
    if !parse_charge.grow_by(cost) {
        return Err(refused());
    }
    let prepared = store::prepare_push(key.clone(), families, replace)
        .map(|mut p| {
            p.ttl = ttl;
            p
        })
        .map_err(|e| (key, e));
    // The parsed records are gone too; the prepared push holds at most
    // `cost`.
    parse_charge.shrink_to(cost);
    Ok((prepared, parse_charge))
}

/// Why a push body yields no families.
enum Refusal {
    /// Malformed: 400 with this message.
    Invalid(String),
    /// The memory budget cannot cover its records: 503.
    Busy,
    /// Well-formed but inconsistent: recorded for the group by the loop.
    Inconsistent(PushError),
}

/// Parses a decoded push body in the format its Content-Type names
/// (OpenMetrics text, delimited protobuf, else text 0.0.4 as in the
/// reference), charging every record to `charge`.
fn parse_push(
    req: &Request,
    body: &[u8],
    ctx: &Context,
    charge: &mut Charge,
) -> Result<Vec<crate::model::MetricFamily>, Refusal> {
    let mut meter = ParseMeter { charge, credit: 0 };
    let content_type = req.header("Content-Type");
    if let Some(version) = openmetrics_version(content_type) {
        if let Err(v) = version {
            return Err(Refusal::Invalid(format!(
                "unsupported OpenMetrics version {v:?}: pushes of OpenMetrics text must be version 1.0.0 (or 0.0.1)"
            )));
        }
        return openmetrics::parse_metered(body, &mut meter).map_err(|e| match e.kind {
            openmetrics::ErrorKind::OverBudget => Refusal::Busy,
            _ => Refusal::Invalid(e.to_string()),
        });
    }
    if is_protobuf(content_type) {
        protobuf::decode_metered(body, ctx.names, &mut meter).map_err(|e| match e.kind {
            // A consistency failure in the reference, recorded for the
            // group: the loop's business.
            ProtoErrorKind::MissingValue { family, expected } => {
                Refusal::Inconsistent(PushError::MissingValue {
                    metric: family,
                    expected,
                })
            }
            ProtoErrorKind::LabelNameInFamily { family, label } => {
                Refusal::Inconsistent(PushError::InvalidLabelName {
                    metric: family,
                    label,
                })
            }
            ProtoErrorKind::OverBudget => Refusal::Busy,
            _ => Refusal::Invalid(e.to_string()),
        })
    } else {
        text_format::parse_metered(body, ctx.names, &mut meter).map_err(|e| match e.kind {
            text_format::ErrorKind::OverBudget => Refusal::Busy,
            _ => Refusal::Invalid(e.to_string()),
        })
    }
}

/// How much a parse meter takes from the budget at a time: one atomic
/// update per 64 KiB of records, not per label.
const METER_CHUNK: usize = 64 * 1024;

/// The parsers' meter on the memory budget: takes chunks of
/// [`METER_CHUNK`] and hands them out record by record; near the end of
/// the budget, exactly what a record needs.
struct ParseMeter<'c> {
    charge: &'c mut Charge,
    /// Taken from the budget, not yet handed out.
    credit: usize,
}

impl Meter for ParseMeter<'_> {
    fn take(&mut self, bytes: usize) -> bool {
        if bytes <= self.credit {
            self.credit -= bytes;
            return true;
        }
        let need = bytes - self.credit;
        let chunk = need.max(METER_CHUNK);
        if self.charge.grow_by(chunk) {
            self.credit = chunk - need;
            return true;
        }
        if self.charge.grow_by(need) {
            self.credit = 0;
            return true;
        }
        false
    }
}
