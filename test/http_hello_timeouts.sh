#!/usr/bin/env bash
# End-to-end: http_hello's --header-timeout and --keepalive-timeout options. Started with 1 s and
# 2 s, the server must close a connection that sends nothing, and a keep-alive connection idle
# after an answer (each waited for at most 20 s: the bounds are generous, only the close is
# checked); out-of-range values are refused with the usage message.
# Usage: http_hello_timeouts.sh PATH/TO/http_hello
set -euo pipefail
server="$1"
for bad in -1 x 31536001; do
  rc=0
  "$server" --header-timeout "$bad" >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || { echo "--header-timeout $bad: expected the usage exit status 2, got $rc"; exit 1; }
done
source "$(dirname "$0")/../tools/start_http_hello.sh"
start_http_hello "$server" --header-timeout 1 --keepalive-timeout 2
port=$server_port

closed_by_server() {  # closed_by_server FD: succeeds when the server closes FD within 20 s
  local fd=$1 line rc=0
  IFS= read -r -t 20 -u "$fd" line || rc=$?
  [ "$rc" -eq 1 ]  # 1: end of file; above 128: the 20 s ran out
}

exec {silent}<>"/dev/tcp/127.0.0.1/$port"
closed_by_server "$silent" || { echo "a connection that sent nothing was not closed"; exit 1; }

exec {idle}<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&"$idle"
IFS= read -r -t 10 -u "$idle" line || { echo "no answer"; exit 1; }
[[ $line == "HTTP/1.1 200 OK"* ]] || { echo "unexpected answer: $line"; exit 1; }
for _ in 1 2 3; do IFS= read -r -t 10 -u "$idle" line; done
read -r -t 10 -N 13 -u "$idle" line
[ "$line" = "Hello, World!" ] || { echo "unexpected body: $line"; exit 1; }
closed_by_server "$idle" || { echo "an idle keep-alive connection was not closed"; exit 1; }
kill -0 "$server_pid" || { echo "http_hello died"; exit 1; }
echo "http_hello closed a silent and an idle keep-alive connection; bad values were refused"
