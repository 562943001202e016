// lib/uring_buffers.hpp - a worker's provided buffer ring for io_uring receives (issue 19).
//
// A receive submitted with IOSQE_BUFFER_SELECT names a buffer group instead of a buffer: the kernel
// picks a buffer from that group's ring only when data arrives, so a connection waiting for data
// holds no read buffer. The buffer then belongs to the program (a corio::buffer_lease) until it is
// put back in the ring. See docs/internals.md, "Provided buffer rings".
#pragma once

#include <liburing.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "corio/detail/io_operation.hpp"
#include "reactor_factory.hpp"

namespace corio::detail {

/// One provided buffer ring (io_uring_register_buf_ring, Linux 5.19), owned by one uring_reactor.
///
/// Threads: the owner (the reactor's worker) registers the ring, prepares receives, takes the
/// kernel's picks, puts buffers back in the ring and grows it; the ring's tail has a single writer.
/// A lease released on any other thread (its task migrated, or a frame destroyed at shutdown)
/// queues the buffer's id under `mutex_`, and the owner puts the queued ids back at its next poll
/// or when the ring runs dry (`buffer-returns-to-its-ring`).
///
/// Lifetime: reference counted. The reactor holds one reference and every buffer handed out holds
/// one, so a lease that outlives the runtime keeps the buffer memory mapped until it is released
/// (`lease-outlives-ring`); the reactor's reference is dropped by detach(), after the io_uring ring
/// was torn down.
class provided_buffers {
 public:
  /// Registers a ring of config.max_buffers entries (rounded up to a power of two, at most 32768)
  /// as buffer group `group` of `ring` and puts config.initial_buffers buffers of
  /// config.buffer_bytes in it. Returns null when the kernel refuses (before 5.19: EINVAL) or
  /// memory is short; the caller then reads into the caller's or a heap buffer. Owner thread.
  static provided_buffers* create(io_uring& ring, std::uint16_t group, const buffer_ring_config& config) noexcept;

  /// Marks `sqe` (a prepared recv) to take its buffer from this ring. Owner thread.
  void prepare(io_uring_sqe* sqe) const noexcept;

  /// The kernel picked buffer `id` for request `r`, which completed with `result`: for result > 0
  /// the buffer goes to the request (r.buffer, r.buffer_id, r.provided = provided_held); otherwise
  /// it goes straight back into the ring. Owner thread.
  void take(io_request& r, int result, std::uint16_t id) noexcept;

  /// The kernel picked buffer `id` for a receive that completed with `result`: for result > 0
  /// returns the buffer's memory, now held by the caller (give it back with release());
  /// otherwise puts it straight back and returns null. Owner thread.
  std::byte* lend(std::uint16_t id, int result) noexcept;

  /// After an ENOBUFS completion: puts back the buffers released elsewhere and, when the ring is
  /// still empty, grows it (doubling, up to the configured bound). True when the ring holds a
  /// buffer again. Owner thread.
  bool replenish() noexcept;

  /// Puts back the buffers released on other threads, when there are any. Owner thread.
  void drain_returns() noexcept {
    if (has_returns_.load(std::memory_order_acquire)) drain_returns_slow();
  }

  /// Gives buffer `id` back: into the ring at once on the owner's thread while the reactor runs,
  /// through the return queue otherwise. Then drops the buffer's reference (the last frees this).
  /// Any thread.
  static void release(provided_buffers* self, std::uint16_t id) noexcept;

  /// The reactor lets go (after its io_uring ring was torn down): nothing is put back in the ring
  /// any more, and the memory goes when the last lease is released. Any thread, once.
  void detach() noexcept;

  /// Stops treating the calling thread as the owner (the worker is leaving: drain()). Owner thread.
  void leave_owner_thread() noexcept;

  /// Counters for worker_stats. Any thread, relaxed.
  [[nodiscard]] std::uint64_t buffers() const noexcept { return total_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t enobufs() const noexcept { return enobufs_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t grows() const noexcept { return grows_.load(std::memory_order_relaxed); }

  provided_buffers(const provided_buffers&) = delete;
  provided_buffers& operator=(const provided_buffers&) = delete;

 private:
  provided_buffers() = default;
  ~provided_buffers();
  bool grow(unsigned count) noexcept;
  void recycle(std::uint16_t id) noexcept;
  void drain_returns_slow() noexcept;
  void unref() noexcept;

  io_uring_buf_ring* ring_ = nullptr;
  std::size_t ring_bytes_ = 0;
  unsigned entries_ = 0;  ///< the ring's size: the bound on buffers
  unsigned mask_ = 0;
  std::uint16_t group_ = 0;
  std::size_t buffer_bytes_ = 0;
  unsigned available_ = 0;  ///< owner only: buffers in the ring, not yet picked by the kernel
  std::vector<std::byte*> address_;  ///< owner only: buffer id -> its memory
  struct chunk {
    void* base;
    std::size_t bytes;
  };
  std::vector<chunk> chunks_;  ///< owner only (and the destructor): the mappings behind address_

  std::atomic<std::uint64_t> total_{0};
  std::atomic<std::uint64_t> in_use_{0};
  std::atomic<std::uint64_t> enobufs_{0};
  std::atomic<std::uint64_t> grows_{0};
  std::atomic<std::size_t> refs_{1};  ///< the reactor's, plus one per buffer handed out

  std::mutex mutex_;                  ///< guards returned_ and detached_
  std::vector<std::uint16_t> returned_;
  bool detached_ = false;
  std::atomic<bool> has_returns_{false};
};

}  // namespace corio::detail
