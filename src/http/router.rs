//! Maps a request's method and raw URL to what the gateway should do.
//!
//! Pure: no I/O, no store. The answers for paths that match nothing, or
//! match with the wrong method, copy the reference's router (404, 405 with
//! `Allow`, 200 for `OPTIONS`, redirects for uncleaned paths) so that
//! clients and probes see the same status codes.

use crate::http::budget::Class;
use crate::model::{Label, NameScheme};
use crate::wire::path::{self, PathError};

/// What the request asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    /// PUT (replace) or POST (merge) to a group.
    Push {
        key: GroupingKey,
        replace: bool,
    },
    Delete {
        key: GroupingKey,
    },
    /// A push or delete URL that names no valid group.
    BadPath(PathError),
    Scrape,
    Healthy,
    Ready,
    Quit,
    /// `GET /-/quit`, at the root whatever the prefix: the reference
    /// registers a handler that explains which methods work.
    QuitByGet,
    Status,
    ApiStatus,
    ApiMetrics,
    /// `OPTIONS /api/v1/...`: a CORS preflight, answered 200 with the API's
    /// CORS headers.
    ApiOptions,
    /// The web page's request for one group's metrics (`GET /ui/group/...`
    /// followed by the group's push path), fetched when a row is expanded.
    GroupText {
        key: GroupingKey,
    },
    /// `PUT /api/v1/admin/wipe`, only routed with `--web.enable-admin-api`.
    Wipe,
    /// `PUT` or `POST /api/v1/admin/delete?match[]=...`, with
    /// `--web.enable-admin-api`: deletes the groups selectors match.
    DeleteMatching,
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    Options {
        allow: &'static str,
    },
    Redirect {
        code: u16,
        location: String,
    },
    /// The URL could not be decoded at all.
    BadRequest,
}

impl Route {
    /// The `handler` label under which `pushgateway_http_requests_total`
    /// counts this route, as 1.11 names it; `None` for what the reference
    /// does not count (scrapes, `/-/quit`, the router's own 404, 405,
    /// OPTIONS and redirects, our page's group rows).
    pub(crate) fn counted_as(&self, method: &str) -> Option<&'static str> {
        Some(match self {
            Route::Push { .. } => "push",
            Route::Delete { .. } => "delete",
            // A bad grouping key is the push or delete handler's 400.
            Route::BadPath(_) if method == "DELETE" => "delete",
            Route::BadPath(_) => "push",
            Route::Status => "status",
            Route::ApiStatus => "api/v1/status",
            Route::ApiMetrics => "api/v1/metrics",
            Route::ApiOptions => "api/v1/options",
            Route::Wipe => "wipe",
            // Ours alone; named in the reference's style.
            Route::DeleteMatching => "api/v1/admin/delete",
            Route::Healthy => "healthy",
            Route::Ready => "ready",
            _ => return None,
        })
    }

    /// The class of the memory this route's handler takes in proportion
    /// to the data, if it does: the gate refuses it with 503 while that
    /// class has used its share of the budget.
    pub(crate) fn memory(&self) -> Option<Class> {
        match self {
            Route::Push { .. } => Some(Class::Body),
            Route::Scrape | Route::Status | Route::ApiMetrics | Route::GroupText { .. } => {
                Some(Class::Answer)
            }
            _ => None,
        }
    }
}

/// The path layout, fixed at start-up from the flags.
#[derive(Clone, Debug)]
pub(crate) struct Routes {
    /// `--web.route-prefix` normalized: empty or `/x` without trailing slash.
    pub prefix: String,
    /// Where scrapes go: prefix joined with `--web.telemetry-path`.
    pub telemetry_path: String,
    /// Whether `/api/v1/admin/*` exists (`--web.enable-admin-api`).
    pub admin_api: bool,
    /// Whether label names in paths may use the `U__` escaping
    /// (`--push.enable-utf8-names`).
    pub names: NameScheme,
}

const PUSH_METHODS: &str = "DELETE, OPTIONS, POST, PUT";
const GET_METHODS: &str = "GET, OPTIONS";
const QUIT_METHODS: &str = "OPTIONS, POST, PUT";
const PUT_METHODS: &str = "OPTIONS, PUT";

impl Routes {
    pub(crate) fn new(prefix: &str, telemetry_path: &str, admin_api: bool) -> Routes {
        Routes {
            prefix: prefix.to_owned(),
            telemetry_path: join_path(prefix, telemetry_path),
            admin_api,
            names: NameScheme::Legacy,
        }
    }

