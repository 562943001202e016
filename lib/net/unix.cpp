// lib/net/unix.cpp - Unix domain stream sockets: addresses, set-up (synchronous) and the
// connect and accept operations; reads and writes are tcp_stream's operations (lib/net/tcp.cpp).
#include "corio/net/unix.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <system_error>

#include "socket_api.hpp"
#include "socket_common.hpp"

#if defined(_WIN32)
#include <afunix.h>
#else
#include <sys/un.h>
#endif

namespace corio::net {
namespace {

using detail::socket_category;
using detail_socket::throw_closed;

constexpr std::size_t path_offset = offsetof(sockaddr_un, sun_path);
constexpr std::size_t path_capacity = sizeof(sockaddr_un::sun_path);
static_assert(sizeof(sockaddr_un) <= sizeof(detail::unix_address_storage::bytes));

[[noreturn]] void throw_name_error(int error, std::string_view name, const char* problem) {
  throw std::system_error(error, socket_category(),
                          fmt::format("corio::net::unix_endpoint '{}': {}", name, problem));
}

unix_endpoint socket_name(int fd, bool peer, const char* what) {
  if (fd < 0) throw_closed(what);
  detail::unix_address_storage storage;
  int error = 0;
  const long len = detail_socket::native_name(fd, peer, storage.bytes, sizeof storage.bytes, error);
  if (len < 0) detail::throw_socket_error(error, what);
  return unix_endpoint::from_native(storage.bytes, static_cast<std::size_t>(len));
}

}  // namespace

// --- unix_endpoint ---------------------------------------------------------------------------

unix_endpoint::unix_endpoint(std::string_view path) {
  if (path.empty())
    throw_name_error(EINVAL, path, "an empty path (use a default-constructed endpoint for unnamed)");
  if (path.find('\0') != std::string_view::npos) throw_name_error(EINVAL, path, "a path with a NUL byte");
  if (path.size() >= path_capacity) {
    throw_name_error(ENAMETOOLONG, path,
                     fmt::format("the path is {} bytes; a Unix socket path holds at most {}", path.size(),
                                 path_capacity - 1)
                         .c_str());
  }
  name_ = path;
}

unix_endpoint unix_endpoint::abstract(std::string_view name) {
#if defined(__linux__)
  if (name.empty()) throw_name_error(EINVAL, name, "an empty abstract name");
  if (name.size() > path_capacity - 1) {
    throw_name_error(
        ENAMETOOLONG, name,
        fmt::format("the abstract name is {} bytes; it holds at most {}", name.size(), path_capacity - 1)
            .c_str());
  }
  unix_endpoint e;
  e.name_ = name;
  e.abstract_ = true;
  return e;
#else
  (void)name;
  throw std::system_error(ENOTSUP, socket_category(),
                          "corio: abstract Unix socket names are not supported on this platform");
#endif
}

unix_endpoint unix_endpoint::from_native(const void* address, std::size_t size) {
  sockaddr_un sa{};
  if (size < sizeof sa.sun_family || size > sizeof sa) {
    throw std::system_error(EAFNOSUPPORT, socket_category(),
                            "corio::net::unix_endpoint: not a Unix socket address");
  }
  std::memcpy(&sa, address, size);
  if (sa.sun_family != AF_UNIX) {
    throw std::system_error(EAFNOSUPPORT, socket_category(),
                            "corio::net::unix_endpoint: not a Unix socket address");
  }
  unix_endpoint e;
  if (size <= path_offset) return e;  // unnamed
  const std::size_t length = size - path_offset;
  if (sa.sun_path[0] == '\0') {
    if (length == 1) return e;  // some systems report unnamed sockets this way
    e.name_.assign(sa.sun_path + 1, length - 1);
    e.abstract_ = true;
    return e;
  }
  e.name_.assign(sa.sun_path, ::strnlen(sa.sun_path, length));
  return e;
}

std::string unix_endpoint::to_string() const {
  if (name_.empty()) return "(unnamed)";
  if (abstract_) return "@" + name_;
  return name_;
}

std::uint32_t unix_endpoint::to_native(void* storage) const noexcept {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::size_t size = path_offset;
  if (abstract_) {
    std::memcpy(sa.sun_path + 1, name_.data(), name_.size());  // sa.sun_path[0] stays NUL
    size += 1 + name_.size();                                  // abstract names are not NUL-terminated
  } else if (!name_.empty()) {
    std::memcpy(sa.sun_path, name_.data(), name_.size());
    size += name_.size() + 1;
  }
  std::memcpy(storage, &sa, sizeof sa);
  return static_cast<std::uint32_t>(size);
}

// --- operations ------------------------------------------------------------------------------

unix_connect_operation::unix_connect_operation(const unix_endpoint& remote, std::error_code* ec) noexcept
    : io_operation(ec, "corio::net::unix_stream::connect") {
  request_.opcode = detail::io_opcode::connect;
  try {
    remote_ = remote;
  } catch (...) {
    fail_early(ENOMEM);
    return;
  }
  if (remote_.is_unnamed()) {
    fail_early(EINVAL);
    return;
  }
  const int fd = detail::open_socket(AF_UNIX, SOCK_STREAM | detail::socket_cloexec, 0);
  if (fd < 0) {
    fail_early(detail::socket_error());
    return;
  }
  socket_ = detail::file_descriptor{fd};
  request_.fd = fd;
  request_.generation = socket_.generation();
  request_.address = address_.bytes;
  request_.address_length = remote_.to_native(address_.bytes);
}

unix_stream unix_connect_operation::await_resume() {
  std::ptrdiff_t n = -1;
  try {
    n = finish();
  } catch (const std::system_error& e) {
    socket_.reset();
    detail_socket::rethrow_naming(e, what_, remote_.to_string());
  }
  if (n < 0) {
    socket_.reset();
    return unix_stream{};
  }
  return unix_stream{std::move(socket_)};
}

unix_accept_operation::unix_accept_operation(const detail::file_descriptor& socket,
                                             std::error_code* ec) noexcept
    : io_operation(ec, "corio::net::unix_listener::accept") {
  request_.opcode = detail::io_opcode::accept;
  request_.fd = socket.get();
  request_.generation = socket.generation();
  request_.address = nullptr;  // the peer is usually unnamed; remote_endpoint() reads it if needed
  request_.address_length = 0;
  if (request_.fd < 0) fail_early(EBADF);
}

unix_stream unix_accept_operation::await_resume() {
  const auto fd = finish();
  if (fd < 0) return unix_stream{};
  return unix_stream{detail::file_descriptor{static_cast<int>(fd)}};
}

// --- unix_stream -----------------------------------------------------------------------------

std::pair<unix_stream, unix_stream> unix_stream::pair() {
#if defined(_WIN32)
  throw std::system_error(ENOTSUP, socket_category(),
                          "corio::net::unix_stream::pair: socketpair is not supported on this platform");
#else
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    detail::throw_socket_error(errno, "corio::net::unix_stream::pair");
  }
  return {unix_stream{detail::file_descriptor{fds[0]}}, unix_stream{detail::file_descriptor{fds[1]}}};
#endif
}

