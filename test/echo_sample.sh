#!/usr/bin/env bash
# End-to-end: samples/echo in each of its modes (--tcp 0, --udp 0, --unix PATH in a fresh
# temporary directory), answered by a small python3 client on loopback: the bytes of several
# connections (TCP, Unix) or datagrams (UDP) come back unchanged; then SIGINT, and the server
# must exit 0 within 20 s (and, for --unix, remove its socket file).
# Usage: echo_sample.sh PATH/TO/echo
set -euo pipefail
server="$1"
python=/usr/bin/python3
[ -x "$python" ] || python=python3
dir=$(mktemp -d /tmp/corio_echo_XXXXXX)
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$dir"' EXIT

client='
import socket, sys
kind, where = sys.argv[1], sys.argv[2]
def stream_socket():
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(where)
    else:
        host, port = where.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
    s.settimeout(10)
    return s
if kind == "udp":
    host, port = where.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    for i in range(50):  # one at a time: nothing is lost on loopback
        msg = ("datagram %d " % i).encode() * (i + 1)
        s.sendto(msg, (host, int(port)))
        got, sender = s.recvfrom(65535)
        assert got == msg, (got, msg)
        assert sender[1] == int(port), sender
else:
    conns = [stream_socket() for _ in range(4)]
    for round in range(3):
        for n, c in enumerate(conns):
            msg = bytes((n * 7 + round + i) % 256 for i in range(20000 * (round + 1)))
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = c.recv(65536)
                assert chunk, "end of stream before the echo was complete"
                got += chunk
            assert got == msg
    for c in conns:
        c.shutdown(socket.SHUT_WR)
        assert c.recv(10) == b"", "the server did not close after our shutdown"
        c.close()
print("ok")
'

run_mode() {
  local kind="$1"; shift
  local log="$dir/$kind.log"
  # Created here, not by the background job's redirection: under load the sed below could run
  # before the job opened the file, fail to read it, and end the script (set -e) with status 2.
  : >"$log"
  "$server" "$@" --workers 2 >"$log" 2>&1 &
  server_pid=$!
  local where=""
  for _ in $(seq 1 100); do
    where=$(sed -n 's/^listening on \(.*\)$/\1/p' "$log")
    [ -n "$where" ] && break
    sleep 0.1
  done
  [ -n "$where" ] || { echo "echo --$kind did not start:"; cat "$log"; exit 1; }
  "$python" -c "$client" "$kind" "$where" || { echo "echo --$kind: the client failed"; cat "$log"; exit 1; }
  kill -INT "$server_pid"
  for _ in $(seq 1 200); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "echo --$kind did not exit within 20 s of SIGINT"; cat "$log"; exit 1
  fi
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  [ "$rc" -eq 0 ] || { echo "echo --$kind exited with $rc"; cat "$log"; exit 1; }
  grep -q "stopped" "$log" || { echo "echo --$kind did not report its shutdown:"; cat "$log"; exit 1; }
  echo "echo --$kind on $where: echoed, exited 0 on SIGINT"
}

run_mode tcp --tcp 0
run_mode udp --udp 0
run_mode unix --unix "$dir/echo.sock"
[ ! -e "$dir/echo.sock" ] || { echo "echo --unix left its socket file behind"; exit 1; }
