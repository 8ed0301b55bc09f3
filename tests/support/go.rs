//! The Go push program (tests/go/main.go, client_golang's push package),
//! built once per test binary offline in GOPATH mode against Debian's
//! golang-github-prometheus-client-golang-dev.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Where Debian's golang-github-prometheus-client-golang-dev puts the source.
const GOPATH: &str = "/usr/share/gocode";

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Go push program (tests/go/main.go), built once per test run
/// offline against Debian's client_golang source. Panics with the install
/// command when Go or the library is missing.
pub fn go_client() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let version = Command::new("go").arg("version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "go is not installed: apt-get install -y golang-go (or make deps): {version:?}"
        );
        let push = Path::new(GOPATH).join("src/github.com/prometheus/client_golang/prometheus/push");
        assert!(
            push.is_dir(),
            "{} is missing: apt-get install -y golang-github-prometheus-client-golang-dev (or make deps)",
            push.display()
        );
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let bin = tmp.join("pushclient-go");
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go/main.go");
        // GOPATH mode: imports resolve in Debian's tree, nothing is
        // downloaded; the build cache lives with cargo's temporary files.
        let out = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(&source)
            .env("GO111MODULE", "off")
            .env("GOPATH", GOPATH)
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", tmp.join("go-build-cache"))
            .output()
            .expect("run go build");
        assert!(
            out.status.success(),
            "go build {} failed:\n{}",
            source.display(),
            output_text(&out)
        );
        bin
    })
}
