// corio/net/unix.hpp - Unix domain stream sockets: an address type, a listener and a stream.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "corio/detail/file_descriptor.hpp"
#include "corio/detail/io_operation.hpp"
#include "corio/net/tcp_stream.hpp"  // read_some_operation, write_some_operation, write_all_operation,
                                     // write_vectored_operation, shutdown_type

namespace corio::detail {
/// sockaddr storage for a Unix connect (a sockaddr_un is 110 bytes on Linux).
struct alignas(8) unix_address_storage {
  std::byte bytes[128]{};
};
}  // namespace corio::detail

namespace corio::net {

/// The address of a Unix domain socket: a filesystem path, a Linux abstract name (a name in the
/// kernel's own namespace, not a file: nothing to remove afterwards, gone with the last socket
/// bound to it), or unnamed (a socket from unix_stream::pair(), a connecting client's side).
/// Value type; not thread-safe for concurrent mutation. Design: Go's net.UnixAddr (an abstract
/// name is written with a leading '@'), Rust's std::os::unix::net::SocketAddr.
class CORIO_API unix_endpoint {
 public:
  /// An unnamed endpoint.
  unix_endpoint() = default;
  /// The filesystem path `path` (relative paths are resolved against the working directory at
  /// bind or connect time). Throws std::system_error naming the path: ENAMETOOLONG when it does
  /// not fit in sockaddr_un::sun_path with its terminating NUL (107 bytes on Linux), EINVAL when
  /// it is empty or holds a NUL byte.
  explicit unix_endpoint(std::string_view path);
  /// The Linux abstract name `name` (sun_path[0] is NUL, the name follows; it may hold any
  /// bytes). Throws std::system_error: ENAMETOOLONG when it is longer than sun_path minus one
  /// byte (107 on Linux), EINVAL when empty; on other platforms always ENOTSUP ("corio: abstract
  /// Unix socket names are not supported on this platform").
  static unix_endpoint abstract(std::string_view name);
  /// Copies a native sockaddr_un of `size` bytes (as accept(2) or getsockname(2) fill it); a size
  /// that holds no more than the family is unnamed. Throws std::system_error
  /// (EAFNOSUPPORT) for another family.
  static unix_endpoint from_native(const void* address, std::size_t size);

  /// The path, or the abstract name without its leading NUL; empty when unnamed.
  [[nodiscard]] const std::string& path() const noexcept { return name_; }
  /// True for a Linux abstract name (no file; printed "@name").
  [[nodiscard]] bool is_abstract() const noexcept { return abstract_; }
  /// True for an unnamed endpoint (a connecting client's, a socket pair's).
  [[nodiscard]] bool is_unnamed() const noexcept { return name_.empty(); }
  /// The path; "@name" for an abstract name (as Go and ss(8) print it); "(unnamed)" when unnamed.
  [[nodiscard]] std::string to_string() const;

  /// Writes the native sockaddr_un into `storage` (at least 128 bytes, aligned for sockaddr) and
  /// returns its size in bytes, for system calls. Never fails: the constructors checked the name.
  std::uint32_t to_native(void* storage) const noexcept;

  friend bool operator==(const unix_endpoint& a, const unix_endpoint& b) noexcept {
    return a.abstract_ == b.abstract_ && a.name_ == b.name_;
  }

 private:
  std::string name_;
  bool abstract_ = false;
};

class unix_stream;

/// Awaiter of unix_stream::connect: the connected stream (empty after an error in the error_code
/// form). The socket is opened in the constructor; an error there is reported when awaited. The
/// throwing form's message names the path ("corio::net::unix_stream::connect /run/x.sock: No such
/// file or directory").
class CORIO_API unix_connect_operation : public detail::io_operation {
 public:
  /// Made by unix_stream::connect(); `ec` null: the throwing form.
  unix_connect_operation(const unix_endpoint& remote, std::error_code* ec) noexcept;
  /// Returns the connected stream. Throws std::system_error naming the path (ENOENT,
  /// ECONNREFUSED, ...) or operation_cancelled; in the error_code form, sets it and returns an
  /// empty stream.
  unix_stream await_resume();

