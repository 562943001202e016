// lib/worker.hpp - a worker: its run queues, spinning and parking, its timers, its share of the
// task registry (the runtime that owns the workers: runtime_impl.hpp).
//
// docs/internals.md, "The worker loop", says where a runnable task goes, where a worker takes its
// next task, and how workers spin and park (Go's protocol); the invariants this file keeps are
// worker-owner-only, unpublished-task-owner-only, no-lost-wakeup, owner-parks-empty,
// spinners-counted and idle-list-exact. Bound tasks (spawn_on) never enter the LIFO slot, the
// private queue or the deque, so they are never stolen.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "corio/cancel.hpp"
#include "corio/detail/assert.hpp"
#include "corio/detail/park.hpp"
#include "corio/metrics.hpp"
#include "corio/time.hpp"
#include "reactor.hpp"
#include "run_queue.hpp"
#include "timer_wheel.hpp"

namespace corio::detail {

class runtime_impl;
class worker;

/// The worker running on this thread, or null, for the library's own functions (defined in
/// lib/worker.cpp). Never read it from a coroutine: a coroutine reaches it through
/// current_worker() (llvm #47179).
/// initial-exec: one %fs-relative load. The library is compiled -fPIC (static or shared), where the
/// default model costs a general-dynamic access that the linker relaxes to two dependent loads; this
/// one is read on every yield, spawn and finish. Costs 8 bytes of static TLS if dlopen()ed.
#if defined(__ELF__)
[[gnu::tls_model("initial-exec")]]
#endif
extern thread_local constinit worker* this_worker;

/// The number of task `p` (spawn_state::id), given now if it has none (a when_all child): the
/// process's next, set with a compare-exchange. Any thread. Defined in lib/task_dump.cpp.
[[gnu::noinline]] std::uint64_t task_id(promise_base& p) noexcept;
/// A task number for a spawn from outside the workers (lib/task_dump.cpp).
std::uint64_t next_foreign_task_id() noexcept;

/// The steady clock's time in ns since its epoch (the workers' busy time, metrics()).
std::uint64_t steady_ns() noexcept;

/// The calling thread's worker; throws std::logic_error naming `what` off the workers.
worker& require_worker(const char* what);

/// Resumes `h` and then every coroutine handed on through the trampoline (transfer.hpp), until the
/// chain suspends for real: the slot is drained whatever mode the library and the program's files
/// were built in. Every place in the library that resumes a coroutine goes through here. Must be
/// called on the thread that will run the coroutine, never from a coroutine; never throws
/// (coroutine bodies catch into their promise). Defined in lib/worker.cpp.
void resume(std::coroutine_handle<> h) noexcept;

/// runtime_options::timing_histograms is on and `h` is about to be queued: stamps its frame with
/// the steady time, for the schedule-latency histogram (worker::record_schedule_latency). Only a
/// corio task's frame (promise_base::has_trace_tag) is stamped; any thread, before the queue
/// publishes `h`.
void stamp_ready(std::coroutine_handle<> h) noexcept;

/// A worker's histogram of durations (runtime_options::timing_histograms), written by its owner
/// only and read by metrics() from any thread: buckets as corio::duration_histogram's.
struct timing_histogram {
  std::array<counter, duration_histogram::buckets> buckets;
  counter count, sum_ns;
  /// Adds one duration of `ns` ns. The count before the bucket (read() reads them the other way
  /// round): a reader never sees a bucket ahead of the count, so Prometheus' +Inf bucket stays the
  /// largest.
  void record(std::uint64_t ns) noexcept {
    count.add();
    sum_ns.add(ns);
    // Bucket i holds (128 << (i-1), 128 << i] ns; beyond the last, only count and sum.
    const std::size_t b = ns <= 128 ? 0 : static_cast<std::size_t>(std::bit_width((ns - 1) >> 7));
    if (b < buckets.size()) buckets[b].add();
  }
  /// The figures so far, buckets first (see record()).
  duration_histogram read() const noexcept {
    duration_histogram h;
    for (std::size_t b = 0; b < buckets.size(); ++b) h.counts[b] = buckets[b].get();
    h.sum_ns = sum_ns.get();
    h.count = count.get();
    return h;
  }
};

class worker {
 public:
  worker(runtime_impl& rt, unsigned index, std::uint64_t seed);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// The thread body: set up the reactor, report to the runtime, run tasks until stopped,
  /// drain the reactor.
  void run() noexcept;

