use super::version::VERSION;
use super::*;
use crate::model::*;
use crate::store::{Store, prepare_push};
use crate::telemetry::GatewayFamilies;

fn store_with(pushes: &[(&[(&str, &str)], &str)]) -> Store {
    let mut store = Store::new();
    for (i, (key, body)) in pushes.iter().enumerate() {
        let mut key: Vec<Label> = key.iter().map(|(n, v)| Label::new(n, v)).collect();
        key.sort();
        let fams =
            crate::wire::text_format::parse_with(body.as_bytes(), crate::model::NameScheme::Utf8)
                .unwrap();
        let push = prepare_push(key.into(), fams, true).unwrap();
        store.check(&push, &GatewayFamilies).unwrap();
        store.apply(push, 1_700_000_000_123_456_789 + i as i64);
    }
    store
}

#[test]
fn a_changed_byte_fails_the_checksum() {
    let store = store_with(&[(&[("job", "a")], "m 1\nn 2\n")]);
    let mut buf = Vec::new();
    write(&mut buf, &store.snapshot()).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert_eq!(reseal(&text), text, "reseal must not change a good file");
    let flipped = text.replacen("} 2.0", "} 3.0", 1);
    let e = read(flipped.as_bytes()).unwrap_err();
    assert!(
        matches!(e.kind, SnapshotErrorKind::ChecksumMismatch { .. }),
        "{e}"
    );
    assert_eq!(e.line, text.lines().count(), "{e}");
    assert!(e.to_string().contains("damaged"), "{e}");
    let unsealed = text.split(" crc32=").next().unwrap().to_owned() + "\n";
    let e = read(unsealed.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("missing crc32="), "{e}");
    let bad_hex = text.replacen(" crc32=", " crc32=zz", 1);
    assert!(read(bad_hex.as_bytes()).is_err());
}

fn round_trip(store: &Store) -> (Vec<u8>, Store) {
    let mut buf = Vec::new();
    write(&mut buf, &store.snapshot()).unwrap();
    let groups = read(&buf).unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&buf)));
    let mut back = Store::new();
    for g in groups {
        g.restore_into(&mut back).unwrap();
    }
    (buf, back)
}

#[test]
fn everything_round_trips_exactly() {
    let store = store_with(&[
        (
            &[("job", "a")],
            "# HELP c Counter \\\\ with\\nnewline.\n# TYPE c counter\nc{l=\"q\\\"b\\\\s\\nn é\"} 1e-7\n",
        ),
        (
            &[("job", "b"), ("instance", "i")],
            "# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum -0\ns_count 18446744073709551615\n# TYPE h histogram\n# HELP h \nh_bucket{le=\"0.1\"} 3\nh_sum +Inf\nh_count 3\n",
        ),
        (&[("job", "c")], ""),
        (&[("job", "d")], "g -Inf\nu 123456789.123\n"),
        (
            &[("job", "e")],
            "# HELP \"my metric.x\" H.\n{\"my metric.x\",\"a \\\"b\\\"\"=\"1\"} 1\n",
        ),
    ]);
    let (text, back) = round_trip(&store);
    let mut again = Vec::new();
    write(&mut again, &back.snapshot()).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&text),
        String::from_utf8_lossy(&again)
    );
    for ((k1, g1), (k2, g2)) in store.groups().zip(back.groups()) {
        assert_eq!(k1, k2);
        assert_eq!(g1.push_time, g2.push_time);
        assert_eq!(g1.failure_time, g2.failure_time);
        assert_eq!(g1.families.len(), g2.families.len());
        for ((n1, f1), (n2, f2)) in g1.families.iter().zip(g2.families.iter()) {
            assert_eq!(
                (n1, &f1.help, f1.metric_type),
                (n2, &f2.help, f2.metric_type)
            );
            assert_eq!(f1.pushed_at, f2.pushed_at);
            for (m1, m2) in f1.metrics.iter().zip(&f2.metrics) {
                assert_eq!(m1.labels, m2.labels);
                // Compare bit patterns: NaN and -0 must survive.
                assert_eq!(format!("{:?}", m1.value), format!("{:?}", m2.value));
            }
        }
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("help Counter \\\\ with\\nnewline.\n"),
        "{text}"
    );
    // 18446744073709551615 is a float on the wire; Go's conversion of it
    // to uint64 yields 2^63, which the reference exposes too.
    assert!(text.contains("count=9223372036854775808"), "{text}");
}

