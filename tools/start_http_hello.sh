# Sourced by scripts that need a running samples/http_hello on a port the OS picks.
#   build_http_samples DIR
# Installs what is missing, sets DIR up as a release build if it does not exist, and builds
# samples/http_hello and samples/http_load there.
#   start_http_hello [launcher...] PATH/TO/http_hello [extra args]
# Starts it with --port 0 --workers 2 on 127.0.0.1, waits (at most 10 s) for its
# "listening on 127.0.0.1:PORT" line, and sets server_pid, server_port and server_log. Installs
# an EXIT trap that stops the server and removes the log. Returns 1 if it did not start.
build_http_samples() {
  bash tools/deps.sh
  [ -d "$1" ] || meson setup "$1" --wrap-mode=nodownload -Dbuildtype=release >/dev/null
  ninja -C "$1" samples/http_hello samples/http_load >/dev/null
}

start_http_hello() {
  server_log=$(mktemp)
  "$@" --port 0 --workers 2 >"$server_log" 2>&1 &
  server_pid=$!
  trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$server_log"' EXIT
  server_port=""
  for _ in $(seq 1 100); do
    server_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$server_log")
    [ -n "$server_port" ] && return 0
    sleep 0.1
  done
  echo "http_hello did not start:"
  cat "$server_log"
  return 1
}
