// lib/blocking_pool.hpp - the runtime's blocking pool: threads apart from the workers that run
// blocking jobs (spawn_blocking, and library code that must call something blocking).
//
// The interface for library code (a reactor running file system calls off its worker, a resolver
// calling getaddrinfo):
//
//   struct my_op : blocking_job { ... };           // lives with the submitter (a frame, a request)
//   op.run = [](blocking_job& j) noexcept { ...do the call...; ...notify the submitter...; };
//   blocking_pool& pool = current_blocking_pool(); // on a worker (throws std::logic_error off one)
//   if (!pool.submit(op)) { ...try_cancel came first: it will never run... }
//   ...
//   if (pool.try_cancel(op)) { ...removed before it started: run is never called... }
//   else { ...it runs or ran: wait for its notification before freeing op... }
// A submitter that must not wait for a running job (a resolve cancelled during getaddrinfo) gives
// the job a refcounted heap state instead of its frame, and leaves through abandon(job): it tells
// whether run will release the job's reference (it runs or ran) or the caller must (it never runs).
//
// Protocol (every state change under the pool's mutex; blocking_job's states):
//   fresh --submit--> queued --a pool thread takes it--> running (run is called once)
//   queued --try_cancel (true)--> cancelled;   fresh --try_cancel (false)--> cancelled, and a
//   later submit returns false (so a canceller that runs before the submission wins: an awaiter
//   arms its canceller, then submits);   queued --shutdown--> dropped.
// The pool never touches a job after calling its run (the submitter may free it once notified),
// and never calls anything of the submitter's but run. A job is reused by resetting `state` to
// fresh before its next submission (not thread-safe: only when no call on it is in progress).
//
// Threads: started on demand, one per submission that finds no idle thread, up to max_threads;
// beyond that jobs wait in FIFO order; a thread idle for keep_alive (steady clock, also under the
// manual clock) ends. Tokio's blocking pool (tokio/src/runtime/blocking/pool.rs): the same
// growth, queue and keep-alive, and the same shutdown rule for queued jobs (dropped).
//
// Shutdown (runtime_impl::stop_and_destroy, after the workers stopped and drained their
// reactors, before any frame is destroyed): new submissions throw, queued jobs are dropped, every
// running job is waited for, however long it takes (a job may use its submitter's memory: a
// task's frame), and every thread is joined. A reactor whose requests wait on pool jobs drains
// them in its own drain() (try_cancel, then wait for the running ones): the pool still runs then.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "corio/blocking.hpp"
#include "corio/runtime.hpp"

namespace corio::detail {

class blocking_pool {
 public:
  /// `max_threads` >= 1 (std::invalid_argument otherwise); `keep_alive`: how long a thread waits
  /// idle before it ends (negative: zero; clock::duration::max(): forever). `on_drained` (may be
  /// null) is called, on the thread that made it so and without the pool's lock, each time the
  /// number of submitted jobs that have not ended (queued or running) falls to zero: the runtime
  /// uses it under the manual clock, whose time does not jump while a job is outstanding.
  blocking_pool(unsigned max_threads, clock::duration keep_alive, void (*on_drained)(void*) noexcept = nullptr,
                void* context = nullptr);
  /// shutdown().
  ~blocking_pool();
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  /// Queues `job` (state fresh) at the back of the FIFO queue and hands it to an idle thread, or
  /// starts a thread when none is idle and fewer than max_threads run. Returns false, queueing
  /// nothing, when try_cancel reached the job first (state cancelled). Throws std::runtime_error
  /// after shutdown(), std::system_error when no thread can be started and none exists (the job is
  /// then not queued). Thread-safe (any thread); never blocks beyond the pool's mutex.
  bool submit(blocking_job& job);

  /// Cancels `job` if it has not started: true when it was queued and is now removed (its run is
  /// never called, the submitter may free it). On a fresh job, marks it cancelled so that submit()
  /// refuses it, and returns false. False when it runs or ran (or was dropped at shutdown): its run
  /// is called (was called) as usual. Thread-safe; never blocks beyond the pool's mutex.
  bool try_cancel(blocking_job& job) noexcept;

  /// For a submitter that stops waiting and leaves its job behind, the job owning its own memory
  /// (a refcounted heap state shared by the waiter and the job: the getaddrinfo resolver).
  /// Cancels `job` if it has not started, as try_cancel, and tells who must release the job's
  /// share: true when its run is called or was called (run releases it), false when run is never
  /// called (removed now, cancelled before, never submitted, or dropped at shutdown: the caller
  /// releases it). Thread-safe; never blocks beyond the pool's mutex.
  bool abandon(blocking_job& job) noexcept;

  /// Jobs submitted and not ended (queued or running). Thread-safe; a snapshot.
  [[nodiscard]] std::uint64_t outstanding() const noexcept { return outstanding_.load(std::memory_order_seq_cst); }

  /// See the file comment. Idempotent. Must not be called from a pool thread.
  void shutdown() noexcept;

  /// Threads, idle threads, queued jobs, jobs run. Thread-safe.
  [[nodiscard]] blocking_pool_stats stats() const;

 private:
  void thread_main() noexcept;
  void start_thread_locked();
  void join_exited(std::unique_lock<std::mutex>& lock) noexcept;

  const unsigned max_threads_;
  const clock::duration keep_alive_;
  void (*const on_drained_)(void*) noexcept;
  void* const context_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;      ///< idle threads wait here
  std::condition_variable shutdown_cv_;  ///< shutdown waits here for the threads to end
  blocking_job* head_ = nullptr;         ///< the FIFO queue
  blocking_job* tail_ = nullptr;
  std::uint64_t queued_ = 0;
  unsigned threads_ = 0;       ///< threads started and not ended
  unsigned idle_ = 0;          ///< threads waiting for a job
  unsigned notified_ = 0;      ///< idle threads told to take a job, not yet awake (Tokio's num_notify)
  std::uint64_t jobs_run_ = 0;
  bool shutdown_ = false;
  /// Threads that are running; an ending thread moves its handle to exited_, where the next
  /// submit or shutdown joins it (a thread cannot join itself).
  std::vector<std::thread> threads_list_;
  std::vector<std::thread> exited_;
  std::atomic<std::uint64_t> outstanding_{0};
};

/// The blocking pool of the runtime whose worker runs on the calling thread. Throws
/// std::logic_error naming `what` off a worker. For library code on a worker (a reactor, a
/// resolver). Defined in lib/blocking_pool.cpp.
blocking_pool& current_blocking_pool(const char* what = "corio: the blocking pool used outside a task on a runtime");

}  // namespace corio::detail
