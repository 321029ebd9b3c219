#!/usr/bin/env bash
# A longer chaos run than the one in `make test`: separate serve, worker and
# emulator processes, NATS and Redis restarts, worker kills and Virgil
# faults, then a check that nothing acknowledged was lost and every group
# converged. EVENTS and GROUPS scale it.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./cmd/groupsync -count=1 -run TestChaosShort -v -timeout 30m \
	-args -chaos.events="${EVENTS:-1000}" -chaos.groups="${GROUPS:-20}" 2>&1 | grep -E '^chaos:|chaos_test|^(ok|FAIL|---)'
