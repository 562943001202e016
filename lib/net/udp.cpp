// lib/net/udp.cpp - UDP sockets: set-up and options are synchronous, datagrams move through the
// worker's reactor (io_opcode::recvmsg and sendmsg, for connected sockets too, so that a
// datagram's truncation is seen and an empty datagram is never taken for an end of stream).
#include "corio/net/udp.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <string>
#include <system_error>

#include "socket_api.hpp"
#include "socket_common.hpp"

namespace corio::net {
namespace {

using detail::socket_category;
using detail_socket::throw_closed;

#if !defined(_WIN32)
/// What a message_storage holds: the header and its one buffer.
struct message {
  msghdr header;
  iovec vector;
};
static_assert(sizeof(message) <= sizeof(detail::message_storage::bytes));
static_assert(alignof(message) <= alignof(detail::message_storage));

/// Builds the message in `storage` for `length` bytes at `buffer` and the address at `name` of
/// `name_length` bytes (none when null).
message& prepare_message(detail::message_storage& storage, void* buffer, std::size_t length, void* name,
                         std::uint32_t name_length) noexcept {
  auto* m = new (storage.bytes.data()) message{};
  m->vector.iov_base = buffer;
  m->vector.iov_len = length;
  m->header.msg_iov = &m->vector;
  m->header.msg_iovlen = 1;
  m->header.msg_name = name;
  m->header.msg_namelen = name == nullptr ? 0 : name_length;
  return *m;
}

message& message_in(detail::message_storage& storage) noexcept {
  return *std::launder(reinterpret_cast<message*>(storage.bytes.data()));
}
#else
// Windows: a socket_message (lib/net/socket_api.hpp) in the storage.
using message = detail::socket_message;
static_assert(sizeof(message) <= sizeof(detail::message_storage::bytes));
static_assert(alignof(message) <= alignof(detail::message_storage));

message& prepare_message(detail::message_storage& storage, void* buffer, std::size_t length, void* name,
                         std::uint32_t name_length) noexcept {
  auto* m = new (storage.bytes.data()) message{};
  m->buffer = buffer;
  m->length = length;
  m->name = static_cast<sockaddr*>(name);
  m->name_length = name == nullptr ? 0 : static_cast<int>(name_length);
  return *m;
}

message& message_in(detail::message_storage& storage) noexcept {
  return *std::launder(reinterpret_cast<message*>(storage.bytes.data()));
}
#endif

/// "from 127.0.0.1:9" (the connected peer), else "on 127.0.0.1:5000" (the local address), for
/// an error's message; empty when neither can be read (a closed socket).
std::string describe(int fd, const char* towards) {
  endpoint e;
  int error = 0;
  long len = detail_socket::native_name(fd, true, e.data(), endpoint::capacity(), error);
  if (len > 0) {
    e.resize(static_cast<std::uint32_t>(len));
    return fmt::format("{} {}", towards, e.to_string());
  }
  len = detail_socket::native_name(fd, false, e.data(), endpoint::capacity(), error);
  if (len > 0) {
    e.resize(static_cast<std::uint32_t>(len));
    return fmt::format("on {}", e.to_string());
  }
  return "on a closed socket";
}

/// The IPv4 or IPv6 address `text` into `out` (an in_addr or in6_addr); throws
/// std::system_error(EINVAL) naming it otherwise.
void parse_address(int family, std::string_view text, void* out, const char* what) {
  char buf[64] = {};
  if (text.empty() || text.size() >= sizeof buf) {
    throw std::system_error(EINVAL, socket_category(),
                            fmt::format("{}: '{}' is not a numeric address", what, text));
  }
  std::memcpy(buf, text.data(), text.size());
  if (::inet_pton(family, buf, out) != 1) {
    throw std::system_error(
        EINVAL, socket_category(),
        fmt::format("{}: '{}' is not a numeric {} address", what, text, family == AF_INET ? "IPv4" : "IPv6"));
  }
}

}  // namespace

// --- operations ------------------------------------------------------------------------------

udp_recv_operation::udp_recv_operation(const detail::file_descriptor& socket, std::span<std::byte> buffer,
                                       bool want_sender, std::error_code* ec) noexcept
    : io_operation(ec, want_sender ? "corio::net::udp_socket::recv_from" : "corio::net::udp_socket::recv") {
  request_.opcode = detail::io_opcode::recvmsg;
  request_.fd = socket.get();
  request_.generation = socket.generation();
  message& m = prepare_message(message_, buffer.data(), buffer.size(), want_sender ? sender_.data() : nullptr,
                               endpoint::capacity());
#if defined(_WIN32)
  request_.address = &m;
#else
  request_.address = &m.header;
#endif
  if (request_.fd < 0) fail_early(EBADF);
}

udp_receive_result udp_recv_operation::await_resume() {
  udp_receive_result r;
  std::ptrdiff_t n = -1;
  try {
    n = finish();
  } catch (const std::system_error& e) {
    detail_socket::rethrow_naming(e, what_, describe(request_.fd, "from"));
  }
  if (n < 0) return r;
  r.size = static_cast<std::size_t>(n);
  const message& m = message_in(message_);
#if defined(_WIN32)
  r.truncated = m.truncated;
  if (m.name != nullptr) {
    sender_.resize(static_cast<std::uint32_t>(m.name_length));
    r.sender = sender_;
  }
#else
  r.truncated = (m.header.msg_flags & MSG_TRUNC) != 0;
  if (m.header.msg_name != nullptr) {
    sender_.resize(static_cast<std::uint32_t>(m.header.msg_namelen));
    r.sender = sender_;
  }
#endif
  return r;
}

udp_send_operation::udp_send_operation(const detail::file_descriptor& socket, std::span<const std::byte> data,
                                       const endpoint* destination, std::error_code* ec) noexcept
    : io_operation(
          ec, destination != nullptr ? "corio::net::udp_socket::send_to" : "corio::net::udp_socket::send") {
  request_.opcode = detail::io_opcode::sendmsg;
  request_.fd = socket.get();
  request_.generation = socket.generation();
  if (destination != nullptr) destination_ = *destination;
  // sendmsg only reads the buffer.
  message& m = prepare_message(message_, const_cast<std::byte*>(data.data()), data.size(),
                               destination != nullptr ? destination_.data() : nullptr, destination_.size());
#if defined(_WIN32)
  request_.address = &m;
#else
  request_.address = &m.header;
#endif
  if (request_.fd < 0) {
    fail_early(EBADF);
  } else if (destination != nullptr && !destination_.is_v4() && !destination_.is_v6()) {
    fail_early(EAFNOSUPPORT);  // an unspecified endpoint: the kernel would take it for no address
  }
}

std::size_t udp_send_operation::await_resume() {
  std::ptrdiff_t n = -1;
  try {
    n = finish();
  } catch (const std::system_error& e) {
    if (destination_.size() != 0) detail_socket::rethrow_naming(e, what_, "to " + destination_.to_string());
    detail_socket::rethrow_naming(e, what_, describe(request_.fd, "to"));
  }
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

// --- udp_socket ------------------------------------------------------------------------------

udp_socket udp_socket::bind(std::string_view local) { return bind(endpoint::parse(local)); }

udp_socket udp_socket::bind(const endpoint& local) {
  if (!local.is_v4() && !local.is_v6()) {
    throw std::system_error(EAFNOSUPPORT, socket_category(),
                            "corio::net::udp_socket::bind: not an IPv4 or IPv6 endpoint");
  }
  const int fd = detail::open_socket(local.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | detail::socket_cloexec,
                                     IPPROTO_UDP);
  if (fd < 0) detail::throw_socket_error(detail::socket_error(), "corio::net::udp_socket::bind: socket");
  udp_socket s{detail::file_descriptor{fd}};
  if (local.is_v6()) (void)detail::set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (::bind(fd, static_cast<const sockaddr*>(local.data()),
             static_cast<detail::socket_length_t>(local.size())) != 0) {
    throw std::system_error(detail::socket_error(), socket_category(),
                            fmt::format("corio::net::udp_socket::bind {}", local.to_string()));
  }
  return s;
}

void udp_socket::connect(const endpoint& remote) {
  std::error_code ec;
  connect(remote, ec);
  if (ec) {
    if (ec == std::errc::bad_file_descriptor) throw_closed("corio::net::udp_socket::connect");
    throw std::system_error(ec, fmt::format("corio::net::udp_socket::connect to {}", remote.to_string()));
  }
}

void udp_socket::connect(const endpoint& remote, std::error_code& ec) noexcept {
  ec.clear();
  if (!socket_.valid()) {
    ec.assign(EBADF, socket_category());
    return;
  }
  if (!remote.is_v4() && !remote.is_v6()) {
    ec.assign(EAFNOSUPPORT, socket_category());
    return;
  }
  if (::connect(socket_.get(), static_cast<const sockaddr*>(remote.data()),
                static_cast<detail::socket_length_t>(remote.size())) != 0) {
    ec.assign(detail::socket_error(), socket_category());
  }
}

const detail::file_descriptor& udp_socket::checked() const {
  if (!socket_.valid()) throw_closed("corio::net::udp_socket");
  return socket_;
}

bool udp_socket::is_v6() const { return local_endpoint().is_v6(); }

void udp_socket::set_option(int level, int name, int value, const char* what) {
  if (const int error = detail::set_int_option(checked().get(), level, name, value)) {
    detail::throw_socket_error(error, what);
  }
}

int udp_socket::get_option(int level, int name, const char* what) const {
  int value = 0;
  if (const int error = detail_socket::get_int_option(checked().get(), level, name, value)) {
    detail::throw_socket_error(error, what);
  }
  return value;
}

void udp_socket::set_broadcast(bool on) {
  set_option(SOL_SOCKET, SO_BROADCAST, on ? 1 : 0, "corio::net::udp_socket::set_broadcast");
}

bool udp_socket::broadcast() const {
  return get_option(SOL_SOCKET, SO_BROADCAST, "corio::net::udp_socket::broadcast") != 0;
}

void udp_socket::membership(bool join, bool v6, std::string_view group, std::string_view interface_address,
                            unsigned interface_index) {
  const char* what =
      v6 ? (join ? "corio::net::udp_socket::join_multicast_v6" : "corio::net::udp_socket::leave_multicast_v6")
         : (join ? "corio::net::udp_socket::join_multicast_v4"
                 : "corio::net::udp_socket::leave_multicast_v4");
  const int fd = checked().get();
  int rc = 0;
  if (v6) {
    ipv6_mreq request{};
    parse_address(AF_INET6, group, &request.ipv6mr_multiaddr, what);
    request.ipv6mr_interface = interface_index;
    rc = ::setsockopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP,
                      reinterpret_cast<const char*>(&request), sizeof request);
  } else {
    ip_mreq request{};
    parse_address(AF_INET, group, &request.imr_multiaddr, what);
    parse_address(AF_INET, interface_address, &request.imr_interface, what);
    rc = ::setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP,
                      reinterpret_cast<const char*>(&request), sizeof request);
  }
  if (rc != 0) {
    throw std::system_error(detail::socket_error(), socket_category(), fmt::format("{} {}", what, group));
  }
}

