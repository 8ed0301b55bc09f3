//! The properties the fuzz targets check, shared with the regression test
//! that replays every input the fuzzers ever found (`regressions` below,
//! over `tests/fuzz/regressions/`), so a finding stays fixed. Built for
//! unit tests and with the `fuzzing` feature, which `tests/fuzz` turns on.
//!
//! Each function panics when its property does not hold; it never panics
//! just because the input is invalid. It returns whether the input got as
//! far as the property (parsed, then checked), so that the replay can tell
//! inputs that test something from inputs that are merely refused.

use crate::http::router::{Route, Routes};
use crate::model::{Label, NameScheme};
use crate::telemetry::GatewayFamilies;
use crate::{
    http, persist::snapshot, store, wire::exposition, wire::openmetrics, wire::protobuf,
    wire::text_format,
};

/// Text bodies: parsing never panics; the metered parse agrees with the
/// unmetered one and charges at least what the records take; whatever
/// parses survives the push path and our own exposition of it parses
/// again.
pub fn text_format(data: &[u8]) -> bool {
    let scheme = if data.first().is_some_and(|b| b & 1 == 1) {
        NameScheme::Utf8
    } else {
        NameScheme::Legacy
    };
    let mut charged = 0usize;
    let metered = text_format::parse_metered(data, scheme, &mut |n| {
        charged += n;
        true
    });
    let Ok(families) = text_format::parse_with(data, scheme) else {
        assert!(metered.is_err(), "the meter changed the outcome");
        return false;
    };
    assert_same(metered.as_ref().ok(), &families);
    assert_charged(charged, &families);
    refused_midway_stops(charged, |meter| {
        text_format::parse_metered(data, scheme, meter)
            .map_err(|e| e.kind == text_format::ErrorKind::OverBudget)
    });
    let mut text = Vec::new();
    for f in &families {
        exposition::write_header(&mut text, &f.name, f.help.as_deref(), f.metric_type);
        for m in &f.metrics {
            exposition::write_metric(&mut text, &f.name, m);
        }
    }
    if let Err(e) = text_format::parse_with(&text, NameScheme::Utf8) {
        panic!(
            "our own exposition must parse: {e}\n{}",
            String::from_utf8_lossy(&text)
        );
    }
    apply_to_a_store(families);
    true
}

/// OpenMetrics bodies: parsing never panics; the metered parse agrees
/// with the unmetered one and charges at least what the records take; what
/// parses has the exemplars only where OpenMetrics allows them, goes out
/// as text 0.0.4 and as protobuf that read back, and survives the push
/// path.
pub fn openmetrics(data: &[u8]) -> bool {
    let mut charged = 0usize;
    let metered = openmetrics::parse_metered(data, &mut |n| {
        charged += n;
        true
    });
    let Ok(families) = openmetrics::parse(data) else {
        assert!(metered.is_err(), "the meter changed the outcome");
        return false;
    };
    assert_same(metered.as_ref().ok(), &families);
    assert_charged(charged, &families);
    refused_midway_stops(charged, |meter| {
        openmetrics::parse_metered(data, meter)
            .map_err(|e| e.kind == openmetrics::ErrorKind::OverBudget)
    });
    let mut text = Vec::new();
    let mut proto = Vec::new();
    for f in &families {
        for m in &f.metrics {
            let extra = m.extra.as_deref();
            let exemplars =
                extra.is_some_and(|e| e.exemplar.is_some() || !e.bucket_exemplars.is_empty());
            assert!(
                !exemplars
                    || matches!(f.metric_type, crate::model::MetricType::Counter)
                    || f.metric_type.is_histogram(),
                "an exemplar on a {} series",
                f.metric_type
            );
        }
        exposition::write_header(&mut text, &f.name, f.help.as_deref(), f.metric_type);
        for m in &f.metrics {
            exposition::write_metric(&mut text, &f.name, m);
        }
        protobuf::encode_family(
            &mut proto,
            &f.name,
            f.help.as_deref(),
            f.metric_type,
            f.metrics.iter(),
        );
    }
    if let Err(e) = text_format::parse(&text) {
        panic!(
            "our exposition of an OpenMetrics push must parse: {e}\n{}",
            String::from_utf8_lossy(&text)
        );
    }
    let back = protobuf::decode(&proto).expect("our own encoding decodes");
    assert_eq!(format!("{back:?}"), format!("{families:?}"));
    apply_to_a_store(families);
    true
}