  // --- owner thread only -------------------------------------------------------------------
  /// A task spawned or woken here by another task: into the LIFO slot (the previous occupant goes
  /// to the private queue).
  void schedule_local(std::coroutine_handle<> h) {
    CORIO_ASSERT(this_worker == this, "worker-owner-only");
    if (std::coroutine_handle<> displaced = std::exchange(lifo_, h)) push_displaced(displaced);
  }
  /// schedule_local() off its fast path: `displaced`, the slot's previous task, goes to the private
  /// queue (out of line, so that a spawn into an empty slot saves no registers).
  [[gnu::noinline]] void push_displaced(std::coroutine_handle<> displaced);
  /// The children of a when_all, `last` the last of them, linked in order (n >= 1): all but the
  /// first into the private queue, the second on top; returns the first, which the caller runs
  /// now. Sets each child's runtime. One publish check for the batch instead of one per child.
  promise_base* schedule_children(promise_base* last, std::uint32_t n) noexcept;
  /// The next child of `g` for its run of inline children (see fork_group): taken off the top of
  /// this worker's private queue when it is still there, this worker forked `g` and maintenance
  /// is not due; null otherwise (the child is left to the scheduler).
  promise_base* claim_child(fork_group& g) noexcept;
  /// A yield or a timer: the tail of this worker's FIFO list (not stealable; served after the
  /// LIFO slot and the deques, and every 61st task). I/O completions go there too.
  void schedule_back(std::coroutine_handle<> h);
  /// A parked operation's timeout (corio/detail/park.hpp), and its cancellation (owner only).
  void add_park_timer(park_timer& t);
  void cancel_park_timer(park_timer& t) noexcept;
  /// The next number of this worker's xorshift64 generator (steal victims and select share it).
  std::uint32_t random_u32() noexcept {
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    return static_cast<std::uint32_t>(random_state_ >> 32);
  }
  /// Registers a task this worker is home to (owner only). The newest one waits in a slot
  /// (registry_pending_) and enters the list when the next one is registered: a task spawned and
  /// joined before the next spawn, the usual case, never touches the list. Like the newest child
  /// of a stop state (stop_state::pending_child_). A task counts in `spawned` when it enters the
  /// list; stats() counts the one in the slot as live besides (see unlink).
  void link(promise_base& p) noexcept {
    CORIO_ASSERT(this_worker == this, "worker-owner-only");
    spawns.add();
    if (promise_base* q = registry_pending_.load(std::memory_order_relaxed); q != nullptr) list_registered(*q);
    registry_pending_.store(&p, std::memory_order_release);
  }
  /// Takes a task that finished here out of the registry (owner only) and counts it in
  /// `finished`, unless it was in the slot: then it was never counted in `spawned` either, so
  /// nothing is counted (a spawn joined at once costs no counter).
  void unlink(promise_base& p) noexcept {
    CORIO_ASSERT(this_worker == this, "worker-owner-only");
    if (in_registry_slot(p)) {
      clear_registry_slot();
      return;
    }
    unlink_registered(p);
    finished.add();
  }
  /// unlink() of a task that finished on another worker, which counted it in `finished`: one
  /// that was in the slot is counted in `spawned` before the slot is cleared (so that stats(),
  /// which reads the slot first, may count it twice but never not at all).
  void unlink_finished_elsewhere(promise_base& p) noexcept {
    if (in_registry_slot(p)) {
      spawned.add();
      clear_registry_slot();
      return;
    }
    unlink_registered(p);
  }
  /// Moves the task in the slot into the list, before the list is walked (owner only, or once the
  /// workers stopped).
  void flush_registry() noexcept {
    CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
    if (promise_base* q = registry_pending_.load(std::memory_order_relaxed); q != nullptr) {
      list_registered(*q);  // before the slot is cleared: stats() may count it twice, never not at all
      clear_registry_slot();
    }
  }
  /// The task leaving the slot for the list: inserted, and counted in `spawned` from now on.
  void list_registered(promise_base& q) noexcept {
    insert_registered(q);
    spawned.add();
  }
  /// 1 when a task waits in the registry's slot (any thread; relaxed, for stats()).
  std::uint64_t registry_pending_count() const noexcept {
    return registry_pending_.load(std::memory_order_acquire) != nullptr ? 1 : 0;
  }
  void insert_registered(promise_base& p) noexcept;
  /// Takes a task out of the registry's list (owner only).
  void unlink_registered(promise_base& p) noexcept {
    CORIO_ASSERT(p.spawn_.prev != nullptr || registry_head_ == &p, "registry-adopted-before-unlinked");
    if (p.spawn_.prev != nullptr) p.spawn_.prev->spawn_.next = p.spawn_.next;
    else registry_head_ = p.spawn_.next;
    if (p.spawn_.next != nullptr) p.spawn_.next->spawn_.prev = p.spawn_.prev;
    p.spawn_.prev = p.spawn_.next = nullptr;
  }
  /// True when `p` is the task in the registry's slot (owner only).
  bool in_registry_slot(const promise_base& p) const noexcept {
    return registry_pending_.load(std::memory_order_relaxed) == &p;
  }
  /// Takes the task in the slot out of the registry (owner only; see unlink).
  void clear_registry_slot() noexcept { registry_pending_.store(nullptr, std::memory_order_release); }
  /// Unlinks the tasks other workers finished for this one; destroys those nobody holds.
  void drain_remote_finished() noexcept;
  /// Requests stop on every unfinished task of this worker's registry (runtime shutdown).
  void stop_registry() noexcept;
  std::uint32_t stop_all_seen_ = 0;
  /// runtime_impl::stop_all_epoch_ moved (attention: a shutdown's stop of every task, or a task
  /// dump): does what was asked (owner only). Out of line.
  [[gnu::noinline]] void attend() noexcept;
  std::uint32_t stop_requests_seen_ = 0;  ///< runtime_impl::stop_all_requests_ acted on
  std::uint32_t dump_seen_ = 0;           ///< runtime_impl::dump_requests_ answered



