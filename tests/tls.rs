//! TLS from `tls_server_config` against the real binary, with certificates
//! the tests make with openssl and curl/openssl s_client as clients: a
//! trusted CA, client certificates required or missing or from a foreign
//! CA, basic auth over TLS, protocol versions and cipher suites, bad
//! configurations as start-up errors, and certificate rotation without a
//! restart.

#![cfg(feature = "tls")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Gateway, Pki, curl, ours, reference};

/// A web config with the server certificate, by relative paths (they are
/// relative to the file, as in exporter-toolkit), plus `extra` lines under
/// `tls_server_config`.
fn tls_yaml(extra: &str) -> String {
    format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}")
}

fn start(pki: &Pki, yaml: &str) -> Gateway {
    let cfg = pki.web_config("web.yml", yaml);
    Gateway::start(&ours(), &[&format!("--web.config.file={cfg}")])
}

fn url(gw: &Gateway, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", gw.port)
}

#[test]
fn tls_with_a_trusted_ca_and_plain_http_refused() {
    let pki = Pki::new("basic");
    let gw = start(&pki, &tls_yaml(""));
    let ca = pki.path("ca.crt");

    let push = curl(&[
        "--cacert",
        &ca,
        "--data-binary",
        "tls_metric 42\n",
        &url(&gw, "/metrics/job/tls"),
    ]);
    assert_eq!((push.exit, push.status), (0, 200), "{push:?}");
    let scrape = curl(&["--cacert", &ca, &url(&gw, "/metrics")]);
    assert!(
        scrape
            .body
            .contains("tls_metric{instance=\"\",job=\"tls\"} 42"),
        "{scrape:?}"
    );

    // A client that does not trust the CA never gets to HTTP.
    let untrusted = curl(&[&url(&gw, "/metrics")]);
    assert_eq!(untrusted.exit, 60, "{untrusted:?}");

    // Plain HTTP on the TLS port: Go's hint, and no metrics.
    let plain = support::get(gw.port, "/metrics");
    assert_eq!(plain.status, 400);
    assert!(plain.text().contains("HTTPS server"), "{}", plain.text());
    assert!(!plain.text().contains("tls_metric"));
    let mut raw = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    raw.set_read_timeout(Some(Duration::from_secs(10))).ok();
    raw.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("tls_metric"));

    // Clients that connect and say nothing hold only their own thread:
    // a real client is served meanwhile.
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", gw.port)).expect("connect"))
        .collect();
    let ok = curl(&["--cacert", &ca, &url(&gw, "/-/healthy")]);
    assert_eq!(ok.status, 200, "{ok:?}");
    // Served while they were held, not once their handshake time (10 s)
    // ran out and they were cut off: all of them are still open.
    let cut_off = silent.iter().filter(|s| !still_open(s)).count();
    assert_eq!(
        cut_off, 0,
        "{cut_off} of 20 silent clients were cut off before curl was answered"
    );
    drop(silent);
}

