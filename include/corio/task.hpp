// corio/task.hpp - the lazy coroutine task.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "corio/detail/frame_allocator.hpp"
#include "corio/detail/stop_state.hpp"
#include "corio/detail/task_trace.hpp"
#include "corio/detail/transfer.hpp"

namespace corio {

template <class T>
class task;
template <class T>
class join_handle;

namespace detail {

class runtime_impl;
class join_handle_base;
class promise_base;

/// Bits of spawn_state::state. A spawned task's frame stays alive while any of state_running,
/// state_handle or state_linked is set; whoever clears the last of them destroys it.
inline constexpr std::uint32_t state_running = 1;   ///< the task has not finished yet
inline constexpr std::uint32_t state_handle = 2;    ///< a join_handle still refers to the frame
inline constexpr std::uint32_t state_joiner = 4;    ///< a joiner is parked in `continuation_`
inline constexpr std::uint32_t state_linked = 8;    ///< the task is in its home worker's registry
inline constexpr std::uint32_t state_observed = 16; ///< a join took the result (or exception)
/// The task's stop state is in its spawner's children list (stop_state.hpp); only the spawner
/// clears this bit, so the list never points to a freed frame.
inline constexpr std::uint32_t state_parented = 32;
/// A cancelled join: set by the joiner's canceller (see join_park); whoever sees it first in a
/// read-modify-write of the state decides that the finishing task does not resume the joiner.
inline constexpr std::uint32_t state_join_cancel = 64;
/// The joiner armed a canceller for its join, so the canceller may write the state while the
/// joiner is parked: the finishing task releases the state with a read-modify-write, not a plain
/// store, and the joiner settles the join out of line. Set with the joiner bit, or (a lazily
/// parked join, see arm_lazy_join) before the canceller is armed; cleared when a cancelled join
/// is withdrawn.
inline constexpr std::uint32_t state_join_armed = 128;
/// The bits that keep a spawned frame alive: whoever clears the last of them destroys it.
inline constexpr std::uint32_t state_alive = 1 | 2 | 8 | 32;

/// promise_base::bound_ of a task that may run on any worker.
inline constexpr std::uint32_t unbound_worker = 0xffffffffu;

/// The children of one `when_all` in flight: how many have not been counted off yet, and the task
/// awaiting them. Lives in the awaiting task's frame (in the when_all awaiter).
///
/// Work-first, as in Cilk: the children wait in the forking worker's private queue (where thieves
/// can take them once published), the first runs at once, and whenever an *inline* child finishes
/// on the forking worker while the next child is still on top of that queue, it pops that child
/// and runs it inline too: no atomic, no trip through the worker loop. The run of inline children
/// ends when that check fails (the next child was stolen or run by a worker loop, something was
/// queued on top of it, or the worker's maintenance is due); its last child then subtracts the
/// whole run from `remaining` in one step. A child run by the scheduler instead subtracts one.
/// Whoever takes `remaining` to zero resumes the parent (acquire-release: the parent then sees
/// every child's result). The fields but `remaining` are written by the forking worker and by the
/// run of inline children only, which is sequential.
struct fork_group {
  std::atomic<std::uint32_t> remaining{0};
  std::uint32_t parent_bound = unbound_worker;  ///< the worker the parent must run on, if any
  std::coroutine_handle<> parent{};
  void* owner = nullptr;            ///< the forking worker (its private queue holds the children)
  promise_base* next = nullptr;     ///< the next child the run of inline children may take
  std::uint32_t inline_done = 0;    ///< children of the run of inline children finished so far
  /// The parent's stop state and the canceller that forwards its stop to the children, armed
  /// lazily: only once a child (or a task it awaits) parks in a real wait (see arm_lazy_join).
  stop_state* parent_stop = nullptr;
  stop_canceller* forwarder = nullptr;
  /// The last child, for the task dump (the others through spawn_.prev): stored with release once
  /// the children are linked, before any of them runs; null before (when_all_base's constructors
  /// store it atomically: a dump may still read the word of a when_all the same frame awaited
  /// before, in the same place).
  deferred_atomic<promise_base*> last_child;
};

/// stop_state::lazy_join_ of a when_all child: not a join, but "arm the group's forwarder on the
/// parent's stop state when this child first parks" (see arm_lazy_join).
CORIO_API inline stop_canceller* group_marker() noexcept {
  static constinit stop_canceller marker{};
  return &marker;
}

/// Awaiters that only start work rather than wait for something (awaiting a task, a when_all)
/// say so with `static constexpr bool corio_fork = true;`: they do not count as the first time a
/// task parks (see stop_aware), the waits inside the work they start do.
template <class A>
concept fork_awaiter = requires { requires std::remove_cvref_t<A>::corio_fork; };
/// Awaiters that make the lazy-join check themselves, where they already read the task's stop
/// state (a join: join_park), say so with `static constexpr bool corio_checks_lazy_join = true;`.
template <class A>
concept lazy_join_checking_awaiter = requires { requires std::remove_cvref_t<A>::corio_checks_lazy_join; };
/// A coroutine handle that its constructor leaves unwritten (spawn_state::self is written by
/// whatever starts the task); converts to and from std::coroutine_handle<>.
class deferred_handle {
 public:
  deferred_handle() noexcept {}
  deferred_handle& operator=(std::coroutine_handle<> h) noexcept {
    address_ = h.address();
    return *this;
  }
  operator std::coroutine_handle<>() const noexcept { return std::coroutine_handle<>::from_address(address_); }
  void destroy() const { std::coroutine_handle<>::from_address(address_).destroy(); }

