// corio/net/udp.hpp - a UDP socket with awaitable datagram sends and receives.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <array>
#include <cstddef>
#include <span>
#include <string_view>
#include <system_error>

#include "corio/detail/file_descriptor.hpp"
#include "corio/detail/io_operation.hpp"
#include "corio/net/endpoint.hpp"

namespace corio::detail {
/// Storage for the msghdr and iovec of one recvmsg or sendmsg, kept opaque so that this header
/// needs no system header (lib/net/udp.cpp checks that they fit).
struct alignas(8) message_storage {
  std::array<std::byte, 96> bytes{};
};
}  // namespace corio::detail

namespace corio::net {

/// What udp_socket::recv_from yields for one datagram.
struct udp_receive_result {
  /// Bytes stored in the buffer. At most the buffer's size: a longer datagram is cut (see
  /// `truncated`). 0 is a datagram with no payload, not an end of stream (UDP has none).
  std::size_t size = 0;
  /// The sender's address (unspecified after an error reported through an error_code).
  endpoint sender;
  /// True when the datagram was longer than the buffer: its first `size` bytes were stored and
  /// the rest was discarded by the kernel (MSG_TRUNC in recvmsg's msg_flags). Go's
  /// UDPConn.ReadMsgUDP reports the same through its flags.
  bool truncated = false;
};

/// Awaiter of udp_socket::recv_from (and of recv, which yields only the size): one recvmsg.
/// Yields a udp_receive_result; after an error reported through the error_code form, a result of
/// size 0 with an unspecified sender.
class CORIO_API udp_recv_operation : public detail::io_operation {
 public:
  /// Made by udp_socket::recv_from() (`want_sender` true) and recv(); `ec` null: the throwing form.
  udp_recv_operation(const detail::file_descriptor& socket, std::span<std::byte> buffer, bool want_sender,
                     std::error_code* ec) noexcept;
  /// Returns the datagram's size, sender and truncation. Throws std::system_error naming the
  /// address (ECONNREFUSED on a connected socket, ...) or operation_cancelled.
  udp_receive_result await_resume();

 private:
  detail::message_storage message_;
  endpoint sender_;
};

/// Awaiter of udp_socket::recv: as udp_recv_operation, yielding the datagram's size only (a
/// longer datagram is cut silently, as Go's UDPConn.Read and Tokio's UdpSocket::recv do).
class udp_recv_size_operation : public udp_recv_operation {
 public:
  /// The constructor of udp_recv_operation.
  using udp_recv_operation::udp_recv_operation;
  /// Returns the datagram's size (at most the buffer's). Throws as udp_recv_operation does.
  std::size_t await_resume() { return udp_recv_operation::await_resume().size; }
};

/// Awaiter of udp_socket::send and send_to: one sendmsg of one datagram; yields the bytes sent
/// (all of `data`: a datagram is sent whole or not at all), 0 after an error reported through
/// the error_code form.
class CORIO_API udp_send_operation : public detail::io_operation {
 public:
  /// `destination` null: the connected peer.
  udp_send_operation(const detail::file_descriptor& socket, std::span<const std::byte> data,
                     const endpoint* destination, std::error_code* ec) noexcept;
  /// Returns the bytes sent (the whole datagram). Throws std::system_error naming the address
  /// (EMSGSIZE, ECONNREFUSED, ...) or operation_cancelled; in the error_code form, sets it and
  /// returns 0.
  std::size_t await_resume();

 private:
  detail::message_storage message_;
  endpoint destination_;
};

/// A UDP socket (IPv4 or IPv6), bound to a local endpoint, optionally connected to a default
/// peer. Move-only; the descriptor is closed exactly once, by close() or the destructor. Design:
/// Go's net.UDPConn and Tokio's tokio::net::UdpSocket (bind, connect, send/recv, send_to/recv_from,
/// the broadcast and multicast options).
///
/// Every datagram operation is an awaitable to `co_await` in a task on a corio runtime: one
/// IORING_OP_RECVMSG or IORING_OP_SENDMSG on io_uring; on Asio the same system call made
/// non-blocking, after waiting for readiness when it would block. Buffers must stay alive until
/// the co_await returns. Every operation has a throwing form (std::system_error carrying the
/// errno, its message naming the address concerned: "corio::net::udp_socket::recv from
/// 127.0.0.1:9: Connection refused") and a form taking `std::error_code&` that does not throw
/// and clears the code on success. Operations on a closed or moved-from socket throw
/// std::system_error(EBADF) (the error_code forms report EBADF). Cancellation (the task's stop)
/// ends a waiting receive or send with corio::operation_cancelled, and the socket stays usable: a
/// datagram is received or sent whole, or not at all. EINTR and EAGAIN never reach the caller.
///
/// Several tasks may receive and send on one socket at once (each datagram goes to one of the
/// receivers); the socket object itself (bind, connect, options, close) is not thread-safe.
/// Sends never raise SIGPIPE. On Windows the datagram operations fail with ENOTSUP for now (the
/// Asio reactor has no recvmsg/sendmsg there); set-up and options work.
///
/// Errors of a connected socket: after a datagram to a port where nothing listens, the kernel
/// gets an ICMP port unreachable and the next receive (or send) on the connected socket fails
/// with ECONNREFUSED (Linux, as Go and Tokio report it); the socket stays usable. An unconnected
/// socket never reports it.
class CORIO_API udp_socket {
 public:
  /// A closed socket (bind() makes an open one).
  udp_socket() noexcept = default;
  /// Adopts a UDP socket descriptor.
  explicit udp_socket(detail::file_descriptor socket) noexcept : socket_(std::move(socket)) {}
  /// Takes over the other socket's descriptor; the other is left closed.
  udp_socket(udp_socket&&) noexcept = default;
  /// Closes this socket's descriptor, then takes over the other's.
  udp_socket& operator=(udp_socket&&) noexcept = default;
  ~udp_socket() = default;