/// A metered parse gives what the unmetered one gives (compared as text:
/// NaN values are not equal to themselves).
fn assert_same(
    metered: Option<&Vec<crate::model::MetricFamily>>,
    families: &Vec<crate::model::MetricFamily>,
) {
    assert_eq!(
        format!("{metered:?}"),
        format!("{:?}", Some(families)),
        "the meter changed the outcome"
    );
}

/// The meter's charge covers the records: at least each family's and
/// series' struct, label slots and label strings.
fn assert_charged(charged: usize, families: &[crate::model::MetricFamily]) {
    use std::mem::size_of;
    let mut least = 0;
    for f in families {
        least += size_of::<crate::model::MetricFamily>() + f.name.len();
        for m in &f.metrics {
            least += size_of::<crate::model::Metric>();
            for l in m.labels.iter() {
                least += size_of::<Label>() + l.value.len();
            }
        }
    }
    assert!(
        charged >= least,
        "charged {charged} bytes for records of at least {least}"
    );
}

/// A meter that refuses half-way through what a parse charges ends that
/// parse with the over-budget error, never with a result or a panic.
fn refused_midway_stops<T>(
    charged: usize,
    parse: impl FnOnce(&mut dyn crate::wire::Meter) -> Result<T, bool>,
) {
    if charged < 2 {
        return;
    }
    let mut left = charged / 2;
    let mut meter = |n: usize| {
        let ok = n <= left;
        if ok {
            left -= n;
        }
        ok
    };
    match parse(&mut meter) {
        Err(true) => {}
        Err(false) => panic!("a refused meter must end the parse as over budget"),
        Ok(_) => panic!("a parse charged {charged} bytes succeeded with half of them"),
    }
}

/// Protobuf bodies: decoding never panics, and what decodes re-encodes to
/// bytes that decode to the same families.
pub fn protobuf(data: &[u8]) -> bool {
    let mut charged = 0usize;
    let metered = protobuf::decode_metered(data, NameScheme::Utf8, &mut |n| {
        charged += n;
        true
    });
    let Ok(families) = protobuf::decode_with(data, NameScheme::Utf8) else {
        assert!(metered.is_err(), "the meter changed the outcome");
        return false;
    };
    assert_same(metered.as_ref().ok(), &families);
    assert_charged(charged, &families);
    refused_midway_stops(charged, |meter| {
        protobuf::decode_metered(data, NameScheme::Utf8, meter)
            .map_err(|e| e.kind == protobuf::ProtoErrorKind::OverBudget)
    });
    let mut again = Vec::new();
    for f in &families {
        protobuf::encode_family(
            &mut again,
            &f.name,
            f.help.as_deref(),
            f.metric_type,
            f.metrics.iter(),
        );
    }
    let back = protobuf::decode_with(&again, NameScheme::Utf8).expect("our own encoding decodes");
    assert_eq!(format!("{back:?}"), format!("{families:?}"));
    true
}

/// URLs: routing never panics, and grouping keys come out sorted, with a
/// non-empty job.
pub fn url_path(data: &[u8]) -> bool {
    let Ok(url) = std::str::from_utf8(data) else {
        return false;
    };
    let mut keys = 0;
    for names in [NameScheme::Legacy, NameScheme::Utf8] {
        let routes = Routes::new("/pre", "/metrics", true).with_names(names);
        for method in ["PUT", "DELETE", "GET"] {
            let key = match routes.route(method, url) {
                Route::Endpoint { key: Some(key), .. } => key.parse(names).ok(),
                _ => None,
            };
            if let Some(key) = key {
                assert!(key.windows(2).all(|w| w[0].name < w[1].name), "{key:?}");
                assert!(key.iter().any(|l| &*l.name == "job" && !l.value.is_empty()));
                keys += 1;
            }
        }
    }
    keys > 0
}

