#!/usr/bin/env bash
# Cluster chaos run: three NATS nodes (separate processes, R3 streams), Redis
# with a replica and three Sentinels, two serve and two worker processes.
# While webhooks go to both serves it SIGKILLs the NATS node leading the job
# stream, the Redis primary, one serve and one worker, again and again, then
# checks that every accepted event reached what members can decrypt. Prints
# each failover with the time it took. Extra arguments go to the program,
# e.g. scripts/chaos-cluster.sh -duration 10m -rate 20
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
exec go run ./test/chaos -mode chaos -nats-nodes 3 -redis-sentinel -serves 2 -workers 2 -period 20s \
	-duration "${CHAOS_DURATION:-4m}" -json bench-results/chaos-cluster.json "$@"
