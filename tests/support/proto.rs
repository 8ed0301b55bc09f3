//! Protobuf bodies and scrapes for the tests that push what only protobuf
//! carries (exemplars, created timestamps), built and read with the
//! crate's own encoder and decoder: the reference judges what they mean.

use std::fmt::Write as _;

use pushgateway::wire::protobuf::{CONTENT_TYPE as PROTOBUF, decode, encode_family};

use super::Gateway;

/// A protobuf body whose series carry every extra the text format cannot:
/// a counter's exemplar and created timestamp, a summary's created
/// timestamp, classic bucket exemplars and native-histogram exemplars.
pub fn body_with_extras() -> Vec<u8> {
    use pushgateway::model::{
        Bucket, Exemplar, Extra, Histogram, Label, Metric, MetricType, Summary, Timestamp, Value,
    };
    let ts = |seconds, nanos| Some(Timestamp { seconds, nanos });
    let ex = |trace: &str, value, timestamp| Exemplar {
        labels: vec![Label::new("trace_id", trace)].into(),
        value,
        timestamp,
    };
    let metric = |value, extra| Metric {
        extra: Some(Box::new(extra)),
        ..Metric::new(vec![Label::new("a", "1")].into(), value)
    };
    let histogram = Histogram {
        count: 3,
        sum: 2.5,
        buckets: vec![
            Bucket::new(0.5, 1),
            Bucket::new(1.0, 2),
            Bucket::new(5.0, 3),
        ],
        ..Histogram::default()
    };
    let families = [
        (
            "ex_counter",
            MetricType::Counter,
            metric(
                Value::Counter(7.0),
                Extra {
                    created: ts(1_700_000_000, 250_000_000),
                    exemplar: Some(ex("c0ffee", 1.0, ts(1_700_000_100, 5))),
                    ..Extra::default()
                },
            ),
        ),
        (
            "ex_summary",
            MetricType::Summary,
            metric(
                Value::Summary(Box::new(Summary {
                    count: 1,
                    sum: 0.5,
                    quantiles: vec![(0.5, 0.5)],
                })),
                Extra {
                    created: ts(1_600_000_000, 0),
                    ..Extra::default()
                },
            ),
        ),
        (
            "ex_histogram",
            MetricType::Histogram,
            metric(
                Value::Histogram(Box::new(histogram)),
                Extra {
                    created: ts(1_500_000_000, 1),
                    bucket_exemplars: vec![(0, ex("b0", 0.25, None)), (2, ex("b2", 3.5, ts(1, 2)))],
                    exemplars: vec![ex("n0", 0.75, ts(3, 4))],
                    ..Extra::default()
                },
            ),
        ),
    ];
    let mut body = Vec::new();
    for (name, t, m) in &families {
        encode_family(&mut body, name, Some("With extras."), *t, [m].into_iter());
    }
    body
}

/// The pushed families of a protobuf scrape, decoded, with the series'
/// extras shown: what the two gateways must agree on.
pub fn protobuf_scrape(g: &Gateway) -> (Vec<u8>, String) {
    let r = g.request("GET", "/metrics", &[("Accept", PROTOBUF)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let fams = decode(&r.body).expect("protobuf scrape decodes");
    let mut shown = String::new();
    for f in fams.iter().filter(|f| f.name.starts_with("ex_")) {
        let _ = writeln!(shown, "{} {} {:?}", f.name, f.metric_type, f.help);
        for m in &f.metrics {
            let _ = writeln!(shown, "  {:?} {:?}\n  {:?}", m.labels, m.value, m.extra);
        }
    }
    (r.body, shown)
}
