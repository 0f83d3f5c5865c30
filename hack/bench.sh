#!/usr/bin/env bash
# Runs ironlb's Go benchmarks and writes their figures, with the machine and
# the command, to the file given as the only argument (docs/performance.md).
set -euo pipefail
out=${1:?usage: hack/bench.sh FILE}
cd "$(dirname "$0")/.."
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
# Pure benchmarks three times each; the controller's and the speaker's,
# which run a real API server and thousands of Services, once (the
# speaker's for 100 endpoint changes).
pure=$(go list ./internal/... | grep -v -e /internal/assigner -e /internal/speaker)
cmd="go test -run '^\$' -bench . -benchmem -count 3 <pure packages>; go test -run '^\$' -bench . -benchtime 1x -timeout 30m ./internal/assigner; go test -run '^\$' -bench . -benchtime 100x -timeout 30m ./internal/speaker"
go test -run '^$' -bench . -benchmem -count 3 $pure | tee "$raw"
go test -run '^$' -bench . -benchtime 1x -timeout 30m ./internal/assigner | grep -v '^time=' | tee -a "$raw"
go test -run '^$' -bench . -benchtime 100x -timeout 30m ./internal/speaker | grep -v '^time=' | tee -a "$raw"

{
	echo "# ironlb performance"
	echo
	echo "Written by \`make bench\` ($(date -u +%Y-%m-%d)); do not edit by hand."
	echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3-)."
	echo
	echo "Command: \`$cmd\`"
	echo
	echo "| package | benchmark | figures |"
	echo "|---|---|---|"
	awk '
		/^pkg:/ { pkg = $2; sub("github.com/ironlb/ironlb/", "", pkg) }
		/^Benchmark/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			figs = ""
			for (i = 3; i < NF; i += 2) figs = figs (figs == "" ? "" : ", ") $i " " $(i+1)
			printf "| %s | %s | %s |\n", pkg, name, figs
		}' "$raw"
} > "$out"
echo "wrote $out"
