// lib/reactor_factory.cpp - choosing and creating a worker's reactor (see reactor_factory.hpp).
#include "reactor_factory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <cstdlib>

#include "net/socket_api.hpp"
#include <stdexcept>
#include <string_view>
#include <system_error>

#if CORIO_HAS_URING
#include "uring_reactor.hpp"
#endif
#if CORIO_HAS_ASIO_REACTOR
#include "asio_reactor.hpp"
#endif

namespace corio::detail {
namespace {

[[maybe_unused]] void ignore_completion(void*, std::coroutine_handle<>, std::uint32_t) noexcept {}

}  // namespace

bool finish_request(io_request& r, int result, bool draining, const completion_sink& sink,
                    cancel_inbox& cancels) noexcept {
  if (draining) {
    cancels.finished(r);
    if (r.opcode == io_opcode::accept && result >= 0) (void)close_socket(result);
#if !defined(_WIN32)
    if (r.opcode == io_opcode::openat && result >= 0) (void)::close(result);
#endif
    return false;
  }
  if (r.deadline != nullptr && result < 0 && !r.cancel_was_requested()) [[unlikely]] {
    // A linked timeout (io_request::deadline) cancels the operation with ECANCELED (an operation the
    // kernel runs in a worker thread may see EINTR instead). Nobody asked for a cancellation, so
    // an ECANCELED can only be the deadline's; an EINTR or ETIME is when the deadline has passed
    // (CLOCK_MONOTONIC, the clock the kernel compared), and is retried below otherwise. Either way
    // it ends the request, never a retry: the task sees a cancellation whose cause the timeout
    // reads from `fired`.
    const auto passed = [&r] {
      const auto now = std::chrono::steady_clock::now().time_since_epoch();
      const auto due = std::chrono::seconds{r.deadline->tv_sec} + std::chrono::nanoseconds{r.deadline->tv_nsec};
      return now >= due;
    };
    if (result == -ECANCELED || ((result == -EINTR || result == -ETIME) && passed())) {
      r.deadline->fired = true;
      result = -ECANCELED;
    }
  }
  if ((result == -EINTR || result == -EAGAIN) && r.opcode != io_opcode::connect && r.opcode != io_opcode::close)
      [[unlikely]] {
    // Interrupted before it did anything, or nothing to take yet: an accept, recv, send or read
    // is tried again, as Asio's reactor ops and Go's netpoller do, so a task never sees EINTR or
    // EAGAIN from them. A connect is not (a connect attempt cannot be restarted on its socket):
    // it reports them; nor is a close (the descriptor is gone even when close reports EINTR).
    // Once a canceller asked for the end, the operation ends cancelled instead.
    if (r.cancel_was_requested()) {
      result = -ECANCELED;
    } else {
      try {
        submit_io(r);  // on this reactor: finish_request runs on its owner thread
        return false;  // still in flight
      } catch (const std::system_error& e) {
        result = -e.code().value();
      } catch (...) {
        result = -ENOMEM;
      }
    }
  }
  if (r.on_complete != nullptr) {
    if (!r.on_complete(r, result)) return false;  // resubmitted itself: still in flight
  } else {
    r.result = result;
  }
  // Out of the cancel inbox before the waiter may run (on another worker, for a bound task) and
  // free the request with its frame.
  cancels.finished(r);
  sink.ready(sink.context, r.waiter, r.bound);
  return true;
}

#if !CORIO_HAS_URING
void set_uring_setup_failure(int) noexcept {}
#endif

namespace {
std::mutex buffer_config_mutex;
buffer_ring_config buffer_config{};
}  // namespace

buffer_ring_config current_buffer_ring_config() noexcept {
  std::lock_guard lock{buffer_config_mutex};
  return buffer_config;
}

void set_buffer_ring_config(const buffer_ring_config* config) noexcept {
  buffer_ring_config c = config != nullptr ? *config : buffer_ring_config{};
  c.max_buffers = std::clamp(c.max_buffers, 1u, 32768u);
  c.initial_buffers = std::clamp(c.initial_buffers, 1u, c.max_buffers);
  c.buffer_bytes = std::clamp<std::size_t>(c.buffer_bytes, 1, std::size_t{1} << 20);
  std::lock_guard lock{buffer_config_mutex};
  buffer_config = c;
}

backend_choice choose_backend(io_backend requested) {
  backend_choice choice;
  io_backend b = requested;
  // CORIO_BACKEND was applied to `requested` already (apply_environment, lib/runtime.cpp).
#if !CORIO_HAS_URING
  if (b == io_backend::uring) {
    throw std::invalid_argument("corio: io_uring was requested, but corio was built without it (io_backend option)");
  }
  if (b == io_backend::automatic) b = io_backend::asio;  // the only reactor here: not a fallback
#endif
#if !CORIO_HAS_ASIO_REACTOR
  if (b == io_backend::asio) {
    throw std::invalid_argument("corio: Asio was requested, but corio was built without it (io_backend option)");
  }
  if (b == io_backend::automatic) b = io_backend::uring;
#endif
#if CORIO_HAS_URING && CORIO_HAS_ASIO_REACTOR
  if (b == io_backend::automatic) {
    choice.may_fall_back = true;
    try {
      uring_reactor probe{8, completion_sink{&ignore_completion, nullptr}};
      b = io_backend::uring;
    } catch (const std::system_error& e) {
      b = io_backend::asio;
      choice.fallback_reason = e.what();
    }
  }
#endif
  choice.backend = b;
  return choice;
}

std::unique_ptr<reactor> make_reactor([[maybe_unused]] const backend_choice& choice, [[maybe_unused]] unsigned ring_entries,
                                      completion_sink sink, [[maybe_unused]] std::string& fallback_reason,
                                      [[maybe_unused]] std::chrono::milliseconds sqpoll_idle,
                                      [[maybe_unused]] std::size_t send_zc_threshold) {
#if CORIO_HAS_URING
  if (choice.backend == io_backend::uring) {
#if CORIO_HAS_ASIO_REACTOR
    try {
      return std::make_unique<uring_reactor>(ring_entries, sink, sqpoll_idle, send_zc_threshold);
    } catch (const std::system_error& e) {
      if (!choice.may_fall_back) throw;
      fallback_reason = e.what();
    }
#else
    return std::make_unique<uring_reactor>(ring_entries, sink, sqpoll_idle, send_zc_threshold);
#endif
  }
#endif
#if CORIO_HAS_ASIO_REACTOR
  return std::make_unique<asio_reactor>(sink);
#else
  (void)choice;
  (void)sink;
  throw std::invalid_argument("corio: no reactor was built");
#endif
}

}  // namespace corio::detail
