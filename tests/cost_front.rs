//! Every byte a client sends has a bounded price: the HTTP front under
//! clients that make it hold memory, CPU or pool threads, against the real
//! binary on 127.0.0.1.
//!
//! - unfinished request heads are charged to `--web.memory-budget`, and a
//!   flood of them neither grows memory nor stops other clients;
//! - many pipelined requests in one write cost time in proportion to
//!   their number;
//! - a client that resets its connection while its request is with a
//!   handler does not make the I/O loop spin;
//! - a flood of wrong passwords cannot hold the pool that parses pushes.
//!
//! The tests are heavy or timing-sensitive, so they take a lock and run
//! one at a time.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use support::raw::{self, connect, io_thread_ticks, process_ticks};
use support::{Gateway, TempDir, ours};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn start(args: &[&str]) -> Gateway {
    raw::raise_nofile_limit();
    Gateway::start(&ours(), args)
}

/// Sends `req` on a fresh connection and reads one answer; the status, or
/// why there is none, and how long it took.
fn timed(port: u16, req: &[u8], timeout: Duration) -> (Result<u16, String>, Duration) {
    let started = Instant::now();
    let mut c = match raw::try_connect(port, timeout) {
        Ok(c) => c,
        Err(e) => return (Err(format!("connect: {e}")), started.elapsed()),
    };
    if let Err(e) = c.send(req) {
        return (Err(format!("send: {e}")), started.elapsed());
    }
    let got = c
        .read_response_for(timeout, false)
        .map(|r| r.status)
        .map_err(|e| format!("{e:?}\n{}", c.transcript()));
    (got, started.elapsed())
}

