//! Replays every input the fuzzers have found (`tests/fuzz/regressions/`,
//! named `<target>-<what>`) through the same property as its fuzz target,
//! so each finding stays fixed in the normal test run.

use std::fs;
use std::path::Path;

use pushgateway::fuzz_checks;

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
