#!/usr/bin/env bash
# Cross-compiles corio, its samples and its test suites for Windows x86-64 (mingw-w64, Asio's IOCP
# reactor) and runs them under Wine (Debian's wine64 8.0): the suites core, sched, time, channel,
# sync, cancel, net and io (stress tests at 10%), the plain-Asio reproduction of the Wine limit
# named below, and http_hello.exe serving curl and http_load.exe (README "Windows").
# Usage: tools/cross-windows.sh [--strict] [BUILD_DIR=build-windows]. Every wait is bounded.
# The build must succeed, and so must the suites that are green under Wine (channel, sync: the
# gating suites). Without --strict (CI) the suites core, io and net run too and are reported, and
# the others (sched, time, cancel: not green yet, README "Windows") are not run; --strict runs all
# eight and fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
strict=0
if [ "${1:-}" = "--strict" ]; then
  strict=1
  shift
fi
dir="${1:-build-windows}"
start=$(date +%s)
bash tools/deps.sh g++-mingw-w64-x86-64-posix file wine64 curl

# Asio, fmt and doctest headers from Debian, and nothing else of /usr/include (cross file comment).
mkdir -p "$dir/debian-headers"
for h in asio asio.hpp fmt doctest; do ln -sfn "/usr/include/$h" "$dir/debian-headers/$h"; done
printf "[built-in options]\ncpp_args = ['-idirafter', '%s']\n" "$PWD/$dir/debian-headers" >"$dir/debian-headers.ini"
setup=(--cross-file cross/x86_64-w64-mingw32.ini --cross-file "$dir/debian-headers.ini" -Dbuildtype=release
       -Dtests=auto -Dbenchmarks=disabled -Dstress_scale=10 --wrap-mode=nodownload)
if [ -f "$dir/build.ninja" ]; then
  meson setup --reconfigure "$dir" "${setup[@]}" >/dev/null
else
  meson setup "$dir" "${setup[@]}" >/dev/null
fi
ninja -C "$dir"
for exe in "$dir/samples/http_hello.exe" "$dir/samples/http_load.exe" "$dir/test/test_core.exe"; do
  file "$exe" | grep -q "PE32+ executable" || { echo "cross-windows: $exe is not a Windows executable" >&2; exit 1; }
done
x86_64-w64-mingw32-g++-posix -std=c++20 -O1 -DASIO_STANDALONE -D_WIN32_WINNT=0x0A00 \
  -idirafter "$PWD/$dir/debian-headers" test/wine_repro/accept_release.cpp -o "$dir/accept_release.exe" \
  -static -lws2_32 -lmswsock
echo "cross-windows: built in $(( $(date +%s) - start )) s"

# --- Wine ------------------------------------------------------------------------------------------
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
wineserver=$(command -v wineserver || echo /usr/lib/wine/wineserver)  # (Debian's is not on PATH)
export WINEPREFIX="$PWD/$dir/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
# The first start creates the prefix; wait for it (and its wineserver) to finish, bounded.
timeout 180 "$wine" wineboot -i >/dev/null 2>&1 || { echo "cross-windows: wineboot failed or timed out" >&2; exit 1; }
timeout 60 "$wineserver" -w || true
trap 'timeout 20 "$wineserver" -k >/dev/null 2>&1 || true' EXIT

# The Wine limit, shown by plain Asio: release() of a socket registered with a completion port.
if timeout 60 "$wine" "$dir/accept_release.exe"; then
  under_wine_release=works
else
  under_wine_release=fails
fi

