// corio/semaphore.hpp - a counting semaphore that parks tasks.
#pragma once

#include <cstdint>

#include "corio/detail/sync_operation.hpp"

namespace corio {

/// A counting semaphore for tasks (std::counting_semaphore's role, Go's golang.org/x/sync
/// semaphore): `co_await s.acquire()` takes one unit, waiting (parked, not blocking the thread)
/// while there is none; release(n) gives units back, handing them to waiters in FIFO order first.
/// The count never goes below zero and never exceeds what was released. Thread-safe; acquire only
/// from a task.
class semaphore {
 public:
  /// `initial` units available.
  explicit semaphore(std::int64_t initial = 0) noexcept : count_(initial < 0 ? 0 : initial) {}
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  class [[nodiscard("co_await it")]] acquire_operation : detail::sync_operation {
   public:
    explicit acquire_operation(semaphore& s) noexcept : sem_(s) {}
    bool await_ready() noexcept { return sem_.try_acquire(); }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, sem_.lock_, sem_.queue_);
      return next(h, sem_.acquire_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait (no unit is taken).
    void await_resume() { settle("corio::semaphore::acquire: cancelled"); }

   private:
    semaphore& sem_;
  };

  /// `co_await s.acquire()`: one unit, waiting while none is available.
  [[nodiscard]] acquire_operation acquire() noexcept { return acquire_operation{*this}; }
  /// Takes a unit if one is available and nobody waits; never waits.
  [[nodiscard]] bool try_acquire() noexcept;
  /// Returns `n` units (n > 0): first to the waiters, in order, then to the count.
  void release(std::int64_t n = 1) noexcept;
  /// Units available now (a snapshot).
  [[nodiscard]] std::int64_t available() const noexcept;

 private:
  bool acquire_or_enqueue(detail::wait_node& node) noexcept;  // lib/sync.cpp

  mutable detail::spin_lock lock_;
  std::int64_t count_;
  detail::wait_list queue_;
};

}  // namespace corio
