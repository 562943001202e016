// lib/asio_reactor.hpp - the portable reactor: one standalone-Asio io_context per worker.
//
// No Asio header is included here: the io_context, the socket table and every Asio type live in
// asio_reactor_state.hpp (included only by asio_reactor.cpp and, on Windows, asio_socket_service.cpp),
// behind a pointer, so that the rest of the library and everything that includes corio's headers
// compiles without it.
#pragma once

#include <memory>
#include <string>

#include "reactor.hpp"

namespace corio::detail {

/// A reactor over one `asio::io_context` (epoll on Linux, kqueue on the BSDs and macOS, IOCP on
/// Windows), created on and driven only by its worker's thread, like the io_uring reactor.
///
/// Asio binds a socket object to one io_context, while a corio socket is a plain descriptor that
/// tasks use from any worker. Each worker therefore keeps a table, indexed by descriptor number,
/// of the Asio socket (or acceptor) it registered for each descriptor it has served, with that
/// descriptor's generation (file_descriptor::generation): a request whose generation differs
/// finds a socket that was closed and whose number was reused, releases the stale Asio object
/// (release(), never close(): the descriptor belongs to corio) and registers the new one. A
/// descriptor thus stays registered with each worker's epoll set from its first operation there
/// until it is closed (the kernel drops closed descriptors from epoll sets by itself), the way an
/// Asio program keeps a socket registered for its lifetime, so a request costs what it costs in
/// Asio. Each io_opcode maps to one Asio operation (async_accept, async_connect, async_receive,
/// async_send); a completion handler hands the result to the worker like an io_uring completion
/// (-errno, 0 at end of stream). wake() posts one handler to the io_context (at most one is
/// pending), so a wake that comes before the wait makes the wait return at once. A cancellable
/// request's operation is bound to a pooled asio::cancellation_signal (bind_cancellation_slot);
/// cancellers leave requests in cancels() and the owner emits cancellation_type::terminal on their
/// signals at its next poll() or wait() (an accept waiting for readability cancels the wait).
/// io_opcode::read uses a posix::stream_descriptor (not on Windows: ENOTSUP).
///
/// Windows differs: a socket belongs to one I/O completion port for its whole life (giving it
/// back needs FileReplaceCompletionInformation, which Wine 8 lacks), so one process-wide socket
/// service, with its own io_context, socket table and thread, runs every socket operation, as Go's
/// runtime keeps one completion port per process (runtime/netpoll_windows.go). A worker forwards
/// each socket request to it and gets the completion back as a handler posted to its own
/// io_context; cancellation is forwarded the same way. corio closes a socket through the service
/// (close_registered_socket), whose Asio object closes it, so no object outlives its socket. A
/// listener and a datagram socket are waited for with select() (Asio's reactor thread), since
/// Asio waits for a stream socket's readability with a zero-byte WSARecv that a listener never
/// completes; UDP is recvfrom()/sendto() after such a wait.
/// References: the Asio 1.22 reference (io_context, basic_stream_socket, basic_socket_acceptor,
/// generic::stream_protocol), epoll(7) on descriptors in several epoll sets.
class asio_reactor final : public reactor {
 public:
  /// Creates the io_context. Throws std::system_error when Asio cannot create its reactor
  /// (epoll_create1 or the interrupter's eventfd failing, e.g. EMFILE).
  explicit asio_reactor(completion_sink sink);
  ~asio_reactor() override;
  asio_reactor(const asio_reactor&) = delete;
  asio_reactor& operator=(const asio_reactor&) = delete;

  void submit(io_request& request) override;
  std::size_t poll() override;
  std::size_t wait(std::optional<std::chrono::nanoseconds> timeout) override;
  /// Thread-safe; not async-signal-safe (it posts to the io_context).
  void wake() noexcept override;
  void drain() noexcept override;
  [[nodiscard]] std::size_t in_flight() const noexcept override;
  [[nodiscard]] const char* name() const noexcept override { return "asio"; }
  [[nodiscard]] std::string features() const override;

  struct state;  // asio_reactor_state.hpp

 private:
  std::unique_ptr<state> state_;
};

}  // namespace corio::detail
