// corio/detail/io_operation.hpp - the seam between awaiters and the worker's reactor.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <cerrno>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <system_error>

#include "corio/detail/stop_state.hpp"
#include "corio/task.hpp"

namespace corio::detail {

/// The kinds of operation a reactor performs. Each reactor maps a kind to its own primitive
/// (io_uring: one SQE opcode each, see lib/uring_reactor.cpp; Asio: an async operation).
enum class io_opcode : std::uint8_t {
  accept,   ///< accept4(fd, address, &address_length, SOCK_CLOEXEC)
  connect,  ///< connect(fd, address, address_length)
  recv,     ///< recv(fd, buffer, length, flags)
  send,     ///< send(fd, buffer, length, flags | MSG_NOSIGNAL)
  read,     ///< read(fd, buffer, length): a file that is not a socket (corio::signal's eventfd)
  /// Readiness: waits until fd is readable or writable. `flags`: POLLIN and/or POLLOUT (the Asio
  /// reactor waits for one of them: POLLIN when both are set). Result: the ready events (a poll
  /// mask). io_uring: IORING_OP_POLL_ADD; Asio: async_wait.
  poll,
  recvmsg,   ///< recvmsg(fd, (msghdr*)address, flags): datagrams with their source address
  sendmsg,   ///< sendmsg(fd, (const msghdr*)address, flags | MSG_NOSIGNAL): vectored or addressed sends
  read_at,   ///< pread(fd, buffer, length, offset); offset -1 reads at the file position (read(2))
  write_at,  ///< pwrite(fd, buffer, length, offset); offset -1 writes at the file position (write(2))
  fsync,     ///< fsync(fd), or fdatasync(fd) when flags has fsync_datasync
  openat,    ///< openat(fd (a directory or AT_FDCWD), (const char*)address, flags, mode = length)
  statx,     ///< statx(fd, (const char*)address, flags, mask = length, (struct statx*)buffer)
  close,     ///< close(fd)
  /// splice(fd, offset (-1: the file position), (int)address_length, nullptr, length, flags):
  /// moves up to `length` bytes from fd to the descriptor in address_length without copying
  /// through user memory; one of them must be a pipe. Linux only.
  splice,
};

/// io_request::flags for io_opcode::fsync: fdatasync (data and the metadata needed to read it).
inline constexpr unsigned fsync_datasync = 1;  // IORING_FSYNC_DATASYNC

/// io_request::flags for io_opcode::accept: a multishot accept (io_uring only, Linux 5.19), the
/// request of a listener's accept_queue (corio/detail/accept_queue.hpp). It stays in flight
/// across completions; each one goes to multishot_accept_completed, never to a waiter.
inline constexpr unsigned accept_multishot = 1;

/// True for the operations on files rather than sockets (read_at through splice): those a reactor
/// without asynchronous file I/O runs off its workers (see perform_blocking_io in lib/reactor.hpp).
constexpr bool is_file_operation(io_opcode op) noexcept {
  return op >= io_opcode::read_at && op <= io_opcode::splice;
}

/// The number of io_opcode values (for tables indexed by the kind).
inline constexpr std::size_t io_opcode_count = static_cast<std::size_t>(io_opcode::splice) + 1;

/// A deadline linked to one I/O request: what corio::timeout() hands a socket operation on an
/// io_uring worker instead of arming a timer in the wheel. The reactor submits the request with a
/// linked IORING_OP_LINK_TIMEOUT (IORING_TIMEOUT_ABS) on this time, so the kernel cancels the
/// operation at the deadline without a round trip through the worker. The first two fields are
/// laid out as the kernel's struct __kernel_timespec, an absolute time on CLOCK_MONOTONIC, which
/// is corio::clock's (std::chrono::steady_clock) on Linux: lib/uring_reactor.cpp checks both.
/// It lives in the timeout's awaiter, hence in the suspended frame, while the request is in flight.
struct io_deadline {
  std::int64_t tv_sec = 0;  ///< seconds since the clock's epoch
  long long tv_nsec = 0;    ///< and nanoseconds, in [0, 1e9)
  /// Set by the owning reactor (finish_request, before the waiter is scheduled) when the request
  /// ended because the deadline passed and nobody asked for its cancellation.
  bool fired = false;
};

class cancel_inbox;  // lib/reactor.hpp: where cancellers leave requests for their owning reactor

/// One I/O operation in flight. It lives in the awaiter, hence in the suspended task's frame, which
/// cannot be freed before the reactor reaped the completion (the runtime cancels and reaps every
/// in-flight request before it destroys frames). Owned by one worker from submission to
/// completion; never shared between threads while in flight.
struct io_request {
  io_opcode opcode = io_opcode::recv;
  /// recv only: `provided_select` asks the reactor to pick the buffer from its provided buffer ring
  /// when data arrives (buffer and length are then unused); the io_uring reactor sets
  /// `provided_held` when it completes the request with a ring buffer: `buffer` is that buffer,
  /// `buffer_id` its id, `reactor_data` the ring it must go back to (lib/uring_buffers.hpp).
  /// `recv_multishot` and `recv_queue_heap` mark the request of a stream's recv_queue
  /// (corio/detail/recv_queue.hpp): a multishot receive into the ring, or the one-shot receive into
  /// a heap buffer it falls back to when the ring stays dry; each of their completions goes to
  /// multishot_recv_completed, never to a waiter (io_uring only).
  std::uint8_t provided = 0;
  static constexpr std::uint8_t provided_select = 1;
  static constexpr std::uint8_t provided_held = 2;
  static constexpr std::uint8_t recv_multishot = 3;
  static constexpr std::uint8_t recv_queue_heap = 4;
  std::uint16_t buffer_id = 0;  ///< with provided_held: the ring buffer's id
  int fd = -1;
  /// The descriptor's file_descriptor::generation(): a reactor keeping per-descriptor state
  /// (Asio's socket table) drops what it registered under a reused descriptor number.
  std::uint64_t generation = 0;
  unsigned flags = 0;               ///< MSG_* flags for send and recv
  /// send only, the io_uring reactor's zero-copy state (uring_reactor.cpp, IORING_OP_SEND_ZC):
  /// `zc_sent` the request went out as a SEND_ZC; `zc_result_in` its result came (kept in
  /// `result`) and the kernel's notification that it no longer needs the buffer has not, so the
  /// request stays in flight (out of the cancel inbox already: cancel_finished is set); `zc_refused` the socket refused zero copy (EOPNOTSUPP: not TCP), the
  /// request was sent again as a plain send. Reset by the reactor when the request finishes.
  std::uint8_t zc = 0;
  static constexpr std::uint8_t zc_sent = 1;
  static constexpr std::uint8_t zc_result_in = 2;
  static constexpr std::uint8_t zc_refused = 3;
  void* buffer = nullptr;           ///< recv: where bytes go; send: what to send
  std::size_t length = 0;           ///< bytes (openat: the mode; statx: the mask)
  std::int64_t offset = -1;         ///< read_at, write_at, splice: file offset in bytes; -1: the file position
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