    pub(crate) fn with_names(mut self, names: NameScheme) -> Routes {
        self.names = names;
        self
    }

    pub(crate) fn route(&self, method: &str, raw_url: &str) -> Route {
        let route = self.route_exact(method, raw_url);
        if route != Route::NotFound {
            return route;
        }
        // Like the reference's router: a path that only differs from a known
        // one by a trailing slash is redirected there.
        let raw_path = path_of(raw_url);
        if raw_path.len() > 1 && raw_path.ends_with('/') {
            let trimmed = &raw_path[..raw_path.len() - 1];
            let query = &raw_url[raw_path.len()..];
            if self.route_exact(method, trimmed) != Route::NotFound {
                let code = if method == "GET" { 301 } else { 307 };
                let location = format!("{trimmed}{query}");
                return Route::Redirect { code, location };
            }
        }
        Route::NotFound
    }

    fn route_exact(&self, method: &str, raw_url: &str) -> Route {
        let raw_path = path_of(raw_url);
        let path = match path::percent_decode(raw_path) {
            Ok(p) => p,
            Err(PathError::BadPercentEncoding) => return Route::BadRequest,
            Err(e) => return Route::BadPath(e),
        };
        if !path.starts_with('/') {
            return Route::BadRequest;
        }
        let cleaned = path::clean_path(&path);
        if cleaned != path {
            let query = &raw_url[raw_path.len()..];
            return Route::Redirect {
                code: 301,
                location: format!("{}{query}", path::escape_path(&cleaned)),
            };
        }
        if path == "/-/quit" && method == "GET" {
            return Route::QuitByGet;
        }
        if path == self.telemetry_path {
            return get_only(method, Route::Scrape);
        }
        if !self.prefix.is_empty() && path == self.prefix {
            // The page's relative links need the trailing slash.
            let code = if method == "GET" { 301 } else { 307 };
            let location = format!("{}/", path::escape_path(&path));
            return Route::Redirect { code, location };
        }
        let Some(rest) = self.strip_prefix(&path) else {
            return Route::NotFound;
        };
        match rest {
            "/-/healthy" => return get_only(method, Route::Healthy),
            "/-/ready" => return get_only(method, Route::Ready),
            "/-/quit" => {
                return match method {
                    "PUT" | "POST" => Route::Quit,
                    "OPTIONS" => Route::Options {
                        allow: QUIT_METHODS,
                    },
                    _ => Route::MethodNotAllowed {
                        allow: QUIT_METHODS,
                    },
                };
            }
            // The reference answers any OPTIONS under the API (CORS preflight).
            p if method == "OPTIONS" && p.starts_with("/api/v1/") => return Route::ApiOptions,
            "/" | "/status" => return get_only(method, Route::Status),
            "/api/v1/status" => return get_only(method, Route::ApiStatus),
            "/api/v1/metrics" => return get_only(method, Route::ApiMetrics),
            "/api/v1/admin/delete" if self.admin_api => {
                return match method {
                    "PUT" | "POST" => Route::DeleteMatching,
                    "OPTIONS" => Route::Options {
                        allow: QUIT_METHODS,
                    },
                    _ => Route::MethodNotAllowed {
                        allow: QUIT_METHODS,
                    },
                };
            }
            "/api/v1/admin/wipe" if self.admin_api => {
                return match method {
                    "PUT" => Route::Wipe,
                    "OPTIONS" => Route::Options { allow: PUT_METHODS },
                    _ => Route::MethodNotAllowed { allow: PUT_METHODS },
                };
            }
            _ => {}
        }
        if let Some(after) = rest.strip_prefix("/ui/group/metrics/job@base64/") {
            let (job, labels) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            return match self.grouping_key(job, true, labels) {
                Ok(key) => get_only(method, Route::GroupText { key }),
                Err(e) => Route::BadPath(e),
            };
        }
        for (base, b64) in [("/metrics/job/", false), ("/metrics/job@base64/", true)] {
            let Some(after) = rest.strip_prefix(base) else {
                continue;
            };
            if after.is_empty() {
                // The reference's router redirects to the path without the
                // trailing slash, which then matches nothing.
                let code = if method == "GET" { 301 } else { 307 };
                let location = path::escape_path(path.trim_end_matches('/'));
                return Route::Redirect { code, location };
            }
            let (job, labels) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            let key = || self.grouping_key(job, b64, labels);
            return match method {
                "PUT" | "POST" => match key() {
                    Ok(key) => Route::Push {
                        key,
                        replace: method == "PUT",
                    },
                    Err(e) => Route::BadPath(e),
                },
                "DELETE" => match key() {
                    Ok(key) => Route::Delete { key },
                    Err(e) => Route::BadPath(e),
                },
                "OPTIONS" => Route::Options {
                    allow: PUSH_METHODS,
                },
                _ => Route::MethodNotAllowed {
                    allow: PUSH_METHODS,
                },
            };
        }
        Route::NotFound
    }

