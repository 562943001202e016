// corio/spawn.hpp - running a task independently: spawn() and join_handle<T>.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>
#include <stdexcept>
#include <utility>

#include "corio/errors.hpp"
#include "corio/task.hpp"
#include "corio/yield.hpp"

namespace corio {

namespace detail {

/// Makes `p` (the frame of a task that has not started) a root task of `rt` (null: the runtime of
/// the calling worker): sets its spawn state, registers it (so that shutdown can find it), and
/// schedules it on the calling worker's LIFO slot, or the injection queue when called from a
/// thread that is not one of rt's workers. Throws std::logic_error when there is no runtime (spawn
/// outside a runtime), std::runtime_error when the runtime is shutting down and std::out_of_range
/// for a worker `bound` the runtime does not have; the frame is then destroyed (its arguments
/// freed) before the exception leaves, so that callers need no handler of their own. `name` (may be
/// null) is kept for the task dump. Gives the task its number (spawn_state::id).
CORIO_API void spawn_root(runtime_impl* rt, promise_base& p, std::coroutine_handle<> self,
                          std::uint32_t bound = unbound_worker, const char* name = nullptr);

/// The canceller of a parked join, in the join awaiter: `request_stop` on the joiner's stop state
/// sets state_join_cancel on the joined task; when that finds the joiner parked and the task still
/// running, it resumes the joiner (on the worker where it parked), and the task's finish, seeing
/// the bit, does not. Exactly one of the two resumes the joiner.
struct join_canceller : stop_canceller {
  // Written only when the canceller is armed (join_park's slow path, or arm_lazy_join): a join
  // that parks with the plain-store fast path and is never cancelled writes none of them.
  promise_base* task;                ///< the joined task (its continuation_ is the joiner)
  std::uint32_t park_worker;         ///< where to resume the joiner
  stop_state* stop;                  ///< the joiner's stop state (null: not cancellable); set by
                                     ///< await_suspend
  join_canceller* chain_next;        ///< arm_lazy_join's list of cancellers to arm (lib/spawn.cpp)
};

/// The suspending half of a join: `p` is the spawned task, `joiner` the task awaiting it, already
/// stored in p's continuation; `c` the join's canceller (its `stop` set by the caller). Publishes
/// the joiner in p's state and returns what the joiner's await_suspend resumes by symmetric
/// transfer: `joiner` itself when the task finished meanwhile, else the next local task of the
/// calling worker (next_after_park()). A task still queued unstarted in the calling worker's
/// LIFO slot or on top of its private queue gets the plain-store join, its canceller left pending
/// until it waits for real (docs/internals.md, "Spawn, finish and join"); otherwise the joiner's
/// own pending join is armed first, then this join's canceller, and the joiner bit is set with one
/// atomic addition. Touches neither frame after the publishing step (llvm #56301). Defined in
/// lib/spawn.cpp.
CORIO_API std::coroutine_handle<> join_park(promise_base& p, std::coroutine_handle<> joiner,
                                            join_canceller& c) noexcept;

/// After a join parked and was resumed, when it did not end the usual way (see
/// join_handle::operation::await_resume): disarms its canceller, and throws operation_cancelled
/// (after clearing the joiner bits, so that the handle can be joined again, and linking the task
/// back under the joiner if the join had unlinked it) when the join was cancelled before the task
/// finished. Defined in lib/spawn.cpp.
CORIO_API void join_settle(join_canceller& c, promise_base& task);

/// What a join_handle points to once the runtime destroyed its task at shutdown: a marker address,
/// never dereferenced, so that the handle stays one pointer wide (like Tokio's JoinHandle).
CORIO_API inline promise_base* orphaned_promise() noexcept {
  static constinit char marker = 0;
  return reinterpret_cast<promise_base*>(&marker);
}

/// Untyped part of join_handle: reference-counting of the frame and the back-pointer that lets the
/// runtime detach the handle from a frame it destroys at shutdown.
class CORIO_API join_handle_base {
 public:
  join_handle_base(const join_handle_base&) = delete;
  join_handle_base& operator=(const join_handle_base&) = delete;

