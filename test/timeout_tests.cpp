// corio::timeout / deadline / try_timeout (suite "time"), under manual time: an idle runtime
// jumps to the next timer, so a timeout fires deterministically and a timer left behind shows as
// time that moved.
#include <corio/corio.hpp>
#include <corio/testing.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "test_support.hpp"
#include "waiting_support.hpp"

using namespace std::chrono_literals;

namespace {

corio::task<int> value_after(corio::clock::duration d, int v) {
  co_await corio::sleep_for(d);
  co_return v;
}

corio::task<void> never_ends() {
  corio::event never;
  co_await never.wait();
}

corio::task<void> ready_recv_wins() {
  corio::channel<int> ch{1};
  co_await ch.send(5);
  auto v = co_await corio::timeout(1s, ch.recv());
  CHECK(v == std::optional<int>{5});
}

corio::task<void> empty_recv_times_out() {
  corio::channel<int> ch{1};
  const auto start = corio::now();
  bool timed_out = false;
  try {
    auto v = co_await corio::timeout(2s, ch.recv());
    (void)v;
  } catch (const corio::timed_out&) {
    timed_out = true;
  }
  CHECK(timed_out);
  CHECK(corio::now() - start >= 2s);
  // The cancelled receive left no waiter behind: a value sent now stays in the channel.
  CHECK(ch.try_send(9).status == corio::channel_status::delivered);
  auto v = co_await ch.recv();
  CHECK(v == std::optional<int>{9});
  auto none = co_await corio::try_timeout(1s, ch.recv());
  CHECK_FALSE(none.has_value());
}

corio::task<void> task_within_and_past_the_deadline() {
  auto fast = co_await corio::timeout(1s, value_after(10ms, 3));
  CHECK(fast == 3);
  const auto start = corio::now();
  auto slow = co_await corio::try_timeout(1s, value_after(1h, 4));
  CHECK_FALSE(slow.has_value());
  CHECK(corio::now() - start < 1h);  // the inner sleep was cancelled, not waited for
  auto done = co_await corio::try_timeout(1s, corio::sleep_for(1ms));
  CHECK(done);
  bool threw = false;
  try {
    co_await corio::deadline(corio::now() - 1s, never_ends());
  } catch (const corio::timed_out&) {
    threw = true;
  }
  CHECK(threw);
}

corio::task<void> timeout_of_a_join() {
  auto h = corio::spawn(never_ends());
  bool timed_out = false;
  try {
    co_await corio::timeout(1s, h);
  } catch (const corio::timed_out&) {
    timed_out = true;
  }
  CHECK(timed_out);
  CHECK(h.valid());  // the join was withdrawn; the task runs on
  CHECK(h.cancel());
  bool cancelled = false;
  try {
    co_await h;
  } catch (const corio::operation_cancelled&) {
    cancelled = true;
  }
  CHECK(cancelled);
}

corio::task<int> inner_timeout_outer_cancel(std::atomic<bool>* started) {
  started->store(true);
  try {
    co_await corio::timeout(1h, never_ends());
  } catch (const corio::timed_out&) {
    co_return 1;
  } catch (const corio::operation_cancelled&) {
    co_return 2;
  }
  co_return 0;
}

corio::task<void> cancel_beats_timeout() {
  std::atomic<bool> started{false};
  auto h = corio::spawn(inner_timeout_outer_cancel(&started));
  for (int i = 0; i < 1000000 && !started.load(); ++i) co_await corio::yield();
  for (int i = 0; i < 100; ++i) co_await corio::yield();
  h.cancel();
  const int r = co_await h;
  CHECK(r == 2);  // cancelled, not timed out
}

/// A task whose own outcome is a cancellation (it gives up by itself, without any stop).
corio::task<int> gives_up() {
  throw corio::operation_cancelled("the task gave up");
  co_return 0;
}

corio::task<int> times_out_by_itself() {
  throw corio::timed_out("the task timed out by itself");
  co_return 0;
}

corio::task<int> spawn_and_join(bool timed) {
  auto h = corio::spawn(timed ? times_out_by_itself() : gives_up());
  co_return co_await h;
}

/// What a timeout whose deadline has passed reports for an operation that took effect anyway: the
/// join inside ran the task to its end (the task never suspends, so the join's cancellation has
/// nothing to end), and the task's own cancellation is the outcome.
corio::task<void> expired_timeout_keeps_the_outcome() {
  for (bool timed : {false, true}) {
    CAPTURE(timed);
    std::string what;
    bool nullopt = false;
    try {
      auto r = co_await corio::try_deadline(corio::now() - 1s, spawn_and_join(timed));
      nullopt = !r.has_value();
    } catch (const corio::operation_cancelled& e) {
      what = e.what();
    }
    CHECK_FALSE(nullopt);
    CHECK(what.starts_with(timed ? "the task timed out by itself" : "the task gave up"));
    what.clear();
    try {
      co_await corio::deadline(corio::now() - 1s, spawn_and_join(timed));
    } catch (const corio::operation_cancelled& e) {
      what = e.what();
    }
    CHECK(what.starts_with(timed ? "the task timed out by itself" : "the task gave up"));
  }
}

corio::task<int> recv_one(corio::channel<int> ch) {
  auto v = co_await ch.recv();
  co_return v.value_or(-1);
}

/// The deadline's stop reaches the waits through a when_all (the children's own stop states) and
/// through an inner timeout's scope: both are still this timeout's doing.
corio::task<void> deadline_through_forwarders() {
  corio::channel<int> ch{0};
  bool timed = false;
  try {
    auto r = co_await corio::timeout(1s, corio::when_all(recv_one(ch), recv_one(ch)));
    (void)r;
  } catch (const corio::timed_out&) {
    timed = true;
  }
  CHECK(timed);
  timed = false;
  try {
    auto v = co_await corio::timeout(1s, corio::timeout(1h, ch.recv()));
    (void)v;
  } catch (const corio::timed_out& e) {
    timed = std::string(e.what()).starts_with("corio::timeout: the deadline passed");
  }
  CHECK(timed);
}

// --- huge and negative timeouts -------------------------------------------------------------------

/// A thousand years: beyond what corio's clock (nanoseconds in 64 bits, about 292 years) can hold.
constexpr std::chrono::hours thousand_years{24 * 365 * 1000};

/// Receives from an empty channel under timeout(d) (kind 0) or try_timeout(d) (1).
template <class D>
corio::task<void> recv_within(int kind, D d) {
  corio::channel<int> ch{0};
  if (kind == 0) {
    auto v = co_await corio::timeout(d, ch.recv());
    (void)v;
  } else {
    auto v = co_await corio::try_timeout(d, ch.recv());
    (void)v;
  }
}

/// Receives from an empty channel under deadline(time_point::max()).
corio::task<void> recv_until_the_end() {
  corio::channel<int> ch{0};
  auto v = co_await corio::deadline(corio::clock::time_point::max(), ch.recv());
  (void)v;
}


}  // namespace

