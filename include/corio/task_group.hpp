// corio/task_group.hpp - structured concurrency: a nursery of child tasks, and when_any.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "corio/cancel.hpp"
#include "corio/errors.hpp"
#include "corio/detail/park.hpp"
#include "corio/semaphore.hpp"
#include "corio/spawn.hpp"
#include "corio/task.hpp"
#include "corio/wait_group.hpp"
#include "corio/when_all.hpp"

namespace corio {

namespace detail {

/// A task_group child's entry in its group's list of running children: lives in the child's
/// frame (group_child), linked and unlinked under the group's lock in O(1) (a server's group
/// may hold tens of thousands of connections).
struct group_member {
  stop_state* stop = nullptr;
  group_member* prev = nullptr;
  group_member* next = nullptr;
};

/// What a task_group shares with its children (they keep it alive: a child may outlive a group
/// that was destroyed without a join). The children's stop states are listed under `lock`, so
/// that cancel() reaches each while it runs.
struct group_state {
  /// A limit beyond INT64_MAX (a semaphore's most units) gets INT64_MAX slots: no limit in practice.
  explicit group_state(std::size_t max)
      : limit(max), slots(static_cast<std::int64_t>(std::min<std::size_t>(max, INT64_MAX))) {}
  spin_lock lock;
  group_member* running = nullptr;         ///< under lock: the children's entries, newest first
  bool cancelled = false;                  ///< under lock
  std::exception_ptr error;                ///< under lock: the first failure
  wait_group pending;                      ///< children not finished
  std::size_t limit;                       ///< max_concurrency, 0 for none
  semaphore slots;                         ///< units of concurrency when limit != 0
  std::atomic<std::size_t> active{0};      ///< children in their body now (for tests and stats)
  std::atomic<std::size_t> max_active{0};  ///< the most there ever were at once
  /// Set for a supervising group (task_group::policy::supervise): a child's failure goes here
  /// instead of cancelling its siblings. Written before the first child is spawned, then read-only.
  std::function<void(std::exception_ptr)> on_failure;

