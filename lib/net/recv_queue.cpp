// lib/net/recv_queue.cpp - a stream's multishot receive (corio/detail/recv_queue.hpp).
//
// One multishot IORING_OP_RECV (IORING_RECV_MULTISHOT, IOSQE_BUFFER_SELECT) per stream, armed on
// the ring of the worker whose read first found the queue empty. The kernel keeps the socket's
// poll armed across completions, so a connection costs one submission for as long as data keeps
// coming, instead of one per read. Each completion arrives on the ring's worker (completion-on-owner)
// with a buffer of that worker's provided ring, and is handed, under the queue's spin lock, to the
// parked reader if it can still be claimed (the park protocol of channels: claim-once-then-effect)
// or queued on the stream. The reader may run on any worker; a cancellation wakes it where it
// parked (cancel-resumes-on-park-worker) and leaves later data queued. Bounded softly: past
// `soft_capacity` queued chunks the multishot is cancelled (the socket's receive buffer holds what
// comes next) and armed again by the next read that finds the queue empty. A ring that runs dry
// ends the multishot (ENOBUFS): the reactor puts back returned buffers or grows the ring and the
// multishot is armed again; when the ring stays empty at its bound, one plain receive into a heap
// buffer serves the parked reader. See docs/internals.md, "Multishot receive".
#include "corio/detail/recv_queue.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include "../runtime_impl.hpp"
#if CORIO_FAULT_INJECTION
#include "../fault_injection.hpp"
#endif
#include "corio/buffer_lease.hpp"

namespace corio::detail {

namespace {
/// Queued chunks past which the multishot is cancelled (the socket buffer keeps the rest).
constexpr std::size_t soft_capacity = 8;
/// Bytes of the heap buffer a fallback receive uses (as read_lease_operation's).
constexpr std::size_t heap_bytes = 16384;
}  // namespace

struct recv_queue {
  spin_lock lock;
  std::atomic<std::uint32_t> refs{1};  ///< the stream, the armed request, a parked reader
  int fd;
  std::uint64_t generation;
  bool closed = false;       ///< under lock: the stream let go (close_recv_queue)
  bool cancel_sent = false;  ///< under lock: the armed request's cancel was pushed (queue full)
  reactor* armed = nullptr;  ///< under lock: the reactor whose ring holds `request`, or null
  /// Under lock: received, not read yet, from chunks[head] on. A vector (not a deque) so that a
  /// stream whose chunks all go straight to its reader never allocates. An end-of-stream chunk
  /// stays at the front once reached: every later read sees it.
  std::vector<recv_chunk> chunks;
  std::size_t head = 0;
  wait_list waiters;          ///< under lock: the parked reader (a claimed one stays until it unlinks)
  std::byte* heap = nullptr;  ///< the fallback receive's buffer while it is in flight
  io_request request{};       ///< the multishot receive; touched by its reactor while armed
  // The one reader's wait (one read at a time: a second one meets `reading` and gets EBUSY).
  bool reading = false;  ///< under lock: a read is parked (from start_recv to finish or abandon)
  park_state park{};
  wait_node node{};
  recv_chunk handed{};  ///< what the read gets: written under lock, then owned by the reader

