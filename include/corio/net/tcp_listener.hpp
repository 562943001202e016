// corio/net/tcp_listener.hpp - a listening TCP socket with awaitable accept.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>

#include "corio/detail/accept_queue.hpp"
#include "corio/detail/file_descriptor.hpp"
#include "corio/detail/io_operation.hpp"
#include "corio/net/endpoint.hpp"
#include "corio/net/tcp_stream.hpp"

namespace corio::net {

/// Awaiter of tcp_listener::accept: the accepted stream (empty after an error in the error_code
/// form). The peer's address is available from the stream's remote_endpoint(). With the
/// listener's accept queue (`queue`, null: none) on a worker whose reactor has multishot accept,
/// it takes a queued connection or parks on the queue (detail::start_accept); otherwise it is one
/// plain accept request.
class CORIO_API accept_operation : public detail::io_operation {
 public:
  /// Made by tcp_listener::accept(); `ec` null: the throwing form.
  accept_operation(const detail::file_descriptor& socket, detail::accept_queue* queue, std::error_code* ec) noexcept;
  /// A frame destroyed while parked on the queue (shutdown) leaves it.
  ~accept_operation() { detail::abandon_accept(wait_); }

  /// Takes a connection the listener's multishot accept queued (no suspension), parks on that
  /// queue, or submits one accept request to the worker's reactor.
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    if (queue_ != nullptr) {
      const detail::accept_start how =
          detail::start_accept(*queue_, wait_, h, detail::binding_of(h), detail::stop_of(h));
      if (how == detail::accept_start::parked) return true;  // nothing of the frame is touched after this
      if (how == detail::accept_start::ready) {
        served_ = true;
        return false;
      }
    }
    return io_operation::await_suspend(h);
  }
  /// For corio::timeout(): as io_operation::link_deadline, but false when the listener's
  /// multishot accept serves this worker (the accept then parks on the queue, with no request of
  /// its own for a deadline to follow): the timeout then uses the wheel's timer.
  bool link_deadline(detail::io_deadline& d, std::chrono::steady_clock::time_point deadline) noexcept {
    if (queue_ != nullptr && detail::multishot_accept_here()) return false;
    return io_operation::link_deadline(d, deadline);
  }
  /// Returns the accepted stream. Throws std::system_error (EMFILE, ENFILE, ECONNABORTED, ...) or
  /// operation_cancelled; in the error_code form, sets it and returns an empty stream.
  tcp_stream await_resume();

 private:
  endpoint peer_;
  detail::accept_queue* queue_;
  detail::accept_wait wait_;
  bool served_ = false;  ///< start_accept served it at once (wait_.result)
};

/// A TCP socket bound to a local endpoint and listening. Move-only; the descriptor is closed
/// exactly once. bind() sets SO_REUSEADDR (so a restarted server can bind while old connections
/// sit in TIME_WAIT) and, for IPv6, IPV6_V6ONLY. Operations on a closed or moved-from listener
/// throw std::system_error(EBADF).
///
/// Accepting is an io_uring IORING_OP_ACCEPT; accepted descriptors are close-on-exec. On Linux
/// 5.19 and later the listener keeps one multishot accept (IORING_ACCEPT_MULTISHOT) armed on the
/// ring of a worker that accepts, and queues up to 64 accepted connections for the next accepts
/// (beyond that the multishot stops and the kernel's backlog holds them); a cancelled accept
/// leaves a connection that arrives for it queued, and close() closes the queued ones.
/// CORIO_URING_NO_MULTISHOT=1 in the environment when a runtime starts makes its rings use one
/// plain accept per call instead; the Asio reactor always does. When the
/// process runs out of descriptors, accept fails with EMFILE (or ENFILE) and the pending
/// connection stays in the backlog: back off (sleep) and retry, as samples/http_hello does.
/// EINTR and EAGAIN are never reported: the accept is tried again.
/// Several tasks may accept on one listener at once.
class CORIO_API tcp_listener {
 public:
  /// A closed listener (bind() makes an open one).
  tcp_listener() noexcept = default;
  /// Takes over `other`'s socket; `other` is left closed.
  tcp_listener(tcp_listener&&) noexcept = default;
  /// Closes this listener first (see close()), then takes `other`'s socket.
  tcp_listener& operator=(tcp_listener&& other) noexcept {
    if (this != &other) {
      close();
      socket_ = std::move(other.socket_);
      queue_ = std::move(other.queue_);
    }
    return *this;
  }
  ~tcp_listener() { close(); }

  /// Creates, binds and listens. `local` is "host:port": a numeric endpoint ("127.0.0.1:8080",
  /// "[::1]:0"), "localhost:PORT" (127.0.0.1: the first of localhost's addresses, as
  /// net::resolve orders them) or any name ("myhost:8080", the port may be a service name):
  /// it binds the first address the name resolves to. Port 0 picks a free port (see
  /// local_endpoint()). `backlog` is listen(2)'s, capped by the kernel's somaxconn. A name other
  /// than localhost is resolved with getaddrinfo on the calling thread, which blocks it (bind is
  /// synchronous): on a worker, prefer `co_await net::resolve` and bind(endpoint). Throws
  /// std::system_error: EINVAL for text without ":port", a resolve_error naming the host,
  /// EADDRINUSE, EACCES, EMFILE, ... Go's net.Listen("tcp", "localhost:0").
  static tcp_listener bind(std::string_view local, int backlog = 4096);
  /// As bind("host:port"), with the host and the port (a number or a service name) apart:
  /// bind("localhost", "0"). Strings both, so that bind("localhost", 8080) cannot be taken for a
  /// backlog silently: that call is bind(local, backlog) and fails with EINVAL (no port).
  static tcp_listener bind(std::string_view host, std::string_view service, int backlog = 4096);
  /// Creates, binds to the numeric endpoint `local` and listens (no name to resolve). Throws
  /// std::system_error (EADDRINUSE, EACCES, EMFILE, ...).
  static tcp_listener bind(const endpoint& local, int backlog = 4096);

  /// Waits for the next connection; `co_await` yields the stream.
  [[nodiscard]] accept_operation accept() { return accept_operation{checked(), queue_.get(), nullptr}; }
  /// As accept(), reporting failure (EMFILE, ENFILE, ECONNABORTED, ...) in `ec`.
  [[nodiscard]] accept_operation accept(std::error_code& ec) noexcept {
    return accept_operation{socket_, queue_.get(), &ec};
  }

  /// The bound address, with the real port when bound to port 0. Throws std::system_error.
  [[nodiscard]] endpoint local_endpoint() const;

  /// Closes the socket now, and the connections queued by a multishot accept; idempotent. Must
  /// not be called while an accept is in flight (an accept parked on the multishot queue ends
  /// with EBADF; a plain accept request in a ring is undefined).
  void close() noexcept {
    queue_.reset();  // before the descriptor: it shuts the socket down by its number
    socket_.reset();
  }
  /// True until close() (or a move) closed the listener.
  [[nodiscard]] bool is_open() const noexcept { return socket_.valid(); }
  /// The descriptor, -1 when closed. Ownership stays with the listener.
  [[nodiscard]] int native_handle() const noexcept { return socket_.get(); }

 private:
  const detail::file_descriptor& checked() const;
  detail::file_descriptor socket_;
  detail::accept_queue_handle queue_;  ///< the multishot accept state (null when closed)
};

}  // namespace corio::net