/// Compressed bodies: decoding never panics and never returns more than
/// the cap. The first byte picks gzip or snappy.
pub fn body_encoding(data: &[u8]) -> bool {
    const CAP: u64 = 1 << 20;
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let encoding = if selector & 1 == 0 { "gzip" } else { "snappy" };
    let Ok(out) = http::decode_body(Some(encoding), body.to_vec(), CAP) else {
        return false;
    };
    assert!(out.len() as u64 <= CAP);
    true
}

/// Persistence files: reading never panics, and what reads restores into a
/// store (or is refused by the consistency rules) without panicking.
pub fn snapshot(data: &[u8]) -> bool {
    // As it is (the checksum, and whatever a damaged file looks like),
    // then sealed with the checksum it needs: random bytes almost never
    // get a CRC-32 right, so without the seal no input would reach the
    // records.
    let _ = snapshot::read(data);
    let Ok(groups) = snapshot::read(&sealed(data)) else {
        return false;
    };
    let mut s = store::Store::new();
    for g in groups {
        let _ = g.restore_into(&mut s);
    }
    true
}

/// `data` with the CRC-32 its last line, if an end record, must state:
/// every `crc32=` field of that line replaced by the right one, or one
/// appended.
fn sealed(data: &[u8]) -> Vec<u8> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if !body[start..].starts_with(b"end ") {
        return data.to_vec();
    }
    let crc = format!("crc32={:08x}", crc32fast::hash(&data[..start]));
    let mut out = data[..start].to_vec();
    let mut fields: Vec<&[u8]> = body[start..]
        .split(|b| *b == b' ')
        .filter(|f| !f.starts_with(b"crc32="))
        .collect();
    fields.push(crc.as_bytes());
    out.extend_from_slice(&fields.join(&b' '));
    out.push(b'\n');
    out
}

/// Request heads and framing: any bytes give a checked head or one error,
/// never a panic. A parsed head has an origin-form target and no control
/// byte in any header value; a chunked body decodes to the same bytes in
/// whatever pieces it arrives; and no byte of the input, put into a
/// response header, reaches the wire as a control byte.
pub fn http_request(data: &[u8]) -> bool {
    use http::chunked::Decoder;
    use http::head::{self, BodyFraming};

    let reply = http::Reply::empty(301).with_header("Location", String::from_utf8_lossy(data));
    let how = http::response::ResponseMode {
        head_only: false,
        keep_alive: true,
        http10: false,
    };
    let encoded = http::response::encode_head(&reply, 0, how, &[]);
    let text = &encoded[..encoded.len() - 2];
    for line in text.split_inclusive(|&b| b == b'\n') {
        let line = line
            .strip_suffix(b"\r\n")
            .unwrap_or_else(|| panic!("a header line not ended by CRLF in {encoded:?}"));
        assert!(
            !line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f),
            "control byte in a response header line {line:?}"
        );
    }

    let Some(end) = head::find_end(data, 0) else {
        return false;
    };
    let Ok(h) = head::parse(&data[..end]) else {
        return false;
    };
    assert!(
        h.target.starts_with('/') || h.target == "*",
        "{:?}",
        h.target
    );
    for (k, v) in &h.headers {
        assert!(
            !k.is_empty() && !k.bytes().any(|b| b <= b' ' || b == b':'),
            "{k:?}"
        );
        assert!(
            !v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
            "{v:?}"
        );
    }
    let rest = &data[end..];
    match h.framing {
        BodyFraming::Chunked => {
            let mut whole = Vec::new();
            let mut d = Decoder::new();
            let Ok(used) = d.feed(rest, &mut |b| whole.extend_from_slice(b)) else {
                return true;
            };
            assert!(used <= rest.len());
            let step = usize::from(data[0] % 7) + 1;
            let (mut pieces, mut d2, mut used2) = (Vec::new(), Decoder::new(), 0);
            for piece in rest[..used].chunks(step) {
                used2 += d2
                    .feed(piece, &mut |b| pieces.extend_from_slice(b))
                    .expect("a prefix that decoded whole decodes in pieces");
            }
            assert_eq!(
                whole, pieces,
                "chunked decoding depends on how bytes arrive"
            );
            assert_eq!(used, used2);
            assert_eq!(d.is_done(), d2.is_done());
        }
        BodyFraming::Length(n) => assert!(n <= i64::MAX as u64),
        BodyFraming::None => {}
    }
    true
}