fn push_request(path: &str, body: &str, auth: Option<&str>) -> Vec<u8> {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get_request(path: &str, auth: Option<&str>) -> Vec<u8> {
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------------------
// 1. Unfinished heads are charged to the memory budget
// ---------------------------------------------------------------------------

/// Connections sending an endless head, and how much of it each sends.
const HOGS: usize = 1200;
const HOG_BYTES: usize = 900 * 1024;
/// Peak memory the whole flood may add, with a 64 MiB budget: the budget,
/// the fixed price of 1,200 connections, and the allocator's slack.
const HOG_RSS_MIB: u64 = 192;

/// One client holding an unfinished head: sends `HOG_BYTES` of one header
/// line and never ends it. Stops early when the server stops taking bytes.
fn hog(port: u16) -> Option<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut w = &s;
    w.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        .ok()?;
    let piece = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < HOG_BYTES {
        if w.write_all(&piece).is_err() {
            break;
        }
        sent += piece.len();
    }
    Some(s)
}

/// What a hog got back: nothing yet, or one answer's status line and
/// whether it carried Retry-After.
fn hog_answer(s: &TcpStream) -> Option<(String, bool)> {
    s.set_nonblocking(true).ok()?;
    let mut buf = vec![0u8; 4096];
    let mut r = s;
    match r.read(&mut buf) {
        Ok(n) if n > 0 => {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = text.lines().next().unwrap_or("").to_owned();
            Some((status, text.contains("Retry-After: ")))
        }
        _ => None,
    }
}

/// How soon a probe beside the flood of unfinished heads must be answered.
const PROBE_WITHIN: Duration = Duration::from_secs(2);

#[test]
fn unfinished_heads_are_charged_and_other_clients_keep_answering() {
    let _serial = serial();
    let gw = start(&["--web.memory-budget=64MiB"]);
    let (port, pid) = (gw.port, gw.pid());
    let base = raw::peak_rss_kib(pid);
    let flooding = Arc::new(AtomicBool::new(true));
    // Other clients all along, and for a second after while the hogs
    // that were not refused still hold their heads: a health check and a
    // small push, each on a fresh connection, each answered within
    // PROBE_WITHIN.
    let prober = {
        let flooding = Arc::clone(&flooding);
        thread::spawn(move || {
            let mut failures = Vec::new();
            let mut probes = 0;
            while flooding.load(Ordering::SeqCst) || probes < 10 {
                for (what, req) in [
                    ("GET /-/healthy", get_request("/-/healthy", None)),
                    (
                        "a small push",
                        push_request(
                            &format!("/metrics/job/probe/instance/{probes}"),
                            "probe 1\n",
                            None,
                        ),
                    ),
                ] {
                    // Two seconds, not one: the gateway here is the
                    // debug build, sharing two cores with four writers
                    // pushing 1.2 GB of heads (a probe once took 1.35 s
                    // at the flood's start in CI).
                    let (got, took) = timed(port, &req, Duration::from_secs(5));
                    if got != Ok(200) || took > PROBE_WITHIN {
                        failures.push(format!("{what} #{probes}: {got:?} after {took:?}"));
                    }
                }
                probes += 1;
                thread::sleep(Duration::from_millis(100));
            }
            (probes, failures)
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|_| thread::spawn(move || (0..HOGS / 4).filter_map(|_| hog(port)).collect::<Vec<_>>()))
        .collect();
    let hogs: Vec<TcpStream> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("hog writer"))
        .collect();
    thread::sleep(Duration::from_millis(300));
    flooding.store(false, Ordering::SeqCst);
    let (probes, failures) = prober.join().expect("prober");
    assert!(raw::alive(pid), "the gateway died\n{}", gw.log());
    let peak = raw::peak_rss_kib(pid);
    let answers: Vec<(String, bool)> = hogs.iter().filter_map(hog_answer).collect();
    drop(hogs);
    eprintln!(
        "{HOGS} unfinished heads: peak RSS {} -> {} MiB, {} hogs answered 503, {} probes",
        base / 1024,
        peak / 1024,
        answers.len(),
        probes * 2
    );
    assert!(
        failures.is_empty(),
        "{} of {} probes failed beside {HOGS} unfinished heads:\n{}",
        failures.len(),
        probes * 2,
        failures.join("\n")
    );
    assert!(
        peak <= base + HOG_RSS_MIB * 1024,
        "{HOGS} unfinished heads of {} KiB took the peak RSS from {} MiB to {} MiB (+{HOG_RSS_MIB} MiB allowed)",
        HOG_BYTES / 1024,
        base / 1024,
        peak / 1024
    );
    // The heads the budget could not cover were told to come back later.
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(status, retry)| !(status.starts_with("HTTP/1.1 503") && *retry))
        .collect();
    assert!(
        unexpected.is_empty(),
        "hogs should get nothing or 503 with Retry-After, got {unexpected:?}"
    );
    assert!(
        !answers.is_empty(),
        "no hog was refused: the heads were not charged"
    );
    let (got, _) = timed(
        port,
        &get_request("/-/healthy", None),
        Duration::from_secs(5),
    );
    assert_eq!(got, Ok(200), "healthy after the flood\n{}", gw.log());
}

// ---------------------------------------------------------------------------
// 2. Pipelined requests cost time in proportion to their number
// ---------------------------------------------------------------------------

const PIPELINED_GET: &[u8] = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";

/// Sends `n` pipelined health checks in one write and reads their `n`
/// answers; how long that took.
fn pipelined(port: u16, n: usize) -> Duration {
    let mut c = connect(port);
    let started = Instant::now();
    let mut writer = c.stream.try_clone().expect("clone stream");
    let all = PIPELINED_GET.repeat(n);
    let sender = thread::spawn(move || writer.write_all(&all));
    let want = b"HTTP/1.1 200 ";
    let (mut seen, mut carry) = (0usize, Vec::new());
    let mut buf = vec![0u8; 256 * 1024];
    c.stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set read timeout");
    while seen < n {
        let got = match c.stream.read(&mut buf) {
            Ok(0) => panic!("closed after {seen} of {n} answers"),
            Ok(got) => got,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("after {seen} of {n} answers: {e}"),
        };
        carry.extend_from_slice(&buf[..got]);
        seen += carry.windows(want.len()).filter(|w| w == want).count();
        let keep = carry.len().min(want.len() - 1);
        carry.drain(..carry.len() - keep);
    }
    let took = started.elapsed();
    sender.join().expect("sender").expect("write the requests");
    c.stream.shutdown(Shutdown::Both).ok();
    took
}

#[test]
fn pipelined_requests_in_one_write_cost_time_in_proportion_to_their_number() {
    let _serial = serial();
    let gw = start(&[]);
    let n = 10_000;
    pipelined(gw.port, n / 10); // warm up
    let small = pipelined(gw.port, n).min(pipelined(gw.port, n));
    let large = pipelined(gw.port, 8 * n);
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-3);
    eprintln!(
        "pipelined: {n} GETs in {small:?}, {} GETs ({} bytes) in {large:?}, ratio {ratio:.1}",
        8 * n,
        8 * n * PIPELINED_GET.len()
    );
    assert!(
        ratio < 24.0,
        "8x the pipelined requests took {ratio:.1}x the time ({small:?} vs {large:?})"
    );
    assert!(raw::alive(gw.pid()));
}

