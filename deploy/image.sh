#!/bin/sh
# Builds the FROM-scratch image out of binaries already built by
# `make static` (amd64), `make static-arm64` (arm64) and `make
# static-armv7` (arm/v7): `make image` runs it after them. Each architecture is built from its own temporary build
# context holding only deploy/Containerfile.scratch, the binary and an
# empty data/ directory, so nothing is pulled and nothing is fetched.
#
# Tags: $IMAGE:$TAG-amd64, $IMAGE:$TAG-arm64 and $IMAGE:$TAG-armv7
# (platform linux/arm/v7), and $IMAGE:$TAG, a manifest list of them
# (podman, buildah) so that one tag serves every architecture; with docker, $IMAGE:$TAG is the amd64 image (docker makes
# manifest lists only in a registry: `docker manifest create`).
#
# Environment: IMAGE (pushgateway), TAG (latest), ARCHS ("amd64 arm64
# armv7"),
# ENGINE (podman, buildah or docker; default: the first one present, in
# that order, docker only with a running daemon), IMAGE_STORE (podman and
# buildah as root: a storage root, default target/containers, kept with
# the vfs driver, which works without a daemon and inside containers;
# empty: the engine's own storage).
set -eu
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-pushgateway}
TAG=${TAG:-latest}
ARCHS=${ARCHS:-amd64 arm64 armv7}

# docker counts only with a daemon to talk to.
if [ -z "${ENGINE:-}" ]; then
	for e in podman buildah; do
		if command -v "$e" >/dev/null 2>&1; then ENGINE=$e; break; fi
	done
	if [ -z "${ENGINE:-}" ] && docker info >/dev/null 2>&1; then ENGINE=docker; fi
fi
[ -n "${ENGINE:-}" ] || { echo "image.sh: no podman, buildah or docker daemon (apt-get install podman)" >&2; exit 1; }

# podman and buildah keep images in a storage; as root, ours lives under
# target/ unless IMAGE_STORE is set empty.
STORE=""
if [ "$ENGINE" != docker ] && [ "$(id -u)" = 0 ]; then
	IMAGE_STORE=${IMAGE_STORE-target/containers}
	if [ -n "$IMAGE_STORE" ]; then
		mkdir -p "$IMAGE_STORE"
		dir=$(cd "$IMAGE_STORE" && pwd)
		STORE="--root $dir/storage --runroot $dir/run --storage-driver vfs"
	fi
fi

# Build information as labels; the timestamp of the last commit as the
# image's creation time (podman, buildah), so a rebuild of the same commit
# gives the same image.
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
TIMESTAMP=""
[ "$ENGINE" = docker ] || TIMESTAMP="--timestamp $EPOCH"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM

for arch in $ARCHS; do
	case $arch in
	amd64) bin=target/x86_64-unknown-linux-musl/release/pushgateway platform=linux/amd64 ;;
	arm64) bin=target/aarch64-unknown-linux-musl/release/pushgateway platform=linux/arm64 ;;
	armv7) bin=target/armv7-unknown-linux-gnueabihf/release/pushgateway platform=linux/arm/v7 ;;
	*) echo "image.sh: unknown architecture $arch (amd64, arm64, armv7)" >&2; exit 1 ;;
	esac
	[ -x "$bin" ] || { echo "image.sh: $bin missing: make static / make static-$arch" >&2; exit 1; }
	rm -rf "${ctx:?}"/*
	cp deploy/Containerfile.scratch "$ctx/Containerfile"
	cp "$bin" "$ctx/pushgateway"
	chmod 0755 "$ctx/pushgateway"
	mkdir -m 0755 "$ctx/data"
	# shellcheck disable=SC2086 # STORE and TIMESTAMP are lists of words
	"$ENGINE" $STORE build -q $TIMESTAMP --platform "$platform" \
		--label "org.opencontainers.image.title=pushgateway" \
		--label "org.opencontainers.image.version=$VERSION" \
		--label "org.opencontainers.image.revision=$REVISION" \
		-f "$ctx/Containerfile" -t "$IMAGE:$TAG-$arch" "$ctx" >/dev/null
	echo "built $IMAGE:$TAG-$arch"
done

set -- $ARCHS
if [ "$ENGINE" = docker ]; then
	docker tag "$IMAGE:$TAG-$1" "$IMAGE:$TAG"
else
	# shellcheck disable=SC2086
	"$ENGINE" $STORE manifest rm "$IMAGE:$TAG" >/dev/null 2>&1 ||
		"$ENGINE" $STORE rmi "$IMAGE:$TAG" >/dev/null 2>&1 || true
	# shellcheck disable=SC2086
	"$ENGINE" $STORE manifest create "$IMAGE:$TAG" >/dev/null
	for arch in $ARCHS; do
		# shellcheck disable=SC2086
		"$ENGINE" $STORE manifest add "$IMAGE:$TAG" "containers-storage:localhost/$IMAGE:$TAG-$arch" >/dev/null
	done
	echo "manifest $IMAGE:$TAG: $ARCHS"
fi
if [ "$ENGINE" = buildah ]; then
	# shellcheck disable=SC2086
	"$ENGINE" $STORE images | grep -F "/$IMAGE " || true
else
	for arch in $ARCHS; do
		# shellcheck disable=SC2086
		size=$("$ENGINE" $STORE image inspect --format '{{.Size}}' "$IMAGE:$TAG-$arch")
		echo "$IMAGE:$TAG-$arch: $size bytes"
	done
fi
if [ -n "$STORE" ]; then
	# Our own storage: drop the images the tags above replaced.
	# shellcheck disable=SC2086
	case $ENGINE in
	buildah) "$ENGINE" $STORE rmi --prune >/dev/null ;;
	*) "$ENGINE" $STORE image prune -f >/dev/null ;;
	esac
	echo "storage: $ENGINE $STORE"
fi
