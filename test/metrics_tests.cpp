// Suite "sched": runtime::metrics() - the counters move as known work demands, and render as text,
// JSON and Prometheus text (a parser checks the latter two in test/http_hello_metrics.sh).
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "stream_pair.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

corio::task<long> twice(long i) { co_return 2 * i; }

corio::task<void> sleep_a_while() { co_await corio::sleep_for(10ms); }

/// Sends `n` bytes from one end of a loopback connection and reads them at the other.
corio::task<std::size_t> exchange_bytes(std::size_t n) {
  corio_test::stream_pair p = co_await corio_test::connected_pair();
  std::array<std::byte, 64> out{};
  co_await p.a.write_all(std::span<const std::byte>{out.data(), n});
  std::array<std::byte, 64> in{};
  std::size_t got = 0;
  for (int i = 0; i < 64 && got < n; ++i) {
    const std::size_t r = co_await p.b.read_some(std::span<std::byte>{in.data() + got, n - got});
    if (r == 0) break;
    got += r;
  }
  co_return got;
}

/// Spawns `n` tasks, then joins them all.
corio::task<long> spawn_and_join(long n) {
  std::vector<corio::join_handle<long>> handles;
  handles.reserve(static_cast<std::size_t>(n));
  for (long i = 0; i < n; ++i) handles.push_back(corio::spawn(twice(i)));
  long sum = 0;
  for (auto& h : handles) sum += co_await h;
  co_return sum;
}

struct work_result {
  long sum = 0;
  bool saw_pending_timer = false;
  std::size_t bytes = 0;
  int blocking = 0;
};

/// Known work: `spawns` spawns each joined at once, `yields` yields, one sleep (whose timer it sees
/// pending in the metrics before it fires), one loopback exchange, one blocking job.
corio::task<work_result> known_work(corio::runtime* rt, long spawns, int yields) {
  work_result r;
  for (long i = 0; i < spawns; ++i) {
    auto h = corio::spawn(twice(i));
    r.sum += co_await h;
  }
  for (int i = 0; i < yields; ++i) co_await corio::yield();
  const auto pair = co_await corio::when_all(twice(1), twice(2));  // two more spawned tasks
  r.sum += std::get<0>(pair) + std::get<1>(pair);
  auto sleeper = corio::spawn(sleep_a_while());
  // Under the manual clock the sleep cannot end while this task runs: its timer stays pending.
  for (int i = 0; i < 100'000 && !r.saw_pending_timer; ++i) {
    r.saw_pending_timer = rt->metrics().total(&corio::worker_metrics::timers_pending) >= 1;
    if (!r.saw_pending_timer) co_await corio::yield();
  }
  co_await sleeper;
  r.bytes = co_await exchange_bytes(48);
  r.blocking = co_await corio::spawn_blocking([] { return 7; });
  co_return r;
}

}  // namespace

TEST_SUITE_BEGIN("sched");

