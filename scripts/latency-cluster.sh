#!/usr/bin/env bash
# End-to-end latency on a 3-node NATS cluster (separate processes, R3
# streams), Redis with a replica and three Sentinels, two serve and two worker
# processes, with one failover: group creations are offered at a fixed rate
# and, LATENCY_FAILOVER_AT into the window, the NATS node leading the job
# stream is SIGKILLed (down 3 s after another node took over, then
# restarted). Prints p50/p99 of the steady events and of those posted during
# the failover, the failover time, and the verdict (every event answered 200
# applied; exit status 1 otherwise). Reports, never asserts on time.
#
# Knobs (environment): LATENCY_RATE (100), LATENCY_DURATION (60s),
# LATENCY_FAILOVER_AT (20s). Extra arguments go to the program.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
go run ./test/chaos -mode latency -pattern create -rate "${LATENCY_RATE:-100}" -duration "${LATENCY_DURATION:-60s}" \
	-workers 2 -nats-nodes 3 -redis-sentinel -serves 2 -failover-at "${LATENCY_FAILOVER_AT:-20s}" \
	-json bench-results/latency-cluster.json "$@" | tee bench-results/latency-cluster.txt