  /// Creates a UDP socket of `local`'s family and binds it to `local`: port 0 lets the kernel
  /// pick a free port (see local_endpoint()), address 0.0.0.0 or [::] receives on every
  /// interface. IPv6 sockets are IPv6 only (IPV6_V6ONLY), as tcp_listener's. No SO_REUSEADDR
  /// (Go and Tokio set none either): a second bind of the same port fails with EADDRINUSE.
  /// Synchronous. Throws std::system_error naming the endpoint: EINVAL for an unparsable text,
  /// EAFNOSUPPORT for an unspecified endpoint, EADDRINUSE, EACCES, EMFILE, ...
  static udp_socket bind(const endpoint& local);
  /// As bind(endpoint::parse(local)): "127.0.0.1:0", "[::1]:5353".
  static udp_socket bind(std::string_view local);

  /// Sets the default peer (connect(2), which for UDP exchanges no packet and is synchronous on
  /// every reactor): send() and recv() then work, datagrams from other addresses are no longer
  /// received, and ICMP errors are reported (ECONNREFUSED, see above). Connecting again changes
  /// the peer. Throws std::system_error naming `remote` (EAFNOSUPPORT for another family,
  /// ENETUNREACH, EBADF when closed).
  void connect(const endpoint& remote);
  /// As connect(remote), reporting failure in `ec`.
  void connect(const endpoint& remote, std::error_code& ec) noexcept;

  /// Sends `data` as one datagram to the connected peer; yields its size in bytes. Throws
  /// std::system_error: EDESTADDRREQ when not connected, EMSGSIZE for a datagram larger than the
  /// protocol allows (65507 bytes over IPv4), ECONNREFUSED (see above), ...
  [[nodiscard]] udp_send_operation send(std::span<const std::byte> data) {
    return udp_send_operation{checked(), data, nullptr, nullptr};
  }
  /// As send(data), reporting failure in `ec` (and yielding 0).
  [[nodiscard]] udp_send_operation send(std::span<const std::byte> data, std::error_code& ec) noexcept {
    return udp_send_operation{socket_, data, nullptr, &ec};
  }
  /// As send(data) for text.
  [[nodiscard]] udp_send_operation send(std::string_view data) { return send(as_bytes(data)); }
  /// As send(data, ec) for text.
  [[nodiscard]] udp_send_operation send(std::string_view data, std::error_code& ec) noexcept {
    return send(as_bytes(data), ec);
  }

  /// Sends `data` as one datagram to `destination` (an endpoint of the socket's family; copied,
  /// so it need not outlive the call); yields its size in bytes. Errors as send(), naming
  /// `destination`; EAFNOSUPPORT or EINVAL for an endpoint of the other family.
  [[nodiscard]] udp_send_operation send_to(std::span<const std::byte> data, const endpoint& destination) {
    return udp_send_operation{checked(), data, &destination, nullptr};
  }
  /// As send_to(data, destination), reporting failure in `ec` (and yielding 0).
  [[nodiscard]] udp_send_operation send_to(std::span<const std::byte> data, const endpoint& destination,
                                           std::error_code& ec) noexcept {
    return udp_send_operation{socket_, data, &destination, &ec};
  }
  /// As send_to(data, destination) for text.
  [[nodiscard]] udp_send_operation send_to(std::string_view data, const endpoint& destination) {
    return send_to(as_bytes(data), destination);
  }
  /// As send_to(data, destination, ec) for text.
  [[nodiscard]] udp_send_operation send_to(std::string_view data, const endpoint& destination,
                                           std::error_code& ec) noexcept {
    return send_to(as_bytes(data), destination, ec);
  }

