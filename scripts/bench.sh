#!/usr/bin/env bash
# Measures groupsync and prints a table; every figure also goes to
# bench-results/bench.json. Nothing here asserts on time: it reports.
#
#   1. webhook -> PubAck vs raw JetStream publish (go test ./webhook), on one
#      embedded server and on a 3-node cluster with R3 streams
#   2. end-to-end latency webhook 200 -> Virgil group changed, at a fixed
#      offered rate, against the binary with the emulator (test/chaos):
#      group creations at BENCH_RATE, and membership changes of 30-member
#      groups at BENCH_MEMBER_RATE
#   3. worker throughput with 1, 2 and 4 worker processes, each running 4
#      jobs at a time on 64 partitions, with a 20 ms round trip to Virgil
#      (test/chaos)
#   4. Go owner vs the official E3Kit owner: add/remove on groups of 10/50/99
#      (test/chaos TestOwnerCost), and ticket crypto (go test ./virgil -bench)
#   5. peak RSS (VmHWM) of serve and worker, from the latency run
#
# Knobs (environment): BENCH_RATE (200), BENCH_MEMBER_RATE (25),
# BENCH_DURATION (30s), BENCH_WORKERS (1,2,4), BENCH_EVENTS (2000),
# BENCH_LATENCY_WORKERS (2), BENCH_VIRGIL_DELAY (20ms).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench-results
mkdir -p "$out"
rate=${BENCH_RATE:-200}
mrate=${BENCH_MEMBER_RATE:-25}
vdelay=${BENCH_VIRGIL_DELAY:-20ms}
duration=${BENCH_DURATION:-30s}
workers=${BENCH_WORKERS:-1,2,4}
events=${BENCH_EVENTS:-2000}
latw=${BENCH_LATENCY_WORKERS:-2}

step() { printf '\n== %s\n' "$*" >&2; }

step "webhook -> PubAck vs raw JetStream publish"
go test ./webhook -run TestPrintThroughputRatio -webhook.ratio -count=1 -v | tee "$out/ratio.txt" >&2

step "webhook -> PubAck vs raw JetStream publish on a 3-node cluster, R3 streams"
go test ./webhook -run TestPrintClusterThroughputRatio -webhook.cluster-ratio -count=1 -v | tee "$out/ratio-cluster.txt" >&2

step "latency of group creations at $rate/s for $duration ($latw workers)"
go run ./test/chaos -mode latency -pattern create -rate "$rate" -duration "$duration" -workers "$latw" \
  -json "$out/latency.json" | tee "$out/latency.txt" >&2

step "latency of membership changes at $mrate/s for $duration ($latw workers)"
go run ./test/chaos -mode latency -pattern membership -rate "$mrate" -duration "$duration" -workers "$latw" -groups 20 -users 60 \
  -json "$out/latency-membership.json" | tee "$out/latency-membership.txt" >&2

step "worker throughput with $workers worker processes, $events jobs, Virgil round trip $vdelay"
go run ./test/chaos -mode throughput -workers "$workers" -events "$events" -groups 64 -users 40 -concurrency 4 -partitions 64 \
  -virgil-delay "$vdelay" -json "$out/throughput.json" | tee "$out/throughput.txt" >&2

step "Go owner vs E3Kit owner"
(cd virgil/interop && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error)
go test ./test/chaos -run TestOwnerCost -chaos.ownercost -chaos.ownercost-json "$PWD/$out/ownercost.json" -count=1 -v \
  | tee "$out/ownercost.txt" >&2
go test ./virgil -run '^$' -bench 'SignThenEncryptTicket' -benchtime 2s -count=1 | tee "$out/virgil-bench.txt" >&2
(cd virgil/interop && node --no-experimental-fetch bench-crypto.js 2000) > "$out/e3kit-crypto.json"

step "machine"
cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)

