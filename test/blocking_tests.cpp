// corio::spawn_blocking and the runtime's blocking pool (suite "blocking"): results and
// exceptions round trip, jobs beyond the thread limit queue and all run exactly once, a job
// cancelled before it starts never runs, a running one finishes and its result stands, idle
// threads end, shutdown waits for running jobs and drops queued ones.
#include <corio/corio.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// Waits (bounded: 60 s of 1 ms steps) until `pred(rt.stats().blocking)` holds; false if it never did.
template <class Pred>
bool eventually(corio::runtime& rt, Pred pred) {
  for (int i = 0; i < 60'000; ++i) {
    if (pred(rt.stats().blocking)) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

struct thrown_by_job : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A gate jobs block on until the test opens it (once; later opens do nothing).
struct gate {
  std::promise<void> open_promise;
  std::shared_future<void> opened = open_promise.get_future().share();
  std::atomic<bool> is_open{false};
  void open() {
    if (!is_open.exchange(true)) open_promise.set_value();
  }
  void wait() const { opened.wait(); }
};

/// Opens a gate when it goes out of scope: declared after the runtime (and the gate before it),
/// so that a test that stops early (a failed REQUIRE) lets its jobs end before the runtime's
/// destructor waits for them.
struct open_on_exit {
  gate& g;
  ~open_on_exit() { g.open(); }
};

corio::task<void> round_trips(int* checks) {
  int v = co_await corio::spawn_blocking([] { return 41 + 1; });
  CHECK(v == 42);
  ++*checks;

  int target = 5;
  int& ref = co_await corio::spawn_blocking([&target]() -> int& { return target; });
  CHECK(&ref == &target);
  ++*checks;

  bool ran = false;
  co_await corio::spawn_blocking([&ran] { ran = true; });
  CHECK(ran);
  ++*checks;

  auto p = co_await corio::spawn_blocking([] { return std::make_unique<std::string>(64, 'x'); });
  CHECK(*p == std::string(64, 'x'));
  ++*checks;

  // A lambda capturing heap memory by value, built in a statement of its own: g++ 12.2 destroys
  // such a capture twice when the lambda is built inside the co_await expression (GCC PR 101976's
  // family, README "Compiler notes"); clang compiles both forms correctly.
  std::string text(80, 'y');
  auto fn = [text] { return text.size(); };
  auto n = co_await corio::spawn_blocking(std::move(fn));
  CHECK(n == 80);
#if defined(__clang__)
  auto m = co_await corio::spawn_blocking([text] { return text + "!"; });
#else
  auto fm = [text] { return text + "!"; };
  auto m = co_await corio::spawn_blocking(std::move(fm));
#endif
  CHECK(m.size() == 81);
  ++*checks;

  // The call ran apart from the workers.
  auto where = co_await corio::spawn_blocking([] { return corio::this_worker_index(); });
  CHECK_FALSE(where.has_value());
  CHECK(corio::this_worker_index().has_value());  // and the task is back on a worker
  ++*checks;

  bool caught = false;
  try {
    co_await corio::spawn_blocking([]() -> int { throw thrown_by_job{"from the job"}; });
  } catch (const thrown_by_job& e) {
    caught = std::string{e.what()} == "from the job";
  }
  CHECK(caught);
  ++*checks;

  // spawn_blocking from a pool thread is refused: it is not a worker.
  bool refused = false;
  try {
    co_await corio::spawn_blocking([] { (void)corio::spawn_blocking([] { return 0; }); });
  } catch (const std::logic_error&) {
    refused = true;
  }
  CHECK(refused);
  ++*checks;
}

corio::task<int> count_once(std::atomic<int>* runs, std::atomic<int>* inside, std::atomic<int>* most_inside,
                            int index) {
  int r = co_await corio::spawn_blocking([runs, inside, most_inside, index] {
    const int now = inside->fetch_add(1) + 1;
    int seen = most_inside->load();
    while (now > seen && !most_inside->compare_exchange_weak(seen, now)) {
    }
    std::this_thread::yield();
    runs[index].fetch_add(1);
    inside->fetch_sub(1);
    return index;
  });
  co_return r;
}

corio::task<int> wait_on_gate(const gate* g, std::atomic<int>* started, int value) {
  int r = co_await corio::spawn_blocking([g, started, value] {
    started->fetch_add(1);
    g->wait();
    return value;
  });
  co_return r;
}

corio::task<int> mark_when_run(std::atomic<int>* ran) {
  int r = co_await corio::spawn_blocking([ran] {
    ran->fetch_add(1);
    return 7;
  });
  co_return r;
}

template <class T>
corio::task<std::optional<T>> join_or_cancelled(corio::join_handle<T> h, bool* cancelled) {
  try {
    T v = co_await h;
    co_return v;
  } catch (const corio::operation_cancelled&) {
    *cancelled = true;
  }
  co_return std::nullopt;
}

corio::task<std::optional<int>> timed_job(std::atomic<int>* ran, corio::clock::duration d) {
  auto r = co_await corio::try_timeout(d, corio::spawn_blocking([ran] {
                                          ran->fetch_add(1);
                                          return 3;
                                        }));
  co_return r;
}

corio::task<bool> refused_after_stop(std::atomic<int>* ran) {
  corio::this_task::request_stop();
  try {
    co_await corio::spawn_blocking([ran] { ran->fetch_add(1); });
  } catch (const corio::operation_cancelled&) {
    co_return true;
  }
  co_return false;
}

corio::task<unsigned> bound_round_trip() {
  int v = co_await corio::spawn_blocking([] { return 1; });
  CHECK(v == 1);
  co_return corio::this_worker_index().value_or(~0u);
}

corio::task<std::string> long_result(const gate* g, std::atomic<int>* started, std::atomic<bool>* finished) {
  std::string r = co_await corio::spawn_blocking([g, started, finished] {
    started->fetch_add(1);
    g->wait();
    finished->store(true);
    return std::string(100, 'r');  // written into the waiting frame, which must still exist
  });
  co_return r;
}

/// Under the manual clock, with the pool's one thread busy on a job blocked on a gate: a task
/// waits at most 1 s for a job queued behind it. `move_time`: the test advances the time by 1 s
/// (the job times out and never runs); otherwise it checks that the time stays (the workers are
/// idle, but jobs are outstanding), opens the gate, and the queued job runs and returns.
void timed_job_behind_a_busy_thread(bool move_time) {
  gate g;
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock, .max_blocking_threads = 1}};
  open_on_exit opener{g};
  const auto start = rt.now();
  std::atomic<int> started{0}, ran{0};
  auto running = rt.spawn(wait_on_gate(&g, &started, 1));
  REQUIRE(eventually(rt, [&](const corio::blocking_pool_stats&) { return started.load() == 1; }));
  auto timed = rt.spawn(timed_job(&ran, 1s));
  REQUIRE(eventually(rt, [](const corio::blocking_pool_stats& s) { return s.queued == 1; }));
  if (move_time) {
    rt.advance(1s);
  } else {
    std::this_thread::sleep_for(20ms);  // room for a wrong jump (the workers are idle), not a timing check
    CHECK(rt.now() == start);
    g.open();
  }
  bool cancelled = false;
  auto r = rt.block_on(join_or_cancelled(std::move(timed), &cancelled));
  CHECK_FALSE(cancelled);
  REQUIRE(r.has_value());
  if (move_time) {
    CHECK_FALSE(r->has_value());  // timed out
    g.open();
  } else {
    CHECK(*r == std::optional<int>{3});  // it ran: the deadline never came
  }
  CHECK(rt.block_on(join_or_cancelled(std::move(running), &cancelled)) == std::optional<int>{1});
  CHECK(ran.load() == (move_time ? 0 : 1));
}

}  // namespace

