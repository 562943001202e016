// corio/cancel.hpp - what a task sees of cancellation: this_task::stop_requested(), timeout(),
// deadline(), and std::stop_token interop.
//
// A task is cancelled through its stop state (detail/stop_state.hpp): join_handle::cancel(), its
// spawner's cancellation, a task_group or when_any cancelling siblings, a timeout running out, or
// the runtime shutting down. The operation it is suspended in then ends with operation_cancelled
// (or timed_out); if that operation took effect first it returns normally, and the stop is seen
// at the next suspension point. Never both.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <chrono>
#include <coroutine>
#include <optional>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "corio/detail/io_operation.hpp"
#include "corio/detail/park.hpp"
#include "corio/detail/stop_state.hpp"
#include "corio/errors.hpp"
#include "corio/task.hpp"
#include "corio/time.hpp"

namespace corio {

namespace detail {

/// The timer of a timeout that suspended: on the heap (it may outlive the awaiter by a message to
/// its worker), in the wheel of worker `worker`. `state` decides between the timer firing (which
/// requests stop on `scope`) and the awaiter letting go, as a claim word does (see park.hpp).
struct timeout_timer {
  static constexpr std::uint32_t armed = 0, firing = 1, fired = 2, abandoned = 3;
  timer_entry entry;
  std::atomic<std::uint32_t> state{armed};
  stop_state* scope = nullptr;
  void* owner = nullptr;  ///< the worker whose wheel holds it
};

/// Allocates a timer for `scope` and inserts it into the calling worker's wheel, due at `deadline`.
/// Throws std::logic_error off a worker. Defined in lib/timers.cpp.
CORIO_API timeout_timer* arm_timeout_timer(stop_state& scope, clock::time_point deadline);
/// Lets go of a timer after the awaited operation ended, from any thread: removes and frees it on
/// its own worker, or hands it to that worker to do so; waits for a firing in progress. Returns
/// true when the timer fired (the scope's stop came from it). Defined in lib/timers.cpp.
CORIO_API bool release_timeout_timer(timeout_timer* t) noexcept;

/// What a scope's outer stop state calls: passes the stop on to the scope.
struct scope_forwarder : stop_canceller {
  stop_state* scope = nullptr;
};
CORIO_API void forward_stop(stop_canceller& c) noexcept;  // lib/stop_state.cpp

template <class A>
using awaiter_of_t = decltype(promise_base::get_awaiter(std::declval<A&>()));

/// What a timeout_operation around anything but an I/O operation keeps instead of an io_deadline.
struct no_io_deadline {};

/// The awaiter of timeout()/deadline() (and their optional forms): runs the awaited operation
/// under a stop scope of its own, a stop_state linked to the task's (cancelling the task cancels
/// the scope), which a timer cancels at the deadline. Around a single I/O operation (an awaiter
/// derived from io_operation) on a worker whose reactor can (io_operation::link_deadline:
/// io_uring, the real clock), no timer: the deadline goes with the request as a linked timeout,
/// and the reactor reports whether it ended the operation. `Optional`: return std::optional (bool
/// for void) instead of throwing timed_out. Single use.
template <class A, bool Optional>
class timeout_operation : scope_forwarder {
  using inner_t = awaiter_of_t<A>;
  using value_t = decltype(std::declval<inner_t&>().await_resume());
  static constexpr bool is_io = std::is_base_of_v<io_operation, std::remove_cvref_t<inner_t>>;

 public:
  /// The task dump sees through the scope to the awaited operation (or task).
  static constexpr wait_kind corio_wait = wait_kind_of<inner_t>();
  std::uintptr_t corio_wait_object() const noexcept { return wait_object_of(inner_); }
  using result_type = std::conditional_t<!Optional, value_t,
                                         std::conditional_t<std::is_void_v<value_t>, bool, std::optional<value_t>>>;

