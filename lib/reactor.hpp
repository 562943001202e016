// lib/reactor.hpp - the interface every reactor implements, one instance per worker.
//
// A reactor turns io_requests into completions. It belongs to one worker: submit(), poll(),
// wait() and drain() run only on that worker's thread (an io_uring ring set up with
// IORING_SETUP_SINGLE_ISSUER rejects any other thread); wake() is the one call other threads
// make. The worker owns timers; the reactor only bounds its wait by the next deadline.
// Implementations: uring_reactor (io_uring, Linux). The Asio implementation (one io_context per
// worker) plugs in behind the same five calls.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "corio/detail/io_operation.hpp"

namespace corio::detail {

/// Where a reactor hands finished requests: the worker's run queue. Called on the owning thread.
struct completion_sink {
  /// `bound`: the worker the waiter must run on (io_request::bound), or unbound_worker.
  void (*ready)(void* context, std::coroutine_handle<> waiter, std::uint32_t bound) noexcept;
  void* context;
};

/// A reactor's requests in flight: an intrusive list through io_request::prev/next, so that
/// drain() can cancel each one, and their count. Owner thread only.
class in_flight_list {
 public:
  void link(io_request& r) noexcept {
    r.prev = nullptr;
    r.next = head_;
    if (head_ != nullptr) head_->prev = &r;
    head_ = &r;
    ++count_;
  }
  void unlink(io_request& r) noexcept {
    if (r.prev != nullptr) r.prev->next = r.next;
    else head_ = r.next;
    if (r.next != nullptr) r.next->prev = r.prev;
    r.prev = r.next = nullptr;
    --count_;
  }
  [[nodiscard]] io_request* front() const noexcept { return head_; }
  [[nodiscard]] std::size_t size() const noexcept { return count_; }

 private:
  io_request* head_ = nullptr;
  std::size_t count_ = 0;
};

class reactor;

/// A reactor's provided buffer ring counters (runtime_stats: worker_stats::provided_*).
struct provided_buffer_stats {
  std::uint64_t buffers = 0;   ///< buffers the ring was given (0: no ring)
  std::uint64_t in_use = 0;    ///< handed out to leases and not released yet
  std::uint64_t enobufs = 0;   ///< receives that found the ring empty
  std::uint64_t grows = 0;     ///< times the ring was given more buffers after running dry
  std::uint64_t fallbacks = 0; ///< receives that went to a heap buffer because the ring stayed empty
};

/// A counter written by one thread and read by any. The store releases and the read acquires (a
/// plain move on x86), so that a reader who sees a count also sees what was done before it.
struct counter {
  std::atomic<std::uint64_t> value{0};
  [[gnu::always_inline]] void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_acquire); }
};

/// What a reactor counts for runtime_stats (see worker_stats): kept by its worker, which outlives
/// it, and written by the reactor on the owner thread only.
struct reactor_counters {
  counter multishot_arms;     ///< multishot accepts armed (the first and every re-arm)
  counter multishot_accepts;  ///< descriptors a multishot accept delivered
  counter enters;             ///< io_uring_enter calls (submissions and waits)
  counter msg_ring_wakes;     ///< wakes of another worker sent as an IORING_OP_MSG_RING
  counter send_zc;            ///< sends submitted as IORING_OP_SEND_ZC (runtime_options::send_zc_threshold)
  counter multishot_recv_arms;  ///< multishot receives armed (a stream's first read and every re-arm)
  counter multishot_recvs;      ///< buffers of data a multishot receive delivered
  counter linked_timeouts;    ///< submissions followed by an IORING_OP_LINK_TIMEOUT (io_request::deadline)
  counter linked_timeouts_fired;  ///< link timeouts that expired (their CQE said -ETIME)
};

/// Where cancellers (any thread) leave the requests whose operations their owning reactor must
/// cancel, since only the owner may touch its ring or io_context (SINGLE_ISSUER). An intrusive
/// list through io_request::cancel_prev/next under a mutex; a request is in it only while it is in
/// flight: push() links it only when the reactor has not finished it (one fetch_or on
/// cancel_flags decides), and the reactor, when it finishes a request that was queued, unlinks it
/// before the waiter is scheduled. So the list never outlives a request (whose memory is in the
/// suspended task's frame), and a cancel that comes too late does nothing. The owner takes the
/// list in poll() and wait() and issues the cancellations. Design: Go's netpoll "unblock" and
/// Tokio's per-driver cancellation are the same owner-side protocol; the flag word is
/// std::stop_callback's (P0660) race resolution.
class cancel_inbox {
 public:
  /// What push() calls to wake the owner after it linked a request: by default the owning
  /// reactor's wake(); a worker replaces it with its own (worker::wake_for_work) so that the wake
  /// also takes it off the idle list under the manual clock.
  struct waker {
    void (*wake)(void* context) noexcept;
    void* context;
  };
  explicit cancel_inbox(reactor& owner) noexcept : owner_(owner) {}
  /// Replaces the wake push() makes. Owner thread, before any request of this reactor is in flight.
  void set_waker(waker w) noexcept { waker_ = w; }
  cancel_inbox(const cancel_inbox&) = delete;
  cancel_inbox& operator=(const cancel_inbox&) = delete;

