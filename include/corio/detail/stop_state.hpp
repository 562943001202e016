// corio/detail/stop_state.hpp - the stop state embedded in every task header.
//
// Every spawned task (and every when_all child) carries one stop_state in its spawn_state: no
// allocation at spawn, unlike libstdc++'s std::stop_source. A coroutine awaited by a task runs
// under its awaiter's stop state (promise_base::stop_), so "the task" means the whole chain of
// awaited coroutines of one spawned root.
//
// The state is one atomic word: 0, or the address of the canceller armed by the operation the task
// is suspended in, plus two low bits: `requested` (sticky, set once) and `busy` (request_stop is
// running that canceller). An operation that parks arms its canceller (one compare-and-swap that
// fails once stop was requested: the operation then does not wait) and disarms it when it is
// resumed (one compare-and-swap; when request_stop took the canceller, disarm waits until its call
// returned, so the canceller's memory, in the suspended frame, outlives every use). The canceller
// ends the wait exactly as a completion would (the same claim word decides who wins) and resumes
// the task on the worker where it parked, so that a cancel arriving while the task is still in its
// await_suspend cannot resume it before that returns. This is std::stop_callback's protocol
// (P0660) reduced to one callback at a time, which is all a suspended task needs.
//
// Children: spawn links the new task's state under the spawning task's (current_stop()), in an
// intrusive list that only the thread running the parent modifies, with plain stores. request_stop
// from another thread never walks it: the parent pushes the stop to its children itself once it
// sees its own stop (observe(): the operation it was suspended in was cancelled, or it asked
// stop_requested(), or it finishes). A child in the list is kept alive by spawn_state's
// state_parented bit, cleared only by the parent.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <cstdint>
#include <utility>

#include "corio/detail/assert.hpp"

namespace corio::detail {

class promise_base;

class stop_state;
/// The stop state of the task running on this thread (defined at the end of this file).
#if CORIO_TLS_ASM
inline stop_state* current_stop() noexcept;
#else
CORIO_API stop_state* current_stop() noexcept;
#endif

/// An atomic object that its constructor leaves unwritten: every access goes through
/// std::atomic_ref, so a frame's creation writes nothing for it (a std::atomic member would be
/// zeroed in every frame, though only spawn_root() and when_all give it a value: the spawn state
/// and the stop state in it). Same member functions and memory orders as std::atomic, plus init(),
/// a plain store for before the object is shared; thread-safe as std::atomic once written.
template <class T>
class deferred_atomic {
 public:
  deferred_atomic() noexcept {}
  deferred_atomic(const deferred_atomic&) = delete;
  deferred_atomic& operator=(const deferred_atomic&) = delete;
  T load(std::memory_order o = std::memory_order_seq_cst) const noexcept { return ref().load(o); }
  /// Gives the object its value before any other thread can see it: a plain store, which the
  /// compiler may merge with its neighbours' (a spawn's reset writes several in a few stores).
  void init(T v) noexcept { value_ = v; }
  void store(T v, std::memory_order o = std::memory_order_seq_cst) noexcept { ref().store(v, o); }
  T exchange(T v, std::memory_order o = std::memory_order_seq_cst) noexcept { return ref().exchange(v, o); }
  T fetch_add(T v, std::memory_order o = std::memory_order_seq_cst) noexcept { return ref().fetch_add(v, o); }
  T fetch_sub(T v, std::memory_order o = std::memory_order_seq_cst) noexcept { return ref().fetch_sub(v, o); }
  T fetch_or(T v, std::memory_order o = std::memory_order_seq_cst) noexcept { return ref().fetch_or(v, o); }
  T fetch_and(T v, std::memory_order o = std::memory_order_seq_cst) noexcept { return ref().fetch_and(v, o); }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order s, std::memory_order f) noexcept {
    return ref().compare_exchange_weak(expected, desired, s, f);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order s, std::memory_order f) noexcept {
    return ref().compare_exchange_strong(expected, desired, s, f);
  }

 private:
  std::atomic_ref<T> ref() const noexcept { return std::atomic_ref<T>{value_}; }
  alignas(std::atomic_ref<T>::required_alignment) mutable T value_;
};

/// What request_stop() calls for the operation a task is suspended in. Lives in that operation's
/// awaiter. `cancel` runs on the requesting thread, at most once, while the operation is parked or
/// still parking; it must end the wait only if it wins the operation's claim, and never block.
struct stop_canceller {
  /// Set by the operation before it arms the canceller (left unset until then, so that building an
  /// awaiter stores nothing for it).
  void (*cancel)(stop_canceller& self) noexcept;
};

/// A task's stop state (see the file comment). Thread-safe: request_stop() and stop_requested()
/// from any thread; arm()/disarm() by the task's own operations; the children list by the thread
/// running the task only.
class CORIO_API stop_state {
 public:
  static constexpr std::uintptr_t requested_bit = 1;
  static constexpr std::uintptr_t busy_bit = 2;

