//! The container image itself, as `make image` builds it: `make image-test`
//! builds it with podman into target/containers (vfs driver, no daemon)
//! and runs this with PUSHGATEWAY_IMAGE set to its tag.
//!
//! Container runtimes cannot start containers on the CI machines, so the
//! image runs here as a runtime would run it, on the very same files: its
//! root file system is copied out of the storage (`podman image mount`),
//! and a wrapper starts the entrypoint with the default command in new
//! mount and pid namespaces (`unshare`), chrooted into that file system as
//! uid and gid 65534, with nothing in it but what the image holds plus
//! `/proc`, a tmpfs on `/dev/shm` and the bind mounts a user would give
//! (`/data`, the volume, from a directory owned by 65534; a web config
//! under `/etc/pushgateway`). The gateway is pid 1 of its namespace, as in
//! a container, and gets SIGTERM directly, as from `docker stop`.
//!
//! Needs root (namespaces, chroot, mounts). A missing tool or image fails
//! the test: nothing is skipped.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{Gateway, Pki, TempDir, curl, descendants};

/// The image's default command, which the README documents.
const CMD: [&str; 2] = [
    "--persistence.file=/data/metric.store",
    "--persistence.interval=5m",
];
/// An image may hold the binary and a few KB of metadata, nothing more.
const IMAGE_OVERHEAD_LIMIT: u64 = 16 * 1024;
/// The amd64 image with TLS: 2.43 MB when this was written.
const AMD64_SIZE_LIMIT: u64 = 3_000_000;

