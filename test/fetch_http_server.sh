#!/usr/bin/env bash
# End-to-end: samples/fetch against python3 -m http.server on 127.0.0.1, by the name localhost
# (::1 is refused, 127.0.0.1 answers: Happy Eyeballs), on both reactors as the suite runs it.
# Usage: fetch_http_server.sh PATH/TO/fetch
set -euo pipefail
fetch="$1"
dir=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/www"
head -c 300000 /dev/urandom > "$dir/www/file"
# A free port: bind 0 in Python, then let http.server use it.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$dir/www" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$port" >"$dir/server.log" 2>&1) &
server_pid=$!
for _ in $(seq 1 100); do
  if "$fetch" "http://127.0.0.1:$port/file" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
"$fetch" "http://localhost:$port/file" > "$dir/got"
cmp "$dir/www/file" "$dir/got"
# Chunked transfer coding: a one-off handler that answers in three chunks.
cat > "$dir/chunked.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b"hello, ", b"chunked ", b"world\n"):
            self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.handle_request()
PY
/usr/bin/python3 "$dir/chunked.py" > "$dir/chunked.port" &
chunked_pid=$!
for _ in $(seq 1 100); do [ -s "$dir/chunked.port" ] && break; sleep 0.1; done
chunked=$("$fetch" "http://localhost:$(cat "$dir/chunked.port")/")
wait "$chunked_pid"
[ "$chunked" = "hello, chunked world" ] || { echo "chunked body: $chunked"; exit 1; }
# A 404 exits non-zero and says so.
if "$fetch" "http://localhost:$port/missing" > /dev/null 2> "$dir/err404"; then
  echo "fetch of a missing file exited 0"; exit 1
fi
grep -q "404" "$dir/err404" || { echo "no 404 in: $(cat "$dir/err404")"; exit 1; }
# A closed port exits non-zero naming the addresses tried.
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
if "$fetch" "http://localhost:$port/file" > /dev/null 2> "$dir/errclosed"; then
  echo "fetch from a closed port exited 0"; exit 1
fi
grep -q "127.0.0.1:$port" "$dir/errclosed" || { echo "address not named in: $(cat "$dir/errclosed")"; exit 1; }
# A bad URL exits 2.
set +e
"$fetch" "ftp://localhost/" 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || { echo "bad URL exited $rc"; exit 1; }
echo "fetch got $(stat -c %s "$dir/got") bytes from http.server on port $port; a chunked body; 404, refused and bad URL fail"
