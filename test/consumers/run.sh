#!/usr/bin/env bash
# test/consumers/run.sh: builds test/consumers/main.cpp against corio the five ways a user consumes it,
# and runs each program (it exits 0 when its TCP echo and channel counts match):
#   a. subproject: a Meson project with subprojects/corio a link to this tree;
#   b. wrap-file:  the same project with subprojects/corio.wrap (packaging/wrapdb/corio.wrap, its
#                  source_hash set to the tarball's) over a `meson dist` tarball in
#                  subprojects/packagecache, configured with --wrap-mode=nodownload;
#   c. pkg-config static: g++ with `pkg-config --cflags --libs --static corio` on a static install;
#   d. pkg-config shared: the same without --static on a shared install, run with LD_LIBRARY_PATH;
#   e. CMake: find_package(corio 0.2) (test/consumers/CMakeLists.txt) on each of the two installs.
# One corio build per library kind (tests, samples and benchmarks off), installed to a prefix of
# its own. `meson dist` packs the last commit: uncommitted changes are not in the tarball of b.
# Every step has a time limit; everything lives under BUILD_DIR (default build-consumers), which
# is emptied first. Usage: test/consumers/run.sh [BUILD_DIR]
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$src/build-consumers}"
if [ -e "$out" ] && [ ! -e "$out/.corio-consumers" ]; then
  echo "run.sh: $out exists and is not a directory this script made: not touching it" >&2
  exit 2
fi
rm -rf "$out"
mkdir -p "$out"
touch "$out/.corio-consumers"
out="$(cd "$out" && pwd)"
log="$out/log"
mkdir -p "$log"
export CXX="${CXX:-g++}"
start=$(date +%s)

# Runs a step quietly into its log file; on failure shows the log's end and stops.
step() {
  local name=$1 limit=$2
  shift 2
  if ! timeout --kill-after=10 "$limit" "$@" >"$log/$name.log" 2>&1; then
    tail -n 40 "$log/$name.log" >&2
    echo "run.sh: step $name failed (or took more than $limit s): $log/$name.log" >&2
    exit 1
  fi
}

# Runs a built consumer (bounded) and checks its answer.
run_consumer() {
  local way=$1
  shift
  if ! timeout --kill-after=5 60 "$@" >"$log/run-$way.log" 2>&1; then
    cat "$log/run-$way.log" >&2
    echo "run.sh: the consumer built by $way failed" >&2
    exit 1
  fi
  echo "  $way: $(cat "$log/run-$way.log")"
}

corio_options=(--wrap-mode=nodownload -Dbuildtype=release -Dtests=disabled -Dbenchmarks=disabled
               -Dsamples=disabled)
for kind in static shared; do
  step "corio-$kind-setup" 300 meson setup "$out/corio-$kind" "$src" "${corio_options[@]}" \
    -Ddefault_library=$kind --prefix="$out/prefix-$kind" --fatal-meson-warnings
  step "corio-$kind-build" 900 ninja -C "$out/corio-$kind"
  step "corio-$kind-install" 120 meson install -C "$out/corio-$kind" --quiet
done
echo "corio built and installed (static, shared): $(( $(date +%s) - start )) s"

# a. Subproject: corio's tree linked into subprojects/.
mkdir -p "$out/subproject/subprojects"
cp "$src/test/consumers/meson.build" "$src/test/consumers/main.cpp" "$out/subproject/"
ln -s "$src" "$out/subproject/subprojects/corio"
step subproject-setup 300 meson setup "$out/subproject/build" "$out/subproject" --wrap-mode=nodownload \
  -Dbuildtype=release --fatal-meson-warnings
step subproject-build 900 ninja -C "$out/subproject/build"
run_consumer subproject "$out/subproject/build/consumer"

# b. [wrap-file] over a `meson dist` tarball, nothing downloaded.
step dist 300 meson dist -C "$out/corio-static" --no-tests --formats gztar --allow-dirty
version=$(meson introspect --projectinfo "$out/corio-static" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
tarball="$out/corio-static/meson-dist/corio-$version.tar.gz"
hash=$(sha256sum "$tarball" | cut -d' ' -f1)
mkdir -p "$out/wrap/subprojects/packagecache"
cp "$src/test/consumers/meson.build" "$src/test/consumers/main.cpp" "$out/wrap/"
cp "$tarball" "$out/wrap/subprojects/packagecache/"
sed "s/^source_hash = .*/source_hash = $hash/" "$src/packaging/wrapdb/corio.wrap" >"$out/wrap/subprojects/corio.wrap"
grep -q "^source_filename = corio-$version.tar.gz$" "$out/wrap/subprojects/corio.wrap" || {
  echo "run.sh: packaging/wrapdb/corio.wrap does not name corio-$version.tar.gz" >&2
  exit 1
}
step wrap-setup 300 meson setup "$out/wrap/build" "$out/wrap" --wrap-mode=nodownload -Dbuildtype=release \
  --fatal-meson-warnings
step wrap-build 900 ninja -C "$out/wrap/build"
[ -f "$out/wrap/subprojects/corio-$version/meson.build" ] || {
  echo "run.sh: the wrap did not unpack corio-$version" >&2
  exit 1
}
run_consumer wrap-file "$out/wrap/build/consumer"

# c and d. pkg-config on the static and the shared install.
pc_dir() { dirname "$(find "$out/prefix-$1" -name corio.pc | head -n 1)"; }
static_flags=$(PKG_CONFIG_PATH="$(pc_dir static)" pkg-config --cflags --libs --static corio)
step pkg-config-static-build 300 $CXX -std=c++20 -O2 -Wall -Wextra -Werror "$src/test/consumers/main.cpp" \
  -o "$out/consumer-pkg-config-static" $static_flags
if ldd "$out/consumer-pkg-config-static" | grep -q libcorio; then
  echo "run.sh: the static consumer loads a libcorio" >&2
  exit 1
fi
run_consumer pkg-config-static "$out/consumer-pkg-config-static"
shared_flags=$(PKG_CONFIG_PATH="$(pc_dir shared)" pkg-config --cflags --libs corio)
step pkg-config-shared-build 300 $CXX -std=c++20 -O2 -Wall -Wextra -Werror "$src/test/consumers/main.cpp" \
  -o "$out/consumer-pkg-config-shared" $shared_flags
shared_libdir=$(dirname "$(find "$out/prefix-shared" -name 'libcorio.so' | head -n 1)")
LD_LIBRARY_PATH="$shared_libdir" ldd "$out/consumer-pkg-config-shared" | grep -q "libcorio.so.* => $shared_libdir/" || {
  echo "run.sh: the shared consumer does not load $shared_libdir/libcorio.so" >&2
  exit 1
}
LD_LIBRARY_PATH="$shared_libdir" run_consumer pkg-config-shared "$out/consumer-pkg-config-shared"

# e. CMake find_package(corio 0.2) on each install.
for kind in static shared; do
  step "cmake-$kind-configure" 120 cmake -S "$src/test/consumers" -B "$out/cmake-$kind" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$out/prefix-$kind" -DCMAKE_COMPILE_WARNING_AS_ERROR=ON
  step "cmake-$kind-build" 300 cmake --build "$out/cmake-$kind"
  if [ "$kind" = shared ]; then
    LD_LIBRARY_PATH="$shared_libdir" run_consumer "cmake-$kind" "$out/cmake-$kind/consumer"
  else
    run_consumer "cmake-$kind" "$out/cmake-$kind/consumer"
  fi
done
echo "consumers: subproject, wrap-file, pkg-config static and shared, CMake static and shared built and run in $(( $(date +%s) - start )) s"
