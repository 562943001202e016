// corio/wait_fd.hpp - awaiting readiness of a descriptor that another library owns.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstdint>
#include <system_error>

#include "corio/detail/io_operation.hpp"

namespace corio {

/// What a readiness wait reports: the events that came, as poll(2) reports them.
enum class ready_events : std::uint32_t {
  none = 0,
  readable = 1,  ///< POLLIN: a read, recv or accept will not block
  writable = 4,  ///< POLLOUT: a write or send will not block
};

namespace detail {

/// Awaiter of wait_readable and wait_writable: io_opcode::poll.
class CORIO_API ready_operation : public io_operation {
 public:
  /// `write`: wait for POLLOUT, else POLLIN. A negative `fd` fails with EBADF when awaited.
  ready_operation(int fd, bool write, std::error_code* ec) noexcept;
  /// readable or writable; none after an error reported through the error_code form.
  ready_events await_resume();
};

}  // namespace detail

/// Waits until descriptor `fd` is readable (POLLIN: data, a connection to accept, end of stream
/// or an error to collect), so that a library owning its own non-blocking sockets (c-ares, libpq,
/// curl's multi interface) can run its I/O on corio: wait, then call the library's own read.
/// io_uring: one IORING_OP_POLL_ADD (one-shot); Asio: async_wait(wait_read) on the descriptor,
/// which this worker registers with its epoll or kqueue set for the duration of the wait only,
/// since corio cannot know when the library closes it. `fd` must stay open until the wait ends;
/// corio neither reads from it nor closes it. Readiness may be spurious (another reader took the
/// data first): the library's own call then reports EAGAIN and the caller waits again. Meant
/// for descriptors corio does not own: on Asio, waiting on a corio socket's native_handle()
/// re-registers it for the wait, which ends (as cancelled) any other operation of that socket
/// in flight on the same worker; use the socket's own operations instead.
///
/// Cancellable like every I/O operation (detail::io_operation): the task's stop ends the wait
/// with operation_cancelled. Errors: std::system_error (EBADF for a negative or closed
/// descriptor). Called from a task on a corio worker. Design: Tokio's AsyncFd::readable, Go's
/// netpoll, io_uring_prep_poll_add(3).
[[nodiscard]] inline detail::ready_operation wait_readable(int fd) noexcept { return {fd, false, nullptr}; }
/// As wait_readable(fd), reporting an error through `ec` (then returning ready_events::none)
/// instead of throwing.
[[nodiscard]] inline detail::ready_operation wait_readable(int fd, std::error_code& ec) noexcept {
  return {fd, false, &ec};
}

/// Waits until `fd` is writable (POLLOUT: a send will not block, or a non-blocking connect
/// finished: read SO_ERROR for its outcome). Otherwise as wait_readable.
[[nodiscard]] inline detail::ready_operation wait_writable(int fd) noexcept { return {fd, true, nullptr}; }
/// As wait_writable(fd), reporting an error through `ec` instead of throwing.
[[nodiscard]] inline detail::ready_operation wait_writable(int fd, std::error_code& ec) noexcept {
  return {fd, true, &ec};
}

}  // namespace corio
