//! Write scopes on grouping keys (`--web.access-file`) against the real
//! binary: basic-auth users pushing inside and outside their scopes,
//! `@base64` keys and label orders the selectors do not spell, a job name
//! crafted to look like another scope's, reads and admin endpoints, a file
//! reloaded mid-run, and bad files.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::raw::basic_auth;
use support::{Gateway, Response, TempDir, ours};

const ACCESS: &str = r#"users:
  ci:
    push: ['{job=~"ci-.*"}']
    read: true
  ops:
    push: ['{job="backup"}', '{job="nightly", env!="prod"}']
    read: true
    admin: true
default:
  read: true
"#;

/// A gateway whose web config has users ci, ops and eve (password `pw`)
/// and whose access file is `access`.
fn start(dir: &TempDir, access: &str, extra: &[&str]) -> Gateway {
    let hash = bcrypt::hash("pw", 4).expect("bcrypt");
    let web = dir.write(
        "web.yml",
        format!("basic_auth_users:\n  ci: {hash}\n  ops: {hash}\n  eve: {hash}\n"),
    );
    let access = dir.write("access.yml", access);
    let mut args = vec![
        format!("--web.config.file={}", web.display()),
        format!("--web.access-file={}", access.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Gateway::start(&ours(), &args)
}

fn as_user(gw: &Gateway, user: &str, method: &str, path: &str, body: &str) -> Response {
    let auth = basic_auth(user, "pw");
    gw.request(method, path, &[("Authorization", &auth)], body.as_bytes())
}

fn scrape(gw: &Gateway) -> String {
    as_user(gw, "ops", "GET", "/metrics", "").text()
}

#[test]
fn pushes_and_deletes_stay_inside_their_scopes() {
    let dir = TempDir::new("scopes");
    let gw = start(&dir, ACCESS, &[]);
    assert_eq!(
        as_user(&gw, "ci", "PUT", "/metrics/job/ci-build", "m 1\n").status,
        200
    );

    let r = as_user(&gw, "ci", "PUT", "/metrics/job/backup", "m 1\n");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.text(),
        "Forbidden: \"ci\" may not push to or delete the group {job=\"backup\"} (--web.access-file)\n"
    );
    // Nothing stored, no failure recorded on the group.
    assert!(!scrape(&gw).contains("job=\"backup\""), "{}", scrape(&gw));

    // A delete outside the scope is refused whether the group exists or not.
    let absent = as_user(&gw, "ci", "DELETE", "/metrics/job/backup", "");
    assert_eq!(absent.status, 403, "{}", absent.text());
    assert_eq!(
        as_user(&gw, "ops", "PUT", "/metrics/job/backup", "b 1\n").status,
        200
    );
    let present = as_user(&gw, "ci", "DELETE", "/metrics/job/backup", "");
    assert_eq!(
        (present.status, present.text()),
        (absent.status, absent.text())
    );
    assert!(scrape(&gw).contains("b{instance=\"\",job=\"backup\"} 1"));

    // Keys in base64, and labels in another order than the selector's.
    let r = as_user(
        &gw,
        "ci",
        "PUT",
        "/metrics/job@base64/Y2ktYmFzZTY0",
        "m 2\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(scrape(&gw).contains("m{instance=\"\",job=\"ci-base64\"} 2"));
    let r = as_user(
        &gw,
        "ops",
        "PUT",
        "/metrics/job/nightly/zone/a/env/dev",
        "n 1\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = as_user(&gw, "ops", "PUT", "/metrics/job/nightly/env/prod", "n 1\n");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("{env=\"prod\",job=\"nightly\"}"),
        "{}",
        r.text()
    );

    // A job name crafted to reach another scope's group stays in its
    // own: the path's job wins over a `job` pair, as in the reference,
    // and scopes are checked on the key as it is stored.
    for path in [
        "/metrics/job/ci-x/job/backup",
        "/metrics/job/ci-x%2Fjob%2Fbackup",
    ] {
        let r = as_user(&gw, "ci", "PUT", path, "evil 1\n");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let text = scrape(&gw);
    assert!(
        text.contains("evil{instance=\"\",job=\"ci-x\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("evil{instance=\"\",job=\"backup\"}"),
        "{text}"
    );
    let r = as_user(&gw, "ci", "PUT", "/metrics/job/backup/job/ci-x", "evil 1\n");
    assert_eq!(r.status, 403, "{}", r.text());

    // The page offers each user deletes of the groups they may change
    // only: ci-build, ci-base64 and ci-x (both crafted paths landed
    // there) for ci; backup and nightly outside prod for ops.
    let buttons = |user: &str| {
        let page = as_user(&gw, user, "GET", "/", "");
        assert_eq!(page.status, 200);
        page.text().matches("<button class=\"delete\"").count()
    };
    assert_eq!((buttons("ci"), buttons("ops"), buttons("eve")), (3, 2, 0));

    // A verified user the file does not list gets the default rules.
    let r = as_user(&gw, "eve", "PUT", "/metrics/job/ci-eve", "m 1\n");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("a request of no listed identity"),
        "{}",
        r.text()
    );
    assert_eq!(as_user(&gw, "eve", "GET", "/metrics", "").status, 200);
    assert!(
        gw.log().contains("may not push to or delete the group"),
        "{}",
        gw.log()
    );
}

#[test]
fn reads_and_admin_endpoints_follow_the_rules() {
    let dir = TempDir::new("scopes-admin");
    let rules =
        "users:\n  ops:\n    admin: true\n    read: true\n  ci:\n    push: ['{job=\"x\"}']\n";
    let gw = start(&dir, rules, &["--web.enable-admin-api"]);
    assert_eq!(
        as_user(&gw, "ci", "PUT", "/metrics/job/x", "m 1\n").status,
        200
    );
    for path in ["/metrics", "/api/v1/metrics", "/api/v1/status", "/"] {
        let r = as_user(&gw, "ci", "GET", path, "");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("may not read metrics"), "{}", r.text());
        assert_eq!(as_user(&gw, "ops", "GET", path, "").status, 200, "{path}");
    }
    let r = as_user(&gw, "ci", "PUT", "/api/v1/admin/wipe", "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("may not use the admin endpoints"),
        "{}",
        r.text()
    );
    let r = as_user(
        &gw,
        "ci",
        "POST",
        "/api/v1/admin/delete?match[]=%7Bjob%3D%22x%22%7D",
        "",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(scrape(&gw).contains("job=\"x\""), "nothing deleted");
    let page = as_user(&gw, "ops", "GET", "/", "").text();
    assert!(page.contains("<button class=\"wipe\""), "{page}");
    assert_eq!(
        as_user(&gw, "ops", "PUT", "/api/v1/admin/wipe", "").status,
        202
    );
    // Probes need no scope.
    assert_eq!(as_user(&gw, "ci", "GET", "/-/healthy", "").status, 200);
    // No default: a request of no listed identity may do nothing.
    let r = as_user(&gw, "eve", "GET", "/metrics", "");
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn the_file_is_followed_and_a_bad_one_keeps_the_rules() {
    let dir = TempDir::new("scopes-reload");
    let gw = start(&dir, ACCESS, &[]);
    assert_eq!(
        as_user(&gw, "ci", "PUT", "/metrics/job/backup", "m 1\n").status,
        403
    );
    // Written anew, larger (a new size even within the same second).
    let wider = ACCESS.replace(
        "['{job=~\"ci-.*\"}']",
        "['{job=~\"ci-.*\"}', '{job=\"backup\"}']",
    );
    dir.write("access.yml", &wider);
    let until = |want: u16, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = as_user(&gw, "ci", "PUT", "/metrics/job/backup", "m 1\n");
            if r.status == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {} {}",
                r.status,
                r.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until(200, "the wider rules");
    // A bad file keeps the rules in force, and says where it is bad.
    dir.write("access.yml", "users:\n  ci:\n    push: ['{job=~\"(\"}']\n");
    std::thread::sleep(Duration::from_millis(1_500));
    let _ = as_user(&gw, "ci", "GET", "/metrics", "");
    assert_eq!(
        as_user(&gw, "ci", "PUT", "/metrics/job/backup", "m 2\n").status,
        200
    );
    let log = gw.log();
    assert!(
        log.contains("access file unusable") && log.contains("access.yml:3"),
        "{log}"
    );
    dir.write("access.yml", ACCESS);
    until(403, "the narrower rules again");
}

#[test]
fn bad_access_files_are_start_up_errors() {
    let dir = TempDir::new("scopes-bad");
    for (text, want) in [
        (
            "users:\n  ci:\n    push: ['{job=~\"(\"}']\n",
            "access.yml:3: ci: selector",
        ),
        (
            "users:\n  ci:\n    read: true\n  ci:\n    admin: true\n",
            // Quoted in the log line: `\"ci\"`.
            "access.yml:4: \\\"ci\\\" is listed twice",
        ),
        (
            "users:\n  ci:\n    write: true\n",
            "unknown key \\\"write\\\"",
        ),
        ("", "empty"),
    ] {
        let path = dir.write("access.yml", text);
        let out = Command::new(ours())
            .args([
                "--web.listen-address=127.0.0.1:0".to_owned(),
                format!("--web.access-file={}", path.display()),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run binary");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} should not start: {err}");
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

/// A verified client certificate is an identity by its SANs (the one the
/// PKI issues says `client.example`), or by its subject's common name
/// when it has none; an unverified one (a rogue CA's, under
/// RequireAnyClientCert) is no identity.
#[cfg(feature = "tls")]
#[test]
fn client_certificates_are_identities() {
    use support::{Pki, curl};
    let pki = Pki::new("scopes");
    let cfg = pki.web_config(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let access = pki.web_config(
        "access.yml",
        "users:\n  client.example:\n    push: ['{job=\"certified\"}']\n    read: true\n  batch-runner:\n    push: ['{job=\"batch\"}']\n",
    );
    let gw = Gateway::start(
        &ours(),
        &[
            &format!("--web.config.file={cfg}"),
            &format!("--web.access-file={access}"),
        ],
    );
    let base = format!("https://localhost:{}", gw.port);
    let push = |job: &str| {
        curl(&[
            "--cacert",
            &pki.path("ca.crt"),
            "--cert",
            &pki.path("client.crt"),
            "--key",
            &pki.path("client.key"),
            "-X",
            "PUT",
            "--data-binary",
            "m 1\n",
            &format!("{base}/metrics/job/{job}"),
        ])
    };
    let inside = push("certified");
    assert_eq!((inside.exit, inside.status), (0, 200), "{inside:?}");
    let outside = push("other");
    assert_eq!(outside.status, 403, "{outside:?}");
    assert!(
        outside.body.contains("\"client.example\" may not push"),
        "{outside:?}"
    );
    // A certificate without SANs goes by its subject's common name.
    pki.issue(
        "cn-only",
        "ca",
        "batch-runner",
        "extendedKeyUsage=clientAuth",
    );
    let as_cn = |job: &str| {
        curl(&[
            "--cacert",
            &pki.path("ca.crt"),
            "--cert",
            &pki.path("cn-only.crt"),
            "--key",
            &pki.path("cn-only.key"),
            "-X",
            "PUT",
            "--data-binary",
            "m 1\n",
            &format!("{base}/metrics/job/{job}"),
        ])
    };
    assert_eq!(as_cn("batch").status, 200);
    let r = as_cn("certified");
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("\"batch-runner\" may not push"), "{r:?}");
    // A certificate that is only asked for, not verified against a CA,
    // says nothing of who the client is: anyone can make one.
    let unverified = pki.web_config(
        "unverified.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n",
    );
    let gw2 = Gateway::start(
        &ours(),
        &[
            &format!("--web.config.file={unverified}"),
            &format!("--web.access-file={access}"),
        ],
    );
    let r = curl(&[
        "--cacert",
        &pki.path("ca.crt"),
        "--cert",
        &pki.path("rogue-client.crt"),
        "--key",
        &pki.path("rogue-client.key"),
        "-X",
        "PUT",
        "--data-binary",
        "m 1\n",
        &format!("https://localhost:{}/metrics/job/certified", gw2.port),
    ]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("a request of no listed identity"), "{r:?}");
    // client_golang with the first certificate.
    let out = Command::new(support::go::go_client())
        .args(["scoped-cert", &base])
        .env("GO_CLIENT_CERT", pki.path("client.crt"))
        .env("GO_CLIENT_KEY", pki.path("client.key"))
        .env("GO_CA", pki.path("ca.crt"))
        .output()
        .expect("run the Go push program");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// client_golang's push package with `BasicAuth`: inside its scope the
/// push lands, outside it the client sees the 403.
#[test]
fn go_client_pushes_inside_its_scope_only() {
    let dir = TempDir::new("scopes-go");
    let gw = start(&dir, ACCESS, &[]);
    let out = Command::new(support::go::go_client())
        .args(["scoped-basic", &format!("http://127.0.0.1:{}", gw.port)])
        .env("GO_PUSH_USER", "ci")
        .env("GO_PUSH_PASS", "pw")
        .output()
        .expect("run the Go push program");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = scrape(&gw);
    assert!(
        text.contains("cg_scoped{instance=\"\",job=\"ci-go\"} 3"),
        "{text}"
    );
    assert!(!text.contains("job=\"backup\""), "{text}");
}

/// Python's `prometheus_client` with its `basic_auth_handler`: inside its
/// scope the push lands, outside it the client sees the 403.
#[test]
fn python_client_pushes_inside_its_scope_only() {
    let dir = TempDir::new("scopes-python");
    let gw = start(&dir, ACCESS, &[]);
    let script = format!(
        "import urllib.error\n\
         from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, delete_from_gateway\n\
         from prometheus_client.exposition import basic_auth_handler\n\
         GW = '127.0.0.1:{}'\n\
         def as_user(user):\n    \
             def handler(url, method, timeout, headers, data):\n        \
                 return basic_auth_handler(url, method, timeout, headers, data, user, 'pw')\n    \
             return handler\n\
         reg = CollectorRegistry()\n\
         Gauge('py_scoped', 'A scoped gauge.', registry=reg).set(7)\n\
         push_to_gateway(GW, job='ci-python', registry=reg, handler=as_user('ci'))\n\
         for push in (lambda: push_to_gateway(GW, job='backup', registry=reg, handler=as_user('ci')),\n             \
                      lambda: delete_from_gateway(GW, job='ci-python', handler=as_user('ops'))):\n    \
             try:\n        \
                 push()\n        \
                 raise SystemExit('outside the scope, yet accepted')\n    \
             except urllib.error.HTTPError as e:\n        \
                 assert e.code == 403, e.code\n",
        gw.port
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed (pip install prometheus_client, or make deps):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = scrape(&gw);
    assert!(
        text.contains("py_scoped{instance=\"\",job=\"ci-python\"} 7"),
        "{text}"
    );
    assert!(!text.contains("job=\"backup\""), "{text}");
}
