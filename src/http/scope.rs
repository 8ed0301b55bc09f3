//! Write scopes on grouping keys (`--web.access-file`, see
//! [`crate::access::scopes`]) applied to requests: who is asking (the
//! basic-auth user the gate verified, or the names of a verified client
//! certificate), and whether the rules let them.
//!
//! A refusal is 403 with a one-line reason naming the identity and, for a
//! change, the group. It comes before anything reaches the request loop:
//! nothing is stored and no push failure is recorded. A DELETE outside the
//! scope is refused whether the group exists or not, so answers never
//! reveal which groups exist.

use super::routes::Access;
use super::{Context, Reply, Request};
use crate::access::auth::Auth;
use crate::access::scopes::{Grant, Rules, Scope};
use crate::model::Label;
use crate::store;

/// Who a request comes from: its basic-auth user when the web config has
/// users (the gate verified the password), then its client certificate's
/// names.
fn identity(ctx: &Context, req: &Request) -> Vec<String> {
    let mut names = Vec::new();
    let verified = ctx
        .web
        .as_ref()
        .and_then(|w| w.current().ok())
        .is_some_and(|active| active.auth.is_some());
    if verified && let Some(user) = Auth::user_of(req.header("Authorization")) {
        names.push(user);
    }
    names.extend(req.client_names().iter().cloned());
    names
}

/// The identity of this request under the rules in force, when there
/// are rules: for the web page, which offers changes only where they
/// would be allowed.
pub(super) fn scope_of(ctx: &Context, req: &Request) -> Option<Scope> {
    let rules = ctx.access.as_ref()?.current();
    Some(Scope::new(rules, identity(ctx, req)))
}

/// The rules' verdict for this request, when there are rules.
fn with_grant<T>(
    ctx: &Context,
    req: &Request,
    decide: impl FnOnce(&str, &Grant) -> Option<T>,
) -> Option<T> {
    let rules: std::sync::Arc<Rules> = ctx.access.as_ref()?.current();
    let names = identity(ctx, req);
    let (who, grant) = rules.grant(&names);
    decide(who, grant)
}

fn forbidden(req: &Request, who: &str, what: &str) -> Reply {
    let who = match who {
        "(default)" => "a request of no listed identity".to_owned(),
        name => format!("{name:?}"),
    };
    let msg = format!("Forbidden: {who} may not {what} (--web.access-file)");
    log::warn!(source = req.source(), url = req.url(); "{msg}");
    Reply::error(403, msg)
}

/// Refuses what needs the right to read or to administer (a row's
/// [`Access`] class), when the identity lacks it. Changes of a group are
/// checked once its key is parsed ([`refuse_change`]).
pub(super) fn refuse_access(ctx: &Context, req: &Request, access: Access) -> Option<Reply> {
    let (admin, what) = match access {
        Access::Read => (false, "read metrics"),
        Access::Admin => (true, "use the admin endpoints"),
        Access::Open | Access::Change => return None,
    };
    with_grant(ctx, req, |who, grant| {
        let allowed = if admin {
            grant.may_admin()
        } else {
            grant.may_read()
        };
        (!allowed).then(|| forbidden(req, who, what))
    })
}

/// Refuses a push to, or a delete of, the group of `key` (as it will be
/// stored: one value per name, the path's `job` winning) outside the
/// identity's `push` selectors.
pub(super) fn refuse_change(ctx: &Context, req: &Request, key: &[Label]) -> Option<Reply> {
    with_grant(ctx, req, |who, grant| {
        (!grant.may_push(key)).then(|| {
            let what = format!("push to or delete the group {}", store::show_labels(key));
            forbidden(req, who, &what)
        })
    })
}
