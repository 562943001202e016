#!/usr/bin/env bash
# End-to-end: the http_hello binary, answered by curl on 127.0.0.1 (a port the OS picks).
# Usage: http_hello_curl.sh PATH/TO/http_hello
set -euo pipefail
server="$1"
source "$(dirname "$0")/../tools/start_http_hello.sh"
start_http_hello "$server"
port=$server_port
out=$server_log
body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/")
[ "$body" = "Hello, World!" ] || { echo "unexpected body: $body"; exit 1; }
# Keep-alive: curl reuses one connection for two URLs.
both=$(curl -sS --max-time 10 "http://127.0.0.1:$port/" "http://127.0.0.1:$port/")
[ "$both" = "Hello, World!Hello, World!" ] || { echo "unexpected keep-alive bodies: $both"; exit 1; }
code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/missing")
[ "$code" = "404" ] || { echo "expected 404, got $code"; exit 1; }
echo "curl got 'Hello, World!' from http_hello on port $port"
