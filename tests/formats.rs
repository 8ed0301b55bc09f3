//! Wire formats end to end against the real binary: pushes in text,
//! protobuf, gzip and snappy show up identically in every scrape format,
//! and UTF-8 names work only with `--push.enable-utf8-names`.

mod support;

use std::io::{Read, Write};

use pushgateway::model::MetricType;
use pushgateway::wire::protobuf;
use support::{Gateway, gzip, ours};

const BODY: &str = "# HELP c A counter.\n# TYPE c counter\nc{path=\"/var/tmp\",q=\"a\\\"b\",utf=\"é日本\"} 1e-7\n\
# TYPE g gauge\ng{v=\"inf\"} +Inf\ng{v=\"neg\"} -2.5\n\
# TYPE s summary\ns{quantile=\"0.5\"} 1.5\ns{quantile=\"0.99\"} 3\ns_sum 12.25\ns_count 18\n\
# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"0.005\"} 1\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 4\nh_sum 0.1\nh_count 4\n\
x 6.02214076e+23\n";

const PROTO: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The pushed part of a text scrape: no own metrics, no push times.
fn pushed_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let name = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            !(name.starts_with("process_")
                || name.starts_with("pushgateway_")
                || name.starts_with("push_"))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_push_format_gives_the_same_scrape() {
    let text_gw = Gateway::start(&ours(), &[]);
    assert_eq!(text_gw.put("/metrics/job/j/instance/i", BODY).status, 200);
    let want = pushed_lines(&text_gw.get("/metrics").text());
    assert!(want.len() > 15, "{want:?}");

    // Scrape as protobuf, push that to a fresh gateway as protobuf.
    let r = text_gw.request("GET", "/metrics", &[("Accept", PROTO)], b"");
    let proto_ct = format!("{PROTO}; escaping=underscores");
    assert_eq!(r.header("Content-Type"), Some(proto_ct.as_str()));
    let families = protobuf::decode(&r.body).expect("our protobuf scrape decodes");
    let mut proto_body = Vec::new();
    for f in families.iter().filter(|f| {
        !f.name.starts_with("process_")
            && !f.name.starts_with("pushgateway_")
            && !f.name.starts_with("push_")
    }) {
        protobuf::encode_family(
            &mut proto_body,
            &f.name,
            f.help.as_deref(),
            f.metric_type,
            f.metrics.iter(),
        );
    }
    let h = families
        .iter()
        .find(|f| &*f.name == "h")
        .expect("histogram in protobuf scrape");
    assert_eq!(h.metric_type, MetricType::Histogram);

    let proto_gw = Gateway::start(&ours(), &[]);
    let r = proto_gw.request(
        "PUT",
        "/metrics/job/j/instance/i",
        &[("Content-Type", PROTO)],
        &proto_body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        pushed_lines(&proto_gw.get("/metrics").text()),
        want,
        "protobuf round trip"
    );

    // gzip and snappy bodies.
    let gz_gw = Gateway::start(&ours(), &[]);
    let r = gz_gw.request(
        "PUT",
        "/metrics/job/j/instance/i",
        &[("Content-Encoding", "gzip")],
        &gzip(BODY.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        pushed_lines(&gz_gw.get("/metrics").text()),
        want,
        "gzip body"
    );

    let mut snappy = snap::write::FrameEncoder::new(Vec::new());
    snappy.write_all(BODY.as_bytes()).expect("snappy");
    let snappy = snappy.into_inner().expect("snappy");
    let sn_gw = Gateway::start(&ours(), &[]);
    let r = sn_gw.request(
        "PUT",
        "/metrics/job/j/instance/i",
        &[("Content-Encoding", "snappy")],
        &snappy,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        pushed_lines(&sn_gw.get("/metrics").text()),
        want,
        "snappy body"
    );

    // A gzip-compressed scrape holds the same text.
    let r = text_gw.request("GET", "/metrics", &[("Accept-Encoding", "gzip")], b"");
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut plain)
        .expect("gunzip scrape");
    assert_eq!(pushed_lines(&plain), want, "gzip scrape");

    // OpenMetrics requests get text 0.0.4, so counters keep their names.
    let r = text_gw.request(
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")],
        b"",
    );
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    assert_eq!(pushed_lines(&r.text()), want);
}