 private:
  void* address_;
};

/// What a task needs once it is spawned as a root task of a runtime. It lives in the frame
/// itself (no allocation per spawn), like the task header of Tokio's task cell. Only `runtime` is
/// set when the frame is created (null: not spawned); spawn_root() writes the rest, so that tasks
/// which are only ever awaited pay nothing for it.
struct spawn_state {
  runtime_impl* runtime = nullptr;           ///< non-null once spawned
  union {
    /// A when_all child: its group (then only `home`, `prev`, `next` and `self` below are used).
    /// Null for spawn(), until the task finishes.
    fork_group* group;
    /// A spawned task that finished away from its home worker: its link in the home's
    /// remote-finished stack. Shares the word with `group`, which a spawned task's finish reads
    /// (as null) before it writes this.
    promise_base* remote_next;
  };
  deferred_atomic<std::uint32_t> state;      ///< state_* bits below
  std::uint32_t home;                        ///< the worker whose registry holds the task (a
                                             ///< when_all child: 1 when it runs inline, else 0)
  join_handle_base* owner;                   ///< the join_handle referring to this frame, if any
  promise_base* prev;                        ///< registry links (owned by the home worker); they
  promise_base* next;                        ///< also link a when_all's children, in order
  deferred_handle self;                      ///< the frame, for destroy() from the registry
  stop_state stop;                           ///< the task's stop state (stop_state.hpp)
  // For the task dump (runtime::dump_tasks) and the stall report:
  /// The task's number, unique in the process, from 1, given at spawn (worker::next_task_id); a
  /// when_all child's is 0 until a dump or stall report shows it (task_id(), lib/task_dump.cpp).
  deferred_atomic<std::uint64_t> id;
  std::uint64_t parent_id; ///< the number of the task that spawned it, 0 for a spawn from outside a task
  const char* name;        ///< the name given at spawn, or null; static storage (see corio::spawn)
  std::uint32_t spawned_ms;///< coarse_ms at the spawn (task_trace.hpp)
};

/// Runs when a spawned task reaches its final suspend point (a when_all child: see fork_group):
/// unregisters it and returns its joiner
/// to resume; when there is none (and, if nobody holds a join_handle, after reporting an
/// unobserved exception to the runtime's handler and destroying the frame) it returns the next
/// local task of the worker to resume instead (see next_after_park in transfer.hpp), or null to return to the
/// worker loop. Defined in lib/spawn.cpp.
CORIO_API std::coroutine_handle<> finish_spawned(promise_base& p) noexcept;

/// State shared by every promise type: the frame allocator, the continuation, the exception, and
/// the spawn state. Not for direct use.
class promise_base {
 public:
  /// Atomic stores (plain moves on x86-64 and AArch64): the stall watchdog may read them from
  /// another thread without a happens-before edge to the frame's creation.
  promise_base() noexcept {
    trace_word_.store(task_trace_tag, std::memory_order_relaxed);
    wait_.store(nullptr, std::memory_order_relaxed);
  }
  promise_base(const promise_base&) = delete;
  promise_base& operator=(const promise_base&) = delete;
  /// The task's tag and, while runtime_options::timing_histograms is on, when it last became ready
  /// to run: the low 32 bits are task_trace_tag, so that the stall report and the schedule-latency
  /// histogram tell a corio task's frame from another coroutine's (the watchdog may read it from
  /// another thread); the high 32 bits are 0, or the steady time in units of 64 ns at which the
  /// task was queued (worker.cpp, stamp_ready), cleared when a worker starts its poll. The first
  /// member, so that it lies 16 bytes into every coroutine frame (after the resume and destroy
  /// pointers on GCC and Clang), where any frame has 8 bytes to read.
  deferred_atomic<std::uint64_t> trace_word_;
  /// True when this promise carries task_trace_tag (see trace_word_); any thread.
  bool has_trace_tag() const noexcept {
    return static_cast<std::uint32_t>(trace_word_.load(std::memory_order_relaxed)) == task_trace_tag;
  }

