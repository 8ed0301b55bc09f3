//! OpenMetrics 1.0 text pushes against the real binary: what they store
//! shows up in text 0.0.4 scrapes as Prometheus exposes it, exemplars and
//! created timestamps in protobuf scrapes and across a restart; a body the
//! spec calls invalid is refused whole with its line.

mod support;

use pushgateway::model::{Metric, MetricFamily, MetricType, Timestamp, Value};
use pushgateway::wire::protobuf;
use support::{Gateway, TempDir, gzip, ours};

const OM: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every OpenMetrics type, with exemplars and created timestamps.
const BODY: &str = "# TYPE om_requests counter\n\
# HELP om_requests Requests served.\n\
om_requests_total{code=\"200\"} 3 # {trace_id=\"abc\"} 1 1700000000.5\n\
om_requests_created{code=\"200\"} 1520430000.123\n\
# TYPE om_latency_seconds histogram\n\
# UNIT om_latency_seconds seconds\n\
om_latency_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"fast\"} 0.05\n\
om_latency_seconds_bucket{le=\"1\"} 2\n\
om_latency_seconds_bucket{le=\"+Inf\"} 3 # {trace_id=\"slow\"} 7.5 1700000001\n\
om_latency_seconds_count 3\n\
om_latency_seconds_sum 8.05\n\
om_latency_seconds_created 1500000000\n\
# TYPE om_queue gaugehistogram\n\
om_queue_bucket{le=\"10\"} 4\n\
om_queue_bucket{le=\"+Inf\"} 5\n\
om_queue_gcount 5\n\
om_queue_gsum 31\n\
# TYPE om_rpc summary\n\
om_rpc{quantile=\"0.5\"} 0.25\n\
om_rpc_count 9\n\
om_rpc_sum 4.5\n\
# TYPE om_build info\n\
om_build_info{version=\"1.2.3\"} 1\n\
# TYPE om_state stateset\n\
om_state{om_state=\"up\"} 1\n\
om_state{om_state=\"down\"} 0\n\
# TYPE om_other unknown\n\
om_other 42\n\
# EOF\n";

fn push(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let r = gw.request("PUT", path, headers, body);
    (r.status, r.text())
}

fn protobuf_families(gw: &Gateway) -> Vec<MetricFamily> {
    let r = gw.request(
        "GET",
        "/metrics",
        &[("Accept", protobuf::CONTENT_TYPE)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    protobuf::decode(&r.body).expect("our protobuf scrape decodes")
}

fn family<'a>(families: &'a [MetricFamily], name: &str) -> &'a MetricFamily {
    families
        .iter()
        .find(|f| &*f.name == name)
        .unwrap_or_else(|| panic!("no family {name} in the scrape"))
}

fn only(f: &MetricFamily) -> &Metric {
    assert_eq!(f.metrics.len(), 1, "{f:?}");
    &f.metrics[0]
}

/// What the protobuf scrape must show of [`BODY`]'s extras.
fn assert_extras(families: &[MetricFamily]) {
    let c = family(families, "om_requests_total");
    assert_eq!(c.metric_type, MetricType::Counter);
    assert_eq!(c.help.as_deref(), Some("Requests served."));
    let extra = only(c).extra.as_deref().expect("the counter's extras");
    assert_eq!(
        extra.created,
        Some(Timestamp {
            seconds: 1_520_430_000,
            nanos: 123_000_000
        })
    );
    let ex = extra.exemplar.as_ref().expect("the counter's exemplar");
    assert_eq!(
        (&*ex.labels[0].name, &*ex.labels[0].value),
        ("trace_id", "abc")
    );
    assert_eq!(ex.value, 1.0);
    assert_eq!(
        ex.timestamp,
        Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000
        })
    );
    let h = family(families, "om_latency_seconds");
    assert_eq!(h.metric_type, MetricType::Histogram);
    let extra = only(h).extra.as_deref().expect("the histogram's extras");
    assert_eq!(&*extra.bucket_exemplar(0).unwrap().labels[0].value, "fast");
    assert!(extra.bucket_exemplar(1).is_none());
    assert_eq!(extra.bucket_exemplar(2).unwrap().value, 7.5);
    assert_eq!(extra.created.map(|t| t.seconds), Some(1_500_000_000));
}

