#!/usr/bin/env bash
# Cross-compiles corio and its samples for Windows x86-64 (mingw-w64, Asio's IOCP reactor) and
# checks that the results are Windows executables. No Windows run happens here: this proves the
# portable build (DESIGN.md, "Reactors"). Usage: tools/cross-windows.sh [BUILD_DIR=build-windows]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-build-windows}"
bash tools/deps.sh g++-mingw-w64-x86-64-posix file
setup=(--cross-file cross/x86_64-w64-mingw32.ini -Dbuildtype=release -Dtests=disabled -Dbenchmarks=disabled --wrap-mode=nodownload)
if [ -d "$dir" ]; then
  meson setup --reconfigure "$dir" "${setup[@]}" >/dev/null
else
  meson setup "$dir" "${setup[@]}" >/dev/null
fi
ninja -C "$dir"
for exe in "$dir/samples/http_hello.exe" "$dir/samples/http_load.exe"; do
  file "$exe" | grep -q "PE32+ executable" || { echo "cross-windows: $exe is not a Windows executable" >&2; exit 1; }
done
echo "cross-windows: corio and its samples built for Windows x86-64 in $dir"
