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
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tiny_http::{Header, Request, Response, Server};

use crate::auth::Auth;
use crate::model::NameScheme;
use crate::pool::Pool;
use crate::protobuf;
use crate::rate_limit::RateLimiter;
use crate::router::{Route, Routes};
use crate::store::{self, GroupKey, PreparedPush, PushError};
use crate::telemetry::Telemetry;
use crate::text_format;
use crate::web_reload::WebReloader;

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
    /// `GET /api/v1/status` or `/api/v1/metrics`.
    Api {
        req: Request,
        metrics: bool,
    },
    Wipe {
        req: Request,
    },
    /// One group's metrics as text, for the web page.
    GroupText {
        req: Request,
        key: GroupKey,
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
    /// Compress the body with gzip before sending (done on the pool
    /// thread, not in the loop).
    pub gzip: bool,
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
            gzip: false,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
            gzip: false,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// The web configuration, whose `http_server_config.headers` go on every
/// response; set once at start-up when there is a web config file.
pub static WEB_CONFIG: OnceLock<Arc<WebReloader>> = OnceLock::new();

/// Writes `reply` to the client on a pool thread.
pub fn respond(pool: &Pool, req: Request, mut reply: Reply) {
    pool.execute(move || {
        if reply.gzip {
            match gzip(&reply.body) {
                Ok(z) => {
                    reply.body = z;
                    reply.headers.push(("Content-Encoding", "gzip".into()));
                }
                Err(e) => log::warn!(err:display = e; "gzip failed; sending uncompressed"),
            }
        }
        let mut headers = Vec::with_capacity(reply.headers.len() + 1);
        if let Some(ct) = reply.content_type {
            headers.extend(Header::from_bytes("Content-Type", ct).ok());
        }
        for (k, v) in &reply.headers {
            headers.extend(Header::from_bytes(k.as_bytes(), v.as_bytes()).ok());
        }
        if let Some(web) = WEB_CONFIG.get() {
            for (k, v) in web.headers().iter() {
                headers.extend(Header::from_bytes(k.as_bytes(), v.as_bytes()).ok());
            }
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

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// The value of a request header, if present.
pub fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
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
    /// Name rules for pushed bodies (`--push.enable-utf8-names`).
    pub names: NameScheme,
    /// The web config file's users (basic authentication), when there is one.
    pub web: Option<Arc<WebReloader>>,
    /// `rate_limit` of the web configuration.
    pub limiter: Option<Arc<RateLimiter>>,
}

/// Binds one `--web.listen-address`. A bare `:port` means every interface,
/// IPv6 and IPv4 alike, as in Go.
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    let listener = if let Some(port) = addr.strip_prefix(':') {
        TcpListener::bind(format!("[::]:{port}"))
            .or_else(|_| TcpListener::bind(format!("0.0.0.0:{port}")))?
    } else {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        TcpListener::bind(&addrs[..])?
    };
    set_nodelay(&listener);
    Ok(listener)
}

/// Turns off Nagle's algorithm for every connection accepted from
/// `listener` (Linux copies the option to accepted sockets). tiny_http
/// writes a response's head and body separately, and with Nagle on, a
/// keep-alive client such as Prometheus would wait for its own delayed ACK,
/// 40 ms, on every answer larger than one buffer.
fn set_nodelay(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd, a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::warn!(err:display = io::Error::last_os_error(); "cannot set TCP_NODELAY; keep-alive answers may be delayed");
    }
}

/// The listening sockets systemd passed (`--web.systemd-socket`): file
/// descriptors 3 to 3+LISTEN_FDS-1, meant for us if LISTEN_PID is our pid.
pub fn systemd_listeners() -> Result<Vec<TcpListener>, String> {
    use std::os::fd::FromRawFd;
    let var = |name: &str| {
        std::env::var(name).map_err(|_| {
            format!("{name} is not set; is the gateway started by a systemd .socket unit?")
        })
    };
    let pid: u32 = var("LISTEN_PID")?
        .parse()
        .map_err(|_| "LISTEN_PID is not a number".to_owned())?;
    if pid != std::process::id() {
        return Err(format!(
            "LISTEN_PID {pid} is not this process ({})",
            std::process::id()
        ));
    }
    let n: i32 = var("LISTEN_FDS")?
        .parse()
        .map_err(|_| "LISTEN_FDS is not a number".to_owned())?;
    if !(1..=64).contains(&n) {
        return Err(format!("LISTEN_FDS={n}: expected between 1 and 64 sockets"));
    }
    let mut out = Vec::new();
    for fd in 3..3 + n {
        // SAFETY: fstat only fills the zeroed struct; the fd number comes
        // from systemd's protocol and is checked to be a socket before we
        // take ownership of it, once.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                return Err(format!("file descriptor {fd} from systemd is not a socket"));
            }
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            let listener = TcpListener::from_raw_fd(fd);
            set_nodelay(&listener);
            out.push(listener);
        }
    }
    Ok(out)
}