  /// The next local task to resume by symmetric transfer when the running task finished or
  /// parked with nothing to hand over, so that a chain of short tasks does not go back through the
  /// worker loop for each one; null when the loop must run instead (maintenance or a stop due, or
  /// nothing local). Does the loop's per-task accounting for the task it returns.
  std::coroutine_handle<> next_direct();
  /// next_direct(), or the noop coroutine when it is null: what a parking awaiter transfers to.
  std::coroutine_handle<> next_or_noop() noexcept;
  /// The per-task accounting of whoever resumes a task taken from the queues (the loop,
  /// next_direct, yield_next, a when_all's fork): a new poll of `h` (begin_poll, and the poll
  /// hooks when the runtime has them) and a full cooperation budget. Returns `h`, so that callers
  /// end in a tail call (an unset hook then costs a flag test, no register saved around a call).
  std::coroutine_handle<> begin_task(std::coroutine_handle<> h) noexcept;
  /// begin_task() when the runtime has poll hooks.
  [[gnu::noinline]] std::coroutine_handle<> begin_task_hooked(std::coroutine_handle<> h) noexcept;
  /// A new poll of `frame` begins on this worker (docs/internals.md, "Polls"): the tick moves (which
  /// stats() reports as polls) and the frame is published for the stall watchdog. A relaxed
  /// store and a release one, no clock read. The caller calls the poll hooks first.
  void begin_poll(void* frame) noexcept {
    count_tick();
    polling_.store(frame, std::memory_order_release);
  }
  /// A finished task hands the thread to its joiner `h` (or a when_all's last child to its parent)
  /// by symmetric transfer: the tick stays (the stall watchdog sees one poll), the frame running
  /// is now h's, and the poll hooks see the joiner's own poll begin. Returns `h`.
  std::coroutine_handle<> continue_poll(std::coroutine_handle<> h) noexcept {
    if (poll_hooks_) [[unlikely]] return continue_poll_hooked(h);
    polling_.store(h.address(), std::memory_order_release);
    return h;
  }
  [[gnu::noinline]] std::coroutine_handle<> continue_poll_hooked(std::coroutine_handle<> h) noexcept;
  /// continue_poll() where the caller knows the runtime has no hooks (any_hooks_ is false).
  std::coroutine_handle<> continue_poll_unhooked(std::coroutine_handle<> h) noexcept {
    CORIO_ASSERT(!poll_hooks_, "hooks-called");
    polling_.store(h.address(), std::memory_order_release);
    return h;
  }
  /// The worker loop got the thread back: no poll is in progress.
  void end_poll() noexcept {
    if (poll_slow_) [[unlikely]] end_poll_slow();
    polling_.store(nullptr, std::memory_order_relaxed);
  }
  /// end_poll()'s work when the runtime has poll hooks or timing histograms (poll_slow_).
  [[gnu::noinline]] void end_poll_slow() noexcept;
  /// after_task_poll of the frame in polling_ (if any), then before_task_poll of `next` (if any).
  [[gnu::noinline]] void call_poll_hooks(void* next) noexcept;
  /// True when the runtime has a before_task_poll or an after_task_poll hook (set at construction).
  const bool poll_hooks_;
  /// True when the runtime has an on_task_spawn or an on_task_terminate hook (set at construction).
  const bool task_hooks_;
  /// poll_hooks_ || task_hooks_: one test for the paths that would check both (a joined task's finish).
  const bool any_hooks_;
  /// task_hooks_ || runtime_options::timing_histograms: spawn_root() takes its slow path, which
  /// calls the spawn hook and stamps the new task ready (stamp_ready). One test on the fast path.
  const bool spawn_slow_;
  /// The frame of the poll in progress, null while the worker runs its loop (any thread, relaxed;
  /// the stall watchdog).
  void* polling() const noexcept { return polling_.load(std::memory_order_acquire); }
  /// corio::yield() of the running task `h`: queues `h` at the back of the FIFO list and returns
  /// the task to resume next by symmetric transfer, exactly the one the loop would take (with its
  /// accounting done), or null when the loop must run (maintenance or a stop due). When nothing
  /// local but the FIFO list is runnable (the common case) it skips next_local(): the front of
  /// the FIFO list comes out as `h` goes in, or `h` itself when the list was empty.
  std::coroutine_handle<> yield_next(std::coroutine_handle<> h);