    /// The grouping key of a push, delete or group view: parsed now, or
    /// left for a worker when long (see [`LONG_KEY`]).
    fn grouping_key(
        &self,
        job: &str,
        base64: bool,
        labels: &str,
    ) -> Result<GroupingKey, PathError> {
        if labels.len() > LONG_KEY {
            return Ok(GroupingKey::Unparsed {
                job: job.to_owned(),
                base64,
                labels: labels.to_owned(),
            });
        }
        path::grouping_key(job, base64, labels, self.names).map(GroupingKey::Parsed)
    }

    fn strip_prefix<'a>(&self, path: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(path);
        }
        let rest = path.strip_prefix(&self.prefix)?;
        if rest.is_empty() {
            return Some("/");
        }
        rest.starts_with('/').then_some(rest)
    }
}

fn get_only(method: &str, route: Route) -> Route {
    match method {
        "GET" => route,
        "OPTIONS" => Route::Options { allow: GET_METHODS },
        _ => Route::MethodNotAllowed { allow: GET_METHODS },
    }
}

/// Go's `path.Join(prefix, p)`: one slash between, cleaned, no trailing
/// slash unless the result is the root.
fn join_path(prefix: &str, p: &str) -> String {
    let joined = path::clean_path(&format!("{prefix}/{p}"));
    match joined.trim_end_matches('/') {
        "" => "/".to_owned(),
        j => j.to_owned(),
    }
}

/// Grouping pairs longer than this (bytes of the path after the job) are
/// parsed by a worker (for a push, the one that reads it), not on the I/O
/// loop:
/// a URL of a megabyte holds a hundred thousand pairs, tens of
/// milliseconds of sorting that other connections would wait for.
const LONG_KEY: usize = 4096;

/// The grouping key of a push, delete or group view: parsed while
/// routing, or for a long one (see [`LONG_KEY`]) the parts of the path to
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

/// The path of a request target: up to its query or fragment, found by a
/// byte scan (a megabyte of grouping pairs is read on the I/O loop).
fn path_of(raw_url: &str) -> &str {
    let end = raw_url
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(raw_url.len());
    &raw_url[..end]
}

