#!/usr/bin/env bash
# Cluster benchmarks of issue 11 (BENCHMARKS.md "Cluster mode"), as run: from a
# directory holding relay-bench and relay built from this tree.
set -u
cd /tmp/i11b-art
B=./relay-bench
bins="-relay-bin main=/tmp/relay-main-before -relay-bin relay=./relay"
rb() { local name=$1; shift; echo "== $name: relay-bench $*" >>tables.txt; $B "$@" >"$name.jsonl" 2>>tables.txt || echo "   (failed)" >>tables.txt; }
rb fanout-n100   $bins -instances 3 -n 100  -d 5s -repeat 3 fanout
rb fanout-n1000  $bins -instances 3 -n 1000 -d 5s -repeat 3 fanout
rb latency-n100  $bins -instances 3 -n 100  -d 5s -rate 100 -repeat 2 -limit=false fanout
rb latency-n1000 $bins -instances 3 -n 1000 -d 5s -rate 100 -repeat 2 -limit=false fanout
rb joinrate-k2000 $bins -instances 3 -k 2000 -c 32 -repeat 3 joinrate
rb joincost      -relay-bin ./relay -instances 1,3 -limit=false -k 30 joincost
for i in 1 2 3; do rb idle-k10000-$i $bins -limit=false -k 10000 idle; done
$B summary *.jsonl > summary.txt 2>&1
echo done >> tables.txt
