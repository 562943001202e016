#!/usr/bin/env bash
# http_peers.sh: corio's samples/http_hello against http_hello-shaped servers in Tokio, Asio and Go,
# all on 2 threads and measured in the same run (issue 19's table and its "Done when" bars).
#
# usage: benchmarks/http_peers.sh [BUILD_DIR=build-release] [DURATION_SECONDS=5]
#
# Servers (each bound to 127.0.0.1 only, on its own port):
#   corio       BUILD/samples/http_hello --port P --workers 2                 (io_uring, the default)
#   corio-asio  env CORIO_BACKEND=asio BUILD/samples/http_hello --port P --workers 2
#   corio-plain env CORIO_URING_NO_MULTISHOT_RECV=1 BUILD/samples/http_hello ...  (io_uring, one
#               receive per read: the multishot receive's own comparison; not in the default set)
#   tokio       tokio_http_hello --port P --threads 2    (benchmarks/tokio/http_hello, Tokio 1.24)
#   asio        BUILD/benchmarks/peers/asio_http_hello --port P --threads 2   (Asio 1.22)
#   go          go_http_hello --port P --threads 2       (benchmarks/go/http_hello, GOMAXPROCS=2)
# The peers answer every request head with the bytes http_hello sends for `GET /` over HTTP/1.1
# keep-alive; Tokio and Go read into 16 KiB as http_hello does, the Asio peer into 4 KiB (its own
# header comment), which matters for the memory figure.
#
# What it builds: `ninja -C BUILD samples/http_hello benchmarks/peers/asio_http_hello` (nothing
# when they are up to date; BUILD must be configured: meson setup BUILD -Dbuildtype=release
# --wrap-mode=nodownload), the Go peer with `go build` offline into BUILD/benchmarks/go/ (Debian's
# golang-go; skipped, with the reason, when go is missing), and the Tokio peer with
# `cargo build --release --offline` into BUILD/benchmarks/tokio/target (Debian's librust-tokio-dev;
# about a minute the first time; the script stops when it cannot, as Tokio is the reference).
#
# Throughput: every server is started and waited for (it must answer curl within 10 s), warmed up
# with `wrk -t1 -c64 -dWARMUP_S`, then for each of ROUNDS rounds and each load (-c64, -c512) every
# server in turn runs `wrk -t1 -cC -dDURATIONs http://127.0.0.1:P/` (the order rotates every round),
# its CPU time (utime+stime of all its threads, /proc/PID/stat) sampled before and after: server
# CPU µs per request = CPU time / wrk's request count. The table gives the median over the rounds
# (and min-max), and ratios of medians to Tokio's.
# Memory and many connections: each server is started again, fresh, alone, and
# benchmarks/idle_conns.py opens HOLD (9000) keep-alive connections with one request answered on
# each and keeps them idle: RSS per idle connection = (VmRSS after - VmRSS before) / HOLD, in KiB.
# It then opens TOTAL - HOLD more (TOTAL = 10000 open at once) and sends a second request on every
# one: all TOTAL must be answered, with 0 errors. `ulimit -n` is raised for that (needs TOTAL+64).
#
# Any wrk socket error or non-2xx/3xx answer, a server that does not start or dies, or an idle
# connection lost or unanswered is a FAIL: the script prints the table anyway, then "RESULT: FAIL"
# and exits 1. Whether issue 19's bars are met is reported, not a failure. Bounded: every wrk run
# has DURATION+30 s, the idle-connection client its budget (150 s), servers SIGTERM then SIGKILL
# after 3 s, and an EXIT trap kills whatever this script started.
#
# Environment: ROUNDS (3), WARMUP_S (1), PORT_BASE (18180: servers use PORT_BASE..+5 for the
# throughput runs and +10..+15 for the memory runs), HOLD (9000), TOTAL (10000), SKIP_MEMORY=1
# (no memory/connections phase), SERVERS (space-separated subset, default
# "corio corio-asio tokio asio go"), CARGO, PYTHON (/usr/bin/python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build-release}
DUR=${2:-5}
ROUNDS=${ROUNDS:-3}
WARMUP_S=${WARMUP_S:-1}
PORT_BASE=${PORT_BASE:-18180}
HOLD=${HOLD:-9000}
TOTAL=${TOTAL:-10000}
SKIP_MEMORY=${SKIP_MEMORY:-0}
SERVERS=${SERVERS:-"corio corio-asio tokio asio go"}
LOADS=(64 512)
READY_TIMEOUT_S=10
STOP_GRACE_S=3
IDLE_BUDGET_S=150

