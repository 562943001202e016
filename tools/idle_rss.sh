#!/usr/bin/env bash
# RSS per idle keep-alive connection of samples/http_hello (issue 19's measure).
# Usage: tools/idle_rss.sh [HTTP_HELLO=build-release/samples/http_hello] [CONNECTIONS=9000]
#
# Starts http_hello (2 workers, 127.0.0.1), serves 200 warm-up requests on 64 connections and
# closes them, reads the server's RSS (VmRSS, /proc/PID/status), then opens CONNECTIONS
# keep-alive connections (bound in turn to 127.0.0.2-127.0.0.5), sends one GET on each as it
# connects and reads every answer, so that every connection task has served a request and waits idle for the next;
# after 2 s it reads the RSS again and prints (after - before) / CONNECTIONS in KiB. The client is
# a Python script (non-blocking sockets, one selector). CORIO_BACKEND and CORIO_URING_NO_BUFRING
# pass through to the server.
set -euo pipefail
cd "$(dirname "$0")/.."
server="${1:-build-release/samples/http_hello}"
connections="${2:-9000}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
source tools/start_http_hello.sh
start_http_hello "$server"
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }

python3 - "$server_port" "$connections" "$server_pid" <<'EOF'
import selectors, socket, sys, time

port, count, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

def rss():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def serve_all(socks, send=True):
    sel = selectors.DefaultSelector()
    pending = {}
    for s in socks:
        if send:
            s.sendall(request)
        pending[s.fileno()] = b""
        sel.register(s, selectors.EVENT_READ)
    done = 0
    deadline = time.time() + 60
    while done < len(socks) and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                raise SystemExit("idle_rss: the server closed a connection")
            pending[s.fileno()] += data
            if pending[s.fileno()].endswith(b"Hello, World!"):
                sel.unregister(s)
                done += 1
    if done < len(socks):
        raise SystemExit(f"idle_rss: only {done} of {len(socks)} answered")

def open_many(n, sources):
    socks = []
    for i in range(n):
        s = socket.socket()
        s.bind((sources[i % len(sources)], 0))
        s.connect(("127.0.0.1", port))
        s.sendall(request)  # at once: http_hello closes a connection without a head after 10 s
        socks.append(s)
    return socks

warm = open_many(64, ["127.0.0.1"])
serve_all(warm, send=False)
for _ in range(2):
    serve_all(warm)
for s in warm:
    s.close()
time.sleep(1)
before = rss()
socks = open_many(count, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"])
serve_all(socks, send=False)
time.sleep(2)
after = rss()
print(f"connections {count}: RSS before {before} kB, after {after} kB, "
      f"per idle connection {(after - before) / count:.2f} KiB")
for s in socks:
    s.close()
EOF