TEST_SUITE("blocking") {

TEST_CASE("spawn_blocking returns values, references, void and move-only results and rethrows exceptions") {
  corio_test::hang_guard guard{"blocking round trips", 120s};
  for (unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers}};
    int checks = 0;
    rt.block_on(round_trips(&checks));
    CHECK(checks == 8);
    CHECK(rt.stats().blocking.jobs_run == 9);
  }
}

TEST_CASE("spawn_blocking outside a task on a runtime throws std::logic_error") {
  CHECK_THROWS_AS((void)corio::spawn_blocking([] { return 1; }), std::logic_error);
}

TEST_CASE("a runtime refuses max_blocking_threads of 0") {
  CHECK_THROWS_AS(corio::runtime({.workers = 1, .max_blocking_threads = 0}), std::invalid_argument);
}

TEST_CASE("more jobs than max_blocking_threads all run exactly once, at most that many at a time") {
  corio_test::hang_guard guard{"many blocking jobs", 300s};
  const int jobs = static_cast<int>(corio_test::scaled(400));
  for (unsigned workers : {1u, 2u, 4u}) {
    for (int round = 0; round < 3; ++round) {
      corio::runtime rt{{.workers = workers, .max_blocking_threads = 3}};
      std::vector<std::atomic<int>> runs(static_cast<std::size_t>(jobs));
      std::atomic<int> inside{0}, most_inside{0};
      std::vector<corio::join_handle<int>> handles;
      for (int i = 0; i < jobs; ++i) handles.push_back(rt.spawn(count_once(runs.data(), &inside, &most_inside, i)));
      for (int i = 0; i < jobs; ++i) {
        bool cancelled = false;
        auto r = rt.block_on(join_or_cancelled(std::move(handles[static_cast<std::size_t>(i)]), &cancelled));
        CHECK(r == std::optional<int>{i});
      }
      for (auto& r : runs) CHECK(r.load() == 1);
      CHECK(most_inside.load() <= 3);
      const auto s = rt.stats().blocking;
      CHECK(s.threads <= 3);
      CHECK(s.queued == 0);
      CHECK(s.jobs_run == static_cast<std::uint64_t>(jobs));
    }
  }
}

