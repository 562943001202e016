// corio/when_all.hpp - fork-join: run several tasks as independent tasks and wait for all of them.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "corio/errors.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {

/// Starts the children of a when_all, awaited by `parent` (bound to `parent_bound`, or
/// unbound_worker): `last` is the last child, the children linked in order through spawn_.prev
/// and spawn_.next, each with spawn_.self and spawn_.group set; `n` >= 1 of them. Queues all but
/// the first on the calling worker's private queue (stealable like spawn() once published) and
/// returns the first, for the caller to resume by symmetric transfer (see fork_group). Throws std::logic_error off a worker and
/// std::runtime_error while the runtime shuts down; nothing is queued then. Defined in
/// lib/spawn.cpp.
CORIO_API std::coroutine_handle<> fork_start(fork_group& g, promise_base* last, std::uint32_t n,
                                             std::coroutine_handle<> parent, std::uint32_t parent_bound);

/// What a child's result becomes in a when_all result: `void` turns into std::monostate, so that a
/// tuple or array can hold it.
template <class T>
using when_all_value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
when_all_value<T> take_when_all_value(std::coroutine_handle<promise<T>> h) {
  if constexpr (std::is_void_v<T>) {
    h.promise().take_result();
    return std::monostate{};
  } else {
    return h.promise().take_result();
  }
}

/// Prepares child `t` of `g`: marks it grouped and links it after `last`, which becomes it.
template <class T>
void link_child(task<T>& t, fork_group& g, promise_base*& last) noexcept {
  auto h = t.handle();
  promise_base& p = h.promise();
  p.bound_ = unbound_worker;  // children are stealable, whatever the parent is bound to
  p.spawn_.group = &g;
  p.spawn_.self = h;
  p.spawn_.home = 0;  // run by the scheduler unless the run of inline children takes it
  p.spawn_.prev = last;
  p.spawn_.next = nullptr;
  // Each child has a stop state of its own (its spawns link under it); its first wait arms the
  // group's forwarder.
  p.spawn_.stop.reset(&p, group_marker());
  p.stop_ = &p.spawn_.stop;
  if (last != nullptr) last->spawn_.next = &p;
  last = &p;
}

/// Passes a stop requested on the awaiting task on to every child of a when_all in flight (the
/// children's frames live until the awaiter is destroyed). Defined in lib/stop_state.cpp.
struct children_forwarder : stop_canceller {
  promise_base* last = nullptr;  ///< the last child; the others through spawn_.prev
};
CORIO_API void forward_to_children(stop_canceller& c) noexcept;

/// The part of every when_all awaiter that does not depend on the result types. Movable only
/// before it is awaited (the group is then referred to by the children); awaiting it twice, or
/// after it was moved from, throws std::logic_error (a moved-from vector form is simply empty).
class when_all_base {
 public:
  when_all_base() noexcept { group_.last_child.store(nullptr, std::memory_order_relaxed); }
  when_all_base(when_all_base&&) noexcept : when_all_base() {}  // only before it is awaited: a fresh group
  when_all_base& operator=(when_all_base&&) = delete;
  /// For the task dump: the group, whose children it lists under the awaiting task.
  std::uintptr_t corio_wait_object() const noexcept { return reinterpret_cast<std::uintptr_t>(&group_); }

