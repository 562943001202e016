// lib/net/accept_queue.cpp - a listener's multishot accept (corio/detail/accept_queue.hpp).
//
// One multishot IORING_OP_ACCEPT per listener, armed on the ring of the worker whose accept first
// found the queue empty. Its completions arrive on that worker (completion-on-owner) and are
// handed, under the queue's spin lock, to the first parked acceptor that can still be claimed
// (the park protocol of channels: claim-once-then-effect), or queued on the listener. An acceptor
// may run on any worker: it takes a queued descriptor, or parks on the queue; the completion's
// worker wakes it with wake_parked (on its bound worker, or next on the completing worker), and
// a cancellation wakes it where it parked (cancel-resumes-on-park-worker) and leaves any later
// descriptor queued. The queue is bounded softly: past `soft_capacity` descriptors the multishot
// is cancelled (the kernel's backlog holds further connections), and it is armed again by the
// next accept that finds the queue empty. See docs/internals.md, "Multishot accept".
#include "corio/detail/accept_queue.hpp"

#include <cerrno>
#include <deque>
#include <new>

#include "../runtime_impl.hpp"
#if CORIO_FAULT_INJECTION
#include "../fault_injection.hpp"
#endif
#include "socket_api.hpp"

namespace corio::detail {

namespace {
/// Queued descriptors past which the multishot is cancelled (the backlog keeps the rest).
constexpr std::size_t soft_capacity = 64;
}  // namespace

struct accept_queue {
  spin_lock lock;
  std::atomic<std::uint32_t> refs{1};  ///< the listener, the armed request, each parked acceptor
  int fd;
  std::uint64_t generation;
  bool closed = false;       ///< under lock: the listener let go (close_accept_queue)
  bool cancel_sent = false;  ///< under lock: the armed request's cancel was pushed (queue full)
  reactor* armed = nullptr;  ///< under lock: the reactor whose ring holds `request`, or null
  std::deque<int> fds;       ///< under lock: accepted, not taken yet
  wait_list waiters;         ///< under lock: parked acceptors (a claimed one stays until it unlinks)
  io_request request{};      ///< the multishot accept; touched by its reactor while armed

