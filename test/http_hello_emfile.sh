#!/usr/bin/env bash
# http_hello out of descriptors: started with a limit of 64 descriptors, it is offered 100
# connections. It must keep answering the connections it accepted while accept fails with
# EMFILE, and accept the waiting ones once descriptors are free again.
# Usage: http_hello_emfile.sh PATH/TO/http_hello
set -euo pipefail
server="$1"
source "$(dirname "$0")/../tools/start_http_hello.sh"
start_http_hello prlimit --nofile=64:64 "$server"
port=$server_port
out=$server_log

request=$'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
ask() {  # ask FD: one request on an open connection; succeeds when the answer is 200
  local fd=$1 line
  printf '%s' "$request" >&"$fd"
  IFS= read -r -t 10 -u "$fd" line || return 1
  [[ $line == "HTTP/1.1 200 OK"* ]] || return 1
  # Drain the rest of the answer (2 header lines, the blank line, the 13-byte body).
  for _ in 1 2 3; do IFS= read -r -t 10 -u "$fd" line || return 1; done
  read -r -t 10 -N 13 -u "$fd" line || return 1
}

fds=()
for _ in $(seq 1 100); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port"
  fds+=("$fd")
done
# The first connection was accepted before the limit was reached: it is served.
ask "${fds[0]}" || { echo "an accepted connection was not served while accept fails"; exit 1; }
for _ in $(seq 1 50); do  # at most 5 s for the server to hit the limit and say so
  grep -q "backing off" "$out" && break
  sleep 0.1
done
grep -q "backing off" "$out" || { echo "http_hello never reported EMFILE"; cat "$out"; exit 1; }
ask "${fds[1]}" || { echo "served connections stopped being served"; exit 1; }
# Free descriptors: close the first 60 connections; the last one must now be accepted and served.
for i in $(seq 0 59); do exec {fds[$i]}>&-; done
ask "${fds[99]}" || { echo "a waiting connection was not served after descriptors were freed"; exit 1; }
kill -0 "$server_pid" || { echo "http_hello died"; exit 1; }
echo "http_hello kept serving through EMFILE and accepted the backlog afterwards"
