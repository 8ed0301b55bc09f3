//! The release tarballs as `make release` writes them: `make release-test`
//! runs it at Cargo.toml's version, then this with
//!
//! - PUSHGATEWAY_RELEASE_DIR: where the tarballs and sha256sums.txt are,
//! - PUSHGATEWAY_RELEASE_VERSION: the version they are named for,
//! - PUSHGATEWAY_RELEASE_BINS: `arch:path` pairs, the static binaries
//!   `make release` packed.
//!
//! Checked: upstream's (promu's) names and layout,
//! `pushgateway-<version>.linux-<arch>.tar.gz` holding only the directory
//! `pushgateway-<version>.linux-<arch>/` with `LICENSE` and `pushgateway`,
//! owned by 0:0 with one mtime; sha256sums.txt against the files; each
//! binary the one `make static*` built, for its architecture, and run
//! (under qemu-user where it is foreign): `--version`, then a start, a
//! push and a scrape. A missing file or tool fails: nothing is skipped.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::Gateway;
use support::qemu::{EM_AARCH64, EM_ARM, EM_RISCV, EM_X86_64, check_static_elf, qemu_wrappers};

/// Upstream's Linux architectures, each with its ELF machine, the
/// platform `--version` prints (Go's GOARCH) and the qemu-user that runs
/// it here ("" for the host's own).
const ARCHS: [(&str, u16, &str, &str); 4] = [
    ("amd64", EM_X86_64, "amd64", ""),
    ("arm64", EM_AARCH64, "arm64", "qemu-aarch64-static"),
    ("armv7", EM_ARM, "arm", "qemu-arm-static"),
    ("riscv64", EM_RISCV, "riscv64", "qemu-riscv64-static"),
];

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} unset: run `make release-test`"))
}

fn version() -> String {
    env("PUSHGATEWAY_RELEASE_VERSION")
}

fn dist() -> PathBuf {
    PathBuf::from(env("PUSHGATEWAY_RELEASE_DIR"))
}

/// `pushgateway-<version>.linux-<arch>`: the tarball's stem and its directory.
fn name(arch: &str) -> String {
    format!("pushgateway-{}.linux-{arch}", version())
}

/// Where each tarball is unpacked (once per process, by [`unpacked`]).
fn unpack_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("release-unpacked")
}

fn unpacked_bin(arch: &str) -> PathBuf {
    unpack_root().join(name(arch)).join("pushgateway")
}

/// The program to run for each architecture: the unpacked binary itself
/// for amd64, a qemu wrapper for the others. Written before any test
/// starts a program (tests/support/qemu.rs says why), so every test calls
/// this first.
fn runners() -> BTreeMap<&'static str, String> {
    let foreign: Vec<(&str, &str, String, String)> = ARCHS
        .iter()
        .filter(|a| !a.3.is_empty())
        .map(|&(arch, _, _, qemu)| {
            let bin = unpacked_bin(arch).display().to_string();
            (arch, qemu, bin, format!("pushgateway-release-{arch}"))
        })
        .collect();
    let specs: Vec<(&str, &str, &str)> = foreign
        .iter()
        .map(|(_, qemu, bin, name)| (*qemu, bin.as_str(), name.as_str()))
        .collect();
    let mut runners: BTreeMap<&str, String> = foreign
        .iter()
        .map(|f| f.0)
        .zip(qemu_wrappers(&specs))
        .collect();
    runners.insert("amd64", unpacked_bin("amd64").display().to_string());
    runners
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each tarball unpacked under [`unpack_root`], once per process.
fn unpacked() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let root = unpack_root();
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).expect("create the unpack directory");
        for (arch, ..) in ARCHS {
            let tarball = dist().join(format!("{}.tar.gz", name(arch)));
            run(Command::new("tar")
                .arg("-xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&root));
        }
    });
}

