//! The properties the fuzz targets check, shared with the regression test
//! that replays every input the fuzzers ever found (`regressions` below,
//! over `tests/fuzz/regressions/`), so a finding stays fixed. Built for
//! unit tests and with the `fuzzing` feature, which `tests/fuzz` turns on.
//!
//! Each function panics when its property does not hold; it never panics
//! just because the input is invalid.

use crate::http::router::{Route, Routes};
use crate::model::{Label, NameScheme};
use crate::telemetry::Own;
use crate::{http, persist::snapshot, store, wire::exposition, wire::protobuf, wire::text_format};

/// Text bodies: parsing never panics; whatever parses survives the push
/// path and our own exposition of it parses again.
pub fn text_format(data: &[u8]) {
    let scheme = if data.first().is_some_and(|b| b & 1 == 1) {
        NameScheme::Utf8
    } else {
        NameScheme::Legacy
    };
    let Ok(families) = text_format::parse_with(data, scheme) else {
        return;
    };
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
    let key: Vec<Label> = vec![Label::new("job", "fuzz")];
    if let Ok(push) = store::prepare_push(key.into(), families, true) {
        let mut s = store::Store::new();
        if s.check(&push, &Own).is_ok() {
            s.apply(push, 1);
        }
    }
}

/// Protobuf bodies: decoding never panics, and what decodes re-encodes to
/// bytes that decode to the same families.
pub fn protobuf(data: &[u8]) {
    let Ok(families) = protobuf::decode_with(data, NameScheme::Utf8) else {
        return;
    };
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
}

/// URLs: routing never panics, and grouping keys come out sorted, with a
/// non-empty job.
pub fn url_path(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    for names in [NameScheme::Legacy, NameScheme::Utf8] {
        let routes = Routes::new("/pre", "/metrics", true).with_names(names);
        for method in ["PUT", "DELETE", "GET"] {
            if let Route::Push { key, .. } | Route::Delete { key } = routes.route(method, url) {
                assert!(key.windows(2).all(|w| w[0].name < w[1].name), "{key:?}");
                assert!(key.iter().any(|l| &*l.name == "job" && !l.value.is_empty()));
            }
        }
    }
}

/// Compressed bodies: decoding never panics and never returns more than
/// the cap. The first byte picks gzip or snappy.
pub fn body_encoding(data: &[u8]) {
    const CAP: u64 = 1 << 20;
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = if selector & 1 == 0 { "gzip" } else { "snappy" };
    if let Ok(out) = http::decode_body(Some(encoding), body.to_vec(), CAP) {
        assert!(out.len() as u64 <= CAP);
    }
}

/// Persistence files: reading never panics, and what reads restores into a
/// store (or is refused by the consistency rules) without panicking.
pub fn snapshot(data: &[u8]) {
    let Ok(groups) = snapshot::read(data) else {
        return;
    };
    let mut s = store::Store::new();
    for g in groups {
        let _ = g.restore_into(&mut s);
    }
}

/// Request heads and framing: any bytes give a checked head or one error,
/// never a panic. A parsed head has an origin-form target and no control
/// byte in any header value; a chunked body decodes to the same bytes in
/// whatever pieces it arrives; and no byte of the input, put into a
/// response header, reaches the wire as a control byte.
pub fn http_request(data: &[u8]) {
    use http::chunked::Decoder;
    use http::head::{self, Framing};

    let reply = http::Reply::empty(301).with_header("Location", String::from_utf8_lossy(data));
    let how = http::response::Framing {
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
        return;
    };
    let Ok(h) = head::parse(&data[..end]) else {
        return;
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
        Framing::Chunked => {
            let mut whole = Vec::new();
            let mut d = Decoder::new();
            let Ok(used) = d.feed(rest, &mut |b| whole.extend_from_slice(b)) else {
                return;
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
        Framing::Length(n) => assert!(n <= i64::MAX as u64),
        Framing::None => {}
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

    #[test]
    fn every_fuzz_finding_stays_fixed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
        let mut replayed = 0;
        for entry in fs::read_dir(&dir).expect("regressions directory") {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let data = fs::read(&path).expect("read regression input");
            let check: fn(&[u8]) = match name.split('-').next().unwrap_or_default() {
                "text_format" => fuzz_checks::text_format,
                "protobuf" => fuzz_checks::protobuf,
                "url_path" => fuzz_checks::url_path,
                "body_encoding" => fuzz_checks::body_encoding,
                "snapshot" => fuzz_checks::snapshot,
                "http_request" => fuzz_checks::http_request,
                other => panic!("{name}: unknown fuzz target {other:?}"),
            };
            check(&data);
            replayed += 1;
        }
        assert!(
            replayed > 0,
            "no regression inputs found in {}",
            dir.display()
        );
    }
}