  recv_queue(int f, std::uint64_t g) noexcept : fd(f), generation(g) {}
  ~recv_queue() {
    for (std::size_t i = head; i < chunks.size(); ++i) release_chunk(chunks[i]);
    release_chunk(handed);
    delete[] heap;
  }
  [[nodiscard]] bool empty() const noexcept { return head == chunks.size(); }
  [[nodiscard]] std::size_t size() const noexcept { return chunks.size() - head; }
  recv_chunk& front() noexcept { return chunks[head]; }
  void pop() noexcept {
    if (++head == chunks.size()) {
      chunks.clear();
      head = 0;
    }
  }
};

namespace {

void add_ref(recv_queue& q) noexcept { q.refs.fetch_add(1, std::memory_order_relaxed); }

void release(recv_queue& q) noexcept {
  if (q.refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete &q;
}

recv_queue& queue_of(io_request& r) noexcept { return *static_cast<recv_queue*>(r.address); }

/// Readies the request for another arm (lock held; none armed: its last completion was reaped
/// for good, so no cancel inbox holds it).
void reset_request(recv_queue& q, worker& w, std::uint8_t kind) noexcept {
  io_request& r = q.request;
  r.opcode = io_opcode::recv;
  r.fd = q.fd;
  r.generation = q.generation;
  r.flags = 0;
  r.provided = kind;
  r.buffer = nullptr;
  r.length = 0;
  r.address = &q;  // unused by a receive: how the completion finds its queue
  r.result = 0;
  r.waiter = {};
  r.on_complete = nullptr;
  r.cancel_flags.store(0, std::memory_order_relaxed);
  r.cancel_owner = &w.reactor_->cancels();
}

/// Arms the multishot receive on worker `w`'s ring (lock held; none armed). Throws what
/// submit_io throws, with nothing changed.
void arm(recv_queue& q, worker& w) {
  reset_request(q, w, io_request::recv_multishot);
  submit_io(q.request);
  q.armed = w.reactor_.get();
  q.cancel_sent = false;
  add_ref(q);  // the armed request's reference, released by its last completion
}

/// The ring stayed dry at its bound: one plain receive into a heap buffer for the parked reader
/// (lock held; none armed). Throws std::bad_alloc or what submit_io throws, with nothing changed.
void arm_heap(recv_queue& q, worker& w) {
  auto* buffer = new std::byte[heap_bytes];
  reset_request(q, w, io_request::recv_queue_heap);
  q.request.buffer = buffer;
  q.request.length = heap_bytes;
  try {
    submit_io(q.request);
  } catch (...) {
    delete[] buffer;
    throw;
  }
  q.heap = buffer;
  q.armed = w.reactor_.get();
  q.cancel_sent = false;
  add_ref(q);
  w.reactor_->note_buffer_fallback();
}

/// start_recv's answer when it served the read at once (lock held): the chunk waits in `handed`.
recv_start ready(recv_queue& q, const recv_chunk& c) noexcept {
  q.handed = c;
  return recv_start::ready;
}

void store_chunk(wait_node& n, const recv_chunk& c) noexcept { *static_cast<recv_chunk*>(n.slot) = c; }

/// Queues `c` (lock held); false when memory ran out (the caller then fails the stream's reads).
bool push(recv_queue& q, const recv_chunk& c) noexcept {
  try {
    q.chunks.push_back(c);
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

void release_chunk(recv_chunk& c) noexcept {
  if (c.data == nullptr) return;
  if (c.ring != nullptr) release_ring_buffer(c.ring, c.id);
  else delete[] c.data;
  c.data = nullptr;
  c.ring = nullptr;
}

bool multishot_recv_here() noexcept {
  worker* w = this_worker;
  return w != nullptr && w->reactor_->multishot_recv();
}

recv_queue* make_recv_queue(int fd, std::uint64_t generation) { return new recv_queue{fd, generation}; }

recv_queue* recv_queue_handle::get_or_make(int fd, std::uint64_t generation) noexcept {
  if (q_ == nullptr && fd >= 0 && multishot_recv_here()) q_ = new (std::nothrow) recv_queue{fd, generation};
  return q_;
}

void close_recv_queue(recv_queue* q) noexcept {
  if (q == nullptr) return;
  std::vector<recv_chunk> chunks;
  std::size_t head = 0;
  wait_node* woken = nullptr;
  {
    spin_guard g{q->lock};
    q->closed = true;
    chunks.swap(q->chunks);
    head = std::exchange(q->head, 0);
    while (wait_node* n = claim_first(q->waiters)) {
      store_chunk(*n, recv_chunk{.result = -EBADF});
      n->next = woken;
      woken = n;
    }
    // The reactor is alive while armed: its drain waits for this request's last completion,
    // which needs this lock to clear `armed`. The ring holds a reference to the socket until the
    // cancel completes; the peer sees the close then.
    if (q->armed != nullptr) q->request.cancel_owner->push(q->request);
  }
  for (std::size_t i = head; i < chunks.size(); ++i) release_chunk(chunks[i]);
  wake_chain(woken);
  release(*q);
}

recv_start start_recv(recv_queue& q, std::coroutine_handle<> task, std::uint32_t bound, stop_state* stop) {
  worker& wk = require_worker("corio I/O");
  spin_guard g{q.lock};
  if (q.reading) return recv_start::busy;  // another read of this stream is parked: refused, not corrupted
  q.park.stop = stop;  // what the read observes if it ends cancelled, parked or not
  if (q.closed) return ready(q, recv_chunk{.result = -EBADF});
  if (stop != nullptr && stop->stop_requested()) {  // as io_operation: a stopped task takes nothing
    return ready(q, recv_chunk{.result = -ECANCELED});
  }
#if CORIO_FAULT_INJECTION
  {
    // The seam is the submission: here each read is one, as a plain receive's request is (an
    // injected error takes nothing from the queue). EINTR and EAGAIN are retried, as
    // finish_request resubmits a plain receive that met them.
    io_request probe{};
    probe.opcode = io_opcode::recv;
    probe.fd = q.fd;
    fault::decision d = fault::on_submit(probe);
    while (d.error == EINTR || d.error == EAGAIN) d = fault::on_submit(probe);
    if (d.error != 0) return ready(q, recv_chunk{.result = -d.error});
  }
#endif
  if (!q.empty()) {
    const recv_chunk c = q.front();
    if (c.result != 0) q.pop();  // the end of the stream stays for every later read
    return ready(q, c);
  }
  if (q.armed == nullptr) {
    if (!wk.reactor_->multishot_recv()) return recv_start::one_shot;
    arm(q, wk);
  }
  q.park.claim.store(park_state::waiting, std::memory_order_relaxed);
  q.park.solo = true;
  prepare_park(q.park, task, bound, &q.lock, stop);  // solo: claimed only under q.lock
  q.node.owner = &q.park;
  q.node.case_index = 1;
  q.node.slot = &q.handed;
  if (!enqueue_parked(q.waiters, q.node)) {  // stop requested meanwhile: not parked
    return ready(q, recv_chunk{.result = -ECANCELED});
  }
  q.reading = true;
  add_ref(q);
  return recv_start::parked;  // unlocking publishes the task: nothing of the frame after this
}

recv_chunk finish_recv(recv_queue& q, recv_state state, stop_state** stop) noexcept {
  *stop = q.park.stop;
  if (state != recv_state::parked) return std::exchange(q.handed, recv_chunk{});
  disarm_park(q.park);
  recv_chunk c;
  {
    spin_guard g{q.lock};
    if (q.park.claim.load(std::memory_order_relaxed) == park_state::cancelled) {
      // A chunk arriving after the cancel went past this node to the queue.
      if (q.node.linked) q.waiters.remove(q.node);
      c = recv_chunk{.result = -ECANCELED};
    } else {
      c = std::exchange(q.handed, recv_chunk{});
    }
    q.reading = false;
  }
  release(q);
  return c;
}

void unread_chunk(recv_queue& q, recv_chunk c) noexcept {
  {
    spin_guard g{q.lock};
    if (!q.closed) {
      if (q.head > 0) {
        q.chunks[--q.head] = c;
        return;
      }
      try {
        q.chunks.insert(q.chunks.begin(), c);
        return;
      } catch (...) {
        // Out of memory: the rest of this chunk is lost; the next read reports ENOMEM.
        if (push(q, recv_chunk{.result = -ENOMEM})) {}
      }
    }
  }
  release_chunk(c);
}

std::size_t copy_queued(recv_queue& q, std::byte* out, std::size_t size, std::size_t done) noexcept {
  constexpr std::size_t batch = 16;
  std::array<recv_chunk, batch> used{};
  std::size_t n_used = 0;
  {
    spin_guard g{q.lock};
    while (done < size && !q.empty() && q.front().result > 0 && n_used < batch) {
      recv_chunk& c = q.front();
      const std::size_t n = std::min(size - done, c.unread());
      std::memcpy(out + done, c.data + c.offset, n);
      done += n;
      c.offset += static_cast<std::uint32_t>(n);
      if (c.unread() != 0) break;
      used[n_used++] = c;
      q.pop();
    }
  }
  for (std::size_t i = 0; i < n_used; ++i) release_chunk(used[i]);  // outside the lock
  return done;
}

void abandon_recv(recv_queue& q, recv_state state) noexcept {
  if (state == recv_state::none) return;
  recv_chunk c;
  {
    spin_guard g{q.lock};  // parked-awaiter-unlinks-under-lock
    if (state == recv_state::parked) {
      if (q.node.linked) q.waiters.remove(q.node);
      q.reading = false;
    }
    c = std::exchange(q.handed, recv_chunk{});
  }
  release_chunk(c);
  if (state == recv_state::parked) release(q);
}

void multishot_recv_completed(io_request& r, recv_chunk chunk, bool more, bool draining, bool refilled) noexcept {
  recv_queue& q = queue_of(r);
  wait_node* woken = nullptr;
  wake_ticket reader{};  // the reader this completion's chunk went to
  recv_chunk to_release{};
  bool cancel = false;
  const bool ended = !more;  // the armed request's reference is to be released
  {
    spin_guard g{q.lock};
    if (!more) q.armed = nullptr;
    if (r.provided == io_request::recv_queue_heap) {  // the fallback receive: its buffer is the chunk's
      std::byte* buffer = std::exchange(q.heap, nullptr);
      if (chunk.result > 0) {
        chunk.ring = nullptr;
        chunk.data = buffer;
      } else {
        delete[] buffer;
      }
    }
    const int res = chunk.result;
    if (res == -ENOBUFS || res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
      // Nothing received: the ring ran dry, the multishot was cancelled (queue full, close,
      // drain), or a fallback receive must be tried again. The bytes wait in the socket.
    } else if (q.closed) {
      to_release = chunk;  // received after the close: nobody will read it
    } else {
      wait_node* n = nullptr;
      if (q.empty() && !draining) n = claim_first(q.waiters);
      if (n != nullptr) {
        store_chunk(*n, chunk);
        reader = ticket_of(*n->owner);
      }
      // The end of the stream is also queued, so that every later read sees it; anything else
      // handed to the reader is not.
      if (n == nullptr || res == 0) {
        recv_chunk queued = chunk;
        if (n != nullptr) queued.data = nullptr;  // the reader owns the buffer (none for the end)
        if (!push(q, queued)) {
          to_release = queued;
          if (push(q, recv_chunk{.result = -ENOMEM})) {}  // the bytes are lost: say so once
        }
      }
      if (more && q.size() >= soft_capacity && !q.cancel_sent) {
        q.cancel_sent = true;  // full: let the socket buffer hold what comes next
        cancel = true;
      }
    }
    if (!more && !q.closed && !draining && !q.waiters.empty()) {
      // Ended (dry ring, a cancel, an error, the kernel) with the reader still parked, so nothing
      // is queued: receive again here, into the ring, or into a heap buffer when it stayed dry.
      try {
        if (worker* w = this_worker) {
          if (res == -ENOBUFS && !refilled) arm_heap(q, *w);
          else arm(q, *w);
        }
      } catch (...) {
        // The ring cannot take it (or no memory): the reader fails instead of waiting for nothing.
        while (wait_node* n = claim_first(q.waiters)) {
          store_chunk(*n, recv_chunk{.result = -ENOMEM});
          n->next = woken;
          woken = n;
        }
      }
    }
  }
  release_chunk(to_release);
  if (cancel) r.cancel_owner->push(r);  // still armed: only this thread ends it
  if (reader) wake_parked_in_order(reader);  // as a one-shot receive's completion would
  wake_chain(woken);  // claimed nodes are off the list, chained through `next`
  if (ended) release(q);
}

}  // namespace corio::detail