#[test]
fn native_histograms_round_trip_as_written() {
    let text = "pushgateway-snapshot 1\ngroup {job=\"n\"}\ntimes 5 -\nfamily h histogram 5\n\
                series {instance=\"\",job=\"n\"} sum=1.5 count=3 countf=3.5 0.5:1:1.5 schema=-2 zt=0.001 zc=1 zcf=1.5 \
                nspans=-1:2 ndeltas=1,-1 ncounts=0.5,2.0 pspans=0:1,2:2 pdeltas=5,-2,0 pcounts=1.0\nend groups=1 series=1\n";
    let mut store = Store::new();
    for g in read(text.as_bytes()).unwrap() {
        g.restore_into(&mut store).unwrap();
    }
    let mut out = Vec::new();
    write(&mut out, &store.snapshot()).unwrap();
    let out = String::from_utf8(out).unwrap();
    let series = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("series"))
            .map(str::to_owned)
    };
    assert_eq!(series(&out), series(text), "{out}");
}

/// A store holding one protobuf push whose series carry every kind of
/// extra: a counter's exemplar and created time, bucket exemplars and
/// native-histogram exemplars.
fn store_with_extras() -> Store {
    use crate::model::{Exemplar, Extra, Timestamp};
    let ex = |trace: &str, t: Option<Timestamp>| Exemplar {
        labels: vec![Label::new("trace_id", trace), Label::new("a\"b", "é\n")].into(),
        value: -0.0,
        timestamp: t,
    };
    let created = Some(Timestamp {
        seconds: -1,
        nanos: 999_999_999,
    });
    let metric = |value: Value, extra: Extra| Metric {
        extra: Some(Box::new(extra)),
        ..Metric::new(vec![Label::new("a", "1")].into(), value)
    };
    let h = Histogram {
        buckets: vec![Bucket::new(1.0, 1), Bucket::new(2.0, 2)],
        ..Histogram::default()
    };
    let fams = vec![
        MetricFamily {
            name: "c".into(),
            help: None,
            metric_type: MetricType::Counter,
            metrics: vec![metric(
                Value::Counter(1.0),
                Extra {
                    created,
                    exemplar: Some(ex("t1", created)),
                    ..Extra::default()
                },
            )],
        },
        MetricFamily {
            name: "h".into(),
            help: None,
            metric_type: MetricType::Histogram,
            metrics: vec![metric(
                Value::Histogram(Box::new(h)),
                Extra {
                    bucket_exemplars: vec![(1, ex("t2", None))],
                    exemplars: vec![ex("t3", None), ex("t4", created)],
                    ..Extra::default()
                },
            )],
        },
    ];
    let mut store = Store::new();
    let key: Vec<Label> = vec![Label::new("job", "x")];
    let push = prepare_push(key.into(), fams, true).unwrap();
    store.check(&push, &GatewayFamilies).unwrap();
    store.apply(push, 1);
    store
}

#[test]
fn extras_round_trip_exactly() {
    let store = store_with_extras();
    let (text, back) = round_trip(&store);
    let extras = |s: &Store| -> Vec<String> {
        let mut out = Vec::new();
        for (_, g) in s.groups() {
            for f in g.families.values() {
                out.extend(f.metrics.iter().map(|m| format!("{:?}", m.extra)));
            }
        }
        out
    };
    assert_eq!(extras(&store), extras(&back));
    assert!(
        extras(&back).iter().all(|e| e.contains("t")),
        "{:?}",
        extras(&back)
    );
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("\ncreated -1:999999999\nexemplar counter {trace_id=\"t1\",\"a\\\"b\"=\"é\\n\"} -0.0 -1:999999999\n"), "{text}");
    assert!(text.contains("exemplar bucket=1 {"), "{text}");
    assert_eq!(text.matches("exemplar native {").count(), 2, "{text}");
}

