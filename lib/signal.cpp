// lib/signal.cpp - corio::signal (see corio/signal.hpp): a process-wide sigaction handler that
// forwards each signal to the descriptors of the waits registered for it.
#include "corio/signal.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <system_error>
#include <thread>

#if !defined(_WIN32)
#include <fcntl.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif
#endif

namespace corio {

#if !defined(_WIN32)
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

void on_signal(int s) {
  const int saved = errno;
  if (s >= 1 && s <= max_signal) {
    remembered[s].store(true, std::memory_order_seq_cst);  // first: a wait registering now sees it
    for (wait_slot& w : slots) {
      w.busy.fetch_add(1, std::memory_order_seq_cst);
      if ((w.mask.load(std::memory_order_seq_cst) & bit(s)) != 0) {
        w.arrived.fetch_or(bit(s), std::memory_order_seq_cst);
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(w.fd.load(std::memory_order_seq_cst), &one, sizeof one);
      }
      w.busy.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  errno = saved;
}

[[noreturn]] void fail(int error, const char* what) { throw std::system_error(error, std::system_category(), what); }

}  // namespace

signal_operation::signal_operation(signal_set signals) : io_operation(nullptr, "corio::signal") {
  const std::uint64_t mask = signals.mask();
  if (!signals.valid() || (mask & (bit(SIGKILL) | bit(SIGSTOP))) != 0) {
    fail(EINVAL, "corio::signal: not a signal that can be caught");
  }
  if (mask == 0) fail(EINVAL, "corio::signal: no signal given");
  for (int s = NSIG; s <= max_signal; ++s) {
    if ((mask & bit(s)) != 0) fail(EINVAL, "corio::signal: not a signal of this system");
  }
  {
    std::lock_guard lock{install_mutex};
    for (int s = 1; s <= max_signal; ++s) {
      if ((mask & bit(s)) == 0 || (installed & bit(s)) != 0) continue;
      struct sigaction action {};
      action.sa_handler = &on_signal;
      sigfillset(&action.sa_mask);  // the handler runs with every signal blocked
      action.sa_flags = SA_RESTART;
      if (::sigaction(s, &action, nullptr) != 0) fail(errno, "corio::signal: sigaction");
      installed |= bit(s);
    }
  }
#if defined(__linux__)
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
#if !defined(__linux__)
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
  request_.opcode = detail::io_opcode::read;
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
#if !defined(__linux__)
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

#else  // Windows

signal_operation::signal_operation(signal_set) : io_operation(nullptr, "corio::signal") {
  throw std::system_error(ENOTSUP, std::generic_category(), "corio::signal: not supported on Windows");
}
signal_operation::~signal_operation() = default;
void signal_operation::unregister() noexcept {}
int signal_operation::await_resume() { return 0; }

#endif

}  // namespace corio
