//! The route table: every endpoint declared once, in one list, as the
//! reference declares its routes in `main.go`.
//!
//! A row says which requests it takes (its methods and path pattern) and
//! what other methods get; the `handler` label that counts it in
//! `pushgateway_http_requests_total`; its memory class, for the cost model
//! (`budget`); its access class, for write scopes (`scope`); and the
//! function that handles it, in `handler/`. The router walks the rows in
//! order and the first whose pattern matches decides (see
//! [`Endpoint::allow`] for the rows that share a path).
//!
//! Adding an endpoint is a row here and its handler in `handler/`; one
//! that works on the store also needs its typed work in the request loop:
//! an [`Event`](crate::contract::Event) variant and the loop's arm for it.

use super::budget::Class;
use super::handler::{Body, admin, api, delete, lifecycle, metrics, push, status};
use super::{Context, Request};
use crate::model::Label;

/// One endpoint.
pub(crate) struct Endpoint {
    /// What the row is called in tests and logs; unique.
    pub name: &'static str,
    pub pattern: Pattern,
    /// The methods its handler takes.
    pub methods: &'static [&'static str],
    /// What other methods get on a path the pattern matches: 405 with
    /// this `Allow` header, or 200 with it to `OPTIONS`. `None`: the row
    /// does not claim the path for other methods, and the rows after it
    /// are tried (a push row leaves `DELETE` to the delete row).
    pub allow: Option<&'static str>,
    /// Routed only with `--web.enable-admin-api`.
    pub admin_api: bool,
    /// The `handler` label of `pushgateway_http_requests_total`, as 1.11
    /// names it; `None` for what the reference does not count (scrapes,
    /// `/-/quit`, our page's group rows).
    pub label: Option<&'static str>,
    /// The memory its handling takes in proportion to the data, and the
    /// budget class charged for it: the gate refuses the request (503)
    /// while that class has used its share. [`Class::Body`]: the handler
    /// reads the request body (other rows' bodies are drained unread).
    pub memory: Option<Class>,
    /// What the requester's identity needs under write scopes.
    pub access: Access,
    pub handler: Handler,
}