  /// Runs `h` on worker `bound` only: this worker's FIFO list when it is this one, otherwise that
  /// worker's inbox.
  void deliver_bound(std::uint32_t bound, std::coroutine_handle<> h);

  // --- any thread --------------------------------------------------------------------------
  /// Queues a task bound to this worker (spawn_on) from another thread, and wakes this worker.
  void post(std::coroutine_handle<> h);
  /// Wakes this worker for work another thread handed it (its inbox, a timer to remove, an I/O
  /// cancel in its reactor's cancel inbox). Under the manual clock it first takes the worker off
  /// the idle list (runtime_impl::claim_idle), so that no worker sees every worker idle, and jumps
  /// the time, before this one did that work. Any thread; nothing before the reactor exists.
  void wake_for_work() noexcept;
  /// A timeout's timer let go of on another thread: this worker removes it from its wheel and
  /// frees it (corio/cancel.hpp). Any thread.
  void post_timer_release(timeout_timer* t);
  /// Owner only (or after the workers stopped): inserts a timeout's timer, and removes one.
  void add_timeout_timer(timeout_timer& t, clock::time_point deadline);
  void remove_timeout_timer(timeout_timer& t) noexcept;
  /// After the workers stopped: frees the timers handed over and not yet released.
  void drain_timer_releases() noexcept;
  /// After the workers stopped: takes every entry out of the wheel without firing it, so that
  /// destroying the frames (or timeout timers) holding them never touches a neighbour's entry in a
  /// freed frame (timer-entry-outlives-insertion).
  void drain_timers() noexcept;
  /// Owner only: inserts `e` into the wheel, its context `owner` tagged with `tag` (1: a
  /// park_timer, 2: a timeout_timer; see fire_timers), and removes it (no-op if not inserted).
  void insert_timer(timer_entry& e, void* owner, std::uintptr_t tag, clock::time_point deadline);
  void remove_timer(timer_entry& e) noexcept;
  /// Frees the timers handed over by post_timer_release; inbox_mutex_ held.
  void release_timers_locked() noexcept;
  bool inbox_nonempty() const noexcept { return inbox_flag_.load(std::memory_order_seq_cst); }
  /// A task of this worker's registry finished on another worker (lock-free push).
  void push_remote_finished(promise_base& p) noexcept;
  /// A task spawned from outside the workers joins this worker's registry (lock-free push; the
  /// owner links it at its next finish or drain, always before it unlinks anything).
  void adopt(promise_base& p) noexcept;
  /// Owner only: links the tasks adopted since the last call.
  void drain_adopted() noexcept;
  /// Owner only: true when tasks were adopted since the last drain_adopted() (relaxed).
  bool has_adopted() const noexcept { return adopted_.load(std::memory_order_relaxed) != nullptr; }
  /// Owner only: true when `h` is queued (not running) in this worker's LIFO slot or on top of
  /// its private queue, the places no other thread can take a task from (see join_park).
  bool holds_unpublished(std::coroutine_handle<> h) const noexcept {
    CORIO_ASSERT(this_worker == this, "worker-owner-only");
    return lifo_ == h || (!private_.empty() && private_.back() == h);
  }
  /// Owner only: room left in the private queue, and a task taken from the injection queue.
  std::size_t private_room() const noexcept { return (private_.capacity() - private_.size()) / 2; }
  void take_injected(std::coroutine_handle<> h) noexcept {
    CORIO_ASSERT(this_worker == this, "worker-owner-only");
    private_.push_back(h);
  }

