#!/usr/bin/env bash
# End-to-end graceful shutdown: SIGTERM to http_hello while http_load drives it. http_hello must
# exit 0 within a bounded time, and every answer http_load got must be whole (no error, no
# truncated answer; connections the server closed between answers are fine).
# Usage: http_hello_sigterm.sh PATH/TO/http_hello PATH/TO/http_load
set -euo pipefail
server="$1"
load="$2"
source "$(dirname "$0")/../tools/start_http_hello.sh"
start_http_hello "$server"
port=$server_port
load_log=$(mktemp)
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$server_log" "$load_log"' EXIT
"$load" --port "$port" --connections 32 --seconds 4 >"$load_log" 2>&1 &
load_pid=$!
sleep 1.5
kill -TERM "$server_pid"
server_rc=0
for _ in $(seq 1 200); do  # at most 20 s
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$server_pid" 2>/dev/null; then
  echo "http_hello did not exit within 20 s of SIGTERM"; cat "$server_log"; exit 1
fi
wait "$server_pid" || server_rc=$?
load_rc=0
wait "$load_pid" || load_rc=$?
cat "$load_log"
grep -q "stopped" "$server_log" || { echo "http_hello did not report its shutdown:"; cat "$server_log"; exit 1; }
[ "$server_rc" -eq 0 ] || { echo "http_hello exited with $server_rc"; cat "$server_log"; exit 1; }
[ "$load_rc" -eq 0 ] || { echo "http_load saw errors ($load_rc)"; exit 1; }
grep -q "errors: 0  non-200: 0" "$load_log" || { echo "http_load saw errors"; exit 1; }
echo "http_hello drained and exited 0 on SIGTERM; every answer was whole"
