// task_group and when_any (suite "cancel").
#include <corio/corio.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio_test::scaled;

namespace {

corio::task<void> wait_forever(std::atomic<int>* cancelled) {
  try {
    corio::event never;
    co_await never.wait();
  } catch (const corio::operation_cancelled&) {
    cancelled->fetch_add(1);
    throw;
  }
}

corio::task<void> fail_after(corio::clock::duration d) {
  co_await corio::sleep_for(d);
  throw std::runtime_error("child failed");
}

corio::task<void> first_error_cancels_siblings(unsigned siblings) {
  std::atomic<int> cancelled{0};
  corio::task_group g;
  for (unsigned i = 0; i < siblings; ++i) g.spawn(wait_forever(&cancelled));
  g.spawn(fail_after(1ms));
  bool rethrown = false;
  try {
    co_await g.join();
  } catch (const std::runtime_error& e) {
    rethrown = std::string{e.what()} == "child failed";
  }
  CHECK(rethrown);
  CHECK(cancelled.load() == static_cast<int>(siblings));
  CHECK(g.pending() == 0);
}

corio::task<void> bounded_child(std::atomic<int>* running, std::atomic<int>* peak, std::atomic<int>* done) {
  const int now = running->fetch_add(1) + 1;
  int seen = peak->load();
  while (now > seen && !peak->compare_exchange_weak(seen, now)) {
  }
  co_await corio::yield();
  co_await corio::sleep_for(std::chrono::microseconds{50});
  running->fetch_sub(1);
  done->fetch_add(1);
}

corio::task<void> max_concurrency_holds(std::size_t limit, int children) {
  std::atomic<int> running{0}, peak{0}, done{0};
  corio::task_group g{limit};
  for (int i = 0; i < children; ++i) g.spawn(bounded_child(&running, &peak, &done));
  co_await g.join();
  CHECK(done.load() == children);
  CHECK(peak.load() <= static_cast<int>(limit));
  CHECK(g.max_observed_concurrency() <= limit);
}

corio::task<int> children_done(std::size_t limit, int children) {
  std::atomic<int> running{0}, peak{0}, done{0};
  corio::task_group g{limit};
  for (int i = 0; i < children; ++i) g.spawn(bounded_child(&running, &peak, &done));
  co_await g.join();
  co_return done.load();
}

corio::task<void> scope_exit_cancels(std::atomic<int>* cancelled) {
  corio::task_group g;
  for (int i = 0; i < 8; ++i) g.spawn(wait_forever(cancelled));
  co_await corio::yield();
  // Leaving the scope without join(): the children are cancelled and end on their own.
}

corio::task<void> joiner_cancelled(std::atomic<int>* cancelled, std::atomic<bool>* started) {
  corio::task_group g;
  for (int i = 0; i < 4; ++i) g.spawn(wait_forever(cancelled));
  started->store(true);
  co_await g.join();
}

corio::task<void> cancel_the_joiner() {
  std::atomic<int> cancelled{0};
  std::atomic<bool> started{false};
  auto h = corio::spawn(joiner_cancelled(&cancelled, &started));
  for (int i = 0; i < 1000000 && !started.load(); ++i) co_await corio::yield();
  for (int i = 0; i < 100; ++i) co_await corio::yield();
  h.cancel();
  bool threw = false;
  try {
    co_await h;
  } catch (const corio::operation_cancelled&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(cancelled.load() == 4);  // join() waited for every child before it threw
}

corio::task<int> value_after(corio::clock::duration d, int v) {
  co_await corio::sleep_for(d);
  co_return v;
}

corio::task<int> counted_forever(std::atomic<int>* cancelled) {
  co_await wait_forever(cancelled);
  co_return 0;
}

corio::task<void> when_any_first_wins() {
  std::atomic<int> cancelled{0};
  auto r = co_await corio::when_any(counted_forever(&cancelled), value_after(1ms, 7), counted_forever(&cancelled));
  CHECK(r.index() == 1);
  CHECK(std::get<1>(r) == 7);
  CHECK(cancelled.load() == 2);  // the losers were cancelled and waited for
  bool threw = false;
  try {
    auto e = co_await corio::when_any(fail_after(1ms), counted_forever(&cancelled));
    (void)e;
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(cancelled.load() == 3);
}


// A supervising group: `failing` children throw after a sleep while `siblings` others wait for
// a release; every failure reaches the callback, no sibling is cancelled, join does not throw.
corio::task<void> sibling_until(corio::event* release, std::atomic<int>* finished, std::atomic<int>* cancelled) {
  try {
    co_await release->wait();
    co_await corio::yield();
    finished->fetch_add(1);
  } catch (const corio::operation_cancelled&) {
    cancelled->fetch_add(1);
    throw;
  }
}

corio::task<void> fail_after_yields(int yields) {
  for (int i = 0; i < yields; ++i) co_await corio::yield();
  throw std::runtime_error("connection reset");
}

corio::task<void> supervised_failures_leave_siblings_running(int siblings, int failing) {
  std::atomic<int> reported{0};
  std::atomic<int> finished{0};
  std::atomic<int> cancelled{0};
  std::atomic<bool> wrong_exception{false};
  corio::event release;
  corio::task_group g{corio::task_group::policy::supervise, [&](std::exception_ptr e) {
                        try {
                          std::rethrow_exception(e);
                        } catch (const std::runtime_error& err) {
                          if (std::string{err.what()} != "connection reset") wrong_exception = true;
                        } catch (...) {
                          wrong_exception = true;
                        }
                        reported.fetch_add(1);
                      }};
  CHECK(g.failure_policy() == corio::task_group::policy::supervise);
  for (int i = 0; i < siblings; ++i) g.spawn(sibling_until(&release, &finished, &cancelled));
  for (int i = 0; i < failing; ++i) g.spawn(fail_after_yields(i % 4));
  // Every failure is reported while the siblings still wait (bounded: each failing child needs
  // at most 4 yields). A failing child is reported before it leaves the group, so on several
  // workers pending() may still count it just after the report: wait for both (TSan once saw
  // 17 == 16 when the test checked pending() right after the last report).
  for (int i = 0; i < 100'000 && (reported.load() != failing || g.pending() != siblings); ++i) {
    co_await corio::yield();
  }
  // A worker running a failing child can be descheduled for longer than those yields take on a
  // loaded machine (a release run under load saw 4 of 5 reported): wait on, sleeping, up to a
  // minute before calling it lost.
  for (int i = 0; i < 60'000 && (reported.load() != failing || g.pending() != siblings); ++i) {
    co_await corio::sleep_for(std::chrono::milliseconds{1});
  }
  CHECK(reported.load() == failing);
  CHECK(cancelled.load() == 0);
  CHECK(g.pending() == siblings);
  release.set();
  bool threw = false;
  try {
    co_await g.join();
  } catch (...) {
    threw = true;
  }
  CHECK_FALSE(threw);
  CHECK_FALSE(wrong_exception.load());
  CHECK(finished.load() == siblings);
  CHECK(cancelled.load() == 0);
  CHECK(reported.load() == failing);
}

// The callback throws on the second failure: that escalates as fail-fast does (siblings
// cancelled, join rethrows the callback's exception).
corio::task<void> throwing_callback_escalates() {
  std::atomic<int> calls{0};
  std::atomic<int> cancelled{0};
  corio::task_group g{corio::task_group::policy::supervise, [&](std::exception_ptr) {
                        if (calls.fetch_add(1) == 1) throw std::logic_error("supervisor gives up");
                      }};
  for (int i = 0; i < 8; ++i) g.spawn(wait_forever(&cancelled));
  g.spawn(fail_after(1ms));
  g.spawn(fail_after(2ms));
  std::string what;
  try {
    co_await g.join();
  } catch (const std::logic_error& e) {
    what = e.what();
  }
  CHECK(what == "supervisor gives up");
  CHECK(calls.load() == 2);
  CHECK(cancelled.load() == 8);
  CHECK(g.pending() == 0);
}

corio::task<void> leaf_child(std::atomic<int>* done) {
  co_await corio::yield();
  done->fetch_add(1);
}

// Many children at once (a server's connections): each leaves the group's list as it ends.
corio::task<void> many_children(int n, std::atomic<int>* done) {
  corio::task_group g;
  for (int i = 0; i < n; ++i) g.spawn(leaf_child(done));
  co_await g.join();
}

// Many children parked at once, then cancelled: cancel reaches every one of them.
corio::task<void> many_children_cancelled(int n) {
  std::atomic<int> cancelled{0};
  corio::task_group g;
  for (int i = 0; i < n; ++i) g.spawn(wait_forever(&cancelled));
  for (int i = 0; i < 1000; ++i) co_await corio::yield();
  g.cancel();
  co_await g.join();
  CHECK(cancelled.load() == n);
}

}  // namespace

TEST_SUITE("cancel") {
  TEST_CASE("task_group: the first failure cancels the siblings and join rethrows it") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      for (int round = 0; round < static_cast<int>(scaled(20)); ++round) rt.block_on(first_error_cancels_siblings(16));
    }
  }
  TEST_CASE("task_group: max_concurrency is never exceeded") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      rt.block_on(max_concurrency_holds(3, static_cast<int>(scaled(200))));
      rt.block_on(max_concurrency_holds(1, 50));
    }
  }
  TEST_CASE("task_group: a max_concurrency beyond INT64_MAX runs every child") {
    corio_test::hang_guard guard{"task_group with a huge max_concurrency", 60s};
    corio::runtime rt{{.workers = 2}};
    CHECK(rt.block_on(children_done(std::numeric_limits<std::size_t>::max(), 20)) == 20);
    CHECK(rt.block_on(children_done(std::size_t{1} << 63, 20)) == 20);
  }
  TEST_CASE("task_group: leaving the scope cancels running children; cancelling the joiner cancels them too") {
    corio_test::hang_guard guard{"task_group scope exit", 60s};
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      std::atomic<int> cancelled{0};
      {
        corio::runtime rt{{.workers = workers}};
        rt.block_on(scope_exit_cancels(&cancelled));
        for (int i = 0; i < 10'000 && cancelled.load() != 8; ++i) std::this_thread::sleep_for(1ms);
        CHECK(cancelled.load() == 8);
        for (int i = 0; i < 10'000 && rt.stats().live_tasks != 0; ++i) std::this_thread::sleep_for(1ms);
        CHECK(rt.stats().live_tasks == 0);  // no child leaked
        rt.block_on(cancel_the_joiner());
      }
    }
  }
  TEST_CASE("when_any: the first to finish wins, the others are cancelled and waited for") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      rt.block_on(when_any_first_wins());
    }
  }
  TEST_CASE("task_group: a supervising group reports each failure and its siblings go on") {
    corio_test::hang_guard guard{"supervising task_group", 120s};
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      for (int round = 0; round < static_cast<int>(scaled(20)); ++round) {
        rt.block_on(supervised_failures_leave_siblings_running(16, 5));
      }
    }
  }
  TEST_CASE("task_group: a supervising group whose callback throws escalates as fail-fast") {
    corio_test::hang_guard guard{"supervising task_group escalates", 120s};
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      for (int round = 0; round < static_cast<int>(scaled(10)); ++round) rt.block_on(throwing_callback_escalates());
    }
  }
  TEST_CASE("task_group: policy::supervise without a callback, or fail_fast with one, is refused") {
    CHECK_THROWS_AS(corio::task_group(corio::task_group::policy::supervise, nullptr), std::invalid_argument);
    CHECK_THROWS_AS(corio::task_group(corio::task_group::policy::fail_fast, [](std::exception_ptr) {}),
                    std::invalid_argument);
    corio::task_group g{corio::task_group::policy::fail_fast, nullptr};
    CHECK(g.failure_policy() == corio::task_group::policy::fail_fast);
  }
  TEST_CASE("task_group: tens of thousands of children finish, or are cancelled, each exactly once") {
    corio_test::hang_guard guard{"task_group with many children", 120s};
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      const int n = static_cast<int>(scaled(20'000));
      std::atomic<int> done{0};
      rt.block_on(many_children(n, &done));
      CHECK(done.load() == n);
      rt.block_on(many_children_cancelled(static_cast<int>(scaled(15'000))));
      for (int i = 0; i < 10'000 && rt.stats().live_tasks != 0; ++i) std::this_thread::sleep_for(1ms);
      CHECK(rt.stats().live_tasks == 0);
    }
  }
}
