// lib/run_queue.hpp - a worker's bounded run queue: the owner pushes and pops at the bottom (LIFO),
// thieves take from the top (FIFO).
//
// Choice, by measurement: first the single-producer ring of Go's scheduler (runq, with the owner
// popping FIFO), then the Chase-Lev deque in the C11 form of Le, Pop, Cohen and Zappa Nardelli,
// "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), which this file
// implements. On skynet (a tree of 1,000,000 spawns) the FIFO ring runs the tree breadth-first:
// every node of a level is alive at once, frames overflow the per-thread frame cache into malloc,
// and one worker spent ~8% of its time in malloc/free. The deque runs each worker's own work
// depth-first (live frames bounded by depth x fan-out) while thieves take the oldest task, the
// root of the largest untouched subtree (the work-first principle of Cilk-5, PLDI 1998). Both cost
// one full barrier per owner pop (the ring's CAS, the deque's fence); the deque's push is free of
// read-modify-writes. FIFO fairness comes from elsewhere: the worker takes from the top of its own
// deque every 61st task, yields go to a separate FIFO, and timers and I/O are polled every 32.
//
// The buffer is bounded (capacity fixed at construction): push() reports a full deque and the
// worker moves half of it to the injection queue.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <vector>

#include "corio/detail/assert.hpp"

namespace corio::detail {

/// `capacity` rounded up to a power of two, at least 4 and at most 2^30.
inline std::uint32_t queue_size_for(std::uint32_t capacity) noexcept {
  std::uint32_t c = 4;
  while (c < capacity && c < (1u << 30)) c <<= 1;
  return c;
}

class run_queue {
 public:
  /// `capacity` is rounded up to a power of two, at least 4.
  explicit run_queue(std::uint32_t capacity)
      : mask_(static_cast<std::int64_t>(queue_size_for(capacity)) - 1),
        slots_(std::make_unique<std::atomic<void*>[]>(static_cast<std::size_t>(mask_ + 1))) {}

  std::uint32_t capacity() const noexcept { return static_cast<std::uint32_t>(mask_ + 1); }

  /// Owner only. Pushes `h` at the bottom; false when full.
  bool push(std::coroutine_handle<> h) noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    const std::int64_t t = top_.load(std::memory_order_acquire);
    if (b - t > mask_) return false;
    slots_[b & mask_].store(h.address(), std::memory_order_relaxed);
    // A release store rather than the paper's release fence + relaxed store: the same code on
    // x86 and ARM, and ThreadSanitizer understands it (it does not model standalone fences).
    bottom_.store(b + 1, std::memory_order_release);
    return true;
  }

  /// Owner only. Takes the newest task (the bottom), or a null handle.
  std::coroutine_handle<> pop() noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    if (b < top_.load(std::memory_order_relaxed)) return {};  // cheap empty check: only thieves move top up
    bottom_.store(b, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::int64_t t = top_.load(std::memory_order_relaxed);
    void* p = nullptr;
    if (t <= b) {
      p = slots_[b & mask_].load(std::memory_order_relaxed);
      if (t == b) {  // the last one: race the thieves for it
        if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
          p = nullptr;
        }
        bottom_.store(b + 1, std::memory_order_relaxed);
      }
    } else {
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return std::coroutine_handle<>::from_address(p);
  }

  /// Any thread (thieves, and the owner for FIFO fairness). Takes the oldest task (the top), or a
  /// null handle when the deque is empty or another thief won the race.
  std::coroutine_handle<> steal() noexcept {
    std::int64_t t = top_.load(std::memory_order_acquire);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
    if (t >= b) return {};
    void* p = slots_[t & mask_].load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) return {};
    return std::coroutine_handle<>::from_address(p);
  }

  /// Owner only. Moves the older half into `out` (appended) for a batch move to the injection
  /// queue when the deque is full. Returns how many were moved.
  std::uint32_t take_half(std::vector<std::coroutine_handle<>>& out) {
    const std::uint32_t n = size() / 2;
    std::uint32_t moved = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      auto h = steal();
      if (!h) break;
      out.push_back(h);
      ++moved;
    }
    return moved;
  }

  /// Tasks queued, as seen now by any thread (may be stale by the time it is used).
  std::uint32_t size() const noexcept {
    const std::int64_t t = top_.load(std::memory_order_acquire);
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
    return b > t ? static_cast<std::uint32_t>(b - t) : 0;
  }
  bool empty() const noexcept { return size() == 0; }
  /// Owner only: true when pop() would find nothing, without pop()'s fence. Thieves only move top
  /// up, so a stale top can only make the deque look non-empty (conservative).
  bool empty_owner() const noexcept {
    return bottom_.load(std::memory_order_relaxed) <= top_.load(std::memory_order_relaxed);
  }

 private:
  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  std::int64_t mask_ = 0;
  std::unique_ptr<std::atomic<void*>[]> slots_;
};

}  // namespace corio::detail

