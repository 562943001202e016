// corio/detail/park.hpp - parking a task on a wait queue and waking it: what channels, select and
// the sync primitives share.
//
// A task that must wait (a receive on an empty channel, a select, a contended mutex) puts one
// wait_node per thing it waits on into that thing's FIFO wait_list, under that thing's spin_lock,
// and suspends. All its nodes point to one park_state, whose `claim` word is set exactly once, by
// one atomic step, by whoever ends the wait: a peer (a sender, a receiver, an unlock, a close:
// always under the lock of the list the node is on), the task's timeout timer (on the worker whose
// wheel holds it), or cancellation (request_stop on the task's stop state: under that lock for a
// single wait, by compare-and-swap otherwise; it then resumes the task on the worker where it
// parked, which cannot run it before its await_suspend returned). Whoever wins the claim does the operation's effect
// (moves the value, hands over the lock) and then wakes the task with wake_parked(); everyone who
// loses leaves the task alone. This is Go's sudog and `selectDone` (runtime/chan.go, select.go).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <coroutine>
#include <cstdint>

#include "corio/detail/assert.hpp"
#include "corio/detail/stop_state.hpp"
#include "corio/detail/timer_entry.hpp"
#include "corio/task.hpp"

namespace corio::detail {

class runtime_impl;

/// How a wake reaches a runtime from any thread: a small object the runtime takes from a pool when
/// it starts and gives back, closed, when it ends; never freed, so that a thread still holding a
/// wake_ticket for a task of a runtime that is shutting down or gone finds out safely (the ticket's
/// generation no longer matches, or the gate is closed) instead of touching freed memory. Defined
/// in lib/runtime_impl.hpp.
struct runtime_gate;

/// A test-and-test-and-set spin lock for critical sections of a few dozen instructions (channel
/// and sync-primitive state). Spins with a pause instruction, and after 64 rounds yields the
/// thread, so that a holder preempted on an oversubscribed machine gets to run. Not recursive.
/// Thread-safe.
class CORIO_API spin_lock {
 public:
  void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]] return;
    lock_slow();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }
  /// True while some thread holds the lock (a relaxed snapshot, for CORIO_ASSERT checks).
  [[nodiscard]] bool held() const noexcept { return locked_.load(std::memory_order_relaxed); }

 private:
  void lock_slow() noexcept;  // lib/sync.cpp
  std::atomic<bool> locked_{false};
};

/// One round of waiting for another thread's next step (a value being written into a slot a
/// moment ago claimed): a pause instruction for the first 64 rounds, then yielding the thread, as
/// spin_lock does. `spins` counts the rounds (start it at 0). Thread-safe.
CORIO_API void spin_wait(unsigned& spins) noexcept;

/// Locks a spin_lock for a scope.
class spin_guard {
 public:
  explicit spin_guard(spin_lock& l) noexcept : lock_(l) { lock_.lock(); }
  spin_guard(const spin_guard&) = delete;
  spin_guard& operator=(const spin_guard&) = delete;
  ~spin_guard() { lock_.unlock(); }

 private:
  spin_lock& lock_;
};

/// Tag for the constructors of park_state and wait_node that leave most fields unset.
struct uninitialized_t {
  explicit uninitialized_t() = default;
};
inline constexpr uninitialized_t uninitialized{};

/// The one-shot state of a parked operation (see the file comment). Lives in the parked task's
/// frame (in the awaiter). It is also the operation's canceller (stop_state.hpp).
struct park_state : stop_canceller {
  static constexpr std::uint32_t waiting = 0;
  static constexpr std::uint32_t timed_out = 0xffff'fffeu;
  static constexpr std::uint32_t cancelled = 0xffff'fffdu;  ///< the task's stop ended the wait

  /// Every field set: waiting, solo, nobody to resume yet.
  park_state() noexcept
      : solo(true), gate(nullptr), generation(0), wake_on(unbound_worker), park_worker(unbound_worker), lock(nullptr),
        stop(nullptr) {}
  /// Only `claim` (waiting) and `task` set: for an awaiter that parks rarely and writes the rest
  /// when it does (prepare_park and `solo`), so that an operation that completes at once stores
  /// nothing else (channel_wait).
  explicit park_state(uninitialized_t) noexcept {}