  /// True until the handle is joined, detached, or moved from, or the runtime destroyed its task
  /// at shutdown.
  [[nodiscard]] bool valid() const noexcept { return promise_ != nullptr && promise_ != orphaned_promise(); }

  /// True once the task has finished (returned or thrown). Thread-safe; false on an empty handle
  /// and on one whose task the runtime destroyed at shutdown.
  [[nodiscard]] bool done() const noexcept {
    return valid() && (promise_->spawn_.state.load(std::memory_order_acquire) & state_running) == 0;
  }

  /// Requests stop on the task (its stop state, see corio/cancel.hpp): the operation it is
  /// suspended in ends with operation_cancelled, or, if it already took effect, the task sees the
  /// stop at its next suspension point; tasks it spawned and did not detach are cancelled when it
  /// sees its stop. Returns true when this call made the request (false: the task was cancelled
  /// before, finished, or the handle is empty). Does not wait: co_await the handle for that.
  /// Thread-safe against the task; like Tokio's JoinHandle::abort and Go's context cancel.
  bool cancel() noexcept {
    if (!valid()) return false;
    if ((promise_->spawn_.state.load(std::memory_order_acquire) & state_running) == 0) return false;
    return promise_->spawn_.stop.request_stop();
  }

  /// Lets the task run on without a handle: its frame is freed when it finishes, and an exception
  /// it throws goes to `runtime_options::unhandled_exception` (operation_cancelled excepted). The
  /// destructor does the same (Tokio's JoinHandle semantics). Detaching also takes the task out of
  /// its spawner's children: it outlives the spawner's cancellation. Idempotent. Not thread-safe
  /// against other uses of this handle.
  void detach() noexcept {
    promise_base* p = std::exchange(promise_, nullptr);
    if (p != nullptr && p != orphaned_promise()) release(p, false);
  }

 protected:
  join_handle_base() noexcept = default;
  explicit join_handle_base(promise_base* p) noexcept : promise_(p) { p->spawn_.owner = this; }
  join_handle_base(join_handle_base&& other) noexcept : promise_(std::exchange(other.promise_, nullptr)) {
    if (valid()) promise_->spawn_.owner = this;
  }
  join_handle_base& operator=(join_handle_base&& other) noexcept {
    if (this != &other) {
      detach();
      promise_ = std::exchange(other.promise_, nullptr);
      if (valid()) promise_->spawn_.owner = this;
    }
    return *this;
  }
  ~join_handle_base() { detach(); }

  /// Drops the handle's reference to the frame; destroys the frame when the task has finished and
  /// its home worker has let go of it. `observed` tells whether the result (or exception) was
  /// taken by a join. Defined in lib.
  static void release(promise_base* p, bool observed) noexcept;

  /// Throws the right error for awaiting an empty (or orphaned) handle.
  [[noreturn]] void throw_empty() const;

  /// The task's promise; null when empty, orphaned_promise() once the runtime destroyed the task.
  promise_base* promise_ = nullptr;

  friend class runtime_impl;
};

}  // namespace detail

/// The handle to a spawned task: `co_await` it for the task's result (or its exception, rethrown),
/// `detach()` it, or drop it (which detaches). Move-only. Awaiting it a second time, or after
/// detach(), throws std::logic_error; awaiting it after the runtime destroyed the task at shutdown
/// throws corio::operation_cancelled. Awaiting is thread-safe against the task finishing on another
/// worker: exactly one of the two resumes the joiner (one atomic word, as Tokio's task state).
/// A join_handle must not outlive its runtime unless it was joined or detached.
template <class T>
class [[nodiscard("co_await the handle, or call detach()")]] join_handle : public detail::join_handle_base {
 public:
  /// An empty handle (not valid(); awaiting it throws std::logic_error).
  join_handle() noexcept = default;
  /// Takes over the other handle's task; the other is left empty.
  join_handle(join_handle&&) noexcept = default;
  /// Takes over the other handle's task; the task this handle held, if any, is detached.
  join_handle& operator=(join_handle&&) noexcept = default;
  ~join_handle() = default;

