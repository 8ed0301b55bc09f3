//! Build information for `--version`, `pushgateway_build_info`, the status
//! page and the JSON API, as promu stamps it into the Go gateway: branch
//! and revision from git, the build user, and the build date.
//!
//! Each value can be given in the environment (`PUSHGATEWAY_BRANCH`,
//! `PUSHGATEWAY_REVISION`, `PUSHGATEWAY_BUILD_USER`,
//! `PUSHGATEWAY_BUILD_DATE`), which wins. The date is `SOURCE_DATE_EPOCH`
//! when set (reproducible builds), else the commit's time, so two builds
//! of one commit say the same. Without git (a source tarball) the values
//! are "unknown".

use std::process::Command;

// The date helpers are the crate's own, so the format has one definition
// and its unit test.
#[path = "src/time.rs"]
#[allow(dead_code)]
mod time;

fn main() {
    for var in [
        "PUSHGATEWAY_BRANCH",
        "PUSHGATEWAY_REVISION",
        "PUSHGATEWAY_BUILD_USER",
        "PUSHGATEWAY_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    // A new commit or checkout changes HEAD or the ref it points to.
    // `--git-path` finds them where git keeps them: in a linked worktree
    // HEAD is the worktree's, the branch is in the common directory. A
    // path that does not exist would rerun this script (and relink the
    // binary) on every build, so a packed ref watches packed-refs.
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
        if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let loose = git(&["rev-parse", "--git-path", &head_ref]);
            let packed = git(&["rev-parse", "--git-path", "packed-refs"]);
            for path in [loose, packed].into_iter().flatten() {
                if std::path::Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                    break;
                }
            }
        }
    }
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"]);
    let revision = git(&["rev-parse", "HEAD"]);
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%ct"]))
        .and_then(|s| s.trim().parse::<i64>().ok());
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| run("id", &["-un"]))
        .map(|u| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            match host.trim() {
                "" => u,
                h => format!("{u}@{h}"),
            }
        });
    set("PUSHGATEWAY_BRANCH", branch);
    set("PUSHGATEWAY_REVISION", revision);
    set("PUSHGATEWAY_BUILD_USER", user);
    set("PUSHGATEWAY_BUILD_DATE", epoch.map(time::promu_date));
}

/// Passes `value` to the compiler unless the environment already gives it.
fn set(var: &str, value: Option<String>) {
    let value = std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .or(value)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env={var}={value}");
}

fn git(args: &[&str]) -> Option<String> {
    run("git", args)
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}