/// The manifest list's tag; `-amd64`, `-arm64` and `-armv7` name the
/// images.
fn image() -> String {
    std::env::var("PUSHGATEWAY_IMAGE").expect("PUSHGATEWAY_IMAGE unset: run `make image-test`")
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `podman` on the storage `make image-test` built into.
fn podman(args: &[&str]) -> String {
    let store = std::env::var("PUSHGATEWAY_IMAGE_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root_dir().join("target/containers"));
    let out = Command::new("podman")
        .arg("--root")
        .arg(store.join("storage"))
        .arg("--runroot")
        .arg(store.join("run"))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .output()
        .expect("run podman (apt-get install podman; make image-test does)");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn inspect(tag: &str, format: &str) -> String {
    podman(&["image", "inspect", "--format", format, tag])
}

fn binary(arch: &str) -> PathBuf {
    let triple = match arch {
        "amd64" => "x86_64-unknown-linux-musl",
        "arm64" => "aarch64-unknown-linux-musl",
        "armv7" => "armv7-unknown-linux-gnueabihf",
        _ => unreachable!(),
    };
    root_dir().join(format!("target/{triple}/release/pushgateway"))
}

/// The images' architectures, as `make image` tags them and as their
/// configuration reads (os/architecture; podman's inspect has no variant:
/// arm/v7's is checked in the manifest list).
const ARCHS: [(&str, &str); 3] = [
    ("amd64", "linux/amd64"),
    ("arm64", "linux/arm64"),
    ("armv7", "linux/arm"),
];

#[test]
fn image_facts() {
    let image = image();
    for (arch, platform) in ARCHS {
        let tag = format!("{image}-{arch}");
        assert_eq!(inspect(&tag, "{{.Os}}/{{.Architecture}}"), platform);
        assert_eq!(inspect(&tag, "{{.Config.User}}"), "65534:65534");
        assert_eq!(
            inspect(&tag, "{{json .Config.Entrypoint}}"),
            r#"["/pushgateway"]"#
        );
        assert_eq!(
            inspect(&tag, "{{json .Config.Cmd}}"),
            format!("[\"{}\",\"{}\"]", CMD[0], CMD[1])
        );
        assert_eq!(
            inspect(&tag, "{{json .Config.ExposedPorts}}"),
            r#"{"9091/tcp":{}}"#
        );
        assert_eq!(inspect(&tag, "{{json .Config.Volumes}}"), r#"{"/data":{}}"#);
        assert_eq!(
            inspect(&tag, "{{len .RootFS.Layers}}"),
            "2",
            "one layer per COPY"
        );
        let size: u64 = inspect(&tag, "{{.Size}}").parse().expect("numeric size");
        let bin = fs::metadata(binary(arch)).expect("the static binary").len();
        println!("{tag}: {size} bytes, binary {bin} bytes");
        assert!(
            size >= bin && size - bin < IMAGE_OVERHEAD_LIMIT,
            "{tag}: image {size} bytes for a binary of {bin}"
        );
        if arch == "amd64" {
            assert!(size < AMD64_SIZE_LIMIT, "{tag}: {size} bytes");
        }
    }
    // One tag for the three architectures: one entry each, arm with its
    // variant.
    let list = podman(&["manifest", "inspect", &image]);
    for arch in ["amd64", "arm64", "arm"] {
        assert_eq!(
            list.matches(&format!("\"architecture\": \"{arch}\""))
                .count(),
            1,
            "{list}"
        );
    }
    assert_eq!(list.matches("\"variant\": \"v7\"").count(), 1, "{list}");
    assert_eq!(list.matches("\"architecture\": ").count(), 3, "{list}");
}

/// A copy of the image's root file system in a fresh directory, checked to
/// hold exactly /pushgateway (root's, 0755, the static binary byte for
/// byte) and /data (empty, 65534's).
fn unpack(arch: &str) -> TempDir {
    let tag = format!("{}-{arch}", image());
    let dir = TempDir::new(&format!("image-{arch}"));
    let root = dir.file("rootfs");
    let mounted = podman(&["image", "mount", &tag]);
    let cp = Command::new("cp")
        .arg("-a")
        .arg(format!("{mounted}/."))
        .arg(&root)
        .status()
        .expect("run cp");
    podman(&["image", "unmount", &tag]);
    assert!(cp.success(), "copy {mounted}");

    let mut names: Vec<String> = fs::read_dir(&root)
        .expect("read rootfs")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["data", "pushgateway"],
        "{tag}: the image holds more"
    );
    let bin = fs::symlink_metadata(root.join("pushgateway")).expect("/pushgateway");
    assert!(bin.is_file());
    assert_eq!((bin.uid(), bin.gid(), bin.mode() & 0o7777), (0, 0, 0o755));
    assert!(
        fs::read(root.join("pushgateway")).unwrap() == fs::read(binary(arch)).unwrap(),
        "{tag}: /pushgateway is not the binary make static built"
    );
    let data = fs::symlink_metadata(root.join("data")).expect("/data");
    assert!(data.is_dir());
    assert_eq!((data.uid(), data.gid()), (65534, 65534));
    assert_eq!(fs::read_dir(root.join("data")).unwrap().count(), 0);
    dir
}

#[test]
fn every_image_holds_the_binary_and_the_volume_only() {
    for (arch, _) in ARCHS {
        unpack(arch);
    }
}

/// The ARM images' own /pushgateway, run under qemu-user: it starts and
/// says which platform it was built for. (tests/arm64.rs and
/// tests/boards.rs serve, persist and restart these same binaries, which
/// `unpack` checks byte for byte.)
#[test]
fn the_arm_images_binaries_run_under_qemu() {
    for (arch, qemu, platform) in [
        ("arm64", "qemu-aarch64-static", "linux/arm64"),
        ("armv7", "qemu-arm-static", "linux/arm"),
    ] {
        let image = unpack(arch);
        let qemu = support::qemu::qemu_path(qemu);
        let out = Command::new(&qemu)
            .arg(image.file("rootfs/pushgateway"))
            .arg("--version")
            .output()
            .expect("run qemu");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{arch}: {out:?}");
        assert!(text.starts_with("pushgateway, version "), "{arch}: {text}");
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["platform:", platform]),
            "{arch}: {text}"
        );
    }
}

/// A directory owned by 65534 (the volume, the web config).
fn owned_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    chown(dir.path());
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn chown(p: &Path) {
    let st = Command::new("chown")
        .arg("65534:65534")
        .arg(p)
        .status()
        .expect("run chown");
    assert!(
        st.success(),
        "chown {} (the test runs as root)",
        p.display()
    );
}

/// The mount points a runtime adds, then a wrapper script that runs the
/// image's entrypoint in `root` with the arguments it gets: unshare (new
/// mount and pid namespaces, the child killed with the wrapper), /proc and
/// a tmpfs /dev/shm, `data` on /data, `etc` read-only on /etc/pushgateway,
/// then chroot as 65534:65534.
fn wrapper(image: &TempDir, data: &Path, etc: Option<&Path>) -> String {
    wrapper_in(image, data, etc, false)
}

/// [`wrapper`], optionally in a network namespace of its own (loopback
/// only), as a container has: there the gateway can keep its default
/// listen address, :9091.
fn wrapper_in(image: &TempDir, data: &Path, etc: Option<&Path>, own_net: bool) -> String {
    let root = image.file("rootfs");
    for dir in ["proc", "dev/shm", "etc/pushgateway"] {
        fs::create_dir_all(root.join(dir)).expect("mount point");
    }
    let mut mounts = format!(
        "mount -t proc -o nosuid,nodev,noexec proc \"$root/proc\"\n\
         mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=64m shm \"$root/dev/shm\"\n\
         mount --bind '{}' \"$root/data\"\n",
        data.display()
    );
    if let Some(etc) = etc {
        mounts.push_str(&format!(
            "mount --bind '{}' \"$root/etc/pushgateway\"\n\
             mount -o remount,bind,ro \"$root/etc/pushgateway\"\n",
            etc.display()
        ));
    }
    let (net, lo) = if own_net {
        ("--net ", "ip link set lo up\n")
    } else {
        ("", "")
    };
    let script = format!(
        "#!/bin/sh\n\
         # The image run as a scratch container, with the arguments given.\n\
         exec unshare {net}--mount --pid --fork --kill-child sh -c '\n\
         set -e\n\
         root=$0\n\
         {lo}{mounts}\
         exec chroot --userspec=65534:65534 \"$root\" /pushgateway \"$@\"\n\
         ' '{}' \"$@\"\n",
        root.display()
    );
    let path = image.write("run-image", script);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
    path.display().to_string()
}

/// The gateway inside the namespaces: the wrapper's descendant named
/// pushgateway, with its host process id.
fn gateway_pid(gw: &Gateway) -> u32 {
    descendants(gw.pid())
        .into_iter()
        .find(|p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "pushgateway")
        })
        .unwrap_or_else(|| panic!("no pushgateway process under {}", gw.pid()))
}

