// corio/blocking.hpp - running blocking work off the workers: co_await corio::spawn_blocking(fn).
//
// A worker must never block (a blocking call stalls every task queued on it), so a call that
// blocks (a blocking library, getaddrinfo, a file system call on a backend without asynchronous
// files, a long computation) goes to the runtime's blocking pool: threads apart from the
// workers, started on demand up to runtime_options::max_blocking_threads and ended after
// runtime_options::blocking_keep_alive idle. The awaiting task suspends and resumes on a worker
// with the result. Tokio's spawn_blocking and its blocking pool; Go's runtime does the same for
// blocking system calls by handing the P to another thread (entersyscall / handoffp).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "corio/detail/park.hpp"
#include "corio/detail/stop_state.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {

class blocking_pool;  // lib/blocking_pool.hpp

/// One unit of work for the blocking pool, intrusive (no allocation by the pool): it lives with
/// whoever submits it (an awaiter in a task's frame, a reactor's request) and must stay alive
/// until `run` has been called and has returned, or until blocking_pool::try_cancel returned true,
/// or until the runtime dropped it at shutdown. Its fields besides `run` belong to the pool
/// (guarded by the pool's mutex). See lib/blocking_pool.hpp for the protocol.
struct blocking_job {
  /// Job states (the pool's; read them only under the pool's mutex).
  static constexpr std::uint8_t fresh = 0;      ///< not submitted (or reset for a new submission)
  static constexpr std::uint8_t queued = 1;     ///< waiting in the pool's FIFO queue
  static constexpr std::uint8_t running = 2;    ///< a pool thread took it: `run` is called or done
  static constexpr std::uint8_t cancelled = 3;  ///< try_cancel took it before it ran: never runs
  static constexpr std::uint8_t dropped = 4;    ///< the runtime shut down before it ran: never runs

  /// Called once on a pool thread: does the work and then notifies the submitter (in that order:
  /// once notified, the submitter may free the job, and the pool touches it no more). Must not
  /// throw (catch into the job).
  void (*run)(blocking_job& self) noexcept = nullptr;
  blocking_job* next = nullptr;  ///< the pool's queue
  blocking_job* prev = nullptr;
  std::uint8_t state = fresh;
};

/// The untyped part of spawn_blocking's awaiter (what lib/blocking_pool.cpp implements): the job,
/// its canceller and how to wake the task. Single use; lives in the awaiting task's frame.
class CORIO_API blocking_wait : public blocking_job, stop_canceller {
 public:
  blocking_wait(const blocking_wait&) = delete;
  blocking_wait& operator=(const blocking_wait&) = delete;

 protected:
  explicit blocking_wait(void (*run_fn)(blocking_job&) noexcept) noexcept { run = run_fn; }
  /// A frame destroyed while suspended (runtime shutdown: a queued job was dropped, a running one
  /// finished first) leaves nothing armed and nothing queued.
  ~blocking_wait();

  /// await_suspend: submits the job to the calling worker's runtime's pool, with the task's stop
  /// state armed (null: not cancellable). False when the stop came first: the task does not
  /// suspend and settle() throws. Throws std::logic_error off a worker.
  bool suspend(std::coroutine_handle<> task, std::uint32_t bound, stop_state* stop);
  /// await_resume: disarms the canceller; throws operation_cancelled when the job never ran.
  void settle();
  /// Called by the derived job's run after it stored the outcome: wakes the task on a worker.
  void complete() noexcept;

 private:
  static void cancel_job(stop_canceller& c) noexcept;

  blocking_pool* pool_ = nullptr;
  stop_state* stop_ = nullptr;
  wake_ticket ticket_{};                     ///< how the completion wakes the task
  std::uint32_t park_worker_ = unbound_worker;  ///< where a cancel wakes it
  bool armed_ = false;
  bool cancelled_ = false;
};

/// Where the result of a blocking call waits for the task: a value, a reference (a pointer) or
/// nothing, or the exception it threw.
template <class R>
struct blocking_result {
  std::optional<R> value;
  template <class F>
  void store(F& f) {
    value.emplace(std::invoke(f));
  }
  R take() { return std::move(*value); }
};
template <class R>
struct blocking_result<R&> {
  R* value = nullptr;
  template <class F>
  void store(F& f) {
    value = std::addressof(std::invoke(f));
  }
  R& take() { return *value; }
};
template <>
struct blocking_result<void> {
  template <class F>
  void store(F& f) {
    std::invoke(f);
  }
  void take() {}
};