python3 - "$out" "$(nproc)" "$cpu" "$mem" <<'PY'
import json, re, sys
out, nproc, cpu, mem = sys.argv[1:5]
res = {"machine": {"nproc": int(nproc), "cpu": cpu, "memory": mem}}
ratio = open(f"{out}/ratio.txt").read()
m = re.search(r"BenchmarkRawPublish.*?([\d.]+) msg/s", ratio); raw = float(m.group(1)) if m else None
m = re.search(r"BenchmarkWebhookToPubAck.*?([\d.]+) msg/s", ratio); hook = float(m.group(1)) if m else None
m = re.search(r"ratio webhook/raw = ([\d.]+)", ratio)
res["intake"] = {"raw_publish_msg_s": raw, "webhook_msg_s": hook, "ratio": float(m.group(1)) if m else None, "target": 0.5}
ratio = open(f"{out}/ratio-cluster.txt").read()
m = re.search(r"BenchmarkClusterRawPublish.*?([\d.]+) msg/s", ratio); craw = float(m.group(1)) if m else None
m = re.search(r"BenchmarkClusterWebhookToPubAck.*?([\d.]+) msg/s", ratio); chook = float(m.group(1)) if m else None
m = re.search(r"cluster throughput ratio webhook/raw = ([\d.]+)", ratio)
res["intake_cluster"] = {"nodes": 3, "replicas": 3, "raw_publish_msg_s": craw, "webhook_msg_s": chook, "ratio": float(m.group(1)) if m else None}
res["latency"] = json.load(open(f"{out}/latency.json"))
res["latency_membership"] = json.load(open(f"{out}/latency-membership.json"))
res["throughput"] = json.load(open(f"{out}/throughput.json"))
res["owner_cost"] = json.load(open(f"{out}/ownercost.json"))
go = {}
for line in open(f"{out}/virgil-bench.txt"):
    m = re.match(r"BenchmarkSignThenEncryptTicket/Recipients(\d+)\S*\s+\d+\s+([\d.]+) ns/op", line)
    if m: go[int(m.group(1))] = float(m.group(2)) / 1e6
e3 = {r["recipients"]: r["ms_per_op"] for r in json.load(open(f"{out}/e3kit-crypto.json"))["results"]}
res["ticket_crypto_ms"] = [{"recipients": n, "go_ms": go.get(n), "e3kit_ms": e3.get(n)} for n in (1, 10, 99)]
json.dump(res, open(f"{out}/bench.json", "w"), indent=2)

def f(v, fmt="{:.2f}"): return "-" if v is None else fmt.format(v)
print(f"\nmachine: {nproc} cores, {cpu}, {mem}")
print("\n| measure | value |\n|---|---|")
i = res["intake"]
print(f"| webhook -> PubAck | {f(hook, '{:.0f}')} msg/s |")
print(f"| raw JetStream publish | {f(raw, '{:.0f}')} msg/s |")
print(f"| ratio webhook/raw (target 0.5) | {f(i['ratio'])} |")
i = res["intake_cluster"]
print(f"| 3-node cluster, R3: webhook -> PubAck | {f(i['webhook_msg_s'], '{:.0f}')} msg/s |")
print(f"| 3-node cluster, R3: raw JetStream publish | {f(i['raw_publish_msg_s'], '{:.0f}')} msg/s |")
print(f"| 3-node cluster, R3: ratio webhook/raw | {f(i['ratio'])} |")
for l in (res["latency"], res["latency_membership"]):
    print(f"| latency 200 -> Virgil, {l['pattern']} events at {l['offered_rate']:.0f}/s, {l['workers']} workers: p50 / p95 / p99 (target p99 < 100 ms) | {l['p50_ms']:.1f} / {l['p95_ms']:.1f} / {l['p99_ms']:.1f} ms |")
    print(f"| {l['pattern']} events applied / accepted; applied rate | {l['measured']} / {l['accepted']} ({l['unseen']} unseen); {l['applied_rate']:.0f}/s |")
    print(f"| {l['pattern']}: webhook answer p50 / p99 | {l['webhook_p50_ms']:.1f} / {l['webhook_p99_ms']:.1f} ms |")
base = None
for t in res["throughput"]:
    base = base or t['jobs_per_s']
    print(f"| worker throughput, {t['workers']} process(es) x {t['concurrency']} jobs, Virgil +{t['virgil_delay_ms']:.0f} ms | {t['jobs_per_s']:.0f} jobs/s ({t['jobs_per_s']/base:.2f}x; {t['jobs']} jobs, converged {t['converged']}) |")
l = res["latency"]
print(f"| peak RSS serve / worker | {l['serve_peak_rss_kb']/1024:.0f} / {l['worker_peak_rss_kb']/1024:.0f} MiB |")
for o in res["owner_cost"]:
    print(f"| owner {o['op']} 1 on a group of {o['members']}: Go / E3Kit | {o['go_ms']:.2f} / {o['e3kit_ms']:.2f} ms |")
for c in res["ticket_crypto_ms"]:
    print(f"| ticket sign+encrypt to {c['recipients']}: Go / E3Kit | {f(c['go_ms'], '{:.3f}')} / {f(c['e3kit_ms'], '{:.3f}')} ms |")
print(f"\nwritten: {out}/bench.json")
PY