namespace corio::detail {

/// A worker's private run queue (Acar, Chargueraud and Rainey, "Scheduling parallel programs by
/// work stealing with private deques", PPoPP 2013): owner-only, no atomics at all. The owner
/// pushes and pops at the back (LIFO) and publishes its oldest tasks to its stealable run_queue
/// only when another worker is looking for work (spinning or idle), so that the common case of a
/// busy machine pays no fence per task. Capacity fixed (power of two); the owner publishes or
/// spills before it is full.
class private_queue {
 public:
  explicit private_queue(std::uint32_t capacity)
      : mask_(queue_size_for(capacity) - 1), slots_(std::make_unique<std::coroutine_handle<>[]>(mask_ + 1)) {}
  std::uint32_t size() const noexcept { return tail_ - head_; }
  std::uint32_t capacity() const noexcept { return mask_ + 1; }
  bool empty() const noexcept { return tail_ == head_; }
  bool full() const noexcept { return tail_ - head_ > mask_; }
  /// Precondition: !full().
  void push_back(std::coroutine_handle<> h) noexcept {
    CORIO_ASSERT(!full(), "private-queue-room");
    slots_[tail_++ & mask_] = h;
  }
  std::coroutine_handle<> pop_back() noexcept { return empty() ? std::coroutine_handle<>{} : slots_[--tail_ & mask_]; }
  std::coroutine_handle<> pop_front() noexcept { return empty() ? std::coroutine_handle<>{} : slots_[head_++ & mask_]; }
  /// The newest task, left in place. Precondition: !empty().
  std::coroutine_handle<> back() const noexcept { return slots_[(tail_ - 1) & mask_]; }

 private:
  std::uint32_t head_ = 0;
  std::uint32_t tail_ = 0;
  std::uint32_t mask_ = 0;
  std::unique_ptr<std::coroutine_handle<>[]> slots_;
};

}  // namespace corio::detail

namespace corio::detail {

/// A worker's FIFO list (I/O completions, yields, timers, bound tasks): an owner-only ring of
/// handles that doubles when full, so pushing and popping are a store and an index bump (the
/// std::deque it replaces cost a segment-map walk per operation). Not thread-safe.
class fifo_queue {
 public:
  fifo_queue() : slots_(std::make_unique<std::coroutine_handle<>[]>(initial)), mask_(initial - 1) {}
  bool empty() const noexcept { return head_ == tail_; }
  void push_back(std::coroutine_handle<> h) {
    if (tail_ - head_ > mask_) grow();
    slots_[tail_++ & mask_] = h;
  }
  std::coroutine_handle<> pop_front() noexcept { return empty() ? std::coroutine_handle<>{} : slots_[head_++ & mask_]; }
  /// pop_front() then push_back(h) in one step: `h` goes behind every queued task and the oldest
  /// comes out. Never grows (one slot is freed before `h` takes one). Precondition: !empty().
  std::coroutine_handle<> rotate(std::coroutine_handle<> h) noexcept {
    std::coroutine_handle<> front = slots_[head_++ & mask_];
    slots_[tail_++ & mask_] = h;
    return front;
  }

 private:
  static constexpr std::size_t initial = 64;
  [[gnu::noinline]] void grow() {  // out of line: keeps push_back's callers free of its spills
    const std::size_t n = mask_ + 1;
    auto bigger = std::make_unique<std::coroutine_handle<>[]>(2 * n);
    for (std::size_t i = 0; i < n; ++i) bigger[i] = slots_[(head_ + i) & mask_];
    slots_ = std::move(bigger);
    head_ = 0;
    tail_ = n;
    mask_ = 2 * n - 1;
  }
  std::unique_ptr<std::coroutine_handle<>[]> slots_;
  std::size_t mask_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
};

}  // namespace corio::detail