  /// The awaiter of a join. Cancellable: when the joiner's stop is requested while it waits, the
  /// join throws operation_cancelled and the handle stays valid (the task runs on); when the task
  /// finished first, the join returns its result.
  class operation : detail::join_canceller {
   public:
    static constexpr bool corio_checks_lazy_join = true;  ///< join_park does (see stop_aware)
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::join;  ///< for the task dump
    /// Made by `co_await handle`.
    explicit operation(join_handle& h) noexcept : handle_(h) {}
    /// The joined task's promise: the dump reads its number while the joiner waits, when the
    /// handle keeps the frame alive.
    std::uintptr_t corio_wait_object() const noexcept { return reinterpret_cast<std::uintptr_t>(handle_.promise_); }
    operation(const operation&) = delete;
    operation& operator=(const operation&) = delete;
    // No disarm in a destructor: a join still armed when its frame is destroyed is one the
    // runtime's shutdown destroys, with the stop state it is armed on, after the workers stopped.
    /// Ready when the task finished, unless the worker's cooperation budget is spent (then the
    /// joiner yields once first, see detail::coop_spend).
    bool await_ready() noexcept {
      ready_ = (handle_.promise_->spawn_.state.load(std::memory_order_acquire) & detail::state_running) == 0;
      return ready_ && detail::coop_spend();
    }
    /// Parks the joiner until the task finishes (or yields once when the task finished but the
    /// worker's cooperation budget is spent).
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> joiner) noexcept {
      if (ready_) {  // finished, but out of budget: requeue behind the runnable tasks
        detail::schedule_yield(joiner);
        return detail::transfer(detail::next_after_park());
      }
      detail::promise_base& p = *handle_.promise_;
      p.continuation_ = joiner;
      p.joiner_bound_ = detail::binding_of(joiner);
      this->stop = detail::stop_of(joiner);
      // Publishes the joiner (one atomic step, or a plain store while the task waits unstarted in
      // this worker's own queues) and returns what to run next: touch nothing of either frame after.
      return detail::transfer(detail::join_park(p, joiner, *this));
    }
    /// Returns the task's result or rethrows its exception, and releases the task; throws
    /// operation_cancelled when the joiner's stop ended the wait (the handle stays valid).
    T await_resume() {
      detail::promise_base& p = *handle_.promise_;
      // The usual ends of a join: the task finished, no canceller was ever armed for this join, its
      // home worker let go of it, and besides this handle at most the joiner's own children list
      // refers to the frame (a task joined after it finished; a spawner that parked on the join
      // dropped its link then): the result is taken and the frame freed here. Anything else is
      // settled out of line. (An armed canceller, state_join_armed, makes the join unusual too.)
      const std::uint32_t rest = p.spawn_.state.load(std::memory_order_acquire) & ~detail::state_joiner;
      if ((rest & ~detail::state_parented) == detail::state_handle) [[likely]] {
        if (rest == detail::state_handle) return take_and_free();
        if (detail::stop_state* parent = p.spawn_.stop.parent();
            parent != nullptr && parent == detail::current_stop()) {
          parent->unlink_child(p.spawn_.stop);  // the joiner spawned it: its own list
          return take_and_free();
        }
      } else if (!ready_) {
        detail::join_settle(*this, p);  // parked: throws for a cancelled join
      }
      struct release_on_exit {
        join_handle& h;
        ~release_on_exit() { release(std::exchange(h.promise_, nullptr), true); }
      } guard{handle_};
      return handle_.typed().promise().take_result();
    }

   private:
    /// Takes the result of a finished task that nothing else refers to any more, and destroys
    /// its frame (also when the result is an exception, which is rethrown).
    T take_and_free() {
      const auto h = handle_.typed();
      handle_.promise_ = nullptr;
      if constexpr (std::is_void_v<T>) {
        if (h.promise().exception_) [[unlikely]] {
          const std::exception_ptr e = std::move(h.promise().exception_);
          h.destroy();
          std::rethrow_exception(e);
        }
        h.destroy();
      } else {
        struct destroy_on_exit {
          std::coroutine_handle<promise_type> h;
          ~destroy_on_exit() { h.destroy(); }
        } guard{h};
        return h.promise().take_result();
      }
    }

