// corio/detail/accept_queue.hpp - a listener's multishot accept: one IORING_OP_ACCEPT with
// IORING_ACCEPT_MULTISHOT armed on one worker's ring, the descriptors it accepts queued on the
// listener, and the tasks waiting for one parked on it (see docs/internals.md, "Multishot accept").
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>
#include <cstdint>
#include <utility>

#include "corio/detail/io_operation.hpp"
#include "corio/detail/park.hpp"

namespace corio::detail {

/// A listener's shared accept state: the queued descriptors, the parked acceptors, the multishot
/// request and where it is armed. Reference-counted (the listener, the armed request, each parked
/// acceptor), so it outlives a listener closed while its request is still in a ring. Opaque;
/// defined in lib/net/accept_queue.cpp. Thread-safe through its functions below.
struct accept_queue;

/// What an accept awaiter keeps for a wait on an accept_queue: its park state and node, and the
/// descriptor (or -errno) it is handed. Lives in the awaiter, hence in the task's frame.
struct accept_wait {
  park_state park{};
  wait_node node{};
  int result = 0;                  ///< the accepted descriptor, or -errno (EBADF: the listener closed)
  accept_queue* queue = nullptr;   ///< set while parked (and until settle_accept): holds a reference
};

/// True when the calling worker's reactor serves accepts through a listener's multishot accept
/// (start_accept then never submits the accept's own request). False off a worker. Defined in
/// lib/net/accept_queue.cpp.
CORIO_API bool multishot_accept_here() noexcept;

/// How start_accept served an accept.
enum class accept_start : std::uint8_t {
  one_shot,  ///< no multishot here (Asio, an old kernel, CORIO_URING_NO_MULTISHOT): submit the plain accept
  ready,     ///< done at once: accept_wait::result holds a queued descriptor or -errno
  parked,    ///< the task is parked on the queue until a descriptor, an error, a close or its stop
};

/// Creates the accept state of listening socket `fd` (not owned: the listener closes it after
/// close_accept_queue). Throws std::bad_alloc.
CORIO_API accept_queue* make_accept_queue(int fd, std::uint64_t generation);

/// The listener lets go of its queue (close or destruction), before it closes `fd`: queued
/// descriptors are closed, parked acceptors end with EBADF, an armed multishot is cancelled (and
/// the socket shut down for reading, so that it stops listening at once although the ring still
/// holds a reference to it). Any thread. Null: nothing.
CORIO_API void close_accept_queue(accept_queue* q) noexcept;

/// An accept on `q` by task `task` (bound to `bound`, stop state `stop` or null) running on a
/// worker: takes a queued descriptor, or parks the task (arming the multishot on this worker's
/// ring when none is armed), or says to do a plain one-shot accept. A stop already requested
/// gives ECANCELED and leaves queued descriptors alone. Nothing of the frame is touched after it
/// returns `parked`. Throws std::logic_error off a worker, std::system_error when the ring cannot
/// take the request.
CORIO_API accept_start start_accept(accept_queue& q, accept_wait& w, std::coroutine_handle<> task,
                                    std::uint32_t bound, stop_state* stop);

/// After a parked accept resumed: disarms its canceller and returns the result (-ECANCELED when
/// its stop ended the wait: a descriptor that arrives later stays queued for the next accept).
CORIO_API int settle_accept(accept_wait& w) noexcept;

/// A frame destroyed while its accept is parked (shutdown): takes the node off under the lock.
CORIO_API void abandon_accept(accept_wait& w) noexcept;

/// Owns a listener's reference to its accept_queue: move-only; reset() (and destruction) is
/// close_accept_queue. Not thread-safe (as the listener).
class accept_queue_handle {
 public:
  accept_queue_handle() noexcept = default;
  explicit accept_queue_handle(accept_queue* q) noexcept : q_(q) {}
  accept_queue_handle(accept_queue_handle&& other) noexcept : q_(std::exchange(other.q_, nullptr)) {}
  accept_queue_handle& operator=(accept_queue_handle&& other) noexcept {
    if (this != &other) {
      reset();
      q_ = std::exchange(other.q_, nullptr);
    }
    return *this;
  }
  ~accept_queue_handle() { reset(); }
  void reset() noexcept { close_accept_queue(std::exchange(q_, nullptr)); }
  [[nodiscard]] accept_queue* get() const noexcept { return q_; }

 private:
  accept_queue* q_ = nullptr;
};

/// The io_uring reactor's call for each completion of a multishot accept request (`more`: the
/// kernel's IORING_CQE_F_MORE, the request stays armed; otherwise the reactor took it off its
/// in-flight list and its cancel inbox first). Owner thread of that reactor. During drain
/// (`draining`) descriptors are queued and nobody is woken or re-armed.
CORIO_API void multishot_accept_completed(io_request& r, int result, bool more, bool draining) noexcept;

}  // namespace corio::detail