impl GroupingKey {
    /// The key, parsed now if it was not, under the name rules `names`;
    /// a bad one is the same 400 as when parsed while routing.
    pub(crate) fn parse(self, names: NameScheme) -> Result<Vec<Label>, PathError> {
        match self {
            GroupingKey::Parsed(key) => Ok(key),
            GroupingKey::Unparsed {
                job,
                base64,
                labels,
            } => path::grouping_key(&job, base64, &labels, names),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Routes {
        Routes::new("", "/metrics", false)
    }

    fn key(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(n, v)).collect()
    }

    #[test]
    fn tutorial_urls() {
        assert_eq!(
            r().route("POST", "/metrics/job/some_job"),
            Route::Push {
                key: GroupingKey::Parsed(key(&[("job", "some_job")])),
                replace: false
            }
        );
        assert_eq!(
            r().route("DELETE", "/metrics/job/some_job/instance/some_instance"),
            Route::Delete {
                key: GroupingKey::Parsed(key(&[
                    ("instance", "some_instance"),
                    ("job", "some_job")
                ]))
            }
        );
        assert_eq!(r().route("GET", "/metrics"), Route::Scrape);
        assert_eq!(r().route("GET", "/metrics?x=1"), Route::Scrape);
        assert_eq!(r().route("GET", "/"), Route::Status);
    }

    #[test]
    fn reference_answers_for_odd_requests() {
        assert_eq!(r().route("GET", "/nope"), Route::NotFound);
        assert_eq!(r().route("GET", "/metrics/job"), Route::NotFound);
        assert_eq!(
            r().route("GET", "/metrics/job/x"),
            Route::MethodNotAllowed {
                allow: PUSH_METHODS
            }
        );
        assert_eq!(
            r().route("PUT", "/metrics"),
            Route::MethodNotAllowed { allow: GET_METHODS }
        );
        assert!(matches!(
            r().route("PUT", "/metrics/job/"),
            Route::Redirect { code: 307, .. }
        ));
        assert!(matches!(
            r().route("PUT", "/metrics/job/a//b"),
            Route::Redirect { code: 301, .. }
        ));
        assert_eq!(r().route("PUT", "/metrics/job/a/b%zz"), Route::BadRequest);
        assert!(matches!(
            r().route("PUT", "/metrics/job/a%2Fb"),
            Route::BadPath(_)
        ));
        assert_eq!(r().route("PUT", "/-/quit"), Route::Quit);
        assert_eq!(r().route("GET", "/-/quit"), Route::QuitByGet);
        assert_eq!(
            r().route("GET", "/metrics/?a=b"),
            Route::Redirect {
                code: 301,
                location: "/metrics?a=b".into()
            }
        );
    }

    #[test]
    fn redirects_escape_what_they_decoded() {
        assert_eq!(
            r().route("GET", "/x%0d%0aSet-Cookie:%20a=b/./"),
            Route::Redirect {
                code: 301,
                location: "/x%0D%0ASet-Cookie:%20a=b/".into()
            }
        );
    }

    #[test]
    fn prefix_and_telemetry_path() {
        let r = Routes::new("/pg", "/m", true);
        assert_eq!(r.route("GET", "/pg/m"), Route::Scrape);
        assert_eq!(r.route("GET", "/metrics"), Route::NotFound);
        assert_eq!(r.route("GET", "/pg/-/healthy"), Route::Healthy);
        assert!(matches!(
            r.route("PUT", "/pg/metrics/job/a"),
            Route::Push { .. }
        ));
        assert_eq!(r.route("PUT", "/metrics/job/a"), Route::NotFound);
        assert_eq!(r.route("GET", "/pgx/-/healthy"), Route::NotFound);
        assert_eq!(r.route("PUT", "/pg/api/v1/admin/wipe"), Route::Wipe);
        assert_eq!(
            r.route("POST", "/pg/api/v1/admin/delete?match[]={job=\"a\"}"),
            Route::DeleteMatching
        );
        assert!(matches!(
            r.route("GET", "/pg/api/v1/admin/delete"),
            Route::MethodNotAllowed { .. }
        ));
        assert_eq!(
            r.route("GET", "/pg/ui/group/metrics/job@base64/YQ/x@base64/="),
            Route::GroupText {
                key: GroupingKey::Parsed(vec![Label::new("job", "a"), Label::new("x", "")])
            }
        );
        assert_eq!(r.route("GET", "/pg/api/v1/status"), Route::ApiStatus);
        assert_eq!(
            Routes::new("", "/metrics", false).route("PUT", "/api/v1/admin/wipe"),
            Route::NotFound
        );
    }

    /// A long grouping key is left for the worker, which parses it as the
    /// router would have, errors included.
    #[test]
    fn long_keys_are_parsed_off_the_loop() {
        let pairs: String = (0..1000).map(|i| format!("/k{i}/{i}")).collect();
        let url = format!("/metrics/job/j{pairs}");
        let Route::Push { key, replace: true } = r().route("PUT", &url) else {
            panic!("a push");
        };
        assert!(matches!(key, GroupingKey::Unparsed { .. }));
        let parsed = key.parse(NameScheme::Legacy).unwrap();
        assert_eq!(parsed.len(), 1001);
        let Route::Delete { key: deleted } = r().route("DELETE", &url) else {
            panic!("a delete");
        };
        assert!(
            matches!(deleted, GroupingKey::Unparsed { .. }),
            "deletes too"
        );
        assert_eq!(
            parsed,
            deleted.parse(NameScheme::Legacy).unwrap(),
            "the same key either way"
        );
        let bad = format!("/metrics/job/j{pairs}/__x/1");
        let Route::Push { key, .. } = r().route("POST", &bad) else {
            panic!("a push, its key not parsed yet");
        };
        assert!(matches!(
            key.parse(NameScheme::Legacy),
            Err(PathError::InvalidLabelName { .. })
        ));
    }
}
