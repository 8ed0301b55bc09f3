//! CORS headers on `/api/v1` answers, added by the front for the API's
//! routes (answers from the loop and OPTIONS preflights alike), as the
//! reference does.

use crate::contract::Reply;

/// Headers the reference puts on every `/api/v1` answer, so browser
/// dashboards on other origins can read the API.
pub(super) const CORS_HEADERS: [(&str, &str); 5] = [
    (
        "Access-Control-Allow-Headers",
        "Accept, Authorization, Content-Type, Origin",
    ),
    ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "Date"),
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
];

/// `reply` with the CORS headers of the API.
pub(super) fn with_cors(mut reply: Reply) -> Reply {
    for (k, v) in CORS_HEADERS {
        reply = reply.with_header(k, v);
    }
    reply
}
