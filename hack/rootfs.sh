#!/usr/bin/env bash
# Usage: hack/rootfs.sh DEST BINARY...
#
# Copies each BINARY (an absolute path) and every shared library that ldd
# lists for it, the dynamic loader included, into DEST at the same paths, so
# that DEST is all a chroot or an image layer needs to run those binaries.
#
# Paths are kept as ldd prints them and symlinks are followed: DEST gets a
# regular file at each soname path, and real directories where the builder
# may have symlinks (/lib64 on a merged-/usr machine). The images are built
# FROM scratch, so these paths are the only ones there: the dynamic loader
# at the path the binary's ELF header names, and the libraries in
# /lib/<triplet>, a directory the loader searches by default.
set -euo pipefail

prog=rootfs.sh

die() {
	echo "$prog: $*" >&2
	exit 1
}

# copy PATH: put the file PATH names (after symlinks) at DEST/PATH.
copy() {
	mkdir -p "$dest$(dirname "$1")"
	cp -L --preserve=mode "$1" "$dest$1"
}

if [ $# -lt 2 ]; then
	echo "usage: $prog DEST BINARY..." >&2
	exit 2
fi
dest=${1%/}
shift

for bin in "$@"; do
	case $bin in
	/*) ;;
	*) die "$bin: give an absolute path, it is kept inside DEST" ;;
	esac
	[ -f "$bin" ] || die "$bin: no such file"
	[ -x "$bin" ] || die "$bin: not executable"

	# ldd exits 1 for static binaries; tell that apart from a real failure.
	status=0
	out=$(LC_ALL=C ldd "$bin" 2>&1) || status=$?
	case $out in
	*"not a dynamic executable"* | *"statically linked"*)
		copy "$bin"
		continue
		;;
	esac
	[ "$status" -eq 0 ] || die "$bin: ldd failed (exit $status): $out"

	copy "$bin"
	while read -r name arrow path _; do
		if [ "$arrow" = "=>" ]; then
			# "libfoo.so.1 => /lib/.../libfoo.so.1 (0x...)"; the vDSO has no path.
			case $path in
			/*) copy "$path" ;;
			not) die "$bin: needs $name, which is not found" ;;
			esac
		else
			# The loader: "/lib64/ld-linux-x86-64.so.2 (0x...)".
			case $name in
			/*) copy "$name" ;;
			esac
		fi
	done <<<"$out"
done
