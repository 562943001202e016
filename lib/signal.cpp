// lib/signal.cpp - corio::signal (see corio/signal.hpp): a process-wide handler that forwards each
// signal to the wake objects of the waits registered for it. POSIX: a sigaction handler writing to
// an eventfd (a pipe off Linux). Windows: a console control handler (SetConsoleCtrlHandler) and
// C runtime signal() handlers sending a datagram to a loopback UDP socket of the wait.
#include "corio/signal.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(_WIN32)
#include "net/socket_api.hpp"  // winsock2.h first, then windows.h
#include <windows.h>
#else
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif
#endif

namespace corio {

namespace {

constexpr int max_signal = 64;  // signal numbers 1..64 (Linux: SIGRTMAX); one bit each
constexpr int slot_count = 64;  // waits in progress at once

/// One registered wait. The handler reads `mask` and `fd` between a busy increment and decrement;
/// unregistering clears the mask and then waits for busy to fall to zero before the descriptor
/// may be closed (and its number reused), so the handler never writes into another file.
struct wait_slot {
  std::atomic<std::uint64_t> mask{0};  ///< bit (s - 1) for signal s; 0: not active
  std::atomic<int> fd{-1};             ///< where the handler writes
  std::atomic<std::uint64_t> arrived{0};
  std::atomic<int> busy{0};            ///< handlers looking at this slot now
  std::atomic<bool> used{false};       ///< taken by a wait (registration claims it with a CAS)
};

wait_slot slots[slot_count];
std::atomic<bool> remembered[max_signal + 1];  ///< arrived and not yet taken by a wait
std::mutex install_mutex;
std::uint64_t installed = 0;  ///< signals whose handler is installed (under install_mutex)

static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
                  std::atomic<bool>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

constexpr std::uint64_t bit(int s) noexcept { return std::uint64_t{1} << (s - 1); }

/// Wakes the wait whose wake object is `fd`. Async-signal-safe on POSIX (write(2)); on Windows a
/// send(2) of one datagram to the wait's own loopback UDP socket (the callers there are a console
/// control handler thread or raise()'s caller, not an interrupted thread).
void notify(int fd) noexcept {
#if defined(_WIN32)
  const char one = 1;
  [[maybe_unused]] const int n = ::send(static_cast<SOCKET>(fd), &one, 1, 0);
#else
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(fd, &one, sizeof one);
#endif
}

void on_signal(int s) {
  const int saved = errno;
  if (s >= 1 && s <= max_signal) {
    remembered[s].store(true, std::memory_order_seq_cst);  // first: a wait registering now sees it
    for (wait_slot& w : slots) {
      w.busy.fetch_add(1, std::memory_order_seq_cst);
      if ((w.mask.load(std::memory_order_seq_cst) & bit(s)) != 0) {
        w.arrived.fetch_or(bit(s), std::memory_order_seq_cst);
        notify(w.fd.load(std::memory_order_seq_cst));
      }
      w.busy.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  errno = saved;
}

[[noreturn]] void fail(int error, const char* what) { throw std::system_error(error, detail::io_error_category(), what); }

#if defined(_WIN32)
/// Signals the console handler delivers: bits of the signals some wait asked for (read by the
/// handler's thread, so atomic; written under install_mutex).
std::atomic<std::uint64_t> console_signals{0};

/// The C runtime's handler for raise(SIGINT) and raise(SIGTERM) (and for CTRL_C_EVENT, which the C
/// runtime's own console handler turns into SIGINT). The C runtime resets a handler to SIG_DFL
/// before calling it: it is installed again first.
void crt_handler(int s) {
  std::signal(s, &crt_handler);
  on_signal(s);
}

/// Installs what delivers `s` (SIGINT or SIGTERM). Under install_mutex.
void install(int s) {
  detail::init_sockets();
  static const bool console = ::SetConsoleCtrlHandler(&detail::console_control_handler, TRUE) != 0;
  if (!console) fail(EIO, "corio::signal: SetConsoleCtrlHandler");
  if (std::signal(s, &crt_handler) == SIG_ERR) fail(errno, "corio::signal: signal");
  console_signals.fetch_or(bit(s), std::memory_order_seq_cst);
}
#else
/// Installs the process-wide handler of `s`. Under install_mutex.
void install(int s) {
  struct sigaction action {};
  action.sa_handler = &on_signal;
  sigfillset(&action.sa_mask);  // the handler runs with every signal blocked
  action.sa_flags = SA_RESTART;
  if (::sigaction(s, &action, nullptr) != 0) fail(errno, "corio::signal: sigaction");
}
#endif

}  // namespace

#if defined(_WIN32)
namespace detail {

int signal_of_console_event(unsigned long event) noexcept {
  switch (event) {
    case CTRL_C_EVENT: return SIGINT;
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_SHUTDOWN_EVENT: return SIGTERM;
    default: return 0;
  }
}

bool deliver_console_event(unsigned long event) noexcept {
  const int s = signal_of_console_event(event);
  if (s == 0 || (console_signals.load(std::memory_order_seq_cst) & bit(s)) == 0) return false;
  on_signal(s);
  return true;
}

int __stdcall console_control_handler(unsigned long event) noexcept {
  if (!deliver_console_event(event)) return FALSE;  // the next handler (by default: end the process)
  if (event == CTRL_CLOSE_EVENT || event == CTRL_SHUTDOWN_EVENT) {
    // Windows ends the process when this handler returns (or after its time limit: 5 s for a
    // close, 20 s for a shutdown): wait there, as Go does, so that the program can finish the
    // shutdown its signal wait started and exit by itself.
    ::Sleep(INFINITE);
  }
  return TRUE;
}

}  // namespace detail
#endif

signal_operation::signal_operation(signal_set signals) : io_operation(nullptr, "corio::signal") {
  const std::uint64_t mask = signals.mask();
  if (mask == 0 && signals.valid()) fail(EINVAL, "corio::signal: no signal given");
#if defined(_WIN32)
  if (!signals.valid()) fail(EINVAL, "corio::signal: not a signal number (1..64)");
  if ((mask & ~(bit(SIGINT) | bit(SIGTERM))) != 0) {
    fail(ENOTSUP,
         "corio::signal: not supported on this platform (Windows delivers SIGINT for CTRL_C_EVENT and SIGTERM "
         "for CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT and CTRL_SHUTDOWN_EVENT, and for raise())");
  }
#else
  if (!signals.valid() || (mask & (bit(SIGKILL) | bit(SIGSTOP))) != 0) {
    fail(EINVAL, "corio::signal: not a signal that can be caught");
  }
  for (int s = NSIG; s <= max_signal; ++s) {
    if ((mask & bit(s)) != 0) fail(EINVAL, "corio::signal: not a signal of this system");
  }
#endif
  {
    std::lock_guard lock{install_mutex};
    for (int s = 1; s <= max_signal; ++s) {
      if ((mask & bit(s)) == 0 || (installed & bit(s)) != 0) continue;
      install(s);
      installed |= bit(s);
    }
  }
#if defined(_WIN32)
  // A UDP socket on 127.0.0.1 connected to itself: the handler sends it a datagram, the task
  // receives it through the worker's reactor (IOCP).
  {
    const int fd = detail::open_socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (fd < 0) fail(detail::socket_error(), "corio::signal: socket");
    event_ = detail::file_descriptor{fd};
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int length = sizeof address;
    auto* name = reinterpret_cast<sockaddr*>(&address);
    const SOCKET sock = static_cast<SOCKET>(fd);
    if (::bind(sock, name, length) != 0 || ::getsockname(sock, name, &length) != 0 ||
        ::connect(sock, name, length) != 0) {
      fail(detail::socket_error(), "corio::signal: a loopback UDP socket");
    }
    write_end_ = fd;
  }
#elif defined(__linux__)
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) fail(errno, "corio::signal: eventfd");
  event_ = detail::file_descriptor{fd};
  write_end_ = fd;
#else
  int ends[2];
  if (::pipe(ends) != 0) fail(errno, "corio::signal: pipe");
  for (int e : ends) {
    ::fcntl(e, F_SETFD, FD_CLOEXEC);
    ::fcntl(e, F_SETFL, ::fcntl(e, F_GETFL) | O_NONBLOCK);
  }
  event_ = detail::file_descriptor{ends[0]};
  write_end_ = ends[1];
#endif
  for (int i = 0; i < slot_count; ++i) {
    bool expected = false;
    if (slots[i].used.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
      slot_ = i;
      break;
    }
  }
  if (slot_ < 0) {
#if !defined(__linux__) && !defined(_WIN32)
    ::close(write_end_);
#endif
    fail(ENOSPC, "corio::signal: more than 64 waits in progress");
  }
  wait_slot& w = slots[slot_];
  w.arrived.store(0, std::memory_order_relaxed);
  w.fd.store(write_end_, std::memory_order_relaxed);
  w.mask.store(mask, std::memory_order_seq_cst);  // active from here on
  // A signal that came before (or while) this wait registered: take it now.
  for (int s = 1; s <= max_signal; ++s) {
    if ((mask & bit(s)) != 0 && remembered[s].exchange(false, std::memory_order_seq_cst)) {
      ready_signal_ = s;
      break;
    }
  }
#if defined(_WIN32)
  request_.opcode = detail::io_opcode::recv;  // Asio on Windows reads sockets only
#else
  request_.opcode = detail::io_opcode::read;
#endif
  request_.fd = event_.get();
  request_.generation = event_.generation();
  request_.buffer = &counter_;
  request_.length = sizeof counter_;
}

void signal_operation::unregister() noexcept {
  if (slot_ < 0) return;
  wait_slot& w = slots[slot_];
  w.mask.store(0, std::memory_order_seq_cst);
  while (w.busy.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();  // a handler is inside
  w.fd.store(-1, std::memory_order_relaxed);
  w.used.store(false, std::memory_order_release);
  slot_ = -1;
}

signal_operation::~signal_operation() {
  unregister();
#if !defined(__linux__) && !defined(_WIN32)
  if (write_end_ >= 0) ::close(write_end_);
#endif
}

int signal_operation::await_resume() {
  if (ready_signal_ != 0) {
    unregister();
    return ready_signal_;
  }
  finish();  // throws operation_cancelled, or std::system_error for a failed read
  const std::uint64_t arrived = slot_ >= 0 ? slots[slot_].arrived.load(std::memory_order_seq_cst) : 0;
  unregister();
  if (arrived == 0) fail(EIO, "corio::signal: woken without a signal");
  const int s = __builtin_ctzll(arrived) + 1;  // the lowest number among those that arrived
  remembered[s].store(false, std::memory_order_seq_cst);  // taken
  return s;
}


}  // namespace corio