const detail::file_descriptor& unix_stream::checked() const {
  if (!socket_.valid()) throw_closed("corio::net::unix_stream");
  return socket_;
}

void unix_stream::shutdown(shutdown_type how) {
  std::error_code ec;
  shutdown(how, ec);
  if (ec) throw std::system_error(ec, "corio::net::unix_stream::shutdown");
}

void unix_stream::shutdown(shutdown_type how, std::error_code& ec) noexcept {
  detail_socket::shutdown_socket(socket_, how, ec);
}

unix_endpoint unix_stream::local_endpoint() const {
  return socket_name(socket_.get(), false, "corio::net::unix_stream::local_endpoint");
}

unix_endpoint unix_stream::remote_endpoint() const {
  return socket_name(socket_.get(), true, "corio::net::unix_stream::remote_endpoint");
}

// --- unix_listener ---------------------------------------------------------------------------

unix_listener unix_listener::bind(const unix_endpoint& local, int backlog) {
  if (local.is_unnamed()) {
    throw std::system_error(EINVAL, socket_category(),
                            "corio::net::unix_listener::bind: an unnamed endpoint");
  }
  const int fd = detail::open_socket(AF_UNIX, SOCK_STREAM | detail::socket_cloexec, 0);
  if (fd < 0) detail::throw_socket_error(detail::socket_error(), "corio::net::unix_listener::bind: socket");
  unix_listener l;
  l.socket_ = detail::file_descriptor{fd};
  detail::unix_address_storage address;
  const std::uint32_t size = local.to_native(address.bytes);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(address.bytes),
             static_cast<detail::socket_length_t>(size)) != 0) {
    throw std::system_error(detail::socket_error(), socket_category(),
                            fmt::format("corio::net::unix_listener::bind {}", local.to_string()));
  }
  if (::listen(fd, backlog) != 0) {
    throw std::system_error(detail::socket_error(), socket_category(),
                            fmt::format("corio::net::unix_listener::bind {}: listen", local.to_string()));
  }
  return l;
}

const detail::file_descriptor& unix_listener::checked() const {
  if (!socket_.valid()) throw_closed("corio::net::unix_listener");
  return socket_;
}

unix_endpoint unix_listener::local_endpoint() const {
  return socket_name(socket_.get(), false, "corio::net::unix_listener::local_endpoint");
}

}  // namespace corio::net
