#!/usr/bin/env bash
# Usage: hack/images.sh OUTDIR REPOSITORY TAG
#
# Builds ironlb's two images FROM scratch, without pulling anything, as
# docker-archive tarballs: OUTDIR/controller.tar and OUTDIR/speaker.tar,
# named REPOSITORY/controller:TAG and REPOSITORY/speaker:TAG. Load them with
# `docker load -i` or `podman load -i`; `make images` does when an engine
# answers. OUTDIR/images.txt lists name, image ID, size and file count.
#
# Reproducible: static binaries built with -trimpath, root filesystems made
# by hack/image-rootfs.sh, and layers written by hack/mkimage with every
# mtime set to SOURCE_DATE_EPOCH (default: the commit's time) and owners
# 0:0. The same commit, Go toolchain and Debian packages give the same IDs.
#
# VERSION and REVISION are stamped into the binaries (as `make build` does)
# and the labels; the Makefile passes the chart's appVersion and the commit.
set -euo pipefail

prog=images.sh

die() {
	echo "$prog: $*" >&2
	exit 1
}

[ $# -eq 3 ] || {
	echo "usage: $prog OUTDIR REPOSITORY TAG" >&2
	exit 2
}
out=$1
repo=$2
tag=$3
cd "$(dirname "$0")/.."
[ -n "${VERSION:-}" ] || die "VERSION is not set: run it through make images, or set VERSION to the chart's appVersion"
[ -n "${REVISION:-}" ] || die "REVISION is not set: run it through make images, or set REVISION to the commit"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
		die "SOURCE_DATE_EPOCH is not set and git cannot tell the commit's time: set it (seconds since 1970)"
fi
export SOURCE_DATE_EPOCH

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work/bin"

buildinfo=github.com/ironlb/ironlb/internal/buildinfo
ldflags="-s -w -X $buildinfo.Version=$VERSION -X $buildinfo.Revision=$REVISION"
for c in controller speaker; do
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/bin/$c" "./$c" ||
		die "building the $c failed (see above)"
done
go build -o "$work/bin/mkimage" ./hack/mkimage || die "building hack/mkimage failed (see above)"

: >"$out/images.txt.new"
for c in controller speaker; do
	bash hack/image-rootfs.sh "$work/rootfs/$c" "$c" "$work/bin/$c"
	"$work/bin/mkimage" -root "$work/rootfs/$c" -component "$c" -tag "$repo/$c:$tag" \
		-version "$VERSION" -revision "$REVISION" -epoch "$SOURCE_DATE_EPOCH" -out "$out/$c.tar" >>"$out/images.txt.new"
done
mv "$out/images.txt.new" "$out/images.txt"
# The trees stay for tests that change them (a speaker without nft); the
# binaries are inside the archives.
rm -rf "$work/bin"
cat "$out/images.txt"