  /// waiting, then 1 + the index of the case that ended the wait, timed_out or cancelled.
  std::atomic<std::uint32_t> claim{waiting};
  /// No timer and no select: only holders of the one list's lock can end the wait, so the claim
  /// is a plain store (no read-modify-write on the hot path of a single send or receive).
  bool solo;
  std::coroutine_handle<> task{};
  /// The runtime of the worker the task parked on, through its gate (see runtime_gate), and the
  /// gate's generation for that runtime.
  runtime_gate* gate;
  std::uint32_t generation;
  /// The worker that must resume the task (the one whose wheel holds its timer, or the one it is
  /// bound to), or unbound_worker.
  std::uint32_t wake_on;
  /// The worker the task parked on: a cancelled task resumes there (see the file comment).
  std::uint32_t park_worker;
  /// The lock solo claims are made under (the list's owner's), which cancellation takes too.
  spin_lock* lock;
  /// The task's stop state, or null (not cancellable). Armed by arm_park().
  stop_state* stop;

  /// Ends the wait with `value` if nobody did yet; true when this call did. Call with the lock of
  /// the list holding the node when `solo`.
  bool try_claim(std::uint32_t value) noexcept {
    if (solo) {
      CORIO_ASSERT(lock != nullptr && lock->held(), "solo-claim-under-lock");
      if (claim.load(std::memory_order_relaxed) != waiting) return false;
      claim.store(value, std::memory_order_relaxed);
      return true;
    }
    std::uint32_t expected = waiting;
    return claim.compare_exchange_strong(expected, value, std::memory_order_acq_rel, std::memory_order_relaxed);
  }
};

/// One parked task's entry in one wait_list.
struct wait_node {
  /// Every field set: not on a list.
  wait_node() noexcept
      : prev(nullptr), next(nullptr), owner(nullptr), slot(nullptr), case_index(0), linked(false), sender(false),
        closed(false), amount(0) {}
  /// Only `linked` (false) set: the awaiter writes the rest when it parks (channel_wait).
  explicit wait_node(uninitialized_t) noexcept : linked(false) {}

  wait_node* prev;
  wait_node* next;
  park_state* owner;
  /// What the peer moves from or into: the value a sender offers (T*), or where a receiver's
  /// value goes (std::optional<T>*). Unused by the sync primitives.
  void* slot;
  std::uint32_t case_index;  ///< 1 + the select case this node stands for (1 for plain ops)
  bool linked;               ///< on its list; written under the list's lock
  bool sender;               ///< a channel node: on the senders' list (else the receivers')
  bool closed;               ///< the wait ended because the channel was closed
  std::int64_t amount;       ///< shared_mutex: 1 for a writer, 0 for a reader; semaphore: the units
};

/// An intrusive FIFO list of wait_nodes, protected by its owner's spin_lock.
class wait_list {
 public:
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] wait_node* front() const noexcept { return head_; }
  void push_back(wait_node& n) noexcept {
    n.prev = tail_;
    n.next = nullptr;
    if (tail_ != nullptr) tail_->next = &n;
    else head_ = &n;
    tail_ = &n;
    n.linked = true;
  }
  void remove(wait_node& n) noexcept {
    if (n.prev != nullptr) n.prev->next = n.next;
    else head_ = n.next;
    if (n.next != nullptr) n.next->prev = n.prev;
    else tail_ = n.prev;
    n.prev = n.next = nullptr;
    n.linked = false;
  }

 private:
  wait_node* head_ = nullptr;
  wait_node* tail_ = nullptr;
};

/// What is needed to wake a claimed task, copied out of its park_state under the lock so that the
/// wake can happen after unlocking.
struct wake_ticket {
  std::coroutine_handle<> task{};
  runtime_gate* gate = nullptr;
  std::uint32_t generation = 0;
  std::uint32_t wake_on = unbound_worker;
  explicit operator bool() const noexcept { return static_cast<bool>(task); }
};

inline wake_ticket ticket_of(const park_state& s) noexcept { return {s.task, s.gate, s.generation, s.wake_on}; }

/// Pops every node of `list` (its lock held) and claims each that can still be claimed (marking
/// it `closed` when asked); the claimed ones are pushed onto `chain` through wait_node::next (they
/// are off the list) and the new head is returned, for wake_chain() after unlock. Defined in
/// lib/sync.cpp.
CORIO_API wait_node* claim_all(wait_list& list, wait_node* chain = nullptr, bool closed = false) noexcept;

/// Pops and claims the first node of `list` (its lock held) that can still be claimed; null when
/// none. The nodes it pops and cannot claim (ended by a timer or a canceller) stay off the list.
/// Defined in lib/sync.cpp.
CORIO_API wait_node* claim_first(wait_list& list) noexcept;

/// Wakes every task of a chain built by claim_all (or the same way). Call after unlocking: each
/// node lives in the frame being woken, so its `next` is read first. Defined in lib/sync.cpp.
CORIO_API void wake_chain(wait_node* n) noexcept;

