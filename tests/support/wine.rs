//! The Windows build under wine (tests/windows.rs): one private wine
//! prefix per test process, the stand-in for the `bcryptprimitives.dll`
//! wine 8.0 lacks, a wrapper script that lets [`Gateway`] start the .exe
//! like any binary, and wine's service manager (`sc`).
//!
//! A missing wine, mingw-w64 compiler or .exe fails the test that asks for
//! it: nothing is skipped.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What every wine command runs with besides WINEPREFIX: no debug output
/// (wine's own warnings would land in the gateway's log), no Mono or Gecko
/// installers when the prefix is made, and the stand-in DLL taken as a
/// native one.
const WINE_ENV: [(&str, &str); 2] = [
    ("WINEDEBUG", "-all"),
    ("WINEDLLOVERRIDES", "mscoree,mshtml=;bcryptprimitives=n"),
];

/// How long making (or updating) the prefix may take: it copies some
/// 600 MB of DLLs the first time.
const PREFIX_TIMEOUT: Duration = Duration::from_secs(300);

/// A wine prefix prepared for the gateway's .exe.
pub struct Wine {
    /// The prefix (WINEPREFIX): `target/tmp/wine-prefix`, made once and
    /// reused by later runs (making it takes seconds, updating it less).
    pub prefix: PathBuf,
    /// The .exe under test (Linux path).
    pub exe: PathBuf,
    /// A script that runs the .exe under wine with its arguments.
    pub wrapper: String,
}

/// The prefix, made once per test process, for the .exe that the
/// environment variable `exe_var` names.
pub fn wine(exe_var: &str) -> &'static Wine {
    static WINE: OnceLock<Wine> = OnceLock::new();
    WINE.get_or_init(|| Wine::prepare(exe_var))
}

impl Wine {
    fn prepare(exe_var: &str) -> Wine {
        let exe = std::env::var(exe_var)
            .unwrap_or_else(|_| panic!("{exe_var} unset: run `make windows-test`"));
        let exe = PathBuf::from(exe);
        check_pe_x86_64(&exe);
        require_tool(
            "wine",
            "apt-get install wine wine64 (make windows-test does)",
        );
        require_tool(
            "x86_64-w64-mingw32-gcc",
            "apt-get install gcc-mingw-w64-x86-64 (make windows-test does)",
        );
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let prefix = tmp.join("wine-prefix");
        let wine = Wine {
            wrapper: tmp.join("pushgateway-wine").display().to_string(),
            prefix,
            exe,
        };
        // A wineserver left over by an earlier, interrupted run of this
        // prefix (a service still running) goes first; none is fine.
        let _ = wine.command("wineserver").arg("-k").output();
        let boot = wine.run_bounded(
            wine.command("wine").args(["wineboot", "--init"]),
            PREFIX_TIMEOUT,
        );
        assert!(boot.status.success(), "wineboot --init failed: {boot:?}");
        wine.install_prng();
        wine.write_wrapper();
        wine
    }

    /// `program` (wine, wineserver) with this prefix's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("WINEPREFIX", &self.prefix)
            .envs(WINE_ENV)
            .stdin(Stdio::null());
        cmd
    }

    /// `wine sc ARGS...`: wine's service control program.
    pub fn sc(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("wine");
        cmd.arg("sc").args(args);
        self.run_bounded(&mut cmd, Duration::from_secs(60))
    }

    /// Runs `cmd` to its end, failing the test after `timeout` (a wine
    /// command waiting on a dialog nobody can see would otherwise hang
    /// the suite).
    fn run_bounded(&self, cmd: &mut Command, timeout: Duration) -> Output {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let deadline = Instant::now() + timeout;
        while child.try_wait().expect("poll wine command").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{cmd:?} did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child
            .wait_with_output()
            .expect("collect wine command output")
    }

    /// Builds the stand-in for `bcryptprimitives.dll`
    /// (tests/windows/bcryptprimitives.c) into the prefix's system32:
    /// without it the .exe does not load under wine 8.0.
    fn install_prng(&self) {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/windows");
        let dll = self
            .prefix
            .join("drive_c/windows/system32/bcryptprimitives.dll");
        let out = Command::new("x86_64-w64-mingw32-gcc")
            .args(["-shared", "-O2", "-s", "-o"])
            .arg(&dll)
            .arg(src.join("bcryptprimitives.c"))
            .arg(src.join("bcryptprimitives.def"))
            .arg("-ladvapi32")
            .output()
            .expect("run x86_64-w64-mingw32-gcc");
        assert!(
            out.status.success(),
            "building bcryptprimitives.dll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The wrapper script. `exec` keeps the process id through the shell
    /// and wine's loader, so [`Gateway`] sees the listening socket in the
    /// process it started and a signal to it reaches the Windows process
    /// (wine turns SIGINT into Ctrl-C). Written once per test process,
    /// before any test spawns it (see tests/arm64.rs on ETXTBSY).
    fn write_wrapper(&self) {
        let mut script = format!("#!/bin/sh\nexport WINEPREFIX='{}'\n", self.prefix.display());
        for (k, v) in WINE_ENV {
            script.push_str(&format!("export {k}='{v}'\n"));
        }
        script.push_str(&format!("exec wine '{}' \"$@\"\n", self.exe.display()));
        fs::write(&self.wrapper, script).expect("write the wine wrapper");
        fs::set_permissions(&self.wrapper, fs::Permissions::from_mode(0o755))
            .expect("chmod the wine wrapper");
    }
}

/// A Linux path as the Windows process sees it: wine maps `/` to drive Z:.
pub fn windows_path(path: &Path) -> String {
    let path = path.to_str().expect("a UTF-8 path");
    assert!(path.starts_with('/'), "not an absolute path: {path}");
    format!("Z:{}", path.replace('/', "\\"))
}

/// Fails unless `exe` is a PE32+ executable for x86-64.
fn check_pe_x86_64(exe: &Path) {
    let head = fs::read(exe)
        .unwrap_or_else(|e| panic!("{}: {e} (make windows-test builds it)", exe.display()));
    assert_eq!(
        &head[..2],
        b"MZ",
        "{} is not a Windows executable",
        exe.display()
    );
    // The PE header's offset at 0x3c; then "PE\0\0" and the machine,
    // 0x8664 for x86-64.
    let pe = u32::from_le_bytes([head[0x3c], head[0x3d], head[0x3e], head[0x3f]]) as usize;
    assert_eq!(
        &head[pe..pe + 4],
        b"PE\0\0",
        "{}: no PE header",
        exe.display()
    );
    assert_eq!(
        u16::from_le_bytes([head[pe + 4], head[pe + 5]]),
        0x8664,
        "{} is not an x86-64 executable",
        exe.display()
    );
}

/// Fails unless `tool` is on the PATH.
fn require_tool(tool: &str, install: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .expect("run sh");
    assert!(found.status.success(), "{tool} missing: {install}");
}
