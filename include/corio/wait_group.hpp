// corio/wait_group.hpp - Go's sync.WaitGroup for tasks.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <cstdint>

#include "corio/detail/sync_operation.hpp"

namespace corio {

/// Go's sync.WaitGroup: add(n) before starting n pieces of work, done() as each finishes, and
/// `co_await wg.wait()` parks the task until the counter is zero (at once if it is). Reusable:
/// the counter may go up again after a wait returned. A counter that would go negative throws
/// std::logic_error (Go panics), one that would exceed INT64_MAX std::overflow_error. Thread-safe;
/// wait only from a task.
class CORIO_API wait_group {
 public:
  wait_group() noexcept = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  /// The awaiter of wait(): completes once the counter is zero.
  class [[nodiscard("co_await it")]] wait_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::condition;  ///< for the task dump
    /// `cancellable`: false for a wait that must outlast the task's cancellation (task_group's
    /// join waiting for cancelled children).
    explicit wait_operation(wait_group& g, bool cancellable = true) noexcept : group_(g), cancellable_(cancellable) {}
    /// True when the counter is zero already: no suspension.
    bool await_ready() const noexcept { return group_.count() == 0; }
    /// Parks the task until done() takes the counter to zero.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, group_.lock_, group_.queue_, 1, cancellable_);
      return next(h, group_.wait_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait.
    void await_resume() { settle("corio::wait_group::wait: cancelled"); }

   private:
    wait_group& group_;
    bool cancellable_;
  };

  /// Adds `n` (may be negative, as in Go) to the counter; at zero every waiter is woken. Throws
  /// std::logic_error when the counter would go below zero, and std::overflow_error when it would
  /// exceed INT64_MAX; the counter is then unchanged.
  void add(std::int64_t n = 1);
  /// add(-1): throws std::logic_error when the counter is zero.
  void done() { add(-1); }
  /// `co_await wg.wait()`: returns once the counter is zero.
  [[nodiscard]] wait_operation wait() noexcept { return wait_operation{*this}; }
  /// The counter now (a snapshot).
  [[nodiscard]] std::int64_t count() const noexcept { return count_.load(std::memory_order_acquire); }

 private:
  bool wait_or_enqueue(detail::wait_node& node) noexcept;  // lib/sync.cpp

  std::atomic<std::int64_t> count_{0};
  detail::spin_lock lock_;
  detail::wait_list queue_;
};

}  // namespace corio