/// Where a row's path is, and what it captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Exactly this path, at the root whatever `--web.route-prefix`.
    Root(&'static str),
    /// `--web.telemetry-path` under the prefix.
    Telemetry,
    /// Exactly this path under the prefix.
    Exact(&'static str),
    /// Any path under the prefix that starts with this.
    Under(&'static str),
    /// `base`, then a job and label pairs (`base64`: the job in base64):
    /// a group. The key is parsed once the method matched; `base` alone
    /// is redirected to itself without the slash, as the reference's
    /// router does.
    Group { base: &'static str, base64: bool },
    /// A group as the web page names it: the key is parsed before the
    /// method is looked at, and a bad one is a 400 whatever the method.
    GroupView { base: &'static str, base64: bool },
}

impl Pattern {
    /// Whether the path is matched whole, not under the prefix.
    pub(crate) fn at_root(self) -> bool {
        matches!(self, Pattern::Root(_) | Pattern::Telemetry)
    }
}

/// What an identity needs under write scopes (`--web.access-file`) for a
/// row's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: probes, CORS preflights.
    Open,
    /// The right to read metrics.
    Read,
    /// The right to administer: wipe, selector deletes, quit.
    Admin,
    /// The right to change the group the path names, checked once its key
    /// is parsed (`scope::refuse_change`).
    Change,
}

/// The function that handles a row's requests, on the I/O loop.
#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// Needs the request alone.
    Plain(fn(&Context, Request)),
    /// Needs the group its path names, and the body (empty unless the
    /// row's memory class is [`Class::Body`]).
    Group(fn(&Context, Request, GroupingKey, Body)),
}

const GET: &[&str] = &["GET"];
const PAGE: Handler = Handler::Plain(status::page);
const PUT_POST: &[&str] = &["PUT", "POST"];
/// `Allow` of the group paths.
pub(crate) const PUSH_METHODS: &str = "DELETE, OPTIONS, POST, PUT";
pub(crate) const GET_METHODS: &str = "GET, OPTIONS";
pub(crate) const WRITE_METHODS: &str = "OPTIONS, POST, PUT";
pub(crate) const PUT_METHODS: &str = "OPTIONS, PUT";

/// A row that reads: `GET` only, its answer charged as an answer.
const fn read(
    name: &'static str,
    pattern: Pattern,
    label: Option<&'static str>,
    handler: Handler,
) -> Endpoint {
    Endpoint {
        name,
        pattern,
        methods: GET,
        allow: Some(GET_METHODS),
        admin_api: false,
        label,
        memory: Some(Class::Answer),
        access: Access::Read,
        handler,
    }
}

/// Every endpoint, in the order the router tries them: the rows at the
/// root first, then those under the prefix.
pub(crate) static ROUTES: &[Endpoint] = &[
    Endpoint {
        name: "quit-by-get",
        pattern: Pattern::Root("/-/quit"),
        methods: GET,
        allow: None,
        admin_api: false,
        label: None,
        memory: None,
        access: Access::Open,
        handler: Handler::Plain(lifecycle::quit_by_get),
    },
    read(
        "scrape",
        Pattern::Telemetry,
        None,
        Handler::Plain(metrics::scrape),
    ),
    Endpoint {
        name: "healthy",
        pattern: Pattern::Exact("/-/healthy"),
        methods: GET,
        allow: Some(GET_METHODS),
        admin_api: false,
        label: Some("healthy"),
        memory: None,
        access: Access::Open,
        handler: Handler::Plain(lifecycle::probe),
    },
    Endpoint {
        name: "ready",
        pattern: Pattern::Exact("/-/ready"),
        methods: GET,
        allow: Some(GET_METHODS),
        admin_api: false,
        label: Some("ready"),
        memory: None,
        access: Access::Open,
        handler: Handler::Plain(lifecycle::probe),
    },
    Endpoint {
        name: "quit",
        pattern: Pattern::Exact("/-/quit"),
        methods: PUT_POST,
        allow: Some(WRITE_METHODS),
        admin_api: false,
        label: None,
        memory: None,
        access: Access::Admin,
        handler: Handler::Plain(lifecycle::quit),
    },
    // Any OPTIONS under the API is a CORS preflight, before the API's rows.
    Endpoint {
        name: "api-options",
        pattern: Pattern::Under("/api/v1/"),
        methods: &["OPTIONS"],
        allow: None,
        admin_api: false,
        label: Some("api/v1/options"),
        memory: None,
        access: Access::Open,
        handler: Handler::Plain(api::options),
    },
    read("status", Pattern::Exact("/"), Some("status"), PAGE),
    read(
        "status-path",
        Pattern::Exact("/status"),
        Some("status"),
        PAGE,
    ),
    Endpoint {
        // A few hundred bytes, whatever the store holds.
        memory: None,
        ..read(
            "api-status",
            Pattern::Exact("/api/v1/status"),
            Some("api/v1/status"),
            Handler::Plain(api::status),
        )
    },
    read(
        "api-metrics",
        Pattern::Exact("/api/v1/metrics"),
        Some("api/v1/metrics"),
        Handler::Plain(api::metrics),
    ),
    Endpoint {
        name: "admin-delete",
        pattern: Pattern::Exact("/api/v1/admin/delete"),
        methods: PUT_POST,
        allow: Some(WRITE_METHODS),
        admin_api: true,
        // Ours alone; named in the reference's style.
        label: Some("api/v1/admin/delete"),
        memory: None,
        access: Access::Admin,
        handler: Handler::Plain(admin::delete_matching),
    },
    Endpoint {
        name: "wipe",
        pattern: Pattern::Exact("/api/v1/admin/wipe"),
        methods: &["PUT"],
        allow: Some(PUT_METHODS),
        admin_api: true,
        label: Some("wipe"),
        memory: None,
        access: Access::Admin,
        handler: Handler::Plain(admin::wipe),
    },
    read(
        "group-text",
        Pattern::GroupView {
            base: "/ui/group/metrics/job@base64/",
            base64: true,
        },
        None,
        Handler::Group(status::group_text),
    ),
    push_row("push", "/metrics/job/", false),
    delete_row("delete", "/metrics/job/", false),
    push_row("push-base64", "/metrics/job@base64/", true),
    delete_row("delete-base64", "/metrics/job@base64/", true),
];

/// `PUT` (replace) or `POST` (merge) to a group; other methods are left
/// to the delete row after it.
const fn push_row(name: &'static str, base: &'static str, base64: bool) -> Endpoint {
    Endpoint {
        name,
        pattern: Pattern::Group { base, base64 },
        methods: PUT_POST,
        allow: None,
        admin_api: false,
        label: Some("push"),
        memory: Some(Class::Body),
        access: Access::Change,
        handler: Handler::Group(push::push),
    }
}

/// `DELETE` of a group: the last row of a group path, which answers the
/// methods neither it nor the push row takes.
const fn delete_row(name: &'static str, base: &'static str, base64: bool) -> Endpoint {
    Endpoint {
        name,
        pattern: Pattern::Group { base, base64 },
        methods: &["DELETE"],
        allow: Some(PUSH_METHODS),
        admin_api: false,
        label: Some("delete"),
        memory: None,
        access: Access::Change,
        handler: Handler::Group(delete::delete),
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({})", self.name)
    }
}

/// Rows are the same row when they have the same name (names are
/// unique); their handlers are functions, which do not compare reliably.
impl PartialEq for Endpoint {
    fn eq(&self, other: &Endpoint) -> bool {
        self.name == other.name
    }
}

/// The grouping key of a push, delete or group view: parsed while
/// routing, or for a long one (see `router::LONG_KEY`) the parts of the path to
/// parse it from off the loop.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GroupingKey {
    Parsed(Vec<Label>),
    Unparsed {
        job: String,
        base64: bool,
        labels: String,
    },
}
