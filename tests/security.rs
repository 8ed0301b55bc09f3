//! Access control and listeners against the real binary: basic auth from an
//! exporter-toolkit web configuration file, its mistakes as start-up
//! errors, several listeners, and systemd socket activation.

mod support;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Gateway, TempDir, ours};

fn basic(user: &str, pass: &str) -> String {
    let raw = format!("{user}:{pass}");
    let mut s = pushgateway::wire::path::encode_base64(raw.as_bytes())
        .replace('-', "+")
        .replace('_', "/");
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    format!("Basic {s}")
}

fn auth_config(dir: &TempDir, name: &str) -> PathBuf {
    let hash = bcrypt::hash("secret", 6).expect("bcrypt");
    dir.write(
        name,
        format!(
            "basic_auth_users:\n  alice: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    )
}

#[test]
fn basic_auth_on_every_endpoint() {
    let dir = TempDir::new("security");
    let cfg = auth_config(&dir, "every-endpoint.yml");
    let gw = Gateway::start(&ours(), &[&format!("--web.config.file={}", cfg.display())]);
    let good = basic("alice", "secret");
    let bad = basic("alice", "wrong");
    let nobody = basic("mallory", "secret");
    for (method, path, body) in [
        ("PUT", "/metrics/job/j", "m 1\n"),
        ("GET", "/metrics", ""),
        ("GET", "/", ""),
        ("GET", "/api/v1/status", ""),
        ("DELETE", "/metrics/job/j", ""),
    ] {
        for creds in [None, Some(bad.as_str()), Some(nobody.as_str())] {
            let headers: Vec<(&str, &str)> =
                creds.map(|c| ("Authorization", c)).into_iter().collect();
            let r = gw.request(method, path, &headers, body.as_bytes());
            assert_eq!(r.status, 401, "{method} {path} with {creds:?}");
            assert_eq!(r.header("WWW-Authenticate"), Some("Basic"));
        }
        let r = gw.request(method, path, &[("Authorization", &good)], body.as_bytes());
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
        assert_eq!(
            r.header("X-Frame-Options"),
            Some("deny"),
            "configured header"
        );
    }
    // The health check of a load balancer needs credentials too, as in
    // exporter-toolkit.
    assert_eq!(gw.get("/-/healthy").status, 401);
}

/// Wrong passwords cost a bcrypt hash each; a burst of them must not hold
/// up pushes with cached good credentials. Checked as an order of events,
/// not a duration: the good pushes are all answered while most of the
/// burst is still to be worked through, so they did not wait behind it.
#[test]
fn wrong_password_bursts_do_not_stall_authenticated_pushes() {
    let dir = TempDir::new("security");
    let cfg = auth_config(&dir, "burst.yml");
    let gw = Gateway::start(&ours(), &[&format!("--web.config.file={}", cfg.display())]);
    let good = basic("alice", "secret");
    let push = |i: usize| {
        gw.request(
            "PUT",
            &format!("/metrics/job/j/instance/{i}"),
            &[("Authorization", &good)],
            b"m 1\n",
        )
        .status
    };
    // The first push checks the password and caches it.
    assert_eq!(push(0), 200);
    let port = gw.port;
    let refused = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..16)
        .map(|i| {
            let refused = Arc::clone(&refused);
            std::thread::spawn(move || wrong_passwords(port, i, &refused))
        })
        .collect();
    // The burst is under way (one refusal in) before the good pushes start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while refused.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no wrong password refused");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Cached credentials skip bcrypt, so these go through during the burst.
    for i in 1..=20 {
        assert_eq!(push(i), 200);
    }
    // A third of the burst still ahead: had they waited in line with the
    // hashes, the whole burst (48) would be through by now.
    let ahead = 48 - refused.load(Ordering::SeqCst);
    for a in attackers {
        a.join().expect("attacker thread");
    }
    assert!(
        ahead >= 16,
        "only {ahead} of 48 wrong passwords were still to be refused when the 20 good pushes were answered: they waited for the burst"
    );
    let scrape = gw.request("GET", "/metrics", &[("Authorization", &good)], b"");
    assert!(
        !scrape.text().contains("job=\"x\""),
        "no unauthenticated push got in"
    );
}

/// Three pushes with wrong passwords, each refused (401) and counted in
/// `refused`.
fn wrong_passwords(port: u16, attacker: usize, refused: &AtomicUsize) {
    for k in 0..3 {
        let creds = basic("alice", &format!("guess{attacker}-{k}"));
        let r = support::request(
            port,
            "PUT",
            "/metrics/job/x",
            &[("Authorization", &creds)],
            b"m 1\n",
        );
        assert_eq!(r.status, 401);
        refused.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn bad_web_config_files_are_start_up_errors() {
    let hash = bcrypt::hash("secret", 4).expect("bcrypt");
    for (content, want) in [
        (
            format!("basic_auth_user:\n  alice: {hash}\n"),
            "basic_auth_user",
        ),
        (
            "basic_auth_users:\n  alice: plaintext\n".to_owned(),
            "basic_auth_users.alice",
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n".to_owned(),
            if cfg!(feature = "tls") {
                "a.crt"
            } else {
                "built without TLS"
            },
        ),
        (
            "http_server_config:\n  headers:\n    Set-Cookie: x\n".to_owned(),
            "Set-Cookie",
        ),
        ("basic_auth_users: [\n".to_owned(), "invalid YAML"),
    ] {
        let dir = TempDir::new("security");
        let cfg = dir.write("bad.yml", &content);
        let out = Command::new(ours())
            .args([
                "--web.listen-address=127.0.0.1:0",
                &format!("--web.config.file={}", cfg.display()),
            ])
            .output()
            .expect("run binary");
        assert!(!out.status.success(), "{content:?} should not start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && err.contains("bad.yml"),
            "{content:?}: {err}"
        );
    }
    let out = Command::new(ours())
        .args([
            "--web.listen-address=127.0.0.1:0",
            "--web.config.file=/nonexistent/web.yml",
        ])
        .output()
        .expect("run binary");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/web.yml"));
}

#[test]
fn ipv4_and_ipv6_listeners_serve_one_store() {
    let v6 = TcpListener::bind("[::1]:0")
        .expect("IPv6 loopback")
        .local_addr()
        .expect("addr")
        .port();
    let gw = Gateway::start(&ours(), &[&format!("--web.listen-address=[::1]:{v6}")]);
    assert_eq!(gw.put("/metrics/job/j", "m 1\n").status, 200);
    // Pushed over IPv4, scraped over IPv6.
    let mut s = std::net::TcpStream::connect(("::1", v6)).expect("connect over IPv6");
    use std::io::{Read, Write};
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(text.contains("m{instance=\"\",job=\"j\"} 1"), "{text}");
}

#[test]
fn systemd_socket_activation() {
    // Hand the binary a listening socket as fd 3 the way systemd does,
    // with LISTEN_PID set to its own pid (the shell's $$ survives exec).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --web.systemd-socket",
        &ours(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: dup2 and fcntl are async-signal-safe; only they run between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // If the listener already is fd 3, dup2 keeps its close-on-exec
            // flag, so clear it explicitly either way.
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    drop(listener); // The child has its own copy.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ok = loop {
        let r = support::try_request(
            port,
            "PUT",
            "/metrics/job/socket",
            &[],
            b"m 1\n",
            Duration::from_secs(1),
        );
        if let Ok(r) = r {
            break r.status == 200;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let scrape = support::try_request(port, "GET", "/metrics", &[], b"", Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "no answer on the inherited socket");
    assert!(scrape.expect("scrape").text().contains("job=\"socket\""));

    // Without systemd's variables the flag is a clear start-up error.
    let out = Command::new(ours())
        .arg("--web.systemd-socket")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("LISTEN_PID"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rate_limit_answers_429_before_anything_else() {
    let dir = TempDir::new("security");
    let cfg = dir.write("rate.yml", "rate_limit:\n  burst: 3\n  interval: 1h\n");
    // The readiness probe of Gateway::start takes one token.
    let gw = Gateway::start(&ours(), &[&format!("--web.config.file={}", cfg.display())]);
    let statuses: Vec<u16> = (0..4).map(|_| gw.get("/metrics").status).collect();
    assert_eq!(statuses, vec![200, 200, 429, 429]);
    assert_eq!(gw.put("/metrics/job/x", "a 1\n").status, 429);
}

#[test]
fn users_and_headers_follow_the_web_config_file_without_a_restart() {
    let alice = bcrypt::hash("secret", 4).expect("bcrypt");
    let bob = bcrypt::hash("hunter2", 4).expect("bcrypt");
    let dir = TempDir::new("security");
    let cfg = dir.write("live.yml", format!("basic_auth_users:\n  alice: {alice}\n"));
    let gw = Gateway::start(&ours(), &[&format!("--web.config.file={}", cfg.display())]);
    let as_user = |user: &str, pass: &str| {
        gw.request(
            "GET",
            "/metrics",
            &[("Authorization", &basic(user, pass))],
            b"",
        )
    };
    assert_eq!(as_user("bob", "hunter2").status, 401);
    assert_eq!(as_user("alice", "secret").status, 200);

    // Waits (bounded) until `check` holds for a fresh request.
    let eventually = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "never saw: {what}\n{}", gw.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // A new user and a header, alice removed: the file is replaced whole.
    let next = dir.write(
        "live.next",
        format!(
            "basic_auth_users:\n  bob: {bob}\nhttp_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n"
        ),
    );
    std::fs::rename(&next, &cfg).expect("replace config");
    eventually("bob let in", &|| as_user("bob", "hunter2").status == 200);
    assert_eq!(as_user("alice", "secret").status, 401, "alice was removed");
    assert_eq!(
        as_user("bob", "hunter2").header("X-Frame-Options"),
        Some("sameorigin")
    );

    // A broken file fails closed (500, as the reference), then recovers.
    std::fs::write(&cfg, "basic_auth_users: [\n").expect("break config");
    eventually("500 on a broken file", &|| {
        as_user("bob", "hunter2").status == 500
    });
    assert!(gw.log().contains("web config unreadable"));
    std::fs::write(&cfg, format!("basic_auth_users:\n  bob: {bob}\n")).expect("fix config");
    eventually("recovery", &|| as_user("bob", "hunter2").status == 200);
}