#[test]
fn client_certificates_required_verified_and_matched() {
    let pki = Pki::new("mtls");
    let ca = pki.path("ca.crt");
    let with = |cert: &str| {
        vec![
            "--cacert".to_owned(),
            ca.clone(),
            "--cert".to_owned(),
            pki.path(&format!("{cert}.crt")),
            "--key".to_owned(),
            pki.path(&format!("{cert}.key")),
        ]
    };
    let get = |gw: &Gateway, mut args: Vec<String>| {
        args.push(url(gw, "/metrics"));
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let without = vec!["--cacert".to_owned(), ca.clone()];

    let gw = start(
        &pki,
        &tls_yaml("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"),
    );
    assert_eq!(get(&gw, with("client")).status, 200);
    let missing = get(&gw, without.clone());
    assert!(missing.exit != 0 && missing.status == 0, "{missing:?}");
    let foreign = get(&gw, with("rogue-client"));
    assert!(foreign.exit != 0 && foreign.status == 0, "{foreign:?}");
    assert!(gw.log().contains("TLS handshake failed"), "{}", gw.log());
    drop(gw);

    let gw = start(
        &pki,
        &tls_yaml("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"),
    );
    assert_eq!(get(&gw, without.clone()).status, 200);
    assert_eq!(get(&gw, with("client")).status, 200);
    assert_eq!(get(&gw, with("rogue-client")).status, 0);
    drop(gw);

    // RequireAnyClientCert asks for a certificate but does not check who signed it.
    let gw = start(
        &pki,
        &tls_yaml("  client_auth_type: RequireAnyClientCert\n"),
    );
    assert_eq!(get(&gw, with("rogue-client")).status, 200);
    assert_eq!(get(&gw, without.clone()).status, 0);
    drop(gw);

    for (sans, want) in [
        ("[other.example]", 0),
        ("[other.example, client.example]", 200),
    ] {
        let gw = start(
            &pki,
            &tls_yaml(&format!(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: {sans}\n"
            )),
        );
        assert_eq!(get(&gw, with("client")).status, want, "sans {sans}");
    }
}

#[test]
fn basic_auth_over_tls() {
    let pki = Pki::new("auth");
    let hash = bcrypt::hash("secret", 4).expect("bcrypt");
    let gw = start(
        &pki,
        &format!("{}basic_auth_users:\n  alice: {hash}\n", tls_yaml("")),
    );
    let ca = pki.path("ca.crt");
    let target = url(&gw, "/metrics/job/auth");
    let push = |user: Option<&str>| {
        let mut args = vec!["--cacert", &ca, "--data-binary", "a 1\n"];
        if let Some(u) = user {
            args.extend(["-u", u]);
        }
        args.push(&target);
        curl(&args).status
    };
    assert_eq!(push(Some("alice:secret")), 200);
    assert_eq!(push(Some("alice:wrong")), 401);
    assert_eq!(push(Some("mallory:secret")), 401);
    assert_eq!(push(None), 401);
    let head = curl(&["--cacert", &ca, "-D", "-", "-o", "/dev/null", &target]);
    assert!(
        head.body.contains("WWW-Authenticate: Basic"),
        "{}",
        head.body
    );
}

#[test]
fn versions_and_cipher_suites() {
    let pki = Pki::new("versions");
    let ca = pki.path("ca.crt");
    let healthy = |gw: &Gateway, extra: &[&str]| {
        let target = url(gw, "/-/healthy");
        let mut args = vec!["--cacert", &ca];
        args.extend(extra);
        args.push(&target);
        curl(&args).status
    };
    let gw = start(&pki, &tls_yaml("  max_version: TLS12\n"));
    assert_eq!(healthy(&gw, &["--tls-max", "1.2"]), 200);
    assert_eq!(healthy(&gw, &["--tlsv1.3"]), 0);
    drop(gw);

    let gw = start(&pki, &tls_yaml("  min_version: TLS13\n"));
    assert_eq!(healthy(&gw, &["--tlsv1.3"]), 200);
    assert_eq!(healthy(&gw, &["--tls-max", "1.2"]), 0);
    drop(gw);

    let gw = start(
        &pki,
        &tls_yaml(
            "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP256]\n",
        ),
    );
    assert_eq!(
        healthy(&gw, &["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        200
    );
    assert_eq!(
        healthy(&gw, &["--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
        0
    );
    assert_eq!(healthy(&gw, &["--curves", "X25519"]), 0);
    assert_eq!(healthy(&gw, &["--curves", "P-256"]), 200);
}

#[test]
fn bad_tls_configs_are_start_up_errors() {
    let pki = Pki::new("bad");
    for (extra, want) in [
        (
            "  cert_file: missing.crt\n  key_file: server.key\n",
            "missing.crt",
        ),
        (
            "  cert_file: server.crt\n  key_file: client.key\n",
            "do not go together",
        ),
        (
            "  cert_file: server.ext\n  key_file: server.key\n",
            "no CERTIFICATE",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.crt\n",
            "private key",
        ),
        ("  key_file: server.key\n", "cert_file"),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Sometimes\n",
            "client_auth_type",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n",
            "client_auth_type",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "client_ca_file",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.ext\n",
            "server.ext",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  max_version: TLS11\n",
            "max_version",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS14\n",
            "min_version",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_NULL]\n",
            "cipher_suites",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  curve_preferences: [P256]\n",
            "curve_preferences",
        ),
        (
            "  cert_file: server.crt\n  key_file: server.key\n  certfile: x\n",
            "certfile",
        ),
    ] {
        let cfg = pki.web_config("bad.yml", &format!("tls_server_config:\n{extra}"));
        let out = Command::new(ours())
            .args([
                "--web.listen-address=127.0.0.1:0",
                &format!("--web.config.file={cfg}"),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} should not start: {err}");
        assert!(
            err.contains(want) && err.contains("bad.yml"),
            "{extra:?}: {err}"
        );
    }
}

/// The subject of the certificate the server presents now.
fn presented_subject(port: u16) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .to_owned()
}

#[test]
fn rotated_certificates_are_picked_up_without_a_restart() {
    let pki = Pki::new("rotate");
    let gw = start(&pki, &tls_yaml(""));
    assert!(presented_subject(gw.port).contains("localhost"));

    pki.issue(
        "next",
        "ca",
        "rotated",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    );
    // Replace both files the way cert-manager and certbot do: new files
    // renamed over the old ones.
    for ext in ["crt", "key"] {
        std::fs::copy(
            pki.dir.join(format!("next.{ext}")),
            pki.dir.join(format!("tmp.{ext}")),
        )
        .expect("copy");
        std::fs::rename(
            pki.dir.join(format!("tmp.{ext}")),
            pki.dir.join(format!("server.{ext}")),
        )
        .expect("rename");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !presented_subject(gw.port).contains("rotated") {
        assert!(Instant::now() < deadline, "new certificate never served");
        thread::sleep(Duration::from_millis(300));
    }

    // A broken certificate file: new handshakes fail, nothing crashes,
    // and fixing the file brings TLS back.
    std::fs::write(pki.dir.join("server.crt"), "garbage\n").expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    let ca = pki.path("ca.crt");
    while curl(&["--cacert", &ca, &url(&gw, "/-/healthy")]).status == 200 {
        assert!(
            Instant::now() < deadline,
            "broken certificate never noticed"
        );
        thread::sleep(Duration::from_millis(300));
    }
    assert!(gw.log().contains("TLS configuration not reloaded"));
    std::fs::copy(pki.dir.join("next.crt"), pki.dir.join("server.crt")).expect("copy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&["--cacert", &ca, &url(&gw, "/-/healthy")]).status != 200 {
        assert!(Instant::now() < deadline, "fixed certificate never served");
        thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_tls_listeners_share_one_store() {
    let pki = Pki::new("two");
    let cfg = pki.web_config("web.yml", &tls_yaml(""));
    let second = support::free_port();
    let gw = Gateway::start(
        &ours(),
        &[
            &format!("--web.config.file={cfg}"),
            &format!("--web.listen-address=127.0.0.1:{second}"),
        ],
    );
    let ca = pki.path("ca.crt");
    let push = curl(&[
        "--cacert",
        &ca,
        "--data-binary",
        "shared 7\n",
        &url(&gw, "/metrics/job/two"),
    ]);
    assert_eq!(push.status, 200, "{push:?}");
    let other = curl(&[
        "--cacert",
        &ca,
        &format!("https://127.0.0.1:{second}/metrics"),
    ]);
    assert!(other.body.contains("shared{"), "{other:?}");
}

/// The same web config files given to the reference and to us: every
/// client (no certificate, a trusted one, a foreign one; no password, the
/// right one, a wrong one; plain HTTP) gets the same answer from both.
#[test]
fn existing_files_behave_as_with_the_reference() {
    let pki = Pki::new("differential");
    let hash = bcrypt::hash("secret", 4).expect("bcrypt");
    let auth = format!(
        "basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    );
    let configs = [
        format!("{}{auth}", tls_yaml("")),
        tls_yaml("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"),
        format!(
            "{}{auth}",
            tls_yaml("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n")
        ),
    ];
    let ca = pki.path("ca.crt");
    for (i, yaml) in configs.iter().enumerate() {
        let cfg = pki.web_config(&format!("web{i}.yml"), yaml);
        let web = format!("--web.config.file={cfg}");
        let answers = |gw: &Gateway| {
            let mut seen = Vec::new();
            for cert in [None, Some("client"), Some("rogue-client")] {
                for user in [None, Some("alice:secret"), Some("alice:wrong")] {
                    let (crt, key) = cert
                        .map(|c| (pki.path(&format!("{c}.crt")), pki.path(&format!("{c}.key"))))
                        .unwrap_or_default();
                    let target = url(gw, "/api/v1/status");
                    let mut args = vec!["--cacert", &ca, "-D", "-"];
                    if cert.is_some() {
                        args.extend(["--cert", &crt, "--key", &key]);
                    }
                    if let Some(u) = user {
                        args.extend(["-u", u]);
                    }
                    args.push(&target);
                    let r = curl(&args);
                    let nosniff = r
                        .body
                        .to_ascii_lowercase()
                        .contains("x-content-type-options: nosniff");
                    seen.push(format!(
                        "cert={cert:?} user={user:?}: {} nosniff={nosniff}",
                        r.status
                    ));
                }
            }
            let plain = support::get(gw.port, "/metrics");
            seen.push(format!(
                "plain HTTP: {} {}",
                plain.status,
                plain.text().trim()
            ));
            seen
        };
        let ours_gw = Gateway::start(&ours(), &[&web]);
        let ref_gw = Gateway::start(&reference(), &[&web]);
        assert_eq!(answers(&ours_gw), answers(&ref_gw), "config {i}:\n{yaml}");
    }
}

/// A client that stops in the middle of its handshake is cut off when the
/// handshake time runs out (bounded by --web.read-header-timeout, as in
/// Go), while other clients are served meanwhile.
#[test]
fn a_stalled_handshake_is_cut_off() {
    let pki = Pki::new("stall");
    let cfg = pki.web_config("web.yml", &tls_yaml(""));
    let gw = Gateway::start(
        &ours(),
        &[
            &format!("--web.config.file={cfg}"),
            "--web.read-header-timeout=1s",
        ],
    );
    // Taken before connecting: the server's clock cannot start earlier.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    // A TLS handshake record header announcing 512 bytes, and 3 of them.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .expect("write");
    // Watched from a thread of its own, so the time of the close does not
    // depend on how long curl takes meanwhile.
    let watcher = thread::spawn(move || {
        let closed = closed_within(&mut stalled, Duration::from_secs(30));
        (closed, started.elapsed())
    });
    let ca = pki.path("ca.crt");
    let r = curl(&["--cacert", &ca, &url(&gw, "/-/healthy")]);
    assert_eq!(r.status, 200, "others are served meanwhile");
    let (closed, took) = watcher.join().expect("watcher");
    assert!(closed, "the stalled handshake must be closed");
    // At the configured 1 s, not at the 10 s handshake limit that applies
    // without the flag: half of that leaves a loaded machine 4 s of slack.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

/// Whether the peer has neither closed nor reset `stream` (nor sent
/// anything on it) so far; does not wait.
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 1];
    let open =
        matches!(stream.peek(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("blocking");
    open
}

/// Whether the peer closes (or resets) `stream` within `timeout`, reading
/// and discarding anything it sends first.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// What a TLS session's buffers may hold is paid for from the memory
/// budget when the connection is accepted: past what the heads' share
/// covers, a new TLS connection is closed at once, the sessions already
/// open stay, and the share comes back when they end.
#[test]
fn tls_sessions_are_charged_to_the_memory_budget() {
    let pki = Pki::new("held");
    let cfg = pki.web_config("web.yml", &tls_yaml(""));
    // Heads may hold a quarter of 2 MiB: five sessions of 96 KiB.
    let gw = Gateway::start(
        &ours(),
        &[
            &format!("--web.config.file={cfg}"),
            "--web.memory-budget=2MiB",
        ],
    );
    let connect = || TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    let idle: Vec<TcpStream> = (0..5).map(|_| connect()).collect();
    let mut over = connect();
    assert!(
        closed_within(&mut over, Duration::from_secs(5)),
        "a sixth session is over the budget: closed"
    );
    assert!(idle.iter().all(still_open), "the five sessions stay open");
    drop(idle);
    let ca = pki.path("ca.crt");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = curl(&["--cacert", &ca, &url(&gw, "/-/healthy")]);
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the share never came back: {r:?}\n{}",
            gw.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}
