// corio/mutex.hpp - a mutex that parks tasks, not threads.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <cstdint>
#include <utility>

#include "corio/detail/sync_operation.hpp"

namespace corio {

class mutex;

/// Owns a locked corio::mutex and unlocks it when destroyed (std::unique_lock's role; move-only).
/// From `co_await m.scoped_lock()`. Not thread-safe (one task owns it).
class mutex_guard {
 public:
  mutex_guard() noexcept = default;
  /// Adopts `m`, which the caller holds: the guard unlocks it.
  explicit mutex_guard(mutex& m) noexcept : mutex_(&m) {}
  /// Takes over `other`'s lock; `other` holds nothing after.
  mutex_guard(mutex_guard&& other) noexcept : mutex_(std::exchange(other.mutex_, nullptr)) {}
  /// Unlocks the mutex held, if any, then takes over `other`'s lock.
  mutex_guard& operator=(mutex_guard&& other) noexcept {
    if (this != &other) {
      unlock();
      mutex_ = std::exchange(other.mutex_, nullptr);
    }
    return *this;
  }
  ~mutex_guard() { unlock(); }

  /// Unlocks now (idempotent).
  void unlock() noexcept;
  /// True while the guard holds the lock.
  [[nodiscard]] bool owns_lock() const noexcept { return mutex_ != nullptr; }
  /// The mutex held (null once unlocked or moved from); condition_variable uses it.
  [[nodiscard]] mutex* get() const noexcept { return mutex_; }
  /// Gives up ownership without unlocking.
  mutex* release() noexcept { return std::exchange(mutex_, nullptr); }

 private:
  mutex* mutex_ = nullptr;
};

/// A mutual-exclusion lock for tasks: `co_await m.lock()` waits without blocking the worker's
/// thread (the task parks and the worker runs other tasks), `m.unlock()` releases it. Waiters are
/// served in FIFO order and ownership is handed over to the next waiter directly at unlock (the
/// mutex stays locked across the hand-off), so a task that unlocks and relocks at once cannot
/// starve the waiters; an uncontended lock and unlock are one compare-and-swap each. Not
/// recursive; unlocking a mutex the caller does not hold is undefined. Usable from any worker
/// and any thread (lock only from a task). The shape of cppcoro's async_mutex and Go's
/// sync.Mutex in starvation mode.
class CORIO_API mutex {
 public:
  mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  ~mutex() = default;

  /// The awaiter of lock(): completes holding the mutex.
  class [[nodiscard("co_await it")]] lock_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::mutex;  ///< for the task dump
    /// `cancellable`: false for a condition variable taking its mutex back after a wait.
    explicit lock_operation(mutex& m, bool cancellable = true) noexcept : mutex_(m), cancellable_(cancellable) {}
    /// Tries the lock (one compare-and-swap): true when the task got it without parking.
    bool await_ready() noexcept { return mutex_.try_lock(); }
    /// Queues the task (FIFO) and parks it until an unlock hands it the mutex; returns to it at
    /// once when the mutex was unlocked meanwhile.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, mutex_.lock_, mutex_.queue_, 1, cancellable_);
      return next(h, mutex_.lock_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait (the mutex is not held).
    void await_resume() { settle("corio::mutex::lock: cancelled"); }

   protected:
    /// The mutex being locked.
    mutex& mutex_;
    /// False: the wait ignores the task's stop (a condition variable taking its mutex back).
    bool cancellable_;
  };

  /// The awaiter of scoped_lock(): completes holding the mutex, as a mutex_guard.
  class [[nodiscard("co_await it")]] scoped_lock_operation : public lock_operation {
   public:
    using lock_operation::lock_operation;
    /// Returns a guard holding the mutex. Throws operation_cancelled when the task's stop ended
    /// the wait (the mutex is not held).
    mutex_guard await_resume() {
      lock_operation::await_resume();
      return mutex_guard{mutex_};
    }
  };

  /// `co_await m.lock()`: waits until the mutex is this task's. Throws std::logic_error outside a
  /// task on a runtime when it has to wait.
  [[nodiscard]] lock_operation lock() noexcept { return lock_operation{*this}; }
  /// `co_await m.scoped_lock()`: as lock(), giving a guard that unlocks.
  [[nodiscard]] scoped_lock_operation scoped_lock() noexcept { return scoped_lock_operation{*this}; }

  /// Takes the mutex if it is free and nobody waits; never waits. Thread-safe.
  [[nodiscard]] bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, locked, std::memory_order_acquire, std::memory_order_relaxed);
  }

  /// Releases the mutex: hands it to the first waiter if there is one (which then runs on the
  /// calling worker next), else frees it. Thread-safe; the caller must hold the mutex.
  void unlock() noexcept {
    std::uint32_t expected = locked;
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed)) [[likely]] {
      return;
    }
    unlock_slow();
  }

 private:
  static constexpr std::uint32_t locked = 1;   ///< a task holds the mutex
  static constexpr std::uint32_t waiters = 2;  ///< the wait list is not empty (set under lock_)

  bool lock_or_enqueue(detail::wait_node& node);  // lib/sync.cpp
  void unlock_slow() noexcept;                    // lib/sync.cpp

  std::atomic<std::uint32_t> state_{0};
  detail::spin_lock lock_;
  detail::wait_list queue_;
};

inline void mutex_guard::unlock() noexcept {
  if (mutex* m = std::exchange(mutex_, nullptr)) m->unlock();
}

}  // namespace corio
