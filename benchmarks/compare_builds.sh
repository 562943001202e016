#!/usr/bin/env bash
# benchmarks/compare_builds.sh: times several release builds of corio against each other,
# alternating them round by round in the same minutes (this machine's speed drifts between runs,
# so only builds measured side by side compare), and prints each figure's median and range.
#
# usage: benchmarks/compare_builds.sh ROUNDS NAME=BUILD_DIR [NAME=BUILD_DIR ...]
#   e.g. benchmarks/compare_builds.sh 8 base=../base/build-release now=build-release
#
# Per round and build: skynet and fib on 2 workers and pingpong on 1 (--runs 5, their median),
# the spawn + join loop pinned to CPU 1 (taskset -c 1 spawn_join_loop 30000000 0, ns per
# iteration), and BM_spawn_join/workers:2 (--benchmark_min_time=0.3, ns).
set -euo pipefail
rounds=${1:?usage: benchmarks/compare_builds.sh ROUNDS NAME=BUILD_DIR ...}
shift
[ $# -ge 1 ] || { echo "usage: benchmarks/compare_builds.sh ROUNDS NAME=BUILD_DIR ..." >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
figure() { awk -F'[= ]' -v key="$1" '$1 == key {print $2}'; }
for round in $(seq 1 "$rounds"); do
  for spec in "$@"; do
    name=${spec%%=*}
    B=${spec#*=}
    skynet=$("$B/benchmarks/skynet" --workers 2 --runs 5 | figure skynet)
    fib=$("$B/benchmarks/fib" --workers 2 --runs 5 | figure fib)
    pingpong=$("$B/benchmarks/pingpong" --workers 1 --runs 5 | figure pingpong_per_op)
    start=$(date +%s%N)
    taskset -c 1 "$B/benchmarks/micro/spawn_join_loop" 30000000 0
    end=$(date +%s%N)
    pinned=$(awk -v ns=$((end - start)) 'BEGIN {printf "%.2f", ns / 30000000}')
    bm=$("$B/benchmarks/micro/micro_benchmarks" --benchmark_filter='BM_spawn_join/workers:2' \
           --benchmark_min_time=0.3 2>/dev/null | awk '/BM_spawn_join\/workers:2/ {print $2}')
    echo "$round $name skynet_ms=$skynet fib_ms=$fib pingpong_ns=$pingpong spawn_join_pinned_ns=$pinned spawn_join_2w_ns=$bm" | tee -a "$out"
  done
done
echo
/usr/bin/python3 - "$out" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    fields = line.split()
    for kv in fields[2:]:
        key, value = kv.split("=")
        if value:
            rows.setdefault(key, {}).setdefault(fields[1], []).append(float(value))
for key, builds in rows.items():
    print(key + ": " + "   ".join(f"{name} {statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]" for name, v in builds.items()))
PY
