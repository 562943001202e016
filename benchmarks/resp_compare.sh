#!/usr/bin/env bash
# resp_compare.sh: corio's samples/resp_kv against redis-server (Debian's, persistence off) under
# the same redis-benchmark load, alternating, on 127.0.0.1.
#
# usage: benchmarks/resp_compare.sh [BUILD_DIR=build-release] [REQUESTS=1000000]
#
# Both servers run for the whole script, each pinned to CPU SERVER_CPU (1) with `taskset`:
#   resp_kv --port RESP_PORT --workers 1
#   redis-server --port REDIS_PORT --bind 127.0.0.1 --save '' --appendonly no
# (only one of them is under load at a time). RUNS (3) rounds, each running, for each of the two
# load shapes (plain, and pipelined with -P 16), the client pinned to CPU CLIENT_CPU (0):
#   redis-benchmark -h 127.0.0.1 -p PORT -t set,get -c 50 -n REQUESTS -q [-P 16]
# against resp_kv, then against redis-server. Prints every run, the median req/s of each server for
# SET and GET in each shape, and the ratio resp_kv / redis-server. Then one round against
# resp_kv --workers 2 with neither server nor client pinned. Any server that does not start or dies,
# or a benchmark that reports no figure, prints FAIL and exits non-zero.
#
# Environment overrides: RESP_PORT (16379), REDIS_PORT (16380), RESP2_PORT (16381), RUNS (3),
# CLIENT_CPU (0), SERVER_CPU (1), REDIS_SERVER (redis-server), REDIS_BENCHMARK (redis-benchmark).
set -euo pipefail

BUILD=${1:-build-release}
REQUESTS=${2:-1000000}
RESP_PORT=${RESP_PORT:-16379}
REDIS_PORT=${REDIS_PORT:-16380}
RESP2_PORT=${RESP2_PORT:-16381}
RUNS=${RUNS:-3}
CLIENT_CPU=${CLIENT_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}

die() { echo "resp_compare: FAIL: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$REQUESTS" && ((REQUESTS > 0)) || die "REQUESTS must be a positive integer, got '$REQUESTS'"
is_uint "$RUNS" && ((RUNS > 0 && RUNS < 100)) || die "RUNS must be 1..99, got '$RUNS'"
for p in "$RESP_PORT" "$REDIS_PORT" "$RESP2_PORT"; do
  is_uint "$p" && ((p > 0 && p <= 65535)) || die "bad port '$p'"
done
[[ $RESP_PORT != "$REDIS_PORT" && $RESP_PORT != "$RESP2_PORT" && $REDIS_PORT != "$RESP2_PORT" ]] ||
  die "RESP_PORT, REDIS_PORT and RESP2_PORT must differ"
RESP_KV="$BUILD/samples/resp_kv"
[[ -x $RESP_KV ]] || die "$RESP_KV not found (ninja -C $BUILD)"
for c in "$REDIS_SERVER" "$REDIS_BENCHMARK" redis-cli taskset; do
  command -v "$c" >/dev/null || die "$c not found (apt-get install redis-server redis-tools util-linux)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/resp_compare.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# wait_ready PORT PID NAME: until PING answers PONG (at most 10 s).
wait_ready() {
  local i
  for i in $(seq 1 100); do
    kill -0 "$2" 2>/dev/null || die "$3 exited at start-up: $(cat "$WORK/$3.log")"
    [[ $(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null) == PONG ]] && return 0
    sleep 0.1
  done
  die "$3 did not answer PING on port $1 within 10 s"
}

# bench PORT NAME PIN EXTRA...: one redis-benchmark run; prints "SET_RPS GET_RPS".
bench() {
  local port=$1 name=$2 pin=$3
  shift 3
  local cmd=("$REDIS_BENCHMARK" -h 127.0.0.1 -p "$port" -t set,get -c 50 -n "$REQUESTS" -q "$@")
  [[ $pin == yes ]] && cmd=(taskset -c "$CLIENT_CPU" "${cmd[@]}")
  "${cmd[@]}" 2>&1 | tr '\r' '\n' >"$WORK/bench.out" || true
  local set get
  set=$(sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' "$WORK/bench.out" | tail -n1)
  get=$(sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p' "$WORK/bench.out" | tail -n1)
  [[ -n $set && -n $get ]] || die "no figures from redis-benchmark against $name: $(tail -n 5 "$WORK/bench.out")"
  echo "$set $get"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

taskset -c "$SERVER_CPU" "$RESP_KV" --port "$RESP_PORT" --workers 1 >"$WORK/resp_kv.log" 2>&1 &
PIDS+=($!)
wait_ready "$RESP_PORT" "${PIDS[-1]}" resp_kv
taskset -c "$SERVER_CPU" "$REDIS_SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --daemonize no --logfile "$WORK/redis.log" >"$WORK/redis-server.log" 2>&1 &
PIDS+=($!)
wait_ready "$REDIS_PORT" "${PIDS[-1]}" redis-server

declare -A figures  # "server shape command" -> space-separated req/s of each run
echo "# resp_kv --workers 1 and redis-server, each pinned to CPU $SERVER_CPU; redis-benchmark pinned to CPU $CLIENT_CPU"
echo "# -c 50 -n $REQUESTS, $RUNS alternating rounds"
for run in $(seq 1 "$RUNS"); do
  for shape in plain P16; do
    extra=()
    [[ $shape == P16 ]] && extra=(-P 16)
    for server in resp_kv redis; do
      port=$RESP_PORT
      [[ $server == redis ]] && port=$REDIS_PORT
      read -r set get < <(bench "$port" "$server" yes "${extra[@]}")
      for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a server died during the run"; done
      figures["$server $shape SET"]+="$set "
      figures["$server $shape GET"]+="$get "
      echo "run $run $shape $server: SET $set GET $get"
    done
  done
done

echo
echo "| shape | command | resp_kv req/s (median) | redis-server req/s (median) | resp_kv / redis |"
echo "|---|---|---|---|---|"
for shape in plain P16; do
  for c in SET GET; do
    # shellcheck disable=SC2086
    r=$(median ${figures["resp_kv $shape $c"]})
    # shellcheck disable=SC2086
    d=$(median ${figures["redis $shape $c"]})
    label=$shape
    [[ $shape == P16 ]] && label="-P 16"
    printf '| %s | %s | %.0f | %.0f | %.2fx |\n' "$label" "$c" "$r" "$d" "$(awk -v a="$r" -v b="$d" 'BEGIN {print a / b}')"
  done
done

echo
echo "# resp_kv --workers 2, server and client unpinned, one round"
"$RESP_KV" --port "$RESP2_PORT" --workers 2 >"$WORK/resp_kv2.log" 2>&1 &
PIDS+=($!)
wait_ready "$RESP2_PORT" "${PIDS[-1]}" resp_kv2
read -r set get < <(bench "$RESP2_PORT" resp_kv2 no)
echo "resp_kv --workers 2 plain: SET $set GET $get"
read -r set get < <(bench "$RESP2_PORT" resp_kv2 no -P 16)
echo "resp_kv --workers 2 -P 16: SET $set GET $get"

echo
echo "# machine: $(uname -srm); $(nproc) CPUs: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo "# $("$REDIS_SERVER" --version | head -n1)"
echo "# redis-benchmark: $("$REDIS_BENCHMARK" --version 2>/dev/null | head -n1 || echo '?')"
