//! Maps a request's method and raw URL to what the gateway should do: a
//! row of the route table (`routes`) with the group its path names, or
//! the router's own answer.
//!
//! Pure: no I/O, no store. The answers for paths that match nothing, or
//! match with the wrong method, copy the reference's router (404, 405 with
//! `Allow`, 200 for `OPTIONS`, redirects for uncleaned paths) so that
//! clients and probes see the same status codes.

use super::budget::Class;
use super::routes::{Endpoint, GroupingKey, Pattern, ROUTES};
use crate::model::{Label, NameScheme};
use crate::wire::path::{self, PathError};

/// What the request asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    /// A row of the table whose pattern and method match, with the
    /// grouping key its path names when its pattern names a group.
    Endpoint {
        endpoint: &'static Endpoint,
        key: Option<GroupingKey>,
    },
    /// A path that names no valid group, or does not decode to UTF-8:
    /// the push or delete handler's 400, as in the reference.
    BadPath(PathError),
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
    /// counts this route: its row's (see [`Endpoint::label`]); `None` for
    /// the router's own 404, 405, OPTIONS and redirects, which the
    /// reference does not count either.
    pub(crate) fn counted_as(&self, method: &str) -> Option<&'static str> {
        match self {
            Route::Endpoint { endpoint, .. } => endpoint.label,
            // A bad grouping key is the push or delete handler's 400.
            Route::BadPath(_) if method == "DELETE" => Some("delete"),
            Route::BadPath(_) => Some("push"),
            _ => None,
        }
    }

    /// The class of the memory this route's handler takes in proportion
    /// to the data, if it does (see [`Endpoint::memory`]).
    pub(crate) fn memory(&self) -> Option<Class> {
        self.endpoint().and_then(|e| e.memory)
    }

    /// Whether the handler reads the request body: other requests'
    /// bodies are drained unread.
    pub(crate) fn wants_body(&self) -> bool {
        self.memory() == Some(Class::Body)
    }

    /// The row of the table this route runs, if any.
    pub(crate) fn endpoint(&self) -> Option<&'static Endpoint> {
        match self {
            Route::Endpoint { endpoint, .. } => Some(endpoint),
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
                return redirect(method, format!("{trimmed}{query}"));
            }
        }
        Route::NotFound
    }

    /// The route of a path with nothing to strip or redirect: the first
    /// row of [`ROUTES`] that decides, else 404.
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
        let rest = self.strip_prefix(&path);
        for endpoint in ROUTES {
            if endpoint.admin_api && !self.admin_api {
                continue;
            }
            let target = if endpoint.pattern.at_root() {
                path.as_str()
            } else if !self.prefix.is_empty() && path == self.prefix {
                // The page's relative links need the trailing slash. (The
                // rows at the root come first: they were tried.)
                return redirect(method, format!("{}/", path::escape_path(&path)));
            } else {
                match rest {
                    Some(rest) => rest,
                    None => continue,
                }
            };
            if let Some(route) = self.try_row(endpoint, method, target, &path) {
                return route;
            }
        }
        Route::NotFound
    }

    /// What `endpoint` answers to `method` on `target` (the path, or what
    /// follows the prefix for a row under it); `None` when its pattern
    /// does not match, or it leaves the method to the rows after it.
    fn try_row(
        &self,
        endpoint: &'static Endpoint,
        method: &str,
        target: &str,
        path: &str,
    ) -> Option<Route> {
        let mut key = None;
        match endpoint.pattern {
            Pattern::Root(p) | Pattern::Exact(p) if target == p => {}
            Pattern::Telemetry if target == self.telemetry_path => {}
            Pattern::Under(p) if target.starts_with(p) => {}
            Pattern::GroupView { base, base64 } => {
                let after = target.strip_prefix(base)?;
                match self.key_in(after, base64) {
                    Ok(k) => key = Some(k),
                    Err(e) => return Some(Route::BadPath(e)),
                }
            }
            Pattern::Group { base, .. } if target.starts_with(base) => {
                if target.len() == base.len() {
                    // The reference's router redirects to the path without
                    // the trailing slash, which then matches nothing.
                    let location = path::escape_path(path.trim_end_matches('/'));
                    return Some(redirect(method, location));
                }
            }
            _ => return None,
        }
        if !endpoint.methods.contains(&method) {
            let allow = endpoint.allow?;
            return Some(match method {
                "OPTIONS" => Route::Options { allow },
                _ => Route::MethodNotAllowed { allow },
            });
        }
        if let Pattern::Group { base, base64 } = endpoint.pattern {
            match self.key_in(&target[base.len()..], base64) {
                Ok(k) => key = Some(k),
                Err(e) => return Some(Route::BadPath(e)),
            }
        }
        Some(Route::Endpoint { endpoint, key })
    }

    /// The grouping key of what follows a group pattern's base: the job,
    /// then label pairs.
    fn key_in(&self, after: &str, base64: bool) -> Result<GroupingKey, PathError> {
        let (job, labels) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        self.grouping_key(job, base64, labels)
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

/// A redirect as the reference's router sends it: 301 for `GET`, 307
/// (keep the method and body) for the rest.
fn redirect(method: &str, location: String) -> Route {
    let code = if method == "GET" { 301 } else { 307 };
    Route::Redirect { code, location }
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
    use crate::http::routes::{GET_METHODS, PUSH_METHODS};

    /// The route to the row named `name`, with `key`.
    fn to(name: &str, key: Option<GroupingKey>) -> Route {
        let endpoint = ROUTES.iter().find(|e| e.name == name).expect("a row");
        Route::Endpoint { endpoint, key }
    }

    /// The name of the row `route` runs.
    fn row(route: &Route) -> Option<&'static str> {
        route.endpoint().map(|e| e.name)
    }

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
            to(
                "push",
                Some(GroupingKey::Parsed(key(&[("job", "some_job")])))
            )
        );
        assert_eq!(
            r().route("DELETE", "/metrics/job/some_job/instance/some_instance"),
            to(
                "delete",
                Some(GroupingKey::Parsed(key(&[
                    ("instance", "some_instance"),
                    ("job", "some_job")
                ])))
            )
        );
        assert_eq!(r().route("GET", "/metrics"), to("scrape", None));
        assert_eq!(r().route("GET", "/metrics?x=1"), to("scrape", None));
        assert_eq!(r().route("GET", "/"), to("status", None));
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
        assert_eq!(r().route("PUT", "/-/quit"), to("quit", None));
        assert_eq!(r().route("GET", "/-/quit"), to("quit-by-get", None));
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
        assert_eq!(r.route("GET", "/pg/m"), to("scrape", None));
        assert_eq!(r.route("GET", "/metrics"), Route::NotFound);
        assert_eq!(r.route("GET", "/pg/-/healthy"), to("healthy", None));
        assert_eq!(row(&r.route("PUT", "/pg/metrics/job/a")), Some("push"));
        assert_eq!(r.route("PUT", "/metrics/job/a"), Route::NotFound);
        assert_eq!(r.route("GET", "/pgx/-/healthy"), Route::NotFound);
        assert_eq!(r.route("PUT", "/pg/api/v1/admin/wipe"), to("wipe", None));
        assert_eq!(
            r.route("POST", "/pg/api/v1/admin/delete?match[]={job=\"a\"}"),
            to("admin-delete", None)
        );
        assert!(matches!(
            r.route("GET", "/pg/api/v1/admin/delete"),
            Route::MethodNotAllowed { .. }
        ));
        assert_eq!(
            r.route("GET", "/pg/ui/group/metrics/job@base64/YQ/x@base64/="),
            to(
                "group-text",
                Some(GroupingKey::Parsed(vec![
                    Label::new("job", "a"),
                    Label::new("x", "")
                ]))
            )
        );
        assert_eq!(r.route("GET", "/pg/api/v1/status"), to("api-status", None));
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
        let route = r().route("PUT", &url);
        assert_eq!(row(&route), Some("push"));
        let Route::Endpoint { key: Some(key), .. } = route else {
            panic!("a push");
        };
        assert!(matches!(key, GroupingKey::Unparsed { .. }));
        let parsed = key.parse(NameScheme::Legacy).unwrap();
        assert_eq!(parsed.len(), 1001);
        let route = r().route("DELETE", &url);
        assert_eq!(row(&route), Some("delete"));
        let Route::Endpoint {
            key: Some(deleted), ..
        } = route
        else {
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
        let Route::Endpoint { key: Some(key), .. } = r().route("POST", &bad) else {
            panic!("a push, its key not parsed yet");
        };
        assert!(matches!(
            key.parse(NameScheme::Legacy),
            Err(PathError::InvalidLabelName { .. })
        ));
    }
}

