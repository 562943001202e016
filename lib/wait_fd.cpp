// lib/wait_fd.cpp - corio::wait_readable and wait_writable (corio/wait_fd.hpp).
#include "corio/wait_fd.hpp"

#include <cerrno>

#if defined(_WIN32)
#include "net/socket_api.hpp"  // winsock2.h: POLLIN, POLLOUT
#else
#include <poll.h>
#endif

namespace corio::detail {

ready_operation::ready_operation(int fd, bool write, std::error_code* ec) noexcept
    : io_operation(ec, write ? "corio::wait_writable" : "corio::wait_readable") {
  request_.opcode = io_opcode::poll;
  request_.fd = fd;
  request_.generation = 0;  // not corio's descriptor: see the Asio reactor's readiness waits
  request_.flags = write ? POLLOUT : POLLIN;
  if (fd < 0) fail_early(EBADF);
}

ready_events ready_operation::await_resume() {
  const auto n = finish();
  if (n < 0) return ready_events::none;
  ready_events events = ready_events::none;
  // POLLERR and POLLHUP wake a wait for either direction: the library's own call reports them.
  if ((n & (POLLIN | POLLERR | POLLHUP)) != 0 && (request_.flags & POLLIN) != 0)
    events = ready_events::readable;
  if ((n & (POLLOUT | POLLERR | POLLHUP)) != 0 && (request_.flags & POLLOUT) != 0)
    events = ready_events::writable;
  return events;
}

}  // namespace corio::detail
