//! The HTTP side: listeners, routing requests to the loop or answering them
//! directly, reading bodies and writing responses off the loop.
//!
//! Data flows one way. An acceptor thread per listener takes each request
//! from tiny_http (headers already read) and routes it. Requests that need
//! the store (push, delete, scrape, status page) reach the single request
//! loop as an `Event`; a push first goes through a pool thread that reads
//! and parses its body, so a client trickling its body in one byte a second
//! only ever occupies a pool thread. Every response is written from a pool
//! thread too, so a scraper that stops reading cannot stall the loop.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use tiny_http::{Header, Request, Response, Server};

use crate::pool::Pool;
use crate::router::{Route, Routes};
use crate::store::{self, GroupKey, PreparedPush, PushError};
use crate::telemetry::Telemetry;
use crate::text_format;

/// Work for the request loop, the only owner of the store.
pub enum Event {
    Push {
        req: Request,
        push: Result<PreparedPush, (GroupKey, PushError)>,
        started: Instant,
        size: usize,
    },
    Delete {
        req: Request,
        key: GroupKey,
    },
    Scrape {
        req: Request,
    },
    Status {
        req: Request,
    },
    /// `PUT /-/quit` with `--web.enable-lifecycle`.
    Quit {
        req: Request,
    },
    /// SIGTERM or SIGINT.
    Shutdown {
        reason: &'static str,
    },
    /// The snapshot writer finished a write.
    Persisted(crate::persistence::WriteOutcome),
}

/// A response, built anywhere and written on a pool thread.
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut body = body.into().into_bytes();
        if !body.is_empty() && !body.ends_with(b"\n") {
            body.push(b'\n');
        }
        Reply {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            headers: Vec::new(),
            body,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// Writes `reply` to the client on a pool thread.
pub fn respond(pool: &Pool, req: Request, reply: Reply) {
    pool.execute(move || {
        let mut headers = Vec::with_capacity(reply.headers.len() + 1);
        if let Some(ct) = reply.content_type {
            headers.extend(Header::from_bytes("Content-Type", ct).ok());
        }
        for (k, v) in &reply.headers {
            headers.extend(Header::from_bytes(k.as_bytes(), v.as_bytes()).ok());
        }
        let len = reply.body.len();
        let resp = Response::new(
            reply.status.into(),
            headers,
            io::Cursor::new(reply.body),
            Some(len),
            None,
        );
        if let Err(e) = req.respond(resp) {
            log::debug!(err:display = e; "could not write response");
        }
    });
}

/// What every acceptor thread needs.
#[derive(Clone)]
pub struct Context {
    pub routes: Arc<Routes>,
    pub pool: Pool,
    pub events: Sender<Event>,
    pub telemetry: Telemetry,
    pub max_body_bytes: u64,
    pub enable_lifecycle: bool,
}

/// Binds one `--web.listen-address`. A bare `:port` means every interface,
/// IPv6 and IPv4 alike, as in Go.
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    if let Some(port) = addr.strip_prefix(':') {
        return TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")));
    }
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    TcpListener::bind(&addrs[..])
}

/// Takes requests from one listener until the server is unblocked.
pub fn accept_loop(server: Arc<Server>, ctx: Context) {
    for req in server.incoming_requests() {
        dispatch(req, &ctx);
    }
}

fn dispatch(req: Request, ctx: &Context) {
    let method = req.method().as_str().to_owned();
    let route = ctx.routes.route(&method, req.url());
    let direct = |req: Request, handler: &'static str, reply: Reply| {
        if !handler.is_empty() {
            ctx.telemetry.count_request(reply.status, handler, &method);
        }
        respond(&ctx.pool, req, reply);
    };
    match route {
        Route::Push { key, replace } => {
            let ctx2 = ctx.clone();
            ctx.pool
                .execute(move || read_push(req, key.into(), replace, &method, ctx2));
        }
        Route::Delete { key } => send(ctx, Event::Delete { req, key: key.into() }),
        Route::Scrape => send(ctx, Event::Scrape { req }),
        Route::Status => send(ctx, Event::Status { req }),
        Route::Healthy => direct(req, "healthy", Reply::text(200, "OK")),
        Route::Ready => direct(req, "ready", Reply::text(200, "OK")),
        Route::Quit if ctx.enable_lifecycle => send(ctx, Event::Quit { req }),
        Route::Quit => direct(req, "quit", Reply::text(403, "Lifecycle API is not enabled.")),
        Route::BadPath(e) => {
            log::warn!(source = source(&req), url = req.url(), err:display = e; "invalid push URL");
            let handler = if method == "DELETE" { "delete" } else { "push" };
            direct(req, handler, Reply::text(400, e.to_string()));
        }
        Route::NotFound => direct(req, "", Reply::text(404, "404 page not found")),
        Route::MethodNotAllowed { allow } => direct(
            req,
            "",
            Reply::text(405, "Method Not Allowed").with_header("Allow", allow),
        ),
        Route::Options { allow } => direct(req, "", Reply::empty(200).with_header("Allow", allow)),
        Route::Redirect { code, location } => {
            direct(req, "", Reply::empty(code).with_header("Location", location))
        }
        Route::BadRequest => direct(
            req,
            "",
            Reply::text(400, "400 Bad Request: the URL could not be decoded"),
        ),
    }
}

fn send(ctx: &Context, ev: Event) {
    // The loop only goes away at shutdown; requests still arriving then are
    // dropped, which closes their connections.
    let _ = ctx.events.send(ev);
}

pub fn source(req: &Request) -> String {
    req.remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into())
}

#[derive(Debug)]
enum BodyError {
    TooLarge,
    Io(io::Error),
}

/// Reads the whole body, refusing more than `max` bytes.
fn read_body(req: &mut Request, max: u64) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = req.body_length() {
        if len as u64 > max {
            return Err(BodyError::TooLarge);
        }
    }
    let cap = req.body_length().unwrap_or(0).min(max as usize);
    let mut body = Vec::with_capacity(cap);
    req.as_reader()
        .take(max + 1)
        .read_to_end(&mut body)
        .map_err(BodyError::Io)?;
    if body.len() as u64 > max {
        return Err(BodyError::TooLarge);
    }
    Ok(body)
}

/// On a pool thread: read and parse a push, then hand it to the loop.
fn read_push(mut req: Request, key: GroupKey, replace: bool, method: &str, ctx: Context) {
    let started = Instant::now();
    let fail = |req: Request, status: u16, msg: String| {
        ctx.telemetry.count_request(status, "push", method);
        respond(&ctx.pool, req, Reply::text(status, msg));
    };
    let body = match read_body(&mut req, ctx.max_body_bytes) {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let msg = format!(
                "request body larger than {} bytes (--push.max-body-size)",
                ctx.max_body_bytes
            );
            log::warn!(source = source(&req), group = store::show_labels(&key); "{msg}");
            return fail(req, 413, msg);
        }
        Err(BodyError::Io(e)) => {
            log::warn!(source = source(&req), err:display = e; "error reading request body");
            return fail(req, 400, format!("error reading request body: {e}"));
        }
    };
    let families = match text_format::parse(&body) {
        Ok(f) => f,
        Err(e) => {
            log::warn!(source = source(&req), group = store::show_labels(&key), err:display = e; "rejected push");
            return fail(req, 400, e.to_string());
        }
    };
    let push = store::prepare_push(key.clone(), families, replace).map_err(|e| (key, e));
    send(
        &ctx,
        Event::Push {
            req,
            push,
            started,
            size: body.len(),
        },
    );
}