die() { echo "http_peers: error: $*" >&2; exit 2; }
log() { echo "== $*" >&2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

if ! is_uint "$DUR" || (( DUR == 0 || DUR > 3600 )); then die "duration must be 1..3600 seconds, got '$DUR'"; fi
if ! is_uint "$ROUNDS" || (( ROUNDS == 0 || ROUNDS > 50 )); then die "ROUNDS must be 1..50, got '$ROUNDS'"; fi
if ! is_uint "$WARMUP_S" || (( WARMUP_S > 60 )); then die "WARMUP_S must be 0..60, got '$WARMUP_S'"; fi
if ! is_uint "$PORT_BASE" || (( PORT_BASE < 1024 || PORT_BASE > 65500 )); then die "bad PORT_BASE '$PORT_BASE'"; fi
if ! is_uint "$HOLD" || ! is_uint "$TOTAL" || (( HOLD == 0 || HOLD > TOTAL || TOTAL > 60000 )); then
  die "need 0 < HOLD <= TOTAL <= 60000, got HOLD=$HOLD TOTAL=$TOTAL"
fi
for s in $SERVERS; do
  case $s in corio|corio-asio|corio-plain|tokio|asio|go) ;; *) die "SERVERS: unknown server '$s'" ;; esac
done
[[ " $SERVERS " == *" tokio "* ]] || die "SERVERS must include tokio: every ratio is to Tokio"
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
PYTHON=${PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=$(command -v python3 || true)
[[ -n $PYTHON ]] || die "python3 not found (needed for benchmarks/idle_conns.py)"
cd "$ROOT"
[[ -f $BUILD/build.ninja ]] ||
  die "$BUILD is not a Meson build directory: meson setup $BUILD -Dbuildtype=release --wrap-mode=nodownload"

CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/http_peers.XXXXXX")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
COMMANDS=()

# --- cleanup: never leave a server or a client running -----------------------------------------
declare -A PID   # server name -> pid of the running instance
CHILD_PID=""     # wrk or the idle-connection client, while one runs
cleanup() {
  local name pid
  if [[ -n $CHILD_PID ]] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill -TERM "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
  fi
  for name in "${!PID[@]}"; do
    pid=${PID[$name]}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- builds --------------------------------------------------------------------------------------
BUILDTYPE=$(sed -n "s/^buildtype *= *//p" "$BUILD/meson-private/cmd_line.txt" 2>/dev/null | head -n 1)
cmd=(ninja -C "$BUILD" samples/http_hello benchmarks/peers/asio_http_hello)
log "${cmd[*]}"
"${cmd[@]}" >"$WORK/ninja.log" 2>&1 || { tail -n 30 "$WORK/ninja.log" >&2; die "${cmd[*]} failed"; }
COMMANDS+=("${cmd[*]}")
CORIO_BIN=$BUILD/samples/http_hello
ASIO_BIN=$BUILD/benchmarks/peers/asio_http_hello

GO_BIN=""
GO_WHY=""
if [[ " $SERVERS " == *" go "* ]]; then
  if ! command -v go >/dev/null; then
    GO_WHY="go not found (apt-get install golang-go)"
  else
    mkdir -p "$BUILD/benchmarks/go"
    GO_DIR=$(cd "$BUILD/benchmarks/go" && pwd)
    cmd=(env GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local GOTELEMETRY=off CGO_ENABLED=0
         "GOCACHE=$GO_DIR/cache" go build -o "$GO_DIR/go_http_hello" ./http_hello)
    log "(cd benchmarks/go && ${cmd[*]})"
    if (cd benchmarks/go && timeout -k 5 300 "${cmd[@]}") >"$WORK/go-build.log" 2>&1; then
      GO_BIN=$GO_DIR/go_http_hello
      COMMANDS+=("(cd benchmarks/go && ${cmd[*]})")
    else
      GO_WHY="go build failed: $(tail -n 3 "$WORK/go-build.log" | tr '\n' ' ')"
    fi
  fi
  if [[ -n $GO_WHY ]]; then
    echo "http_peers: skipping the Go server: $GO_WHY" >&2
    kept=""
    for s in $SERVERS; do [[ $s == go ]] || kept+="$s "; done
    SERVERS=$kept
  fi
fi

CARGO=${CARGO:-$(command -v cargo || true)}
[[ -n $CARGO ]] || CARGO=/root/.cargo/bin/cargo
[[ -x $CARGO ]] || die "cargo not found (set CARGO=/path/to/cargo)"
compgen -G "/usr/share/cargo/registry/tokio-1.*" >/dev/null ||
  die "no tokio sources under /usr/share/cargo/registry (apt-get install librust-tokio-dev)"
mkdir -p "$BUILD/benchmarks/tokio"
TOKIO_TARGET=$(cd "$BUILD/benchmarks/tokio" && pwd)/target
cmd=("$CARGO" build --release --offline --quiet --target-dir "$TOKIO_TARGET")
log "(cd benchmarks/tokio/http_hello && ${cmd[*]})"
(cd benchmarks/tokio/http_hello && timeout -k 5 900 "${cmd[@]}") >"$WORK/tokio-build.log" 2>&1 ||
  { tail -n 20 "$WORK/tokio-build.log" >&2; die "cargo build of benchmarks/tokio/http_hello failed"; }
COMMANDS+=("(cd benchmarks/tokio/http_hello && ${cmd[*]})")
TOKIO_BIN=$TOKIO_TARGET/release/tokio_http_hello

# The descriptors the idle-connection phase needs, in this shell (servers inherit them).
if (( ! SKIP_MEMORY )); then
  want=$(( TOTAL + 256 ))
  hard=$(ulimit -Hn)
  [[ $hard == unlimited ]] || (( hard >= want )) || die "ulimit -Hn is $hard; TOTAL=$TOTAL needs $want (lower TOTAL)"
  ulimit -n "$want"
fi

# --- servers -------------------------------------------------------------------------------------
server_cmd() {  # server_cmd NAME PORT: the server's argv, one word per line
  case $1 in
    corio) printf '%s\n' "$CORIO_BIN" --port "$2" --workers 2 ;;
    corio-asio) printf '%s\n' env CORIO_BACKEND=asio "$CORIO_BIN" --port "$2" --workers 2 ;;
    corio-plain) printf '%s\n' env CORIO_URING_NO_MULTISHOT_RECV=1 "$CORIO_BIN" --port "$2" --workers 2 ;;
    tokio) printf '%s\n' "$TOKIO_BIN" --port "$2" --threads 2 ;;
    asio) printf '%s\n' "$ASIO_BIN" --port "$2" --threads 2 ;;
    go) printf '%s\n' "$GO_BIN" --port "$2" --threads 2 ;;
  esac
}
port_of() {  # port_of NAME OFFSET
  local i=0 s
  for s in corio corio-asio tokio asio go corio-plain; do
    [[ $s == "$1" ]] && { echo $(( PORT_BASE + $2 + i )); return; }
    i=$(( i + 1 ))
  done
}