  /// Leaves the plain fields unset: reset() writes them when a task is spawned, so that tasks
  /// which are only ever awaited pay nothing for their header's stop state.
  stop_state() noexcept {}
  stop_state(const stop_state&) = delete;
  stop_state& operator=(const stop_state&) = delete;

  /// Resets a state for reuse by a new task (spawn, when_all; `task` null for a scope's state),
  /// with its lazy_join_ and its parent (whose list the caller then links it into with
  /// adopt_child). Not thread-safe.
  void reset(promise_base* task, stop_canceller* lazy_join = nullptr, stop_state* parent = nullptr) noexcept {
    // Plain stores, which the compiler merges: the state is reset before the task is published,
    // so no other thread reads it yet.
    word_.init(0);
    lazy_join_ = lazy_join;
    first_child_ = pending_child_ = nullptr;  // the sibling links are written by insert()
    detached_.init(false);
    propagated_ = false;
    parent_.init(parent);
    task_ = task;
  }

  /// True once stop was requested (sticky). Acquire: what the requester did before is visible.
  [[nodiscard]] bool stop_requested() const noexcept {
    return (word_.load(std::memory_order_acquire) & requested_bit) != 0;
  }

  /// Requests stop: sets the sticky bit and, if an operation is armed, runs its canceller on this
  /// thread. Returns true when this call made the request (false: it was made before). Does not
  /// reach the children (see observe()). Thread-safe; never blocks beyond the canceller's call.
  bool request_stop() noexcept;