#[test]
fn openmetrics_pushes_show_their_exemplars_in_protobuf_scrapes() {
    let gw = Gateway::start(&ours(), &[]);
    let (status, text) = push(
        &gw,
        "/metrics/job/om",
        &[("Content-Type", OM)],
        BODY.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let families = protobuf_families(&gw);
    assert_extras(&families);
    let q = family(&families, "om_queue");
    assert_eq!(q.metric_type, MetricType::GaugeHistogram);
    let Value::Histogram(h) = &only(q).value else {
        panic!("a gauge histogram's value: {q:?}")
    };
    assert_eq!((h.count, h.sum), (5, 31.0));
    assert_eq!(
        family(&families, "om_build_info").metric_type,
        MetricType::Gauge
    );
    assert_eq!(family(&families, "om_state").metrics.len(), 2);
    assert_eq!(
        family(&families, "om_other").metric_type,
        MetricType::Untyped
    );
}

#[test]
fn openmetrics_pushes_scrape_as_text_0_0_4() {
    let gw = Gateway::start(&ours(), &[]);
    let (status, text) = push(
        &gw,
        "/metrics/job/om",
        &[("Content-Type", OM)],
        BODY.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    // Asked for OpenMetrics, a scrape still answers text 0.0.4, as the
    // reference does.
    let r = gw.request(
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
        b"",
    );
    assert_eq!(r.status, 200);
    let ct = r.header("Content-Type").unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text();
    for line in [
        "# HELP om_requests_total Requests served.",
        "# TYPE om_requests_total counter",
        "om_requests_total{code=\"200\",instance=\"\",job=\"om\"} 3",
        "# TYPE om_latency_seconds histogram",
        "om_latency_seconds_bucket{instance=\"\",job=\"om\",le=\"0.1\"} 1",
        "om_latency_seconds_count{instance=\"\",job=\"om\"} 3",
        "# TYPE om_queue histogram",
        "om_queue_sum{instance=\"\",job=\"om\"} 31",
        "om_rpc{instance=\"\",job=\"om\",quantile=\"0.5\"} 0.25",
        "# TYPE om_build_info gauge",
        "om_build_info{instance=\"\",job=\"om\",version=\"1.2.3\"} 1",
        "# TYPE om_state gauge",
        "om_state{instance=\"\",job=\"om\",om_state=\"down\"} 0",
        "# TYPE om_other untyped",
        "om_other{instance=\"\",job=\"om\"} 42",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        !text.contains("# EOF") && !text.contains("trace_id"),
        "{text}"
    );
}

#[test]
fn compressed_and_0_0_1_bodies_are_read_too() {
    let gw = Gateway::start(&ours(), &[]);
    let headers = [
        (
            "Content-Type",
            "Application/OpenMetrics-Text; version=0.0.1",
        ),
        ("Content-Encoding", "gzip"),
    ];
    let (status, text) = push(&gw, "/metrics/job/om", &headers, &gzip(BODY.as_bytes()));
    assert_eq!(status, 200, "{text}");
    assert_extras(&protobuf_families(&gw));
    let mut snappy = snap::write::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(
        &mut snappy,
        b"# TYPE s_hits counter\ns_hits_total 2\n# EOF\n",
    )
    .expect("snappy in memory");
    let body = snappy.into_inner().expect("snappy in memory");
    let headers = [("Content-Type", OM), ("Content-Encoding", "snappy")];
    let (status, text) = push(&gw, "/metrics/job/snappy", &headers, &body);
    assert_eq!(status, 200, "{text}");
    assert!(
        gw.get("/metrics")
            .text()
            .contains("s_hits_total{instance=\"\",job=\"snappy\"} 2")
    );
}

#[test]
fn an_invalid_body_is_refused_whole_with_its_line() {
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(gw.put("/metrics/job/om", "kept 1\n").status, 200);
    let cases = [
        ("good_total 1\n", "line 2", "# EOF"),
        (
            "# TYPE a counter\na_total 1\na_total 2\n# EOF\n",
            "line 3",
            "twice",
        ),
        ("a 1\nb 1\na 2\n# EOF\n", "line 3", "interleaved"),
        (
            "# TYPE a counter\n# UNIT a seconds\n# EOF\n",
            "line 2",
            "suffix",
        ),
        (
            "# TYPE g gauge\ng 1 # {trace_id=\"x\"} 1\n# EOF\n",
            "line 2",
            "exemplar",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n# EOF\n",
            "line 2",
            "+Inf",
        ),
        ("a 1\n# EOF\nb 1\n", "line 3", "EOF"),
    ];
    for (body, line, why) in cases {
        let (status, text) = push(
            &gw,
            "/metrics/job/om",
            &[("Content-Type", OM)],
            body.as_bytes(),
        );
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(
            text.contains(&format!("OpenMetrics parsing error in {line}:")) && text.contains(why),
            "{body:?}: {text}"
        );
    }
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("kept{instance=\"\",job=\"om\"} 1"),
        "{scrape}"
    );
    for name in ["good_total", "a_total", "g{", "h_bucket", "\nb{"] {
        assert!(!scrape.contains(name), "{name} stored:\n{scrape}");
    }
    // Another version of OpenMetrics is not read by the 1.0 rules.
    let headers = [(
        "Content-Type",
        "application/openmetrics-text; version=2.0.0",
    )];
    let (status, text) = push(&gw, "/metrics/job/om", &headers, b"a 1\n# EOF\n");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("unsupported OpenMetrics version \"2.0.0\""),
        "{text}"
    );
    // Timestamps are refused as in every push format.
    let (status, text) = push(
        &gw,
        "/metrics/job/om",
        &[("Content-Type", OM)],
        b"a 1 1700000000\n# EOF\n",
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("must not have timestamps"), "{text}");
}

#[test]
fn exemplars_and_created_timestamps_survive_a_restart() {
    let dir = TempDir::new("openmetrics-restart");
    let flag = format!("--persistence.file={}", dir.file("metric.store").display());
    let mut gw = Gateway::start(&ours(), &[&flag, "--persistence.interval=5m"]);
    let (status, text) = push(
        &gw,
        "/metrics/job/om",
        &[("Content-Type", OM)],
        BODY.as_bytes(),
    );
    assert_eq!(status, 200, "{text}");
    let before = protobuf_families(&gw);
    gw.stop();
    let gw = Gateway::start(&ours(), &[&flag]);
    let after = protobuf_families(&gw);
    assert_extras(&after);
    let pushed = |f: &[MetricFamily]| {
        let mut v: Vec<String> = f
            .iter()
            .filter(|f| f.name.starts_with("om_"))
            .map(|f| format!("{f:?}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(pushed(&after), pushed(&before));
}