  static void* operator new(std::size_t bytes) { return frame_allocate(bytes); }
  /// While a task dump reads frames, frees are deferred until it ends (docs/internals.md, "The task
  /// dump"): one acquire load per free otherwise.
  static void operator delete(void* frame, std::size_t bytes) noexcept {
    // Acquire (a plain load on x86-64): a free that finds the flag lowered comes after the reads of
    // the dump that lowered it, so the frame's next life cannot race with them.
    if (frame_free_deferred.load(std::memory_order_acquire) != 0) [[unlikely]] {
      defer_frame_free(frame, bytes);
      return;
    }
    frame_deallocate(frame, bytes);
  }

  /// Tasks are lazy: nothing runs until the task is awaited or spawned. When the task starts, the
  /// thread's current stop state becomes the task's (see current_stop()).
  struct initial_awaiter {
    promise_base* promise;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept { set_current_stop(promise->stop_); }
  };
  initial_awaiter initial_suspend() noexcept { return {this}; }

  /// Every co_await in a task goes through stop_aware (below): the awaiter is unchanged, but
  /// resuming sets the thread's current stop state back to this task's, and a task suspending
  /// with a join parked on it arms the joiner's canceller first (see join_park).
  /// `where` is the source location of the co_await (the compiler evaluates the default argument
  /// at the call it makes for the co_await expression), kept for the task dump.
  template <class A>
  auto await_transform(A&& awaitable, std::source_location where = std::source_location::current());

  /// Records what this coroutine suspends on (stop_aware, before the awaiter's own await_suspend
  /// publishes the task; the object word and, in await_transform, the location are stored before):
  /// relaxed stores, then the wait_info with release, so that a dump that reads the wait_info
  /// (acquire) reads a location and an object written with it.
  void note_suspend(const wait_info* info) noexcept {
    wait_since_ms_.store(coarse_ms.load(std::memory_order_relaxed), std::memory_order_relaxed);
    wait_.store(info, std::memory_order_release);
  }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      promise_base& p = self.promise();
      if (p.spawn_.runtime != nullptr) {
        // A spawned task: wake its joiner, or free the frame when nobody holds a handle.
        std::coroutine_handle<> joiner = finish_spawned(p);
        return joiner ? transfer(joiner) : std::noop_coroutine();
      }
      // The awaiter resumes by symmetric transfer (or the trampoline, see transfer.hpp).
      return transfer(p.continuation_);
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  void rethrow_if_exception() const {
    if (exception_) std::rethrow_exception(exception_);
  }

  std::coroutine_handle<> continuation_{};  ///< the awaiting coroutine, or the joiner
  std::exception_ptr exception_{};
  spawn_state spawn_;  // default-initialized: see spawn_state
  // The three fields below are left unset when the frame is created: whatever starts the
  // coroutine writes them first (task::operation, spawn_root, when_all), or, for joiner_bound_, the
  // join that parks on it.
  std::uint32_t bound_;         ///< the worker this task must run on (spawn_on), or unbound_worker
  std::uint32_t joiner_bound_;  ///< the worker the joiner must run on, or unbound_worker
  /// The stop state this coroutine runs under: its own spawn_.stop when spawned, its awaiter's
  /// when awaited, a scope's inside timeout(); null when awaited by a foreign coroutine.
  stop_state* stop_;

  // The task dump's record of this coroutine (task_trace.hpp). trace_word_ (above) and wait_ are
  // written when the frame is created (two words); the others only when it first suspends, before
  // wait_.
  deferred_atomic<const wait_info*> wait_;          ///< what it waits for; null: never suspended,
                                                    ///< or resumed from a task it awaited
  deferred_atomic<std::uintptr_t> where_;           ///< location_word() of its co_await
  deferred_atomic<std::uintptr_t> wait_object_;     ///< the awaiter's object word (wait_kind)
  deferred_atomic<std::uint32_t> wait_since_ms_;    ///< coarse_ms when it suspended

