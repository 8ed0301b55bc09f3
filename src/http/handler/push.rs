//! `PUT` and `POST /metrics/job/...`: a push replaces (PUT) or merges
//! into (POST) the metrics of one group, as the reference's
//! `handler/push.go`. The body is decompressed, parsed and prepared here,
//! on the I/O loop when it is small and on the pool otherwise, charged to
//! the memory budget as it grows; the loop only checks and applies the
//! prepared push (`Event::Push`).

use std::time::Instant;

use super::{Body, bad_path, send};
use crate::contract::Event;
use crate::http::budget::{Charge, Class};
use crate::http::gate::{busy, queue_full_reply, too_large};
use crate::http::routes::GroupingKey;
use crate::http::{
    BodyError, Context, Reply, Request, decode_body_within, is_protobuf, openmetrics_version,
    respond, scope,
};
use crate::model::Label;
use crate::pool::Kind;
use crate::store::{self, GroupKey, PushError};
use crate::wire::Meter;
use crate::wire::protobuf::{self, ProtoErrorKind};
use crate::wire::{openmetrics, text_format};

/// Pushes at most this large and not compressed are parsed right on the
/// I/O loop: tens of microseconds, cheaper than a hop to the pool.
const INLINE_PUSH: usize = 16 * 1024;

/// ... and only with a grouping key at most this long: every series gets a
/// copy of the key, so a small body under a key of a hundred thousand
/// pairs is a lot of work, for the pool.
const INLINE_KEY_LABELS: usize = 64;

/// Pushes to the group of `key`: `PUT` replaces it, `POST` merges into
/// it. A long grouping key is parsed by the worker that reads the push.
pub(crate) fn push(ctx: &Context, req: Request, key: GroupingKey, body: Body) {
    let replace = req.method == "PUT";
    let key = match key {
        GroupingKey::Parsed(key) => return push_to(ctx, req, key, replace, body),
        unparsed => unparsed,
    };
    if !ctx.pool.has_room(Kind::Push) {
        let reply = queue_full_reply("pushes", &req.source(), req.url());
        return respond(&ctx.pool, req, reply);
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

/// A push whose key the router parsed: read right here when small (see
/// [`INLINE_PUSH`]), else on the pool.
fn push_to(ctx: &Context, req: Request, key: Vec<Label>, replace: bool, body: Body) {
    if let Some(reply) = scope::refuse_change(ctx, &req, &key) {
        return respond(&ctx.pool, req, reply);
    }
    let Some((req, target)) = target(ctx, req, key, replace) else {
        return;
    };
    let inline = body.data.len() <= INLINE_PUSH
        && target.key.len() <= INLINE_KEY_LABELS
        && req.header("Content-Encoding").is_none();
    if inline {
        return read_push(req, body, target, ctx);
    }
    if !ctx.pool.has_room(Kind::Push) {
        let reply = queue_full_reply("pushes", &req.source(), req.url());
        return respond(&ctx.pool, req, reply);
    }
    let ctx2 = ctx.clone();
    let job = move || read_push(req, body, target, &ctx2);
    ctx.pool.execute_as(Kind::Push, job);
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

/// The request header that sets a group's own TTL (see `store::expiry`).
pub(crate) const TTL_HEADER: &str = "Pushgateway-Group-TTL";

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

/// Decoded bodies from this size on are followed by a heap trim on the
/// worker, once their push is prepared. Their parse frees a few times
/// their size (the body, the parser's tables), and the allocators kept it
/// resident under the store the push then builds: glibc in arenas whose
/// holes the store's blocks did not fit, the static build's mimalloc for
/// a second (its purge delay) while the push was over sooner. A trim costs
/// a few milliseconds, against the tenths of a second such a push takes.
const TRIM_AFTER_PUSHES_OF: usize = 1 << 20;

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
            return Err(invalid(crate::http::body::decompress_message(
                encoding, &err,
            )));
        }
    };
    let mut parse_charge = ctx.budget.charge(Class::Parse);
    let families = match parse_push(req, &body, ctx, &mut parse_charge) {
        Ok(families) => families,
        Err(Refusal::Invalid(e)) => return Err(invalid(e)),
        Err(Refusal::Busy) => return Err(refused()),
        Err(Refusal::Inconsistent(e)) => return Ok((Err((key, e)), parse_charge)),
    };
    let decoded_size = body.len();
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
    // What parsing a big body freed goes back to the system now, before
    // the store grows on top of it (see `TRIM_AFTER_PUSHES_OF`).
    if decoded_size >= TRIM_AFTER_PUSHES_OF {
        crate::sys::trim_heap();
    }
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