    join_handle& handle_;
    bool ready_;  ///< the task had finished at await_ready (the join did not park); set there
  };

  /// Waits for the task and returns its result or rethrows its exception; throws
  /// operation_cancelled when the joiner is cancelled while it waits.
  operation operator co_await() & {
    if (!valid()) throw_empty();
    return operation{*this};
  }
  /// As the lvalue form: `co_await corio::spawn(t)` joins at once.
  operation operator co_await() && {
    if (!valid()) throw_empty();
    return operation{*this};
  }

 private:
  template <class U>
  friend join_handle<U> spawn(task<U> t, const char* name);
  template <class U>
  friend join_handle<U> spawn(task<U> t);
  template <class U>
  friend join_handle<U> spawn_on(unsigned worker, task<U> t);
  template <class U>
  friend join_handle<U> spawn_on(unsigned worker, task<U> t, const char* name);
  friend class runtime;
  using promise_type = detail::promise<T>;

  explicit join_handle(promise_type& p) noexcept : join_handle_base(&p) {}
  std::coroutine_handle<promise_type> typed() const noexcept {
    return std::coroutine_handle<promise_type>::from_promise(*static_cast<promise_type*>(promise_));
  }

  static join_handle spawn_on(detail::runtime_impl* rt, task<T>&& t, std::uint32_t bound = detail::unbound_worker,
                              const char* name = nullptr) {
    auto h = t.release();
    detail::spawn_root(rt, h.promise(), h, bound, name);  // destroys the frame if it throws
    return join_handle{h.promise()};
  }
};

/// Spawns `t` as an independent task on the runtime that runs the caller, and returns its handle.
/// The task is queued on the calling worker (Go's `go` statement, Tokio's `tokio::spawn`). Call it
/// from a task; from any other thread use `runtime::spawn`. Throws std::logic_error outside a
/// runtime, std::runtime_error while the runtime shuts down, std::invalid_argument for an empty
/// task. Thread-safe.
///
/// The second form names the task: `name` appears in the task dump and the stall report
/// (runtime::dump_tasks; Tokio's task::Builder::name). It is kept as a pointer, not copied: a string
/// literal, or another string that outlives the task; null is no name. Every spawned task also gets
/// a number, unique in the process and increasing per worker (Go's goroutine ids).
template <class T>
join_handle<T> spawn(task<T> t, const char* name) {
  if (!t.valid()) throw std::invalid_argument("corio::spawn: empty task");
  return join_handle<T>::spawn_on(nullptr, std::move(t), detail::unbound_worker, name);  // null: the caller's runtime
}
/// Spawns `t` on the caller's runtime with no name; otherwise as the named form above.
template <class T>
join_handle<T> spawn(task<T> t) {
  if (!t.valid()) throw std::invalid_argument("corio::spawn: empty task");
  return join_handle<T>::spawn_on(nullptr, std::move(t));  // null: the caller's runtime
}

/// Spawns `t` bound to worker number `worker` (0 .. workers-1) of the caller's runtime: the task,
/// and every task it awaits inline, runs only on that worker's thread, whatever wakes it (an I/O
/// completion, a timer, a joined task finishing elsewhere); it is never stolen. For state that
/// must stay on one thread (thread-affine libraries, thread-local caches). Tasks it spawns are not
/// bound. Throws std::out_of_range for a worker number the runtime does not have, otherwise like
/// spawn(). Thread-safe.
/// The second form names the task, as spawn() does.
template <class T>
join_handle<T> spawn_on(unsigned worker, task<T> t, const char* name) {
  if (!t.valid()) throw std::invalid_argument("corio::spawn_on: empty task");
  return join_handle<T>::spawn_on(nullptr, std::move(t), worker, name);
}
/// spawn_on with no name; otherwise as the named form above.
template <class T>
join_handle<T> spawn_on(unsigned worker, task<T> t) {
  if (!t.valid()) throw std::invalid_argument("corio::spawn_on: empty task");
  return join_handle<T>::spawn_on(nullptr, std::move(t), worker);
}

}  // namespace corio