  template <class A>
  static decltype(auto) get_awaiter(A&& a) {
    if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
      return std::forward<A>(a).operator co_await();
    } else if constexpr (requires { operator co_await(std::forward<A>(a)); }) {
      return operator co_await(std::forward<A>(a));
    } else {
      return std::forward<A>(a);
    }
  }
};

/// The task running under `s` waits for real (anything but a fork, or a join that parks with the
/// plain store) with a lazily armed canceller pending: arms the canceller of the join parked on
/// it with a plain store (see join_park), or, for a when_all child, the forwarders of its group
/// and of every enclosing group up to a spawned task, and then, transitively, whatever is pending
/// on the joiners above (so that a fork-join tree or a chain of spawn+join levels that never waits
/// arms nothing). Never blocks; called on the thread running the task. Defined in lib/spawn.cpp.
CORIO_API void arm_lazy_join(stop_state& s) noexcept;

/// The wrapper await_transform puts around every awaiter in a task (see promise_base).
/// `Awaiter` is a reference to an awaiter that lives in the co_await expression, or the awaiter
/// itself when operator co_await made one. An aggregate, so that non-movable awaiters are built
/// in place.
template <class Awaiter>
struct stop_aware {
  Awaiter inner;
  promise_base* promise;

  /// Awaiting a task or a when_all: the awaited frames are freed once the results are taken, so
  /// the record that leads the dump to them is cleared on resumption.
  static constexpr bool clears_wait =
      wait_kind_of<Awaiter>() == wait_kind::child || wait_kind_of<Awaiter>() == wait_kind::when_all;

  /// Forced inline: an awaiter's fast path (a channel's ring) belongs in the task's body, and
  /// GCC otherwise outlines this forwarder once the inner one grows.
  [[gnu::always_inline]] bool await_ready() noexcept(noexcept(inner.await_ready())) { return inner.await_ready(); }
  template <class Promise>
  decltype(auto) await_suspend(std::coroutine_handle<Promise> h) noexcept(noexcept(inner.await_suspend(h))) {
    if constexpr (!fork_awaiter<Awaiter> && !lazy_join_checking_awaiter<Awaiter>) {
      if (stop_state* s = promise->stop_; s != nullptr && s->lazy_join_ != nullptr) [[unlikely]] arm_lazy_join(*s);
    }
    if constexpr (has_wait_object<Awaiter>) {
      promise->wait_object_.store(inner.corio_wait_object(), std::memory_order_relaxed);
    }
    promise->note_suspend(&wait_info_of<Awaiter>);
    return inner.await_suspend(h);
  }
  /// (An awaiter that changes the promise's stop state while suspended, timeout's scope, sets
  /// the thread's current one itself when it restores it.)
  decltype(auto) await_resume() noexcept(noexcept(inner.await_resume())) {
    set_current_stop(promise->stop_);
    // The awaited frames are freed once the results are taken: the dump must not reach them.
    if constexpr (clears_wait) promise->wait_.store(nullptr, std::memory_order_relaxed);
    return inner.await_resume();
  }
};

template <class A>
auto promise_base::await_transform(A&& awaitable, std::source_location where) {
  // Before the awaiter is built: its construction may start work (a child task is created
  // in the co_await expression before this call; nothing here runs it).
  where_.store(location_word(where), std::memory_order_relaxed);
  return stop_aware<decltype(get_awaiter(std::forward<A>(awaitable)))>{get_awaiter(std::forward<A>(awaitable)), this};
}

/// The stop state the suspending coroutine `h` runs under, or null for a foreign coroutine.
template <class Promise>
stop_state* stop_of(std::coroutine_handle<Promise> h) noexcept {
  if constexpr (std::is_base_of_v<promise_base, Promise>) {
    return h.promise().stop_;
  } else {
    (void)h;
    return nullptr;
  }
}

/// The worker the suspending coroutine `h` is bound to (spawn_on), or unbound_worker; coroutines
/// that are not corio tasks are unbound.
template <class Promise>
std::uint32_t binding_of(std::coroutine_handle<Promise> h) noexcept {
  if constexpr (std::is_base_of_v<promise_base, Promise>) {
    return h.promise().bound_;
  } else {
    (void)h;
    return unbound_worker;
  }
}

template <class T>
class promise final : public promise_base {
 public:
  task<T> get_return_object() noexcept;
  template <class U = T>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(value));
  }
  /// Moves the result out, or rethrows the task's exception.
  T take_result() {
    rethrow_if_exception();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_{};
};

template <class T>
class promise<T&> final : public promise_base {
 public:
  task<T&> get_return_object() noexcept;
  void return_value(T& value) noexcept { value_ = std::addressof(value); }
  T& take_result() {
    rethrow_if_exception();
    return *value_;
  }

