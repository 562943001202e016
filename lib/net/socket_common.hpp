// lib/net/socket_common.hpp - what the TCP, UDP and Unix socket types share: the closed-socket
// error, shutdown(2), socket names and int options, and naming an address in an error. Private to
// the library.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <system_error>

#include "corio/detail/file_descriptor.hpp"
#include "corio/errors.hpp"
#include "corio/net/endpoint.hpp"
#include "corio/net/tcp_stream.hpp"  // shutdown_type
#include "socket_api.hpp"

namespace corio::net::detail_socket {

/// Throws std::system_error(EBADF) saying that the socket `what` used is closed or moved from.
[[noreturn]] inline void throw_closed(const char* what) {
  throw std::system_error(EBADF, detail::socket_category(),
                          fmt::format("{}: the socket is closed or was moved from", what));
}

/// shutdown(2) on `socket`; the error (EBADF when closed) in `ec`, cleared on success.
inline void shutdown_socket(const detail::file_descriptor& socket, shutdown_type how,
                            std::error_code& ec) noexcept {
  ec.clear();
  if (!socket.valid()) {
    ec.assign(EBADF, detail::socket_category());
    return;
  }
  const int native = how == shutdown_type::receive ? detail::shut_read
                     : how == shutdown_type::send  ? detail::shut_write
                                                   : detail::shut_both;
  if (::shutdown(socket.get(), native) != 0) ec.assign(detail::socket_error(), detail::socket_category());
}

/// getsockname(2) (`peer` false) or getpeername(2) into `storage` of `capacity` bytes; the size
/// in bytes, or -1 with the errno value in `error` (EBADF for a negative descriptor).
inline long native_name(int fd, bool peer, void* storage, std::uint32_t capacity, int& error) noexcept {
  error = 0;
  if (fd < 0) {
    error = EBADF;
    return -1;
  }
  detail::socket_length_t len = static_cast<detail::socket_length_t>(capacity);
  auto* sa = static_cast<sockaddr*>(storage);
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0) {
    error = detail::socket_error();
    return -1;
  }
  return static_cast<long>(len);
}

/// The local (`peer` false) or peer address of IP socket `fd`. Throws std::system_error with
/// `what`: EBADF when closed, ENOTCONN for the peer of an unconnected socket.
inline endpoint socket_name(int fd, bool peer, const char* what) {
  if (fd < 0) throw_closed(what);
  endpoint e;
  int error = 0;
  const long len = native_name(fd, peer, e.data(), endpoint::capacity(), error);
  if (len < 0) detail::throw_socket_error(error, what);
  e.resize(static_cast<std::uint32_t>(len));
  return e;
}

/// getsockopt(2) of an int option into `value`; 0 or the errno value (EBADF when closed).
inline int get_int_option(int fd, int level, int name, int& value) noexcept {
  if (fd < 0) return EBADF;
  value = 0;
  detail::socket_length_t len = sizeof value;
  return ::getsockopt(fd, level, name, reinterpret_cast<char*>(&value), &len) == 0 ? 0
                                                                                   : detail::socket_error();
}

/// Rethrows the std::system_error in flight from an operation's finish() with `what` and `detail`
/// in its message (the address or path it concerns), keeping its code; operation_cancelled goes
/// on unchanged (its cancelled_by() is what corio::timeout reads). Call from a catch block.
[[noreturn]] inline void rethrow_naming(const std::system_error& e, const char* what,
                                        const std::string& detail) {
  if (dynamic_cast<const operation_cancelled*>(&e) != nullptr) throw;
  throw std::system_error(e.code(), fmt::format("{} {}", what, detail));
}

}  // namespace corio::net::detail_socket