// ---------------------------------------------------------------------------
// 3. A reset while the handler runs does not make the loop spin
// ---------------------------------------------------------------------------

/// A web config with user alice whose password hash costs `cost`.
fn auth_config(dir: &TempDir, cost: u32) -> String {
    let hash = bcrypt::hash("secret", cost).expect("bcrypt");
    let path = dir.write("web.yml", format!("basic_auth_users:\n  alice: {hash}\n"));
    format!("--web.config.file={}", path.display())
}

/// Closes `s` with a reset (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a live socket and a pointer to a live linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(s);
}

#[test]
fn a_reset_while_the_handler_runs_does_not_spin_the_io_loop() {
    let _serial = serial();
    let dir = TempDir::new("cost-front-spin");
    // A slow hash: the wrong password below keeps its connection waiting
    // for the check for about a second.
    let gw = start(&[&auth_config(&dir, 14)]);
    let pid = gw.pid();
    let wrong = raw::basic_auth("alice", "wrong");
    let mut c = connect(gw.port);
    c.send_ok(&get_request("/-/healthy", Some(&wrong)));
    thread::sleep(Duration::from_millis(50));
    reset(c.stream);
    thread::sleep(Duration::from_millis(50));
    let (t0, w0) = (io_thread_ticks(pid), Instant::now());
    thread::sleep(Duration::from_millis(500));
    let (t1, w1) = (io_thread_ticks(pid), Instant::now());
    let cpu = (t1 - t0) as f64 / 100.0;
    let wall = (w1 - w0).as_secs_f64();
    eprintln!("I/O thread after a reset while waiting: {cpu:.2} s CPU in {wall:.2} s");
    assert!(
        cpu < 0.2 * wall,
        "the I/O loop used {cpu:.2} s of CPU in {wall:.2} s after a client reset its waiting connection"
    );
    let ok = raw::basic_auth("alice", "secret");
    let (got, _) = timed(
        gw.port,
        &get_request("/-/healthy", Some(&ok)),
        Duration::from_secs(10),
    );
    assert_eq!(got, Ok(200), "{}", gw.log());
}

// ---------------------------------------------------------------------------
// 5. Wrong passwords cannot hold the pool
// ---------------------------------------------------------------------------