 private:
  T* value_ = nullptr;
};

template <>
class promise<void> final : public promise_base {
 public:
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take_result() { rethrow_if_exception(); }
};

}  // namespace detail

/// A lazy, move-only coroutine producing a `T` (a value, a reference, or `void`).
///
/// Nothing runs until the task is either `co_await`ed by another coroutine, which then resumes by
/// symmetric transfer when it finishes, or handed to `corio::spawn` / `runtime::spawn` to run as
/// an independent task on the runtime's workers. An exception escaping the coroutine body is
/// stored and rethrown in the awaiter (or the joiner of the spawned task). Destroying a task that
/// never started destroys its frame and the arguments it holds. Frames come from the per-thread
/// recycling allocator (detail/frame_allocator.hpp).
///
/// Not thread-safe: a task object is owned by one coroutine or thread at a time. Awaiting an empty
/// (moved-from) task is undefined; `valid()` tells. Coroutine functions should take their
/// parameters by value: a reference parameter dangles once the caller's argument dies before the
/// lazy task runs (C++ Core Guidelines CP.51/CP.53).
///
/// Shape from cppcoro's `task<T>` (Lewis Baker) and P1056.
template <class T = void>
class [[nodiscard("co_await the task or spawn it; otherwise it never runs")]] task {
 public:
  /// The coroutine promise the compiler uses for a coroutine returning task<T> (corio's own).
  using promise_type = detail::promise<T>;
  /// The result type: what `co_await task` yields.
  using value_type = T;

  /// An empty task (not valid()).
  task() noexcept = default;
  /// Takes ownership of the coroutine `h` (what the promise's get_return_object does).
  explicit task(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
  /// Takes over `other`'s coroutine; `other` is left empty.
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  /// Destroys the coroutine held (a task never started, with its arguments), then takes over
  /// `other`'s.
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (handle_) handle_.destroy();
  }

  /// True when the task holds a coroutine (it was not moved from and not released).
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }

  /// The awaiter returned by `co_await task`: starts the task by symmetric transfer and resumes
  /// the awaiting coroutine with the task's result, or rethrows its exception.
  class operation {
   public:
    static constexpr bool corio_fork = true;  ///< runs the task; the task's own waits are waits
    static constexpr detail::wait_kind corio_wait = detail::wait_kind::child;  ///< the dump follows it
    /// Made by `co_await task`.
    explicit operation(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
    /// The awaited task's promise (the next frame of the async stack).
    std::uintptr_t corio_wait_object() const noexcept {
      return reinterpret_cast<std::uintptr_t>(static_cast<detail::promise_base*>(&handle_.promise()));
    }
    /// Always false: the task starts only when awaited.
    bool await_ready() const noexcept { return false; }
    /// Starts the task by symmetric transfer, under the awaiting task's stop state and binding.
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
      handle_.promise().continuation_ = awaiting;
      handle_.promise().bound_ = detail::binding_of(awaiting);  // a bound task's children stay bound
      handle_.promise().stop_ = detail::stop_of(awaiting);       // and run under its stop state
      return detail::transfer(handle_);
    }
    /// Returns the task's result, or rethrows the exception it ended with.
    T await_resume() { return handle_.promise().take_result(); }

   private:
    std::coroutine_handle<promise_type> handle_;
  };

  /// `co_await task`: runs the task to its end inside the awaiting one and yields its result
  /// (rethrows its exception). A task runs once: awaiting it twice is undefined.
  operation operator co_await() & noexcept { return operation{handle_}; }
  /// As the lvalue form, for `co_await f()`.
  operation operator co_await() && noexcept { return operation{handle_}; }

  /// The coroutine, still owned by the task (null when empty); used by when_all. Not for general
  /// use: resuming or destroying it behind the task's back is undefined.
  std::coroutine_handle<promise_type> handle() const noexcept { return handle_; }

  /// Gives up ownership of the coroutine frame; used by spawn. Not for general use.
  std::coroutine_handle<promise_type> release() noexcept { return std::exchange(handle_, {}); }

 private:
  std::coroutine_handle<promise_type> handle_{};
};

namespace detail {
template <class T>
task<T> promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<promise<T>>::from_promise(*this)};
}
template <class T>
task<T&> promise<T&>::get_return_object() noexcept {
  return task<T&>{std::coroutine_handle<promise<T&>>::from_promise(*this)};
}
inline task<void> promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<promise<void>>::from_promise(*this)};
}
}  // namespace detail

}  // namespace corio