declare -A STATUS SRV_CMD
ANY_FAIL=0
for s in $SERVERS; do STATUS[$s]=ok; done
fail() {  # fail NAME REASON
  if [[ ${STATUS[$1]} == ok ]]; then STATUS[$1]="FAIL: $2"; else STATUS[$1]+="; $2"; fi
  ANY_FAIL=1
  echo "http_peers: FAIL [$1]: $2" >&2
}

# Prints utime+stime (all threads) of PID in clock ticks; fields after the last ')' of the comm.
cpu_ticks() {
  local stat rest
  stat=$(<"/proc/$1/stat") || return 1
  rest=${stat##*) }
  local -a f
  read -r -a f <<<"$rest"
  echo $(( f[11] + f[12] ))
}

stop_server() {  # stop_server NAME: SIGTERM, then SIGKILL after STOP_GRACE_S; reaps
  local pid=${PID[$1]:-} i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for (( i = 0; i < STOP_GRACE_S * 10; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  PID[$1]=""
}

start_server() {  # start_server NAME PORT: starts it and waits until it answers; 1 on failure
  local name=$1 port=$2 url="http://127.0.0.1:$2/" log="$WORK/$1.$2.server.log"
  local -a argv
  mapfile -t argv < <(server_cmd "$name" "$port")
  SRV_CMD[$name]="${argv[*]}"
  if curl -s -o /dev/null --max-time 1 "$url"; then
    fail "$name" "something already answers on $url (set PORT_BASE)"
    return 1
  fi
  "${argv[@]}" >"$log" 2>&1 &
  PID[$name]=$!
  local i
  for (( i = 0; i < READY_TIMEOUT_S * 10; i++ )); do
    kill -0 "${PID[$name]}" 2>/dev/null || break
    if curl -s -o /dev/null --max-time 1 "$url"; then return 0; fi
    sleep 0.1
  done
  fail "$name" "no answer on $url within ${READY_TIMEOUT_S}s (or it exited)"
  tail -n 20 "$log" >&2 || true
  stop_server "$name"
  return 1
}

alive() { [[ -n ${PID[$1]:-} ]] && kill -0 "${PID[$1]}" 2>/dev/null; }

# run_wrk NAME PORT CONNS SECONDS OUT: wrk in the background (so INT/TERM traps fire at once).
run_wrk() {
  local rc=0
  timeout -k 5 $(( $4 + 30 )) wrk -t1 -c"$3" -d"$4"s "http://127.0.0.1:$2/" >"$5" 2>&1 &
  CHILD_PID=$!
  wait "$CHILD_PID" || rc=$?
  CHILD_PID=""
  return $rc
}

# wrk_check NAME OUT RC: FAILs the server on a wrk error, socket errors or non-2xx/3xx answers.
wrk_check() {
  local name=$1 out=$2 rc=$3 sock non2xx
  (( rc == 0 )) || fail "$name" "wrk exited with status $rc"
  sock=$(grep -m1 'Socket errors:' "$out" || true)
  if [[ -n $sock ]]; then
    local counts=${sock#*:} errs
    errs=$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' <<<"${counts//[^0-9 ]/ }")
    (( errs == 0 )) || fail "$name" "wrk:${sock#*Socket errors}"
  fi
  non2xx=$(awk -F: '/Non-2xx or 3xx responses:/ { gsub(/ /, "", $2); print $2 }' "$out")
  [[ -z $non2xx ]] || (( non2xx == 0 )) || fail "$name" "$non2xx non-2xx/3xx responses"
}

# --- throughput ----------------------------------------------------------------------------------
declare -A RPS_LIST CPU_LIST   # "name/conns" -> space-separated values, one per round
declare -A RPS_ROUND           # "name/conns/round" -> req/s, for the paired ratios
RUNNING=()
for s in $SERVERS; do
  log "start $s"
  if start_server "$s" "$(port_of "$s" 0)"; then RUNNING+=("$s"); fi
done
if (( WARMUP_S > 0 )); then
  for s in "${RUNNING[@]}"; do
    log "warm-up $s: wrk -t1 -c64 -d${WARMUP_S}s"
    rc=0; run_wrk "$s" "$(port_of "$s" 0)" 64 "$WARMUP_S" "$WORK/warmup.txt" || rc=$?
    wrk_check "$s" "$WORK/warmup.txt" "$rc"
  done
fi
n=${#RUNNING[@]}
for (( r = 1; r <= ROUNDS; r++ )); do
  for c in "${LOADS[@]}"; do
    for (( k = 0; k < n; k++ )); do
      s=${RUNNING[$(( (k + r - 1) % n ))]}
      alive "$s" || continue
      port=$(port_of "$s" 0)
      out="$WORK/$s.c$c.r$r.txt"
      t0=$(cpu_ticks "${PID[$s]}") || t0=""
      rc=0; run_wrk "$s" "$port" "$c" "$DUR" "$out" || rc=$?
      t1=$(cpu_ticks "${PID[$s]}" 2>/dev/null) || t1=""
      if [[ -z $t0 || -z $t1 ]] || ! alive "$s"; then
        fail "$s" "server died during wrk -c$c (round $r)"
        continue
      fi
      wrk_check "$s" "$out" "$rc"
      rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
      requests=$(awk '/ requests in / { print $1 }' "$out")
      if [[ -z $rps || -z $requests ]] || (( requests == 0 )); then
        fail "$s" "no requests completed at -c$c (round $r)"
        continue
      fi
      cpu=$(awk -v d=$(( t1 - t0 )) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
      RPS_LIST[$s/$c]+="$rps "
      CPU_LIST[$s/$c]+="$cpu "
      RPS_ROUND[$s/$c/$r]=$rps
      log "round $r -c$c $s: $rps req/s, $cpu µs CPU/request"
    done
  done
done
for s in "${RUNNING[@]}"; do
  alive "$s" || fail "$s" "server died"
  stop_server "$s"
done

# --- memory per idle connection, and TOTAL connections each served ---------------------------------
declare -A RSS_PER RSS_LINE CONNS_LINE
if (( ! SKIP_MEMORY )); then
  for s in $SERVERS; do
    port=$(port_of "$s" 10)
    log "memory: $s (fresh, alone) with $HOLD idle then $TOTAL keep-alive connections"
    start_server "$s" "$port" || continue
    out="$WORK/$s.idle.txt"
    rc=0
    timeout -k 5 $(( IDLE_BUDGET_S + 30 )) "$PYTHON" benchmarks/idle_conns.py --port "$port" \
      --pid "${PID[$s]}" --hold "$HOLD" --total "$TOTAL" --budget "$IDLE_BUDGET_S" >"$out" 2>&1 &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    sed "s/^/  $s: /" "$out" >&2
    alive "$s" || fail "$s" "server died during the idle-connection run"
    stop_server "$s"
    RSS_PER[$s]=$(sed -n 's/^rss_per_conn_kib=//p' "$out")
    before=$(sed -n 's/^rss_before_kib=//p' "$out")
    after=$(sed -n 's/^rss_hold_kib=//p' "$out")
    RSS_LINE[$s]="${before:-?} -> ${after:-?}"
    served=$(sed -n 's/^served_second=\([0-9]*\).*/\1/p' "$out")
    errors=$(sed -n 's/^errors=//p' "$out")
    CONNS_LINE[$s]="${served:-?}/$TOTAL served, ${errors:-?} errors"
    if (( rc != 0 )); then
      fail "$s" "idle-connection client: $(grep -m1 -E '^error|^errors=' "$out" || echo "exit $rc")"
    fi
  done
fi

# --- report --------------------------------------------------------------------------------------
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf "%s–%s", lo, hi }'; }
is_num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() { if is_num "$1" && is_num "$2"; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else printf "-" }'; else printf -- "-"; fi; }
cell_rps() {  # cell_rps NAME CONNS: "median (min–max)" in thousands of req/s
  local m lo hi
  m=$(median "${RPS_LIST[$1/$2]:-}")
  is_num "$m" || { echo "-"; return; }
  read -r lo hi < <(tr ' ' '\n' <<<"${RPS_LIST[$1/$2]}" | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo, hi }')
  awk -v m="$m" -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%.1fk (%.1f–%.1fk)", m / 1000, lo / 1000, hi / 1000 }'
}

declare -A MED
for s in $SERVERS; do
  for c in "${LOADS[@]}"; do
    MED[$s/rps/$c]=$(median "${RPS_LIST[$s/$c]:-}")
    MED[$s/cpu/$c]=$(median "${CPU_LIST[$s/$c]:-}")
  done
done

echo
echo "## HTTP hello on 2 threads: corio against Tokio, Asio and Go (same run; ratios to Tokio)"
echo
echo "| server | -c64 req/s (min–max) | ×Tokio | -c512 req/s (min–max) | ×Tokio | CPU µs/req -c512 (min–max) | ×Tokio | CPU µs/req -c64 | RSS KiB per idle conn ($HOLD) | ×Tokio | $TOTAL conns, 2 requests each | status |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
for s in $SERVERS; do
  cpu512=${MED[$s/cpu/512]}
  cpu512r=$(range "${CPU_LIST[$s/512]:-}")
  echo "| $s | $(cell_rps "$s" 64) | $(ratio "${MED[$s/rps/64]}" "${MED[tokio/rps/64]}") | $(cell_rps "$s" 512) | $(ratio "${MED[$s/rps/512]}" "${MED[tokio/rps/512]}") | $cpu512${cpu512r:+ ($cpu512r)} | $(ratio "$cpu512" "${MED[tokio/cpu/512]}") | ${MED[$s/cpu/64]} | ${RSS_PER[$s]:--} | $(ratio "${RSS_PER[$s]:-}" "${RSS_PER[tokio]:-}") | ${CONNS_LINE[$s]:--} | ${STATUS[$s]} |"
done
echo
echo "Medians of $ROUNDS round(s) of \`wrk -t1 -cC -d${DUR}s\` per server and load, the servers alternating"
echo "(the order rotates every round); ×Tokio = the median's ratio to Tokio's. CPU: utime+stime of the"
echo "server process over the wrk run / wrk's request count."
if (( ! SKIP_MEMORY )); then
  echo "RSS: VmRSS with $HOLD idle keep-alive connections (one request answered on each) minus VmRSS"
  rss_lines=""
  for s in $SERVERS; do rss_lines+="${rss_lines:+; }$s ${RSS_LINE[$s]:--}"; done
  echo "before, over $HOLD, on a fresh server (VmRSS before -> after, KiB: $rss_lines)."
else
  echo "Memory and connection phase skipped (SKIP_MEMORY=1)."
fi
if [[ -n $GO_WHY ]]; then echo; echo "Go server skipped: $GO_WHY"; fi

# Issue 19's bars, for corio on io_uring.
if [[ " $SERVERS " == *" corio "* ]]; then
  verdict() { awk -v v="$1" -v op="$2" -v bar="$3" 'BEGIN { if (v == "" || v == "-") print "n/a"; else if ((op == ">=" && v + 0 >= bar) || (op == "<=" && v + 0 <= bar)) print "met"; else print "NOT met" }'; }
  plain() { local r; r=$(ratio "$1" "$2"); echo "${r%×}"; }
  paired() {  # per-round ratios corio/tokio at load $1
    local r out=""
    for (( r = 1; r <= ROUNDS; r++ )); do
      out+="$(ratio "${RPS_ROUND[corio/$1/$r]:-}" "${RPS_ROUND[tokio/$1/$r]:-}") "
    done
    echo "${out% }"
  }
  r512=$(plain "${MED[corio/rps/512]}" "${MED[tokio/rps/512]}")
  c512=$(plain "${MED[corio/cpu/512]}" "${MED[tokio/cpu/512]}")
  r64=$(plain "${MED[corio/rps/64]}" "${MED[tokio/rps/64]}")
  echo
  echo "Issue 19's bars for corio (io_uring):"
  echo "- req/s at -c512 ≥ 1.3× Tokio's: ${r512}× ($(verdict "$r512" ">=" 1.3); per round: $(paired 512))"
  echo "- server CPU per request at -c512 ≤ 0.85× Tokio's: ${c512}× ($(verdict "$c512" "<=" 0.85))"
  echo "- req/s at -c64 ≥ 1.2× Tokio's: ${r64}× ($(verdict "$r64" ">=" 1.2); per round: $(paired 64))"
  if (( ! SKIP_MEMORY )); then
    echo "- RSS per idle keep-alive connection ≤ 4 KiB: ${RSS_PER[corio]:-?} KiB ($(verdict "${RSS_PER[corio]:-}" "<=" 4))"
    echo "- $TOTAL concurrent keep-alive connections each served with 0 errors: ${CONNS_LINE[corio]:-?}"
  fi
fi
echo
echo "commands:"
for c in "${COMMANDS[@]}"; do echo "- \`$c\`"; done
for s in $SERVERS; do echo "- $s: \`${SRV_CMD[$s]:-not started}\`"; done
echo "- load: \`wrk -t1 -c64 -d${DUR}s http://127.0.0.1:PORT/\` and \`wrk -t1 -c512 -d${DUR}s ...\`, $ROUNDS round(s) after a ${WARMUP_S}s warm-up at -c64"
(( SKIP_MEMORY )) || echo "- memory: \`ulimit -n $(( TOTAL + 256 )); $PYTHON benchmarks/idle_conns.py --port PORT --pid PID --hold $HOLD --total $TOTAL --budget $IDLE_BUDGET_S\`"
echo
echo "machine: $(nproc) CPUs, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//'); load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg); corio $BUILD (buildtype ${BUILDTYPE:-?}); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(go version 2>/dev/null | cut -d' ' -f3 || true); $("$CARGO" --version 2>/dev/null | cut -d' ' -f1-2), $(basename "$(compgen -G '/usr/share/cargo/registry/tokio-1.*' | sort -V | tail -n 1)")"
echo
if (( ANY_FAIL )); then
  echo "RESULT: FAIL"
  exit 1
fi
echo "RESULT: ok"