 protected:
  void check_first_await() {
    if (started_) throw std::logic_error("corio::when_all: awaited twice");
    started_ = true;
  }
  template <class Promise>
  std::coroutine_handle<> start(promise_base* last, std::size_t n, std::coroutine_handle<Promise> parent) {
    group_.last_child.store(last, std::memory_order_release);  // for the task dump
    // Cancelling the awaiting task cancels every child. The forwarder is armed on the parent's
    // stop state only when a child first parks in a real wait (arm_lazy_join): a fork-join tree
    // whose children never wait pays no atomic for it. Children of a parent cancelled already
    // start cancelled.
    if (stop_state* s = stop_of(parent)) {
      forwarder_.last = last;
      forwarder_.cancel = &forward_to_children;
      group_.parent_stop = s;
      group_.forwarder = &forwarder_;
      if (s->stop_requested()) forward_to_children(forwarder_);
    }
    return transfer(fork_start(group_, last, static_cast<std::uint32_t>(n), parent, binding_of(parent)));
  }
  /// The start of every await_resume: the children are done, nothing to forward to any more
  /// (a load when the forwarder was never armed).
  void settle() noexcept {
    if (stop_state* parent = std::exchange(group_.parent_stop, nullptr)) {
      parent->disarm(forwarder_);
      if (parent->stop_requested()) stopped_parent_ = parent;
    }
  }
  /// A child's cancellation that its own stop state answered (`is_child`) while the awaiting
  /// task's stop was requested is that task's stop, passed on by the forwarder: attributed to the
  /// awaiting task's stop state (operation_cancelled::cancelled_by), as if the when_all itself had
  /// been cancelled. Call while rethrowing a child's exception.
  template <class IsChild>
  void attribute(operation_cancelled& e, IsChild is_child) const noexcept {
    if (stopped_parent_ != nullptr && is_child(e.cancelled_by())) e.set_cancelled_by(stopped_parent_);
  }
  template <class T>
  static const void* stop_of_child(task<T>& t) noexcept {
    return &t.handle().promise().spawn_.stop;
  }
  /// Rethrows the exception of the first of `tasks` (an array or vector of children) that
  /// failed, attributed as attribute() says.
  template <class Range>
  void rethrow_first_of(Range& tasks) const {
    try {
      for (auto& t : tasks) t.handle().promise().rethrow_if_exception();
    } catch (operation_cancelled& e) {
      attribute(e, [&tasks](const void* s) {
        return std::any_of(tasks.begin(), tasks.end(), [s](auto& t) { return stop_of_child(t) == s; });
      });
      throw;
    }
  }

  fork_group group_{};
  children_forwarder forwarder_{};
  stop_state* stopped_parent_ = nullptr;  ///< set by settle(): the awaiting task's stop, requested
  bool started_ = false;
};

template <class T>
std::coroutine_handle<promise<T>> handle_of(task<T>& t) noexcept {
  return t.handle();
}

template <class T>
void check_valid(const task<T>& t) {
  if (!t.valid()) throw std::invalid_argument("corio::when_all: empty task");
}

/// Rethrows the exception of the first child (in argument order) that failed.
inline void rethrow_first(std::initializer_list<const promise_base*> children) {
  for (const promise_base* p : children) p->rethrow_if_exception();
}

template <class T>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<task<T>> = true;

/// What `co_await std::forward<A>(a)` gives in a task (A as deduced by a forwarding reference).
template <class A>
using await_result_t = decltype(promise_base::get_awaiter(std::declval<A>()).await_resume());

/// Something a task can co_await: a task, a join_handle, a socket, channel, timer or signal
/// operation, a select, a timeout(), a when_all...
template <class A>
concept awaitable = requires {
  typename await_result_t<A>;
  promise_base::get_awaiter(std::declval<A>()).await_ready();
};

/// The arguments of the when_all / when_any overloads for awaitables: awaitables, not all of them
/// tasks taken by value (those go to the task overloads, unchanged).
template <class... As>
concept awaitables_not_all_tasks =
    sizeof...(As) > 0 && (awaitable<As> && ...) &&
    !((is_task_v<std::remove_cvref_t<As>> && !std::is_lvalue_reference_v<As>) && ...);

/// A task that awaits `a`, which it owns (a movable awaitable, moved in: a join_handle, an
/// awaitable object). Parameters by value (GCC 12 and coroutine references, see runtime.hpp).
template <class A>
task<await_result_t<A&&>> await_owned(A a) {
  if constexpr (std::is_void_v<await_result_t<A&&>>) {
    co_await std::move(a);
  } else {
    co_return co_await std::move(a);
  }
}

