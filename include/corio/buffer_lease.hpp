// corio/buffer_lease.hpp - bytes a read handed over without a copy: a buffer of the reactor's
// provided buffer ring (io_uring), or a heap buffer owned by the lease (Asio, or no ring).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

namespace corio {

namespace detail {
/// Gives buffer `id` back to the provided buffer ring `ring` (lib/uring_buffers.hpp): into the
/// ring at once on its worker's thread, through the ring's return queue from any other thread.
/// Any thread. Defined in lib/buffer_lease.cpp.
CORIO_API void release_ring_buffer(void* ring, std::uint16_t id) noexcept;
}  // namespace detail

/// The bytes one read received, in a buffer the read handed over instead of copying into the
/// caller's: tcp_stream::read_lease. Move-only; the buffer goes back where it came from when the
/// lease is released (release(), assignment, destruction).
///
/// On io_uring with a provided buffer ring (Linux 5.19; the default), the buffer belongs to the
/// ring of the worker whose reactor received the data, and always goes back to that ring: released
/// on that worker's thread it is put back at once (no lock); released on any other thread (the
/// task moved to another worker, the lease was passed to another task or thread) it is queued
/// under the ring's mutex and the ring's worker puts it back at its next poll. Elsewhere (the Asio
/// reactor, CORIO_URING_NO_BUFRING=1, a kernel without buffer rings, or a ring that stayed dry
/// at its bound) the read went into a heap buffer the lease owns and frees.
///
/// A lease may outlive the runtime whose read produced it: its bytes stay valid (the ring's
/// memory is freed when the last lease of it is released), and releasing it does nothing else.
/// Hold leases briefly: each one held is a ring buffer the kernel cannot fill (runtime_stats'
/// worker_stats::provided_in_use counts them). Not thread-safe: one thread uses a lease at a
/// time (moving it to another thread is fine). Design: io_uring provided buffer rings
/// (io_uring_register_buf_ring(3)), as tokio-uring's and monoio's buffer pools lend them.
class buffer_lease {
 public:
  /// An empty lease (what a read at the end of the stream yields).
  buffer_lease() noexcept = default;
  /// Takes over `other`'s buffer; `other` is left empty.
  buffer_lease(buffer_lease&& other) noexcept
      : ring_(std::exchange(other.ring_, nullptr)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        id_(other.id_) {}
  /// Releases the buffer held (see release()), then takes over `other`'s; `other` is left empty.
  buffer_lease& operator=(buffer_lease&& other) noexcept {
    if (this != &other) {
      release();
      ring_ = std::exchange(other.ring_, nullptr);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      id_ = other.id_;
    }
    return *this;
  }
  buffer_lease(const buffer_lease&) = delete;
  buffer_lease& operator=(const buffer_lease&) = delete;
  ~buffer_lease() { release(); }

  /// The bytes received (writable: the lease owns them until released).
  [[nodiscard]] std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  /// The bytes received, as characters.
  [[nodiscard]] std::string_view chars() const noexcept {
    return {reinterpret_cast<const char*>(data_), size_};
  }
  /// The first byte received; null for an empty lease.
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  /// Bytes received; 0 for an empty lease.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// True for an empty lease (end of stream, moved-from, or released).
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// True when the bytes are in a provided buffer ring's buffer (false: a heap buffer, or empty).
  [[nodiscard]] bool from_ring() const noexcept { return ring_ != nullptr; }

  /// Gives the buffer back now (to its ring, or frees the heap buffer); the lease is empty after.
  /// Idempotent.
  void release() noexcept {
    if (data_ == nullptr) return;
    if (ring_ != nullptr) detail::release_ring_buffer(ring_, id_);
    else delete[] data_;
    ring_ = nullptr;
    data_ = nullptr;
    size_ = 0;
  }

  /// For the library: a lease of ring buffer `id` of `ring`, holding `size` bytes at `data`.
  static buffer_lease from_ring(void* ring, std::uint16_t id, std::byte* data, std::size_t size) noexcept {
    buffer_lease l;
    l.ring_ = ring;
    l.id_ = id;
    l.data_ = data;
    l.size_ = size;
    return l;
  }
  /// For the library: a lease owning `data` (from new std::byte[]), holding `size` bytes.
  static buffer_lease from_heap(std::byte* data, std::size_t size) noexcept {
    buffer_lease l;
    l.data_ = data;
    l.size_ = size;
    return l;
  }

 private:
  void* ring_ = nullptr;  ///< the provided_buffers it came from; null: data_ is a heap buffer
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::uint16_t id_ = 0;
};

}  // namespace corio
