#!/usr/bin/env bash
# http_compare.sh: corio's samples/http_hello, on io_uring and on corio's Asio reactor
# (CORIO_BACKEND=asio), against its same-run peer (plain Asio, C++20 coroutines,
# benchmarks/peers/asio_http_hello.cpp) under the same wrk load, one server after the other.
#
# usage: benchmarks/http_compare.sh [BUILD_DIR=build-release] [DURATION_SECONDS=5]
#
# For each server: start it (bound to 127.0.0.1 only), wait until it answers HTTP (at most 10 s),
# sample its CPU time (utime+stime from /proc/PID/stat), run
#   wrk -t1 -c64 -dDURs --latency http://127.0.0.1:PORT/
# sample the CPU time again, then stop it (SIGTERM, SIGKILL after 3 s). Prints a markdown table
# (req/s, server CPU µs per request, p50/p99 latency), the corio/asio and corio-asio/asio req/s
# ratios, the exact
# commands and the machine. Any socket error, non-2xx/3xx response, server that does not start
# or dies during the run makes the script print FAIL and exit non-zero.
#
# Environment overrides:
#   CORIO_PORT (18080), ASIO_PORT (18081), CORIO_ASIO_PORT (18082)   ports on 127.0.0.1
#   CORIO_SERVER_CMD, ASIO_SERVER_CMD       replace a server's whole command line; "{port}" is
#       replaced by that server's port. Split on whitespace (no shell quoting), and it must exec
#       the server itself (no shell wrapper), since the CPU time is read from its PID. Example,
#       to exercise the script with the Asio peer in both slots:
#       CORIO_SERVER_CMD='build-release/benchmarks/peers/asio_http_hello --port {port} --threads 2'
#   WRK_THREADS (1), WRK_CONNECTIONS (64)   the wrk load (keep the defaults for reported figures)
set -euo pipefail

BUILD=${1:-build-release}
DUR=${2:-5}
CORIO_PORT=${CORIO_PORT:-18080}
ASIO_PORT=${ASIO_PORT:-18081}
CORIO_ASIO_PORT=${CORIO_ASIO_PORT:-18082}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-64}
READY_TIMEOUT_S=10  # how long a server gets to start answering
STOP_GRACE_S=3      # SIGTERM -> SIGKILL delay

die() { echo "http_compare: error: $*" >&2; exit 2; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
if ! is_uint "$DUR" || (( DUR == 0 )); then
  die "duration must be a positive integer (seconds), got '$DUR'"
fi
for p in "$CORIO_PORT" "$ASIO_PORT" "$CORIO_ASIO_PORT"; do
  if ! is_uint "$p" || (( p == 0 || p > 65535 )); then die "bad port '$p'"; fi
done
[[ $CORIO_PORT != "$ASIO_PORT" && $CORIO_PORT != "$CORIO_ASIO_PORT" && $ASIO_PORT != "$CORIO_ASIO_PORT" ]] ||
  die "CORIO_PORT, ASIO_PORT and CORIO_ASIO_PORT must differ"
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found"

CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/http_compare.XXXXXX")

# --- cleanup: never leave a server running ----------------------------------------------------
SERVER_PIDS=()
WRK_PID=""
cleanup() {
  local pid
  if [[ -n $WRK_PID ]] && kill -0 "$WRK_PID" 2>/dev/null; then
    kill -TERM "$WRK_PID" 2>/dev/null || true
    wait "$WRK_PID" 2>/dev/null || true
  fi
  for pid in "${SERVER_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints utime+stime (all threads) of PID, in clock ticks. Field 2 (comm) may contain spaces and
# parentheses, so split after the last ')': the remaining fields start at field 3 (state).
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat") || return 1
  rest=${stat##*) }
  local -a f
  read -r -a f <<<"$rest"
  echo $(( f[11] + f[12] ))  # fields 14 (utime) and 15 (stime)
}

# Converts a wrk duration ("514.00us", "3.28ms", "1.02s", "2.00m") to microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/)      { sub(/us$/, "", v); printf "%.0f", v }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.0f", v * 1000 }
    else if (v ~ /m$/)  { sub(/m$/, "", v);  printf "%.0f", v * 60000000 }
    else if (v ~ /s$/)  { sub(/s$/, "", v);  printf "%.0f", v * 1000000 }
    else                { printf "?" }
  }'
}