TEST_SUITE("time") {
  TEST_CASE("timeout: a ready operation wins, an empty receive times out and loses nothing") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      rt.block_on(ready_recv_wins());
      rt.block_on(empty_recv_times_out());
    }
  }
  TEST_CASE("timeout around a task: its result within the deadline, its cancellation past it") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      const auto start = rt.now();
      rt.block_on(task_within_and_past_the_deadline());
      std::this_thread::sleep_for(5ms);
      CHECK(rt.now() - start < 1h);  // no timer left behind
    }
  }
  TEST_CASE("timeout around a join withdraws the join; cancelling the task beats its timeout") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      rt.block_on(timeout_of_a_join());
      rt.block_on(cancel_beats_timeout());
    }
  }
  TEST_CASE("a timeout reports what ended the operation: an outcome that is a cancellation stands after the deadline") {
    for (unsigned workers : {1u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      rt.block_on(expired_timeout_keeps_the_outcome());
      rt.block_on(deadline_through_forwarders());
    }
  }
  TEST_CASE("a deadline at time_point::max() waits until cancelled: the idle manual clock never jumps there") {
    corio_test::hang_guard guard{"deadline at time_point::max()", 120s};
    corio_test::check_waits_with_no_timer(&recv_until_the_end);
  }
  TEST_CASE("a timeout of nanoseconds::max() or a thousand years waits until cancelled") {
    corio_test::hang_guard guard{"endless timeout()", 120s};
    for (unsigned workers : {1u, 2u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      for (int kind = 0; kind < 2; ++kind) {
        CAPTURE(kind);
        corio_test::check_waits_until_cancelled(rt, recv_within(kind, thousand_years));
        corio_test::check_waits_until_cancelled(rt, recv_within(kind, std::chrono::nanoseconds::max()));
      }
    }
  }
  CORIO_TEST_CASE(
      "negative timeouts, however large, are already due: timeout() ends at once and time stays") {
    const auto before = corio::now();
    corio::channel<int> ch{0};
    bool timed_out = false;
    try {
      auto v = co_await corio::timeout(-thousand_years, ch.recv());
      (void)v;
    } catch (const corio::timed_out&) {
      timed_out = true;
    }
    CHECK(timed_out);
    auto v = co_await corio::try_timeout(std::chrono::nanoseconds::min(), ch.recv());
    CHECK(!v.has_value());
    auto w = co_await corio::try_deadline(corio::clock::time_point::min(), ch.recv());
    CHECK(!w.has_value());
    CHECK(corio::now() == before);
  }
}
