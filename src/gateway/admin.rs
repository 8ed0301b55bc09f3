//! Deletes by selector (`/api/v1/admin/delete?match[]=...`), which the
//! reference does not have: users otherwise run sidecars that list groups
//! and send one DELETE each.

use crate::model::Label;
use crate::store::{self, GroupKey, Store};
use crate::wire::json::json_string;
use crate::wire::selector::DeleteQuery;

/// The groups `query` matches, in key order. An admin call walks every
/// group once: O(groups), like the wipe, never on a push's path.
pub(crate) fn matching(store: &Store, query: &DeleteQuery) -> Vec<GroupKey> {
    store
        .groups()
        .filter(|(k, _)| query.matches(k))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The answer: the matched grouping keys (deleted unless `dry_run`) and
/// their count, in the Prometheus API's envelope.
pub(crate) fn answer_json(keys: &[GroupKey], dry_run: bool) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"dry_run\":");
    out.push_str(if dry_run { "true" } else { "false" });
    out.push_str(&format!(",\"count\":{},\"groups\":[", keys.len()));
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        labels_json(&mut out, k);
    }
    out.push_str("]}}");
    out
}

fn labels_json(out: &mut String, labels: &[Label]) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, &l.name);
        out.push(':');
        json_string(out, &l.value);
    }
    out.push('}');
}

/// A refused request, in the Prometheus API's error envelope.
pub(crate) fn error_json(msg: &str) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":");
    json_string(&mut out, msg);
    out.push('}');
    out
}

/// Deletes what `query` matches (unless a dry run); returns the keys.
pub(crate) fn delete_matching(store: &mut Store, query: &DeleteQuery) -> Vec<GroupKey> {
    let keys = matching(store, query);
    if !query.dry_run {
        for k in &keys {
            store.delete(k);
            log::debug!(group = store::show_labels(k); "deleted group by selector");
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_json_envelopes() {
        let keys: Vec<GroupKey> = vec![vec![Label::new("job", "a\"<")].into()];
        assert_eq!(
            answer_json(&keys, true),
            r#"{"status":"success","data":{"dry_run":true,"count":1,"groups":[{"job":"a\"\u003c"}]}}"#
        );
        assert_eq!(
            error_json("bad \"x\""),
            r#"{"status":"error","errorType":"bad_data","error":"bad \"x\""}"#
        );
    }
}
