// corio/yield.hpp - letting other tasks run.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>

#include "corio/detail/task_trace.hpp"
#include "corio/detail/transfer.hpp"

namespace corio {

namespace detail {
/// Spends one unit of the calling worker's cooperation budget; false when it is spent, and the
/// awaitable asking should suspend (and requeue, schedule_yield) even though it could complete at
/// once. The worker refills the budget (runtime_options::budget, default 128) each time it takes a
/// task from its queues. Tokio's coop budget; true off a worker. Defined in lib/worker.cpp.
CORIO_API bool coop_spend() noexcept;
/// Queues `h` at the back of the calling worker's run queue (behind every task already runnable
/// there, never in its LIFO slot). Defined in lib/worker.cpp. Must be called on a worker thread.
CORIO_API void schedule_yield(std::coroutine_handle<> h) noexcept;
/// schedule_yield(h), then what to resume next by symmetric transfer: the next task of the
/// calling worker's local queues (h itself when nothing else is runnable there), with the worker
/// loop's per-task accounting done, or std::noop_coroutine() (back to the loop: maintenance or a
/// stop due). Defined in lib/worker.cpp. Must be called on a worker thread (works on the calling
/// thread's worker only).
CORIO_API std::coroutine_handle<> yield_next(std::coroutine_handle<> h) noexcept;
}  // namespace detail

/// The awaiter of corio::yield(): always suspends, requeues the task behind the tasks already
/// runnable on its worker, and hands the thread straight to the next of them (to the task itself
/// when there is none) instead of returning to the worker loop.
class yield_operation {
 public:
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::yield;  ///< for the task dump
  /// Always false: a yield always suspends.
  bool await_ready() const noexcept { return false; }
  /// Requeues the task behind the runnable ones and hands the thread to the next of them.
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> h) const noexcept {
    return detail::transfer(detail::yield_next(h));  // publishes h: touch nothing after this (llvm #56301)
  }
  /// Returns when the task's turn comes again. Never throws.
  void await_resume() const noexcept {}
};

/// `co_await corio::yield()` gives every task already runnable on this worker a turn before the
/// caller continues (Go's `runtime.Gosched`, Tokio's `yield_now`). The caller may continue on
/// another worker. Never throws. Only inside a task on a runtime.
[[nodiscard("co_await it")]] inline yield_operation yield() noexcept { return {}; }

}  // namespace corio
