#!/bin/sh
# Release tarballs laid out as upstream's (promu's): for each architecture
# pushgateway-$VERSION.linux-$ARCH.tar.gz, holding the directory
# pushgateway-$VERSION.linux-$ARCH/ with pushgateway and LICENSE, and
# sha256sums.txt (sha256sum's "<hex>  <file name>" lines) beside them.
# `make release VERSION=x.y.z` runs it after building the static binaries
# (it builds nothing itself).
#
# Environment: VERSION (required), BINS ("arch:path" pairs, the binaries
# to pack), DIST (where the files go: emptied first).
#
# The tarballs are reproducible: names sorted, owner and group 0 by number,
# fixed modes, every mtime SOURCE_DATE_EPOCH or else the last commit's
# time (as build.rs stamps the binaries), and gzip without a name or time.
set -eu
cd "$(dirname "$0")/.."

: "${VERSION:?release.sh: VERSION unset: make release VERSION=x.y.z}"
: "${BINS:?release.sh: BINS unset (arch:path pairs): run make release}"
: "${DIST:?release.sh: DIST unset: run make release}"

EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM

rm -rf "$DIST"
mkdir -p "$DIST"
for pair in $BINS; do
	arch=${pair%%:*}
	bin=${pair#*:}
	[ -x "$bin" ] || { echo "release.sh: $bin missing (make static / make static-$arch)" >&2; exit 1; }
	name=pushgateway-$VERSION.linux-$arch
	mkdir -m 0755 "$stage/$name"
	cp "$bin" "$stage/$name/pushgateway"
	cp LICENSE "$stage/$name/LICENSE"
	chmod 0755 "$stage/$name/pushgateway"
	chmod 0644 "$stage/$name/LICENSE"
	tar --sort=name --mtime="@$EPOCH" --owner=0 --group=0 --numeric-owner \
		--format=gnu -C "$stage" -cf - "$name" | gzip -9 -n >"$DIST/$name.tar.gz"
	echo "$DIST/$name.tar.gz: $(stat -c %s "$DIST/$name.tar.gz") bytes"
done
(cd "$DIST" && sha256sum pushgateway-"$VERSION".linux-*.tar.gz >sha256sums.txt)
echo "$DIST/sha256sums.txt"
