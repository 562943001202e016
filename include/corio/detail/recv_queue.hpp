// corio/detail/recv_queue.hpp - a stream's multishot receive: one IORING_OP_RECV with
// IORING_RECV_MULTISHOT and a provided buffer ring, armed on one worker's ring, the buffers it
// fills queued on the stream, and the task waiting for them parked on it (see docs/internals.md,
// "Multishot receive").
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "corio/detail/io_operation.hpp"
#include "corio/detail/park.hpp"

namespace corio::detail {

/// A stream's shared receive state: the received buffers not read yet, the multishot request and
/// where it is armed, and the one reader's wait (its park state and node, and the chunk handed to
/// it: they live here rather than in the read's awaiter, which keeps the frames of tasks that
/// read small). Reference-counted (the stream, the armed request, a parked reader), so it
/// outlives a stream closed while its request is still in a ring. Opaque; defined in
/// lib/net/recv_queue.cpp. Thread-safe through its functions below.
struct recv_queue;

/// What one receive produced: bytes in a ring buffer (`ring` non-null: buffer `id` of that
/// provided buffer ring, lib/uring_buffers.hpp) or in a heap buffer (`ring` null, `data` from
/// new[]), the end of the stream (`result` 0), or an error (`result` -errno, no buffer).
/// `offset` bytes at the front were already read (a read_some that copied part of it).
struct recv_chunk {
  void* ring = nullptr;
  std::byte* data = nullptr;
  std::uint32_t offset = 0;
  std::uint16_t id = 0;
  int result = 0;  ///< bytes in the buffer (> 0), 0 at end of stream, or -errno
  [[nodiscard]] std::size_t unread() const noexcept {
    return result > 0 ? static_cast<std::size_t>(result) - offset : 0;
  }
};

/// Gives a chunk's buffer back (to its ring, or frees the heap buffer). Any thread.
CORIO_API void release_chunk(recv_chunk& c) noexcept;

/// How start_recv served a read.
enum class recv_start : std::uint8_t {
  one_shot,  ///< no multishot here (Asio, an old kernel, no buffer ring, a knob): the plain receive
  ready,     ///< done at once: finish_recv gives the next chunk, the end of stream, or -errno
  parked,    ///< the task is parked on the queue until a chunk, the end, an error, a close or its stop
  busy,      ///< another read of the stream is parked: this one fails with EBUSY, touching nothing
};

/// Where a read on a recv_queue stands, kept in the read's awaiter.
enum class recv_state : std::uint8_t { none, ready, parked };

/// True when reads on the calling worker can use a recv_queue (io_uring with multishot receive
/// and a provided buffer ring; false off a worker). Sets the worker's buffer ring up on first use.
[[nodiscard]] CORIO_API bool multishot_recv_here() noexcept;

/// Creates the receive state of connected stream socket `fd` (not owned: the stream closes it
/// after close_recv_queue). Throws std::bad_alloc.
CORIO_API recv_queue* make_recv_queue(int fd, std::uint64_t generation);

/// The stream lets go of its queue (close, destruction, move-assignment), before it closes `fd`:
/// queued buffers go back, a parked reader ends with EBADF, an armed multishot is cancelled
/// through its reactor's cancel inbox. Any thread. Null: nothing.
CORIO_API void close_recv_queue(recv_queue* q) noexcept;

/// A read on `q` by task `task` (bound to `bound`, stop state `stop` or null) on a worker: takes
/// the next queued chunk, or parks the task (arming the multishot on this worker's ring when none
/// is armed), or says to do a plain receive (nothing queued, nothing armed, and this worker has no
/// multishot receive). A stop already requested gives ECANCELED and leaves queued chunks alone; a
/// second read while one is parked (two concurrent reads of one stream) gives EBUSY. Nothing of
/// the frame is touched after it returns `parked`. Throws std::logic_error off a worker,
/// std::system_error when the ring cannot take the request.
CORIO_API recv_start start_recv(recv_queue& q, std::coroutine_handle<> task, std::uint32_t bound,
                                stop_state* stop);

/// Ends a read that start_recv served (`state` ready) or parked (`state` parked; after it resumed:
/// disarms its canceller and drops its reference): returns the chunk handed to it (result
/// -ECANCELED when its stop ended the wait: data arriving later stays queued for the next read),
/// which the caller now owns, and sets `*stop` to the stop state the read ran under. The reader's
/// thread.
CORIO_API recv_chunk finish_recv(recv_queue& q, recv_state state, stop_state** stop) noexcept;

/// Puts the unread rest of `c` back at the front of `q` (a read_some took only part of it). The
/// stream's one reader only. Any thread.
CORIO_API void unread_chunk(recv_queue& q, recv_chunk c) noexcept;

/// Copies queued bytes into `out` (after the `done` bytes already there) while it has room and
/// chunks with bytes are queued, giving consumed buffers back; returns the new count. Stops at an
/// end-of-stream or error chunk (left queued). The stream's one reader only. Any thread.
CORIO_API std::size_t copy_queued(recv_queue& q, std::byte* out, std::size_t size, std::size_t done) noexcept;

/// A read's awaiter destroyed before finish_recv (its frame destroyed at shutdown, parked or
/// woken): takes the node off under the lock and gives a chunk handed to it back.
CORIO_API void abandon_recv(recv_queue& q, recv_state state) noexcept;

/// Owns a stream's reference to its recv_queue: move-only; reset() (and destruction) is
/// close_recv_queue. Not thread-safe (as the stream).
class CORIO_API recv_queue_handle {
 public:
  recv_queue_handle() noexcept = default;
  recv_queue_handle(recv_queue_handle&& other) noexcept : q_(std::exchange(other.q_, nullptr)) {}
  recv_queue_handle& operator=(recv_queue_handle&& other) noexcept {
    if (this != &other) {
      reset();
      q_ = std::exchange(other.q_, nullptr);
    }
    return *this;
  }
  ~recv_queue_handle() { reset(); }
  void reset() noexcept { close_recv_queue(std::exchange(q_, nullptr)); }
  /// The queue, made on first use for stream socket `fd` when the calling worker can use one;
  /// null otherwise (or when memory is short).
  recv_queue* get_or_make(int fd, std::uint64_t generation) noexcept;
  [[nodiscard]] recv_queue* get() const noexcept { return q_; }

 private:
  recv_queue* q_ = nullptr;
};

/// The io_uring reactor's call for each completion of a recv_queue's request (`more`: the kernel's
/// IORING_CQE_F_MORE, the multishot stays armed; otherwise the reactor took it off its in-flight
/// list and its cancel inbox first). `chunk` holds what came: a ring buffer the reactor lent
/// (result > 0), the heap buffer of a fallback receive, the end of stream, or -errno. `refilled`:
/// after ENOBUFS, the ring has buffers again. Owner thread of that reactor. During drain
/// (`draining`) chunks are queued and nobody is woken or re-armed.
CORIO_API void multishot_recv_completed(io_request& r, recv_chunk chunk, bool more, bool draining,
                                        bool refilled) noexcept;

}  // namespace corio::detail
