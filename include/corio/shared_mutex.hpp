// corio/shared_mutex.hpp - a readers-writer lock that parks tasks.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstdint>

#include "corio/detail/sync_operation.hpp"

namespace corio {

/// std::shared_mutex for tasks (Go's sync.RWMutex): any number of tasks hold it shared
/// (`co_await m.lock_shared()`) or one holds it exclusively (`co_await m.lock()`). Waiters queue
/// in one FIFO: a reader arriving while a writer waits queues behind it, so writers are not
/// starved, and a release hands the lock to the head of the queue (a writer, or every reader up
/// to the next writer). A queued writer that is cancelled or times out hands the lock on as it
/// leaves: readers queued behind it join the readers holding the lock at once. Thread-safe; the
/// lock operations only from a task; unlocking a lock the caller does not hold is undefined.
class CORIO_API shared_mutex {
 public:
  shared_mutex() noexcept = default;
  shared_mutex(const shared_mutex&) = delete;
  shared_mutex& operator=(const shared_mutex&) = delete;

  /// The awaiter of lock() (`shared` false) and lock_shared() (`shared` true): completes holding
  /// the lock.
  class [[nodiscard("co_await it")]] lock_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::mutex;  ///< for the task dump
    /// Made by lock() and lock_shared().
    lock_operation(shared_mutex& m, bool shared) noexcept : mutex_(m), shared_(shared) {}
    /// Tries the lock: true when the task got it without parking.
    bool await_ready() noexcept { return shared_ ? mutex_.try_lock_shared() : mutex_.try_lock(); }
    /// Queues the task (one FIFO queue for readers and writers) and parks it until the lock is
    /// handed to it.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, mutex_.lock_, mutex_.queue_, shared_ ? 0u : 1u);  // amount 1: a writer
      return next(h, mutex_.lock_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait (the lock is not held). A
    /// cancelled waiter leaving the queue hands the lock on to the waiters it held back (readers
    /// behind a writer, while only readers hold the lock).
    void await_resume() {
      settle("corio::shared_mutex: lock cancelled",
             [this](detail::wait_node*& woken) noexcept { mutex_.hand_off_locked(woken); });
    }

   private:
    shared_mutex& mutex_;
    bool shared_;
  };

  /// `co_await m.lock()`: exclusive ownership.
  [[nodiscard]] lock_operation lock() noexcept { return lock_operation{*this, false}; }
  /// `co_await m.lock_shared()`: shared ownership.
  [[nodiscard]] lock_operation lock_shared() noexcept { return lock_operation{*this, true}; }
  /// Takes it exclusively if nobody holds it and nobody waits; never waits.
  [[nodiscard]] bool try_lock() noexcept;
  /// Takes it shared if no writer holds it and nobody waits; never waits.
  [[nodiscard]] bool try_lock_shared() noexcept;
  /// Releases exclusive ownership and hands the lock to the head of the queue (a writer, or
  /// every reader up to the next writer), waking them.
  void unlock() noexcept;
  /// Releases one shared ownership; the last reader out hands the lock to a waiting writer.
  void unlock_shared() noexcept;

 private:
  bool lock_or_enqueue(detail::wait_node& node) noexcept;  // lib/sync.cpp
  /// Under lock_: gives the lock to the head of the queue while it can take it (a writer alone,
  /// or the readers up to the next writer), chaining the claimed waiters onto `woken`.
  void hand_off_locked(detail::wait_node*& woken) noexcept;

  detail::spin_lock lock_;
  std::int64_t readers_ = 0;  ///< tasks holding it shared
  bool writer_ = false;       ///< a task holds it exclusively
  detail::wait_list queue_;
};

}  // namespace corio