  // --- cancellation (see io_operation and cancel_inbox in lib/reactor.hpp) --------------------
  /// cancel_flags bits. `queued`: in the owner's cancel inbox; `requested`: a canceller asked for
  /// the request to end early (sticky; a multi-step operation must not resubmit once it is set);
  /// `finished`: the reactor reaped it for good (set before the waiter is scheduled), after which
  /// a canceller leaves it alone.
  static constexpr std::uint8_t cancel_queued = 1;
  static constexpr std::uint8_t cancel_requested = 2;
  static constexpr std::uint8_t cancel_finished = 4;
  std::atomic<std::uint8_t> cancel_flags{0};
  /// The inbox of the reactor the request was submitted to; null when it is not cancellable
  /// (then none of the cancellation fields is used, and reaping costs nothing extra).
  cancel_inbox* cancel_owner = nullptr;
  io_request* cancel_prev = nullptr;  ///< the inbox's list (guarded by the inbox's mutex)
  io_request* cancel_next = nullptr;
  /// The reactor's own per-request state (Asio: its cancellation signal; io_uring: the provided
  /// buffer ring of a provided_select recv).
  void* reactor_data = nullptr;
  /// A deadline the reactor links to each submission of the request (timeout() on io_uring; see
  /// io_operation::link_deadline), or null. Only a reactor whose links_timeouts() is true sees one.
  io_deadline* deadline = nullptr;

