//! Certificates made with the openssl command line, and curl as a TLS
//! client.

use std::fs::{self};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::Ordering;

use super::*;

/// Go's (and our) answer to plain HTTP on a TLS port.
pub(crate) fn is_tls_hint(r: &Response) -> bool {
    r.status == 400 && r.text().contains("HTTP request to an HTTPS server")
}

/// Certificates for TLS tests, made with the `openssl` command line in a
/// fresh temp directory: a CA (`ca.crt`), a server certificate for
/// `localhost` and 127.0.0.1 (`server.crt`/`server.key`), a client
/// certificate with SAN `client.example` (`client.crt`/`client.key`), and a
/// client certificate from a CA the server does not trust
/// (`rogue-client.crt`/`rogue-client.key`).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(tag: &str) -> Pki {
        let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("pushgateway-pki-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create pki dir");
        let pki = Pki { dir };
        pki.ca("ca");
        pki.ca("rogue-ca");
        pki.issue(
            "server",
            "ca",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        pki.issue(
            "client",
            "ca",
            "client",
            "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth",
        );
        pki.issue(
            "rogue-client",
            "rogue-ca",
            "client",
            "subjectAltName=DNS:client.example\nextendedKeyUsage=clientAuth",
        );
        pki
    }

    /// Absolute path of one of the files.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl (apt-get install -y openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `openssl req`: a new P-256 key into `key`, and a request (or with
    /// `-x509` a self-signed certificate) for `subj` into `out`.
    fn new_key(&self, extra: &[&str], key: &str, out: &str, subj: &str) {
        let mut args = vec![
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        args.extend_from_slice(extra);
        args.extend(["-keyout", key, "-out", out, "-subj", subj]);
        self.openssl(&args);
    }

    fn ca(&self, name: &str) {
        let (key, crt, subj) = (
            format!("{name}.key"),
            format!("{name}.crt"),
            format!("/CN={name}"),
        );
        self.new_key(&["-x509", "-days", "2"], &key, &crt, &subj);
    }

    /// A certificate `name.crt`/`name.key` signed by CA `ca` with the
    /// given `openssl x509 -extfile` extension lines.
    pub fn issue(&self, name: &str, ca: &str, cn: &str, extensions: &str) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        fs::write(self.dir.join(&ext), format!("{extensions}\n")).expect("write ext file");
        let subj = format!("/CN={cn}");
        self.new_key(&[], &key, &csr, &subj);
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    /// Writes a web config file into the directory and returns its path.
    pub fn web_config(&self, name: &str, yaml: &str) -> String {
        let p = self.dir.join(name);
        fs::write(&p, yaml).expect("write web config");
        p.display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What `curl` did: its exit code (0: an HTTP answer came; 35, 56, 60...:
/// TLS failures), the status code and the body.
#[derive(Debug)]
pub struct Curl {
    pub exit: i32,
    pub status: u16,
    pub body: String,
    pub stderr: String,
}

/// Runs `curl -sS` with `args`, bounded to 10 s, and splits off the status.
pub fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl (apt-get install -y curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Over TLS with curl (trusting this PKI's `ca.crt`), pushes `{name} 1`
/// to job `tls` of the gateway on `port`, served with `server.crt`, and
/// requires it in a scrape: a cross-built binary's TLS smoke test.
pub fn tls_push_and_scrape(pki: &Pki, port: u16, name: &str) {
    let base = format!("https://localhost:{port}");
    let ca = pki.path("ca.crt");
    let body = format!("{name} 1\n");
    let target = format!("{base}/metrics/job/tls");
    let put = curl(&[
        "--cacert",
        &ca,
        "-X",
        "PUT",
        "--data-binary",
        &body,
        &target,
    ]);
    assert_eq!((put.exit, put.status), (0, 200), "{put:?}");
    let get = curl(&["--cacert", &ca, &format!("{base}/metrics")]);
    assert_eq!((get.exit, get.status), (0, 200), "{get:?}");
    let sample = format!("{name}{{instance=\"\",job=\"tls\"}} 1");
    assert!(get.body.contains(&sample), "{}", get.body);
}
