#!/usr/bin/env bash
# Builds the libFuzzer targets of test/fuzz/ and runs each for a while on a copy of its seed
# corpus. Usage: tools/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  how long each target runs (default 60)
#   TARGET   http_request, channel_model, resp (default: all three)
#
# The build (build-fuzz/) is clang++-16 with ASan + UBSan on everything, -fsanitize=fuzzer-no-link
# on everything (coverage for the library too) and -fsanitize=fuzzer on the targets (meson option
# `fuzz`). Each target starts from a temporary copy of test/fuzz/corpus/<target>/, so the tree's
# corpus never grows here; to add a seed, copy a small input into that folder by hand. A run
# fails on a crash (a failed check aborts with a message), a sanitizer report, a leak or a hang
# (-timeout=10: any input that takes 10 s); the script then exits non-zero and names the
# input libFuzzer wrote, under build-fuzz/fuzz-findings/<target>/.
#
# Reproducing a finding and making it a test:
#   build-fuzz/test/fuzz/http_request_fuzz FILE       runs one input once and says which check
#                                                     failed (libFuzzer also prints it in base64);
#                                                     resp_fuzz FILE the same
#   CHANNEL_MODEL_PRINT=1 build-fuzz/test/fuzz/channel_model_fuzz FILE
#                                                     the same, printing the decoded program (the
#                                                     tasks' operations and the driver's steps)
#   build-fuzz/test/fuzz/channel_model_fuzz -runs=200 FILE   runs it 200 times: a program on 2
#                                                     workers may fail only in some interleavings
#   build-fuzz/test/fuzz/<target>_fuzz -minimize_crash=1 -runs=10000 FILE   a smaller input
# The input formats are described at the top of each target's source. Write the regression test
# in the suite of the code that failed (test/http_parser_tests.cpp or http_server_tests.cpp for
# the HTTP target; test/resp_parser_tests.cpp for the RESP one; test/channel_tests.cpp or
# cancel_tests.cpp for the channel model, or runtime_tests.cpp when a scheduler invariant breaks, as the first finding did), see it fail,
# fix, and add the input to the target's corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -ne 0 ] || targets=(http_request channel_model resp)
# Per target: the largest input, and whether libFuzzer grows inputs slowly (len_control): the
# channel programs are short byte strings whose interesting cases are long ones from the start.
declare -A max_len=([http_request]=20000 [channel_model]=160 [resp]=4096)
declare -A len_control=([http_request]=100 [channel_model]=0 [resp]=100)
for t in "${targets[@]}"; do
  if [ -z "${max_len[$t]:-}" ]; then
    echo "usage: tools/fuzz.sh [SECONDS] [http_request|channel_model|resp]..." >&2
    exit 2
  fi
done

bash tools/deps.sh clang-16 libclang-rt-16-dev
export CXX=clang++-16 CC=clang-16
dir=build-fuzz
setup=(--wrap-mode=nodownload -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
       -Dcpp_args=-fsanitize=fuzzer-no-link -Dfuzz=enabled -Dtests=disabled -Dsamples=disabled
       -Dbenchmarks=disabled)
if [ -d "$dir" ]; then
  meson setup --reconfigure "$dir" "${setup[@]}" >/dev/null
else
  meson setup "$dir" "${setup[@]}" >/dev/null
fi
ninja -C "$dir"

# UBSan reports become crashes; ASan aborts (libFuzzer then writes the input); leaks are checked.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}"
# Stacks with function names and lines (the sanitizers do not find Debian's symbolizer alone).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH="$(command -v llvm-symbolizer)"
fi
passed=0
failed=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  corpus="$work/$t"
  findings="$dir/fuzz-findings/$t"
  mkdir -p "$corpus" "$findings"
  cp test/fuzz/corpus/"$t"/* "$corpus"/
  echo "fuzz: $t for ${seconds} s (seeds: $(ls "$corpus" | wc -l))"
  status=0
  # libFuzzer stops itself after SECONDS (and on a 10 s input); `timeout` is the backstop.
  timeout -k 10 $((seconds + 120)) "$dir/test/fuzz/${t}_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len="${max_len[$t]}" -len_control="${len_control[$t]}" -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" \
    >"$dir/fuzz-$t.log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$dir/fuzz-$t.log" || true
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "fuzz: $t FAILED (exit $status); what it reported ($dir/fuzz-$t.log):" >&2
    grep -E '_fuzz: |invariant|runtime error|ERROR|SUMMARY' "$dir/fuzz-$t.log" | head -n 20 >&2 || true
    echo "fuzz: the end of the log:" >&2
    grep -v -E '^#[0-9]+' "$dir/fuzz-$t.log" | tail -n 60 >&2
    echo "fuzz: inputs written: $(ls "$findings" | sed "s|^|$findings/|" | tr '\n' ' ')" >&2
  fi
done
echo "$passed $failed 0" >"$dir/test-counts"
echo "fuzz: ${seconds} s per target:"
echo "tests: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