/// Takes requests from one listener until the server is unblocked.
pub fn accept_loop(server: Arc<Server>, ctx: Context) {
    for req in server.incoming_requests() {
        if let Some(limiter) = &ctx.limiter
            && !limiter.allow()
        {
            log::debug!(source = source(&req), url = req.url(); "rate limit reached");
            respond(&ctx.pool, req, Reply::text(429, "Too Many Requests"));
            continue;
        }
        let auth = match ctx.web.as_ref().map(|w| w.current()) {
            None => None,
            Some(Ok(active)) => active.auth.clone(),
            // Already logged when the file went bad.
            Some(Err(_)) => {
                respond(&ctx.pool, req, Reply::text(500, "Internal Server Error"));
                continue;
            }
        };
        authorize(req, &ctx, auth);
    }
}

/// Lets a request through once its credentials are good. Cached
/// credentials are checked right here; anything else goes to a pool thread,
/// as a bcrypt check takes tens of milliseconds.
fn authorize(req: Request, ctx: &Context, auth: Option<Arc<Auth>>) {
    let Some(auth) = auth else {
        return dispatch(req, ctx);
    };
    if auth.cached(header(&req, "Authorization")) {
        return dispatch(req, ctx);
    }
    let ctx2 = ctx.clone();
    ctx.pool.execute(move || {
        if auth.check(header(&req, "Authorization")) {
            dispatch(req, &ctx2);
        } else {
            log::warn!(source = source(&req), url = req.url(); "unauthorized request");
            let reply = Reply::text(401, "Unauthorized").with_header("WWW-Authenticate", "Basic");
            respond(&ctx2.pool, req, reply);
        }
    });
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
        Route::Delete { key } => send(
            ctx,
            Event::Delete {
                req,
                key: key.into(),
            },
        ),
        Route::Scrape => send(ctx, Event::Scrape { req }),
        Route::Status => send(ctx, Event::Status { req }),
        Route::ApiStatus => send(
            ctx,
            Event::Api {
                req,
                metrics: false,
            },
        ),
        Route::ApiMetrics => send(ctx, Event::Api { req, metrics: true }),
        Route::Wipe => send(ctx, Event::Wipe { req }),
        Route::GroupText { key } => send(
            ctx,
            Event::GroupText {
                req,
                key: key.into(),
            },
        ),
        Route::Healthy => direct(req, "healthy", Reply::text(200, "OK")),
        Route::Ready => direct(req, "ready", Reply::text(200, "OK")),
        Route::Quit if ctx.enable_lifecycle => send(ctx, Event::Quit { req }),
        Route::Quit => direct(
            req,
            "quit",
            Reply::text(403, "Lifecycle API is not enabled."),
        ),
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
        Route::ApiOptions => direct(req, "", crate::api::with_cors(Reply::empty(200))),
        Route::Redirect { code, location } => direct(
            req,
            "",
            Reply::empty(code).with_header("Location", location),
        ),
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
pub enum BodyError {
    TooLarge,
    Io(io::Error),
    Decompress {
        encoding: &'static str,
        err: io::Error,
    },
}

/// Reads the whole body, refusing more than `max` bytes.
fn read_body(req: &mut Request, max: u64) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = req.body_length()
        && len as u64 > max
    {
        return Err(BodyError::TooLarge);
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

/// Undoes `Content-Encoding: gzip` or `snappy` (framed). The size cap
/// applies to the decompressed body too, so a decompression bomb stops at
/// `max` bytes instead of exhausting memory. Other encodings are read as
/// they are, as the reference does.
pub fn decode_body(encoding: Option<&str>, body: Vec<u8>, max: u64) -> Result<Vec<u8>, BodyError> {
    let encoding = encoding.unwrap_or("").trim().to_ascii_lowercase();
    let (name, mut reader): (&'static str, Box<dyn Read + '_>) = match encoding.as_str() {
        "gzip" | "x-gzip" => ("gzip", Box::new(flate2::read::GzDecoder::new(&body[..]))),
        "snappy" => ("snappy", Box::new(snap::read::FrameDecoder::new(&body[..]))),
        _ => return Ok(body),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max as usize));
    (&mut reader)
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|err| BodyError::Decompress {
            encoding: name,
            err,
        })?;
    if out.len() as u64 > max {
        return Err(BodyError::TooLarge);
    }
    Ok(out)
}

