//! The properties the fuzz targets check, shared with the regression test
//! that replays every input the fuzzers ever found (`tests/fuzz_regressions.rs`
//! over `tests/fuzz/regressions/`), so a finding stays fixed.
//!
//! Each function panics when its property does not hold; it never panics
//! just because the input is invalid.

use crate::model::{Label, NameScheme};
use crate::router::{Route, Routes};
use crate::telemetry::Own;
use crate::{exposition, http, protobuf, snapshot, store, text_format};

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
