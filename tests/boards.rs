//! Smoke test of a small board's static binary (`make static-armv7`,
//! `make static-riscv64`) under qemu-user: `make boards-test` builds them
//! and runs this once per architecture with
//!
//! - PUSHGATEWAY_BOARD_BIN: the binary,
//! - PUSHGATEWAY_BOARD_ELF_MACHINE: its ELF `e_machine` (40 for 32-bit
//!   ARM, 243 for RISC-V), checked before it runs,
//! - PUSHGATEWAY_BOARD_QEMU: the qemu-user to run it (`qemu-arm-static`,
//!   `qemu-riscv64-static`).
//!
//! The gateway starts, takes pushes, serves a scrape, writes its final
//! snapshot on SIGTERM (exit 0) and restores it after a restart.
//! tests/arm64.rs does the same, and TLS, for arm64.
//!
//! A missing variable, binary or qemu fails the test: nothing is skipped.

mod support;

use std::process::Command;

use support::qemu::{check_static_elf, qemu_wrapper};
use support::{Gateway, TempDir};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} unset: run `make boards-test`"))
}

/// The board's binary, checked, behind its qemu wrapper.
fn qemu_bin() -> String {
    let bin = env("PUSHGATEWAY_BOARD_BIN");
    let machine: u16 = env("PUSHGATEWAY_BOARD_ELF_MACHINE")
        .parse()
        .expect("PUSHGATEWAY_BOARD_ELF_MACHINE: a number");
    check_static_elf(&bin, machine, "make static-armv7 / make static-riscv64");
    let qemu = env("PUSHGATEWAY_BOARD_QEMU");
    let name = format!("pushgateway-board-{qemu}");
    qemu_wrapper(&qemu, &bin, &name)
}

#[test]
fn runs_under_qemu_and_persists_across_a_restart() {
    let bin = qemu_bin();
    let dir = TempDir::new("board");
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run the binary under qemu");
    assert!(version.status.success(), "{version:?}");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.starts_with(&format!(
            "pushgateway, version {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    // The build context names the platform, as Go's does (linux/arm,
    // linux/riscv64) and says TLS is in.
    assert!(version.contains("platform:         linux/"), "{version}");
    assert!(version.contains("tags:             tls"), "{version}");

    let store = dir.file("metric.store");
    let persist = format!("--persistence.file={}", store.display());
    let args = [persist.as_str(), "--persistence.interval=5m"];
    let gw = Gateway::start(&bin, &args);
    let sample = "board_smoke{case=\"push\",instance=\"qemu\",job=\"board\"} 7";
    let r = gw.put(
        "/metrics/job/board/instance/qemu",
        "# TYPE board_smoke gauge\nboard_smoke{case=\"push\"} 7\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = gw.post("/metrics/job/board/instance/qemu", "board_other 2.5\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let scrape = gw.get("/metrics").text();
    assert!(scrape.contains(sample), "{scrape}");
    assert!(
        scrape.contains("board_other{instance=\"qemu\",job=\"board\"} 2.5"),
        "{scrape}"
    );
    assert!(scrape.contains("push_time_seconds{"), "{scrape}");

    gw.stop_writing_final_snapshot(&store);

    let gw = Gateway::start(&bin, &args);
    let scrape = gw.get("/metrics").text();
    assert!(scrape.contains(sample), "restored after restart: {scrape}");
    assert!(
        scrape.contains("board_other{instance=\"qemu\",job=\"board\"} 2.5"),
        "{scrape}"
    );
    let r = gw.get("/api/v1/metrics");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("board_smoke"), "{}", r.text());
}
