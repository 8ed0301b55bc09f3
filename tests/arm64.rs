//! Smoke test of the arm64 static binary (`make static-arm64`) under
//! qemu-user (`qemu-aarch64-static`): `make arm64-test` builds it and runs
//! this with PUSHGATEWAY_ARM64_BIN set. The gateway starts, takes pushes,
//! serves scrapes, serves TLS, writes its final snapshot on SIGTERM
//! (exit 0) and restores it after a restart.
//!
//! A missing binary or a missing qemu fails the test: nothing is skipped.

mod support;

use std::process::Command;

use support::qemu::{EM_AARCH64, check_static_elf, qemu_wrapper};
use support::{Gateway, Pki, TempDir};

/// The arm64 binary, checked to be a static aarch64 ELF executable, under
/// qemu-aarch64-static (tests/support/qemu.rs).
fn qemu_bin() -> String {
    let bin = std::env::var("PUSHGATEWAY_ARM64_BIN")
        .expect("PUSHGATEWAY_ARM64_BIN unset: run `make arm64-test`");
    check_static_elf(&bin, EM_AARCH64, "make static-arm64");
    qemu_wrapper("qemu-aarch64-static", &bin, "pushgateway-arm64")
}

#[test]
fn runs_under_qemu_and_persists_across_a_restart() {
    let dir = TempDir::new("arm64");
    let bin = qemu_bin();
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run the arm64 binary under qemu");
    assert!(version.status.success(), "{version:?}");
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("pushgateway, version "),
        "{version:?}"
    );

    let store = dir.file("metric.store");
    let persist = format!("--persistence.file={}", store.display());
    let args = [persist.as_str(), "--persistence.interval=5m"];
    let gw = Gateway::start(&bin, &args);
    let r = gw.put(
        "/metrics/job/arm64/instance/qemu",
        "# TYPE arm64_smoke gauge\narm64_smoke{case=\"push\"} 64\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.post("/metrics/job/arm64/instance/qemu", "arm64_other 1.5\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("arm64_smoke{case=\"push\",instance=\"qemu\",job=\"arm64\"} 64"),
        "{scrape}"
    );
    assert!(scrape.contains("push_time_seconds{"), "{scrape}");
    let r = gw.get("/api/v1/metrics");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("arm64_smoke"), "{}", r.text());

    gw.stop_writing_final_snapshot(&store);

    let gw = Gateway::start(&bin, &args);
    let scrape = gw.get("/metrics").text();
    assert!(
        scrape.contains("arm64_smoke{case=\"push\",instance=\"qemu\",job=\"arm64\"} 64"),
        "restored after restart: {scrape}"
    );
    assert!(scrape.contains("arm64_other{"), "{scrape}");
}

/// The arm64 build includes TLS (ring cross-compiled with clang).
#[test]
fn serves_tls_under_qemu() {
    let bin = qemu_bin();
    let pki = Pki::new("arm64");
    let cfg = pki.web_config(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let gw = Gateway::start(&bin, &[&format!("--web.config.file={cfg}")]);
    support::pki::tls_push_and_scrape(&pki, gw.port, "arm64_tls");
}
