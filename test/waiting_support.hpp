// Helpers for tests of waits that must not end by themselves (huge timeouts), under the manual
// clock: check_waits_until_cancelled runs a wait and follows its state.
#pragma once

#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <utility>

namespace corio_test {

/// The state of a wait under test (run_marked).
enum waiter_state : int {
  not_started = 0,
  waiting = 1,    ///< about to wait
  ended = 2,      ///< its wait ended by itself
  cancelled = 3,  ///< its wait ended with operation_cancelled
};

/// Joins `h` and returns its result (rethrows its exception): a join_handle for block_on.
template <class T>
corio::task<T> joined(corio::join_handle<T> h) {
  co_return co_await h;
}

/// Sleeps for `h`: under the manual clock, a way to wait until every worker was idle.
inline corio::task<void> sleep_hours_probe(std::chrono::hours h) { co_await corio::sleep_for(h); }

/// Joins `h`: true when the task ended with operation_cancelled.
inline corio::task<bool> ends_cancelled(corio::join_handle<void> h) {
  try {
    co_await h;
  } catch (const corio::operation_cancelled&) {
    co_return true;
  }
  co_return false;
}

/// Stores `waiting` in `*state`, awaits `wait`, then stores `ended` when it ended by itself (it
/// returned, or threw timed_out), or `cancelled` when it threw operation_cancelled (rethrown).
inline corio::task<void> run_marked(corio::task<void> wait, std::atomic<int>* state) {
  state->store(waiting);
  try {
    co_await std::move(wait);
  } catch (const corio::timed_out&) {  // an operation_cancelled too: first
  } catch (const corio::operation_cancelled&) {
    state->store(cancelled);
    throw;
  }
  state->store(ended);
}

/// Spawns `wait` on `rt` (a manual-clock runtime) and checks that it is still waiting after the
/// runtime went idle (time then jumps to the next timer), after rt.advance(24h) and after another
/// idle jump; then cancels it and checks that it ended with operation_cancelled.
inline void check_waits_until_cancelled(corio::runtime& rt, corio::task<void> wait) {
  std::atomic<int> state{not_started};
  auto h = rt.spawn(run_marked(std::move(wait), &state));
  // Time jumps to this probe's timer only once every worker is idle: the waiter ran and waits.
  rt.block_on(sleep_hours_probe(std::chrono::hours{1}));
  CHECK(state.load() == waiting);
  rt.advance(std::chrono::hours{24});
  // Every timer due by now fired, and the task it woke ran, before the idle jump to this one.
  rt.block_on(sleep_hours_probe(std::chrono::hours{1}));
  CHECK(state.load() == waiting);
  CHECK(h.cancel());
  CHECK(rt.block_on(ends_cancelled(std::move(h))));
  CHECK(state.load() == cancelled);
}

/// check_waits_until_cancelled for `make()` on a new manual-clock runtime of 1, then 2 workers;
/// also checks that time moved only by the two idle jumps of an hour and the advance of 24 h: the
/// wait set no timer that an idle runtime would jump to.
inline void check_waits_with_no_timer(corio::task<void> (*make)()) {
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const auto start = rt.now();
    check_waits_until_cancelled(rt, make());
    CHECK(rt.now() - start == std::chrono::hours{26});
  }
}

}  // namespace corio_test