# Test cases left out under Wine, each for a reason (README "Windows"):
#  W: Wine 8 cannot release a socket from a completion port (accept_release.exe above fails):
#     when Winsock reuses the number of a socket corio closed, the reactor's old Asio object for
#     it closes the new socket, so a test that closes sockets and opens new ones on one worker
#     sees EBADF. corio::signal waits (one socket each) are such tests.
#  P: on Windows, not ported yet: UDP (the Asio reactor has no recvmsg/sendmsg there), errno
#     mapping of reset and broken connections, thread counts and frame recycling across threads.
#  D: by design: unix_stream::pair (no socketpair on Windows), the io_uring fallback.
wine_excluded=(
  "*signal*"                                                               # W
  "*descriptor numbers reused*"                                            # W
  "shutdown with many suspended tasks*"                                    # W
  "I/O cancel: accept, recv and send blocked*"                             # W
  "*udp*" "*datagram*" "*multicast*"                                       # P
  "read_exact passes the stream's error on*"                               # P
  "write_all reports an error after a prefix*"                             # P
  "a read error in the middle of a line*"                                  # P
  "a failed flush keeps the unwritten bytes*"                              # P
  "a task that busy-loops 600 ms*" "with a stall threshold of 0*"          # P
  "frames freed on another thread*"                                        # P
  "*vectored*"                                                             # D
  "*io_uring failing*"                                                     # D
)
exclude=$(IFS=,; echo "${wine_excluded[*]}")

failed=0
gating_failed=0
passed_total=0
gating=" channel sync "
if [ "$strict" -eq 1 ]; then suites=(channel sync core io net sched time cancel); else suites=(channel sync core io net); fi
for suite in "${suites[@]}"; do
  log="$dir/wine-test-$suite.log"
  s=$(date +%s)
  rc=0
  limit=90  # a suite that is not green may hang under Wine: bounded, and shorter than a gating one's
  case "$gating" in *" $suite "*) limit=150 ;; esac
  timeout "$limit" "$wine" "$dir/test/test_$suite.exe" --test-case-exclude="$exclude" >"$log" 2>&1 || rc=$?
  summary=$(tr -d '\r' <"$log" | grep 'test cases:' || true)
  echo "cross-windows: test_$suite.exe under Wine: rc=$rc in $(( $(date +%s) - s )) s ${summary#*\]}"
  passed=$(echo "$summary" | sed -n 's/.*| *\([0-9]*\) passed.*/\1/p')
  passed_total=$(( passed_total + ${passed:-0} ))
  if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
    failed=1
    case "$gating" in *" $suite "*) gating_failed=1 ;; esac
    { tr -d '\r' <"$log" | grep -v '^ \{2,\}\|^0x' | tail -40; } || true  # (an empty log is no error here)
  fi
done

# --- http_hello.exe under Wine, curl and http_load.exe against it -----------------------------------
log="$dir/wine-http_hello.log"
"$wine" "$dir/samples/http_hello.exe" --port 0 --workers 2 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; timeout 20 "$wineserver" -k >/dev/null 2>&1 || true' EXIT
port=""
for _ in $(seq 1 300); do
  port=$(tr -d '\r' <"$log" | sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p')
  [ -n "$port" ] && break
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "cross-windows: http_hello.exe did not start:" >&2
  cat "$log" >&2
  failed=1
else
  body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/" || true)
  if [ "$body" = "Hello, World!" ]; then
    echo "cross-windows: curl got 'Hello, World!' from http_hello.exe under Wine"
  else
    echo "cross-windows: curl got '$body' from http_hello.exe" >&2
    failed=1
  fi
  load_log="$dir/wine-http_load.log"
  timeout 60 "$wine" "$dir/samples/http_load.exe" --port "$port" --connections 4 --seconds 2 --workers 1 \
    >"$load_log" 2>&1 || true
  tr -d '\r' <"$load_log" | tail -3
  requests=$(tr -d '\r' <"$load_log" | sed -n 's/.* \([0-9][0-9]*\) requests.*/\1/p' | tail -1)
  if [ "${requests:-0}" -gt 0 ]; then
    echo "cross-windows: http_load.exe under Wine completed $requests requests against http_hello.exe"
  else
    echo "cross-windows: http_load.exe completed no request" >&2
    failed=1
  fi
fi

echo "cross-windows: $passed_total test cases passed under Wine; release() of a socket under Wine: $under_wine_release;" \
     "$(( $(date +%s) - start )) s in all"
if [ "$gating_failed" -ne 0 ]; then
  echo "cross-windows: a gating suite (channel, sync) failed under Wine" >&2
  exit 1
fi
if [ "$failed" -ne 0 ] && [ "$strict" -eq 0 ]; then
  echo "cross-windows: the Wine run has failures (above) outside the gating suites; not fatal without --strict"
  exit 0
fi
exit "$failed"
