// corio/detail/io_operation.hpp - the seam between awaiters and the worker's reactor.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "corio/task.hpp"

namespace corio::detail {

/// The kinds of operation a reactor performs. Each reactor maps a kind to its own primitive
/// (io_uring: one SQE opcode each, see lib/uring_reactor.cpp; Asio: an async operation).
enum class io_opcode : std::uint8_t {
  accept,   ///< accept4(fd, address, &address_length, SOCK_CLOEXEC)
  connect,  ///< connect(fd, address, address_length)
  recv,     ///< recv(fd, buffer, length, flags)
  send,     ///< send(fd, buffer, length, flags | MSG_NOSIGNAL)
};

/// One I/O operation in flight. It lives in the awaiter, hence in the suspended task's frame, which
/// cannot be freed before the reactor reaped the completion (the runtime cancels and reaps every
/// in-flight request before it destroys frames). Owned by one worker from submission to
/// completion; never shared between threads while in flight.
struct io_request {
  io_opcode opcode = io_opcode::recv;
  int fd = -1;
  /// The descriptor's file_descriptor::generation(): a reactor keeping per-descriptor state
  /// (Asio's socket table) drops what it registered under a reused descriptor number.
  std::uint64_t generation = 0;
  unsigned flags = 0;               ///< MSG_* flags for send and recv
  void* buffer = nullptr;           ///< recv: where bytes go; send: what to send
  std::size_t length = 0;           ///< bytes
  void* address = nullptr;          ///< accept: out, peer sockaddr; connect: in, remote sockaddr
  std::uint32_t address_length = 0; ///< accept: in/out capacity and size; connect: size (bytes)
  int result = 0;                   ///< the completion: >= 0 success, -errno failure
  std::coroutine_handle<> waiter{}; ///< the task to resume once the request is finished

  /// Optional hook the reactor calls (on the owning worker) with each raw completion. Return true
  /// when the request is finished (the reactor then stores `result` and schedules `waiter`), or
  /// false after resubmitting it with submit_io (write_all does this for short sends).
  bool (*on_complete)(io_request& request, int result) noexcept = nullptr;

  std::size_t transferred = 0;      ///< bytes moved so far, for operations made of several steps
  std::uint32_t bound = unbound_worker; ///< the worker the waiter must run on (spawn_on), or none
  io_request* prev = nullptr;       ///< the reactor's list of requests in flight
  io_request* next = nullptr;
};

/// The category of the error numbers corio's I/O reports: POSIX errno values, so the system
/// category on POSIX and the generic one on Windows (whose system category means Win32 codes).
inline const std::error_category& io_error_category() noexcept {
#if defined(_WIN32)
  return std::generic_category();
#else
  return std::system_category();
#endif
}

/// Hands `request` to the calling worker's reactor. Submission is batched: the reactor pushes it to
/// the kernel when the worker next polls (after the current task suspends). Throws std::logic_error
/// when called off a worker thread, std::system_error when the reactor cannot take it.
void submit_io(io_request& request);

/// Base of the awaiters of I/O operations: suspends, submits, and turns the result into a value, a
/// std::system_error, or an error_code (when constructed with one). Single use.
class io_operation {
 public:
  io_operation(const io_operation&) = delete;
  io_operation& operator=(const io_operation&) = delete;

  /// Ready at once when construction already failed (for example: a closed socket with an
  /// error_code form), so the task does not suspend.
  bool await_ready() const noexcept { return request_.result < 0; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> h) {
    request_.waiter = h;
    request_.bound = binding_of(h);
    submit_io(request_);  // publishes the request: nothing touches the frame after this
  }

 protected:
  io_operation(std::error_code* ec, const char* what) noexcept : ec_(ec), what_(what) {}

  /// Fails the operation before it starts, with `error` (an errno value).
  void fail_early(int error) noexcept { request_.result = -error; }

  /// The result as a non-negative count, or -1 after reporting the error: into the error_code
  /// given at construction, or by throwing std::system_error with `what`.
  std::ptrdiff_t finish() {
    if (request_.result >= 0) {
      if (ec_ != nullptr) ec_->clear();
      return request_.result;
    }
    std::error_code code{-request_.result, io_error_category()};
    if (ec_ == nullptr) throw_error(code, what_);
    *ec_ = code;
    return -1;
  }

  [[noreturn]] static void throw_error(std::error_code code, const char* what);

  io_request request_{};
  std::error_code* ec_;
  const char* what_;
};

}  // namespace corio::detail
