#!/usr/bin/env bash
# Checks, without a Docker engine, the parts of the images that can go wrong
# quietly: the controller and speaker must be static binaries (the images are
# FROM scratch: the controller's has no libc, and the speaker must not lean on
# the one its image carries for nft), and the files that hack/image-rootfs.sh
# collects for the speaker image must be enough to run nft.
# It builds the speaker image's whole tree (hack/image-rootfs.sh, as `make
# images` and the Dockerfile do) and runs both programs chrooted into it;
# last, `speaker --cleanup` finds nft
# on the image's PATH and has it add and delete a table, in a network
# namespace of its own, so the host's nftables are never touched.
#
# Needs root (for chroot and unshare), Go and /usr/sbin/nft, as on a Debian
# machine with the nftables package.
set -euo pipefail

prog=check-speaker-rootfs.sh
nft=/usr/sbin/nft

die() {
	echo "$prog: FAIL: $*" >&2
	exit 1
}

# has_interp FILE: whether the ELF file FILE asks for a dynamic loader
# (a PT_INTERP program header), i.e. is not static.
has_interp() {
	if command -v readelf >/dev/null; then
		local headers
		headers=$(LC_ALL=C readelf -lW "$1") || die "readelf cannot read $1"
		grep -q '^ *INTERP ' <<<"$headers"
		return
	fi
	# No binutils: walk the program headers with od. 64-bit little-endian only.
	local ident phoff phentsize phnum i type
	ident=$(od -An -tx1 -N6 "$1" | tr -d ' \n')
	[ "$ident" = 7f454c460201 ] || die "$1: not a 64-bit little-endian ELF file, cannot check it without readelf"
	phoff=$(od -An -tu8 -j32 -N8 "$1" | tr -d ' ')
	phentsize=$(od -An -tu2 -j54 -N2 "$1" | tr -d ' ')
	phnum=$(od -An -tu2 -j56 -N2 "$1" | tr -d ' ')
	for ((i = 0; i < phnum; i++)); do
		type=$(od -An -tu4 -j$((phoff + i * phentsize)) -N4 "$1" | tr -d ' ')
		if [ "$type" = 3 ]; then # PT_INTERP
			return 0
		fi
	done
	return 1
}

[ "$(id -u)" = 0 ] || die "run as root: the check uses chroot"
[ -x "$nft" ] || die "$nft missing: install the nftables package"
for tool in go unshare chroot mknod; do
	command -v "$tool" >/dev/null || die "$tool not on PATH"
done

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Built as the Dockerfiles build them.
for cmd in controller speaker; do
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/bin/$cmd" "./$cmd"
done

# The detector must see nft as dynamic, or "static" below would mean nothing.
has_interp "$nft" || die "static check is broken: it does not see $nft as dynamic"
for cmd in controller speaker; do
	if has_interp "$tmp/bin/$cmd"; then
		die "$cmd is dynamically linked; build it with CGO_ENABLED=0"
	fi
	echo "ok: $cmd is static"
done

root=$tmp/root
bash hack/image-rootfs.sh "$root" speaker "$tmp/bin/speaker"
echo "the speaker image holds these files:"
(cd "$root" && find . ! -type d | sort | sed 's|^\.|  |')

out=$(chroot "$root" "$nft" --version 2>&1) || die "nft does not run from the collected files: $out"
echo "ok: chroot nft --version: $out"

# flag.ExitOnError exits 0 on -help, and prints the usage to stderr.
out=$(chroot "$root" /speaker --help 2>&1) || die "speaker --help exited $?: $out"
grep -q '^Usage: speaker' <<<"$out" || die "speaker --help printed no usage: $out"
echo "ok: chroot /speaker --help"

# The speaker as knftables runs it: nft looked up on the image's PATH, then
# talking netlink. The container runtime would provide /dev/null.
path=$(sed -n 's/^ENV PATH=//p' speaker/Dockerfile)
[ -n "$path" ] || die "speaker/Dockerfile sets no ENV PATH"
mkdir "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
out=$(env -i PATH="$path" "$(command -v unshare)" --net "$(command -v chroot)" "$root" /speaker --cleanup 2>&1) ||
	die "speaker --cleanup in a new network namespace: $out"
echo "ok: speaker --cleanup ran nft from PATH=$path"

echo "$prog: PASS"
