// lib/runtime_impl.hpp - workers, run queues, the injection queue, parking, the task registry.
//
// Scheduling (first slice; the lock-free queues come with the scheduler issue):
// - Each worker has a FIFO run queue. A task woken on a worker (an I/O completion, a timer, a
//   spawn, a joiner) is queued on that worker; threads that are not workers push to the
//   runtime's injection queue.
// - A worker takes work from: the injection queue every 61st task (so that it is never starved,
//   as in Go's schedule() and Tokio), its own queue, the injection queue, then half of the queue
//   of another worker picked at random (work stealing).
// - With no work, it polls its reactor and its timers, and then parks in its reactor.
//
// Parking protocol (no lost wake-ups), a Dekker-style handshake on sequentially consistent
// operations:
//   parker: parked = true; ++parked_count; then look at every queue again; if any has work,
//           un-park; else wait in the reactor (bounded by the next timer); then un-park.
//   waker:  push the task; seq_cst fence; if parked_count > 0, find a worker whose `parked`
//           it can exchange from true to false, decrement parked_count, and wake its reactor.
// Either the parker's second look sees the pushed task, or the waker sees the parked worker.
// A worker pushing onto its own queue wakes a peer only when its queue holds more than the task
// it will run next (it runs that one itself: no wake needed for progress).
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "corio/runtime.hpp"
#include "corio/time.hpp"
#include "reactor.hpp"

namespace corio::detail {

class runtime_impl;

/// A relaxed counter written by one thread and read by any.
struct counter {
  std::atomic<std::uint64_t> value{0};
  void add(std::uint64_t n = 1) noexcept {
    value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

class worker {
 public:
  worker(runtime_impl& rt, unsigned index);
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// The thread body: set up the reactor, report to the runtime, run tasks until stopped,
  /// drain the reactor.
  void run() noexcept;

  /// Queues `h` at the back of this worker's run queue. Thread-safe.
  void push(std::coroutine_handle<> h);
  /// Takes the front of this worker's queue, or null. Thread-safe.
  std::coroutine_handle<> pop();
  /// Moves half of this worker's queue (rounded up) to `thief`'s, and returns one of the moved
  /// tasks for the thief to run at once (null when this queue was empty). Thread-safe.
  std::coroutine_handle<> steal_into(worker& thief);
  std::size_t queue_size() const noexcept { return queue_size_.load(std::memory_order_seq_cst); }

  /// Timers of this worker (owner thread only).
  void add_timer(timer_node& node);
  std::size_t fire_timers();
  std::optional<clock::time_point> next_deadline() const;

  runtime_impl& runtime() const noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }

  // Counters (see worker_stats).
  counter polls, steals, injections, parks, wakes, io_submitted, io_completed, timers_fired;

  std::unique_ptr<reactor> reactor_;
  std::atomic<bool> parked_{false};
  std::thread thread_;
  std::string reactor_name_;
  std::string reactor_features_;

 private:
  std::coroutine_handle<> find_work(std::uint32_t tick);
  void park();
  static void on_ready(void* self, std::coroutine_handle<> h) noexcept;

  runtime_impl& rt_;
  const unsigned index_;

  mutable std::mutex queue_mutex_;
  std::deque<std::coroutine_handle<>> queue_;
  std::atomic<std::size_t> queue_size_{0};

  // Min-heap on (deadline, sequence); timer_node lives in the sleeping task's frame.
  std::vector<timer_node*> timers_;
  std::uint64_t timer_sequence_ = 0;
  std::uint64_t random_state_;
};

class runtime_impl {
 public:
  explicit runtime_impl(runtime_options options);
  ~runtime_impl();
  runtime_impl(const runtime_impl&) = delete;
  runtime_impl& operator=(const runtime_impl&) = delete;

  /// Makes `h` runnable: on the calling worker's queue when it is one of ours, otherwise on the
  /// injection queue. Thread-safe.
  void schedule(std::coroutine_handle<> h);
  /// Wakes one parked worker if there is one (see the protocol above). Thread-safe.
  void notify_one(worker* waker) noexcept;
  bool has_work() const noexcept;
  std::coroutine_handle<> pop_injection();

  void register_task(promise_base& p) noexcept;
  void unregister_task(promise_base& p) noexcept;
  void report_unhandled(std::exception_ptr e) noexcept;

  void shutdown() noexcept;
  runtime_stats stats() const;

  // Worker start-up: each worker reports success or the exception of its reactor set-up.
  void worker_started(std::exception_ptr error) noexcept;

  runtime_options options_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> parked_count_{0};
  std::atomic<std::uint64_t> live_tasks_{0};

 private:
  struct registry_shard {
    std::mutex mutex;
    promise_base* head = nullptr;
  };

  mutable std::mutex injection_mutex_;
  std::deque<std::coroutine_handle<>> injection_;
  std::atomic<std::size_t> injection_size_{0};
  std::unique_ptr<registry_shard[]> shards_;
  std::size_t shard_count_ = 0;
  std::atomic<unsigned> wake_cursor_{0};

  std::mutex start_mutex_;
  std::condition_variable start_cv_;
  unsigned started_ = 0;
  std::exception_ptr start_error_;
  bool shut_down_ = false;
};

/// The worker running on this thread, or null. Out of line on purpose (llvm #47179).
worker* current_worker() noexcept;

}  // namespace corio::detail