  /// Requests stop on every child; later children start cancelled.
  void cancel_all() noexcept {
    spin_guard g{lock};
    cancelled = true;
    stop_running_locked();
  }
  void enter(group_member& m) {
    spin_guard g{lock};
    m.prev = nullptr;
    m.next = running;
    if (running != nullptr) running->prev = &m;
    running = &m;
    if (cancelled) m.stop->request_stop();
  }
  void leave(group_member& m) noexcept {
    spin_guard g{lock};
    if (m.prev != nullptr) m.prev->next = m.next;
    else running = m.next;
    if (m.next != nullptr) m.next->prev = m.prev;
    m.prev = m.next = nullptr;
  }
  void stop_running_locked() noexcept {
    for (group_member* m = running; m != nullptr; m = m->next) m->stop->request_stop();
  }
  /// Records a child's failure: the first one is kept and cancels the siblings.
  void fail(std::exception_ptr e) noexcept {
    spin_guard g{lock};
    if (error) return;
    error = std::move(e);
    cancelled = true;
    stop_running_locked();
  }
  /// A child failed with `e`: fail-fast records it (fail()); a supervising group hands it to
  /// on_failure, and a failure of on_failure itself (it threw) is recorded as fail-fast would.
  void child_failed(std::exception_ptr e) noexcept {
    if (!on_failure) {
      fail(std::move(e));
      return;
    }
    try {
      on_failure(std::move(e));
    } catch (...) {
      fail(std::current_exception());  // the supervisor gave up: escalate, as an OTP supervisor does
    }
  }
};

/// A task_group child: registers its stop state with the group, waits for a slot when the group
/// has a max_concurrency, runs `body`, records a failure, and counts itself off.
// Parameters by value (GCC 12 and coroutine references, see runtime.hpp).
template <class T>
task<void> group_child(task<T> body, std::shared_ptr<group_state> st) {
  stop_state* self = current_stop();
  group_member member{self};
  st->enter(member);
  bool slot = false;
  std::exception_ptr failure;
  try {
    if (st->limit != 0) {
      co_await st->slots.acquire();
      slot = true;
    }
    const std::size_t now_active = st->active.fetch_add(1, std::memory_order_relaxed) + 1;
    std::size_t seen = st->max_active.load(std::memory_order_relaxed);
    while (now_active > seen && !st->max_active.compare_exchange_weak(seen, now_active, std::memory_order_relaxed)) {
    }
    try {
      co_await std::move(body);
    } catch (...) {
      st->active.fetch_sub(1, std::memory_order_relaxed);
      throw;
    }
    st->active.fetch_sub(1, std::memory_order_relaxed);
  } catch (const operation_cancelled&) {
    // The group's own cancellation is not a failure; a child that gave up on its own (a timeout
    // running out inside it) is.
    bool by_group;
    {
      spin_guard g{st->lock};
      by_group = st->cancelled || self->stop_requested();
    }
    if (!by_group) failure = std::current_exception();
  } catch (...) {
    failure = std::current_exception();
  }
  body = task<T>{};  // the child's frame is gone before the group hears of its end
  if (failure) st->child_failed(std::move(failure));
  if (slot) st->slots.release();
  st->leave(member);
  st->pending.done();
}

}  // namespace detail

/// A nursery (Trio's nursery, Kotlin's coroutineScope, Go's errgroup): tasks spawned into the group
/// run as independent tasks; `co_await group.join()` returns once every one has finished.
/// `max_concurrency` (0: no limit) bounds how many children run their body at once; the others
/// wait (parked) for a slot.
///
/// What a child's failure (it throws anything but the cancellation the group itself caused,
/// including an operation_cancelled or timed_out of its own) does depends on the policy chosen at
/// construction:
/// - policy::fail_fast (the default; Trio's nursery, Go's errgroup.WithContext): the first failure
///   cancels the siblings, and join() rethrows it once all have ended; later failures are dropped.
/// - policy::supervise (Erlang/OTP's one_for_one supervisor without the restart, Tokio's JoinSet
///   read with join_next): each failure is handed to the `on_failure` callback, the siblings go
///   on, and join() does not throw for it. For a server's connection group: one reset connection
///   must not end every other client's. The callback runs on the worker that ran the failing
///   child, after that child's frame was destroyed and before it counts as finished (so join()
///   returns after every callback returned); several may run at once on different workers, so it
///   must be thread-safe, and it must not block (it runs on a worker thread; spawn a task for
///   slow work). If the callback throws, its exception is treated as a fail-fast failure: the
///   siblings are cancelled and join() rethrows it (the supervisor escalates, as OTP's does when
///   it gives up).
///
/// Cancellation: cancel() requests stop on every child; cancelling the task that awaits join()
/// cancels the children, waits for them to end, and then throws operation_cancelled. Destroying a
/// group that was not joined (its scope left by an exception, say) cancels its children: they end
/// at their next suspension point, holding the group's shared state until then; the destructor
/// does not block its thread (a worker must never block). Children are not linked to the spawning
/// task's stop state: the group is their parent.
///
/// spawn() and cancel() are thread-safe; join() is for one task at a time.
class task_group {
 public:
  /// What a child's failure does (see the class comment).
  enum class policy : std::uint8_t {
    fail_fast,  ///< cancel the siblings; join() rethrows the first failure
    supervise,  ///< report it to on_failure; the siblings go on; join() does not throw for it
  };

