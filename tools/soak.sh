#!/usr/bin/env bash
# Soak: samples/http_hello under samples/http_load with many keep-alive connections for a while.
# Usage: tools/soak.sh [SECONDS=120] [CONNECTIONS=15000]
#
# Builds the two samples (release, build-release), starts http_hello (2 workers, 127.0.0.1) and
# drives it with http_load: CONNECTIONS connections bound in turn to the source addresses
# 127.0.0.2-127.0.0.5 (the loopback port range is per source address), opened at CONNECT_RATE a
# second, sending RATE requests a second in all (each connection one request every
# CONNECTIONS/RATE seconds), then WARMUP seconds of load, then the measured SECONDS. The server's
# RSS (/proc/PID/status VmRSS) and descriptor count are read before the connections, when the
# measured phase begins (after the warm-up) and every second until it ends; after the load generator closed
# every connection, the server's descriptor count must come back to where it was.
#
# Environment: RATE (default 5000), CONNECT_RATE (3000), WARMUP (SECONDS/4, at most 10),
# SOURCES (127.0.0.2-127.0.0.5), CORIO_BACKEND (passed to both programs: uring, asio).
#
# Exits 1 when any request failed or got an answer other than 200, any connection was lost (not
# open at the end), the server's RSS grew by 5% or more during the measured phase, the server
# exited, printed anything unexpected, or kept descriptors after the connections closed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
connections="${2:-15000}"
rate="${RATE:-5000}"
connect_rate="${CONNECT_RATE:-3000}"
warmup="${WARMUP:-$(( seconds / 4 < 10 ? seconds / 4 : 10 ))}"
sources="${SOURCES:-127.0.0.2-127.0.0.5}"

for n in "$seconds" "$connections" "$rate" "$connect_rate"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "soak: SECONDS, CONNECTIONS, RATE and CONNECT_RATE must be positive integers" >&2; exit 2; }
done
# Each connection needs a request at least every 60 s (http_hello's keep-alive timeout).
if [ $(( connections / rate )) -ge 30 ]; then
  echo "soak: RATE=$rate is too low for $connections connections (one request per connection every 30 s at least)" >&2
  exit 2
fi
# Each process needs a descriptor per connection, and a few more.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $(( connections + 64 )) ]; then
  echo "soak: $connections connections need $(( connections + 64 )) descriptors per process; the limit is $(ulimit -n)" >&2
  exit 2
fi

dir=build-release
source tools/start_http_hello.sh
build_http_samples "$dir"
start_http_hello "$dir/samples/http_hello"
port=$server_port
load_log=$(mktemp)
load_pid=""
cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$server_log" "$load_log"
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
fds() { { ls "/proc/$server_pid/fd" 2>/dev/null || true; } | wc -l; }
# Waits (at most $2 seconds) until the load generator prints line $1; false if it ended first.
wait_for_line() {
  for _ in $(seq 1 $(( $2 * 10 ))); do
    grep -q "^http_load: $1\$" "$load_log" && return 0
    kill -0 "$load_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

rss_idle=$(rss_kb)
fds_idle=$(fds)
echo "soak: http_hello (2 workers, pid $server_pid) on 127.0.0.1:$port; $connections connections from $sources," \
     "$connect_rate/s, $rate requests/s, ${warmup} s warm-up, ${seconds} s measured"
"$dir/samples/http_load" --port "$port" --connections "$connections" --sources "$sources" \
  --connect-rate "$connect_rate" --rate "$rate" --warmup "$warmup" --seconds "$seconds" >"$load_log" 2>&1 &
load_pid=$!

ramp_limit=$(( connections / connect_rate + 30 ))
if ! wait_for_line "measured phase begins" $(( ramp_limit + warmup + 10 )); then
  echo "soak: the measured phase did not begin"; cat "$load_log"; exit 1
fi
rss_warm=$(rss_kb)
fds_warm=$(fds)
# Every second during the measured phase: the RSS and descriptors. A sample counts only when the
# load generator had not yet announced the end when it was taken: it prints that line before its
# connections begin to close, so the last such sample (at most about a second before the end) still
# sees every connection open.
rss_end=$rss_warm
fds_end=$fds_warm
rss_max=$rss_warm
for _ in $(seq 1 $(( seconds + 60 ))); do
  r=$(rss_kb)
  f=$(fds)
  grep -q "^http_load: measured phase ends\$" "$load_log" && break
  rss_end=$r
  fds_end=$f
  [ "$r" -gt "$rss_max" ] && rss_max=$r
  kill -0 "$load_pid" 2>/dev/null || break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 1
done
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "soak: http_hello exited during the run:"; cat "$server_log"; cat "$load_log"; exit 1
fi
load_rc=0
wait "$load_pid" || load_rc=$?
load_pid=""
cat "$load_log"

# Once the client closed its connections the server closes its sides: its descriptor count
# comes back to the idle count (at most 20 s).
fds_after=$(fds)
for _ in $(seq 1 200); do
  [ "$fds_after" -le "$fds_idle" ] && break
  sleep 0.1
  fds_after=$(fds)
done

read -r m_requests m_errors m_non200 m_closed p50 p99 max < <(awk '$1 == "measured" {print $3, $4, $5, $6, $7, $8, $9}' "$load_log" || true)
open_line=$(grep '^connections open at the end:' "$load_log" || true)
errors=$(sed -n 's/^requests: [0-9]*  errors: \([0-9]*\)  non-200: \([0-9]*\)  closed by the server: \([0-9]*\)$/\1 \2 \3/p' "$load_log")
growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN {printf "%.2f", (b - a) * 100 / a}')
per_connection=$(awk -v a="$rss_idle" -v b="$rss_warm" -v c="$connections" 'BEGIN {printf "%.1f", (b - a) / c}')
echo "soak: measured ${seconds} s: $m_requests requests, errors $m_errors, non-200 $m_non200, closed $m_closed;" \
     "latency us p50 $p50 p99 $p99 max $max"
echo "soak: server RSS idle $rss_idle kB, after warm-up $rss_warm kB, end $rss_end kB (growth $growth%," \
     "highest $rss_max kB); $per_connection kB per connection"
echo "soak: server descriptors idle $fds_idle, after warm-up $fds_warm, end $fds_end, after the close $fds_after"

status=0
fail() { echo "soak: FAIL: $*"; status=1; }
[ "$load_rc" -eq 0 ] || fail "http_load exited with $load_rc"
[ "$errors" = "0 0 0" ] || fail "errors, non-200 answers or closed connections (errors non-200 closed: $errors)"
[ "$open_line" = "connections open at the end: $connections of $connections" ] || fail "connections lost: $open_line"
awk -v g="$growth" 'BEGIN {exit !(g < 5)}' || fail "the server's RSS grew by $growth% (5% allowed)"
[ "$fds_warm" -ge "$connections" ] || fail "the server held $fds_warm descriptors for $connections connections"
[ "$fds_after" -le "$fds_idle" ] || fail "the server kept $fds_after descriptors after the connections closed ($fds_idle idle)"
kill -0 "$server_pid" 2>/dev/null || fail "http_hello exited"
unexpected=$(grep -v -e '^listening on ' -e '^http_hello: [0-9]* workers on ' "$server_log" || true)
[ -z "$unexpected" ] || fail "http_hello printed: $unexpected"
[ "$status" -eq 0 ] && echo "soak: passed"
exit "$status"