  /// Until `deadline`, or for `duration` from the moment it suspends when `relative` (the clock
  /// is read only when the operation is not ready at once).
  timeout_operation(clock::time_point deadline, clock::duration duration, bool relative, A&& awaitable)
      : awaitable_(std::forward<A>(awaitable)),
        inner_(promise_base::get_awaiter(awaitable_)),
        deadline_(deadline),
        duration_(duration),
        relative_(relative) {}
  timeout_operation(const timeout_operation&) = delete;
  timeout_operation& operator=(const timeout_operation&) = delete;
  ~timeout_operation() { cleanup(); }  // a frame destroyed while suspended (shutdown)

  /// Ready when the awaited operation is: no timer, no scope (an immediate result wins over an
  /// expired deadline, as a ready case does in Go's select).
  bool await_ready() { return ready_ = inner_.await_ready(); }

  template <class Promise>
  decltype(auto) await_suspend(std::coroutine_handle<Promise> h) {
    static_assert(std::is_base_of_v<promise_base, Promise>, "corio::timeout: co_await it inside a corio::task");
    promise_ = &h.promise();
    outer_ = promise_->stop_;
    scope_.reset(nullptr, nullptr, outer_);  // parent: for task_local lookups only (not in its list)
    this->scope = &scope_;
    this->cancel = &forward_stop;
    if (outer_ != nullptr && !outer_->arm(*this)) scope_.request_stop();  // the task is cancelled already
    armed_ = outer_ != nullptr && !scope_.stop_requested();
    const clock::time_point t = now();
    if (relative_) deadline_ = deadline_after(t, duration_);
    if (deadline_ <= t) {
      expired_ = true;
      scope_.request_stop();
    } else {
      bool linked = false;
      if constexpr (is_io) linked = inner_.link_deadline(link_, deadline_);
      if (!linked) timer_ = arm_timeout_timer(scope_, deadline_);
    }
    promise_->stop_ = &scope_;  // the awaited operation arms its canceller on the scope
    try {
      return inner_.await_suspend(h);  // may publish the task: nothing of this frame after
    } catch (...) {
      restore();
      throw;
    }
  }

  /// The operation's result; timed_out (or std::nullopt / false in the optional forms) when the
  /// deadline ended it; operation_cancelled when the task was cancelled. Decided by what ended the
  /// operation, not by the exception's type: a cancellation that this scope's stop did not cause
  /// (operation_cancelled::cancelled_by) is the operation's own outcome (a joined task that ended
  /// cancelled, say) and is rethrown as it is, even after the deadline passed.
  result_type await_resume() {
    if (ready_) return wrap(inner_);
    restore();
    try {
      return wrap(inner_);
    } catch (operation_cancelled& e) {
      if (e.cancelled_by() != &scope_) throw;  // the operation took effect: its outcome stands
      const bool task_cancelled = outer_ != nullptr && outer_->stop_requested();
      if (!expired_ || task_cancelled) {
        e.set_cancelled_by(outer_);  // the task's stop, passed on through the scope
        throw;
      }
      if constexpr (Optional) {
        if constexpr (std::is_void_v<value_t>) return false;
        else return std::nullopt;
      } else {
        throw timed_out("corio::timeout: the deadline passed", &scope_);
      }
    }
  }

 private:
  static result_type wrap(inner_t& in) {
    if constexpr (std::is_void_v<value_t>) {
      in.await_resume();
      if constexpr (Optional) return true;
    } else {
      return in.await_resume();
    }
  }
  /// Back to the task's own stop state: timer released, forwarder disarmed, the scope's children
  /// (tasks spawned inside it) handed to the task.
  void restore() noexcept {
    if (promise_ == nullptr) return;
    promise_->stop_ = outer_;
    set_current_stop(outer_);
    cleanup();
    if (scope_.stop_requested()) scope_.observe();
    if (scope_.has_children()) {
      if (outer_ != nullptr) scope_.splice_children_into(*outer_);
      else scope_.release_children();
    }
    promise_ = nullptr;
  }
  void cleanup() noexcept {
    if (timer_ != nullptr) {
      if (release_timeout_timer(std::exchange(timer_, nullptr))) expired_ = true;
    }
    if constexpr (is_io) {
      if (link_.fired) expired_ = true;  // the reactor ended the operation at the linked deadline
    }
    if (armed_) {
      armed_ = false;
      outer_->disarm(*this);
    }
  }

