//! Issue 18: three of our gateways behind a real HAProxy with
//! deploy/sharded/haproxy.cfg and scraped by a real Prometheus with
//! deploy/sharded/prometheus.yml, both as committed except for the
//! addresses (and a 1 s scrape interval), written to a temporary directory.
//!
//! The Python client pushes 30 jobs through the proxy (ten with a `/` in
//! the name, which it sends as `job@base64`); each lands on exactly one
//! shard and Prometheus sees it there; the same job pushed as `job/X`,
//! `job/%XX`-encoded and `job@base64` with and without padding lands on the
//! same shard; deletes through the proxy reach it; requests without a job
//! get the proxy's 404 or go to the shard named in `/shard/<N>/`. With one
//! shard stopped, exactly its jobs' pushes get HAProxy's 503, and after it
//! restarts from its persistence file its jobs are back.
//!
//! Needs haproxy and prometheus (apt) and prometheus_client (pip); `make
//! deps` installs them. Loopback only, free ports, every wait bounded.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Gateway, Prometheus, Response, TempDir, free_port, ours, request};

const HAPROXY: &str = "/usr/sbin/haproxy";
const SHARDS: usize = 3;

/// HAProxy in the foreground (`-db`) with the committed configuration,
/// killed (by PID) on drop.
struct Haproxy {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Haproxy {
    fn start(dir: &TempDir, shard_ports: &[u16]) -> Haproxy {
        assert!(
            Path::new(HAPROXY).exists(),
            "haproxy not installed: apt-get install -y haproxy (or make deps)"
        );
        let port = free_port();
        let mut cfg = committed("deploy/sharded/haproxy.cfg");
        cfg = replace_counted(&cfg, "bind :9091", &format!("bind 127.0.0.1:{port}"), 1);
        for (i, p) in shard_ports.iter().enumerate() {
            // Once in the hashing backend, once in the shard's own.
            let from = format!("127.0.0.1:{}", 9101 + i);
            cfg = replace_counted(&cfg, &from, &format!("127.0.0.1:{p}"), 2);
        }
        let path = dir.write("haproxy.cfg", &cfg);
        let check = Command::new(HAPROXY)
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c refuses the configuration:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = dir.file("haproxy.log");
        let out = fs::File::create(&log).expect("haproxy log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(HAPROXY)
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start haproxy");
        let h = Haproxy { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = support::try_request(port, "GET", "/", &[], b"", Duration::from_secs(1));
            if matches!(&r, Ok(r) if r.status == 404) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy not answering: {:?}\n{}",
                r.map(|r| r.status),
                h.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
        h
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- haproxy log ---\n{}", self.log());
        }
    }
}

/// A file of the repository.
fn committed(path: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `text` with `from` replaced by `to`, which must occur exactly `n` times:
/// if the committed file changes shape, the test says so.
fn replace_counted(text: &str, from: &str, to: &str, n: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        n,
        "{from:?} in the committed file"
    );
    text.replace(from, to)
}

/// URL-safe base64, with or without `=` padding (Python's
/// urlsafe_b64encode pads).
fn b64(data: &str, pad: bool) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.as_bytes().chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if pad {
            out.push_str(&"=".repeat(3 - c.len()));
        }
    }
    out
}

/// The path of a job's group, as a client sends it: plain, or base64 when
/// the name holds a `/` (it could not be a path segment otherwise).
fn job_path(job: &str, extra: &str) -> String {
    if job.contains('/') {
        format!("/metrics/job@base64/{}{extra}", b64(job, false))
    } else {
        format!("/metrics/job/{job}{extra}")
    }
}

