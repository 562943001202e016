#!/usr/bin/env bash
# test/mixed_builds.sh: builds test/mixed_build_program.cpp with another compiler than the
# library's, unoptimized (-O0) and optimized (-O2), links each build with every library given and
# runs it. A hang fails after 60 s (timeout), a crash or a wrong result fails at once.
#
# usage: mixed_builds.sh CXX SOURCE_ROOT WORK_DIR PKG_CONFIG_PACKAGES LIBRARY...
#   CXX: the compiler to build the program with (skipped, exit 77, when it is not installed)
#   PKG_CONFIG_PACKAGES: what the libraries link against, e.g. "fmt liburing"
set -euo pipefail
cxx=$1 src=$2 work=$3 pkgs=$4
shift 4
if ! command -v "$cxx" >/dev/null; then
  echo "mixed_builds: $cxx is not installed: skipped"
  exit 77
fi
# shellcheck disable=SC2086
libs=$(pkg-config --libs $pkgs) || { echo "mixed_builds: pkg-config knows no $pkgs: skipped"; exit 77; }
mkdir -p "$work"
flags=(-std=c++20 -I"$src/include" -pthread)
# Both levels at once: the machine's cores are shared by the tests' own builds only.
"$cxx" "${flags[@]}" -O0 -c "$src/test/mixed_build_program.cpp" -o "$work/program_O0.o" &
"$cxx" "${flags[@]}" -O2 -c "$src/test/mixed_build_program.cpp" -o "$work/program_O2.o" &
wait %1 && wait %2
status=0
for level in O0 O2; do
  n=0
  for lib in "$@"; do
    n=$((n + 1))
    exe="$work/program_${level}_lib$n"
    # shellcheck disable=SC2086
    "$cxx" -pthread "$work/program_$level.o" "$lib" $libs -o "$exe"
    echo "== $cxx -$level against $lib"
    rc=0
    LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout 60 "$exe" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "FAILED: $cxx -$level against $lib: exit status $rc$([ "$rc" -eq 124 ] && echo ' (hung)')"
      status=1
    fi
  done
done
exit "$status"