TEST_CASE("a job cancelled before it starts never runs, and a running one finishes with its result") {
  corio_test::hang_guard guard{"blocking cancel", 120s};
  for (unsigned workers : {1u, 2u}) {
    gate g;
    corio::runtime rt{{.workers = workers, .max_blocking_threads = 1}};
    open_on_exit opener{g};
    std::atomic<int> started{0}, ran{0};
    auto running = rt.spawn(wait_on_gate(&g, &started, 11));
    REQUIRE(eventually(rt, [&](const corio::blocking_pool_stats&) { return started.load() == 1; }));
    auto queued = rt.spawn(mark_when_run(&ran));
    REQUIRE(eventually(rt, [](const corio::blocking_pool_stats& s) { return s.queued == 1; }));
    queued.cancel();
    running.cancel();  // too late: the job runs, and its result stands
    bool queued_cancelled = false;
    auto q = rt.block_on(join_or_cancelled(std::move(queued), &queued_cancelled));
    CHECK(queued_cancelled);
    CHECK_FALSE(q.has_value());
    CHECK(rt.stats().blocking.queued == 0);
    g.open();
    bool running_cancelled = false;
    auto r = rt.block_on(join_or_cancelled(std::move(running), &running_cancelled));
    CHECK_FALSE(running_cancelled);
    CHECK(r == std::optional<int>{11});
    CHECK(ran.load() == 0);
    CHECK(rt.stats().blocking.jobs_run == 1);
  }
}

TEST_CASE("a task whose stop was requested before spawn_blocking does not submit the job") {
  corio_test::hang_guard guard{"blocking refused", 60s};
  corio::runtime rt{{.workers = 1}};
  std::atomic<int> ran{0};
  CHECK(rt.block_on(refused_after_stop(&ran)));
  CHECK(ran.load() == 0);
  CHECK(rt.stats().blocking.jobs_run == 0);
  CHECK(rt.stats().blocking.threads == 0);
}

TEST_CASE("jobs cancelled at random either ran once and returned or never ran") {
  corio_test::hang_guard guard{"blocking cancel races", 300s};
  const auto seed = corio_test::test_seed();
  std::mt19937_64 rng{seed};
  const int jobs = static_cast<int>(corio_test::scaled(300));
  for (unsigned workers : {1u, 2u, 4u}) {
    corio::runtime rt{{.workers = workers, .seed = seed, .max_blocking_threads = 2}};
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(jobs));
    std::atomic<int> inside{0}, most_inside{0};
    std::vector<corio::join_handle<int>> handles;
    for (int i = 0; i < jobs; ++i) {
      handles.push_back(rt.spawn(count_once(runs.data(), &inside, &most_inside, i)));
      if (rng() % 2 == 0) handles.back().cancel();
    }
    int returned = 0, cancelled_count = 0;
    for (int i = 0; i < jobs; ++i) {
      bool cancelled = false;
      auto r = rt.block_on(join_or_cancelled(std::move(handles[static_cast<std::size_t>(i)]), &cancelled));
      const int n = runs[static_cast<std::size_t>(i)].load();
      if (cancelled) {
        ++cancelled_count;
        CHECK(n == 0);
      } else {
        ++returned;
        CHECK(r == std::optional<int>{i});
        CHECK(n == 1);
      }
    }
    CHECK(returned + cancelled_count == jobs);
    CHECK(rt.stats().blocking.jobs_run == static_cast<std::uint64_t>(returned));
  }
}

TEST_CASE("a timeout around a queued job ends it with nullopt and the job never runs") {
  corio_test::hang_guard guard{"blocking timeout", 120s};
  timed_job_behind_a_busy_thread(true);
}

TEST_CASE("under the manual clock the time does not jump while a job is queued or running") {
  corio_test::hang_guard guard{"blocking manual clock", 120s};
  timed_job_behind_a_busy_thread(false);
}

TEST_CASE("a task bound to a worker resumes on it after spawn_blocking") {
  corio_test::hang_guard guard{"blocking bound", 60s};
  corio::runtime rt{{.workers = 2}};
  for (unsigned w : {0u, 1u}) {
    bool cancelled = false;
    auto r = rt.block_on(join_or_cancelled(rt.spawn_on(w, bound_round_trip()), &cancelled));
    CHECK(r == std::optional<unsigned>{w});
  }
}

