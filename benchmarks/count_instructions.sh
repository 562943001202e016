#!/usr/bin/env bash
# benchmarks/count_instructions.sh: the instruction counts benchmarks/RESULTS.md compares builds by.
# valgrind's callgrind counts instructions, not seconds: the same binary and input give the same
# count whatever else the machine does, so two builds compare on a noisy machine.
#
# usage: benchmarks/count_instructions.sh BUILD_DIR   (a release build with the benchmarks)
#
# Prints, on the Asio reactor (CORIO_BACKEND=asio) with one worker:
#   - per iteration, the difference of 40,000 and 20,000 iterations of benchmarks/micro/
#     spawn_join_loop: spawn + join (mode 0), a channel send + receive (mode 1), a yield (mode 2);
#   - whole-run totals of pingpong (--n 200000), fib, skynet and fib_when_all at their default
#     sizes (--runs 1 --warmup 0).
# Needs valgrind (Debian package valgrind). Takes about 15 s.
set -euo pipefail
B=${1:?usage: benchmarks/count_instructions.sh BUILD_DIR}
export CORIO_BACKEND=asio
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected :/ {print $4}'; }
per_iteration() {
  local a b
  a=$(count "$B/benchmarks/micro/spawn_join_loop" 40000 "$1")
  b=$(count "$B/benchmarks/micro/spawn_join_loop" 20000 "$1")
  echo $(( (a - b) / 20000 ))
}
echo "spawn + join, instructions per iteration: $(per_iteration 0)"
echo "channel send + receive, instructions per iteration: $(per_iteration 1)"
echo "yield, instructions per iteration: $(per_iteration 2)"
echo "pingpong, whole run: $(count "$B/benchmarks/pingpong" --workers 1 --runs 1 --warmup 0 --n 200000)"
for p in fib skynet fib_when_all; do
  echo "$p, whole run: $(count "$B/benchmarks/$p" --workers 1 --runs 1 --warmup 0)"
done
