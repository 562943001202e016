// lib/reactor_factory.hpp - which reactor a runtime's workers use, and making one.
//
// The one place that knows which reactors were built (CORIO_HAS_URING, CORIO_HAS_ASIO_REACTOR,
// set by lib/meson.build from the `io_backend` option): the rest of the library sees only the
// reactor interface (libcoro's io_notifier seam).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "corio/runtime.hpp"
#include "reactor.hpp"

namespace corio::detail {

/// The runtime-wide decision, taken once at construction.
struct backend_choice {
  io_backend backend = io_backend::automatic;  ///< uring or asio, never automatic
  /// The workers may fall back to Asio if their own io_uring set-up fails (the choice was
  /// automatic and Asio was built).
  bool may_fall_back = false;
  /// Why Asio runs although io_uring came first; empty otherwise.
  std::string fallback_reason;
};

/// Decides the backend for `requested` (runtime_options::backend): applies CORIO_BACKEND when
/// `requested` is automatic, then, for an automatic choice, probes io_uring by setting up a small
/// ring on the calling thread (and its opcodes) and takes Asio when that fails. Throws
/// std::invalid_argument for an unknown CORIO_BACKEND value or a backend that was not built.
backend_choice choose_backend(io_backend requested);

/// Creates the reactor of one worker, on the worker's thread. With may_fall_back, an io_uring
/// set-up that fails makes an Asio reactor instead and stores the error in `fallback_reason`.
/// Throws std::system_error when the reactor cannot be set up.
/// `sqpoll_idle` > 0 asks io_uring for a kernel submission poller (runtime_options::sqpoll_idle);
/// `send_zc_threshold` > 0 sends that many bytes or more with SEND_ZC (runtime_options::send_zc_threshold).
std::unique_ptr<reactor> make_reactor(const backend_choice& choice, unsigned ring_entries, completion_sink sink,
                                      std::string& fallback_reason,
                                      std::chrono::milliseconds sqpoll_idle = std::chrono::milliseconds::zero(),
                                      std::size_t send_zc_threshold = 0);

/// Test hook: while `error` is non-zero, every io_uring reactor set-up fails as if
/// io_uring_queue_init_params had returned -error (ENOSYS: a kernel without io_uring; EPERM:
/// seccomp or `kernel.io_uring_disabled`), so that tests exercise the fallback to Asio on a
/// machine that has io_uring. 0 (the default) restores normal set-up. No effect when io_uring was
/// not built. Thread-safe.
/// Exported (CORIO_API) for the test suite, which links a shared corio too.
CORIO_API void set_uring_setup_failure(int error) noexcept;

/// The provided buffer ring each io_uring worker sets up the first time one of its tasks asks for
/// a buffer lease (corio::net::tcp_stream::read_lease; lib/uring_buffers.hpp): buffers put in the
/// ring at first, the bound it grows to (doubling) when it runs dry, and each buffer's size.
struct buffer_ring_config {
  unsigned initial_buffers = 256;    ///< at least 1
  unsigned max_buffers = 4096;       ///< the ring's size: rounded up to a power of two, at most 32768
  std::size_t buffer_bytes = 16384;  ///< bytes per buffer, at least 1, at most 1 MiB
};

/// The configuration rings set up from now on use. Thread-safe.
buffer_ring_config current_buffer_ring_config() noexcept;

/// Test hook: rings set up from now on use `config` (clamped to the bounds above); null restores
/// the defaults. Rings already set up keep theirs. Thread-safe.
/// Exported (CORIO_API) for the test suite, which links a shared corio too.
CORIO_API void set_buffer_ring_config(const buffer_ring_config* config) noexcept;

}  // namespace corio::detail
