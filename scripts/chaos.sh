#!/usr/bin/env bash
# Long chaos run: separate serve and worker processes, NATS and Redis
# restarts, worker SIGKILLs and Virgil faults, then the loss and convergence
# check. Extra arguments go to the program, e.g.
#   scripts/chaos.sh -duration 15m -workers 4 -rate 20
# Exits non-zero when an accepted event was lost, a group diverged or a
# secret reached a log. The report lands in bench-results/chaos.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
exec go run ./test/chaos -mode chaos -duration "${CHAOS_DURATION:-5m}" -json bench-results/chaos.json "$@"
