#!/usr/bin/env bash
# End-to-end: samples/chat --port 0, driven by python3 clients on loopback (test/chat_client.py):
# a line reaches every other client as "user1: hello" and not its sender; /nick renames (and a
# bad name gets an error line for that client only); while a client that never reads falls behind,
# a flood of 20,000 lines reaches the clients that read, every line in order, and the slow client
# later gets "* N lines dropped" with N > 0 and exactly the lines that were not dropped; a line
# that is too long closes only its client; a reset connection is reported and the others go on;
# then SIGINT: every client gets "* server shutting down" and end of stream, and the server exits
# 0. Every wait is bounded: socket timeouts in the client, `timeout` around it, and a bounded
# wait for the server's exit. Runs with 1 and 3 workers.
# Usage: chat_sample.sh PATH/TO/chat PATH/TO/chat_client.py
set -euo pipefail
server="$1"
client="$2"
python=/usr/bin/python3
[ -x "$python" ] || python=python3
dir=$(mktemp -d /tmp/corio_chat_XXXXXX)
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$dir"' EXIT

run() {
  local workers="$1"
  local log="$dir/chat$workers.log"
  # Created here, not by the background job's redirection: under load the sed below could run
  # before the job opened the file, fail to read it, and end the script (set -e) with status 2.
  : >"$log"
  "$server" --port 0 --workers "$workers" >"$log" 2>&1 &
  server_pid=$!
  local where=""
  for _ in $(seq 1 100); do
    where=$(sed -n 's/^listening on \(.*\)$/\1/p' "$log")
    [ -n "$where" ] && break
    sleep 0.1
  done
  [ -n "$where" ] || { echo "chat did not start:"; cat "$log"; exit 1; }
  # The client sends SIGINT itself once its checks passed, then checks the goodbyes.
  timeout 120 "$python" "$client" "$where" "$server_pid" \
    || { echo "chat --workers $workers: the client failed"; cat "$log"; exit 1; }
  for _ in $(seq 1 200); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "chat did not exit within 20 s of SIGINT"; cat "$log"; exit 1
  fi
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=""
  [ "$rc" -eq 0 ] || { echo "chat --workers $workers exited with $rc"; cat "$log"; exit 1; }
  grep -q "chat: stopped" "$log" || { echo "chat did not report its shutdown:"; cat "$log"; exit 1; }
  grep -q "chat: connection failed: user5" "$log" \
    || { echo "chat did not report the reset connection:"; cat "$log"; exit 1; }
  echo "chat --workers $workers on $where: chatted, dropped for the slow client, exited 0 on SIGINT"
}

run 1
run 3