  /// A fail-fast group. `max_concurrency`: children running their body at once; 0 for no limit
  /// (nor is a limit beyond INT64_MAX one, in practice).
  explicit task_group(std::size_t max_concurrency = 0) : state_(std::make_shared<detail::group_state>(max_concurrency)) {}
  /// A group with policy `p`. policy::supervise needs `on_failure` (called once per failing child
  /// with its exception; see the class comment for where it runs and what its own exception
  /// does); policy::fail_fast takes none. Throws std::invalid_argument otherwise.
  task_group(policy p, std::function<void(std::exception_ptr)> on_failure, std::size_t max_concurrency = 0)
      : state_(std::make_shared<detail::group_state>(max_concurrency)) {
    if (p == policy::supervise && !on_failure) {
      throw std::invalid_argument("corio::task_group: policy::supervise needs an on_failure callback");
    }
    if (p == policy::fail_fast && on_failure) {
      throw std::invalid_argument("corio::task_group: policy::fail_fast takes no on_failure callback");
    }
    state_->on_failure = std::move(on_failure);
  }
  task_group(const task_group&) = delete;
  task_group& operator=(const task_group&) = delete;
  /// Cancels children still running (see the class comment).
  ~task_group() {
    if (state_ && state_->pending.count() != 0) state_->cancel_all();
  }

  /// Spawns `t` into the group (on the calling task's runtime, as corio::spawn). Its result is
  /// dropped; its exception goes to join() (fail-fast) or to on_failure (supervise). Throws like
  /// corio::spawn, and std::logic_error after join() returned. `name` names the child in the task
  /// dump, as corio::spawn's (a string that outlives the child, or null).
  template <class T>
  void spawn(task<T> t, const char* name = nullptr) {
    if (joined_) throw std::logic_error("corio::task_group::spawn: the group was joined already");
    if (!t.valid()) throw std::invalid_argument("corio::task_group::spawn: empty task");
    state_->pending.add(1);
    try {
      corio::spawn(detail::group_child<T>(std::move(t), state_), name).detach();  // the group is the parent
    } catch (...) {
      state_->pending.done();
      throw;
    }
  }

  /// Requests stop on every child, now and spawned later. Thread-safe.
  void cancel() noexcept { state_->cancel_all(); }

  /// Waits for every child; rethrows the first failure (fail-fast; in a supervising group only a
  /// failure of on_failure itself). Cancelling the awaiting task cancels the
  /// children, waits for them all the same, then throws operation_cancelled.
  task<void> join() { return join_impl(state_, &joined_); }

  /// Children not finished yet (a snapshot). A failing child of a supervising group is reported
  /// to on_failure before it counts as finished, so right after the callback ran it may still be
  /// counted here for a moment.
  [[nodiscard]] std::int64_t pending() const noexcept { return state_->pending.count(); }
  /// The policy chosen at construction.
  [[nodiscard]] policy failure_policy() const noexcept {
    return state_->on_failure ? policy::supervise : policy::fail_fast;
  }
  /// The most children that ran their body at once so far.
  [[nodiscard]] std::size_t max_observed_concurrency() const noexcept {
    return state_->max_active.load(std::memory_order_relaxed);
  }

 private:
  static task<void> join_impl(std::shared_ptr<detail::group_state> st, bool* joined) {
    std::exception_ptr cancelled;
    try {
      co_await st->pending.wait();
    } catch (const operation_cancelled&) {
      cancelled = std::current_exception();
    }
    if (cancelled) {
      st->cancel_all();
      co_await wait_group::wait_operation{st->pending, false};  // the children end first
    }
    *joined = true;
    if (cancelled) std::rethrow_exception(cancelled);
    std::exception_ptr error;
    {
      detail::spin_guard g{st->lock};
      error = st->error;
    }
    if (error) std::rethrow_exception(error);
  }

  std::shared_ptr<detail::group_state> state_;
  bool joined_ = false;
};

namespace detail {

/// What the children of one when_any share: who won, the winner's result or exception, and the
/// children's stop states (to cancel the losers). Lives in when_any's frame.
template <class Result, std::size_t N>
struct any_state {
  std::atomic<bool> decided{false};
  std::optional<Result> result;
  std::exception_ptr error;
  std::array<stop_state*, N> children{};