 private:
  unix_endpoint remote_;  ///< for the error's message
  detail::unix_address_storage address_;
  detail::file_descriptor socket_;
};

/// Awaiter of unix_listener::accept: the accepted stream (empty after an error in the error_code
/// form). The peer is usually unnamed (see unix_stream::remote_endpoint()).
class CORIO_API unix_accept_operation : public detail::io_operation {
 public:
  /// Made by unix_listener::accept(); `ec` null: the throwing form.
  unix_accept_operation(const detail::file_descriptor& socket, std::error_code* ec) noexcept;
  /// Returns the accepted stream. Throws std::system_error (EMFILE, ENFILE, ...) or
  /// operation_cancelled; in the error_code form, sets it and returns an empty stream.
  unix_stream await_resume();
};

/// A connected Unix domain stream socket (SOCK_STREAM). Move-only; the descriptor is closed
/// exactly once, by close() or the destructor. Its reads and writes are those of tcp_stream (the
/// same operations: IORING_OP_RECV and IORING_OP_SEND with MSG_NOSIGNAL, or Asio's), with the
/// same rules: every operation has a throwing form (std::system_error carrying the errno) and a
/// `std::error_code&` form that does not throw; operations on a closed or moved-from stream throw
/// EBADF; EINTR and EAGAIN never reach a read or a write; a write to a peer that closed is EPIPE
/// (never SIGPIPE); cancellation ends a waiting operation with corio::operation_cancelled. One
/// task may read while another writes; two concurrent reads (or writes) are not supported. A
/// stream in the sense of corio/io.hpp (read_some, write_some, native_handle). Design: Go's
/// net.UnixConn, Tokio's tokio::net::UnixStream.
class CORIO_API unix_stream {
 public:
  /// A closed stream (connect(), accept() or pair() make open ones).
  unix_stream() noexcept = default;
  /// Adopts a connected Unix stream socket.
  explicit unix_stream(detail::file_descriptor socket) noexcept : socket_(std::move(socket)) {}
  /// Takes over the other stream's descriptor; the other is left closed.
  unix_stream(unix_stream&&) noexcept = default;
  /// Closes this stream's descriptor, then takes over the other's.
  unix_stream& operator=(unix_stream&&) noexcept = default;
  ~unix_stream() = default;

  /// Connects to the listener at `remote`; `co_await` yields the stream. Throws std::system_error
  /// naming the path: ENOENT (no such file), ECONNREFUSED (a socket file nobody listens on: a
  /// stale one), EACCES, EINVAL for an unnamed endpoint, ENOTSUP for an abstract name off Linux.
  /// The socket it made is closed on failure.
  [[nodiscard]] static unix_connect_operation connect(const unix_endpoint& remote) noexcept {
    return unix_connect_operation{remote, nullptr};
  }
  /// As connect(remote), reporting failure in `ec` and yielding an empty stream.
  [[nodiscard]] static unix_connect_operation connect(const unix_endpoint& remote,
                                                      std::error_code& ec) noexcept {
    return unix_connect_operation{remote, &ec};
  }

  /// Two streams connected to each other (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)):
  /// what one writes the other reads. Synchronous. Throws std::system_error (EMFILE, ...);
  /// on Windows, which has AF_UNIX sockets but no socketpair for them, ENOTSUP ("not supported on
  /// this platform"). Tokio's UnixStream::pair, Go's syscall.Socketpair.
  static std::pair<unix_stream, unix_stream> pair();