/// The table's rules, checked row by row: a new row that breaks one
/// fails here, not in a client.
#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::http::routes::*;

    /// A path `pattern` matches, under `routes`' prefix when it is there.
    fn sample(pattern: Pattern, routes: &Routes) -> String {
        let under = |p: &str| format!("{}{p}", routes.prefix);
        match pattern {
            Pattern::Root(p) => p.to_owned(),
            Pattern::Telemetry => routes.telemetry_path.clone(),
            Pattern::Exact(p) => under(p),
            Pattern::Under(p) => under(&format!("{p}x")),
            Pattern::Group { base, base64 } | Pattern::GroupView { base, base64 } => {
                let job = if base64 { "ag" } else { "j" };
                under(&format!("{base}{job}/instance/i"))
            }
        }
    }

    fn layouts() -> [Routes; 2] {
        [
            Routes::new("", "/metrics", true),
            Routes::new("/pg", "/m", true),
        ]
    }

    #[test]
    fn every_row_routes_to_itself() {
        for routes in layouts() {
            for row in ROUTES {
                let path = sample(row.pattern, &routes);
                for method in row.methods {
                    let route = routes.route(method, &path);
                    assert_eq!(route.endpoint(), Some(row), "{method} {path}");
                    let Route::Endpoint { key, .. } = route else {
                        unreachable!("checked");
                    };
                    let names_group = matches!(
                        row.pattern,
                        Pattern::Group { .. } | Pattern::GroupView { .. }
                    );
                    assert_eq!(key.is_some(), names_group, "{}", row.name);
                }
            }
        }
    }

    #[test]
    fn other_methods_get_the_allow_of_their_path() {
        for routes in layouts() {
            for row in ROUTES.iter().filter(|r| r.allow.is_some()) {
                let path = sample(row.pattern, &routes);
                let allow = row.allow.unwrap_or_default();
                for method in row.methods {
                    assert!(allow.contains(method), "{}: {allow}", row.name);
                }
                assert!(allow.contains("OPTIONS"), "{}", row.name);
                let other = Route::MethodNotAllowed { allow };
                // OPTIONS under the API is its CORS preflight.
                if !path.contains("/api/v1/") {
                    assert_eq!(routes.route("OPTIONS", &path), Route::Options { allow });
                }
                if !allow.contains("PATCH") {
                    assert_eq!(routes.route("PATCH", &path), other, "{}", row.name);
                }
            }
        }
    }

    #[test]
    fn names_are_unique_and_root_rows_come_first() {
        let mut names: Vec<_> = ROUTES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ROUTES.len(), "a name twice");
        let first_under_prefix = ROUTES.iter().position(|r| !r.pattern.at_root());
        let last_at_root = ROUTES.iter().rposition(|r| r.pattern.at_root());
        assert!(last_at_root < first_under_prefix, "the router relies on it");
    }

    /// The `handler` labels are 1.11's (dashboards and alerts use them):
    /// any change here is a change clients see.
    #[test]
    fn labels_are_the_references() {
        let labels: Vec<_> = ROUTES.iter().map(|r| (r.name, r.label)).collect();
        assert_eq!(
            labels,
            [
                ("quit-by-get", None),
                ("scrape", None),
                ("healthy", Some("healthy")),
                ("ready", Some("ready")),
                ("quit", None),
                ("api-options", Some("api/v1/options")),
                ("status", Some("status")),
                ("status-path", Some("status")),
                ("api-status", Some("api/v1/status")),
                ("api-metrics", Some("api/v1/metrics")),
                ("admin-delete", Some("api/v1/admin/delete")),
                ("wipe", Some("wipe")),
                ("group-text", None),
                ("push", Some("push")),
                ("delete", Some("delete")),
                ("push-base64", Some("push")),
                ("delete-base64", Some("delete")),
            ]
        );
    }

    /// Rows that share a label run the same handler: one label, one
    /// kind of request in the metrics.
    #[test]
    fn a_label_is_one_handler() {
        let handler = |r: &Endpoint| match r.handler {
            Handler::Plain(f) => f as usize,
            Handler::Group(f) => f as usize,
        };
        for a in ROUTES {
            for b in ROUTES
                .iter()
                .filter(|b| b.label.is_some() && b.label == a.label)
            {
                assert_eq!(handler(a), handler(b), "{} and {}", a.name, b.name);
            }
        }
    }

    /// What the cost model (`budget`) and write scopes (`scope`) expect
    /// of each kind of row.
    #[test]
    fn memory_and_access_classes_fit_the_rows() {
        for row in ROUTES {
            let reads = row.methods == ["GET"];
            match row.memory {
                // Only bodies of changes are read, and only by a handler
                // that knows the group they change.
                Some(Class::Body) => {
                    assert_eq!(row.access, Access::Change, "{}", row.name);
                    assert!(matches!(row.handler, Handler::Group(_)), "{}", row.name);
                }
                // Answers in proportion to the store are reads.
                Some(Class::Answer) => assert_eq!(row.access, Access::Read, "{}", row.name),
                Some(class) => panic!("{}: {class:?} is no request's class", row.name),
                None => {}
            }
            match row.access {
                Access::Read => assert!(reads, "{}", row.name),
                Access::Admin | Access::Change => assert!(!reads, "{}", row.name),
                Access::Open => assert_eq!(row.memory, None, "{}", row.name),
            }
            if row.admin_api {
                assert_eq!(row.access, Access::Admin, "{}", row.name);
            }
            let groups = matches!(
                row.pattern,
                Pattern::Group { .. } | Pattern::GroupView { .. }
            );
            let takes_group = matches!(row.handler, Handler::Group(_));
            assert_eq!(
                groups, takes_group,
                "{}: the router gives the key",
                row.name
            );
        }
    }

    #[test]
    fn the_admin_api_is_routed_only_when_enabled() {
        let off = Routes::new("", "/metrics", false);
        for row in ROUTES.iter().filter(|r| r.admin_api) {
            let path = sample(row.pattern, &off);
            assert_eq!(off.route(row.methods[0], &path), Route::NotFound);
        }
    }
}