  A awaitable_;
  inner_t inner_;
  clock::time_point deadline_;
  clock::duration duration_;
  bool relative_;
  stop_state scope_;
  stop_state* outer_ = nullptr;
  promise_base* promise_ = nullptr;
  timeout_timer* timer_ = nullptr;
  /// The linked deadline of an I/O operation (see io_operation::link_deadline).
  [[no_unique_address]] std::conditional_t<is_io, io_deadline, no_io_deadline> link_{};
  bool ready_ = false;
  bool armed_ = false;
  bool expired_ = false;
};

/// Stores an rvalue awaitable by value when it can be moved, else by reference (a non-movable
/// awaiter such as a channel operation, alive until the end of the co_await expression).
template <class A>
using stored_t = std::conditional_t<std::is_lvalue_reference_v<A>, A,
                                    std::conditional_t<std::is_move_constructible_v<std::remove_cvref_t<A>>,
                                                       std::remove_cvref_t<A>, A&&>>;

/// The awaiter of shield(): awaits the inner operation with no stop state, so that nothing can
/// cancel it; the task's own stop state is back when it completes.
template <class A>
class shield_operation {
  using inner_t = awaiter_of_t<A>;

 public:
  explicit shield_operation(A&& awaitable)
      : awaitable_(std::forward<A>(awaitable)), inner_(promise_base::get_awaiter(awaitable_)) {}
  shield_operation(const shield_operation&) = delete;
  shield_operation& operator=(const shield_operation&) = delete;

  bool await_ready() { return inner_.await_ready(); }
  template <class Promise>
  decltype(auto) await_suspend(std::coroutine_handle<Promise> h) {
    static_assert(std::is_base_of_v<promise_base, Promise>, "corio::shield: co_await it inside a corio::task");
    promise_ = &h.promise();
    saved_ = std::exchange(promise_->stop_, nullptr);
    try {
      return inner_.await_suspend(h);  // may publish the task: nothing of this frame after
    } catch (...) {
      restore();
      throw;
    }
  }
  decltype(auto) await_resume() {
    restore();
    return inner_.await_resume();
  }

 private:
  void restore() noexcept {
    if (promise_ == nullptr) return;
    promise_->stop_ = saved_;
    set_current_stop(saved_);
    promise_ = nullptr;
  }
  A awaitable_;
  inner_t inner_;
  promise_base* promise_ = nullptr;
  stop_state* saved_ = nullptr;
};

/// The awaiter of this_task::stop_requested().
struct stop_requested_operation {
  bool value = false;
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
    if (stop_state* s = stop_of(h)) {
      value = s->stop_requested();
      if (value) s->observe();  // the task saw its stop: its children get it too
    }
    return false;  // never suspends
  }
  bool await_resume() const noexcept { return value; }
};

}  // namespace detail

/// `co_await corio::timeout(d, op)`: awaits `op` (any awaitable: a task, a channel operation, a
/// socket read, a join, a select...) for at most `d`. If `op` is ready at once it completes
/// without a timer. Otherwise it runs under a stop scope that a timer in the worker's wheel (1 µs
/// ticks) cancels when `d` has passed: `op` then ends as cancellation ends it, and timeout throws
/// corio::timed_out. When `op` is a single socket operation (read_some, read_lease, write_some,
/// write_all, accept, connect, recv_from, send_to, wait_readable...) on an io_uring worker under
/// the real clock, the deadline is instead an IORING_OP_LINK_TIMEOUT linked to the operation's
/// request (no timer; the kernel cancels it; opt-in with CORIO_URING_LINK_TIMEOUT=1), with
/// the same outcomes. If `op` took effect before the timer won, its result is returned. Cancelling
/// the task cancels `op` too (operation_cancelled, not timed_out). Tasks spawned inside `op` stay
/// linked to the task afterwards. Go's context.WithTimeout and Tokio's tokio::time::timeout, but
/// with no second select arm: the awaited operation is cancelled in place, so nothing is lost. An
/// awaitable that does not support cancellation (a foreign one) is waited for to its end: the
/// timeout then only decides what is thrown. co_await the result in the same expression when `op`
/// is a temporary operation that cannot be moved. Only inside a corio::task. `d` is any
/// std::chrono duration: zero or negative has passed already (an operation not ready at once
/// times out), one too large for the clock (nanoseconds::max(), a thousand years) saturates to
/// no time limit (see to_clock_duration).
template <class Rep, class Period, class A>
[[nodiscard("co_await it")]] auto timeout(std::chrono::duration<Rep, Period> d, A&& op) {
  return detail::timeout_operation<detail::stored_t<A>, false>{
      {}, to_clock_duration(d), true, std::forward<A>(op)};
}

