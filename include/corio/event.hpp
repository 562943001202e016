// corio/event.hpp - a manual-reset event that parks tasks.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>

#include "corio/detail/sync_operation.hpp"

namespace corio {

/// A manual-reset event (cppcoro's async_manual_reset_event, .NET's ManualResetEvent):
/// `co_await e.wait()` completes at once while the event is set and parks the task otherwise;
/// set() wakes every waiter and lets later waits through until reset(). Thread-safe; wait only
/// from a task.
class CORIO_API event {
 public:
  /// An event, set when `initially_set` (then waits complete at once until reset()).
  explicit event(bool initially_set = false) noexcept : set_(initially_set) {}
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  /// The awaiter of wait(): completes once the event is set.
  class [[nodiscard("co_await it")]] wait_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::condition;  ///< for the task dump
    /// Made by wait().
    explicit wait_operation(event& e) noexcept : event_(e) {}
    /// True while the event is set: the task goes on without parking.
    bool await_ready() const noexcept { return event_.is_set(); }
    /// Parks the task until set() (or returns to it at once when the event was set meanwhile).
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, event_.lock_, event_.queue_);
      return next(h, event_.wait_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait.
    void await_resume() { settle("corio::event::wait: cancelled"); }

   private:
    event& event_;
  };

  /// `co_await e.wait()`: returns once the event is set.
  [[nodiscard]] wait_operation wait() noexcept { return wait_operation{*this}; }
  /// Sets the event and wakes every waiting task. Idempotent.
  void set() noexcept;
  /// Clears the event: later waits park until the next set().
  void reset() noexcept;
  /// True while the event is set (a snapshot).
  [[nodiscard]] bool is_set() const noexcept { return set_.load(std::memory_order_acquire); }

 private:
  bool wait_or_enqueue(detail::wait_node& node) noexcept;  // lib/sync.cpp

  std::atomic<bool> set_;
  detail::spin_lock lock_;
  detail::wait_list queue_;
};

}  // namespace corio
