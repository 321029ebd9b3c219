#!/usr/bin/env bash
# Runs groupsync's benchmarks on this machine and prints one table; the raw
# output goes to bench-results/. Figures only: nothing here passes or fails
# on time. Takes about five minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-results
mkdir -p "$out"
RATE=${RATE:-200}
DURATION=${DURATION:-20s}

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

echo "== webhook -> PubAck vs raw JetStream publish"
go test ./webhook -count=1 -run TestPrintThroughputRatio -webhook.ratio -v 2>&1 | tee "$out/webhook.txt" | grep -iE 'ratio|msg/s|ns/op' || true

echo "== ticket encryption and owner operations (Go)"
go test ./virgil -count=1 -run '^$' -bench . -benchtime 2s 2>&1 | tee "$out/virgil.txt" | grep -E '^Benchmark' || true

echo "== ticket encryption (official virgil-crypto, Node)"
(cd virgil/interop && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && node --no-experimental-fetch bench-crypto.js) 2>&1 | tee "$out/virgil-crypto.json"

echo "== worker throughput, in-process pools"
go test ./worker -count=1 -run '^$' -bench WorkerThroughput -benchtime 1x 2>&1 | tee "$out/worker.txt" | grep -E '^Benchmark' || true

echo "== end to end: serve + N worker processes + emulator, ${RATE} webhooks/s for ${DURATION}"
for n in 1 2 4; do
	go test ./cmd/groupsync -count=1 -run '^$' -bench BenchmarkEndToEnd -benchtime 1x -timeout 20m \
		-args -e2e.rate="$RATE" -e2e.duration="$DURATION" -e2e.workers="$n" 2>&1 | tee "$out/e2e-$n.txt" | grep -E '^Benchmark' | sed "s/^/workers=$n  /" || true
done

python3 - "$out" <<'PY' || true
import json, re, sys, glob, os
out = sys.argv[1]
res = {}
for f in glob.glob(os.path.join(out, "*.txt")):
    for line in open(f):
        if line.startswith("Benchmark"):
            parts = line.split()
            name = os.path.basename(f)[:-4] + ":" + parts[0]
            res[name] = {parts[i + 1]: float(parts[i]) for i in range(2, len(parts) - 1, 2) if re.match(r"^[0-9.]+$", parts[i])}
json.dump(res, open(os.path.join(out, "bench.json"), "w"), indent=2)
print("figures written to", os.path.join(out, "bench.json"))
PY