  /// True once a canceller asked for this request to end early. Any thread.
  [[nodiscard]] bool cancel_was_requested() const noexcept {
    return (cancel_flags.load(std::memory_order_acquire) & cancel_requested) != 0;
  }
};

/// The stop_canceller an io_operation arms while it is suspended: request_stop() on any thread
/// hands `request` to its owning reactor's cancel inbox (a mutex, an intrusive link and the
/// reactor's wake()); the owner then cancels the kernel or Asio operation (IORING_OP_ASYNC_CANCEL,
/// or an Asio cancellation_signal emitted with cancellation_type::terminal), whose completion
/// resumes the task as usual. Defined in lib/io_cancel.cpp.
struct io_canceller : stop_canceller {
  io_request* request = nullptr;
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
CORIO_API void submit_io(io_request& request);

/// Base of the awaiters of I/O operations: suspends, submits, and turns the result into a value, a
/// std::system_error, or an error_code (when constructed with one). Single use.
///
/// Cancellation (DESIGN.md "Cancellation and structure"): when the suspending coroutine runs
/// under a stop state (stop_of(h)), the operation arms an io_canceller before it submits. If stop
/// was requested already, nothing is submitted: the task does not suspend, observes its stop (so
/// that its children are cancelled too) and the operation fails with ECANCELED. Otherwise a
/// request_stop() from any thread makes the owning worker cancel the operation in its reactor;
/// the operation then either had no effect (the kernel or Asio reports ECANCELED) or it took
/// effect first and its result is returned as usual (a recv that got bytes returns them, an
/// accept that got a descriptor returns the socket). The completion is always reaped before the
/// task resumes. ECANCELED is reported as corio::operation_cancelled (derived from
/// std::system_error), or in the error_code form as std::errc::operation_canceled.
///
/// EINTR and EAGAIN: the reactor resubmits an accept, recv, send or read that completes with
/// them (finish_request in lib/reactor.hpp), so they never reach the task; a connect reports
/// them; a request whose cancellation was asked for ends cancelled instead of being retried.
class CORIO_API io_operation {
 public:
  static constexpr wait_kind corio_wait = wait_kind::io;  ///< for the task dump (task_trace.hpp)
  /// The operation and its descriptor, for the task dump: opcode << 32 | fd.
  std::uintptr_t corio_wait_object() const noexcept {
    return (static_cast<std::uintptr_t>(request_.opcode) << 32) | static_cast<std::uint32_t>(request_.fd);
  }
  io_operation(const io_operation&) = delete;
  io_operation& operator=(const io_operation&) = delete;
  /// A frame destroyed while the operation waits (runtime shutdown, after the reactor reaped it)
  /// leaves no canceller armed.
  ~io_operation() {
    if (armed_) stop_->disarm(canceller_);
  }

  /// Ready at once when construction already failed (for example: a closed socket with an
  /// error_code form), so the task does not suspend.
  bool await_ready() const noexcept { return request_.result < 0; }
  /// For corio::timeout(), before await_suspend, on the worker that will submit: hands the request
  /// `deadline` (absolute, on corio::clock) as a timeout the reactor links to it, when this worker
  /// can: an io_uring reactor with IORING_OP_LINK_TIMEOUT (not turned off with
  /// only with CORIO_URING_LINK_TIMEOUT=1), the real clock (the kernel knows nothing of manual_clock), a
  /// socket operation (accept, connect, recv, send, recvmsg, sendmsg, poll) and a deadline before
  /// the runtime's end of time. True: the caller arms no timer of its own, and once the operation
  /// completed `d.fired` tells whether the deadline ended it (the operation then fails with
  /// ECANCELED, as a cancellation). False: nothing changed. `d` must outlive the operation.
  /// Never throws. Defined in lib/io_cancel.cpp.
  bool link_deadline(io_deadline& d, std::chrono::steady_clock::time_point deadline) noexcept;

  /// Submits the request to the calling worker's reactor; false (resume at once, the operation
  /// fails with ECANCELED) when the task's stop was requested before it could wait.
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    request_.waiter = h;
    request_.bound = binding_of(h);
    if (stop_state* s = stop_of(h); s != nullptr) return submit_cancellable(*s);
    submit_io(request_);  // publishes the request: nothing touches the frame after this
    return true;
  }

 protected:
  io_operation(std::error_code* ec, const char* what) noexcept : ec_(ec), what_(what) {}

  /// Fails the operation before it starts, with `error` (an errno value).
  void fail_early(int error) noexcept { request_.result = -error; }

  /// The result as a non-negative count, or -1 after reporting the error: into the error_code
  /// given at construction, or by throwing std::system_error with `what` (operation_cancelled for
  /// ECANCELED). Disarms the canceller first (waiting for a canceller call in progress).
  std::ptrdiff_t finish() {
    if (armed_) {
      armed_ = false;
      stop_->disarm(canceller_);
    }
    if (request_.result >= 0) {
      if (ec_ != nullptr) ec_->clear();
      return request_.result;
    }
    if (request_.result == -ECANCELED || (request_.result == -EINTR && request_.cancel_was_requested())) {
      return cancelled();
    }
    std::error_code code{-request_.result, io_error_category()};
    if (ec_ == nullptr) throw_error(code, what_);
    *ec_ = code;
    return -1;
  }

  [[noreturn]] static void throw_error(std::error_code code, const char* what);

  /// For an awaiter that ended without a request of its own (an accept served by a listener's
  /// multishot queue): the stop state finish() observes when the result is ECANCELED.
  void set_cancel_stop(stop_state* s) noexcept { stop_ = s; }

  io_request request_{};
  std::error_code* ec_;
  const char* what_;

 private:
  /// await_suspend with a stop state: arms, then submits (lib/io_cancel.cpp).
  bool submit_cancellable(stop_state& s);
  /// The cancelled outcome: observes the stop, then throws operation_cancelled or sets *ec_.
  std::ptrdiff_t cancelled();

  io_canceller canceller_{};
  stop_state* stop_ = nullptr;  ///< the state the operation ran under (for observe())
  bool armed_ = false;          ///< canceller_ is armed on *stop_ until finish() disarms it
};

}  // namespace corio::detail