/// Resumes a claimed task: on its wake_on worker if it has one; otherwise next on the calling
/// worker (its LIFO slot, Go's runnext) when the caller is a worker of the task's runtime, or
/// through the runtime's injection queue from any other thread. From a thread that is not one of
/// the runtime's workers it goes through the runtime's gate: once the runtime has stopped its
/// workers (shutdown), the wake is dropped (the runtime destroys the task's frame). Never touches
/// the parked frame. Thread-safe. Defined in lib/park.cpp.
CORIO_API void wake_parked(const wake_ticket& t) noexcept;
/// As wake_parked, but on a worker of the task's runtime an unbound task goes to the back of the
/// calling worker's FIFO list, as an I/O completion does (completion-on-owner), instead of running
/// next: for a wait that an I/O completion ends (a multishot receive's reader). Defined in
/// lib/park.cpp.
CORIO_API void wake_parked_in_order(const wake_ticket& t) noexcept;

/// Fills in the park_state of a task about to park: the handle, the calling worker's runtime,
/// wake_on from the task's binding, the lock its list is guarded by, and its stop state (null:
/// not cancellable). Throws std::logic_error off a worker. Defined in lib/park.cpp.
CORIO_API void prepare_park(park_state& s, std::coroutine_handle<> task, std::uint32_t bound, spin_lock* lock,
                            stop_state* stop);

/// park_state's canceller (stop_canceller::cancel): claims the wait with `cancelled` (under the
/// list's lock for a solo wait, whose peers claim with plain stores) and resumes the task on the
/// worker where it parked. Defined in lib/park.cpp.
CORIO_API void cancel_park(stop_canceller& c) noexcept;

/// arm_park() when the task's stop was requested already: claims `s` with `cancelled` (nobody
/// else can see it yet). The task's children are told when the operation throws, after the
/// list's lock is released (throw_cancelled): a child parked on the same lock is cancelled by
/// taking that lock. Defined in lib/park.cpp.
CORIO_API void refuse_park(park_state& s) noexcept;

/// Arms the parking task's canceller, with its node(s) queued and the list lock(s) still held:
/// one compare-and-swap (stop_state::arm). False when the task's stop was requested already: the
/// claim is then `cancelled` (the caller takes its nodes off again and resumes the task at once,
/// and its settling throws).
inline bool arm_park(park_state& s) noexcept {
  if (s.stop == nullptr) return true;
  s.cancel = &cancel_park;
  if (s.stop->arm(s)) [[likely]] return true;
  refuse_park(s);
  return false;
}

/// After the wait ended: disarms the canceller (waits for a request_stop still running it).
/// Awaiters call it when they settle a wait, not when they are destroyed: a frame destroyed while
/// parked is one the runtime's shutdown destroys after its workers stopped, together with the
/// stop state the canceller is armed on.
inline void disarm_park(park_state& s) noexcept {
  if (s.stop != nullptr) s.stop->disarm(s);
}

/// Queues `n` on `list` (its lock held) and arms the task's canceller; when the task's stop was
/// already requested, takes `n` off again and returns false: the caller does not park, and the
/// operation ends with operation_cancelled.
inline bool enqueue_parked(wait_list& list, wait_node& n) noexcept {
  list.push_back(n);
  if (arm_park(*n.owner)) [[likely]] return true;
  list.remove(n);
  return false;
}

/// Throws corio::operation_cancelled (with `what`) for the wait `s` that cancellation ended, after
/// telling the task's children (stop_state::observe: the task saw its stop). Call it with no list
/// lock held: cancelling a child parked on that lock takes it. Defined in lib/sync.cpp.
[[noreturn]] CORIO_API void throw_cancelled(park_state& s, const char* what);

/// A timeout for a parked operation, in the calling worker's wheel: when it fires first it claims
/// `state` with park_state::timed_out and resumes the task on that worker; when a peer claimed
/// first it does nothing. arm() sets state.wake_on to this worker, so that a peer's wake brings
/// the task back here, where disarm() can cancel the timer. Both on a worker only.
struct CORIO_API park_timer {
  park_timer() noexcept = default;
  park_timer(const park_timer&) = delete;
  park_timer& operator=(const park_timer&) = delete;
  /// A parked frame destroyed at shutdown: its worker's wheel was drained first.
  ~park_timer() { CORIO_ASSERT(!entry.inserted(), "timer-entry-outlives-insertion"); }
  timer_entry entry;
  std::int64_t deadline_ns = 0;  ///< clock::time_point's count
  park_state* state = nullptr;
  void arm(park_state& s);    // lib/park.cpp
  void disarm() noexcept;     // lib/park.cpp; a no-op once fired
};

/// A uniformly distributed 32-bit number from the calling worker's generator (seeded from
/// runtime_options::seed, so a fixed seed gives a fixed sequence per worker), or from a
/// thread-local generator off the workers. For select's random choice. Thread-safe.
CORIO_API std::uint32_t random_u32() noexcept;

}  // namespace corio::detail
