// lib/runtime_impl.hpp - the runtime behind corio::runtime: its workers (worker.hpp), the
// injection queue, the idle set and wake-ups, the manual clock, shutdown and stats.
//
// The registry of spawned tasks and the live-task counters are described in docs/internals.md,
// "Spawn, finish and join" (invariants registry-adopted-before-unlinked, registry-slot-counted).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "corio/runtime.hpp"
#include "corio/time.hpp"
#include "blocking_pool.hpp"
#include "reactor_factory.hpp"
#include "worker.hpp"

namespace corio::detail {

/// Adds worker reactor `name` to `backend`, the reactor name stats() and metrics() report: the
/// first worker's, then "+other" once when a worker fell back to another reactor on its own.
inline void add_backend_name(std::string& backend, const std::string& name) {
  if (backend.empty()) backend = name;
  else if (backend != name && backend.find('+') == std::string::npos) backend += "+" + name;
}

/// See corio/detail/park.hpp. Wakers from threads that are not the runtime's workers enter() it
/// (one increment, one load) and leave() after their inject or post; the runtime, stopping,
/// close()s it before it tears anything down: from then on enter() fails, and close() waits for
/// the wakers already inside. The pair (gate, generation) names one runtime: a gate is reused by
/// a later runtime with the next generation, so a stale ticket never reaches the new one.
/// Thread-safe.
struct runtime_gate {
  std::atomic<runtime_impl*> runtime{nullptr};
  std::atomic<std::uint32_t> generation{0};
  std::atomic<std::uint32_t> entered{0};

  /// The runtime, if it is still open and `gen` is its generation; then the caller must leave().
  runtime_impl* enter(std::uint32_t gen) noexcept {
    entered.fetch_add(1, std::memory_order_seq_cst);
    runtime_impl* rt = runtime.load(std::memory_order_seq_cst);
    if (rt == nullptr || generation.load(std::memory_order_acquire) != gen) {
      leave();
      return nullptr;
    }
    return rt;
  }
  void leave() noexcept { entered.fetch_sub(1, std::memory_order_release); }

  /// Closes the gate: no waker enters from now on; returns once those inside have left.
  /// Idempotent.
  void close() noexcept;
};

/// A runtime's hold on its gate: takes one from the pool (or a new one) open for `rt`, and on
/// destruction closes it and gives it back with the next generation. Defined in lib/runtime.cpp.
class gate_hold {
 public:
  explicit gate_hold(runtime_impl* rt);
  ~gate_hold();
  gate_hold(const gate_hold&) = delete;
  gate_hold& operator=(const gate_hold&) = delete;
  runtime_gate* const gate;
  const std::uint32_t generation;
};

class runtime_impl {
 public:
  explicit runtime_impl(runtime_options options);
  ~runtime_impl();
  runtime_impl(const runtime_impl&) = delete;
  runtime_impl& operator=(const runtime_impl&) = delete;

  /// Queues `h` (one task, or a batch) on the injection queue and wakes a worker. Thread-safe.
  void inject(std::coroutine_handle<> h);
  void inject_batch(std::vector<std::coroutine_handle<>>& batch);
  /// Takes one task from the injection queue to run, and moves a batch more to `into`'s private
  /// queue (none when `into` is null).
  std::coroutine_handle<> pop_injection(worker* into = nullptr);
  bool injection_empty() const noexcept { return injection_size_.load(std::memory_order_seq_cst) == 0; }

  /// Go's wakep(): starts a spinner if none spins and a worker is idle. `fenced` orders the
  /// caller's push before the reads (needed for pushes that no worker owns). Thread-safe.
  void wakep(bool fenced) noexcept;
  /// True when a worker spins or is idle: a worker with private work should publish some.
  bool someone_looking() const noexcept {
    return (spinning_.load(std::memory_order_relaxed) | idle_count_.load(std::memory_order_relaxed)) != 0;
  }
  /// Idle list (see the protocol above).
  void add_idle(worker& w);
  /// Takes `w` off the idle list; false when a waker took it off already. `as_spinner`: counts it
  /// as a spinner in the same step, under the list's lock (claim_idle).
  bool remove_idle(worker& w, bool as_spinner = false);
  /// Manual clock only: `w` was just handed work through its inbox (a task, a timer to remove);
  /// takes it off the idle list and counts it as a spinner, as wakep() does, so that until it
  /// parks again no worker sees every worker idle: auto_advance() would otherwise jump the time
  /// to a timer the inbox is about to remove, or past a task it is about to run (found by the
  /// cancel suite, once in about 30 runs of a loaded machine: a released 24 h timeout).
  void claim_idle(worker& w);