  /// Arms `c` for the operation about to suspend. False when stop was already requested: the
  /// operation must then not wait (it throws operation_cancelled). One CAS. A canceller still
  /// armed is replaced: its operation has completed, since the task is running, but its awaiter
  /// may not have disarmed yet (a compiler may resume two co_awaits of one expression, `co_await a
  /// + co_await b`, before it calls either await_resume).
  [[nodiscard]] bool arm(stop_canceller& c) noexcept {
    std::uintptr_t w = word_.load(std::memory_order_relaxed);
    do {
      if ((w & (requested_bit | busy_bit)) != 0) return false;
    } while (!word_.compare_exchange_weak(w, reinterpret_cast<std::uintptr_t>(&c), std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
    return true;
  }

  /// True while `c` is the armed canceller (a relaxed snapshot).
  [[nodiscard]] bool armed_with(const stop_canceller& c) const noexcept {
    return word_.load(std::memory_order_relaxed) == reinterpret_cast<std::uintptr_t>(&c);
  }

  /// Disarms `c` after its operation ended (or never armed it: then a load). When request_stop
  /// took `c`, waits until that call returned. After disarm, nothing touches `c`.
  void disarm(stop_canceller& c) noexcept {
    std::uintptr_t w = word_.load(std::memory_order_acquire);
    if (w == reinterpret_cast<std::uintptr_t>(&c) &&
        word_.compare_exchange_strong(w, 0, std::memory_order_acq_rel, std::memory_order_acquire)) {
      return;
    }
    if ((w & busy_bit) != 0) wait_not_busy();
  }

  /// Called by the task running under this state when it sees its stop: pushes the stop to every
  /// child not detached, once. Thread running the task only.
  void observe() noexcept {
    if (!propagated_ && has_children()) propagate();
    propagated_ = true;
  }

  // --- children (thread running the owner only) -------------------------------------------
  /// Links `child` (a new task's state) under this one. The newest child waits in a one-entry
  /// slot and joins the list only when the next one comes (or the list is needed): a spawn that is
  /// joined before the next spawn, the usual case, never touches the list.
  void link_child(stop_state& child) noexcept {
    child.parent_.store(this, std::memory_order_relaxed);
    adopt_child(child);
  }
  /// link_child() for a child whose parent() is this state already (reset with it).
  void adopt_child(stop_state& child) noexcept {
    CORIO_ASSERT(current_stop() == this, "stop-children-owner");
    if (pending_child_ != nullptr) insert(*pending_child_);
    pending_child_ = &child;
    if (propagated_) [[unlikely]] stop_late_child(child);  // spawned after this task saw its stop
  }
  /// Unlinks `child` from this state's list (the caller then clears its parented bit).
  void unlink_child(stop_state& child) noexcept {
    child.parent_.store(nullptr, std::memory_order_relaxed);
    withdraw_child(child);
  }
  /// unlink_child() that leaves the child's parent() in place: a joiner that spawned the child
  /// takes it out while it waits for it, and links it back if the wait is cancelled (join_park).
  void withdraw_child(stop_state& child) noexcept {
    if (pending_child_ == &child) {
      pending_child_ = nullptr;
      return;
    }
    unlink_listed(child);
  }
  /// Moves the newest child into the list, for whoever walks it.
  void flush() noexcept {
    if (pending_child_ != nullptr) insert(*std::exchange(pending_child_, nullptr));
  }
  /// Moves every child of this state to `to` (a timeout's scope ends: its children stay linked
  /// to the task).
  void splice_children_into(stop_state& to) noexcept;
  /// Unlinks every child (the owner finishes): each runs on without a parent; a child that
  /// finished and has no handle is destroyed. Defined in lib/stop_state.cpp.
  void release_children() noexcept;

  /// The state this one is linked under (relaxed: a join_handle holder compares it with its own
  /// state while the parent may unlink it; only the parent's own thread acts on a match).
  [[nodiscard]] stop_state* parent() const noexcept { return parent_.load(std::memory_order_relaxed); }
  [[nodiscard]] bool has_children() const noexcept { return first_child_ != nullptr || pending_child_ != nullptr; }
  /// The children list (after flush()), for the runtime's shutdown (no task runs then).
  [[nodiscard]] stop_state* first_child() const noexcept { return first_child_; }
  [[nodiscard]] stop_state* next_sibling() const noexcept { return next_sibling_; }
  /// Set by a join_handle holder that is not the parent: the parent's stop no longer reaches it.
  void set_detached() noexcept { detached_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] bool detached() const noexcept { return detached_.load(std::memory_order_relaxed); }
 private:
  void unlink_listed(stop_state& child) noexcept {
    if (child.prev_sibling_ != nullptr) child.prev_sibling_->next_sibling_ = child.next_sibling_;
    else first_child_ = child.next_sibling_;
    if (child.next_sibling_ != nullptr) child.next_sibling_->prev_sibling_ = child.prev_sibling_;
    child.prev_sibling_ = child.next_sibling_ = nullptr;
  }
  void insert(stop_state& child) noexcept {
    child.prev_sibling_ = nullptr;
    child.next_sibling_ = first_child_;
    if (first_child_ != nullptr) first_child_->prev_sibling_ = &child;
    first_child_ = &child;
  }
  void propagate() noexcept;      // lib/stop_state.cpp
  /// child.request_stop(), out of line so that a spawn's fast path makes no call.
  [[gnu::noinline]] static void stop_late_child(stop_state& child) noexcept;  // lib/stop_state.cpp
  void wait_not_busy() noexcept;  // lib/stop_state.cpp

  // deferred_atomic, not std::atomic: a std::atomic member would be zeroed whenever a frame is
  // created, and most frames belong to tasks that are only ever awaited. The fields reset()
  // writes come first, the zeroed ones together, so that a spawn writes them in a few wide stores.
  deferred_atomic<std::uintptr_t> word_;

 public:
  /// The canceller left pending on this task: a join parked on it with a plain store (see
  /// join_park), or group_marker() for a when_all child; armed when the task, or a task it joins
  /// the same way, waits for real (arm_lazy_join). Written by the thread running the task, and
  /// taken with an exchange by a waiting descendant while the task is parked.
  stop_canceller* lazy_join_;

 private:
  stop_state* first_child_;
  stop_state* pending_child_;  ///< the newest child, not in the list yet
  deferred_atomic<bool> detached_;
  bool propagated_;
  deferred_atomic<stop_state*> parent_;

 public:
  /// The task whose spawn_state holds this state; null for a scope's state (timeout).
  promise_base* task_;

 private:
  stop_state* prev_sibling_;
  stop_state* next_sibling_;
};

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
extern CORIO_API thread_local constinit stop_state* tls_current_stop __asm__("corio_tls_current_stop");
#endif
#if CORIO_TLS_ASM
/// The stop state of the task running on this thread (null off tasks). Read through an asm
/// initial-exec sequence so that a coroutine resumed on another thread never reuses a cached
/// thread-local address (llvm #47179, as for the frame cache).
inline stop_state* current_stop() noexcept {
  stop_state* s;
  __asm__ volatile(
      "movq corio_tls_current_stop@gottpoff(%%rip), %0\n\t"
      "movq %%fs:(%0), %0"
      : "=r"(s));
  return s;
}
/// (Only these two functions touch the thread-local, always through volatile asm, which the
/// compiler keeps in program order.)
inline void set_current_stop(stop_state* s) noexcept {
  std::uintptr_t offset;
  __asm__ volatile(
      "movq corio_tls_current_stop@gottpoff(%%rip), %0\n\t"
      "movq %1, %%fs:(%0)"
      : "=&r"(offset)
      : "r"(s));
}
#else
CORIO_API stop_state* current_stop() noexcept;            // lib/stop_state.cpp, out of line (llvm #47179)
CORIO_API void set_current_stop(stop_state* s) noexcept;  // lib/stop_state.cpp
#endif

}  // namespace corio::detail
