// corio/time.hpp - time on a runtime: now(), sleep_for, sleep_until, interval, the manual clock.
#pragma once

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "corio/detail/park.hpp"
#include "corio/detail/timer_entry.hpp"

namespace corio {

/// The clock of corio's timers: monotonic, nanosecond resolution. Under a runtime built with
/// `manual_clock`, its time points are those of the runtime's manual time (see now()).
using clock = std::chrono::steady_clock;

/// Where a runtime's time comes from.
enum class clock_source {
  steady,  ///< std::chrono::steady_clock (the default)
  /// Time stands still until runtime::advance(d) moves it, or until every worker is idle, when it
  /// jumps to the earliest pending timer (Tokio's paused time, `tokio::time::pause`; Go's
  /// testing/synctest). Timer-heavy code is then tested deterministically and without waiting.
  manual,
};

/// `runtime_options{.clock = corio::manual_clock}` builds a runtime on paused, manual time.
inline constexpr clock_source manual_clock = clock_source::manual;

namespace detail {

/// The calling worker's runtime time; steady_clock::now() on other threads.
clock::time_point runtime_now() noexcept;

}  // namespace detail

/// The current time of the runtime running the calling task: steady_clock::now(), or the manual
/// time under `manual_clock`. On a thread that is not a worker, steady_clock::now(). Never throws;
/// thread-safe.
[[nodiscard]] inline clock::time_point now() noexcept { return detail::runtime_now(); }

/// The awaiter of sleep_for / sleep_until. Completes at once for a deadline already past (while
/// the worker's cooperation budget lasts). Cancellable: when the task's stop is requested while
/// it sleeps (or before), it throws operation_cancelled and its timer is removed.
class sleep_operation {
 public:
  explicit sleep_operation(clock::time_point deadline) noexcept : deadline_(deadline) {}
  sleep_operation(const sleep_operation&) = delete;
  sleep_operation& operator=(const sleep_operation&) = delete;
  bool await_ready() const noexcept;
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
    detail::prepare_park(park_, h, detail::binding_of(h), nullptr, detail::stop_of(h));
    park_.solo = false;  // the timer and the canceller race for the claim
    timer_.deadline_ns = deadline_.time_since_epoch().count();
    timer_.arm(park_);  // the task resumes on this worker, where the wheel holds its timer
    if (!detail::arm_park(park_)) {
      timer_.disarm();
      return h;  // stop was requested already: await_resume throws
    }
    return detail::transfer(detail::next_after_park());
  }
  /// Throws operation_cancelled when the task's stop ended the sleep.
  void await_resume() {
    detail::disarm_park(park_);
    if (park_.claim.load(std::memory_order_acquire) == detail::park_state::cancelled) {
      timer_.disarm();
      detail::throw_cancelled(park_, "corio::sleep: cancelled");
    }
  }

 private:
  clock::time_point deadline_;
  detail::park_state park_{};
  detail::park_timer timer_{};
};

/// Suspends the calling task until now() >= deadline, never earlier; a deadline in the past
/// completes at once. The timer lives in the hierarchical timer wheel of the worker the task runs
/// on (1 µs ticks, O(1) insert and cancel; Varghese and Lauck, 1987), and that worker's reactor
/// wait is bounded by the wheel's next expiry, so it fires on time even on an idle worker
/// (lateness: the reactor's wake-up latency, tens of µs). Throws operation_cancelled when the
/// task's stop is requested (see sleep_operation), std::logic_error outside a task on a runtime.
[[nodiscard("co_await it")]] inline sleep_operation sleep_until(clock::time_point deadline) noexcept {
  return sleep_operation{deadline};
}

/// Suspends the calling task for at least `duration` (any std::chrono duration; zero or negative
/// completes at once). See sleep_until.
template <class Rep, class Period>
[[nodiscard("co_await it")]] sleep_operation sleep_for(std::chrono::duration<Rep, Period> duration) noexcept {
  return sleep_operation{now() + std::chrono::ceil<clock::duration>(duration)};
}

/// A ticker: `co_await tick.next()` completes at start + period, start + 2 period, ... When the
/// caller falls behind by one or more whole periods, the missed ticks are skipped: next() then
/// completes at once, and the ticks after it stay on the original grid (Go's time.Ticker drops
/// ticks for slow receivers; Tokio's MissedTickBehavior::Skip). Not thread-safe: one task owns it.
class interval {
 public:
  /// First tick one period from now. `period` must be positive (a non-positive period is taken
  /// as 1 ns).
  template <class Rep, class Period>
  explicit interval(std::chrono::duration<Rep, Period> period) noexcept
      : period_(std::max(clock::duration{1}, std::chrono::ceil<clock::duration>(period))),
        next_(now() + period_) {}

  /// The awaitable of the next tick.
  [[nodiscard("co_await it")]] sleep_operation next() noexcept {
    const auto t = now();
    if (next_ + period_ <= t) next_ += ((t - next_) / period_) * period_;  // skip whole missed periods
    const auto deadline = next_;
    next_ += period_;
    return sleep_operation{deadline};
  }

  [[nodiscard]] clock::duration period() const noexcept { return period_; }

 private:
  clock::duration period_;
  clock::time_point next_;
};

}  // namespace corio