/// Checks how it runs: uid and gid 65534, pid 1 of its pid namespace, its
/// root the image's file system.
fn check_process(gw: &Gateway, image: &TempDir) {
    let pid = gateway_pid(gw);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
    assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
    assert_eq!(field("NSpid:").last().copied(), Some("1"), "{status}");
    let root = fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, image.file("rootfs"));
}

/// SIGTERM to the gateway (pid 1 inside), as `docker stop` sends it: a
/// graceful stop with exit status 0, which the wrapper passes on.
fn stop(gw: &mut Gateway) {
    let pid = gateway_pid(gw);
    gw.terminate(pid, Duration::from_secs(20));
}

#[test]
fn runs_as_a_scratch_container_and_persists_to_the_volume() {
    let image = unpack("amd64");
    let data = owned_dir("image-data");
    let run = wrapper(&image, data.path(), None);

    let mut gw = Gateway::start(&run, &CMD);
    check_process(&gw, &image);
    let r = gw.put(
        "/metrics/job/image/instance/scratch",
        "# TYPE image_test gauge\nimage_test{case=\"push\"} 42\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let scrape = gw.get("/metrics").text();
    let sample = "image_test{case=\"push\",instance=\"scratch\",job=\"image\"} 42";
    assert!(scrape.contains(sample), "{scrape}");
    // The interval is 5m: nothing written yet; SIGTERM writes the final one.
    let store = data.file("metric.store");
    assert!(!store.exists());
    stop(&mut gw);
    let meta = fs::metadata(&store)
        .unwrap_or_else(|e| panic!("no final snapshot on the volume: {e}\n{}", gw.log()));
    assert!(meta.len() > 0);
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    drop(gw);

    // A new container on the same volume.
    let gw = Gateway::start(&run, &CMD);
    let scrape = gw.get("/metrics").text();
    assert!(scrape.contains(sample), "not restored: {scrape}");
}

#[test]
fn serves_tls_from_a_mounted_web_config() {
    let image = unpack("amd64");
    let data = owned_dir("image-tls-data");
    // The certificates as a user would mount them: readable by 65534.
    let pki = Pki::new("image");
    let etc = owned_dir("image-etc");
    for f in ["server.crt", "server.key"] {
        let p = etc.file(f);
        fs::copy(pki.dir.join(f), &p).expect("copy certificate");
        chown(&p);
    }
    etc.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let run = wrapper(&image, data.path(), Some(etc.path()));

    let args = [CMD[0], CMD[1], "--web.config.file=/etc/pushgateway/web.yml"];
    let mut gw = Gateway::start(&run, &args);
    check_process(&gw, &image);
    let base = format!("https://localhost:{}", gw.port);
    let ca = pki.path("ca.crt");
    let put = curl(&[
        "--cacert",
        &ca,
        "-X",
        "PUT",
        "--data-binary",
        "image_tls 1\n",
        &format!("{base}/metrics/job/tls"),
    ]);
    assert_eq!((put.exit, put.status), (0, 200), "{put:?}");
    let get = curl(&["--cacert", &ca, &format!("{base}/metrics")]);
    assert_eq!((get.exit, get.status), (0, 200), "{get:?}");
    assert!(
        get.body.contains("image_tls{instance=\"\",job=\"tls\"} 1"),
        "{}",
        get.body
    );
    stop(&mut gw);
    assert!(data.file("metric.store").exists(), "{}", gw.log());
}

/// A child process killed (by its id) and reaped when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// curl inside the network namespace of process `pid`.
fn curl_in(pid: u32, args: &[&str]) -> support::Curl {
    let out = Command::new("nsenter")
        .args(["--target", &pid.to_string(), "--net", "curl", "-sS"])
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run nsenter (util-linux) and curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    support::Curl {
        exit: out.status.code().unwrap_or(-1),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Exactly what `docker run IMAGE` starts: the entrypoint with the default
/// command and nothing else, in a network namespace of its own, where it
/// listens on the exposed port, 9091.
#[test]
fn the_default_command_serves_on_9091() {
    let image = unpack("amd64");
    let data = owned_dir("image-default-data");
    let run = wrapper_in(&image, data.path(), None, true);
    let log = image.file("gateway.log");
    let out = fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut child = Running(
        Command::new(&run)
            .args(CMD)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start the wrapper"),
    );
    let show_log = || fs::read_to_string(&log).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let found = descendants(child.0.id()).into_iter().find(|p| {
            fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "pushgateway")
        });
        if let Some(pid) = found
            && curl_in(pid, &["http://127.0.0.1:9091/-/healthy"]).status == 200
        {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not healthy on :9091 within 10 s\n{}",
            show_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let put = curl_in(
        pid,
        &[
            "-X",
            "PUT",
            "--data-binary",
            "image_default 9091\n",
            "http://127.0.0.1:9091/metrics/job/default",
        ],
    );
    assert_eq!((put.exit, put.status), (0, 200), "{put:?}");
    let get = curl_in(pid, &["http://127.0.0.1:9091/metrics"]);
    assert!(
        get.body
            .contains("image_default{instance=\"\",job=\"default\"} 9091"),
        "{get:?}"
    );
    support::send_sigterm(pid);
    let exit = child.0.wait().expect("wait for the wrapper");
    assert!(exit.success(), "exit status {exit:?}\n{}", show_log());
    assert!(data.file("metric.store").exists(), "{}", show_log());
}