/// The awaiter of spawn_blocking(fn): holds `fn` and its result in the awaiting task's frame.
template <class F>
class blocking_operation : blocking_wait {
 public:
  static constexpr wait_kind corio_wait = wait_kind::blocking;  ///< for the task dump
  /// What fn returns; an rvalue reference is returned as the value it refers to (moved from).
  using result_type = std::conditional_t<std::is_rvalue_reference_v<std::invoke_result_t<F&>>,
                                         std::remove_cvref_t<std::invoke_result_t<F&>>, std::invoke_result_t<F&>>;

  explicit blocking_operation(F fn) : blocking_wait(&run_job), fn_(std::move(fn)) {}

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    return suspend(h, binding_of(h), stop_of(h));  // publishes the job: nothing of the frame after
  }
  /// The call's result, or its exception rethrown; operation_cancelled when the job was
  /// cancelled before it started (it never ran).
  result_type await_resume() {
    settle();
    if (error_) std::rethrow_exception(std::move(error_));
    return result_.take();
  }

 private:
  static void run_job(blocking_job& j) noexcept {
    auto& self = static_cast<blocking_operation&>(static_cast<blocking_wait&>(j));
    try {
      self.result_.store(self.fn_);
    } catch (...) {
      self.error_ = std::current_exception();
    }
    self.complete();  // the last touch of the frame on the pool thread
  }

  F fn_;
  blocking_result<result_type> result_;
  std::exception_ptr error_;
};

/// True when the calling thread is a worker of some corio runtime. Defined in lib/blocking_pool.cpp.
CORIO_API bool on_runtime_worker() noexcept;
/// Throws the std::logic_error of spawn_blocking called off a runtime. Defined in lib/blocking_pool.cpp.
[[noreturn]] CORIO_API void throw_not_on_runtime();

}  // namespace detail

/// `co_await corio::spawn_blocking(fn)`: calls `fn()` on a thread of the runtime's blocking pool,
/// apart from the workers, and yields its result (a value, including a move-only one, a
/// reference, or void) or rethrows its exception in the awaiting task, which resumes on a worker.
/// For calls that block a thread (a blocking library, getaddrinfo, a file system call, a long
/// computation): a worker must never block.
///
/// `fn` is moved into the awaiting task's frame and called exactly once, or not at all when the
/// task's stop (join_handle::cancel, a timeout, runtime shutdown...) comes before a pool thread
/// took the job: then the await throws corio::operation_cancelled. A job that started runs to
/// completion (a thread cannot be interrupted) and the await returns its outcome, as every corio
/// operation that took effect does; the stop is seen at the next suspension point. So
/// `corio::timeout(d, spawn_blocking(fn))` bounds the wait for a thread, not the call itself.
///
/// The pool starts threads on demand up to runtime_options::max_blocking_threads (default 64);
/// jobs beyond that wait in a FIFO queue; a thread idle for runtime_options::blocking_keep_alive
/// (default 10 s) ends. At shutdown, queued jobs are dropped (their tasks are destroyed with the
/// others) and the runtime waits for every running job to return, whatever the grace, since a
/// job may use its task's frame. Under the manual clock, time does not jump while a job is queued
/// or running (Tokio's paused time does the same).
///
/// Throws std::logic_error when not called from a task on a runtime's worker (`fn` is not
/// called), std::system_error when no pool thread can be started and none exists. `fn` may
/// capture by reference what the awaiting task keeps alive: the task stays suspended until the
/// call returned. A capturing lambda is fine here (it is not a coroutine). Thread-safe: any
/// number of tasks may wait on jobs at once. Tokio's `tokio::task::spawn_blocking`, awaited at
/// once; Go hands a blocking system call's P to another thread instead.
template <class F>
  requires std::is_invocable_v<std::decay_t<F>&>
[[nodiscard("co_await it")]] detail::blocking_operation<std::decay_t<F>> spawn_blocking(F&& fn) {
  if (!detail::on_runtime_worker()) detail::throw_not_on_runtime();
  return detail::blocking_operation<std::decay_t<F>>{std::forward<F>(fn)};
}

}  // namespace corio