/// A task that awaits `*a` as `Ref` (an lvalue, or a temporary that cannot be moved: a socket,
/// channel, timer or signal operation, alive until the end of the full-expression).
template <class Ref>
task<await_result_t<Ref>> await_referenced(std::remove_reference_t<Ref>* a) {
  if constexpr (std::is_void_v<await_result_t<Ref>>) {
    co_await static_cast<Ref>(*a);
  } else {
    co_return co_await static_cast<Ref>(*a);
  }
}

/// `a` as a task for when_all / when_any: a task given by value is itself (no wrapper, no cost);
/// a movable rvalue is moved into a task that awaits it; an lvalue, or a temporary that cannot be
/// moved, is awaited in place by a task that refers to it. Cancelling the task (its stop state)
/// cancels the operation as cancelling any task's wait does.
template <class A>
auto as_task(A&& a) {
  using D = std::remove_cvref_t<A>;
  if constexpr (is_task_v<D> && !std::is_lvalue_reference_v<A>) {
    return D{std::move(a)};
  } else if constexpr (!std::is_lvalue_reference_v<A> && std::is_move_constructible_v<D>) {
    return await_owned<D>(std::move(a));
  } else {
    return await_referenced<A&&>(std::addressof(a));
  }
}

}  // namespace detail

/// The awaiter of `when_all(task<Ts>...)`: its `co_await` gives a std::tuple of the results, in
/// argument order (a `void` task gives std::monostate). See when_all().
template <class... Ts>
class [[nodiscard("co_await it; the tasks run only then")]] when_all_tuple : detail::when_all_base {
 public:
  static constexpr bool corio_fork = true;  ///< starts the children; their waits are waits
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::when_all;  ///< for the task dump
  using detail::when_all_base::corio_wait_object;  ///< the group, for the task dump
  /// Made by when_all(tasks...). Throws std::logic_error for an empty task.
  explicit when_all_tuple(task<Ts>... tasks) : tasks_(std::move(tasks)...) {
    std::apply([](const auto&... t) { (detail::check_valid(t), ...); }, tasks_);
  }
  /// Moves the tasks, before the awaiter is awaited.
  when_all_tuple(when_all_tuple&&) noexcept = default;

  /// Throws std::logic_error when awaited twice or after a move; true (no suspension) when there is
  /// no task.
  bool await_ready() {
    check_first_await();
    if constexpr (sizeof...(Ts) == 0) {
      return true;
    } else {
      if (!std::get<0>(tasks_).valid()) throw std::logic_error("corio::when_all: awaited after a move");
      return false;
    }
  }
  /// Starts the first task at once by symmetric transfer and queues the others where idle workers
  /// can steal them; the last to finish resumes the awaiter.
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) {
    detail::promise_base* last = nullptr;
    std::apply([&](auto&... t) { (detail::link_child(t, group_, last), ...); }, tasks_);
    return start(last, sizeof...(Ts), parent);
  }
  /// Returns every result, in argument order, once all the tasks ended; when some threw, the
  /// first exception in argument order is rethrown (after every task ended).
  std::tuple<detail::when_all_value<Ts>...> await_resume() {
    settle();
    try {
      std::apply([](auto&... t) { detail::rethrow_first({&detail::handle_of(t).promise()...}); }, tasks_);
    } catch (operation_cancelled& e) {
      attribute(e, [this](const void* s) {
        return std::apply([s](auto&... t) { return ((stop_of_child(t) == s) || ...); }, tasks_);
      });
      throw;
    }
    return std::apply(
        [](auto&... t) {
          return std::tuple<detail::when_all_value<Ts>...>{detail::take_when_all_value(detail::handle_of(t))...};
        },
        tasks_);
  }

 private:
  std::tuple<task<Ts>...> tasks_;
};

