#!/usr/bin/env bash
# Builds corio and runs its whole test suite. Usage: tools/test.sh [release|clang|asan|tsan|lto|fuzz]
#   release (default): g++, optimized, every suite.
#   clang: clang++-16, optimized, every suite (and the benchmarks and samples built with clang).
#   asan:  g++ -O0 with AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer included),
#          stress tests at 10% of their iterations, and fault injection compiled in (meson option
#          fault_injection: the "faults" suite runs too).
#   tsan:  clang++-16 -O2 -g with ThreadSanitizer, stress tests at 10%.
#   lto:   g++, optimized with link-time optimization (b_lto), every suite: the fast paths lean on
#          inline asm naming symbols of the library, which LTO must keep.
#   fuzz:  the libFuzzer targets, 60 s each (tools/fuzz.sh [SECONDS] [TARGET...] for more).
# Ends with one line "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-release}"
common=(--wrap-mode=nodownload)
case "$mode" in
  release)
    bash tools/deps.sh
    dir=build-release
    setup=(-Dbuildtype=release)
    ;;
  asan)
    bash tools/deps.sh
    dir=build-asan
    setup=(-Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false -Dstress_scale=10
           -Dbenchmarks=disabled -Dfault_injection=true)
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    ;;
  clang)
    bash tools/deps.sh clang-16
    dir=build-clang
    setup=(-Dbuildtype=release)
    export CXX=clang++-16 CC=clang-16
    ;;
  tsan)
    bash tools/deps.sh clang-16 libclang-rt-16-dev
    dir=build-tsan
    setup=(-Dbuildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false -Dstress_scale=10
           -Dbenchmarks=disabled)
    export CXX=clang++-16 CC=clang-16
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
    ;;
  lto)
    bash tools/deps.sh
    dir=build-lto
    # -Wno-odr: GCC 12 reports the coroutine frames of one template instantiated in two files as
    # ODR violations (their compiler-made field names differ); they are the same type.
    setup=(-Dbuildtype=release -Db_lto=true -Dbenchmarks=disabled -Dcpp_link_args=-Wno-odr)
    ;;
  fuzz)
    exec bash tools/fuzz.sh 60
    ;;
  *)
    echo "usage: tools/test.sh [release|clang|asan|tsan|lto|fuzz]" >&2
    exit 2
    ;;
esac
if [ -d "$dir" ]; then
  meson setup --reconfigure "$dir" "${common[@]}" "${setup[@]}" >/dev/null
else
  meson setup "$dir" "${common[@]}" "${setup[@]}" >/dev/null
fi
ninja -C "$dir"
status=0
# Once on the reactor the runtime picks (io_uring here), once on Asio (CORIO_BACKEND=asio).
meson test -C "$dir" --print-errorlogs --num-processes 1 || status=$?
cp "$dir/meson-logs/testlog.json" "$dir/testlog-default.json"
meson test -C "$dir" --setup asio --print-errorlogs --num-processes 1 || status=$?
python3 - "$mode" "$dir/test-counts" "$dir/testlog-default.json" "$dir/meson-logs/testlog-asio.json" <<'PY' || true
import json, sys
counts = {"passed": 0, "failed": 0, "skipped": 0}
for log in sys.argv[3:]:
    for line in open(log):
        r = json.loads(line)["result"]
        # EXPECTEDFAIL: a test that must fail did (broken_invariant_aborts), which is a pass.
        counts["passed" if r in ("OK", "EXPECTEDFAIL") else "skipped" if r == "SKIP" else "failed"] += 1
open(sys.argv[2], "w").write(f"{counts['passed']} {counts['failed']} {counts['skipped']}\n")
print(f"mode {sys.argv[1]} (default reactor, then asio):")
print(f"tests: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
PY
exit "$status"
