#!/usr/bin/env bash
# Usage: hack/image-rootfs.sh DEST COMPONENT BINARY
#
# Builds in DEST (which must not exist yet) the complete root filesystem of
# ironlb's COMPONENT image (controller or speaker), from BINARY (the static
# Go binary) and files of this Debian machine. The images are FROM scratch:
# what this script puts into DEST is every file they hold. `make images`
# (hack/images.sh) and the multi-stage Dockerfiles both call it, so the two
# ways of building give the same file set.
#
#   /COMPONENT                          the binary
#   /etc/passwd, /etc/group             root (0) and nonroot (65532); the
#                                       controller runs as 65532, the speaker
#                                       as root with two capabilities
#   /etc/ssl/certs/ca-certificates.crt  for API servers behind a public CA
#   /tmp                                empty, 1777
#   speaker only: /usr/sbin/nft and the loader and libraries it needs
#                                       (hack/rootfs.sh); knftables runs nft
#
# NFT names the nft binary to gather (default /usr/sbin/nft).
set -euo pipefail

prog=image-rootfs.sh

die() {
	echo "$prog: $*" >&2
	exit 1
}

[ $# -eq 3 ] || {
	echo "usage: $prog DEST controller|speaker BINARY" >&2
	exit 2
}
dest=${1%/}
component=$2
binary=$3
nft=${NFT:-/usr/sbin/nft}
certs=/etc/ssl/certs/ca-certificates.crt
here=$(cd "$(dirname "$0")" && pwd)

case $component in
controller | speaker) ;;
*) die "unknown component $component: give controller or speaker" ;;
esac
[ ! -e "$dest" ] || die "$dest exists: give a new directory (remove the old one first)"
[ -f "$binary" ] && [ -x "$binary" ] || die "$binary: not an executable file; build the $component first (CGO_ENABLED=0 go build ./$component)"
[ -f "$certs" ] || die "$certs missing: install the ca-certificates package (make deps does)"

mkdir -p "$dest/etc/ssl/certs" "$dest/tmp"
chmod 1777 "$dest/tmp"
cp "$binary" "$dest/$component"
chmod 755 "$dest/$component"
cp -L "$certs" "$dest$certs"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$dest/etc/passwd"
printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$dest/etc/group"

if [ "$component" = speaker ]; then
	[ -x "$nft" ] || die "$nft missing: install the nftables package (make deps does)"
	bash "$here/rootfs.sh" "$dest" "$nft"
fi