#[test]
fn tarballs_are_named_and_laid_out_as_upstreams() {
    runners();
    let v = version();
    // Exactly the four tarballs and the checksums.
    let mut files: Vec<String> = fs::read_dir(dist())
        .unwrap_or_else(|e| panic!("{}: {e} (make release)", dist().display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = ARCHS
        .iter()
        .map(|a| format!("{}.tar.gz", name(a.0)))
        .collect();
    expected.push("sha256sums.txt".into());
    expected.sort();
    assert_eq!(files, expected);

    for (arch, ..) in ARCHS {
        let dir = name(arch);
        // Upstream's pattern, piece by piece.
        let rest = dir
            .strip_prefix("pushgateway-")
            .and_then(|r| r.strip_prefix(v.as_str()))
            .and_then(|r| r.strip_prefix(".linux-"));
        assert_eq!(rest, Some(arch), "{dir}");
        assert_eq!(v.split('.').count(), 3, "version x.y.z: {v}");
        assert!(
            v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            "version x.y.z: {v}"
        );

        let tarball = dist().join(format!("{dir}.tar.gz"));
        let listing = run(Command::new("tar")
            .args([
                "--list",
                "--verbose",
                "--numeric-owner",
                "--full-time",
                "-zf",
            ])
            .arg(&tarball));
        let entries: Vec<Vec<&str>> = listing
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        // mode, owner/group, size, date, time, name
        let names: Vec<&str> = entries.iter().map(|e| e[5]).collect();
        assert_eq!(
            names,
            [
                format!("{dir}/"),
                format!("{dir}/LICENSE"),
                format!("{dir}/pushgateway")
            ],
            "{tarball:?}:\n{listing}"
        );
        let modes: Vec<&str> = entries.iter().map(|e| e[0]).collect();
        assert_eq!(
            modes,
            ["drwxr-xr-x", "-rw-r--r--", "-rwxr-xr-x"],
            "{listing}"
        );
        assert!(entries.iter().all(|e| e[1] == "0/0"), "{listing}");
        assert!(
            entries
                .iter()
                .all(|e| (e[3], e[4]) == (entries[0][3], entries[0][4])),
            "one mtime for all: {listing}"
        );
    }
}

#[test]
fn sha256sums_match_the_tarballs() {
    runners();
    let sums = fs::read_to_string(dist().join("sha256sums.txt")).expect("sha256sums.txt");
    let mut named = Vec::new();
    for line in sums.lines() {
        let (hex, file) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("not sha256sum's format: {line:?}"));
        assert_eq!(hex.len(), 64, "{line}");
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{line}"
        );
        assert!(!file.contains('/'), "a bare file name: {line}");
        let actual = run(Command::new("sha256sum").arg(dist().join(file)));
        assert_eq!(actual.split_whitespace().next(), Some(hex), "{file}");
        named.push(file.to_owned());
    }
    named.sort();
    let mut expected: Vec<String> = ARCHS
        .iter()
        .map(|a| format!("{}.tar.gz", name(a.0)))
        .collect();
    expected.sort();
    assert_eq!(named, expected, "one line per tarball");
}

#[test]
fn each_binary_is_the_static_build_and_runs() {
    let runners = runners();
    unpacked();
    let built: BTreeMap<String, String> = env("PUSHGATEWAY_RELEASE_BINS")
        .split_whitespace()
        .map(|p| {
            let (arch, path) = p.split_once(':').expect("arch:path");
            (arch.to_owned(), path.to_owned())
        })
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let license = fs::read(root.join("LICENSE")).expect("LICENSE");
    for (arch, machine, goarch, _) in ARCHS {
        let bin = unpacked_bin(arch);
        let shown = bin.display().to_string();
        check_static_elf(&shown, machine, "make release");
        let from_build = root.join(&built[arch]);
        assert!(
            fs::read(&bin).unwrap() == fs::read(&from_build).expect("the built binary"),
            "{arch}: the tarball's binary is not {}",
            from_build.display()
        );
        assert_eq!(
            fs::read(bin.with_file_name("LICENSE")).expect("LICENSE in the tarball"),
            license
        );

        let runner = &runners[arch];
        let out = run(Command::new(runner).arg("--version"));
        assert!(
            out.starts_with(&format!("pushgateway, version {} ", version())),
            "{arch}: {out}"
        );
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["platform:", &format!("linux/{goarch}")]),
            "{arch}: {out}"
        );

        let gw = Gateway::start(runner, &[]);
        let r = gw.put(
            "/metrics/job/release",
            &format!("release_smoke{{arch=\"{arch}\"}} 1\n"),
        );
        assert_eq!(r.status, 200, "{arch}: {}", r.text());
        let scrape = gw.get("/metrics").text();
        assert!(
            scrape.contains(&format!(
                "release_smoke{{arch=\"{arch}\",instance=\"\",job=\"release\"}} 1"
            )),
            "{arch}: {scrape}"
        );
    }
}

/// `make release` without VERSION, or with one the binaries would not
/// print, stops before building anything and says why (`make -n`: were
/// the check gone, nothing would be built either, and the test fails).
#[test]
fn release_needs_the_crate_version() {
    runners();
    let crate_version = env!("CARGO_PKG_VERSION");
    for (args, says) in [
        (&["release"][..], "needs VERSION"),
        (&["release", "VERSION=99.0.0"][..], "VERSION=99.0.0"),
    ] {
        let out = Command::new("make")
            .args(["-n", "--no-print-directory"])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("VERSION")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .output()
            .expect("run make");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "make {args:?} went on:\n{err}");
        assert!(
            err.contains(says) && err.contains(crate_version),
            "make {args:?}: {err}"
        );
    }
}
