// corio/yield.hpp - letting other tasks run.
#pragma once

#include <coroutine>

#include "corio/detail/transfer.hpp"

namespace corio {

namespace detail {
/// Queues `h` at the back of the calling worker's run queue (behind every task already runnable
/// there, never in its LIFO slot). Defined in lib/runtime.cpp. Must be called on a worker thread.
void schedule_yield(std::coroutine_handle<> h) noexcept;
}  // namespace detail

/// The awaiter of corio::yield(): always suspends, and requeues the task behind the tasks already
/// runnable on its worker.
class yield_operation {
 public:
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept {
    detail::schedule_yield(h);  // publishes h: touch nothing after this (llvm #56301)
  }
  void await_resume() const noexcept {}
};

/// `co_await corio::yield()` gives every task already runnable on this worker a turn before the
/// caller continues (Go's `runtime.Gosched`, Tokio's `yield_now`). The caller may continue on
/// another worker. Never throws. Only inside a task on a runtime.
[[nodiscard("co_await it")]] inline yield_operation yield() noexcept { return {}; }

}  // namespace corio