TEST_CASE("metrics count the spawns, polls, yields, timers, I/O and blocking jobs of known work on 1 and 2 workers") {
  corio_test::hang_guard guard{"metrics of known work", 120s};
  constexpr long spawns = 1000;
  constexpr int yields = 300;
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const corio::runtime_metrics before = rt.metrics();
    CHECK(before.workers.size() == workers);
    CHECK(before.tasks_spawned == 0);
    CHECK(before.backend == rt.backend());

    const work_result r = rt.block_on(known_work(&rt, spawns, yields));
    CHECK(r.sum == spawns * (spawns - 1) + 6);
    CHECK(r.saw_pending_timer);
    CHECK(r.bytes == 48);
    CHECK(r.blocking == 7);

    // The root task may still be finishing on its worker when block_on returns (bounded wait).
    for (int i = 0; i < 10'000 && rt.metrics().tasks_alive != 0; ++i) std::this_thread::sleep_for(1ms);
    const corio::runtime_metrics m = rt.metrics();
    CHECK(m.workers.size() == workers);
    for (unsigned i = 0; i < workers; ++i) CHECK(m.workers[i].index == i);
    CHECK(m.tasks_alive == 0);
    // The spawns, the two when_all children, the sleeper, the connection's acceptor, and
    // block_on's root (spawned from this thread: counted globally, on no worker).
    CHECK(m.tasks_spawned >= static_cast<std::uint64_t>(spawns) + 5);
    CHECK(m.total(&corio::worker_metrics::spawned) >= static_cast<std::uint64_t>(spawns) + 4);
    CHECK(m.total(&corio::worker_metrics::polls) >= static_cast<std::uint64_t>(spawns + yields));
    CHECK(m.total(&corio::worker_metrics::timers_fired) >= 1);
    CHECK(m.total(&corio::worker_metrics::timers_pending) == 0);
    CHECK(m.total(&corio::worker_metrics::io_submitted) >= 2);  // at least the connect and the accept
    CHECK(m.total(&corio::worker_metrics::io_completed) >= 2);
    CHECK(m.total(&corio::worker_metrics::parks) >= 1);  // the time jumped: every worker was idle
    CHECK(m.total(&corio::worker_metrics::unparks) >= 1);
    CHECK(m.total(&corio::worker_metrics::busy_ns) > 0);
    CHECK(m.injection_queue_depth == 0);
    CHECK(m.blocking_jobs >= 1);
    CHECK(m.blocking_threads >= m.blocking_idle_threads);
    CHECK(m.blocking_queued == 0);
    if (m.backend == "asio") CHECK(m.total(&corio::worker_metrics::uring_enters) == 0);
    else CHECK(m.total(&corio::worker_metrics::uring_enters) >= 1);
    // Counters never go back; stats() still reads the same counters.
    const corio::runtime_stats s = rt.stats();
    for (unsigned i = 0; i < workers; ++i) {
      CHECK(s.workers[i].polls >= m.workers[i].polls);
      CHECK(s.workers[i].timers_fired >= m.workers[i].timers_fired);
      CHECK(s.workers[i].io_submitted >= m.workers[i].io_submitted);
    }
    CHECK(s.live_tasks == 0);
  }
}

TEST_CASE("metrics are read from another thread while tasks spawn and finish, and never go back") {
  corio_test::hang_guard guard{"metrics read while tasks run", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    std::atomic<bool> done{false};
    std::atomic<int> went_back{0};
    std::thread reader([&] {
      std::uint64_t spawned = 0;
      std::uint64_t polls = 0;
      std::uint64_t busy = 0;
      for (int i = 0; i < 1'000'000 && !done.load(); ++i) {
        const corio::runtime_metrics m = rt.metrics();
        const std::uint64_t p = m.total(&corio::worker_metrics::polls);
        // busy_ns may miss the current stretch of a worker that parks during the read: not monotonic.
        if (m.tasks_spawned < spawned || p < polls) went_back.fetch_add(1);
        spawned = m.tasks_spawned;
        polls = p;
        busy = m.total(&corio::worker_metrics::busy_ns);
      }
      (void)busy;
    });
    for (std::size_t round = 0; round < corio_test::scaled(20); ++round) {
      const long sum = rt.block_on(spawn_and_join(500));
      CHECK(sum == 500 * 499);
    }
    done.store(true);
    reader.join();
    CHECK(went_back.load() == 0);
    CHECK(rt.metrics().tasks_spawned >= static_cast<std::uint64_t>(corio_test::scaled(20)) * 500);
  }
}

