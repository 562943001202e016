#!/usr/bin/env bash
# End-to-end: SIGQUIT to http_hello (127.0.0.1, a port the OS picks) with three idle keep-alive
# connections prints a task dump to stderr that lists three "http connection" tasks, each parked
# with an async stack naming samples/http/http_server.hpp; the server goes on serving.
# Usage: http_hello_sigquit.sh PATH/TO/http_hello
set -euo pipefail
server="$1"
source "$(dirname "$0")/../tools/start_http_hello.sh"
start_http_hello "$server"
port=$server_port
# Three idle connections: each sends one request, reads its answer and stays open (bounded: 30 s).
/usr/bin/python3 - "$port" "$server_pid" "$server_log" <<'PY'
import os, re, signal, socket, sys, time
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def get_hello(s, when):
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"Hello, World!" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed " + when)
        data += chunk

conns = []
for _ in range(3):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    get_hello(s, "early")
    conns.append(s)

def connection_blocks(text):
    dump = text[text.rfind("corio task dump:"):]
    blocks = [b for b in dump.split("\n\n") if '"http connection" [' in b]
    return blocks

deadline = time.monotonic() + 30
blocks = []
while time.monotonic() < deadline:
    os.kill(pid, signal.SIGQUIT)
    # Wait for this dump to be written completely (the line after the last task is blank).
    for _ in range(100):
        time.sleep(0.05)
        text = open(log).read()
        if "corio task dump:" in text and text.endswith("\n\n"):
            break
    blocks = connection_blocks(open(log).read())
    parked = [b for b in blocks if "running" not in b and "queued" not in b]
    if len(parked) == 3:
        break
    time.sleep(0.2)
text = open(log).read()
if len(blocks) != 3:
    sys.exit("expected three http connection tasks in the dump, found %d:\n%s" % (len(blocks), text))
for b in blocks:
    if "samples/http/http_server.hpp:" not in b:
        sys.exit("a connection's stack does not name samples/http/http_server.hpp:\n" + b)
    if not re.search(r"(recv|read|poll) fd \d+|co_await", b):
        sys.exit("a connection does not say what it waits for:\n" + b)
# The server still answers on the same connections.
for s in conns:
    get_hello(s, "after the dump")
    s.close()
print("three connection tasks in the dump, each with http_server.hpp in its stack")
PY