TEST_CASE("idle blocking threads end after the keep-alive and new ones start when needed") {
  corio_test::hang_guard guard{"blocking keep-alive", 120s};
  gate g;
  corio::runtime rt{{.workers = 2, .max_blocking_threads = 4, .blocking_keep_alive = 20ms}};
  open_on_exit opener{g};
  std::atomic<int> started{0};
  std::vector<corio::join_handle<int>> handles;
  for (int i = 0; i < 4; ++i) handles.push_back(rt.spawn(wait_on_gate(&g, &started, i)));
  REQUIRE(eventually(rt, [&](const corio::blocking_pool_stats& s) { return started.load() == 4 && s.threads == 4; }));
  g.open();
  for (int i = 0; i < 4; ++i) {
    bool cancelled = false;
    CHECK(rt.block_on(join_or_cancelled(std::move(handles[static_cast<std::size_t>(i)]), &cancelled)) ==
          std::optional<int>{i});
  }
  CHECK(eventually(rt, [](const corio::blocking_pool_stats& s) { return s.threads == 0 && s.idle_threads == 0; }));
  std::atomic<int> ran{0};
  bool cancelled = false;
  CHECK(rt.block_on(join_or_cancelled(rt.spawn(mark_when_run(&ran)), &cancelled)) == std::optional<int>{7});
  CHECK(rt.stats().blocking.jobs_run == 5);
}

corio::task<int> trivial_jobs(int count) {
  int sum = 0;
  for (int i = 0; i < count; ++i) sum += co_await corio::spawn_blocking([i] { return i & 1; });
  co_return sum;
}

TEST_CASE("after many short jobs raced for the threads, max_blocking_threads jobs still run at once") {
  // A thread woken for a job that a busy thread took first goes back to waiting; it must count
  // as idle and un-notified again, or later jobs queue behind the busy threads while the idle
  // ones sleep (a 1 GiB O_DIRECT read at depth 32 ran at depth 1 on the Asio reactor that way).
  corio_test::hang_guard guard{"blocking notify accounting", 300s};
  for (int round = 0; round < 3; ++round) {
    gate g;
    // Kept alive for an hour: a thread ending at its keep-alive cannot hide a lost wake.
    corio::runtime rt{{.workers = 2, .max_blocking_threads = 4, .blocking_keep_alive = std::chrono::hours(1)}};
    open_on_exit opener{g};
    const int per_task = static_cast<int>(corio_test::scaled(2000));
    std::vector<corio::join_handle<int>> churn;
    for (int t = 0; t < 8; ++t) churn.push_back(rt.spawn(trivial_jobs(per_task)));
    for (auto& h : churn) {
      bool cancelled = false;
      CHECK(rt.block_on(join_or_cancelled(std::move(h), &cancelled)) == std::optional<int>{per_task / 2});
    }
    REQUIRE(eventually(rt, [](const corio::blocking_pool_stats& s) { return s.idle_threads == s.threads; }));
    std::atomic<int> started{0};
    std::vector<corio::join_handle<int>> handles;
    for (int i = 0; i < 4; ++i) handles.push_back(rt.spawn(wait_on_gate(&g, &started, i)));
    // All four run at once (each blocks until the gate opens): none waits in the queue.
    CHECK(eventually(rt, [&](const corio::blocking_pool_stats& s) { return started.load() == 4 && s.queued == 0; }));
    g.open();
    for (int i = 0; i < 4; ++i) {
      bool cancelled = false;
      CHECK(rt.block_on(join_or_cancelled(std::move(handles[static_cast<std::size_t>(i)]), &cancelled)) ==
            std::optional<int>{i});
    }
  }
}

TEST_CASE("shutdown waits for a running job and drops a queued one") {
  corio_test::hang_guard guard{"blocking shutdown", 120s};
  for (auto grace : {0ms, 50ms}) {
    gate g;
    auto rt = std::make_unique<corio::runtime>(corio::runtime_options{.workers = 2, .max_blocking_threads = 1});
    open_on_exit opener{g};
    std::atomic<int> started{0}, ran{0};
    std::atomic<bool> finished{false}, shut_down{false};
    auto running = rt->spawn(long_result(&g, &started, &finished));
    REQUIRE(eventually(*rt, [&](const corio::blocking_pool_stats&) { return started.load() == 1; }));
    auto queued = rt->spawn(mark_when_run(&ran));
    REQUIRE(eventually(*rt, [](const corio::blocking_pool_stats& s) { return s.queued == 1; }));
    std::thread stopper([&] {
      rt->shutdown(grace);
      shut_down.store(true);
    });
    std::this_thread::sleep_for(100ms);  // room for a wrong early return, not a timing check
    CHECK_FALSE(shut_down.load());
    g.open();
    stopper.join();
    CHECK(finished.load());
    CHECK(ran.load() == 0);
    rt.reset();
  }
}

}  // TEST_SUITE
