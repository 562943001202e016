// corio/semaphore.hpp - a counting semaphore that parks tasks.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstdint>

#include "corio/detail/sync_operation.hpp"

namespace corio {

/// A counting semaphore for tasks (std::counting_semaphore's role; Go's golang.org/x/sync
/// semaphore.Weighted): `co_await s.acquire(n)` takes `n` units, waiting (parked, not blocking the
/// thread) while fewer are available; release(n) gives units back. Waiters are served in FIFO
/// order: a large acquire at the head is not starved by smaller ones arriving after it, which wait
/// behind it; when it is cancelled or times out, the ones behind it take what is available at once.
/// The count never goes below zero and never exceeds what was released; it is at most INT64_MAX.
/// Thread-safe; acquire only from a task.
class CORIO_API semaphore {
 public:
  /// `initial` units available (>= 0). Throws std::invalid_argument when `initial` is negative.
  explicit semaphore(std::int64_t initial = 0);
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;

  /// The awaiter of acquire(): completes holding the units asked for.
  class [[nodiscard("co_await it")]] acquire_operation : detail::sync_operation {
   public:
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::semaphore;  ///< for the task dump
    /// `n` >= 0 units (acquire() checks it).
    acquire_operation(semaphore& s, std::int64_t n) noexcept : sem_(s), units_(n) {}
    /// Takes the units at once when available and nobody is queued: true, no suspension.
    bool await_ready() noexcept { return sem_.try_take(units_); }
    /// Queues the task (FIFO) and parks it until a release() hands it its units.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
      prepare(h, sem_.lock_, sem_.queue_, units_);
      return next(h, sem_.acquire_or_enqueue(node_));
    }
    /// Throws operation_cancelled when the task's stop ended the wait (no unit is taken). A
    /// cancelled acquire leaving the queue lets the acquires it held back take the units available.
    void await_resume() {
      settle("corio::semaphore::acquire: cancelled",
             [this](detail::wait_node*& woken) noexcept { sem_.hand_off_locked(woken); });
    }

   private:
    semaphore& sem_;
    std::int64_t units_;
  };

  /// `co_await s.acquire()`: one unit, waiting while none is available.
  [[nodiscard]] acquire_operation acquire() noexcept { return acquire_operation{*this, 1}; }
  /// `co_await s.acquire(n)`: `n` units at once, waiting until that many are available and every
  /// acquire queued before it was served (for as long as it takes: until enough are released, or
  /// the task is cancelled); acquire(0) completes at once. Throws std::invalid_argument when `n`
  /// is negative.
  [[nodiscard]] acquire_operation acquire(std::int64_t n);
  /// Takes one unit if one is available and nobody waits; never waits.
  [[nodiscard]] bool try_acquire() noexcept { return try_take(1); }
  /// Takes `n` units if that many are available and nobody waits (0: always true); never waits.
  /// Throws std::invalid_argument when `n` is negative.
  [[nodiscard]] bool try_acquire(std::int64_t n);
  /// Returns `n` units (n >= 0; 0 does nothing) and hands them to the waiters, in order, as far as
  /// they go. Throws std::invalid_argument when `n` is negative, and std::overflow_error when the
  /// count plus `n` would exceed INT64_MAX; the count is then unchanged.
  void release(std::int64_t n = 1);
  /// Units available now (a snapshot).
  [[nodiscard]] std::int64_t available() const noexcept;

 private:
  bool try_take(std::int64_t n) noexcept;                     // lib/sync.cpp
  bool acquire_or_enqueue(detail::wait_node& node) noexcept;  // lib/sync.cpp
  /// Under lock_: serves the head of the queue while the count covers it, chaining the claimed
  /// waiters onto `woken`.
  void hand_off_locked(detail::wait_node*& woken) noexcept;

  mutable detail::spin_lock lock_;
  std::int64_t count_;
  detail::wait_list queue_;
};

}  // namespace corio