  /// Asks for `r` to be cancelled: sets cancel_requested and, unless the reactor finished `r`
  /// already, links it and wakes the owner. Any thread; never blocks beyond the mutex. Defined in
  /// lib/io_cancel.cpp, as are the others.
  void push(io_request& r) noexcept;
  /// Owner only: something was pushed since the last take().
  [[nodiscard]] bool pending() const noexcept { return pending_.load(std::memory_order_acquire); }
  /// Owner only: moves every queued request to `out` (clearing their cancel_queued bit). Each is
  /// still in flight: only the owner finishes requests.
  void take(std::vector<io_request*>& out);
  /// Owner only, once `r` is finished for good (before its waiter is scheduled), or once nothing
  /// is left to cancel (a zero-copy send whose result came, waiting for its notification): marks
  /// it finished and unlinks it when it is queued. Nothing for a request without a cancel_owner;
  /// nothing the second time (a cancel pushed in between set `queued` but did not link it).
  void finished(io_request& r) noexcept {
    if (r.cancel_owner == nullptr) return;
    const std::uint8_t old = r.cancel_flags.fetch_or(io_request::cancel_finished, std::memory_order_acq_rel);
    if ((old & io_request::cancel_finished) != 0) return;
    if ((old & io_request::cancel_queued) != 0) unlink(r);
    else if ((old & io_request::cancel_requested) != 0) --outstanding_;  // taken, its cancel issued
  }
  /// Owner only: requests whose cancellation the owner issued (take()) and whose completion has
  /// not come yet. While it is not zero the worker does not let the manual clock jump: the
  /// cancelled task is about to run (worker::publish_deadline).
  [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_; }

 private:
  void unlink(io_request& r) noexcept;

  reactor& owner_;
  waker waker_{nullptr, nullptr};
  std::size_t outstanding_ = 0;  ///< owner only (see outstanding())
  std::mutex mutex_;
  io_request* head_ = nullptr;
  std::atomic<bool> pending_{false};
};

/// What every reactor does once request `r` is done with `result` (>= 0: a count or descriptor;
/// -errno: a failure), after taking it off its in-flight list: during drain() nobody is resumed
/// (and a descriptor an accept or openat created anyway is closed, since nobody will ever see it);
/// otherwise a request whose linked deadline (io_request::deadline) ended it gets `fired` set and
/// ends with -ECANCELED, -EINTR and -EAGAIN of anything but a connect or close resubmit the request
/// (or end it with -ECANCELED when a canceller asked for that), and r's on_complete hook runs (it may resubmit the request, which then stays in flight)
/// or the result is stored, and the waiter goes to `sink`. Returns true when the waiter was handed
/// to the sink. A request that is finished for good is taken out of `cancels` first (see
/// cancel_inbox::finished), so that no cancel for it is left once its task runs. Owner thread
/// only. Defined in lib/reactor_factory.cpp.
bool finish_request(io_request& r, int result, bool draining, const completion_sink& sink,
                    cancel_inbox& cancels) noexcept;

/// Performs a file operation (io_opcode read_at, write_at, fsync, openat, statx, close, splice)
/// with the blocking system call, retrying EINTR (except close), and returns what io_uring would
/// complete it with: >= 0 on success, -errno on failure, -EINVAL for any other opcode, -ENOTSUP
/// where the platform lacks the call (statx and splice outside Linux; all of them on Windows).
/// For reactors without asynchronous file I/O (Asio), which run it off the workers. Any thread;
/// blocks. Defined in lib/blocking_io.cpp.
int perform_blocking_io(io_request& r) noexcept;

class reactor {
 public:
  reactor() noexcept : cancels_(*this) {}
  virtual ~reactor() = default;
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  /// Where cancellers leave requests of this reactor (see cancel_inbox). Any thread.
  [[nodiscard]] cancel_inbox& cancels() noexcept { return cancels_; }