TEST_CASE("metrics render as text, JSON and Prometheus text with one sample per worker") {
  corio_test::hang_guard guard{"metrics rendering", 120s};
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
  (void)rt.block_on(known_work(&rt, 10, 3));
  const corio::runtime_metrics m = rt.metrics();

  const std::string text = corio::to_text(m);
  CHECK(text.find("backend " + m.backend + ", 2 workers\n") == 0);
  CHECK(text.find("\nworker 0:") != std::string::npos);
  CHECK(text.find("\nworker 1:") != std::string::npos);
  CHECK(text.find("tasks_spawned ") != std::string::npos);

  const std::string json = corio::to_json(m);
  CHECK(json.front() == '{');
  CHECK(json.back() == '}');
  CHECK(json.find("\"backend\":\"" + m.backend + "\"") != std::string::npos);
  CHECK(json.find("\"workers\":[{\"index\":0,\"polls\":") != std::string::npos);
  CHECK(json.find("{\"index\":1,") != std::string::npos);
  CHECK(json.find("\"busy_ns\":") != std::string::npos);

  const std::string prom = corio::to_prometheus(m);
  CHECK(prom.find("# TYPE corio_tasks_alive gauge\ncorio_tasks_alive ") != std::string::npos);
  CHECK(prom.find("# TYPE corio_worker_polls_total counter\n") != std::string::npos);
  CHECK(prom.find("corio_worker_polls_total{worker=\"0\"} ") != std::string::npos);
  CHECK(prom.find("corio_worker_polls_total{worker=\"1\"} ") != std::string::npos);
  CHECK(prom.find("corio_worker_busy_seconds_total{worker=\"1\"} ") != std::string::npos);
  CHECK(prom.find("corio_info{backend=\"" + m.backend + "\"} 1\n") != std::string::npos);
  // Every line is a comment or a sample; every family has its HELP before its TYPE.
  std::size_t lines = 0;
  std::size_t pos = 0;
  while (pos < prom.size() && lines < 10'000) {
    const std::size_t end = prom.find('\n', pos);
    REQUIRE(end != std::string::npos);  // the text ends with a newline
    const std::string line = prom.substr(pos, end - pos);
    CHECK((line.rfind("# HELP corio_", 0) == 0 || line.rfind("# TYPE corio_", 0) == 0 || line.rfind("corio_", 0) == 0));
    pos = end + 1;
    ++lines;
  }
  CHECK(lines > 100);

  // After shutdown the counters stay readable, as they ended, with no live task.
  rt.shutdown();
  const corio::runtime_metrics after = rt.metrics();
  CHECK(after.tasks_alive == 0);
  CHECK(after.workers.size() == 2);
  CHECK(after.total(&corio::worker_metrics::polls) >= m.total(&corio::worker_metrics::polls));
  CHECK(after.total(&corio::worker_metrics::busy_ns) >= m.total(&corio::worker_metrics::busy_ns));
  CHECK(corio::to_prometheus(after).find("corio_tasks_alive 0\n") != std::string::npos);
}

TEST_CASE("with timing_histograms every poll lands in the poll-time histogram; without, nothing does") {
  corio_test::hang_guard guard{"poll-time histograms", 120s};
  constexpr long spawns = 500;
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    for (bool timing : {false, true}) {
      CAPTURE(timing);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock, .timing_histograms = timing}};
      CHECK(rt.block_on(spawn_and_join(spawns)) == spawns * (spawns - 1));
      for (int i = 0; i < 10'000 && rt.metrics().tasks_alive != 0; ++i) std::this_thread::sleep_for(1ms);
      const corio::runtime_metrics m = rt.metrics();
      CHECK(m.timing_histograms == timing);
      std::uint64_t count = 0;
      std::uint64_t in_buckets = 0;
      std::uint64_t sum = 0;
      for (const corio::worker_metrics& w : m.workers) {
        count += w.poll_time.count;
        sum += w.poll_time.sum_ns;
        for (std::uint64_t c : w.poll_time.counts) in_buckets += c;
        CHECK(w.poll_time.count >= [&] {
          std::uint64_t n = 0;
          for (std::uint64_t c : w.poll_time.counts) n += c;
          return n;
        }());
      }
      const std::string prom = corio::to_prometheus(m);
      if (timing) {
        // Every poll the loop or a transfer started is timed once it ends; the root's last one ended
        // before block_on returned or ends when its worker gets the thread back.
        CHECK(count + workers >= m.total(&corio::worker_metrics::polls));
        CHECK(count >= static_cast<std::uint64_t>(spawns));
        CHECK(sum > 0);
        CHECK(in_buckets >= count / 2);  // polls over 1.07 s count only in `count`: none here
        CHECK(prom.find("# TYPE corio_worker_poll_time_seconds histogram\n") != std::string::npos);
        CHECK(prom.find("corio_worker_poll_time_seconds_bucket{worker=\"0\",le=\"1.28e-07\"} ") != std::string::npos);
        CHECK(prom.find("corio_worker_poll_time_seconds_bucket{worker=\"0\",le=\"+Inf\"} ") != std::string::npos);
        CHECK(corio::to_json(m).find("\"poll_time\":{\"count\":") != std::string::npos);
      } else {
        CHECK(count == 0);
        CHECK(in_buckets == 0);
        CHECK(prom.find("poll_time") == std::string::npos);
        CHECK(corio::to_json(m).find("poll_time") == std::string::npos);
      }
    }
  }
}

