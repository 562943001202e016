#!/usr/bin/env bash
# corio's channel against TooManyCooks' in the same minutes (issue 22): the channel program of
# tzcnt/runtime-benchmarks (P producers, C consumers, P = C = threads / 2, 10M values, the sum
# checked), corio's version (benchmarks/programs/channel_throughput.cpp, capacity 1024) and
# TooManyCooks' own, built here in a temporary folder from the three public repositories
# (tzcnt/TooManyCooks, tzcnt/tmc-asio, tzcnt/runtime-benchmarks; nothing of them is kept), run
# alternately, ROUNDS times at each thread count. Prints each run's duration, the medians and
# corio's speed relative to TooManyCooks' (their time over ours: above 1 is faster).
# Usage: benchmarks/channel_compare.sh [BUILD_DIR=build-release] [ROUNDS=5] [THREADS="2 4"]
# TMC_SOURCES=dir: a folder holding TooManyCooks/, tmc-asio/ and runtime-benchmarks/ checkouts
# (otherwise they are cloned from GitHub into the temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-release}"
rounds="${2:-5}"
threads="${3:-2 4}"
bash tools/deps.sh clang-16 libhwloc-dev git
ninja -C "$dir" benchmarks/channel_throughput >/dev/null
corio_bin="$dir/benchmarks/channel_throughput"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for repo in TooManyCooks tmc-asio runtime-benchmarks; do
  if [ -n "${TMC_SOURCES:-}" ]; then
    cp -r "$TMC_SOURCES/$repo" "$tmp/$repo"
  else
    git clone -q --depth 1 "https://github.com/tzcnt/$repo" "$tmp/$repo"
  fi
done
# The flags issue 22 names (TooManyCooks' release preset: trivial tasks, one priority, hwloc).
clang++-16 -std=c++20 -O3 -march=native -DNDEBUG -DTMC_TRIVIAL_TASK -DTMC_PRIORITY_COUNT=1 -DTMC_USE_HWLOC \
  -DASIO_STANDALONE -I"$tmp/TooManyCooks/include" -I"$tmp/tmc-asio/include" -I"$tmp/runtime-benchmarks/cpp/2common" \
  "$tmp/runtime-benchmarks/cpp/TooManyCooks/channel.cpp" -o "$tmp/tmc_channel" -lhwloc -pthread
duration() { sed -n 's/.*duration: \([0-9]*\) us.*/\1/p' | head -1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for t in $threads; do
  : >"$tmp/corio.$t"
  : >"$tmp/tmc.$t"
  for r in $(seq 1 "$rounds"); do
    c=$("$corio_bin" "$t" 1024 | duration)
    m=$("$tmp/tmc_channel" "$t" | duration)
    echo "threads $t round $r: corio ${c} us, TooManyCooks ${m} us"
    echo "$c" >>"$tmp/corio.$t"
    echo "$m" >>"$tmp/tmc.$t"
  done
  cm=$(median <"$tmp/corio.$t")
  tm=$(median <"$tmp/tmc.$t")
  echo "threads $t: median corio $((cm / 1000)) ms, TooManyCooks $((tm / 1000)) ms; corio's speed: $(awk -v a="$tm" -v b="$cm" 'BEGIN {printf "%.2f", a / b}')x TooManyCooks'"
done