/// As timeout(), with an absolute deadline on corio's clock; clock::time_point::max() never comes
/// (see sleep_until).
template <class A>
[[nodiscard("co_await it")]] auto deadline(clock::time_point when, A&& op) {
  return detail::timeout_operation<detail::stored_t<A>, false>{when, {}, false, std::forward<A>(op)};
}

/// As timeout(), returning std::optional<T> (std::nullopt when the time ran out; `bool` for an
/// operation returning void: false when the time ran out) instead of throwing timed_out.
template <class Rep, class Period, class A>
[[nodiscard("co_await it")]] auto try_timeout(std::chrono::duration<Rep, Period> d, A&& op) {
  return detail::timeout_operation<detail::stored_t<A>, true>{
      {}, to_clock_duration(d), true, std::forward<A>(op)};
}

/// As deadline(), returning std::optional as try_timeout() does.
template <class A>
[[nodiscard("co_await it")]] auto try_deadline(clock::time_point when, A&& op) {
  return detail::timeout_operation<detail::stored_t<A>, true>{when, {}, false, std::forward<A>(op)};
}

/// `co_await corio::shield(op)`: awaits `op` so that the task's cancellation cannot end it (a
/// stop requested meanwhile is seen at the next suspension point after it). For work that must
/// finish once begun: writing a response already promised, releasing a resource over the network.
/// Trio's shielded cancel scope, asyncio.shield. Only inside a corio::task; `op` as for timeout().
template <class A>
[[nodiscard("co_await it")]] auto shield(A&& op) {
  return detail::shield_operation<detail::stored_t<A>>{std::forward<A>(op)};
}

namespace this_task {

/// `co_await corio::this_task::stop_requested()`: true once the calling task's stop was requested
/// (never suspends). A task that sees it passes the stop on to the tasks it spawned. For loops
/// that do not suspend often enough to see the stop at a suspension point. False in a coroutine
/// that is not a corio task.
[[nodiscard("co_await it")]] inline detail::stop_requested_operation stop_requested() noexcept { return {}; }

/// Requests stop on the calling task (as if its join_handle::cancel() were called): its next
/// cancellable wait throws operation_cancelled. For a task that gives up on its own. Thread of the
/// running task only; a no-op outside a task.
inline void request_stop() noexcept {
  if (detail::stop_state* s = detail::current_stop()) s->request_stop();
}

}  // namespace this_task

/// std::stop_token interop: while the returned object lives, a stop requested on `token` requests
/// stop on the calling task (std::stop_callback registered on the token; it allocates nothing in
/// corio, but libstdc++'s stop state was allocated by whoever made the token). Create it inside
/// the task, keep it in the task's frame: `auto link = corio::stop_when(token);`. Returns an
/// inert object outside a task.
class stop_link {
 public:
  /// The std::stop_callback's callable: requests stop on the task's state (null: no task).
  struct requester {
    /// The task's stop state the callback requests stop on; null outside a task.
    detail::stop_state* state;
    /// Requests stop on `state` (nothing when null). Called by std::stop_callback, from any thread.
    void operator()() const noexcept {
      if (state != nullptr) state->request_stop();
    }
  };
  /// Links `token` to the calling task (see stop_when). Runs the request at once when `token`
  /// was stopped already. Not movable (std::stop_callback is not).
  explicit stop_link(std::stop_token token) : callback_(std::move(token), requester{detail::current_stop()}) {}

 private:
  std::stop_callback<requester> callback_;
};

/// See stop_link.
[[nodiscard]] inline stop_link stop_when(std::stop_token token) { return stop_link{std::move(token)}; }

}  // namespace corio