  /// Reads at least one byte into `buffer` once some are available; yields the count, or 0 at end
  /// of stream (the peer closed or shut down its side) or for an empty buffer.
  [[nodiscard]] read_some_operation read_some(std::span<std::byte> buffer) {
    return read_some_operation{checked(), buffer, nullptr, "corio::net::unix_stream::read_some"};
  }
  /// As read_some(buffer), reporting failure in `ec` (and yielding 0).
  [[nodiscard]] read_some_operation read_some(std::span<std::byte> buffer, std::error_code& ec) noexcept {
    return read_some_operation{socket_, buffer, &ec, "corio::net::unix_stream::read_some"};
  }
  /// As read_some(std::span<std::byte>), into chars.
  [[nodiscard]] read_some_operation read_some(std::span<char> buffer) {
    return read_some(std::as_writable_bytes(buffer));
  }
  /// As read_some(std::span<std::byte>, std::error_code&), into chars.
  [[nodiscard]] read_some_operation read_some(std::span<char> buffer, std::error_code& ec) noexcept {
    return read_some(std::as_writable_bytes(buffer), ec);
  }

  /// Writes some of `data` in one send; yields the count sent: at least 1 for non-empty data (less
  /// than all of it when the socket's buffer is nearly full), 0 for empty data. Throws
  /// std::system_error (EPIPE when the peer closed). Go's Conn.Write for one system call, Tokio's
  /// AsyncWrite::poll_write.
  [[nodiscard]] write_some_operation write_some(std::span<const std::byte> data) {
    return write_some_operation{checked(), data, nullptr, "corio::net::unix_stream::write_some"};
  }
  /// As write_some(data), reporting failure in `ec` (and yielding 0).
  [[nodiscard]] write_some_operation write_some(std::span<const std::byte> data,
                                                std::error_code& ec) noexcept {
    return write_some_operation{socket_, data, &ec, "corio::net::unix_stream::write_some"};
  }

  /// Writes all of `data`, in as many sends as the kernel needs; yields the byte count. In the
  /// error_code form the count tells how much was written before the error. Cancellation as
  /// tcp_stream::write_all (a prefix may have been sent).
  [[nodiscard]] write_all_operation write_all(std::span<const std::byte> data) {
    return write_all_operation{checked(), data, nullptr, "corio::net::unix_stream::write_all"};
  }
  /// As write_all(data), reporting failure in `ec`.
  [[nodiscard]] write_all_operation write_all(std::span<const std::byte> data, std::error_code& ec) noexcept {
    return write_all_operation{socket_, data, &ec, "corio::net::unix_stream::write_all"};
  }
  /// As write_all(std::span<const std::byte>), for text.
  [[nodiscard]] write_all_operation write_all(std::string_view data) {
    return write_all(std::as_bytes(std::span{data.data(), data.size()}));
  }
  /// As write_all(std::span<const std::byte>, std::error_code&), for text.
  [[nodiscard]] write_all_operation write_all(std::string_view data, std::error_code& ec) noexcept {
    return write_all(std::as_bytes(std::span{data.data(), data.size()}), ec);
  }
  /// Vectored write: every buffer of `buffers`, in order, in as few sendmsg calls as the kernel
  /// needs; yields the byte count. As tcp_stream::write_all(buffers) (see
  /// write_vectored_operation). `buffers` and the bytes must outlive the co_await.
  [[nodiscard]] write_vectored_operation write_all(std::span<const std::span<const std::byte>> buffers) {
    return write_vectored_operation{checked(), buffers, nullptr, "corio::net::unix_stream::write_all"};
  }
  /// As write_all(buffers), reporting failure in `ec` (cleared on success); yields the bytes
  /// written before the error.
  [[nodiscard]] write_vectored_operation write_all(std::span<const std::span<const std::byte>> buffers,
                                                   std::error_code& ec) noexcept {
    return write_vectored_operation{socket_, buffers, &ec, "corio::net::unix_stream::write_all"};
  }

  /// Shuts down one or both directions (the peer reads end of stream after `send`); does not
  /// close the descriptor. Throws std::system_error (EBADF when closed, ENOTCONN).
  void shutdown(shutdown_type how = shutdown_type::both);
  /// As shutdown(how), reporting failure in `ec`.
  void shutdown(shutdown_type how, std::error_code& ec) noexcept;