  /// Queues `request`; it reaches the kernel at the next poll() or wait(). Owner thread only.
  /// Throws std::system_error when the submission queue cannot take it even after a flush.
  virtual void submit(io_request& request) = 0;

  /// Submits what is queued and hands every completion already available to the sink, without
  /// blocking. Returns the number of requests finished. Owner thread only.
  virtual std::size_t poll() = 0;

  /// As poll(), but when nothing is available blocks until a completion, a wake(), or `timeout`
  /// (none: no bound). Returns the number of requests finished. Owner thread only.
  virtual std::size_t wait(std::optional<std::chrono::nanoseconds> timeout) = 0;

  /// Makes a wait() in progress (or the next one) return. Thread-safe, async-signal-safe.
  virtual void wake() noexcept = 0;

  /// As target.wake(), sent from this reactor instead (owner thread only), where that is cheaper:
  /// io_uring's IORING_OP_MSG_RING posts a completion straight into `target`'s ring (Linux 5.18).
  /// `target` is another reactor of the same runtime. False when this reactor cannot (Asio, no
  /// MSG_RING, draining, a full submission queue): the caller then calls target.wake().
  virtual bool wake_peer(reactor& target) noexcept {
    (void)target;
    return false;
  }

  /// Shutdown: cancels every request in flight and reaps all their completions without handing
  /// them to the sink, so that their buffers (in task frames) can be freed. Owner thread only.
  virtual void drain() noexcept = 0;

  /// Requests submitted and not yet finished.
  [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;

  /// "io_uring" or "asio".
  [[nodiscard]] virtual const char* name() const noexcept = 0;

  /// Which optional features are on, comma-separated, for runtime_stats.
  [[nodiscard]] virtual std::string features() const = 0;

  /// Whether a recv may ask this reactor for a buffer of its provided buffer ring
  /// (io_request::provided_select). The io_uring reactor sets its ring up on the first call
  /// (unless CORIO_URING_NO_BUFRING=1 or the kernel refuses); Asio has none. Owner thread only.
  [[nodiscard]] virtual bool provides_buffers() noexcept { return false; }

  /// The provided buffer ring's counters (all zero without one). Any thread.
  [[nodiscard]] virtual provided_buffer_stats buffer_stats() const noexcept { return {}; }

  /// Completions the kernel dropped because the completion queue was full (io_uring's
  /// cq.koverflow); 0 for a reactor without one. Any thread, while the reactor exists.
  [[nodiscard]] virtual std::uint64_t cq_overflows() const noexcept { return 0; }

  /// Counts a lease read that fell back to a heap buffer because the ring stayed empty. Owner thread.
  virtual void note_buffer_fallback() noexcept {}
  /// True when accepts on this reactor's worker may be served by a listener's multishot accept
  /// (corio/detail/accept_queue.hpp): io_uring on Linux 5.19+, unless CORIO_URING_NO_MULTISHOT=1
  /// was set when the reactor was made. Any thread.
  [[nodiscard]] virtual bool multishot_accept() const noexcept { return false; }
  /// True when stream reads on this reactor's worker may be served by a stream's multishot
  /// receive (corio/detail/recv_queue.hpp): io_uring on Linux 6.0+ with a provided buffer ring,
  /// unless CORIO_URING_NO_MULTISHOT_RECV=1 (or CORIO_URING_NO_BUFRING=1) was set when the
  /// reactor was made. Sets the buffer ring up on first use. Owner thread only.
  [[nodiscard]] virtual bool multishot_recv() noexcept { return false; }

  /// True when this reactor links a request's io_request::deadline to its submission, so that the
  /// deadline cancels the operation without a timer of the worker (io_uring with
  /// IORING_OP_LINK_TIMEOUT, when CORIO_URING_LINK_TIMEOUT=1 was set when the reactor was
  /// made). A reactor that says false never sees a request with a deadline. Any thread.
  [[nodiscard]] virtual bool links_timeouts() const noexcept { return false; }

  /// Where this reactor counts (owner thread; the worker reads them for stats()). Set once by the
  /// worker before anything is submitted; until then the reactor counts into its own.
  void set_counters(reactor_counters& c) noexcept { counters_ = &c; }

 protected:
  cancel_inbox cancels_;
  reactor_counters own_counters_;
  reactor_counters* counters_ = &own_counters_;
};

}  // namespace corio::detail