# Stops PID: SIGTERM, up to STOP_GRACE_S seconds (bounded polling), then SIGKILL; always reaps.
stop_server() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < STOP_GRACE_S * 10; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "http_compare: $pid ignored SIGTERM for ${STOP_GRACE_S}s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Results, indexed by server name.
declare -A RPS CPU_US P50 P99 STATUS WRK_CMD SRV_CMD
ORDER=()
ANY_FAIL=0

fail() {  # fail NAME REASON (reasons accumulate)
  if [[ ${STATUS[$1]} == ok ]]; then STATUS[$1]="FAIL: $2"; else STATUS[$1]+="; $2"; fi
  ANY_FAIL=1
  echo "http_compare: FAIL [$1]: $2" >&2
}

# run_one NAME PORT COMMAND-STRING
run_one() {
  local name=$1 port=$2 cmd=${3//\{port\}/$2}
  local url="http://127.0.0.1:${port}/"
  local log="$WORK/$name.server.log" out="$WORK/$name.wrk.txt"
  local -a argv
  read -r -a argv <<<"$cmd"
  ORDER+=("$name")
  RPS[$name]="-"; CPU_US[$name]="-"; P50[$name]="-"; P99[$name]="-"; STATUS[$name]="ok"
  SRV_CMD[$name]="$cmd"
  WRK_CMD[$name]="wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} -d${DUR}s --latency $url"

  if (( ${#argv[@]} == 0 )) || ! command -v "${argv[0]}" >/dev/null; then
    fail "$name" "server binary '${argv[0]:-}' not found or not executable (build with: ninja -C $BUILD)"
    return 0
  fi
  if curl -s -o /dev/null --max-time 1 "$url"; then
    fail "$name" "something already answers on $url; pick another port (CORIO_PORT/ASIO_PORT)"
    return 0
  fi

  echo "== $name: $cmd" >&2
  "${argv[@]}" >"$log" 2>&1 &
  local pid=$!
  SERVER_PIDS+=("$pid")

  # Wait until it answers: at most READY_TIMEOUT_S seconds and 10 tries a second.
  local i ready=0 deadline=$(( SECONDS + READY_TIMEOUT_S ))
  for (( i = 0; i < READY_TIMEOUT_S * 10 && SECONDS < deadline; i++ )); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if curl -s -o /dev/null --max-time 1 "$url"; then ready=1; break; fi
    sleep 0.1
  done
  if (( ! ready )); then
    if kill -0 "$pid" 2>/dev/null; then
      fail "$name" "no answer on $url within ${READY_TIMEOUT_S}s"
    else
      fail "$name" "server exited before answering on $url"
    fi
    echo "--- $name server log (tail):" >&2
    tail -n 20 "$log" >&2 || true
    stop_server "$pid"
    return 0
  fi

  local t0 t1 wrk_rc=0
  t0=$(cpu_ticks "$pid" 2>/dev/null) || t0=0
  # wrk runs in the background and is waited for, so an INT/TERM trap fires at once (bash defers
  # traps while a foreground child runs) and cleanup can stop wrk as well.
  # shellcheck disable=SC2086
  ${WRK_CMD[$name]} >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || wrk_rc=$?
  WRK_PID=""
  if ! t1=$(cpu_ticks "$pid" 2>/dev/null); then
    t1=""
  fi
  echo "--- $name: ${WRK_CMD[$name]}" >&2
  cat "$out" >&2

  if [[ -z $t1 ]] || ! kill -0 "$pid" 2>/dev/null; then
    fail "$name" "server died during the wrk run"
    echo "--- $name server log (tail):" >&2
    tail -n 20 "$log" >&2 || true
  fi
  stop_server "$pid"

  (( wrk_rc == 0 )) || fail "$name" "wrk exited with status $wrk_rc"

  local rps requests sock non2xx p50 p99
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  requests=$(awk '/ requests in / { print $1 }' "$out")
  sock=$(grep -m1 'Socket errors:' "$out" || true)
  non2xx=$(awk -F: '/Non-2xx or 3xx responses:/ { gsub(/ /, "", $2); print $2 }' "$out")
  p50=$(awk '$1 == "50%" { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")

  if [[ -n $sock ]]; then
    # "Socket errors: connect 0, read 0, write 0, timeout 0": any non-zero count fails.
    local errs counts=${sock#*:}
    errs=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' <<<"${counts//[^0-9 ]/ }")
    (( errs == 0 )) || fail "$name" "wrk reported${sock#*Socket errors}"
  fi
  if [[ -n $non2xx ]] && (( non2xx > 0 )); then
    fail "$name" "$non2xx non-2xx/3xx responses"
  fi
  if [[ -z $rps || -z $requests ]] || (( requests == 0 )); then
    fail "$name" "no requests completed"
    return 0
  fi

  RPS[$name]=$rps
  [[ -n $p50 ]] && P50[$name]=$(to_us "$p50")
  [[ -n $p99 ]] && P99[$name]=$(to_us "$p99")
  if [[ -n $t1 ]]; then
    CPU_US[$name]=$(awk -v d="$(( t1 - t0 ))" -v hz="$CLK_TCK" -v n="$requests" \
      'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
  fi
  return 0
}

CORIO_CMD=${CORIO_SERVER_CMD:-"$BUILD/samples/http_hello --port {port} --workers 2"}
ASIO_CMD=${ASIO_SERVER_CMD:-"$BUILD/benchmarks/peers/asio_http_hello --port {port} --threads 2"}
# env execs the server, so the PID (and its CPU time) is the server's.
CORIO_ASIO_CMD="env CORIO_BACKEND=asio ${CORIO_CMD}"

run_one corio "$CORIO_PORT" "$CORIO_CMD"
run_one asio "$ASIO_PORT" "$ASIO_CMD"
run_one corio-asio "$CORIO_ASIO_PORT" "$CORIO_ASIO_CMD"

# --- report -----------------------------------------------------------------------------------
echo
echo "## HTTP hello: corio (io_uring), corio-asio (corio on Asio) vs Asio (same run, wrk -t${WRK_THREADS} -c${WRK_CONNECTIONS} -d${DUR}s)"
echo
if [[ -n ${CORIO_SERVER_CMD:-} ]]; then
  echo "> NOTE: CORIO_SERVER_CMD overrides the corio command line; the 'corio' row is not corio's sample."
  echo
fi
echo "| server | req/s | server CPU µs/req | p50 latency (µs) | p99 latency (µs) | status |"
echo "|---|---:|---:|---:|---:|---|"
for name in "${ORDER[@]}"; do
  echo "| $name | ${RPS[$name]} | ${CPU_US[$name]} | ${P50[$name]} | ${P99[$name]} | ${STATUS[$name]} |"
done
echo
ratio=$(awk -v a="${RPS[corio]}" -v b="${RPS[asio]}" \
  'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }')
echo "req/s ratio corio/asio: $ratio"
ratio_asio=$(awk -v a="${RPS[corio-asio]}" -v b="${RPS[asio]}" \
  'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }')
echo "req/s ratio corio-asio/asio (corio on its Asio reactor): $ratio_asio"
echo
echo "commands:"
for name in "${ORDER[@]}"; do
  echo "- $name server: \`${SRV_CMD[$name]}\`"
  echo "- $name load:   \`${WRK_CMD[$name]}\`"
done
echo "- CPU: utime+stime of the server PID from /proc/PID/stat (CLK_TCK=$CLK_TCK) before/after wrk, divided by wrk's request count"
echo
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo || echo 'model name: unknown')"
echo

if (( ANY_FAIL )); then
  echo "RESULT: FAIL"
  exit 1
fi
echo "RESULT: ok"