  accept_queue(int f, std::uint64_t g) noexcept : fd(f), generation(g) {}
  ~accept_queue() {
    for (int d : fds) (void)close_socket(d);
  }
};

namespace {

void add_ref(accept_queue& q) noexcept { q.refs.fetch_add(1, std::memory_order_relaxed); }

void release(accept_queue& q) noexcept {
  if (q.refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete &q;
}

accept_queue& queue_of(io_request& r) noexcept {
  return *reinterpret_cast<accept_queue*>(reinterpret_cast<char*>(&r) - offsetof(accept_queue, request));
}

/// Arms the multishot accept on worker `w`'s ring (lock held; none armed). The request is fresh:
/// the last arm's completion was reaped for good (its cancel_finished set), so no cancel inbox
/// holds it. Throws what submit_io throws, with nothing changed.
void arm(accept_queue& q, worker& w) {
  io_request& r = q.request;
  r.opcode = io_opcode::accept;
  r.fd = q.fd;
  r.generation = q.generation;
  r.flags = accept_multishot;
  r.address = nullptr;
  r.address_length = 0;
  r.result = 0;
  r.waiter = {};
  r.on_complete = nullptr;
  r.cancel_flags.store(0, std::memory_order_relaxed);
  r.cancel_owner = &w.reactor_->cancels();
  submit_io(r);
  q.armed = w.reactor_.get();
  q.cancel_sent = false;
  add_ref(q);  // the armed request's reference, released by its last completion
}

void store_result(wait_node& n, int result) noexcept { *static_cast<int*>(n.slot) = result; }

}  // namespace

accept_queue* make_accept_queue(int fd, std::uint64_t generation) { return new accept_queue{fd, generation}; }

void close_accept_queue(accept_queue* q) noexcept {
  if (q == nullptr) return;
  std::deque<int> fds;
  wait_node* woken = nullptr;
  {
    spin_guard g{q->lock};
    q->closed = true;
    fds.swap(q->fds);
    while (wait_node* n = claim_first(q->waiters)) {
      store_result(*n, -EBADF);
      n->next = woken;
      woken = n;
    }
    if (q->armed != nullptr) {
      // The ring holds a reference to the socket: stop it listening now (a TCP listener shut down
      // for reading leaves LISTEN, so its port can be bound again at once), and cancel the
      // request. The reactor is alive: its drain waits for this request's last completion, which
      // needs this lock to clear `armed`.
      (void)::shutdown(q->fd, shut_read);
      q->request.cancel_owner->push(q->request);
    }
  }
  for (int d : fds) (void)close_socket(d);
  wake_chain(woken);
  release(*q);
}

bool multishot_accept_here() noexcept {
  worker* w = current_worker();
  return w != nullptr && w->reactor_->multishot_accept();
}

accept_start start_accept(accept_queue& q, accept_wait& w, std::coroutine_handle<> task, std::uint32_t bound,
                          stop_state* stop) {
  worker& wk = require_worker("corio I/O");
  const bool multishot = wk.reactor_->multishot_accept();
  w.park.stop = stop;  // what the accept observes if it ends cancelled, parked or not
  spin_guard g{q.lock};
  if (q.closed) {
    w.result = -EBADF;
    return accept_start::ready;
  }
  if (stop != nullptr && stop->stop_requested()) {  // as io_operation: a stopped task takes nothing
    w.result = -ECANCELED;
    return accept_start::ready;
  }
#if CORIO_FAULT_INJECTION
  {
    // The seam is the submission: here each accept is one, as a plain accept's request is (an
    // injected error takes nothing from the queue, as the plain one leaves the backlog alone).
    // EINTR and EAGAIN are retried, as finish_request resubmits a plain accept that met them.
    io_request probe{};
    probe.opcode = io_opcode::accept;
    probe.fd = q.fd;
    fault::decision d = fault::on_submit(probe);
    while (d.error == EINTR || d.error == EAGAIN) d = fault::on_submit(probe);
    if (d.error != 0) {
      w.result = -d.error;
      return accept_start::ready;
    }
  }
#endif
  if (!q.fds.empty()) {
    w.result = q.fds.front();
    q.fds.pop_front();
    return accept_start::ready;
  }
  if (q.armed == nullptr) {
    if (!multishot) return accept_start::one_shot;
    arm(q, wk);
  }
  prepare_park(w.park, task, bound, &q.lock, stop);  // solo: claimed only under q.lock
  w.node.owner = &w.park;
  w.node.case_index = 1;
  w.node.slot = &w.result;
  if (!enqueue_parked(q.waiters, w.node)) {  // stop requested meanwhile: not parked
    w.result = -ECANCELED;
    return accept_start::ready;
  }
  add_ref(q);
  w.queue = &q;
  return accept_start::parked;  // unlocking publishes the task: nothing of the frame after this
}

int settle_accept(accept_wait& w) noexcept {
  accept_queue& q = *w.queue;
  w.queue = nullptr;
  disarm_park(w.park);
  if (w.park.claim.load(std::memory_order_acquire) == park_state::cancelled) {
    spin_guard g{q.lock};  // a descriptor arriving now goes past this node to the queue
    if (w.node.linked) q.waiters.remove(w.node);
    w.result = -ECANCELED;
  }
  release(q);
  return w.result;
}

void abandon_accept(accept_wait& w) noexcept {
  if (w.queue == nullptr) return;
  accept_queue& q = *w.queue;
  w.queue = nullptr;
  {
    spin_guard g{q.lock};  // parked-awaiter-unlinks-under-lock
    if (w.node.linked) q.waiters.remove(w.node);
  }
  release(q);
}

void multishot_accept_completed(io_request& r, int result, bool more, bool draining) noexcept {
  accept_queue& q = queue_of(r);
  wait_node* woken = nullptr;
  int to_close = -1;
  bool cancel = false;
  bool ended = !more;  // the armed request's reference is to be released
  {
    spin_guard g{q.lock};
    if (!more) q.armed = nullptr;
    if (result >= 0) {
      if (q.closed) {
        to_close = result;  // accepted before the cancel took effect: nobody will take it
      } else if (wait_node* n = draining ? nullptr : claim_first(q.waiters)) {
        store_result(*n, result);
        woken = n;
      } else {
        try {
          q.fds.push_back(result);
        } catch (...) {
          to_close = result;  // out of memory: the peer sees the connection reset
        }
        if (more && q.fds.size() >= soft_capacity && !q.cancel_sent) {
          q.cancel_sent = true;  // full: let the backlog hold the next ones
          cancel = true;
        }
      }
    } else if (!q.closed && !draining && result != -ECANCELED && result != -EINTR && result != -EAGAIN) {
      // EMFILE, ENFILE, ECONNABORTED...: one acceptor sees it, as with a one-shot accept; with
      // nobody parked it is dropped (the next accept arms again and meets it if it persists).
      if (wait_node* n = claim_first(q.waiters)) {
        store_result(*n, result);
        woken = n;
      }
    }
    if (!more && !q.closed && !draining && !q.waiters.empty()) {
      // Ended (a cancel, an error, the kernel) with acceptors still parked: arm again here.
      // Parked acceptors mean an empty queue (they park only then, and a descriptor goes to them
      // first), so this never re-arms past the soft capacity.
      try {
        if (worker* w = this_worker) arm(q, *w);
      } catch (...) {
        // The ring cannot take it: every parked acceptor fails instead of waiting for nothing.
        while (wait_node* n = claim_first(q.waiters)) {
          store_result(*n, -EBUSY);
          n->next = woken;
          woken = n;
        }
      }
    }
  }
  if (to_close >= 0) (void)close_socket(to_close);
  if (cancel) r.cancel_owner->push(r);  // still armed: only this thread ends it
  wake_chain(woken);  // claimed nodes are off the list, chained through `next`
  if (ended) release(q);
}

}  // namespace corio::detail