#[test]
fn a_flood_of_wrong_passwords_does_not_hold_up_pushes() {
    let _serial = serial();
    let dir = TempDir::new("cost-front-auth");
    let gw = start(&[&auth_config(&dir, 10)]);
    let port = gw.port;
    let ok = raw::basic_auth("alice", "secret");
    // Checked once, then remembered: the pushes below pass the gate
    // without bcrypt.
    let (got, _) = timed(
        port,
        &get_request("/-/healthy", Some(&ok)),
        Duration::from_secs(10),
    );
    assert_eq!(got, Ok(200), "{}", gw.log());
    let wrong = raw::basic_auth("alice", "wrong");
    let flood: Vec<TcpStream> = (0..1000)
        .filter_map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.write_all(&get_request(&format!("/-/healthy?{i}"), Some(&wrong)))
                .ok()?;
            Some(s)
        })
        .collect();
    assert!(flood.len() > 900, "only {} flood connections", flood.len());
    // A push large enough to be parsed on the pool, not on the I/O loop.
    let mut body = String::new();
    for i in 0..2000 {
        body.push_str(&format!("big_push_metric{{i=\"{i}\"}} {i}\n"));
    }
    assert!(body.len() > 32 * 1024);
    let slow = Arc::new(AtomicU64::new(0));
    for round in 0..3 {
        for (what, req) in [
            (
                "a large push",
                push_request(
                    &format!("/metrics/job/big/instance/{round}"),
                    &body,
                    Some(&ok),
                ),
            ),
            ("GET /-/healthy", get_request("/-/healthy", Some(&ok))),
        ] {
            let (got, took) = timed(port, &req, Duration::from_secs(10));
            assert_eq!(
                got,
                Ok(200),
                "{what} during 1,000 wrong passwords\n{}",
                gw.log()
            );
            assert!(
                took <= Duration::from_secs(2),
                "{what} during 1,000 wrong passwords took {took:?}"
            );
            slow.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
        }
    }
    eprintln!(
        "slowest answer beside 1,000 wrong passwords: {} ms",
        slow.load(Ordering::Relaxed)
    );
    // Every wrong password is answered: 401 when checked, or 503 with
    // Retry-After when too many checks were already waiting.
    let mut statuses = std::collections::BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    for mut s in flood {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok();
        let mut text = Vec::new();
        let _ = s.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let status = text.get(9..12).unwrap_or("none").to_owned();
        let retry = text.contains("Retry-After: ");
        *statuses.entry((status, retry)).or_insert(0) += 1;
    }
    eprintln!("wrong-password answers (status, Retry-After): {statuses:?}");
    for ((status, retry), n) in &statuses {
        assert!(
            status == "401" || (status == "503" && *retry),
            "{n} wrong passwords got {status} (Retry-After: {retry}): {statuses:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 8. TLS handshakes do their crypto off the I/O loop
// ---------------------------------------------------------------------------

/// A server certificate with an RSA-4096 key (a signature costs
/// milliseconds), signed by the test CA, in `pki`'s directory.
#[cfg(feature = "tls")]
fn rsa_server_cert(pki: &support::Pki) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&pki.dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-newkey",
        "rsa:4096",
        "-nodes",
        "-keyout",
        "rsa.key",
        "-out",
        "rsa.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "rsa.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "rsa.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// A TLS client that trusts the test CA.
#[cfg(feature = "tls")]
fn tls_client(pki: &support::Pki) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(pki.path("ca.crt")).expect("read ca.crt");
    roots.add(ca).expect("add the CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// One TLS connection to 127.0.0.1:`port`, handshake done.
#[cfg(feature = "tls")]
fn tls_connect(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let conn =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))?;
    sock.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Sends a keep-alive GET /-/healthy on `s` and reads its answer (a
/// small one, in one read or a few); the status line.
#[cfg(feature = "tls")]
fn tls_healthy(
    s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
) -> std::io::Result<String> {
    s.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"OK") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    Ok(text.lines().next().unwrap_or("").to_owned())
}

#[cfg(feature = "tls")]
#[test]
fn tls_handshakes_do_their_crypto_off_the_io_loop() {
    let _serial = serial();
    let pki = support::Pki::new("cost-front-handshakes");
    rsa_server_cert(&pki);
    let cfg = pki.web_config(
        "web.yml",
        "tls_server_config:\n  cert_file: rsa.crt\n  key_file: rsa.key\n",
    );
    let gw = start(&[&format!("--web.config.file={cfg}")]);
    let (port, pid) = (gw.port, gw.pid());
    let client = tls_client(&pki);
    let mut kept = tls_connect(port, &client).expect("a first TLS connection");
    assert_eq!(
        tls_healthy(&mut kept).expect("healthy over TLS"),
        "HTTP/1.1 200 OK"
    );
    const HANDSHAKES: usize = 400;
    let (io0, all0) = (io_thread_ticks(pid), process_ticks(pid));
    let go = Arc::new(std::sync::Barrier::new(HANDSHAKES + 1));
    let clients: Vec<_> = (0..HANDSHAKES)
        .map(|_| {
            let (go, client) = (Arc::clone(&go), Arc::clone(&client));
            thread::spawn(move || {
                go.wait();
                tls_connect(port, &client)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    go.wait();
    // A client with its session already set up, all along: answered
    // within a second each time.
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        let status = tls_healthy(&mut kept).expect("healthy over TLS during the handshakes");
        assert_eq!(status, "HTTP/1.1 200 OK");
        slowest = slowest.max(t.elapsed());
        thread::sleep(Duration::from_millis(20));
    }
    let failed: Vec<String> = clients
        .into_iter()
        .filter_map(|c| c.join().expect("client thread").err())
        .collect();
    let (io, all) = (io_thread_ticks(pid) - io0, process_ticks(pid) - all0);
    eprintln!(
        "{HANDSHAKES} RSA-4096 handshakes: I/O thread {io} of {all} ticks of the process's CPU; \
         slowest health check on a kept connection {slowest:?}; {} handshakes failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} handshakes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        all >= 20,
        "the handshakes cost only {all} ticks: too cheap to tell"
    );
    assert!(
        (io as f64) < 0.25 * all as f64,
        "the I/O thread spent {io} of the process's {all} ticks during {HANDSHAKES} handshakes"
    );
    assert!(
        slowest <= Duration::from_secs(1),
        "a kept TLS connection waited {slowest:?} for a health check during {HANDSHAKES} handshakes"
    );
}

/// Deletes and the page's group views with a megabyte of grouping pairs
/// in their URL: the key is parsed on a worker, not on the I/O loop (tens
/// of milliseconds each that every other connection would wait for), and
/// answered as a short key is.
#[test]
fn long_grouping_keys_of_deletes_and_group_views_are_parsed_off_the_io_loop() {
    let _serial = serial();
    let gw = start(&[]);
    let (port, pid) = (gw.port, gw.pid());
    let pairs: String = (0..100_000).map(|i| format!("/k{i}/1")).collect();
    let push = push_request(&format!("/metrics/job/j{pairs}"), "m 1\n", None);
    assert_eq!(timed(port, &push, Duration::from_secs(30)).0, Ok(200));
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let view = get(&format!("/ui/group/metrics/job@base64/ag{pairs}"));
    assert_eq!(
        timed(port, view.as_bytes(), Duration::from_secs(30)).0,
        Ok(200)
    );
    let (io0, all0) = (io_thread_ticks(pid), process_ticks(pid));
    for _ in 0..10 {
        let (status, _) = timed(port, view.as_bytes(), Duration::from_secs(30));
        assert_eq!(status, Ok(200), "a group view with a long key");
        let delete = format!(
            "DELETE /metrics/job/gone{pairs} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let (status, _) = timed(port, delete.as_bytes(), Duration::from_secs(30));
        assert_eq!(status, Ok(202), "a delete with a long key");
    }
    let (io, all) = (io_thread_ticks(pid) - io0, process_ticks(pid) - all0);
    // What framing and routing a target of that size costs the I/O
    // thread anyway (reading the head, finding the path, decoding and
    // cleaning it): the same pairs under a path that names no group.
    let framing_only = get(&format!("/nowhere{pairs}"));
    let frame0 = io_thread_ticks(pid);
    for _ in 0..20 {
        let (status, _) = timed(port, framing_only.as_bytes(), Duration::from_secs(30));
        assert_eq!(status, Ok(404), "a long path that names no group");
    }
    let framing = io_thread_ticks(pid) - frame0;
    eprintln!(
        "20 requests with 100,000 grouping pairs: I/O thread {io} of {all} ticks; routing 20 paths of that size: {framing}"
    );
    assert!(
        all >= 20,
        "the keys cost only {all} ticks: too cheap to tell"
    );
    // The keys are parsed elsewhere: the I/O thread spends on these
    // requests about what routing their paths costs anyway (a group
    // view's answer, a megabyte, is written on top).
    assert!(
        (io as f64) < 1.5 * framing as f64 + 10.0,
        "the I/O thread spent {io} of the process's {all} ticks on 20 long keys, routing alone {framing}"
    );
    let delete =
        format!("DELETE /metrics/job/j{pairs} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(
        timed(port, delete.as_bytes(), Duration::from_secs(30)).0,
        Ok(202)
    );
    let bad = format!(
        "DELETE /metrics/job/j{pairs}/__x/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        timed(port, bad.as_bytes(), Duration::from_secs(30)).0,
        Ok(400)
    );
}
