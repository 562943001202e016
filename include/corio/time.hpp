// corio/time.hpp - sleeping: sleep_for and sleep_until.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>

namespace corio {

/// The clock of corio's timers: monotonic, nanosecond resolution.
using clock = std::chrono::steady_clock;

namespace detail {

/// A pending timer, owned by the awaiter that waits on it and held by one worker's timer heap.
struct timer_node {
  clock::time_point deadline{};
  std::coroutine_handle<> waiter{};
  std::uint64_t sequence = 0;  ///< insertion order: ties fire first-in first-out
};

/// Adds `node` to the calling worker's timer heap; the worker resumes node.waiter once its clock
/// reads at least node.deadline. Defined in lib/runtime.cpp. Must be called on a worker thread.
void add_timer(timer_node& node);

}  // namespace detail

/// The awaiter of sleep_for / sleep_until. Completes at once for a deadline already past.
class sleep_operation {
 public:
  explicit sleep_operation(clock::time_point deadline) noexcept { node_.deadline = deadline; }
  bool await_ready() const noexcept { return node_.deadline <= clock::now(); }
  void await_suspend(std::coroutine_handle<> h) {
    node_.waiter = h;
    detail::add_timer(node_);
  }
  void await_resume() const noexcept {}

 private:
  detail::timer_node node_;
};

/// Suspends the calling task until `clock::now() >= deadline`, never earlier; a deadline in the
/// past completes at once without suspending. The timer lives on the worker the task runs on, and
/// the wait of that worker's reactor is bounded by its next deadline, so it fires on time even on
/// an idle worker (lateness is the reactor's wake-up latency, tens of µs). Never throws except
/// std::bad_alloc. Only inside a task on a runtime.
[[nodiscard("co_await it")]] inline sleep_operation sleep_until(clock::time_point deadline) noexcept {
  return sleep_operation{deadline};
}

/// Suspends the calling task for at least `duration` (any std::chrono duration; zero or negative
/// completes at once). See sleep_until.
template <class Rep, class Period>
[[nodiscard("co_await it")]] sleep_operation sleep_for(std::chrono::duration<Rep, Period> duration) noexcept {
  return sleep_operation{clock::now() + std::chrono::ceil<clock::duration>(duration)};
}

}  // namespace corio