#[test]
fn decompression_bombs_get_413() {
    let gw = Gateway::start(&ours(), &["--push.max-body-size=64KiB"]);
    let bomb = gzip(&vec![b'\n'; 50 << 20]);
    assert!(
        bomb.len() < 64 << 10,
        "the compressed bomb itself fits the cap"
    );
    let r = gw.request(
        "PUT",
        "/metrics/job/j",
        &[("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = gw.request(
        "PUT",
        "/metrics/job/j",
        &[("Content-Encoding", "gzip")],
        b"not gzip at all",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("gzip"), "{}", r.text());
}

#[test]
fn malformed_protobuf_names_the_byte_offset() {
    let gw = Gateway::start(&ours(), &[]);
    let r = gw.request(
        "PUT",
        "/metrics/job/j",
        &[("Content-Type", PROTO)],
        &[0x0a, 0x05, 0x0a, 0x01],
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("at byte"), "{}", r.text());
    assert!(
        !gw.get("/metrics").text().contains("job=\"j\""),
        "nothing stored"
    );
}

#[test]
fn utf8_names_need_the_flag() {
    let body = "# HELP \"my.metric\" Dotted.\n{\"my.metric\",\"a.b\"=\"1\"} 1\n";
    let gw = Gateway::start(&ours(), &[]);
    let r = gw.put("/metrics/job/j", body);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("--push.enable-utf8-names"),
        "{}",
        r.text()
    );
    // Without the flag, U__ in the path is just a classic label name.
    assert_eq!(
        gw.put("/metrics/job/j/U__foo_2e_bar/baz", "m 1\n").status,
        200
    );
    assert!(
        gw.get("/metrics")
            .text()
            .contains("m{U__foo_2e_bar=\"baz\",instance=\"\",job=\"j\"} 1")
    );

    let gw = Gateway::start(&ours(), &["--push.enable-utf8-names"]);
    let r = gw.put("/metrics/job/j/U__foo_2e_bar/baz", body);
    assert_eq!(r.status, 200, "{}", r.text());
    // Quoted names only for a scraper that takes them (Prometheus 3).
    let r = gw.request("GET", "/metrics", &[("Accept", PROM3_UTF8)], b"");
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8")
    );
    let text = r.text();
    assert!(
        text.contains("# HELP \"my.metric\" Dotted.\n# TYPE \"my.metric\" untyped\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "{\"my.metric\",\"a.b\"=\"1\",\"foo.bar\"=\"baz\",instance=\"\",job=\"j\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("push_time_seconds{\"foo.bar\"=\"baz\",instance=\"\",job=\"j\"} "),
        "{text}"
    );
}

/// What Prometheus 3 sends (scrape/scrape.go `acceptHeader`, default
/// config) and with `metric_name_validation_scheme: legacy`.
const PROM3_UTF8: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
const PROM3_LEGACY: &str = "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

/// Scrapers that did not ask for UTF-8 get escaped names, in the scheme
/// they asked for (`underscores` by default), in text and protobuf; the
/// Content-Type names the scheme, as 1.11 does.
#[test]
fn utf8_names_are_escaped_as_the_scraper_asks() {
    let gw = Gateway::start(&ours(), &["--push.enable-utf8-names"]);
    let body =
        "# TYPE \"my.metric\" gauge\n{\"my.metric\",\"a.b\"=\"x.y\"} 1\nclassic{k=\"v\"} 2\n";
    assert_eq!(gw.put("/metrics/job/j/U__foo_2e_bar/baz", body).status, 200);
    for (accept, scheme, label) in [
        (None, "underscores", "foo_bar"),
        (Some(PROM3_LEGACY), "underscores", "foo_bar"),
        (Some("text/plain;escaping=dots"), "dots", "foo_dot_bar"),
        (
            Some("text/plain;escaping=values"),
            "values",
            "U__foo_2e_bar",
        ),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = gw.request("GET", "/metrics", &headers, b"");
        assert_eq!(r.status, 200);
        let want = format!("text/plain; version=0.0.4; charset=utf-8; escaping={scheme}");
        assert_eq!(r.header("Content-Type"), Some(want.as_str()), "{accept:?}");
        let text = r.text();
        let (name, ab) = match scheme {
            "dots" => ("my_dot_metric", "a_dot_b"),
            "values" => ("U__my_2e_metric", "U__a_2e_b"),
            _ => ("my_metric", "a_b"),
        };
        for line in [
            format!("# TYPE {name} gauge\n"),
            format!("{name}{{{ab}=\"x.y\",{label}=\"baz\",instance=\"\",job=\"j\"}} 1\n"),
            format!("classic{{{label}=\"baz\",instance=\"\",job=\"j\",k=\"v\"}} 2\n"),
            format!("push_time_seconds{{{label}=\"baz\",instance=\"\",job=\"j\"}} "),
        ] {
            assert!(text.contains(&line), "{accept:?}: no {line:?} in\n{text}");
        }
        assert!(!text.contains("{\""), "no quoted name: {text}");
    }
    // Protobuf, as Prometheus asks with native histograms on: no escaping
    // parameter on the protobuf entry, so underscores.
    let proto_first = format!("{PROTO};q=0.6,{PROM3_UTF8}");
    let r = gw.request("GET", "/metrics", &[("Accept", &proto_first)], b"");
    assert_eq!(
        r.header("Content-Type"),
        Some(format!("{PROTO}; escaping=underscores").as_str())
    );
    let families = protobuf::decode_with(&r.body, pushgateway::model::NameScheme::Utf8).unwrap();
    let f = families
        .iter()
        .find(|f| &*f.name == "my_metric")
        .expect("escaped family");
    let names: Vec<&str> = f.metrics[0].labels.iter().map(|l| &*l.name).collect();
    assert_eq!(names, ["a_b", "foo_bar", "instance", "job"]);
    let r = gw.request(
        "GET",
        "/metrics",
        &[("Accept", &format!("{PROTO};escaping=allow-utf-8"))],
        b"",
    );
    let families = protobuf::decode_with(&r.body, pushgateway::model::NameScheme::Utf8).unwrap();
    assert!(families.iter().any(|f| &*f.name == "my.metric"));
}

/// A histogram series with no labels (the grouping key adds job and
/// instance).
fn histogram_series(h: pushgateway::model::Histogram) -> pushgateway::model::Metric {
    pushgateway::model::Metric {
        labels: Vec::new().into(),
        value: pushgateway::model::Value::Histogram(Box::new(h)),
        extra: None,
    }
}

/// Schema 0: buckets (0.5,1] with 2 and (4,8] with 1 (a gap of one empty
/// bucket between two spans), [-2,-1) with 1 below zero, 1 in the zero
/// bucket.
fn native_part() -> pushgateway::model::NativeHistogram {
    use pushgateway::model::{NativeHistogram, Span};
    NativeHistogram {
        schema: 0,
        zero_threshold: 0.001,
        zero_count: 1,
        negative_spans: vec![Span {
            offset: 1,
            length: 1,
        }],
        negative_deltas: vec![1],
        positive_spans: vec![
            Span {
                offset: 0,
                length: 1,
            },
            Span {
                offset: 2,
                length: 1,
            },
        ],
        positive_deltas: vec![2, -1],
        ..NativeHistogram::default()
    }
}

#[test]
fn native_and_float_histograms_in_the_json_api() {
    use pushgateway::model::{Bucket, Histogram};
    let gw = Gateway::start(&ours(), &[]);
    let native = Histogram {
        count: 5,
        sum: 6.25,
        native: Some(Box::new(native_part())),
        ..Histogram::default()
    };
    let mut float_native = native.clone();
    float_native.count_float = Some(2.5);
    let n = float_native.native.as_mut().unwrap();
    n.zero_count_float = Some(0.5);
    n.negative_counts = vec![0.25];
    n.positive_counts = vec![1.5, 0.25];
    let mut classic_float = Histogram {
        count: 0,
        count_float: Some(3.5),
        sum: 1.0,
        buckets: vec![Bucket::new(0.5, 0), Bucket::new(1.0, 0)],
        native: None,
    };
    classic_float.buckets[0].count_float = Some(1.25);
    classic_float.buckets[1].count_float = Some(3.5);
    let mut body = Vec::new();
    for (name, h) in [("n", native), ("f", float_native), ("c", classic_float)] {
        let series = [histogram_series(h)];
        protobuf::encode_family(&mut body, name, None, MetricType::Histogram, series.iter());
    }
    let r = gw.request("PUT", "/metrics/job/j", &[("Content-Type", PROTO)], &body);
    assert_eq!(r.status, 200, "{}", r.text());

    let json = gw.get("/api/v1/metrics").text();
    let labels = "\"labels\":{\"instance\":\"\",\"job\":\"j\"}";
    // api.go's makeEncodableMetrics with histogram.GetAPIBuckets (1.8).
    let want_native = format!(
        "\"type\":\"HISTOGRAM\",\"metrics\":[{{\"buckets\":[[1,\"-2\",\"-1\",\"1\"],[3,\"-0.001\",\"0.001\",\"1\"],[0,\"0.5\",\"1\",\"2\"],[0,\"4\",\"8\",\"1\"]],\"count\":\"5\",{labels},\"sum\":\"6.25\"}}]"
    );
    // histogram.GetAPIFloatBuckets for a float histogram (1.10).
    let want_float = format!(
        "\"type\":\"HISTOGRAM\",\"metrics\":[{{\"buckets\":[[1,\"-2\",\"-1\",\"0.25\"],[3,\"-0.001\",\"0.001\",\"0.5\"],[0,\"0.5\",\"1\",\"1.5\"],[0,\"4\",\"8\",\"0.25\"]],\"count\":\"2.5\",{labels},\"sum\":\"6.25\"}}]"
    );
    // makeBuckets with cumulative_count_float (1.10).
    let want_classic = format!(
        "\"type\":\"HISTOGRAM\",\"metrics\":[{{\"buckets\":{{\"0.5\":\"1.25\",\"1\":\"3.5\"}},\"count\":\"3.5\",{labels},\"sum\":\"1\"}}]"
    );
    for (name, want) in [("n", want_native), ("f", want_float), ("c", want_classic)] {
        let start = json
            .find(&format!("\"{name}\":{{\"time_stamp\":"))
            .unwrap_or_else(|| panic!("no family {name} in {json}"));
        assert!(
            json[start..].contains(&want),
            "{name}: want {want} in {json}"
        );
    }

    // The page's expanded row shows the native buckets as 1.11's page does.
    let text = gw.get("/ui/group/metrics/job@base64/ag").text();
    assert!(
        text.contains("# native histogram: {count:5, sum:6.25, [-2,-1):1, [-0.001,0.001]:1, (0.5,1]:2, (4,8]:1}\n"),
        "{text}"
    );
    assert!(
        text.contains("# native histogram: {count:2.5, sum:6.25, [-2,-1):0.25, [-0.001,0.001]:0.5, (0.5,1]:1.5, (4,8]:0.25}\n"),
        "{text}"
    );
}

/// A gauge histogram pushed as protobuf keeps its type: protobuf scrapes,
/// the JSON API and a restart from the snapshot show GAUGE_HISTOGRAM, as
/// the reference keeps it; the text format, which has no such type, shows
/// a histogram, as Go's expfmt writes it.
#[test]
fn gauge_histograms_keep_their_type() {
    use pushgateway::model::{Bucket, Histogram};
    let h = Histogram {
        count: 3,
        sum: 2.5,
        buckets: vec![Bucket::new(0.5, 1), Bucket::new(1.0, 3)],
        ..Histogram::default()
    };
    let mut body = Vec::new();
    let series = [histogram_series(h)];
    protobuf::encode_family(
        &mut body,
        "queue_depth",
        Some("Depth now."),
        MetricType::GaugeHistogram,
        series.iter(),
    );
    let dir = support::TempDir::new("gauge-histogram");
    let flag = format!("--persistence.file={}", dir.file("metric.store").display());
    let scraped_type = |gw: &Gateway| {
        let r = gw.request("GET", "/metrics", &[("Accept", PROTO)], b"");
        let families = protobuf::decode(&r.body).expect("protobuf scrape decodes");
        let f = families
            .iter()
            .find(|f| &*f.name == "queue_depth")
            .expect("pushed family");
        f.metric_type
    };
    // The reference keeps the type too. Its 1.5.1 expfmt knew no gauge
    // histogram in text and cut the scrape off after `# TYPE queue_depth`;
    // 1.11's writes a histogram, as ours does.
    let reference = Gateway::start(&support::reference(), &[]);
    let r = reference.request("PUT", "/metrics/job/q", &[("Content-Type", PROTO)], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(scraped_type(&reference), MetricType::GaugeHistogram);
    let mut gw = Gateway::start(&ours(), &[&flag]);
    let r = gw.request("PUT", "/metrics/job/q", &[("Content-Type", PROTO)], &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(scraped_type(&gw), MetricType::GaugeHistogram);
    let text = gw.get("/metrics").text();
    assert!(text.contains("# TYPE queue_depth histogram\n"), "{text}");
    assert!(
        text.contains("queue_depth_bucket{instance=\"\",job=\"q\",le=\"0.5\"} 1\n"),
        "{text}"
    );
    let json = gw.get("/api/v1/metrics").text();
    assert!(json.contains("\"type\":\"GAUGE_HISTOGRAM\""), "{json}");
    gw.stop();
    let gw = Gateway::start(&ours(), &[&flag]);
    assert_eq!(
        scraped_type(&gw),
        MetricType::GaugeHistogram,
        "after a restart"
    );
}

/// `encoding=text` and `encoding=compact-text` get protobuf's text formats,
/// as `expfmt.Negotiate` offers them: the same families as the protobuf
/// scrape, in 1.11's layout (protobuf-go's `{}`; 1.5.1's older library
/// wrote `<>` and trailing spaces, otherwise the same fields).
#[test]
fn protobuf_text_formats_are_served() {
    let body = "# HELP c A counter.\n# TYPE c counter\nc{path=\"a\\\"b\"} 1e6\n";
    let mf = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily";
    let compact_want = "name:\"c\" help:\"A counter.\" type:COUNTER metric:{label:{name:\"instance\" value:\"\"} label:{name:\"job\" value:\"j\"} label:{name:\"path\" value:\"a\\\"b\"} counter:{value:1e+06}}";
    let gw = Gateway::start(&ours(), &[]);
    assert_eq!(gw.put("/metrics/job/j", body).status, 200);
    let accept = format!("{mf}; encoding=compact-text");
    let r = gw.request("GET", "/metrics", &[("Accept", &accept)], b"");
    assert_eq!(r.status, 200);
    let ct = format!("{mf}; encoding=compact-text; escaping=underscores");
    assert_eq!(r.header("Content-Type"), Some(ct.as_str()));
    let text = r.text();
    assert!(text.lines().any(|l| l == compact_want), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("name:\"push_time_seconds\" help:")),
        "{text}"
    );

    let accept = format!("{mf}; encoding=text");
    let r = gw.request(
        "GET",
        "/metrics",
        &[("Accept", &accept), ("Accept-Encoding", "gzip")],
        b"",
    );
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .expect("gzip");
    let family = text
        .split("\n\n")
        .find(|f| f.starts_with("name: \"c\"\n"))
        .unwrap_or_else(|| panic!("no family c in {text}"));
    let label = "  label: {\n    name: \"path\"\n    value: \"a\\\"b\"\n  }\n";
    assert!(family.contains(label), "{family}");
    assert!(
        family.ends_with("  counter: {\n    value: 1e+06\n  }\n}"),
        "{family}"
    );

    // The reference's compact line, in 1.11's delimiters.
    let reference = Gateway::start(&support::reference(), &[]);
    assert_eq!(reference.put("/metrics/job/j", body).status, 200);
    let accept = format!("{mf}; encoding=compact-text");
    let r = reference.request("GET", "/metrics", &[("Accept", &accept)], b"");
    let theirs: Vec<String> = r
        .text()
        .lines()
        .filter(|l| l.starts_with("name:\"c\""))
        .map(|l| {
            l.replace(" >", "}")
                .replace('<', "{")
                .replace('>', "}")
                .trim_end()
                .to_string()
        })
        .collect();
    assert_eq!(theirs, [compact_want]);
}