void udp_socket::join_multicast_v4(std::string_view group, std::string_view interface_address) {
  membership(true, false, group, interface_address, 0);
}

void udp_socket::leave_multicast_v4(std::string_view group, std::string_view interface_address) {
  membership(false, false, group, interface_address, 0);
}

void udp_socket::join_multicast_v6(std::string_view group, unsigned interface_index) {
  membership(true, true, group, {}, interface_index);
}

void udp_socket::leave_multicast_v6(std::string_view group, unsigned interface_index) {
  membership(false, true, group, {}, interface_index);
}

void udp_socket::set_multicast_loop(bool on) {
  const bool v6 = is_v6();
  set_option(v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MULTICAST_LOOP : IP_MULTICAST_LOOP, on ? 1 : 0,
             "corio::net::udp_socket::set_multicast_loop");
}

bool udp_socket::multicast_loop() const {
  const bool v6 = is_v6();
  return get_option(v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MULTICAST_LOOP : IP_MULTICAST_LOOP,
                    "corio::net::udp_socket::multicast_loop") != 0;
}

void udp_socket::set_multicast_ttl(unsigned hops) {
  if (hops > 255) {
    throw std::system_error(EINVAL, socket_category(),
                            fmt::format("corio::net::udp_socket::set_multicast_ttl: {} is over 255", hops));
  }
  const bool v6 = is_v6();
  set_option(v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL,
             static_cast<int>(hops), "corio::net::udp_socket::set_multicast_ttl");
}

unsigned udp_socket::multicast_ttl() const {
  const bool v6 = is_v6();
  return static_cast<unsigned>(get_option(v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                                          v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL,
                                          "corio::net::udp_socket::multicast_ttl"));
}

endpoint udp_socket::local_endpoint() const {
  return detail_socket::socket_name(socket_.get(), false, "corio::net::udp_socket::local_endpoint");
}

endpoint udp_socket::remote_endpoint() const {
  return detail_socket::socket_name(socket_.get(), true, "corio::net::udp_socket::remote_endpoint");
}

}  // namespace corio::net