  void report_unhandled(std::exception_ptr e) noexcept;

  /// runtime::shutdown(grace): returns the number of tasks destroyed. Idempotent (later calls: 0).
  std::size_t shutdown(clock::duration grace) noexcept;
  runtime_stats stats() const;
  /// runtime::metrics(): any thread.
  runtime_metrics metrics() const;
  /// Spawned tasks not finished yet (runtime_stats::live_tasks; 0 once shut down). Any thread.
  std::uint64_t live_tasks() const noexcept;

  // Worker start-up: each worker reports success or the exception of its reactor set-up.
  void worker_started(std::exception_ptr error) noexcept;

  /// The runtime's time: steady_clock, or the manual time.
  clock::time_point now() const noexcept {
    if (!manual_) return clock::now();
    return origin_ + std::chrono::nanoseconds{manual_ns_.load(std::memory_order_acquire)};
  }
  /// Timer ticks (1 µs) since the origin: rounded down for the current time, up for deadlines, so
  /// that a timer fires when floor(now) >= ceil(deadline), never before its deadline.
  std::uint64_t ticks_floor(clock::time_point t) const noexcept {
    if (t <= origin_) return 0;
    return static_cast<std::uint64_t>(std::chrono::floor<std::chrono::microseconds>(t - origin_).count());
  }
  std::uint64_t ticks_ceil(clock::time_point t) const noexcept {
    if (t <= origin_) return 0;
    return static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::microseconds>(t - origin_).count());
  }
  /// The time of a tick; a tick past end_tick_ gives end_of_time() (never overflows).
  clock::time_point tick_time(std::uint64_t tick) const noexcept {
    return origin_ + std::chrono::microseconds{static_cast<std::int64_t>(std::min(tick, end_tick_))};
  }
  /// The end of this runtime's time: the last whole tick before clock::time_point::max(). The
  /// manual clock stops there (the steady clock gets there after some 292 years of uptime). A
  /// deadline after it never comes: time_point::max(), what a huge duration saturates to, is one.
  /// No timer is inserted for such a deadline (worker::insert_timer), so it never bounds a
  /// reactor wait and never makes the manual clock jump; the wait ends only by its peer or by
  /// cancellation.
  clock::time_point end_of_time() const noexcept { return tick_time(end_tick_); }
  /// Manual clock: moves time forward to at least `target` (never back, never past end_of_time())
  /// and wakes every worker.
  void advance_to(clock::time_point target) noexcept;
  /// Manual clock, every worker idle: jump to the earliest timer of any worker.
  void auto_advance() noexcept;