  /// The first child to finish claims the result and cancels the others.
  bool claim(std::size_t self) noexcept {
    if (decided.exchange(true, std::memory_order_acq_rel)) return false;
    for (std::size_t i = 0; i < N; ++i) {
      if (i != self && children[i] != nullptr) children[i]->request_stop();
    }
    return true;
  }
};

/// Child I of a when_any: awaits `t` and, if it is the first to finish, records its result or
/// exception and cancels the others.
template <std::size_t I, class Result, std::size_t N, class T>
task<void> any_child(task<T> t, any_state<Result, N>* st) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      if (st->claim(I)) st->result.emplace(std::in_place_index<I>, std::monostate{});
    } else {
      auto v = co_await std::move(t);
      if (st->claim(I)) st->result.emplace(std::in_place_index<I>, std::move(v));
    }
  } catch (const operation_cancelled&) {
    // A loser cancelled by the winner; or every child cancelled with the awaiting task.
    if (!st->decided.load(std::memory_order_acquire) && !current_stop()->stop_requested() && st->claim(I)) {
      st->error = std::current_exception();
    }
  } catch (...) {
    if (st->claim(I)) st->error = std::current_exception();
  }
}

/// when_any's body: the children run as a when_all; the winner's result comes out.
template <class Result, class... Ts, std::size_t... I>
task<Result> when_any_impl(std::index_sequence<I...>, task<Ts>... tasks) {
  constexpr std::size_t n = sizeof...(Ts);
  any_state<Result, n> st;
  auto children = std::make_tuple(any_child<I, Result, n, Ts>(std::move(tasks), &st)...);
  ((st.children[I] = &std::get<I>(children).handle().promise().spawn_.stop), ...);
  co_await std::apply([](auto&... c) { return when_all(std::move(c)...); }, children);
  if (st.error) std::rethrow_exception(st.error);
  if (!st.result) throw operation_cancelled("corio::when_any: cancelled");
  co_return std::move(*st.result);
}

}  // namespace detail

/// `co_await corio::when_any(a, b, ...)`: runs the tasks as when_all does; the first to finish
/// wins: its result is returned as a std::variant whose index() is the winner's position (a `void`
/// task gives std::monostate), or its exception is rethrown. The others are cancelled and waited
/// for before when_any returns (nothing of theirs outlives it; a loser that took effect before its
/// cancellation reached it has its result dropped). Cancelling the awaiting task cancels all of
/// them and throws operation_cancelled. Like Tokio's select! over futures, without leaving the
/// losers running. Throws like when_all for empty tasks or outside a runtime.
template <class... Ts>
task<std::variant<detail::when_all_value<Ts>...>> when_any(task<Ts>... tasks) {
  static_assert(sizeof...(Ts) > 0, "corio::when_any needs at least one task");
  using result = std::variant<detail::when_all_value<Ts>...>;
  return detail::when_any_impl<result, Ts...>(std::index_sequence_for<Ts...>{}, std::move(tasks)...);
}

/// `co_await corio::when_any(a, b, ...)` over any awaitables, mixing kinds (tasks, join handles,
/// socket, timer, signal and channel operations, a select, a timeout()...): as when_any of tasks,
/// each argument made a task as when_all(awaitables...) does (held as it says: operations that
/// cannot be moved and lvalues by reference, so co_await the result in the same expression).
/// The first to finish wins; every other is cancelled through its stop state and waited for
/// before when_any returns: a socket operation is cancelled in the reactor (io_uring
/// ASYNC_CANCEL, Asio's cancellation slot), a sleep's timer is removed from the wheel, a channel
/// send or receive is withdrawn from the channel (a send's value is not delivered, a receive takes
/// nothing), a signal wait is withdrawn, and a join is withdrawn without cancelling the joined
/// task (its handle stays valid; a join on a task that has not waited yet since the join began
/// ends when that task first waits, see README). An operation that took effect before its
/// cancellation reached it (a value received, bytes read) has its result dropped, as Go's select
/// and Tokio's select! drop a losing branch; to keep every value, use corio::select for channels.
/// Example: `auto r = co_await corio::when_any(ch.recv(), corio::sleep_for(1s));` gives a
/// std::variant<std::optional<T>, std::monostate>.
template <class... As>
  requires detail::awaitables_not_all_tasks<As...>
auto when_any(As&&... awaitables) {
  return when_any(detail::as_task(std::forward<As>(awaitables))...);
}

}  // namespace corio