/// Is this the Content-Type of the delimited protobuf format? Parameters
/// may come in any order, with spaces, and quoted; the media type and
/// parameter names are case-insensitive, the values are not (as in the
/// reference, which uses Go's mime.ParseMediaType).
pub fn is_protobuf(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/vnd.google.protobuf") {
        return false;
    }
    let (mut proto, mut encoding) = (None, None);
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => proto = Some(v.to_owned()),
            "encoding" => encoding = Some(v.to_owned()),
            _ => {}
        }
    }
    proto.as_deref() == Some("io.prometheus.client.MetricFamily")
        && encoding.as_deref() == Some("delimited")
}

/// On a pool thread: read, decompress and parse a push, then hand it to
/// the loop.
fn read_push(mut req: Request, key: GroupKey, replace: bool, method: &str, ctx: Context) {
    let started = Instant::now();
    let fail = |req: Request, status: u16, msg: String| {
        ctx.telemetry.count_request(status, "push", method);
        respond(&ctx.pool, req, Reply::text(status, msg));
    };
    let too_large = format!(
        "request body larger than {} bytes (--push.max-body-size), before or after decompression",
        ctx.max_body_bytes
    );
    let raw = match read_body(&mut req, ctx.max_body_bytes) {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            log::warn!(source = source(&req), group = store::show_labels(&key); "{too_large}");
            return fail(req, 413, too_large);
        }
        Err(e) => {
            log::warn!(source = source(&req), err:? = e; "error reading request body");
            return fail(req, 400, format!("error reading request body: {e:?}"));
        }
    };
    let size = raw.len();
    let body = match decode_body(header(&req, "Content-Encoding"), raw, ctx.max_body_bytes) {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            log::warn!(source = source(&req), group = store::show_labels(&key); "{too_large}");
            return fail(req, 413, too_large);
        }
        Err(BodyError::Decompress { encoding, err }) => {
            let msg = format!("cannot decompress {encoding} request body: {err}");
            log::warn!(source = source(&req), group = store::show_labels(&key); "{msg}");
            return fail(req, 400, msg);
        }
        Err(BodyError::Io(err)) => {
            return fail(req, 400, format!("error reading request body: {err}"));
        }
    };
    let parsed = if is_protobuf(header(&req, "Content-Type")) {
        protobuf::decode_with(&body, ctx.names).map_err(|e| e.to_string())
    } else {
        text_format::parse_with(&body, ctx.names).map_err(|e| e.to_string())
    };
    let families = match parsed {
        Ok(f) => f,
        Err(e) => {
            log::warn!(source = source(&req), group = store::show_labels(&key), err = e; "rejected push");
            return fail(req, 400, e);
        }
    };
    let push = store::prepare_push(key.clone(), families, replace).map_err(|e| (key, e));
    send(
        &ctx,
        Event::Push {
            req,
            push,
            started,
            size,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_content_types() {
        assert!(is_protobuf(Some(protobuf::CONTENT_TYPE)));
        assert!(is_protobuf(Some(
            "Application/Vnd.Google.Protobuf;encoding=delimited;  PROTO=\"io.prometheus.client.MetricFamily\""
        )));
        assert!(!is_protobuf(Some(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text"
        )));
        assert!(!is_protobuf(Some("text/plain; version=0.0.4")));
        assert!(!is_protobuf(None));
    }

    #[test]
    fn decompression_is_capped() {
        use std::io::Write as _;
        let zeros = vec![0u8; 1 << 20];
        let z = gzip(&zeros).unwrap();
        assert!(z.len() < 10_000);
        assert!(matches!(
            decode_body(Some("gzip"), z.clone(), 1000),
            Err(BodyError::TooLarge)
        ));
        assert_eq!(
            decode_body(Some("GZIP"), z, 1 << 21).unwrap().len(),
            1 << 20
        );
        let mut snappy = snap::write::FrameEncoder::new(Vec::new());
        snappy.write_all(b"m 1\n").unwrap();
        let framed = snappy.into_inner().unwrap();
        assert_eq!(decode_body(Some("snappy"), framed, 100).unwrap(), b"m 1\n");
        assert!(matches!(
            decode_body(Some("gzip"), b"not gzip".to_vec(), 100),
            Err(BodyError::Decompress { .. })
        ));
        assert_eq!(
            decode_body(Some("br"), b"as is".to_vec(), 100).unwrap(),
            b"as is"
        );
    }
}
