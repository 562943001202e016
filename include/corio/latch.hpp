// corio/latch.hpp - a single-use countdown latch that parks tasks.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <cstdint>

#include "corio/detail/sync_operation.hpp"

namespace corio {

/// std::latch for tasks: made with a count; count_down(n) lowers it; `co_await l.wait()` parks
/// the task until it reaches zero (at once if it has). Single use: the count never goes back up.
/// Counting down below zero throws std::logic_error. Thread-safe; wait only from a task.
class CORIO_API latch {
 public:
  /// A latch at `count` (>= 0). Throws std::invalid_argument when `count` is negative.
  explicit latch(std::int64_t count);
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  /// The awaiter of wait(): completes once the count reached zero.
  class [[nodiscard("co_await it")]] wait_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::condition;  ///< for the task dump
    /// Made by wait().
    explicit wait_operation(latch& l) noexcept : latch_(l) {}
    /// True when the count is zero already: the task goes on without parking.
    bool await_ready() const noexcept { return latch_.try_wait(); }
    /// Parks the task until the count reaches zero.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, latch_.lock_, latch_.queue_);
      return next(h, latch_.wait_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait.
    void await_resume() { settle("corio::latch::wait: cancelled"); }

   private:
    latch& latch_;
  };

  /// Lowers the count by `n` (>= 0); at zero every waiter is woken. Throws std::invalid_argument
  /// when `n` is negative, and std::logic_error when it is more than the count left (std::latch
  /// makes both undefined); the count is then unchanged.
  void count_down(std::int64_t n = 1);
  /// True once the count is zero.
  [[nodiscard]] bool try_wait() const noexcept { return count_.load(std::memory_order_acquire) == 0; }
  /// `co_await l.wait()`: returns once the count is zero.
  [[nodiscard]] wait_operation wait() noexcept { return wait_operation{*this}; }

 private:
  bool wait_or_enqueue(detail::wait_node& node) noexcept;  // lib/sync.cpp

  std::atomic<std::int64_t> count_;
  detail::spin_lock lock_;
  detail::wait_list queue_;
};

}  // namespace corio