/// The awaiter of `when_all(std::array<task<T>, N>)`: its `co_await` gives a std::array of the
/// results in order (std::monostate for `void`). No allocation. See when_all().
template <class T, std::size_t N>
class [[nodiscard("co_await it; the tasks run only then")]] when_all_array : detail::when_all_base {
 public:
  static constexpr bool corio_fork = true;  ///< starts the children; their waits are waits
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::when_all;  ///< for the task dump
  using detail::when_all_base::corio_wait_object;  ///< the group, for the task dump
  /// Made by when_all(std::array). Throws std::logic_error for an empty task.
  explicit when_all_array(std::array<task<T>, N>&& tasks) : tasks_(std::move(tasks)) {
    for (const auto& t : tasks_) detail::check_valid(t);
  }
  /// Moves the tasks, before the awaiter is awaited.
  when_all_array(when_all_array&&) noexcept = default;

  /// Throws std::logic_error when awaited twice or after a move; true (no suspension) when there is
  /// no task.
  bool await_ready() {
    check_first_await();
    if constexpr (N == 0) {
      return true;
    } else {
      if (!tasks_[0].valid()) throw std::logic_error("corio::when_all: awaited after a move");
      return false;
    }
  }
  /// Starts the first task at once by symmetric transfer and queues the others where idle workers
  /// can steal them; the last to finish resumes the awaiter.
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) {
    detail::promise_base* last = nullptr;
    for (auto& t : tasks_) detail::link_child(t, group_, last);
    return start(last, N, parent);
  }
  /// Returns every result, in order, once all the tasks ended; rethrows the first exception, in
  /// order, when some threw.
  std::array<detail::when_all_value<T>, N> await_resume() {
    settle();
    rethrow_first_of(tasks_);
    return [this]<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<detail::when_all_value<T>, N>{detail::take_when_all_value(detail::handle_of(tasks_[I]))...};
    }(std::make_index_sequence<N>{});
  }

 private:
  std::array<task<T>, N> tasks_;
};

/// The awaiter of `when_all(std::vector<task<T>>)`: its `co_await` gives a std::vector of the
/// results in order, or nothing for `void` tasks. See when_all().
template <class T>
class [[nodiscard("co_await it; the tasks run only then")]] when_all_vector : detail::when_all_base {
 public:
  static constexpr bool corio_fork = true;  ///< starts the children; their waits are waits
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::when_all;  ///< for the task dump
  using detail::when_all_base::corio_wait_object;  ///< the group, for the task dump
  /// Made by when_all(std::vector). Throws std::length_error past 2^32-1 tasks, std::logic_error
  /// for an empty task.
  explicit when_all_vector(std::vector<task<T>>&& tasks) : tasks_(std::move(tasks)) {
    if (tasks_.size() > std::numeric_limits<std::uint32_t>::max()) {
      throw std::length_error("corio::when_all: more than 2^32-1 tasks");
    }
    for (const auto& t : tasks_) detail::check_valid(t);
  }
  /// Moves the tasks, before the awaiter is awaited.
  when_all_vector(when_all_vector&&) noexcept = default;

  /// Throws std::logic_error when awaited twice or after a move; true (no suspension) when there is
  /// no task.
  bool await_ready() {
    check_first_await();
    return tasks_.empty();
  }
  /// Starts the first task at once by symmetric transfer and queues the others where idle workers
  /// can steal them; the last to finish resumes the awaiter.
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) {
    detail::promise_base* last = nullptr;
    for (auto& t : tasks_) detail::link_child(t, group_, last);
    return start(last, tasks_.size(), parent);
  }
  /// Returns the results in order (nothing for `void` tasks) once all the tasks ended; rethrows
  /// the first exception, in order, when some threw.
  auto await_resume() {
    settle();
    rethrow_first_of(tasks_);
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      std::vector<T> results;
      results.reserve(tasks_.size());
      for (auto& t : tasks_) results.push_back(detail::handle_of(t).promise().take_result());
      return results;
    }
  }

 private:
  std::vector<task<T>> tasks_;
};