namespace {
corio::task<void> set_event_later(corio::event* ev) {
  ev->set();
  co_return;
}

corio::task<int> one() { co_return 1; }

/// Spawns `n` tasks and joins them; then parks on an event that a plain thread sets (a wake from
/// outside the workers), on an event a task sets (a wake on a worker), and on a sleep (a timer);
/// then spawns a task and busy-waits `busy` on the steady clock before joining it, so that the
/// task waits at least that long in the queue. Returns the sum of the tasks' results.
corio::task<long> queue_in_every_way(long n, std::chrono::milliseconds busy) {
  long sum = 0;
  for (long i = 0; i < n; ++i) {
    corio::join_handle<int> h = corio::spawn(one());
    const int v = co_await h;
    sum += v;
  }
  corio::event from_thread;
  std::thread t{[&from_thread] { from_thread.set(); }};
  co_await from_thread.wait();
  t.join();
  corio::event from_task;
  corio::join_handle<void> setter = corio::spawn(set_event_later(&from_task));
  co_await from_task.wait();
  co_await setter;
  co_await corio::sleep_for(5ms);
  corio::join_handle<int> late = corio::spawn(one());
  const auto until = std::chrono::steady_clock::now() + busy;
  while (std::chrono::steady_clock::now() < until) {
  }
  const int last = co_await late;
  co_return sum + last;
}
}  // namespace

TEST_CASE("with timing_histograms every queued task's wait lands in the schedule-latency histogram") {
  corio_test::hang_guard guard{"schedule-latency histograms", 120s};
  constexpr long spawns = 300;
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    for (bool timing : {false, true}) {
      CAPTURE(timing);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock, .timing_histograms = timing}};
      CHECK(rt.block_on(queue_in_every_way(spawns, 20ms)) == spawns + 1);
      for (int i = 0; i < 10'000 && rt.metrics().tasks_alive != 0; ++i) std::this_thread::sleep_for(1ms);
      const corio::runtime_metrics m = rt.metrics();
      std::uint64_t count = 0;
      std::uint64_t in_buckets = 0;
      std::uint64_t at_least_16ms = 0;  // buckets 18 and up: (16.8 ms, 33.6 ms] and beyond
      std::uint64_t sum = 0;
      for (const corio::worker_metrics& w : m.workers) {
        count += w.schedule_latency.count;
        sum += w.schedule_latency.sum_ns;
        for (std::size_t b = 0; b < corio::duration_histogram::buckets; ++b) {
          in_buckets += w.schedule_latency.counts[b];
          if (b >= 18) at_least_16ms += w.schedule_latency.counts[b];
        }
      }
      const std::string prom = corio::to_prometheus(m);
      if (timing) {
        // Each spawned task's first poll starts from a queue, and so do the wakes and the timer.
        CHECK(count >= static_cast<std::uint64_t>(spawns) + 5);
        CHECK(count <= m.total(&corio::worker_metrics::polls));
        CHECK(in_buckets == count);  // nothing waits 1.07 s; the workers are idle, nothing is mid-record
        // The last task waited in the queue for the whole busy loop (unless another worker stole it
        // at once: then it did not wait, and that is the only other way).
        if (workers == 1) {
          CHECK(at_least_16ms >= 1);
          CHECK(sum >= std::uint64_t{20'000'000});
        }
        CHECK(prom.find("# TYPE corio_worker_schedule_latency_seconds histogram\n") != std::string::npos);
        CHECK(prom.find("corio_worker_schedule_latency_seconds_bucket{worker=\"0\",le=\"+Inf\"} ") !=
              std::string::npos);
        CHECK(corio::to_json(m).find("\"schedule_latency\":{\"count\":") != std::string::npos);
        CHECK(corio::to_text(m).find("schedule_latency(count=") != std::string::npos);
      } else {
        CHECK(count == 0);
        CHECK(sum == 0);
        CHECK(prom.find("schedule_latency") == std::string::npos);
      }
    }
  }
}

namespace {
corio::task<void> wait_for(corio::event* ev) { co_await ev->wait(); }

corio::task<void> wake_a_parked_task() {
  corio::event ev;
  corio::join_handle<void> h = corio::spawn(wait_for(&ev));
  for (int i = 0; i < 3; ++i) co_await corio::yield();  // the waiter runs and parks (one worker)
  ev.set();  // wakes it into this worker's LIFO slot
  co_await h;
}
}  // namespace

TEST_CASE("a task woken by another task of its worker counts in local_schedules") {
  corio::runtime rt{{.workers = 1}};
  const std::uint64_t before = rt.metrics().total(&corio::worker_metrics::local_schedules);
  rt.block_on(wake_a_parked_task());
  CHECK(rt.metrics().total(&corio::worker_metrics::local_schedules) >= before + 1);
}

TEST_SUITE_END();
