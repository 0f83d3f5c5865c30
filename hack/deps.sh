#!/usr/bin/env bash
# Installs the Debian packages that `make lab` and `make test` need, when one
# is missing: the lab's control plane (etcd), its router (FRR), the kernel
# tools the speaker and the tests drive (nft, ip, ping, arping, ndisc6,
# tcpdump), graphviz for the architecture picture, docker.io, the
# container engine in which `make test` runs the images (e2e/images starts a
# dockerd of its own and stops it after), and podman with runc, with which
# the lab runs the controller and the speakers from their images (each lab
# has podman storage of its own; no daemon runs). Go is the one thing a
# machine must bring itself.
#
# Installing needs root; a user without it is told which packages are
# missing and the command that installs them. DEPS_PACKAGES overrides the
# list (the tests use it).
set -euo pipefail

read -r -a packages <<<"${DEPS_PACKAGES:-make git curl ca-certificates etcd-server frr nftables iproute2 iputils-ping arping ndisc6 tcpdump graphviz binutils docker.io podman runc}"

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run this as root (the lab and the tests need root anyway), or install them first: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null; then
	echo "deps: missing packages ${missing[*]}, and apt-get is not here: ironlb's lab and tests expect Debian 12 or a derivative" >&2
	exit 1
fi
echo "deps: installing Debian packages: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
