#!/usr/bin/env bash
# Fuzz every Fuzz target of the module, one after the other, each for a short
# time. Go fuzzes one target of one package per run, so the targets are
# found with `go test -list` and run one by one.
#
#   scripts/fuzz.sh                       every target, FUZZTIME each (default 30s)
#   FUZZTIME=5m scripts/fuzz.sh           longer runs
#   scripts/fuzz.sh ./virgil              only the targets of these packages
#
# New failing inputs land in the package's testdata/fuzz/<Target>/ folder:
# commit them, so plain `go test` replays them from then on. Exits non-zero on
# the first target that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
if [ "$#" -eq 0 ]; then
	set -- ./...
fi
found=0
for pkg in $(go list "$@"); do
	targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for target in $targets; do
		found=$((found + 1))
		echo "== $pkg $target ($fuzztime)"
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime"
	done
done
if [ "$found" -eq 0 ]; then
	echo "fuzz.sh: no Fuzz targets in $*" >&2
	exit 1
fi
echo "fuzzed $found target(s), $fuzztime each"