/// Prepares `families` as a push to a fresh store and applies it when it
/// passes the checks: whatever a parser lets through must not panic there.
fn apply_to_a_store(families: Vec<crate::model::MetricFamily>) {
    let key: Vec<Label> = vec![Label::new("job", "fuzz")];
    if let Ok(push) = store::prepare_push(key.into(), families, true) {
        let mut s = store::Store::new();
        if s.check(&push, &GatewayFamilies).is_ok() {
            s.apply(push, 1);
        }
    }
}

/// Replays every input the fuzzers have found (`tests/fuzz/regressions/`,
/// named `<target>-<what>`) through the same property as its fuzz target,
/// so each finding stays fixed in the normal test run.
#[cfg(test)]
mod regressions {
    use std::fs;
    use std::path::Path;

    use crate::fuzz_checks;

    /// The property of fuzz target `name`.
    fn check_of(name: &str) -> Option<fn(&[u8]) -> bool> {
        Some(match name {
            "text_format" => fuzz_checks::text_format,
            "openmetrics" => fuzz_checks::openmetrics,
            "protobuf" => fuzz_checks::protobuf,
            "url_path" => fuzz_checks::url_path,
            "body_encoding" => fuzz_checks::body_encoding,
            "snapshot" => fuzz_checks::snapshot,
            "http_request" => fuzz_checks::http_request,
            _ => return None,
        })
    }

    /// Replays the fuzzers' seed corpora (`tests/fuzz/seeds/<target>/`,
    /// minimized with `cargo fuzz cmin` after campaigns run under
    /// `-rss_limit_mb` and `-timeout`): every input the fuzzers kept for
    /// the paths it opens runs through its target's property, so a change
    /// that breaks one of those paths fails here, not only when somebody
    /// fuzzes again.
    #[test]
    fn every_seed_input_holds_its_property() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds");
        let mut targets = 0;
        let mut exercised_all = 0;
        for entry in fs::read_dir(&dir).expect("seeds directory") {
            let target = entry.expect("directory entry").path();
            let name = target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let check = check_of(&name).unwrap_or_else(|| panic!("{name}: unknown fuzz target"));
            let (mut replayed, mut exercised) = (0, 0);
            for input in fs::read_dir(&target).expect("a target's seeds") {
                let data = fs::read(input.expect("directory entry").path()).expect("read seed");
                exercised += usize::from(check(&data));
                replayed += 1;
            }
            assert!(replayed > 100, "{name}: only {replayed} seeds");
            // Not every target's seeds get past its parser (a snapshot's
            // frames carry checksums random inputs do not get right): for
            // those, the replay shows that refusing them never panics.
            eprintln!("{name}: {exercised} of {replayed} seeds reached the property");
            exercised_all += exercised;
            targets += 1;
        }
        assert!(targets >= 6, "seeds for {targets} targets only");
        assert!(
            exercised_all > 500,
            "only {exercised_all} seeds reached a property"
        );
    }

    #[test]
    fn every_fuzz_finding_stays_fixed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
        let (mut replayed, mut exercised) = (0, 0);
        for entry in fs::read_dir(&dir).expect("regressions directory") {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let data = fs::read(&path).expect("read regression input");
            let target = name.split('-').next().unwrap_or_default();
            let check = check_of(target)
                .unwrap_or_else(|| panic!("{name}: unknown fuzz target {target:?}"));
            if check(&data) {
                exercised += 1;
            }
            replayed += 1;
        }
        // An input its parser refuses checks only that the parser does not
        // panic; most must get through to the property.
        assert!(
            exercised * 2 > replayed,
            "only {exercised} of {replayed} regression inputs in {} got past parsing to the property",
            dir.display()
        );
    }
}