/// Runs a Python script with prometheus_client; `PROXY` is the proxy's
/// address. Returns (success, output).
fn python(proxy: u16, script: &str) -> (bool, String) {
    let full = format!(
        "from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, delete_from_gateway\n\
         PROXY = '127.0.0.1:{proxy}'\n{script}"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&full)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Pushes `sharded_value = value` for `job` through the proxy with the
/// Python client (its own registry per job).
fn python_push(proxy: u16, jobs: &[(String, f64)]) {
    let list: Vec<String> = jobs.iter().map(|(j, v)| format!("({j:?}, {v})")).collect();
    let (ok, out) = python(
        proxy,
        &format!(
            "for job, value in [{}]:\n\
             \x20   reg = CollectorRegistry()\n\
             \x20   Gauge('sharded_value', 'A value per job.', registry=reg).set(value)\n\
             \x20   push_to_gateway(PROXY, job=job, registry=reg)\n",
            list.join(", ")
        ),
    );
    assert!(
        ok,
        "python push through the proxy failed (make deps):\n{out}"
    );
}

/// The `(job, instance)` groups holding `sharded_value` on one shard, read
/// from the shard directly.
fn groups_on(shard: &Gateway) -> BTreeSet<(String, String)> {
    let text = shard.get("/metrics").text();
    text.lines()
        .filter_map(|l| l.strip_prefix("sharded_value{"))
        .map(|l| (label(l, "job"), label(l, "instance")))
        .collect()
}

/// The value of `name="..."` in a label set (no escapes in these values).
fn label(labels: &str, name: &str) -> String {
    let start = labels
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {labels}"))
        + name.len()
        + 2;
    labels[start..start + labels[start..].find('"').expect("closing quote")].to_string()
}

/// Which shards (0-based) hold a group of `job` with `instance`.
fn holders(shards: &[Option<Gateway>], job: &str, instance: &str) -> Vec<usize> {
    let key = (job.to_string(), instance.to_string());
    shards
        .iter()
        .enumerate()
        .filter(|(_, s)| s.as_ref().is_some_and(|s| groups_on(s).contains(&key)))
        .map(|(i, _)| i)
        .collect()
}

/// `job → shard label` of every `sharded_value` series in Prometheus.
fn prometheus_view(prom: &Prometheus, query: &str) -> BTreeMap<String, Vec<String>> {
    let json = prom.query(query);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for series in json.split("{\"metric\":{").skip(1) {
        let labels = &series[..series.find('}').expect("end of labels")];
        let job = json_label(labels, "job");
        seen.entry(job)
            .or_default()
            .push(json_label(labels, "shard"));
    }
    seen
}

fn json_label(labels: &str, name: &str) -> String {
    let key = format!("\"{name}\":\"");
    let start = labels
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {labels}"))
        + key.len();
    labels[start..start + labels[start..].find('"').expect("closing quote")].to_string()
}

/// A raw push body of `sharded_value`, typed and described as the Python
/// client pushes it: a shard refuses a metric whose type differs from the
/// other groups' (the check is per shard, see README).
fn body(value: u32) -> String {
    format!(
        "# HELP sharded_value A value per job.\n# TYPE sharded_value gauge\nsharded_value {value}\n"
    )
}

fn through(proxy: u16, method: &str, path: &str, body: &str) -> Response {
    request(proxy, method, path, &[], body.as_bytes())
}

#[test]
fn jobs_are_sharded_by_haproxy_and_survive_a_shard_restart() {
    let dir = TempDir::new("sharded");
    let store = |i: usize| {
        format!(
            "--persistence.file={}",
            dir.file(&format!("shard{}.store", i + 1)).display()
        )
    };
    let args = |i: usize| [store(i), "--web.enable-admin-api".to_string()];
    // Gateway::start finds free ports (retrying if one is taken); a
    // restarted shard comes back on its own port with Gateway::start_on.
    let mut shards: Vec<Option<Gateway>> = (0..SHARDS)
        .map(|i| {
            let a = args(i);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            Some(Gateway::start(&ours(), &a))
        })
        .collect();
    let ports: Vec<u16> = shards.iter().map(|s| s.as_ref().unwrap().port).collect();
    let proxy = Haproxy::start(&dir, &ports);
    let p = proxy.port;

    let mut prom_cfg = committed("deploy/sharded/prometheus.yml");
    prom_cfg = replace_counted(&prom_cfg, "scrape_interval: 15s", "scrape_interval: 1s", 1);
    for (i, port) in ports.iter().enumerate() {
        let from = format!("'127.0.0.1:{}'", 9101 + i);
        prom_cfg = replace_counted(&prom_cfg, &from, &format!("'127.0.0.1:{port}'"), 1);
    }
    let prom = Prometheus::start(&prom_cfg);

    // 30 jobs through the proxy; a `/` makes the Python client use @base64.
    let jobs: Vec<String> = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                format!("team/nightly_{i}")
            } else {
                format!("batch_{i}")
            }
        })
        .collect();
    let pushes: Vec<(String, f64)> = jobs.iter().cloned().zip((0..).map(f64::from)).collect();
    python_push(p, &pushes);

    // Each job is on exactly one shard, read from the shards directly.
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    for job in &jobs {
        let h = holders(&shards, job, "");
        assert_eq!(h.len(), 1, "{job} is on shards {h:?}");
        owner.insert(job.clone(), h[0]);
    }
    let used: BTreeSet<usize> = owner.values().copied().collect();
    assert!(
        used.len() >= 2,
        "30 jobs all hashed to one shard: {owner:?}"
    );
    let total: usize = shards
        .iter()
        .map(|s| groups_on(s.as_ref().unwrap()).len())
        .sum();
    assert_eq!(total, 30, "no stray groups");

    // Prometheus scrapes the shards directly and sees every job once, from
    // the shard that holds it.
    let shard_label = |i: usize| (i + 1).to_string();
    prom.wait_until("30 jobs in Prometheus", || {
        prometheus_view(&prom, "sharded_value").len() == 30
    });
    let seen = prometheus_view(&prom, "sharded_value");
    for job in &jobs {
        assert_eq!(
            seen[job],
            vec![shard_label(owner[job])],
            "{job} in Prometheus"
        );
    }

    // The other spellings of a job hash alike: URL-safe base64 with and
    // without padding, and percent-encoded (a plain job's first byte, a
    // base64 job's `=` padding as %3D).
    for job in &jobs {
        let forms = [
            ("b64pad", format!("/metrics/job@base64/{}", b64(job, true))),
            ("b64raw", format!("/metrics/job@base64/{}", b64(job, false))),
            (
                "pct",
                if job.contains('/') {
                    // %2F would split the path at the gateway: base64 only.
                    format!("/metrics/job@base64/{}", b64(job, true).replace('=', "%3D"))
                } else {
                    format!("/metrics/job/%{:02X}{}", job.as_bytes()[0], &job[1..])
                },
            ),
        ];
        for (instance, path) in forms {
            let r = through(p, "PUT", &format!("{path}/instance/{instance}"), &body(1));
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            assert_eq!(
                holders(&shards, job, instance),
                vec![owner[job]],
                "{job} pushed as {path}"
            );
        }
    }

    // Deletes through the proxy reach the job's shard: the Python client
    // (plain and @base64) and a raw DELETE of one group.
    let deleted = [jobs[1].clone(), jobs[3].clone()];
    let (ok, out) = python(
        p,
        &format!(
            "delete_from_gateway(PROXY, job={:?})\ndelete_from_gateway(PROXY, job={:?})\n",
            deleted[0], deleted[1]
        ),
    );
    assert!(ok, "{out}");
    let r = through(p, "DELETE", &job_path(&jobs[2], "/instance/b64pad"), "");
    assert_eq!(r.status, 202, "{}", r.text());
    for job in &deleted {
        assert!(holders(&shards, job, "").is_empty(), "{job} deleted");
        assert_eq!(
            holders(&shards, job, "pct"),
            vec![owner[job]],
            "other groups stay"
        );
    }
    assert!(holders(&shards, &jobs[2], "b64pad").is_empty());
    prom.wait_until("the deleted jobs to go stale", || {
        let r = prom.query(&format!(
            "sharded_value{{job=~\"{}|{}\",instance=\"\"}}",
            deleted[0], deleted[1]
        ));
        r.contains("\"result\":[]")
    });

    // Requests without a job: the proxy answers 404 itself, or sends them
    // to the shard named in /shard/<N>/ without the prefix.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/metrics"),
        ("PUT", "/api/v1/admin/wipe"),
        ("GET", "/shard/9/"),
    ] {
        let r = through(p, method, path, "");
        assert_eq!(r.status, 404, "{method} {path}");
        assert!(r.text().contains("/shard/<N>/"), "{}", r.text());
    }
    let r = through(p, "GET", "/shard/2", "");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("/shard/2/"));
    for i in 0..SHARDS {
        let page = through(p, "GET", &format!("/shard/{}/", i + 1), "");
        assert_eq!(page.status, 200);
        assert!(page.text().contains("Pushgateway"));
        let status = through(p, "GET", &format!("/shard/{}/api/v1/status", i + 1), "");
        assert!(
            status.text().contains(&format!("shard{}.store", i + 1)),
            "shard {} answers /shard/{}/: {}",
            i + 1,
            i + 1,
            status.text()
        );
    }
    let r = through(p, "PUT", "/shard/1/metrics/job/x", &body(1));
    assert_eq!(r.status, 403, "pushes only through the hash");
    // The admin API, shard by shard: a selector delete as a loop.
    let selector = "%7Bjob%3D%22batch_4%22%7D";
    let mut count = 0;
    for i in 0..SHARDS {
        let r = through(
            p,
            "POST",
            &format!("/shard/{}/api/v1/admin/delete?match[]={selector}", i + 1),
            "",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        if r.text().contains("\"count\":4") {
            count += 1;
            assert_eq!(i, owner["batch_4"], "{}", r.text());
        } else {
            assert!(r.text().contains("\"count\":0"), "{}", r.text());
        }
    }
    assert_eq!(count, 1, "batch_4's four groups were on one shard");

    // Stop the shard with most jobs (SIGTERM: it writes its persistence
    // file). Its jobs' pushes get HAProxy's 503; every other job still pushes.
    let down = (0..SHARDS)
        .max_by_key(|i| owner.values().filter(|o| *o == i).count())
        .unwrap();
    let mut gw = shards[down].take().unwrap();
    gw.stop();
    drop(gw);
    for job in &jobs {
        let r = through(p, "PUT", &job_path(job, ""), &body(2));
        if owner[job] == down {
            assert_eq!(r.status, 503, "{job} on the stopped shard: {}", r.text());
            assert!(r.text().contains("shard is unavailable"), "{}", r.text());
        } else {
            assert_eq!(r.status, 200, "{job} on a running shard: {}", r.text());
        }
    }
    let down_job = owner.iter().find(|(_, o)| **o == down).unwrap().0.clone();
    let (ok, out) = python(
        p,
        &format!(
            "reg = CollectorRegistry()\nGauge('sharded_value', 'x', registry=reg).set(3)\n\
             push_to_gateway(PROXY, job={down_job:?}, registry=reg)\n"
        ),
    );
    assert!(
        !ok && out.contains("503"),
        "the Python client gets the 503: {out}"
    );
    prom.wait_until("the stopped shard to be down", || {
        prom.query(&format!("up{{shard=\"{}\"}} == 0", shard_label(down)))
            .contains("\"value\"")
    });

    // Back on its port from its persistence file: its jobs are there again,
    // as they were, and push again.
    let a = args(down);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    shards[down] = Some(Gateway::start_on(&ours(), ports[down], &a));
    let restarted = shards[down].as_ref().unwrap();
    let back = groups_on(restarted);
    for (job, o) in &owner {
        if *o == down && !deleted.contains(job) && job != "batch_4" {
            assert!(
                back.contains(&(job.clone(), String::new())),
                "{job} is back"
            );
        }
    }
    for job in &jobs {
        let r = through(p, "PUT", &job_path(job, ""), &body(5));
        assert_eq!(r.status, 200, "{job} after the restart: {}", r.text());
        assert_eq!(holders(&shards, job, ""), vec![owner[job]], "{job}");
    }
    prom.wait_until("every job back in Prometheus", || {
        let seen = prometheus_view(&prom, "sharded_value{instance=\"\"} == 5");
        seen.len() == 30 && jobs.iter().all(|j| seen[j] == vec![shard_label(owner[j])])
    });
}
