//! Why a push is refused, in words a human can act on.

use std::fmt;

use crate::model::{Label, MetricType};

/// Why a push was rejected. Each is answered with 400 and sets the group's
/// `push_failure_time_seconds`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PushError {
    Timestamp {
        metric: String,
    },
    ReservedLabel {
        metric: String,
        label: String,
    },
    QuantileLabel {
        metric: String,
    },
    DuplicateSeries {
        metric: String,
        labels: String,
    },
    TypeMismatch {
        metric: String,
        pushed: MetricType,
        existing: MetricType,
    },
    /// A family named like one of the gateway's own whose HELP the
    /// reference checks (see `OwnFamilies::help_checked`), pushed with
    /// another HELP or none.
    HelpMismatch {
        metric: String,
        pushed: String,
        own: &'static str,
    },
    SuffixCollision {
        metric: String,
        other: String,
        other_type: MetricType,
    },
    SeriesInOtherGroup {
        metric: String,
        labels: String,
        group: String,
    },
    GroupCollision {
        group: String,
        other: String,
    },
    /// A protobuf metric without the value its family's type needs (a
    /// gauge family with a counter value, or none): the reference's
    /// consistency check refuses it and records the failure.
    MissingValue {
        metric: String,
        expected: MetricType,
    },
    /// A protobuf metric with a label name the gateway's name scheme
    /// refuses: the reference's decoder keeps it and its consistency
    /// check refuses it, recording the failure.
    InvalidLabelName {
        metric: String,
        label: String,
    },
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pushed metrics are invalid or inconsistent with existing metrics: ")?;
        match self {
            PushError::InvalidLabelName { metric, label } => {
                write!(
                    f,
                    "collected metric {metric:?} has a label with an invalid name: {label}"
                )
            }
            PushError::MissingValue { metric, expected } => {
                let t = expected.to_string().to_ascii_uppercase();
                write!(f, "collected metric {metric:?} is not a {t}")
            }
            PushError::Timestamp { metric } => {
                write!(
                    f,
                    "pushed metrics must not have timestamps (metric {metric:?} has one)"
                )
            }
            PushError::ReservedLabel { metric, label } => write!(
                f,
                "metric {metric:?} has label {label:?}: label names starting with \"__\" are reserved"
            ),
            PushError::QuantileLabel { metric } => {
                write!(
                    f,
                    "summary {metric:?} must not have an explicit \"quantile\" label"
                )
            }
            PushError::DuplicateSeries { metric, labels } => write!(
                f,
                "metric {metric:?} with labels {labels} appears more than once in this push"
            ),
            PushError::HelpMismatch {
                metric,
                pushed,
                own,
            } => write!(
                f,
                "gathered metric family {metric} has help {pushed:?} but should have {own:?}"
            ),
            PushError::TypeMismatch {
                metric,
                pushed,
                existing,
            } => write!(
                f,
                "metric {metric:?} is pushed as {pushed} but is a {existing} elsewhere (in another group or the gateway's own metrics)"
            ),
            PushError::SuffixCollision {
                metric,
                other,
                other_type,
            } => write!(
                f,
                "metric {metric:?} collides with {other_type} {other:?}, whose _count/_sum/_bucket series have the same names"
            ),
            PushError::SeriesInOtherGroup {
                metric,
                labels,
                group,
            } => write!(
                f,
                "metric {metric:?} with labels {labels} already exists in group {group}; a series may live in one group only"
            ),
            PushError::GroupCollision { group, other } => write!(
                f,
                "group {group} would expose the same push_time_seconds series as existing group {other}; delete one of them or use distinct grouping labels"
            ),
        }
    }
}

impl std::error::Error for PushError {}

/// Renders a label set as `{a="b",c="d"}` for messages.
pub(crate) fn show_labels(labels: &[Label]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&l.name);
        s.push('=');
        s.push_str(&format!("{:?}", &*l.value));
    }
    s.push('}');
    s
}
