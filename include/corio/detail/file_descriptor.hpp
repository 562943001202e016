// corio/detail/file_descriptor.hpp - an owned POSIX descriptor.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstdint>
#include <utility>

namespace corio::detail {

/// A number no other descriptor taken by a file_descriptor in this process has had (a relaxed
/// atomic counter, starting at 1). Reactors that keep per-descriptor state (the Asio reactor's
/// per-worker socket table) tell a reused descriptor number from the socket they registered by
/// it. Thread-safe. Defined in lib/net/tcp.cpp.
CORIO_API std::uint64_t next_descriptor_generation() noexcept;

/// Owns one descriptor and closes it exactly once: in the destructor, on reset(), or on
/// move-assignment. A moved-from descriptor holds -1. Each descriptor it takes gets a fresh
/// generation (see next_descriptor_generation). Not thread-safe.
class CORIO_API file_descriptor {
 public:
  file_descriptor() noexcept = default;
  explicit file_descriptor(int fd) noexcept : fd_(fd), generation_(fd >= 0 ? next_descriptor_generation() : 0) {}
  file_descriptor(file_descriptor&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), generation_(std::exchange(other.generation_, 0)) {}
  file_descriptor& operator=(file_descriptor&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
      generation_ = std::exchange(other.generation_, 0);
    }
    return *this;
  }
  ~file_descriptor() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  /// The generation of the held descriptor; 0 when empty.
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    generation_ = 0;
    return std::exchange(fd_, -1);
  }

  /// Closes the held descriptor (if any) and takes `fd`. Returns the errno of close(), 0 when it
  /// succeeded; the descriptor is released either way (Linux frees it even when close fails).
  int reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
  std::uint64_t generation_ = 0;
};

}  // namespace corio::detail
