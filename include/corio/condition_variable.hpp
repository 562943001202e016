// corio/condition_variable.hpp - a condition variable for tasks holding a corio::mutex.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include "corio/detail/sync_operation.hpp"
#include "corio/mutex.hpp"
#include "corio/task.hpp"

namespace corio {

/// std::condition_variable for tasks and corio::mutex: `co_await cv.wait(guard)` releases the
/// guard's mutex and parks the task until notify_one() or notify_all(), then takes the mutex again
/// before it returns; `co_await cv.wait(guard, pred)` loops until pred() holds (use it: wake-ups
/// may be spurious in principle, and another task may have changed the state before this one got
/// the mutex back). The release and the queueing are one step under the condition variable's
/// lock, so a notify that comes after the release is never lost. Notified tasks are woken in FIFO
/// order. Thread-safe; wait only from a task, holding the guard's mutex.
class CORIO_API condition_variable {
 public:
  condition_variable() noexcept = default;
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;

  /// Releases `guard`'s mutex, waits for a notification, and takes the mutex again. Throws
  /// std::logic_error when the guard does not hold a mutex, and operation_cancelled when the
  /// task's stop ended the wait: the mutex is then held again too (std::condition_variable_any's
  /// stop_token wait does the same).
  task<void> wait(mutex_guard& guard);

  /// As wait(guard), until `pred()` is true (checked first, with the mutex held).
  template <class Predicate>
  task<void> wait(mutex_guard& guard, Predicate pred) {
    while (!pred()) co_await wait(guard);
  }

  /// Wakes the longest-waiting task, if any.
  void notify_one() noexcept;
  /// Wakes every waiting task.
  void notify_all() noexcept;

  /// The awaiter behind wait(): queue, release the mutex, park. Not for direct use.
  class [[nodiscard("co_await it")]] park_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::condition;  ///< for the task dump
    /// Made by wait(); `m` is the mutex the waiting task holds.
    park_operation(condition_variable& cv, mutex& m) noexcept : cv_(cv), mutex_(m) {}
    /// Always false: a wait always parks (the awaiter protocol).
    bool await_ready() const noexcept { return false; }
    /// Queues the task on the condition variable and releases the mutex in one step under the
    /// condition variable's lock (so no notify is lost), then parks it.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, cv_.lock_, cv_.queue_);
      return next(h, !cv_.enqueue_and_unlock(node_, mutex_));
    }
    /// Returns once notified, the mutex not yet taken back (wait() does that). Throws
    /// operation_cancelled when the task's stop ended the wait.
    void await_resume() { settle("corio::condition_variable::wait: cancelled"); }

   private:
    condition_variable& cv_;
    mutex& mutex_;
  };

 private:
  /// Queues `node` (false: the task's stop was requested, nothing queued) and unlocks `m`.
  bool enqueue_and_unlock(detail::wait_node& node, mutex& m) noexcept;  // lib/sync.cpp

  detail::spin_lock lock_;
  detail::wait_list queue_;
};

}  // namespace corio