  runtime_impl& runtime() const noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }
  /// True on this worker's own thread, or once its thread has ended (shutdown's clean-up): where
  /// the owner-only structures may be touched (docs/internals.md, owner-only-queues). For checks.
  bool owner_or_stopped() const noexcept { return this_worker == this || !thread_.joinable(); }

  // Counters (see worker_stats); spawned/finished count this worker's spawns and finishes.
  /// Tasks resumed from the queues so far (stats().polls); any thread, relaxed.
  std::uint64_t tick() const noexcept { return tick_.load(std::memory_order_relaxed); }
  counter steals, injections, parks, wakes, io_submitted, io_completed, timers_fired, budget_yields;
  counter spawned, finished;
  // Metrics only (runtime::metrics(), corio/metrics.hpp); written by the owner, read by any thread.
  counter spawns;            ///< tasks spawned by tasks of this worker (link, when_all children), joined at once or not
  counter local_schedules;   ///< wake-ups into the LIFO slot (wake_parked; spawns count in `spawns`, off the spawn path)
  counter steal_operations;  ///< steals that took at least one task (`steals` counts the tasks)
  counter overflows;         ///< publish() found the stealable queue full and injected half of it
  counter unparks;           ///< returns from the reactor wait in park()
  counter noop_unparks;      ///< unparks after which nothing ran before the next park
  counter busy_ns;           ///< steady-clock ns awake, accumulated at each park
  counter timers_pending;    ///< the wheel's size, stored after each insert, removal and firing
  /// Poll times (runtime_options::timing_histograms).
  timing_histogram poll_time;
  /// Timing on: a poll starts (begin_task) and the previous one, if any, ends. Out of line.
  [[gnu::noinline]] void poll_boundary() noexcept;
  /// Timing on: the loop got the thread back, the poll under way ends (called by end_poll).
  void end_poll_timing() noexcept;
  /// Schedule latencies (runtime_options::timing_histograms): from the moment a task was queued
  /// (stamp_ready) to the start of its poll.
  timing_histogram schedule_latency;
  /// Timing on: the poll of `frame` starts at poll_started_; if the frame was stamped ready,
  /// records the latency and clears the stamp.
  void record_schedule_latency(void* frame) noexcept;
  /// Steady-clock ns (since the epoch) at which the worker last woke up or started; 0 while it is
  /// parked. metrics() adds now minus this to busy_ns for the current awake stretch.
  std::atomic<std::uint64_t> awake_since_ns{0};
  /// Local queue depth for metrics(): the stealable queue's size (any thread).
  std::uint64_t stealable_depth() const noexcept { return ring_.size(); }
  counter stalls;  ///< stalls the watchdog saw on this worker (written by the watchdog thread only)
  reactor_counters reactor_counts;  ///< what the reactor counts (reactor::set_counters)

  std::unique_ptr<reactor> reactor_;
  std::thread thread_;
  std::string reactor_name_;
  std::string reactor_features_;
  std::string reactor_fallback_;  ///< why this worker runs on Asio after its io_uring set-up failed
  std::uint32_t budget_ = 0;  ///< cooperation budget left for the task being run
  bool timing_ = false;       ///< runtime_options::timing_histograms
  bool poll_slow_ = false;    ///< poll_hooks_ || timing_: begin_task and end_poll take their slow paths
  std::uint64_t poll_started_ = 0;  ///< timing on: steady ns at which the current poll began, 0 when none
  promise_base* registry_head_ = nullptr;     ///< the registry's list (see link); walk it only after flush_registry()
  std::atomic<promise_base*> registry_pending_{nullptr};  ///< the newest registered task, not in the list yet