/// Runs every task as an independent task of the calling worker's runtime (queued like spawn():
/// stealable by other workers, so the tasks run in parallel) and, once all of them have finished,
/// gives their results: `co_await when_all(a, b)` a std::tuple in argument order,
/// `co_await when_all(std::array<task<T>, N>)` a std::array, `co_await when_all(std::vector<task<T>>)`
/// a std::vector (nothing for `void`). `void` results in a tuple or array are std::monostate.
///
/// Fork-join as in Cilk and TooManyCooks' spawn_many (cppcoro's name): the first task starts at
/// once on the awaiting thread by symmetric transfer, the rest wait in the worker's local queue,
/// where idle workers steal them; a task that finishes on that worker runs the next one inline if
/// nobody took it (work-first, see detail::fork_group), and the last task to finish resumes the
/// awaiting task (on its own worker if it is bound, see spawn_on). No join handles, no allocation
/// (the tuple and array forms), and no atomic per task while nothing is stolen: for a fan-out of
/// short tasks this is much cheaper than spawn() and a join of each handle.
///
/// Errors: when tasks throw, every task still runs to its end and then the exception of the first
/// task (in order) that threw is rethrown; the others are dropped (for cancelling the siblings on
/// the first failure, use a task_group). Cancelling the awaiting task cancels every child; each
/// ends as its own cancellation decides, and the first exception in order is rethrown. Throws std::invalid_argument when a task
/// is empty (when_all is called), std::logic_error when awaited outside a task on a runtime or
/// awaited twice, std::runtime_error when the runtime is shutting down; no task has started then.
///
/// The tasks' frames live until the awaiter is destroyed (the end of the `co_await` expression);
/// if the runtime is shut down while the awaiting task is suspended here, destroying its frame
/// destroys the tasks too. Awaiting is thread-safe against the tasks finishing on other workers.
template <class... Ts>
when_all_tuple<Ts...> when_all(task<Ts>... tasks) {
  return when_all_tuple<Ts...>{std::move(tasks)...};
}

/// when_all over a std::array of tasks of one type: `co_await` yields a std::array of the results
/// in order (std::monostate for `void`), with no allocation. Otherwise as the variadic form above.
template <class T, std::size_t N>
when_all_array<T, N> when_all(std::array<task<T>, N>&& tasks) {
  return when_all_array<T, N>{std::move(tasks)};
}

/// when_all over a std::vector of tasks of one type (at most 2^32-1): `co_await` yields a
/// std::vector of the results in order, or nothing for `void` tasks. Otherwise as the variadic
/// form above.
template <class T>
when_all_vector<T> when_all(std::vector<task<T>>&& tasks) {
  return when_all_vector<T>{std::move(tasks)};
}

/// `co_await corio::when_all(a, b, ...)` over any awaitables, mixing kinds: tasks, join handles,
/// socket operations (`s.read_some(buf)`), `sleep_for(d)`, `signal({SIGINT})`, channel
/// operations (`ch.recv()`, `ch.send(v)`), a select, a timeout()... Gives a std::tuple of their
/// results in argument order (std::monostate for `void`), as the task form does: each argument
/// becomes a task (a task given by value is used as it is; anything else is awaited by a small
/// task made for it, one frame from the worker's frame cache), and those run as the children of a
/// when_all. Errors, cancellation and thread-safety are those of the task form; cancelling the
/// awaiting task cancels each operation in place through its stop state (a read is cancelled in
/// the reactor, a sleep's timer removed, a channel wait withdrawn, a join withdrawn: the joined
/// task runs on and its handle stays valid).
///
/// How arguments are held: a task or a movable awaitable given as an rvalue (a join_handle from
/// spawn(), std::move(h)) is moved in, so the result may be awaited later. An operation that
/// cannot be moved (socket, channel, timer and signal operations) and any lvalue are awaited in
/// place, by reference: they must outlive the co_await of the result, so write the operations in
/// the co_await expression itself (`co_await when_all(ch.recv(), s.read_some(buf))`) and keep
/// lvalues (a join_handle variable) alive until it completes. An lvalue join_handle that was
/// joined is consumed as `co_await h` consumes it; an lvalue task is run in place.
template <class... As>
  requires detail::awaitables_not_all_tasks<As...>
auto when_all(As&&... awaitables) {
  return when_all(detail::as_task(std::forward<As>(awaitables))...);
}

}  // namespace corio
