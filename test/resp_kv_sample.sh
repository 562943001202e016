#!/usr/bin/env bash
# End-to-end: samples/resp_kv --port 0, driven by the real redis-cli (Debian redis-tools) on
# 127.0.0.1, on each reactor (CORIO_BACKEND=auto, io_uring where the kernel has it, then asio):
# SET, GET, INCR, EXPIRE and TTL, MGET, DEL, a 10,000-command pipeline through `redis-cli --pipe`
# and a batch of commands on redis-cli's standard input; raw bytes from python3 for inline
# commands, a command split across writes and malformed requests (each answered "-ERR Protocol
# error: ..." and closed); then SIGTERM, and the server must exit 0 within 20 s.
# Usage: resp_kv_sample.sh PATH/TO/resp_kv
set -euo pipefail
server="$1"
command -v redis-cli >/dev/null || { echo "redis-cli not found: install redis-tools (tools/deps.sh)"; exit 1; }
python=/usr/bin/python3
[ -x "$python" ] || python=python3
dir=$(mktemp -d /tmp/corio_resp_kv_XXXXXX)
server_pid=""
log="$dir/server.log"
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$dir"' EXIT

fail() {
  echo "resp_kv ($backend): $*"
  echo "server log:"; cat "$log"
  exit 1
}

# expect WANT redis-cli ARGS...: the command's output must be WANT.
expect() {
  local want="$1"; shift
  local got
  got=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1) || fail "redis-cli $* failed: $got"
  [ "$got" = "$want" ] || fail "redis-cli $*: got '$got', want '$want'"
}

raw_client='
import socket, sys
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    return s
def read_until_close(s):
    got = b""
    for _ in range(10000):
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk
    raise AssertionError("the server did not close")
def read_exactly(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(65536)
        assert chunk, ("closed early", got)
        got += chunk
    return got
# Inline commands, a command split across writes, an unknown command: answered, connection open.
s = conn()
s.sendall(b"SET raw 5\r\nINCR raw\nGET raw\r\n*2\r\n$3\r\nGET\r\n$3\r")
import time; time.sleep(0.05)
s.sendall(b"\nraw\r\nNOPE\r\n")
want = b"+OK\r\n:6\r\n$1\r\n6\r\n$1\r\n6\r\n-ERR unknown command \x27NOPE\x27, with args beginning with: \r\n"
got = read_exactly(s, len(want))
assert got == want, got
s.close()
# A protocol violation: an error answer, then the server closes.
for bad, why in [(b"*1\r\n$x\r\n", b"invalid bulk length"), (b"*2\r\n+A\r\n", b"expected \x27$\x27"),
                 (b"*1\r\n$99999999999\r\n", b"invalid bulk length"), (b"x" * 70000, b"too big inline request")]:
    s = conn()
    s.sendall(b"PING\r\n" + bad + b"PING\r\n")
    got = read_until_close(s)
    assert got == b"+PONG\r\n-ERR Protocol error: " + why + b"\r\n", got
    s.close()
print("ok")
'

run_backend() {
  backend="$1"
  # A log of its own per run: the next server's redirection truncates its file only once that
  # server's process starts, and the port must not be read from the previous run's log.
  log="$dir/server-$backend.log"
  # Created here, not by the background job's redirection: under load the sed below could run
  # before the job opened the file, fail to read it, and end the script (set -e) with status 2.
  : >"$log"
  CORIO_BACKEND="$backend" "$server" --port 0 --workers 2 >"$log" 2>&1 &
  server_pid=$!
  port=""
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || fail "did not start"

  expect PONG PING
  expect OK SET greeting hello
  expect hello GET greeting
  expect "" GET missing
  expect 1 INCR counter
  expect 11 INCRBY counter 10
  expect 10 DECR counter
  expect "ERR value is not an integer or out of range" INCR greeting
  expect 1 EXPIRE greeting 100
  local ttl
  ttl=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" TTL greeting)
  [ "$ttl" -ge 99 ] && [ "$ttl" -le 100 ] || fail "TTL greeting: got '$ttl', want 99 or 100"
  expect -1 TTL counter
  expect -2 TTL missing
  expect OK SET shortlived x PX 100
  sleep 0.3
  expect "" GET shortlived
  expect OK MSET a 1 b 2
  expect "$(printf '1\n\n2')" MGET a missing b
  expect 2 DEL a b missing
  expect 0 EXISTS a b

  # A pipeline of 10,000 SETs in RESP through redis-cli --pipe (it ends with an ECHO to know when
  # every answer has come).
  "$python" -c '
import sys
out = sys.stdout.buffer
for i in range(10000):
    k, v = b"key:%d" % i, b"value:%d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' >"$dir/pipe.txt"
  local piped
  piped=$(timeout 60 redis-cli -h 127.0.0.1 -p "$port" --pipe <"$dir/pipe.txt" 2>&1) || fail "redis-cli --pipe failed: $piped"
  echo "$piped" | grep -q "errors: 0, replies: 10000" || fail "redis-cli --pipe: $piped"
  expect 10002 DBSIZE  # the 10,000 keys, greeting and counter
  expect value:9999 GET key:9999

  # A batch: commands on redis-cli's standard input, one per line.
  printf 'SET batch 1\nINCR batch\nINCR batch\nGET batch\nDEL batch\nEXISTS batch\n' >"$dir/batch.txt"
  local batch
  batch=$(timeout 10 redis-cli -h 127.0.0.1 -p "$port" <"$dir/batch.txt" 2>&1) || fail "redis-cli batch failed"
  [ "$batch" = "$(printf 'OK\n2\n3\n3\n1\n0')" ] || fail "redis-cli batch: got '$batch'"
  expect OK FLUSHALL
  expect 0 DBSIZE

  "$python" -c "$raw_client" "$port" >"$dir/raw.log" 2>&1 || { cat "$dir/raw.log"; fail "the raw client failed"; }

  kill -TERM "$server_pid"
  for _ in $(seq 1 200); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$server_pid" 2>/dev/null && fail "did not exit within 20 s of SIGTERM"
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  [ "$rc" -eq 0 ] || fail "exited with $rc"
  grep -q "resp_kv: stopped" "$log" || fail "did not report its shutdown"
  [ "$backend" = auto ] || grep -q "workers on $backend" "$log" || fail "did not run on $backend"
  echo "resp_kv on $backend, port $port: redis-cli commands, --pipe, batch, malformed input: ok"
}

run_backend auto  # io_uring where the kernel has it
run_backend asio
