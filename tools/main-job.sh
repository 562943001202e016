#!/usr/bin/env bash
# The main job: build corio (release) and run samples/http_hello driven by samples/http_load
# (64 keep-alive connections, 5 s, on 127.0.0.1), printing requests/s and latency.
# Usage: tools/main-job.sh [SECONDS=5] [CONNECTIONS=64]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
connections="${2:-64}"
dir=build-release
source tools/start_http_hello.sh
build_http_samples "$dir"
start_http_hello "$dir/samples/http_hello"
port=$server_port
echo "http_hello (2 workers) listening on 127.0.0.1:$port; http_load: $connections connections, ${seconds}s"
"$dir/samples/http_load" --port "$port" --connections "$connections" --seconds "$seconds"