 private:
  std::coroutine_handle<> next_local();
  std::coroutine_handle<> find_work();
  std::coroutine_handle<> pop_fifo() noexcept;
  std::coroutine_handle<> steal();
  void publish();
  void stop_spinning() noexcept;
  void park();
  std::size_t fire_timers();
  std::optional<clock::time_point> next_deadline() const;
  void maintenance();
  static void on_ready(void* self, std::coroutine_handle<> h, std::uint32_t bound) noexcept;
  void drain_inbox();

  runtime_impl& rt_;
  const unsigned index_;
  run_queue ring_;
  private_queue private_;
  std::coroutine_handle<> lifo_{};
  fifo_queue fifo_;  ///< owner-only FIFO list (I/O, yields, timers)
  std::uint32_t lifo_runs_ = 0;
  /// Tasks resumed from the queues (stats().polls). Written by the owner only, with a relaxed
  /// load and store (no locked instruction); read by stats() from any thread.
  std::atomic<std::uint64_t> tick_{0};
  /// The frame of the poll in progress (see begin_poll), null in the loop; owner writes with release
  /// (a plain move on x86-64), so that the stall watchdog, which loads it with acquire, may read
  /// the frame it names.
  std::atomic<void*> polling_{nullptr};
  std::uint64_t maintained_at_ = 0;  ///< tick_ at the last maintenance (every maintenance_interval)
  void count_tick() noexcept { tick_.store(tick_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  std::uint32_t fairness_countdown_ = 61;  ///< tasks until the next fairness turn (every 61st)
  bool spinning_ = false;
  std::atomic<promise_base*> remote_finished_{nullptr};
  /// Between joining the idle list in park() and leaving its reactor wait: a worker that pushes a
  /// finished task of this one's registry wakes it (push_remote_finished).
  std::atomic<bool> sleeping_{false};
  std::atomic<promise_base*> adopted_{nullptr};  ///< linked through spawn_state::next until drained
  std::mutex inbox_mutex_;
  std::vector<std::coroutine_handle<>> inbox_;
  std::vector<timeout_timer*> timer_releases_;  ///< under inbox_mutex_, flagged by inbox_flag_
  std::atomic<bool> inbox_flag_{false};

  // Timers of tasks that slept on this worker (1 µs ticks since the runtime's origin).
  timer_wheel wheel_{};
  void publish_deadline() noexcept;

 public:
  /// Manual clock: this worker's earliest timer tick, for the runtime's auto-advance.
  std::atomic<std::uint64_t> published_deadline_{~std::uint64_t{0}};
  /// Manual clock: the settle round (runtime_impl::settle_round_) in which this worker last looked
  /// at its reactor before it parked (any thread reads it).
  std::atomic<std::uint64_t> polled_round_{0};

 private:
  std::uint64_t random_state_;
  std::uint32_t full_budget_;  ///< runtime_options::budget, kept here for begin_task()
  bool ran_since_park_ = false;  ///< the loop resumed a task since this worker last parked
  bool ran_since_unpark_ = true;  ///< the loop resumed a task since this worker last woke (noop_unparks)
  std::vector<std::coroutine_handle<>> overflow_batch_;

 public:
  // Last, away from the fields the worker's hot paths touch.
  /// The task dump (lib/task_dump.cpp): copies this worker's registry into dump_snapshot_ and
  /// publishes `request` in dump_answered_ (owner only; the dumping thread waits for it).
  void answer_dump(std::uint32_t request) noexcept;
  std::mutex dump_mutex_;                        ///< guards dump_snapshot_
  std::vector<promise_base*> dump_snapshot_;     ///< the registry at the last answered dump
  std::atomic<std::uint32_t> dump_answered_{0};  ///< the last dump request answered (release)
  /// The next task number for a spawn on this worker (owner only): from a block of 256 taken from
  /// the process's counter, so that spawns on different workers share no cache line (Go's per-P
  /// goid cache; one shared counter cost fib 40% of its time on 2 workers).
  std::uint64_t next_task_id() noexcept {
    if (next_task_id_ == task_id_end_) [[unlikely]] refill_task_ids();
    return next_task_id_++;
  }
  [[gnu::noinline]] void refill_task_ids() noexcept;
  std::uint64_t next_task_id_ = 0, task_id_end_ = 0;
};

inline std::coroutine_handle<> worker::begin_task(std::coroutine_handle<> h) noexcept {
  if (poll_slow_) [[unlikely]] return begin_task_hooked(h);  // hooks or timing: one test for both
  begin_poll(h.address());
  budget_ = full_budget_;
  return h;
}

}  // namespace corio::detail
