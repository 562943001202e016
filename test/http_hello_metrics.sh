#!/usr/bin/env bash
# End-to-end: http_hello's GET /metrics on 127.0.0.1 (a port the OS picks) is valid Prometheus
# text (parsed by Python's prometheus_client, Debian's python3-prometheus-client, which
# tools/deps.sh installs) with the runtime's counters and poll-time histograms (--timing-histograms),
# and GET /metrics.json is valid JSON (python's json module) with the same counters.
# Usage: http_hello_metrics.sh PATH/TO/http_hello
set -euo pipefail
server="$1"
source "$(dirname "$0")/../tools/start_http_hello.sh"
start_http_hello "$server" --timing-histograms  # 2 workers, poll-time histograms on
port=$server_port
for _ in 1 2 3 4 5; do
  body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/")
  [ "$body" = "Hello, World!" ] || { echo "unexpected body: $body"; exit 1; }
done
headers=$(mktemp)
metrics=$(mktemp)
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$server_log" "$headers" "$metrics"' EXIT
code=$(curl -sS --max-time 10 -D "$headers" -o "$metrics" -w '%{http_code}' "http://127.0.0.1:$port/metrics")
[ "$code" = "200" ] || { echo "expected 200 from /metrics, got $code"; exit 1; }
grep -qi '^content-type: text/plain; version=0.0.4' "$headers" || { echo "wrong content type:"; cat "$headers"; exit 1; }
# HEAD /metrics: the headers only.
head_code=$(curl -sS --max-time 10 -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")
[ "$head_code" = "200" ] || { echo "expected 200 from HEAD /metrics, got $head_code"; exit 1; }
/usr/bin/python3 - "$metrics" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
families = {f.name: f for f in text_string_to_metric_families(text)}  # raises on invalid text

def samples(name):
    return [s for f in families.values() for s in f.samples if s.name == name]

def need(cond, what):
    if not cond:
        sys.exit("metrics check failed: " + what + "\n" + text)

workers = samples("corio_workers")
need(len(workers) == 1 and workers[0].value == 2, "corio_workers is 2")
need(families["corio_worker_polls"].type == "counter", "corio_worker_polls_total is a counter")
polls = samples("corio_worker_polls_total")
need(sorted(s.labels["worker"] for s in polls) == ["0", "1"], "one polls sample per worker")
need(sum(s.value for s in polls) >= 6, "the requests were polled")
need(families["corio_tasks_alive"].type == "gauge", "corio_tasks_alive is a gauge")
need(samples("corio_tasks_alive")[0].value >= 2, "the server's tasks are alive")  # block_on's root, the accept loop
need(samples("corio_tasks_spawned_total")[0].value >= 7, "the connections were spawned")
need(sum(s.value for s in samples("corio_worker_io_completed_total")) >= 6, "I/O completed")
need(sum(s.value for s in samples("corio_worker_busy_seconds_total")) > 0, "busy time")
need(len(samples("corio_worker_local_queue_depth")) == 2, "one queue depth per worker")
info = samples("corio_info")
need(len(info) == 1 and info[0].labels["backend"] in ("io_uring", "asio"), "corio_info names the backend")
for f in families.values():
    need(f.name.startswith("corio_"), "prefix corio_: " + f.name)
    need(f.documentation != "", "HELP of " + f.name)
    for s in f.samples:
        need(s.value >= 0, "non-negative " + s.name)
# The poll-time and schedule-latency histograms: cumulative buckets per worker, +Inf equal to the
# count, polls and queued tasks recorded (the connections' tasks were spawned and woken by reads).
for family in ("corio_worker_poll_time_seconds", "corio_worker_schedule_latency_seconds"):
    hist = families[family]
    need(hist.type == "histogram", family + " is a histogram")
    for worker in ("0", "1"):
        buckets = [s for s in hist.samples if s.name.endswith("_bucket") and s.labels["worker"] == worker]
        need(len(buckets) == 25 and buckets[-1].labels["le"] == "+Inf", "25 buckets ending in +Inf")
        values = [s.value for s in buckets]
        need(values == sorted(values), "cumulative buckets")
        count = [s.value for s in hist.samples if s.name.endswith("_count") and s.labels["worker"] == worker]
        need(count == [values[-1]], "+Inf bucket equals the count")
    need(sum(s.value for s in hist.samples if s.name.endswith("_count")) >= 6, family + " recorded")
print("parsed %d families from /metrics" % len(families))
PY
# The JSON rendering: one object, one entry per worker with the same counters.
curl -sS --max-time 10 -o "$metrics" "http://127.0.0.1:$port/metrics.json"
/usr/bin/python3 - "$metrics" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["backend"] in ("io_uring", "asio"), m
assert [w["index"] for w in m["workers"]] == [0, 1], m
assert sum(w["polls"] for w in m["workers"]) >= 6, m
assert m["tasks_alive"] >= 2 and m["tasks_spawned"] >= 7, m
assert m["timing_histograms"] is True, m
hists = ("poll_time", "schedule_latency")
assert all(isinstance(v, int) and v >= 0 for w in m["workers"] for k, v in w.items() if k not in hists), m
assert all(len(w[h]["buckets"]) == 24 and w[h]["count"] >= sum(w[h]["buckets"])
           for w in m["workers"] for h in hists), m
print("parsed /metrics.json: %d workers" % len(m["workers"]))
PY
echo "http_hello on port $port serves valid Prometheus text at /metrics"
