// corio/time.hpp - time on a runtime: now(), sleep_for, sleep_until, interval, the manual clock.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <ratio>

#include "corio/detail/park.hpp"
#include "corio/detail/timer_entry.hpp"

namespace corio {

/// The clock of corio's timers: monotonic, nanosecond resolution. Under a runtime built with
/// `manual_clock`, its time points are those of the runtime's manual time (see now()).
using clock = std::chrono::steady_clock;

/// Converts any std::chrono duration to clock::duration (ns), rounding up (a wait is never
/// shorter than asked) and saturating instead of overflowing: a duration past clock::duration's
/// range (about 292 years either way) gives clock::duration::max() or min(); NaN gives zero.
/// Every corio function that takes a duration converts it with this (sleep_for, interval,
/// send_for, recv_for, after, timeout, try_timeout, runtime::shutdown, runtime::advance), so a
/// huge duration means "no deadline" and a hugely negative one "already due". Exact for integral
/// durations whose unit is a whole number or a whole fraction of a nanosecond (every standard
/// one); for floating-point ones and other units the range check and the rounding are done in
/// long double. constexpr, never throws, thread-safe.
template <class Rep, class Period>
[[nodiscard]] constexpr clock::duration to_clock_duration(std::chrono::duration<Rep, Period> d) noexcept {
  using ratio = std::ratio_divide<Period, clock::period>;  // d's unit in clock ticks
  if constexpr (std::chrono::treat_as_floating_point_v<Rep>) {
    if (d.count() != d.count()) return clock::duration::zero();  // NaN (checked first: constexpr)
  }
  const long double x = static_cast<long double>(d.count()) * ratio::num / ratio::den;
  // The limit stays below clock::rep's range by far more than the rounding error of x (1 part in
  // 2^53 even where long double is a double), so whatever passes converts without overflow.
  constexpr long double limit = 9.223e18L;
  if (x >= limit) return clock::duration::max();
  if (x <= -limit) return clock::duration::min();
  if constexpr (!std::chrono::treat_as_floating_point_v<Rep> && (ratio::num == 1 || ratio::den == 1)) {
    return std::chrono::ceil<clock::duration>(d);  // a product or a quotient: exact, in range
  } else {
    const auto t = static_cast<clock::rep>(x);  // toward zero
    return clock::duration{t < x ? t + 1 : t};
  }
}

/// `t + d` without overflow: clock::time_point::max() when the sum is past it, min() when before
/// it. The deadline `d` after `t`: time_point::max() is the deadline that never comes (see
/// sleep_until). Go's timers do the same (time/sleep.go, when(): a deadline that overflows
/// becomes MaxInt64), and Tokio's sleep() falls back to a far-future instant when
/// Instant::checked_add fails. constexpr, never throws, thread-safe.
[[nodiscard]] constexpr clock::time_point deadline_after(clock::time_point t, clock::duration d) noexcept {
  const clock::duration since = t.time_since_epoch();
  if (d > clock::duration::zero() && since > clock::duration::max() - d) return clock::time_point::max();
  if (d < clock::duration::zero() && since < clock::duration::min() - d) return clock::time_point::min();
  return t + d;
}

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
CORIO_API clock::time_point runtime_now() noexcept;

}  // namespace detail

/// The current time of the runtime running the calling task: steady_clock::now(), or the manual
/// time under `manual_clock`. On a thread that is not a worker, steady_clock::now(). Never throws;
/// thread-safe.
[[nodiscard]] inline clock::time_point now() noexcept { return detail::runtime_now(); }

/// The awaiter of sleep_for / sleep_until. Completes at once for a deadline already past (while
/// the worker's cooperation budget lasts). Cancellable: when the task's stop is requested while
/// it sleeps (or before), it throws operation_cancelled and its timer is removed.
class CORIO_API sleep_operation {
 public:
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::sleep;  ///< for the task dump
  /// The deadline in ns of corio::clock's epoch, for the task dump.
  std::uintptr_t corio_wait_object() const noexcept {
    return static_cast<std::uintptr_t>(deadline_.time_since_epoch().count());
  }
  /// Made by sleep_until(), sleep_for() and interval::next(): wakes at `deadline`.
  explicit sleep_operation(clock::time_point deadline) noexcept : deadline_(deadline) {}
  sleep_operation(const sleep_operation&) = delete;
  sleep_operation& operator=(const sleep_operation&) = delete;
  /// True when the deadline has passed already (and the cooperation budget is not spent): no
  /// suspension, no timer.
  bool await_ready() const noexcept;
  /// Arms a timer in the worker's wheel and parks the task until the deadline, or until its stop.
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
/// completes at once. A deadline of clock::time_point::max() (or any after the runtime's end of
/// time, the last microsecond before it) never comes: the task sleeps until it is cancelled, with
/// no timer, and an idle runtime on the manual clock does not jump to it. The timer lives in the
/// hierarchical timer wheel of the worker the task runs on (1 µs ticks, O(1) insert and cancel;
/// Varghese and Lauck, 1987), and that worker's reactor wait is bounded by the wheel's next
/// expiry, so it fires on time even on an idle worker (lateness: the reactor's wake-up latency,
/// tens of µs). Throws operation_cancelled when the task's stop is requested (see
/// sleep_operation), std::logic_error outside a task on a runtime.
[[nodiscard("co_await it")]] inline sleep_operation sleep_until(clock::time_point deadline) noexcept {
  return sleep_operation{deadline};
}

/// Suspends the calling task for at least `duration` (any std::chrono duration; zero or negative
/// completes at once). A duration too large for the clock (nanoseconds::max(), a thousand years)
/// saturates to the deadline that never comes (see to_clock_duration, deadline_after): the task
/// sleeps until it is cancelled. See sleep_until.
template <class Rep, class Period>
[[nodiscard("co_await it")]] sleep_operation sleep_for(std::chrono::duration<Rep, Period> duration) noexcept {
  return sleep_operation{deadline_after(now(), to_clock_duration(duration))};
}

/// A ticker: `co_await tick.next()` completes at start + period, start + 2 period, ... When the
/// caller falls behind by one or more whole periods, the missed ticks are skipped: next() then
/// completes at once, and the ticks after it stay on the original grid (Go's time.Ticker drops
/// ticks for slow receivers; Tokio's MissedTickBehavior::Skip). Not thread-safe: one task owns it.
class interval {
 public:
  /// First tick one period from now. `period` must be positive (a non-positive period is taken
  /// as 1 ns); one too large for the clock saturates (to_clock_duration), and a tick it would put
  /// past the clock's range never comes.
  template <class Rep, class Period>
  explicit interval(std::chrono::duration<Rep, Period> period) noexcept
      : period_(std::max(clock::duration{1}, to_clock_duration(period))),
        next_(deadline_after(now(), period_)) {}

  /// The awaitable of the next tick.
  [[nodiscard("co_await it")]] sleep_operation next() noexcept {
    const auto t = now();
    if (t - next_ >= period_) next_ += ((t - next_) / period_) * period_;  // skip whole missed periods
    const auto deadline = next_;
    next_ = deadline_after(next_, period_);
    return sleep_operation{deadline};
  }

  /// The period between ticks (ns).
  [[nodiscard]] clock::duration period() const noexcept { return period_; }

 private:
  clock::duration period_;
  clock::time_point next_;
};

}  // namespace corio
