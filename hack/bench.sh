#!/usr/bin/env bash
# Runs ironlb's Go benchmarks and writes their figures, with the machine and
# the command, to the file given as the only argument (docs/performance.md).
set -euo pipefail
out=${1:?usage: hack/bench.sh FILE}
cd "$(dirname "$0")/.."
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
cmd="go test -run '^\$' -bench . -benchmem -count 3 ./internal/..."
eval "$cmd" | tee "$raw"

{
	echo "# ironlb performance"
	echo
	echo "Written by \`make bench\` ($(date -u +%Y-%m-%d)); do not edit by hand."
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-)."
	echo
	echo "Command: \`$cmd\`"
	echo
	echo "| package | benchmark | ns/op | B/op | allocs/op |"
	echo "|---|---|---:|---:|---:|"
	awk '
		/^pkg:/ { pkg = $2; sub("github.com/ironlb/ironlb/", "", pkg) }
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			for (i = 3; i < NF; i++) {
				if ($(i+1) == "ns/op") ns = $i
				if ($(i+1) == "B/op") b = $i
				if ($(i+1) == "allocs/op") a = $i
			}
			printf "| %s | %s | %s | %s | %s |\n", pkg, name, ns, b, a
		}' "$raw"
} > "$out"
echo "wrote $out"