  /// Receives one datagram from the connected peer into `buffer`; yields its size in bytes (0 for
  /// an empty datagram). A datagram longer than the buffer is cut to the buffer's size silently,
  /// as Go's Read and Tokio's recv do: use recv_from for the `truncated` flag. Throws
  /// std::system_error: ECONNREFUSED after an ICMP port unreachable (see above), ...
  [[nodiscard]] udp_recv_size_operation recv(std::span<std::byte> buffer) {
    return udp_recv_size_operation{checked(), buffer, false, nullptr};
  }
  /// As recv(buffer), reporting failure in `ec` (and yielding 0).
  [[nodiscard]] udp_recv_size_operation recv(std::span<std::byte> buffer, std::error_code& ec) noexcept {
    return udp_recv_size_operation{socket_, buffer, false, &ec};
  }

  /// Receives one datagram into `buffer`; yields its size, its sender and whether it was cut
  /// (udp_receive_result::truncated: the datagram was longer than the buffer, whose size it then
  /// fills; the rest is lost). An empty buffer consumes a datagram and reports it truncated when
  /// it had a payload. On a connected socket only the peer's datagrams arrive. Errors as recv().
  [[nodiscard]] udp_recv_operation recv_from(std::span<std::byte> buffer) {
    return udp_recv_operation{checked(), buffer, true, nullptr};
  }
  /// As recv_from(buffer), reporting failure in `ec` (and yielding size 0).
  [[nodiscard]] udp_recv_operation recv_from(std::span<std::byte> buffer, std::error_code& ec) noexcept {
    return udp_recv_operation{socket_, buffer, true, &ec};
  }

  /// SO_BROADCAST: allows sending to a broadcast address (otherwise EACCES). Throws
  /// std::system_error (EBADF when closed).
  void set_broadcast(bool on);
  /// Whether SO_BROADCAST is set. Throws std::system_error (EBADF when closed).
  [[nodiscard]] bool broadcast() const;

  /// Joins the IPv4 multicast group `group` ("239.1.2.3") on the interface whose IPv4 address is
  /// `interface_address` ("0.0.0.0": the kernel chooses by its routes), IP_ADD_MEMBERSHIP.
  /// Datagrams sent to the group and the socket's port then arrive here. Throws std::system_error:
  /// EINVAL for a text that is not a numeric IPv4 address (naming it), the kernel's errors
  /// (ENODEV: no route or interface for the group; EADDRINUSE: joined already).
  void join_multicast_v4(std::string_view group, std::string_view interface_address = "0.0.0.0");
  /// Leaves a group joined with join_multicast_v4 (IP_DROP_MEMBERSHIP). Errors as join.
  void leave_multicast_v4(std::string_view group, std::string_view interface_address = "0.0.0.0");
  /// Joins the IPv6 multicast group `group` ("ff02::1:3") on the interface of index
  /// `interface_index` (if_nametoindex(3); 0: the kernel chooses), IPV6_JOIN_GROUP. Errors as
  /// join_multicast_v4.
  void join_multicast_v6(std::string_view group, unsigned interface_index = 0);
  /// Leaves a group joined with join_multicast_v6 (IPV6_LEAVE_GROUP).
  void leave_multicast_v6(std::string_view group, unsigned interface_index = 0);
  /// Whether multicast datagrams this socket sends are looped back to the sending host's own
  /// members (IP_MULTICAST_LOOP or IPV6_MULTICAST_LOOP by the socket's family; on by default).
  void set_multicast_loop(bool on);
  /// Whether multicast loop-back is on (see set_multicast_loop). Throws std::system_error.
  [[nodiscard]] bool multicast_loop() const;
  /// The hop limit of multicast datagrams this socket sends, 0-255 (IP_MULTICAST_TTL or
  /// IPV6_MULTICAST_HOPS by the socket's family; default 1: the local network). Throws
  /// std::system_error(EINVAL) for a value over 255.
  void set_multicast_ttl(unsigned hops);
  /// The multicast hop limit (see set_multicast_ttl). Throws std::system_error.
  [[nodiscard]] unsigned multicast_ttl() const;

  /// The bound address, with the real port when bound to port 0. Throws std::system_error.
  [[nodiscard]] endpoint local_endpoint() const;
  /// The connected peer. Throws std::system_error (ENOTCONN when not connected).
  [[nodiscard]] endpoint remote_endpoint() const;

  /// Closes the descriptor now (the destructor would otherwise); idempotent. Must not be called
  /// while an operation on this socket is in flight.
  void close() noexcept { socket_.reset(); }
  /// True until close() (or a move) closed the socket.
  [[nodiscard]] bool is_open() const noexcept { return socket_.valid(); }
  /// The descriptor, -1 when closed. Ownership stays with the socket.
  [[nodiscard]] int native_handle() const noexcept { return socket_.get(); }

 private:
  static std::span<const std::byte> as_bytes(std::string_view text) noexcept {
    return std::as_bytes(std::span{text.data(), text.size()});
  }
  const detail::file_descriptor& checked() const;
  [[nodiscard]] bool is_v6() const;
  void set_option(int level, int name, int value, const char* what);
  [[nodiscard]] int get_option(int level, int name, const char* what) const;
  void membership(bool join, bool v6, std::string_view group, std::string_view interface_address,
                  unsigned interface_index);
  detail::file_descriptor socket_;
};

}  // namespace corio::net