#[test]
fn damaged_extras_are_refused_with_the_line() {
    let mut buf = Vec::new();
    write(&mut buf, &store_with_extras().snapshot()).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for (from, to, why) in [
        ("exemplar bucket=1 ", "exemplar bucket=2 ", "does not exist"),
        ("exemplar bucket=1 ", "exemplar counter ", "not a place"),
        ("exemplar counter ", "exemplar native ", "not a place"),
        (
            "created -1:999999999",
            "created -1",
            "not seconds:nanoseconds",
        ),
        (
            "created -1:999999999",
            "created -",
            "expected seconds:nanoseconds",
        ),
    ] {
        let line = line_of(from);
        let bad = reseal(&text.replacen(from, to, 1));
        let e = read(bad.as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{from} -> {to}: {e}");
        assert!(e.to_string().contains(why), "{from} -> {to}: {e}");
    }
    let twice = reseal(&text.replacen(
        "created -1:999999999\n",
        "created -1:999999999\ncreated 1:1\n",
        1,
    ));
    assert!(
        read(twice.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("second created")
    );
    let orphan = reseal(&text.replacen(
        "family c counter",
        "family c counter 1\ncreated 1:1\nfamily z counter",
        1,
    ));
    let e = read(orphan.as_bytes()).unwrap_err();
    assert!(
        matches!(e.kind, SnapshotErrorKind::OutsideSeries("created")),
        "{e}"
    );
}

/// Files written before exemplars (version 1) are read as they are.
#[test]
fn version_1_files_are_read() {
    let store = store_with(&[(&[("job", "a")], "m 1\n")]);
    let mut buf = Vec::new();
    write(&mut buf, &store.snapshot()).unwrap();
    let old = String::from_utf8(buf)
        .unwrap()
        .replace(&format!("{MAGIC} {VERSION}"), "pushgateway-snapshot 1");
    assert_eq!(read(old.as_bytes()).unwrap().len(), 1);
}

#[test]
fn damaged_files_are_refused_with_the_line() {
    let store = store_with(&[(&[("job", "a")], "m 1\nn 2\n")]);
    let mut buf = Vec::new();
    write(&mut buf, &store.snapshot()).unwrap();
    let text = String::from_utf8(buf).unwrap();
    let cut = &text[..text.len() - 5];
    assert_eq!(
        read(cut.as_bytes()).unwrap_err().kind,
        SnapshotErrorKind::Truncated
    );
    let no_end = &text[..text.trim_end().rfind('\n').unwrap() + 1];
    assert_eq!(
        read(no_end.as_bytes()).unwrap_err().kind,
        SnapshotErrorKind::Truncated
    );
    let fewer = reseal(&text.replace("series {instance=\"\",job=\"a\"} 2.0\n", ""));
    assert!(matches!(
        read(fewer.as_bytes()).unwrap_err().kind,
        SnapshotErrorKind::CountMismatch { .. }
    ));
    let bad = reseal(&text.replace(
        "series {instance=\"\",job=\"a\"} 2.0",
        "series {instance=\"\",job=\"a\"} two",
    ));
    let e = read(bad.as_bytes()).unwrap_err();
    assert_eq!(e.line, 8, "{e}");
    assert!(e.to_string().contains("not a number"), "{e}");
    let future = text.replace(&format!("{MAGIC} {VERSION}"), "pushgateway-snapshot 9");
    assert_eq!(
        read(future.as_bytes()).unwrap_err().kind,
        SnapshotErrorKind::FutureVersion(9)
    );
    assert_eq!(read(b"").unwrap_err().kind, SnapshotErrorKind::Empty);
    assert_eq!(
        read(b"\x0e\xff\x81\x03\x01\x01").unwrap_err().kind,
        SnapshotErrorKind::GoGobFile
    );
    assert_eq!(
        read(b"hello\n").unwrap_err().kind,
        SnapshotErrorKind::NotASnapshot
    );
}

/// A snapshot of one group holding `n` families, each with one series.
fn many_families(n: usize) -> String {
    let mut text = format!("{MAGIC} {VERSION}\ngroup {{job=\"wide\"}}\ntimes 1 -\n");
    for i in 0..n {
        text.push_str(&format!(
            "family f{i} untyped 1\nseries {{instance=\"\",job=\"wide\"}} 1.0\n"
        ));
    }
    text.push_str(&format!("end groups=1 series={n} crc32=0\n"));
    reseal(&text)
}

/// Seconds to read `text` and put its groups into a store.
fn restore_seconds(text: &str) -> f64 {
    let started = std::time::Instant::now();
    let mut store = Store::new();
    for g in read(text.as_bytes()).expect("the snapshot reads") {
        g.restore_into(&mut store).expect("the group restores");
    }
    started.elapsed().as_secs_f64()
}

/// A group of many families (a client can push hundreds of thousands into
/// one group) restores in time near-linear in their number: each family
/// is checked against the others through a set, not a scan. Linear gives
/// a ratio near 8 between n and 8n, quadratic 64.
#[test]
fn a_group_of_many_families_restores_in_near_linear_time() {
    // Both sizes well past the CPU's caches: from 20,000 families (which
    // fit) to 160,000 the cache misses alone gave ratios near 28 on a
    // loaded machine; from 40,000 to 320,000 they stay near 12.
    let (small, large) = (many_families(40_000), many_families(320_000));
    // The fastest of three runs each: one run on a busy machine can lose
    // its core for a while.
    let best = |text: &str| {
        (0..3)
            .map(|_| restore_seconds(text))
            .fold(f64::MAX, f64::min)
    };
    let ratio = best(&large) / best(&small);
    eprintln!("restore of a group of many families: 8n / n = {ratio:.1}");
    assert!(
        ratio < 24.0,
        "8 times the families took {ratio:.1} times as long"
    );
}
