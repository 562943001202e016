// corio/detail/file_descriptor.hpp - an owned POSIX descriptor.
#pragma once

#include <utility>

namespace corio::detail {

/// Owns one descriptor and closes it exactly once: in the destructor, on reset(), or on
/// move-assignment. A moved-from descriptor holds -1. Not thread-safe.
class file_descriptor {
 public:
  file_descriptor() noexcept = default;
  explicit file_descriptor(int fd) noexcept : fd_(fd) {}
  file_descriptor(file_descriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  file_descriptor& operator=(file_descriptor&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~file_descriptor() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }

  /// Closes the held descriptor (if any) and takes `fd`. Returns the errno of close(), 0 when it
  /// succeeded; the descriptor is released either way (Linux frees it even when close fails).
  int reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

}  // namespace corio::detail
