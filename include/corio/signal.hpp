// corio/signal.hpp - waiting for POSIX signals in a task: co_await corio::signal({SIGINT, SIGTERM}).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <concepts>
#include <cstdint>

#include "corio/detail/file_descriptor.hpp"
#include "corio/detail/io_operation.hpp"

namespace corio {

/// The signal numbers one corio::signal wait takes: `{SIGINT, SIGTERM}`. A class with a
/// constructor per count rather than std::initializer_list, because g++ 12 rejects an
/// initializer_list's backing array in a co_await expression ("array used as initializer", the
/// GCC PR 95599 lineage named in DESIGN.md). Numbers are checked by signal_operation.
class signal_set {
 public:
  /// The set of `signals` (any number of ints; none makes an empty set, which a wait rejects).
  template <class... S>
    requires(std::convertible_to<S, int> && ...)
  signal_set(S... signals) noexcept {  // NOLINT: implicit, so that {SIGINT, SIGTERM} converts
    (add(static_cast<int>(signals)), ...);
  }
  /// Bit (s - 1) for each signal s in 1..64.
  [[nodiscard]] std::uint64_t mask() const noexcept { return mask_; }
  /// False when a number was outside 1..64.
  [[nodiscard]] bool valid() const noexcept { return valid_; }

 private:
  void add(int s) noexcept {
    if (s < 1 || s > 64) valid_ = false;
    else mask_ |= std::uint64_t{1} << (s - 1);
  }
  std::uint64_t mask_ = 0;
  bool valid_ = true;
};

/// Awaiter of corio::signal(): the number of the signal that arrived (an int, e.g. SIGTERM).
///
/// How it works (POSIX): the first wait for a signal number installs a process-wide handler for
/// it with sigaction(2) (SA_RESTART), which stays installed for the life of the process, as
/// Tokio's and libuv's signal handlers do; the signal then no longer has its default action
/// (SIGINT no longer ends the process). Each wait registers a private eventfd (a pipe off Linux)
/// in a lock-free table that the handler walks: it marks the signal as arrived for every wait
/// whose set holds it and writes to that wait's descriptor, which the task reads through its
/// worker's reactor (an IORING_OP_READ on io_uring, a posix::stream_descriptor on Asio): so the
/// handler only touches atomics and write(2), both async-signal-safe, and it does not matter
/// which thread the kernel picks to run it. Unlike signalfd, nothing has to be blocked: the
/// signals must NOT be blocked in every thread (with all threads blocking a signal, the kernel
/// never runs the handler and the wait never ends).
///
/// Semantics: every wait in progress whose set holds the signal returns it (broadcast); a signal
/// that arrives while no wait takes it is remembered, once per number (as the kernel keeps one
/// pending instance of a standard signal), and returned by the next wait for it. Waits may be
/// repeated; at most 64 may be in progress at once (std::system_error ENOSPC beyond that).
/// Cancellable like every I/O operation (detail::io_operation): a cancelled wait throws
/// corio::operation_cancelled and loses no signal (one that arrived stays remembered).
/// Must be awaited in a task on a runtime.
///
/// Windows: SIGINT and SIGTERM only; any other number throws std::system_error ENOTSUP ("not
/// supported on this platform"). The first wait installs a console control handler
/// (SetConsoleCtrlHandler) that delivers SIGINT for CTRL_C_EVENT and SIGTERM for CTRL_BREAK_EVENT,
/// CTRL_CLOSE_EVENT and CTRL_SHUTDOWN_EVENT (Go's os/signal maps them the same way), and C runtime
/// signal() handlers, so that raise(SIGINT) and raise(SIGTERM) are delivered too. Asio's
/// signal_set uses the C runtime alone, whose console handler turns only CTRL_C_EVENT into a
/// signal (CTRL_BREAK_EVENT becomes SIGBREAK, a close or a shutdown none). An event is handled only
/// once some wait asked for its signal; until then Windows' default applies (the process ends).
/// After a close or shutdown event the handler does not return (Windows would end the process at
/// once): the program has Windows' grace time (5 s for a close) to finish and exit. Each wait has
/// a loopback UDP socket connected to itself in place of the eventfd: the handler sends it a
/// datagram, which the task receives through its worker's reactor (IOCP).
class CORIO_API signal_operation : public detail::io_operation {
 public:
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::signal;  ///< for the task dump
  /// Validates `signals` (each in 1..64, not SIGKILL or SIGSTOP, at least one: else
  /// std::system_error EINVAL; on Windows ENOTSUP for a number other than SIGINT and SIGTERM), installs the handlers and registers the wait. Throws
  /// std::system_error for a failing sigaction or eventfd (EMFILE, ...), ENOSPC for too many waits.
  explicit signal_operation(signal_set signals);
  ~signal_operation();
  signal_operation(const signal_operation&) = delete;
  signal_operation& operator=(const signal_operation&) = delete;

  /// Ready at once when a signal of the set was remembered (it arrived while nobody waited).
  bool await_ready() const noexcept { return ready_signal_ != 0 || request_.result < 0; }
  /// The signal number. Throws operation_cancelled when the wait was cancelled, std::system_error
  /// when reading the descriptor failed.
  int await_resume();

 private:
  void unregister() noexcept;

  detail::file_descriptor event_;  ///< what the wait reads (eventfd, a pipe's read end, a UDP socket)
  int write_end_ = -1;             ///< a pipe's write end (the eventfd or socket itself on Linux and Windows)
  std::uint64_t counter_ = 0;      ///< read buffer
  int slot_ = -1;                  ///< the registration in the handler's table
  int ready_signal_ = 0;
};

#if defined(_WIN32)
namespace detail {
/// Windows: the signal corio::signal delivers for console control event `event` (CTRL_C_EVENT:
/// SIGINT; CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_SHUTDOWN_EVENT: SIGTERM), 0 for the others.
CORIO_API int signal_of_console_event(unsigned long event) noexcept;
/// Windows: what the console control handler does for `event` before it returns, callable from
/// any thread (the tests raise events this way where no console exists, as under Wine in CI):
/// delivers its signal to the waits and returns true, or false when no wait ever asked for that
/// signal (the event is then left to the next handler).
CORIO_API bool deliver_console_event(unsigned long event) noexcept;
/// Windows: the handler corio::signal registers with SetConsoleCtrlHandler (a PHANDLER_ROUTINE:
/// returns TRUE when it handled `event`). Blocks forever after a close or shutdown event.
int __stdcall console_control_handler(unsigned long event) noexcept;
}  // namespace detail
#endif

/// Waits until one of `signals` arrives; `co_await` yields its number. For example
/// `int s = co_await corio::signal({SIGINT, SIGTERM});`. See signal_operation for the mechanism,
/// the semantics and the errors. Thread-safe: any number of tasks on any workers may wait.
[[nodiscard]] inline signal_operation signal(signal_set signals) { return signal_operation{signals}; }

}  // namespace corio
