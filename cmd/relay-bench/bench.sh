#!/usr/bin/env bash
# Runs every scenario of BENCHMARKS.md against a relay built from this tree
# and the limit server, and keeps the JSON lines and tables.
# Usage: cmd/relay-bench/bench.sh [outdir]   (about 20 minutes)
# QUICK=1 shortens every run (for trying the script, not for numbers).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-artifacts/bench-$(date -u +%Y%m%dT%H%MZ)}
mkdir -p "$out"
go build -o "$out/relay" ./cmd/relay
go build -o "$out/relay-bench" ./cmd/relay-bench
rb() { # name, then relay-bench arguments
  local name=$1; shift
  echo "== $name: relay-bench $*" | tee -a "$out/tables.txt"
  "$out/relay-bench" -relay-bin "$out/relay" "$@" >"$out/$name.jsonl" 2>>"$out/tables.txt" || echo "   (failed, see above)" | tee -a "$out/tables.txt"
}
d=5s; dl=10s; rep=5; hold=60s
if [ "${QUICK:-}" = 1 ]; then d=1s; dl=2s; rep=1; hold=3s; fi
rb fanout-n100       -n 100  -d $d  -repeat $rep fanout
rb fanout-n1000      -n 1000 -d $d  -repeat 3    fanout
rb latency-n100      -n 100  -d $dl -rate 100 -repeat 3 fanout
rb latency-n1000     -n 1000 -d $dl -rate 100 -repeat 3 fanout
for i in 1 2 3; do rb idle-k10000-$i -limit=false -k 10000 idle; done
rb joinrate-k5000    -k 5000 -c 32 -repeat 3 joinrate
# Cluster mode: one instance against three on a child nats-server, members spread.
rb cluster-fanout-n100  -n 100  -d $d -repeat 3 -instances 3 fanout
rb cluster-fanout-n1000 -n 1000 -d $d -repeat 3 -instances 3 fanout
rb cluster-joinrate     -k 2000 -c 32 -repeat 3 -instances 3 joinrate
rb cluster-joincost     -limit=false -k 30 -instances 1,3 joincost
rb hold-k19500       -limit=false -k 19500 -sources 2 -hold $hold -keepalive 20s hold
go test -run '^$' -bench . -benchmem -count 3 ./relay/protocol ./relay/internal/hub ./relay/internal/token | tee "$out/micro.txt"
"$out/relay-bench" summary "$out"/*.jsonl | tee "$out/summary.txt"
echo "results in $out"
