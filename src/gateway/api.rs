//! The JSON API under `/api/v1`, in the reference's shape, written by hand.
//!
//! Automation written against the Go Pushgateway reads these answers, so
//! field names, nesting and value encoding (numbers as strings, times in
//! RFC 3339 with nanoseconds, keys of maps sorted) follow it exactly.

use super::native::{self, Native};
use crate::model::{Histogram, Metric, MetricType, Value};
use std::sync::Arc;

use crate::store::{
    Group, GroupKey, Nanos, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP,
};
use crate::time::rfc3339_nanos;
use crate::wire::json::json_string;

/// `{"status":"success","data":...}` around already-encoded data.
fn success(data: &str) -> String {
    format!("{{\"status\":\"success\",\"data\":{data}}}")
}

/// A float as Go's `fmt.Sprint` writes it.
fn go_sprint(f: f64) -> String {
    native::go_float(f)
}

/// Appends `"key":value,` pairs as a JSON object, keys sorted.
fn object(out: &mut String, mut pairs: Vec<(String, String)>) {
    // Keys are unique: the whole pair orders as the key does.
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(out, k);
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
}

fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    json_string(&mut out, s);
    out
}

/// `GET /api/v1/status`.
pub(crate) fn status(
    flags: &[(String, String)],
    start_time: Nanos,
    build: &[(&str, String)],
) -> String {
    let mut data = String::new();
    let mut flag_obj = String::new();
    object(
        &mut flag_obj,
        flags.iter().map(|(k, v)| (k.clone(), quoted(v))).collect(),
    );
    let mut build_obj = String::new();
    object(
        &mut build_obj,
        build
            .iter()
            .map(|(k, v)| (k.to_string(), quoted(v)))
            .collect(),
    );
    object(
        &mut data,
        vec![
            ("build_information".into(), build_obj),
            ("flags".into(), flag_obj),
            ("start_time".into(), quoted(&rfc3339_nanos(start_time))),
        ],
    );
    success(&data)
}

fn labels_json(m: &Metric) -> String {
    let mut out = String::new();
    object(
        &mut out,
        m.labels
            .iter()
            .map(|l| (l.name.to_string(), quoted(&l.value)))
            .collect(),
    );
    out
}

fn metric_json(m: &Metric) -> String {
    let mut pairs = vec![("labels".to_string(), labels_json(m))];
    match &m.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
            pairs.push(("value".into(), quoted(&go_sprint(*v))));
        }
        Value::Summary(s) => {
            let mut q = String::new();
            object(
                &mut q,
                s.quantiles
                    .iter()
                    .map(|(k, v)| (go_sprint(*k), quoted(&go_sprint(*v))))
                    .collect(),
            );
            pairs.push(("quantiles".into(), q));
            pairs.push(("count".into(), quoted(&s.count.to_string())));
            pairs.push(("sum".into(), quoted(&go_sprint(s.sum))));
        }
        Value::Histogram(h) => {
            let (buckets, count) = match native::native(h) {
                Some(n) => (native_buckets_json(&n), n.count.go()),
                None => classic_buckets_json(h),
            };
            pairs.push(("buckets".into(), buckets));
            pairs.push(("count".into(), quoted(&count)));
            pairs.push(("sum".into(), quoted(&go_sprint(h.sum))));
        }
    }
    let mut out = String::new();
    object(&mut out, pairs);
    out
}

/// A classic histogram's buckets (`{"upper bound": "cumulative count"}`)
/// and count, as `makeBuckets` and `makeEncodableMetrics` in 1.11's
/// `api/v1/api.go` write them: a float count (1.10's float histograms) is
/// used where it is positive, the integer one otherwise.
fn classic_buckets_json(h: &Histogram) -> (String, String) {
    let float_or = |f: Option<f64>, n: u64| match f.filter(|f| *f > 0.0) {
        Some(f) => go_sprint(f),
        None => n.to_string(),
    };
    let mut b = String::new();
    object(
        &mut b,
        h.buckets
            .iter()
            .map(|b| {
                let count = float_or(b.count_float, b.count);
                (go_sprint(b.upper_bound), quoted(&count))
            })
            .collect(),
    );
    (b, float_or(h.count_float, h.count))
}

