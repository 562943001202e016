// corio/net/endpoint.hpp - an IPv4 or IPv6 address and port.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace corio::net {

/// An IP address and a port: an IPv4 or IPv6 socket address, stored as the native sockaddr. A
/// default-constructed endpoint is unspecified (family AF_UNSPEC, size 0). Value type; not
/// thread-safe for concurrent mutation.
class CORIO_API endpoint {
 public:
  endpoint() noexcept = default;

  /// Parses a numeric endpoint: "1.2.3.4:8080" or "[::1]:8080" (IPv6 in brackets, an optional
  /// "%scope" allowed). Port 0 asks the OS for a free port when binding. No name resolution.
  /// Throws std::system_error(std::errc::invalid_argument) naming the text on anything else.
  static endpoint parse(std::string_view text);

  /// Like parse(), returning std::nullopt instead of throwing.
  static std::optional<endpoint> try_parse(std::string_view text) noexcept;

  /// Copies a native sockaddr of `size` bytes (AF_INET or AF_INET6). Throws
  /// std::system_error(std::errc::address_family_not_supported) for other families or sizes.
  static endpoint from_native(const void* address, std::size_t size);

  /// The port in host byte order; 0 for an unspecified endpoint.
  [[nodiscard]] std::uint16_t port() const noexcept;
  /// True for an IPv4 endpoint (AF_INET).
  [[nodiscard]] bool is_v4() const noexcept;
  /// True for an IPv6 endpoint (AF_INET6).
  [[nodiscard]] bool is_v6() const noexcept;
  /// The address alone: "127.0.0.1", "::1".
  [[nodiscard]] std::string address_string() const;
  /// The endpoint as parse() reads it: "127.0.0.1:8080", "[::1]:8080".
  [[nodiscard]] std::string to_string() const;

  /// The native sockaddr and its size in bytes, for system calls.
  [[nodiscard]] const void* data() const noexcept { return storage_.data(); }
  /// The native sockaddr, writable, for a system call that fills it (then call resize()).
  [[nodiscard]] void* data() noexcept { return storage_.data(); }
  /// The size in bytes of the native sockaddr; 0 for an unspecified endpoint.
  [[nodiscard]] std::uint32_t size() const noexcept { return size_; }
  /// The most bytes data() holds (a sockaddr_storage: 128).
  [[nodiscard]] static constexpr std::uint32_t capacity() noexcept { return 128; }
  /// Sets the size after a system call filled data(); must not exceed capacity().
  void resize(std::uint32_t size) noexcept { size_ = size; }

  friend CORIO_API bool operator==(const endpoint& a, const endpoint& b) noexcept;

 private:
  alignas(8) std::array<std::byte, 128> storage_{};  // sizeof(sockaddr_storage)
  std::uint32_t size_ = 0;
};

}  // namespace corio::net