  /// Closes the descriptor now (the destructor would otherwise); idempotent. Must not be called
  /// while an operation on this stream is in flight.
  void close() noexcept { socket_.reset(); }

  /// The local address: unnamed for a connecting client or a pair. Throws std::system_error
  /// (EBADF when closed).
  [[nodiscard]] unix_endpoint local_endpoint() const;
  /// The peer's address: the listener's path or name for a client, usually unnamed for an
  /// accepted stream. Throws std::system_error (EBADF when closed, ENOTCONN).
  [[nodiscard]] unix_endpoint remote_endpoint() const;

  /// True until close() (or a move) closed the stream.
  [[nodiscard]] bool is_open() const noexcept { return socket_.valid(); }
  /// The descriptor, -1 when closed. Ownership stays with the stream.
  [[nodiscard]] int native_handle() const noexcept { return socket_.get(); }

 private:
  const detail::file_descriptor& checked() const;
  detail::file_descriptor socket_;
};

/// A Unix domain stream socket bound to an address and listening. Move-only; the descriptor is
/// closed exactly once. Operations on a closed or moved-from listener throw
/// std::system_error(EBADF). Several tasks may accept on one listener at once. Accepted
/// descriptors are close-on-exec; EINTR and EAGAIN are never reported. Design: Go's
/// net.UnixListener, Tokio's tokio::net::UnixListener.
///
/// The socket file: bind() creates it and fails with EADDRINUSE when the path exists, whatever
/// it is, a stale socket file from an earlier run included; bind() never removes anything (Go and
/// Tokio do not either: removing a file that another live server is bound to would silently take
/// its address). Remove a stale file yourself before binding when you know it is yours
/// (std::filesystem::remove). Closing the listener does not remove the file either (Tokio does
/// not; Go's UnixListener does by default): the program that made it removes it. An abstract
/// name leaves no file.
class CORIO_API unix_listener {
 public:
  /// A closed listener (bind() makes an open one).
  unix_listener() noexcept = default;
  /// Takes over the other listener's socket; the other is left closed.
  unix_listener(unix_listener&&) noexcept = default;
  /// Closes this listener's socket (its file stays), then takes over the other's.
  unix_listener& operator=(unix_listener&&) noexcept = default;
  ~unix_listener() = default;

  /// Creates the socket, binds it to `local` and listens. `backlog` is listen(2)'s, capped by the
  /// kernel's somaxconn. Synchronous. Throws std::system_error naming the path: EADDRINUSE (the
  /// path exists, see above), ENOENT or EACCES for the directory, EINVAL for an unnamed endpoint,
  /// EMFILE, ...
  static unix_listener bind(const unix_endpoint& local, int backlog = 4096);

  /// Waits for the next connection; `co_await` yields the stream. Throws std::system_error
  /// (EMFILE, ENFILE, ...).
  [[nodiscard]] unix_accept_operation accept() { return unix_accept_operation{checked(), nullptr}; }
  /// As accept(), reporting failure in `ec` and yielding an empty stream.
  [[nodiscard]] unix_accept_operation accept(std::error_code& ec) noexcept {
    return unix_accept_operation{socket_, &ec};
  }

  /// The bound address. Throws std::system_error (EBADF when closed).
  [[nodiscard]] unix_endpoint local_endpoint() const;

  /// Closes the socket now (the file stays, see above); idempotent. Must not be called while an
  /// accept is in flight.
  void close() noexcept { socket_.reset(); }
  /// True until close() (or a move) closed the listener.
  [[nodiscard]] bool is_open() const noexcept { return socket_.valid(); }
  /// The descriptor, -1 when closed. Ownership stays with the listener.
  [[nodiscard]] int native_handle() const noexcept { return socket_.get(); }

 private:
  const detail::file_descriptor& checked() const;
  detail::file_descriptor socket_;
};

}  // namespace corio::net