/// A native histogram's buckets as 1.11's `histogram.BucketsAsJson` writes
/// them: `[[boundaries, "lower", "upper", "count"], ...]`, boundaries being
/// `makeBucket`'s interval code, the rest `fmt.Sprintf("%v")`.
fn native_buckets_json(n: &Native) -> String {
    let rows: Vec<String> = n
        .buckets()
        .iter()
        .map(|b| {
            format!(
                "[{},{},{},{}]",
                b.boundaries(),
                quoted(&go_sprint(b.lower)),
                quoted(&go_sprint(b.upper)),
                quoted(&b.count.go())
            )
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// One family as the reference encodes it: fields in struct order, `help`
/// left out when empty.
fn family_json(stamp: Nanos, t: MetricType, help: Option<&str>, metrics: &[String]) -> String {
    let mut out = String::from("{\"time_stamp\":");
    json_string(&mut out, &rfc3339_nanos(stamp));
    out.push_str(",\"type\":");
    json_string(&mut out, t.proto_name());
    if let Some(h) = help.filter(|h| !h.is_empty()) {
        out.push_str(",\"help\":");
        json_string(&mut out, h);
    }
    out.push_str(",\"metrics\":[");
    out.push_str(&metrics.join(","));
    out.push_str("]}");
    out
}

fn time_gauge(group: &Group, value: Option<Nanos>) -> String {
    let m = Metric::new(
        group.time_labels().to_vec().into(),
        Value::Gauge(value.map(|n| n as f64 / 1e9).unwrap_or(0.0)),
    );
    metric_json(&m)
}

fn group_json(key: &[crate::model::Label], group: &Group) -> String {
    let mut labels = String::new();
    object(
        &mut labels,
        key.iter()
            .map(|l| (l.name.to_string(), quoted(&l.value)))
            .collect(),
    );
    let mut pairs = vec![
        ("labels".to_string(), labels),
        (
            "last_push_successful".to_string(),
            group.last_push_successful().to_string(),
        ),
    ];
    for (name, fam) in group.families.iter() {
        let metrics: Vec<String> = fam
            .metrics
            .iter()
            .map(|m| metric_json(&group.exposed(m)))
            .collect();
        pairs.push((
            name.to_string(),
            family_json(
                fam.pushed_at,
                fam.metric_type,
                fam.help.as_deref(),
                &metrics,
            ),
        ));
    }
    let (push_stamp, fail_stamp) = group.time_family_stamps();
    pairs.push((
        PUSH_TIME.into(),
        family_json(
            push_stamp,
            MetricType::Gauge,
            Some(PUSH_TIME_HELP),
            &[time_gauge(group, group.push_time)],
        ),
    ));
    pairs.push((
        PUSH_FAILURE_TIME.into(),
        family_json(
            fail_stamp,
            MetricType::Gauge,
            Some(PUSH_FAILURE_TIME_HELP),
            &[time_gauge(group, group.failure_time)],
        ),
    ));
    // Ours alone (expiry is opt-in): absent unless the group expires.
    if let Some(d) = group.deadline {
        let mut at = String::new();
        json_string(&mut at, &rfc3339_nanos(d));
        pairs.push(("expires_at".into(), at));
    }
    let mut out = String::new();
    object(&mut out, pairs);
    out
}

/// `GET /api/v1/metrics`: every group with its families.
///
/// Written group by group into one string: only one group's JSON is ever
/// held twice.
pub(crate) fn metrics(groups: &[(GroupKey, Arc<Group>)]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, (k, g)) in groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&group_json(k, g));
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Label;
    use crate::store::{Store, prepare_push};
    use crate::telemetry::GatewayFamilies;

    #[test]
    fn metrics_shape_matches_the_reference() {
        let mut store = Store::new();
        let key: Vec<Label> = vec![Label::new("instance", "i"), Label::new("job", "t")];
        let body = "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n# TYPE c counter\n# HELP c Say \"<hi>\".\nc{a=\"x\\\"y\"} 1e-7\n";
        let push = prepare_push(
            key.into(),
            crate::wire::text_format::parse(body.as_bytes()).unwrap(),
            true,
        )
        .unwrap();
        store.check(&push, &GatewayFamilies).unwrap();
        store.apply(push, 1_795_580_287_542_346_203);
        let json = metrics(&store.snapshot());
        assert!(json.starts_with("{\"status\":\"success\",\"data\":[{\"c\":{\"time_stamp\":\"2026-11-25T04:18:07.542346203Z\",\"type\":\"COUNTER\",\"help\":\"Say \\\"\\u003chi\\u003e\\\".\",\"metrics\":[{\"labels\":{\"a\":\"x\\\"y\",\"instance\":\"i\",\"job\":\"t\"},\"value\":\"1e-07\"}]},\"labels\":{\"instance\":\"i\",\"job\":\"t\"},\"last_push_successful\":true,"), "{json}");
        assert!(json.contains("\"s\":{\"time_stamp\":\"2026-11-25T04:18:07.542346203Z\",\"type\":\"SUMMARY\",\"metrics\":[{\"count\":\"3\",\"labels\":{\"instance\":\"i\",\"job\":\"t\"},\"quantiles\":{\"0.5\":\"1\"},\"sum\":\"2\"}]}"), "{json}");
        assert!(json.contains("\"push_time_seconds\":{\"time_stamp\":\"2026-11-25T04:18:07.542346203Z\",\"type\":\"GAUGE\",\"help\":\"Last Unix time when changing this group in the Pushgateway succeeded.\",\"metrics\":[{\"labels\":{\"instance\":\"i\",\"job\":\"t\"},\"value\":\"1.7955802875423462e+09\"}]}"), "{json}");
    }

    /// The one histogram series `h` of group `{job="t"}` (`instance=""`
    /// added as the reference adds it), as the API writes it.
    fn histogram_json(h: Histogram) -> String {
        use crate::model::MetricFamily;
        let mut store = Store::new();
        let fam = MetricFamily {
            name: "h".into(),
            help: None,
            metric_type: MetricType::Histogram,
            metrics: vec![Metric::new(
                Vec::new().into(),
                Value::Histogram(Box::new(h)),
            )],
        };
        let key: Vec<Label> = vec![Label::new("job", "t")];
        let push = prepare_push(key.into(), vec![fam], true).unwrap();
        store.check(&push, &GatewayFamilies).unwrap();
        store.apply(push, 1_795_580_287_542_346_203);
        let json = metrics(&store.snapshot());
        let start = json.find("\"metrics\":[").unwrap() + 11;
        let end = json[start..].find("]}").unwrap() + start;
        json[start..end].to_owned()
    }

    fn native_histogram() -> Histogram {
        use crate::model::{NativeHistogram, Span};
        Histogram {
            count: 6,
            sum: -3.5,
            buckets: vec![crate::model::Bucket::new(1.0, 3)],
            native: Some(Box::new(NativeHistogram {
                schema: 0,
                zero_threshold: 0.001,
                zero_count: 1,
                negative_spans: vec![Span {
                    offset: 1,
                    length: 2,
                }],
                negative_deltas: vec![1, -1],
                positive_spans: vec![
                    Span {
                        offset: 0,
                        length: 1,
                    },
                    Span {
                        offset: 1,
                        length: 2,
                    },
                ],
                positive_deltas: vec![2, -2, 2],
                ..NativeHistogram::default()
            })),
            ..Histogram::default()
        }
    }

    #[test]
    fn native_histograms_as_1_11() {
        // makeEncodableMetrics: spans present, so the classic bucket is
        // ignored and "buckets" is BucketsAsJson(GetAPIBuckets(h)):
        // negative buckets reversed ([) is 1), the zero bucket ([] is 3),
        // positive buckets ((] is 0), empty ones left out.
        assert_eq!(
            histogram_json(native_histogram()),
            "{\"buckets\":[[1,\"-2\",\"-1\",\"1\"],[3,\"-0.001\",\"0.001\",\"1\"],[0,\"0.5\",\"1\",\"2\"],[0,\"4\",\"8\",\"2\"]],\"count\":\"6\",\"labels\":{\"instance\":\"\",\"job\":\"t\"},\"sum\":\"-3.5\"}"
        );
    }

    #[test]
    fn float_native_histograms_as_1_11() {
        // NewModelHistogram: a positive float count makes a FloatHistogram;
        // GetAPIFloatBuckets takes absolute counts, printed with %v.
        let mut h = native_histogram();
        h.count_float = Some(4.25);
        let n = h.native.as_mut().unwrap();
        n.zero_count_float = Some(0.25);
        n.negative_counts = vec![0.0, 1e-9];
        n.positive_counts = vec![1.0, 0.0, 3.0];
        assert_eq!(
            histogram_json(h),
            "{\"buckets\":[[1,\"-4\",\"-2\",\"1e-09\"],[3,\"-0.001\",\"0.001\",\"0.25\"],[0,\"0.5\",\"1\",\"1\"],[0,\"4\",\"8\",\"3\"]],\"count\":\"4.25\",\"labels\":{\"instance\":\"\",\"job\":\"t\"},\"sum\":\"-3.5\"}"
        );
    }

    #[test]
    fn empty_native_histogram_has_no_buckets() {
        // client_golang's no-observation histogram: one empty span. Native
        // (spans present), GetAPIBuckets finds nothing: a nil slice that
        // BucketsAsJson turns into [].
        use crate::model::{NativeHistogram, Span};
        let h = Histogram {
            native: Some(Box::new(NativeHistogram {
                zero_threshold: 1e-128,
                positive_spans: vec![Span {
                    offset: 0,
                    length: 0,
                }],
                ..NativeHistogram::default()
            })),
            ..Histogram::default()
        };
        assert_eq!(
            histogram_json(h),
            "{\"buckets\":[],\"count\":\"0\",\"labels\":{\"instance\":\"\",\"job\":\"t\"},\"sum\":\"0\"}"
        );
    }

    #[test]
    fn classic_float_histograms_as_1_10() {
        // makeBuckets and makeEncodableMetrics: a positive float count wins
        // over the integer one, per bucket and for the histogram.
        let mut h = Histogram {
            count: 7,
            count_float: Some(2.5),
            sum: 1.0,
            buckets: vec![
                crate::model::Bucket::new(0.5, 1),
                crate::model::Bucket::new(1.0, 4),
            ],
            native: None,
        };
        h.buckets[1].count_float = Some(1.5);
        h.buckets[0].count_float = Some(0.0);
        assert_eq!(
            histogram_json(h),
            "{\"buckets\":{\"0.5\":\"1\",\"1\":\"1.5\"},\"count\":\"2.5\",\"labels\":{\"instance\":\"\",\"job\":\"t\"},\"sum\":\"1\"}"
        );
    }

    #[test]
    fn status_shape() {
        let s = status(
            &[("web.listen-address".into(), ":9091".into())],
            0,
            &[("version", "0.1.0".into())],
        );
        assert_eq!(
            s,
            "{\"status\":\"success\",\"data\":{\"build_information\":{\"version\":\"0.1.0\"},\"flags\":{\"web.listen-address\":\":9091\"},\"start_time\":\"1970-01-01T00:00:00Z\"}}"
        );
    }
}