  runtime_options options_;
  /// The blocking pool (spawn_blocking, lib/blocking_pool.hpp): shut down by stop_and_destroy
  /// after the workers stopped and before any frame is destroyed.
  blocking_pool blocking_{options_.max_blocking_threads, options_.blocking_keep_alive, &blocking_drained, this};
  backend_choice backend_;  ///< decided before the workers start (choose_backend)
  /// How wakes from other threads reach this runtime (park.hpp); open until stop_and_destroy.
  gate_hold gate_{this};
  const clock::time_point origin_ = clock::now();
  /// The tick of end_of_time(): the last whole tick before time_point::max() (so that a deadline
  /// at time_point::max() is after it, whatever the origin).
  const std::uint64_t end_tick_ = ticks_floor(clock::time_point::max() - clock::duration{1});
  bool manual_ = false;
  alignas(64) std::atomic<std::int64_t> manual_ns_{0};
  /// Manual clock: bumped by a worker that parks after running tasks; the time jumps only once
  /// every worker has looked at its reactor in the current round (worker::polled_round_).
  std::atomic<std::uint64_t> settle_round_{0};
  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<bool> stopping_{false};  ///< the workers leave their loops
  std::atomic<bool> closing_{false};   ///< spawns are refused (set first by shutdown)
  /// Bumped to get every worker's attention at its next loop turn (worker::attend), after one of the
  /// two counters below: shutdown (each worker then requests stop on every task of its registry)
  /// and the task dump (each worker copies its registry for the dump).
  std::atomic<std::uint32_t> stop_all_epoch_{0};
  std::atomic<std::uint32_t> stop_all_requests_{0};
  std::atomic<std::uint32_t> dump_requests_{0};
  /// runtime::dump_tasks() (lib/task_dump.cpp); one dump at a time (dump_mutex_).
  std::string dump_tasks();
  std::mutex dump_mutex_;
  /// The stall report's text for the task whose poll of `frame` stalls worker `w`: its number,
  /// name and async stack (lib/task_dump.cpp); `id`/`name` receive the task's.
  std::string stall_stack(worker& w, void* frame, std::uint64_t& id, const char*& name);
  alignas(64) std::atomic<std::uint32_t> spinning_{0};
  alignas(64) std::atomic<std::uint32_t> idle_count_{0};
  std::atomic<std::uint64_t> foreign_spawned_{0};   ///< spawns from outside the workers
  std::atomic<std::uint64_t> foreign_finished_{0};  ///< tasks that finished off this runtime's workers

 private:
  mutable std::mutex injection_mutex_;
  std::deque<std::coroutine_handle<>> injection_;
  alignas(64) std::atomic<std::size_t> injection_size_{0};

  std::mutex idle_mutex_;
  std::vector<worker*> idle_;


  // The stall watchdog (runtime_options::stall_threshold): one thread, started last by the
  // constructor when the threshold is above zero, ended first by stop_and_destroy.
  std::thread watchdog_;
  std::mutex watchdog_mutex_;
  std::condition_variable watchdog_cv_;
  bool watchdog_stop_ = false;  ///< under watchdog_mutex_
  void watch() noexcept;
  void report_stall(const stall_report& r) noexcept;
  void stop_watchdog() noexcept;

  std::mutex start_mutex_;
  std::condition_variable start_cv_;
  unsigned started_ = 0;
  std::exception_ptr start_error_;
  bool shut_down_ = false;
  std::size_t stop_and_destroy() noexcept;
  /// The blocking pool's on_drained: under the manual clock, wakes the workers so that the last
  /// to park again may let the time jump (it does not while a job is outstanding).
  static void blocking_drained(void* self) noexcept;
};

/// Applies the environment variables that override runtime options (README, "The environment"):
/// CORIO_WORKERS, CORIO_BACKEND, CORIO_SQPOLL_IDLE_MS, CORIO_SEND_ZC_THRESHOLD, CORIO_STALL_MS, each only where
/// `options` holds the option's default. Throws std::invalid_argument naming the variable for a
/// malformed or out-of-range value. Returns true when CORIO_BACKEND chose Asio (the runtime's
/// backend_fallback then says so). Defined in lib/runtime.cpp.
bool apply_environment(runtime_options& options);

/// The worker running on this thread, or null. Out of line on purpose (llvm #47179).
worker* current_worker() noexcept;

/// Frees a timeout's timer (lib/timers.cpp: they come from the frame allocator).
void free_timeout_timer(timeout_timer* t) noexcept;

/// True for an operation_cancelled: a task that ended because it was cancelled failed at nothing.
bool is_cancellation(const std::exception_ptr& e) noexcept;

/// runtime_options::on_task_terminate of `p`'s runtime, when set, for the spawned task `p`.
[[gnu::noinline]] void call_terminate_hook(promise_base& p) noexcept;

/// Destroys a spawned task's frame, first reporting an exception nobody observed.
void destroy_spawned(promise_base& p) noexcept;

}  // namespace corio::detail
