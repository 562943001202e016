// corio/channel.hpp - Go's channels for tasks: MPMC, buffered or rendezvous, closable.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "corio/detail/park.hpp"
#include "corio/detail/transfer.hpp"
#include "corio/errors.hpp"
#include "corio/time.hpp"
#include "corio/yield.hpp"

namespace corio {

/// Thrown by `co_await ch.send(v)` when the channel is closed (before or while the send waits).
/// The non-throwing forms (try_send, send_for, a select's send case) report
/// channel_status::closed instead and hand the value back.
class CORIO_API channel_closed : public std::logic_error {
 public:
  channel_closed() : std::logic_error("corio::channel: send on a closed channel") {}
};

/// How a channel operation ended.
enum class channel_status : std::uint8_t {
  delivered,    ///< the value was handed over (a send) or taken (a receive)
  would_block,  ///< try_send on a full channel, try_recv on an empty one: nothing happened
  timed_out,    ///< send_for / recv_for: the timeout came first; nothing happened
  closed,       ///< the channel is closed (a receive: and drained); nothing happened
};

/// The result of try_send and send_for: `status`, and the value itself back in `value` whenever it
/// was not delivered (never destroyed silently). Converts to true when delivered.
template <class T>
struct send_result {
  /// How the operation ended.
  channel_status status = channel_status::delivered;
  /// The value when it was not delivered (it is handed back, never destroyed); empty when delivered.
  std::optional<T> value{};
  /// True when the value was delivered.
  explicit operator bool() const noexcept { return status == channel_status::delivered; }
};

/// The result of try_recv and recv_for: `status`, and the value when one was taken. Converts to
/// true when a value was taken.
template <class T>
struct recv_result {
  /// How the operation ended.
  channel_status status = channel_status::delivered;
  /// The value taken, when status is channel_status::delivered; empty otherwise.
  std::optional<T> value{};
  /// True when a value was taken.
  explicit operator bool() const noexcept { return status == channel_status::delivered; }
};

template <class T>
class channel;

namespace detail {

/// The part of a channel's state that select handles without knowing T: the lock, the wait
/// lists, the closed flag, and the two position words of the buffer's lock-free ring, whose high
/// bits are the gate of the fast path (see channel_state). `senders`, `receivers`, `closed` and
/// `woken` are guarded by `lock`; the position words are atomic.
///
/// The slow path of every operation brackets its work with lock_slow() and unlock_slow(), never
/// with the bare lock: lock_slow() raises the wait flags the caller may park under, before it
/// reads the ring (so that a fast-path operation in flight sees them afterwards: the Dekker
/// pattern, all four accesses sequentially consistent), and serves parked tasks from the ring
/// first; unlock_slow() serves them again, lowers the flags of the lists that are empty, unlocks,
/// and wakes whoever was served.
class channel_core {
 public:
  spin_lock lock;
  wait_list senders;    ///< tasks waiting to send: a full buffer, or no receiver (capacity 0)
  wait_list receivers;  ///< tasks waiting to receive: an empty buffer
  bool closed = false;
  std::size_t capacity = 0;
  std::atomic<std::size_t> refs{1};

  /// The ring's positions: values pushed (`enqueued`) and taken (`dequeued`) since the channel
  /// was made, in the low 62 bits; the high bits are flags that send a fast-path operation to the
  /// slow path. Fast-path operations change a position only with a compare-and-swap that expects
  /// no flag, so raising a flag stops them at once.
  static constexpr std::uint64_t senders_wait = std::uint64_t{1} << 62;    ///< in enqueued: senders parked
  static constexpr std::uint64_t closed_flag = std::uint64_t{1} << 63;     ///< in enqueued: closed
  static constexpr std::uint64_t receivers_wait = std::uint64_t{1} << 62;  ///< in dequeued: receivers parked
  static constexpr std::uint64_t position_mask = (std::uint64_t{1} << 62) - 1;
  alignas(64) std::atomic<std::uint64_t> enqueued{0};
  alignas(64) std::atomic<std::uint64_t> dequeued{0};
  /// The wait flags again (`receive_flag`, `send_flag` bits), on a line of their own that only
  /// parking and unparking write: what a fast-path operation reads after it took effect, so that
  /// it does not read the other side's busy position word on every operation.
  alignas(64) std::atomic<unsigned> waiting{0};

  /// Which wait flags lock_slow() raises: those of the lists the caller may park on.
  enum : unsigned { no_flags = 0, receive_flag = 1, send_flag = 2 };

  /// The slow path's entry: locks, raises `flags`, serves parked tasks from the ring.
  void lock_slow(unsigned flags) noexcept {
    lock.lock();
    if (capacity == 0) return;  // a rendezvous channel has no ring, hence no fast path
    if ((flags & ~waiting.load(std::memory_order_relaxed)) != 0) {
      waiting.fetch_or(flags, std::memory_order_seq_cst);
      if ((flags & receive_flag) != 0) dequeued.fetch_or(receivers_wait, std::memory_order_seq_cst);
      if ((flags & send_flag) != 0) enqueued.fetch_or(senders_wait, std::memory_order_seq_cst);
    }
    if (serve_ != nullptr && (!senders.empty() || !receivers.empty())) serve_(*this);
  }
  /// The slow path's exit: serves parked tasks, lowers the flags of empty lists, unlocks, wakes
  /// the tasks served (and `also`, a peer the operation itself claimed).
  void unlock_slow(const wake_ticket& also = {}) noexcept {
    if (capacity == 0) {  // (only close() claims onto `woken` here)
      wait_node* chain = std::exchange(woken, nullptr);
      lock.unlock();
      if (also) wake_parked(also);
      if (chain != nullptr) [[unlikely]] wake_chain(chain);
      return;
    }
    if (serve_ != nullptr && (!senders.empty() || !receivers.empty())) serve_(*this);
    const unsigned up = waiting.load(std::memory_order_relaxed);
    const unsigned down = ((up & receive_flag) != 0 && receivers.empty() ? receive_flag : 0u) |
                          ((up & send_flag) != 0 && senders.empty() ? send_flag : 0u);
    if (down != 0) {
      if ((down & receive_flag) != 0) dequeued.fetch_and(~receivers_wait, std::memory_order_seq_cst);
      if ((down & send_flag) != 0) enqueued.fetch_and(~senders_wait, std::memory_order_seq_cst);
      waiting.fetch_and(~down, std::memory_order_seq_cst);
    }
    wait_node* chain = std::exchange(woken, nullptr);
    lock.unlock();
    if (also) wake_parked(also);
    if (chain != nullptr) wake_chain(chain);
  }
  /// For a fast-path operation that found a wait flag raised after it took effect: lets the slow
  /// path serve the parked tasks (a value pushed for a parked receiver, room for a parked sender).
  void kick() noexcept {
    lock_slow(no_flags);
    unlock_slow();
  }

  /// Removes `n` from whichever list it is on, if any. Under lock.
  void unlink(wait_node& n) noexcept {
    if (!n.linked) return;
    (n.sender ? senders : receivers).remove(n);
  }
 protected:
  /// Moves ring values to parked receivers and parked senders' values into the ring, in FIFO
  /// order, claiming each task served onto `woken`. Set by channel_state (it knows T).
  void (*serve_)(channel_core&) noexcept = nullptr;
  wait_node* woken = nullptr;  ///< tasks claimed under the lock, woken by unlock_slow()
};

/// A channel's shared state: the core and, for a buffered channel, a ring of `capacity` slots.
///
/// The ring is Vyukov's bounded MPMC queue (each slot's turn number says whose turn it is; a
/// position is claimed with one compare-and-swap), indexed modulo the capacity
/// (www.1024cores.net, "Bounded MPMC queue"). A send or receive
/// first tries it without the lock (try_push_fast, try_pop_fast), which succeeds unless a flag is
/// up: tasks parked on the side it would have to serve, the channel closed, or the ring full
/// (send) or empty (receive). After it took effect, it reads `waiting` (the wait flags' mirror): a
/// flag up there means a task parked meanwhile, and kick() serves it. The invariants that keep Go's
/// semantics (docs/internals.md, "channels' fast path"):
/// - a receiver parks only when no value is in the ring or being pushed (it waits out a push in
///   flight), a sender only when the ring is full and no slot is being freed;
/// - while receivers are parked only the lock's holder takes values from the ring (the flag in
///   `dequeued` fails every fast compare-and-swap), in their FIFO order, and likewise for senders
///   and pushes, so a fast-path operation never overtakes a parked task;
/// - once closed, no push starts (the flag in `enqueued`), and "closed and drained" is said only
///   when every push that started has been taken.
template <class T>
class channel_state : public channel_core {
  struct slot {
    /// Whose turn the slot is, for position p: free to push when 2p, holding p's value when
    /// 2p + 1 (doubled so that the two differ even at capacity 1, where Vyukov's p + 1 would
    /// also mean "free" for p + 1).
    std::atomic<std::uint64_t> turn;
    alignas(T) unsigned char storage[sizeof(T)];
    T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
  };

 public:
  explicit channel_state(std::size_t cap) {
    capacity = cap;
    if (cap != 0) {
      slots_ = std::make_unique<slot[]>(cap);
      for (std::size_t i = 0; i < cap; ++i) slots_[i].turn.store(2 * std::uint64_t{i}, std::memory_order_relaxed);
      pow2_ = (cap & (cap - 1)) == 0;
      serve_ = &serve_parked;
    }
  }
  channel_state(const channel_state&) = delete;
  channel_state& operator=(const channel_state&) = delete;
  ~channel_state() {
    if (capacity == 0) return;
    const std::uint64_t end = enqueued.load(std::memory_order_acquire) & position_mask;
    for (std::uint64_t p = dequeued.load(std::memory_order_acquire) & position_mask; p != end; ++p) {
      std::destroy_at(slots_[index(p)].value());
    }
  }

  /// A send without the lock: true when `v` went into the ring (moved from), false when the slow
  /// path must decide (a flag up, or the ring full). Any thread.
  [[gnu::always_inline]] bool try_push_fast(T& v) {
    if (capacity == 0) return false;
    std::uint64_t e = enqueued.load(std::memory_order_relaxed);
    for (;;) {
      if ((e & ~position_mask) != 0) return false;
      slot& s = slots_[index(e)];
      const auto d = static_cast<std::int64_t>(s.turn.load(std::memory_order_acquire) - 2 * e);
      if (d == 0) [[likely]] {
        if (enqueued.compare_exchange_weak(e, e + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) [[likely]] {
          fill(s, e, v);
          if ((waiting.load(std::memory_order_seq_cst) & receive_flag) != 0) kick();
          return true;
        }
      } else if (d < 0) {
        return false;  // full (or its oldest value still being taken)
      } else {
        e = enqueued.load(std::memory_order_relaxed);
      }
    }
  }
  /// A receive without the lock: true with the value in `out`, false when the slow path must
  /// decide (a flag up, or nothing ready). Any thread.
  [[gnu::always_inline]] bool try_pop_fast(std::optional<T>& out) {
    if (capacity == 0) return false;
    std::uint64_t d = dequeued.load(std::memory_order_relaxed);
    for (;;) {
      if ((d & ~position_mask) != 0) return false;
      slot& s = slots_[index(d)];
      const auto diff = static_cast<std::int64_t>(s.turn.load(std::memory_order_acquire) - (2 * d + 1));
      if (diff == 0) [[likely]] {
        if (dequeued.compare_exchange_weak(d, d + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) [[likely]] {
          drain(s, d, out);
          if ((waiting.load(std::memory_order_seq_cst) & send_flag) != 0) kick();
          return true;
        }
      } else if (diff < 0) {
        return false;  // empty (or its next value still being pushed)
      } else {
        d = dequeued.load(std::memory_order_relaxed);
      }
    }
  }

  /// Sends `v` now if it can: to a waiting receiver (moved into its slot), or into the buffer.
  /// `v` is moved from only when delivered. A receiver woken is put in `wake`. Under lock_slow.
  channel_status send_locked(T& v, wake_ticket& wake) {
    if (closed) return channel_status::closed;
    if (capacity != 0) return send_buffered_locked(v, wake);
    return hand_over_locked(v, wake) ? channel_status::delivered : channel_status::would_block;
  }
  /// send_locked for a channel known to be a rendezvous one (capacity 0). Under lock.
  channel_status send_rendezvous_locked(T& v, wake_ticket& wake) {
    if (closed) return channel_status::closed;
    return hand_over_locked(v, wake) ? channel_status::delivered : channel_status::would_block;
  }
  /// recv_locked for a channel known to be a rendezvous one (capacity 0). Under lock.
  channel_status recv_rendezvous_locked(std::optional<T>& out, wake_ticket& wake) {
    while (wait_node* n = senders.front()) {
      senders.remove(*n);
      if (!n->owner->try_claim(n->case_index)) continue;
      out.emplace(std::move(*static_cast<T*>(n->slot)));
      wake = ticket_of(*n->owner);
      return channel_status::delivered;
    }
    return closed ? channel_status::closed : channel_status::would_block;
  }

  /// Receives now if it can: from the buffer (parked senders then refill it, in unlock_slow), or
  /// straight from a waiting sender (capacity 0). A sender woken is put in `wake`. Under lock_slow.
  channel_status recv_locked(std::optional<T>& out, wake_ticket& wake) {
    if (capacity == 0) return recv_rendezvous_locked(out, wake);
    if (pop_locked(out)) return channel_status::delivered;
    return closed ? channel_status::closed : channel_status::would_block;
  }

  /// Marks the channel closed, so that no push can start from now on (the flag in `enqueued`),
  /// serves parked receivers the values of pushes that started before (waiting out those in
  /// flight), and claims every waiter left with `closed`; the claimed nodes go on `woken` for
  /// unlock_slow(). Under lock_slow.
  void close_locked() noexcept {
    closed = true;
    enqueued.fetch_or(closed_flag, std::memory_order_seq_cst);
    if (capacity != 0) {
      unsigned spins = 0;
      while (!receivers.empty() && ring_has_value()) {
        if (ring_head_ready()) {
          serve_parked(*this);
        } else {
          spin_wait(spins);
        }
      }
    }
    woken = claim_all(senders, claim_all(receivers, woken, true), true);
  }

  /// Values buffered now (a snapshot; pushes and pops in flight count as done).
  [[nodiscard]] std::size_t size_now() const noexcept {
    if (capacity == 0) return 0;
    const std::uint64_t d = dequeued.load(std::memory_order_acquire) & position_mask;
    const std::uint64_t e = enqueued.load(std::memory_order_acquire) & position_mask;
    return e > d ? static_cast<std::size_t>(std::min<std::uint64_t>(e - d, capacity)) : 0;
  }

 private:
  std::size_t index(std::uint64_t position) const noexcept {
    return pow2_ ? static_cast<std::size_t>(position & (capacity - 1)) : static_cast<std::size_t>(position % capacity);
  }
  // Moving a value in or out must not throw: a position is claimed before the value moves, and
  // there is no undoing the claim (a throwing move ends the program: noexcept).
  void fill(slot& s, std::uint64_t position, T& v) noexcept {
    ::new (static_cast<void*>(s.storage)) T(std::move(v));
    s.turn.store(2 * position + 1, std::memory_order_release);
  }
  void drain(slot& s, std::uint64_t position, std::optional<T>& out) noexcept {
    out.emplace(std::move(*s.value()));
    std::destroy_at(s.value());
    s.turn.store(2 * (position + capacity), std::memory_order_release);
  }

  /// Moves `v` into the first parked receiver that can still be claimed; false when there is
  /// none. Under lock.
  bool hand_over_locked(T& v, wake_ticket& wake) {
    while (wait_node* n = receivers.front()) {
      receivers.remove(*n);
      if (!n->owner->try_claim(n->case_index)) continue;  // a select or timeout ended it elsewhere
      static_cast<std::optional<T>*>(n->slot)->emplace(std::move(v));
      wake = ticket_of(*n->owner);
      return true;
    }
    return false;
  }

  /// send_locked for a buffered channel (out of line: the rendezvous path stays small).
  [[gnu::noinline]] channel_status send_buffered_locked(T& v, wake_ticket& wake) {
    // Parked receivers were served from the ring by lock_slow(), so a receiver still parked
    // means the ring holds nothing ready for it: hand the value over directly.
    if (!receivers.empty() && !ring_has_value() && hand_over_locked(v, wake)) return channel_status::delivered;
    return push_locked(v) ? channel_status::delivered : channel_status::would_block;
  }

  /// True when a value is in the ring or being pushed. Under lock.
  bool ring_has_value() const noexcept {
    return (enqueued.load(std::memory_order_seq_cst) & position_mask) !=
           (dequeued.load(std::memory_order_seq_cst) & position_mask);
  }

  /// Pushes under the lock, waiting out a pop in flight that frees the slot; false when the
  /// ring is full. Fast-path pushes may race it (unless senders are parked).
  [[gnu::noinline]] bool push_locked(T& v) {
    unsigned spins = 0;
    for (;;) {
      std::uint64_t e = enqueued.load(std::memory_order_seq_cst);
      const std::uint64_t p = e & position_mask;
      slot& s = slots_[index(p)];
      const auto diff = static_cast<std::int64_t>(s.turn.load(std::memory_order_acquire) - 2 * p);
      if (diff == 0) {
        if (enqueued.compare_exchange_weak(e, e + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
          fill(s, p, v);
          return true;
        }
        continue;
      }
      if (diff > 0) continue;  // another push took p meanwhile
      if (p - (dequeued.load(std::memory_order_seq_cst) & position_mask) >= capacity) return false;  // full
      spin_wait(spins);  // a pop has taken the slot's value and not freed the slot yet
    }
  }

  /// Pops under the lock, waiting out a push in flight; false when the ring is empty. Fast-path
  /// pops may race it (unless receivers are parked).
  [[gnu::noinline]] bool pop_locked(std::optional<T>& out) {
    unsigned spins = 0;
    for (;;) {
      std::uint64_t d = dequeued.load(std::memory_order_seq_cst);
      const std::uint64_t p = d & position_mask;
      slot& s = slots_[index(p)];
      const auto diff = static_cast<std::int64_t>(s.turn.load(std::memory_order_acquire) - (2 * p + 1));
      if (diff == 0) [[likely]] {
        if (dequeued.compare_exchange_weak(d, d + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) [[likely]] {
          drain(s, p, out);
          return true;
        }
        continue;
      }
      if (diff > 0) continue;  // another pop took p meanwhile
      if ((enqueued.load(std::memory_order_seq_cst) & position_mask) == p) return false;  // empty
      spin_wait(spins);  // a push has taken the slot and not filled it yet
    }
  }

  /// Serves parked tasks from the ring (see channel_core::serve_). Under lock.
  static void serve_parked(channel_core& core) noexcept {
    auto& self = static_cast<channel_state&>(core);
    bool progress = true;
    while (progress) {
      progress = false;
      // Values to parked receivers: only the lock's holder pops while any is parked.
      while (!self.receivers.empty() && self.ring_head_ready()) {
        wait_node* n = self.receivers.front();
        self.receivers.remove(*n);
        if (!n->owner->try_claim(n->case_index)) continue;
        (void)self.pop_ready(*static_cast<std::optional<T>*>(n->slot));
        n->closed = false;
        n->next = self.woken;
        self.woken = n;
        progress = true;
      }
      // Parked senders' values into freed slots: only the lock's holder pushes while any is parked.
      while (!self.senders.empty() && !self.closed && self.ring_tail_free()) {
        wait_node* n = self.senders.front();
        self.senders.remove(*n);
        if (!n->owner->try_claim(n->case_index)) continue;
        self.push_free(*static_cast<T*>(n->slot));
        n->closed = false;
        n->next = self.woken;
        self.woken = n;
        progress = true;
      }
    }
  }
  /// The oldest value is pushed and ready to take. Under lock, receivers parked.
  bool ring_head_ready() const noexcept {
    const std::uint64_t p = dequeued.load(std::memory_order_seq_cst) & position_mask;
    return slots_[index(p)].turn.load(std::memory_order_acquire) == 2 * p + 1;
  }
  /// The next slot to push is free. Under lock, senders parked.
  bool ring_tail_free() const noexcept {
    const std::uint64_t p = enqueued.load(std::memory_order_seq_cst) & position_mask;
    return slots_[index(p)].turn.load(std::memory_order_acquire) == 2 * p;
  }
  /// Takes the oldest value, known ready (ring_head_ready); no fast pop can race it.
  bool pop_ready(std::optional<T>& out) noexcept {
    const std::uint64_t d = dequeued.fetch_add(1, std::memory_order_seq_cst);
    drain(slots_[index(d & position_mask)], d & position_mask, out);
    return true;
  }
  /// Pushes into the free tail slot (ring_tail_free); no fast push can race it.
  void push_free(T& v) noexcept {
    const std::uint64_t e = enqueued.fetch_add(1, std::memory_order_seq_cst);
    fill(slots_[index(e & position_mask)], e & position_mask, v);
  }

  std::unique_ptr<slot[]> slots_;
  bool pow2_ = false;
};

/// What a single send or receive awaiter shares: the park state, the node, the optional timer.
/// `Timed`: a timeout was given. Single use.
template <class T, bool Timed>
class channel_wait {
 protected:
  explicit channel_wait(channel_state<T>* ch) noexcept : ch_(ch), park_(uninitialized), node_(uninitialized) {}
  channel_wait(const channel_wait&) = delete;
  channel_wait& operator=(const channel_wait&) = delete;
  /// A task destroyed while parked (the runtime's shutdown destroys suspended frames) takes its
  /// node off the channel, which may outlive the runtime, under the channel's lock: a thread that
  /// is not a worker (a try_send, a close) may be claiming the node and writing into this frame
  /// right now. In every other case settle() ran and the node is off.
  ~channel_wait() {
    if (parked_) {
      ch_->lock_slow(channel_core::no_flags);
      if (node_.linked) ch_->unlink(node_);
      ch_->unlock_slow();
    }
  }

  /// Parks the task `h` on `list` (the lock held by the caller, released here); returns what to
  /// resume by symmetric transfer. Throws std::logic_error off a worker (the lock released).
  template <class Promise>
  std::coroutine_handle<> park(std::coroutine_handle<Promise> h, wait_list& list, void* slot, bool sender) {
    try {
      prepare_park(park_, h, binding_of(h), &ch_->lock, stop_of(h));
      park_.solo = !Timed;  // a timer races the peers for the claim
      if constexpr (Timed) timer_.arm(park_);
    } catch (...) {
      ch_->unlock_slow();
      throw;
    }
    CORIO_ASSERT(!ch_->closed, "no-waiter-on-closed-channel");
    node_.owner = &park_;
    node_.slot = slot;
    node_.case_index = 1;
    node_.sender = sender;
    node_.closed = false;
    parked_ = true;  // until settle(): the destructor takes the node off under the lock
    const bool parked = enqueue_parked(list, node_);  // false: the task's stop came first
    // Publishes the node: touch nothing of this frame after (llvm #56301). A rendezvous channel
    // has nothing for unlock_slow() to do here (only close() claims onto `woken`).
    if (!ring_) {
      ch_->lock.unlock();
    } else {
      ch_->unlock_slow();
    }
    return transfer(parked ? next_after_park() : std::coroutine_handle<>{h});
  }

  /// The end of an await_ready that tried the operation under the lock: done (unlock, wake the
  /// peer, spend the budget) or not (keep the lock for await_suspend). A zero timeout does not
  /// wait.
  /// `Rendezvous`: the channel has no ring (capacity 0), known at the call site.
  template <bool Rendezvous>
  bool end_ready(channel_status status, const wake_ticket& w, clock::duration timeout) {
    status_ = status;
    if constexpr (Timed) {
      if (status_ == channel_status::would_block && timeout <= clock::duration::zero()) {
        status_ = channel_status::timed_out;
      }
    }
    if (status_ == channel_status::would_block) return false;  // the lock stays held
    if constexpr (Rendezvous) {  // (nothing claimed onto `woken`: only close() does that)
      ch_->lock.unlock();
      if (w) wake_parked(w);
    } else {
      ch_->unlock_slow(w);
    }
    yield_ = !coop_spend();
    return !yield_;
  }

  /// The end of an await_ready whose fast path (no lock) completed the operation.
  bool end_fast() {
    status_ = channel_status::delivered;
    yield_ = !coop_spend();
    return !yield_;
  }

  /// await_suspend: requeue when out of budget, else park on `list` (see park()).
  template <class Promise>
  std::coroutine_handle<> suspend(std::coroutine_handle<Promise> h, clock::duration timeout, wait_list& list,
                                  void* slot, bool sender) {
    if (yield_) {
      schedule_yield(h);
      return transfer(next_after_park());
    }
    if constexpr (Timed) timer_.deadline_ns = deadline_after(now(), timeout).time_since_epoch().count();
    return park(h, list, slot, sender);
  }

  /// After a parked wait: how it ended. Takes the node off its list if a timeout ended it; throws
  /// operation_cancelled when cancellation did (nothing was sent or received).
  channel_status settle() {
    parked_ = false;
    disarm_park(park_);
    const std::uint32_t c = park_.claim.load(std::memory_order_acquire);
    CORIO_ASSERT(c != park_state::waiting, "claim-once-then-effect");  // only a claimer wakes a task
    if (c == park_state::cancelled) {
      if constexpr (Timed) timer_.disarm();  // resumed on the timer's worker (park_worker)
      ch_->lock_slow(channel_core::no_flags);  // a peer may be taking the claimed node off right now
      ch_->unlink(node_);
      ch_->unlock_slow();
      throw_cancelled(park_,
                      node_.sender ? "corio::channel::send: cancelled" : "corio::channel::recv: cancelled");
    }
    if constexpr (Timed) {
      if (c == park_state::timed_out) {
        ch_->lock_slow(channel_core::no_flags);
        ch_->unlink(node_);
        ch_->unlock_slow();
        return channel_status::timed_out;
      }
      timer_.disarm();  // a peer ended the wait and woke us on the timer's worker
    }
    return node_.closed ? channel_status::closed : channel_status::delivered;
  }

  channel_state<T>* ch_;
  park_state park_;  // the rest of both is written when the operation parks (park())
  wait_node node_;
  [[no_unique_address]] std::conditional_t<Timed, park_timer, std::monostate> timer_{};
  channel_status status_ = channel_status::would_block;  ///< decided without parking, if not would_block
  bool yield_ = false;  ///< done at once, but the cooperation budget is spent: requeue first
  bool parked_ = false;  ///< the node was queued and settle() has not run
  bool ring_ = false;    ///< a buffered channel: await_ready tried the ring
};

/// The awaiter of channel::send and send_for.
template <class T, bool Timed>
class [[nodiscard("co_await it")]] send_operation : channel_wait<T, Timed> {
  using base = channel_wait<T, Timed>;

 public:
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::channel_send;  ///< for the task dump
  /// The channel's shared state, for the task dump.
  std::uintptr_t corio_wait_object() const noexcept { return reinterpret_cast<std::uintptr_t>(this->ch_); }
  send_operation(channel_state<T>* ch, T value, clock::duration timeout = {}) noexcept(std::is_nothrow_move_constructible_v<T>)
      : base(ch), value_(std::move(value)), timeout_(timeout) {}

  /// Sends now if it can: a buffered channel's ring without the lock, else under it. Inlined
  /// into the task (and so is stop_aware's, which calls it): the ring's fast path called out of
  /// line cost a quarter of channel_throughput's time (benchmarks/RESULTS.md, issue 22).
  [[gnu::always_inline]] bool await_ready() {
    if (this->ch_ == nullptr) throw std::logic_error("corio::channel: send on an empty (moved-from) channel");
    if (this->ch_->capacity != 0) {
      this->ring_ = true;
      if (this->ch_->try_push_fast(value_)) return this->end_fast();
      return ready_locked();
    }
    this->ch_->lock.lock();  // a rendezvous channel: no ring, no flags (lock_slow would do just this)
    wake_ticket w;
    return this->template end_ready<true>(this->ch_->send_rendezvous_locked(value_, w), w, timeout_);
  }
  /// A buffered channel whose ring said no (a flag up, or full): the slow path, under the lock.
  /// Out of line: it is rare, and the task's body keeps only the fast path.
  [[gnu::noinline]] bool ready_locked() {
    this->ch_->lock_slow(channel_core::send_flag);
    wake_ticket w;
    return this->template end_ready<false>(this->ch_->send_locked(value_, w), w, timeout_);
  }
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
    return this->suspend(h, timeout_, this->ch_->senders, &value_, true);
  }
  /// Throws channel_closed (the plain form) or returns the result (the timed form).
  auto await_resume() {
    const channel_status s = this->status_ != channel_status::would_block ? this->status_ : this->settle();
    if constexpr (Timed) {
      send_result<T> r;
      r.status = s;
      if (s != channel_status::delivered) r.value.emplace(std::move(value_));
      return r;
    } else {
      if (s == channel_status::closed) throw channel_closed();
    }
  }

 private:
  T value_;
  clock::duration timeout_;
};

/// The awaiter of channel::recv and recv_for.
template <class T, bool Timed>
class [[nodiscard("co_await it")]] recv_operation : channel_wait<T, Timed> {
  using base = channel_wait<T, Timed>;

 public:
  static constexpr detail::wait_kind corio_wait = detail::wait_kind::channel_recv;  ///< for the task dump
  /// The channel's shared state, for the task dump.
  std::uintptr_t corio_wait_object() const noexcept { return reinterpret_cast<std::uintptr_t>(this->ch_); }
  explicit recv_operation(channel_state<T>* ch, clock::duration timeout = {}) noexcept : base(ch), timeout_(timeout) {}

  /// Receives now if it can (see send_operation::await_ready).
  [[gnu::always_inline]] bool await_ready() {
    if (this->ch_ == nullptr) throw std::logic_error("corio::channel: recv on an empty (moved-from) channel");
    if (this->ch_->capacity != 0) {
      this->ring_ = true;
      if (this->ch_->try_pop_fast(out_)) return this->end_fast();
      return ready_locked();
    }
    this->ch_->lock.lock();  // a rendezvous channel: no ring, no flags (lock_slow would do just this)
    wake_ticket w;
    return this->template end_ready<true>(this->ch_->recv_rendezvous_locked(out_, w), w, timeout_);
  }
  /// A buffered channel whose ring said no (a flag up, or empty): the slow path, under the lock.
  [[gnu::noinline]] bool ready_locked() {
    this->ch_->lock_slow(channel_core::receive_flag);
    wake_ticket w;
    return this->template end_ready<false>(this->ch_->recv_locked(out_, w), w, timeout_);
  }
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
    return this->suspend(h, timeout_, this->ch_->receivers, &out_, false);
  }
  /// The value, or std::nullopt once the channel is closed and drained (the plain form); the
  /// result with its status (the timed form).
  auto await_resume() {
    const channel_status s = this->status_ != channel_status::would_block ? this->status_ : this->settle();
    if constexpr (Timed) {
      recv_result<T> r;
      r.status = s;
      if (s == channel_status::delivered) r.value = take();
      return r;
    } else {
      return take();
    }
  }

 private:
  /// out_ moved out field by field, not copied whole: its value and its flag were just stored
  /// apart (drain, emplace), and one wide load spanning both cannot be forwarded from the store
  /// buffer. It would wait until every older store is written, the ring slot's turn among them,
  /// whose cache line is still the peer's: that stall was a quarter of channel_throughput's time
  /// (benchmarks/RESULTS.md, issue 22).
  std::optional<T> take() noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (!out_.has_value()) return std::nullopt;
    return std::optional<T>{std::move(*out_)};
  }

  std::optional<T> out_{};
  clock::duration timeout_;
};

}  // namespace detail

/// A receive case of corio::select (see select.hpp): ready when a value can be taken or the
/// channel is closed; its result is the std::optional<T> a recv() would give.
template <class T>
struct recv_case {
  /// The channel's shared state (kept alive by the channel handle the case came from).
  detail::channel_state<T>* channel;
};

/// A send case of corio::select: ready when `*value` can be handed over or the channel is closed.
/// The value stays the caller's: it is moved from only if this case wins and delivers it, so a
/// losing case never loses it. Its result is channel_status::delivered or channel_status::closed.
template <class T>
struct send_case {
  /// The channel's shared state (kept alive by the channel handle the case came from).
  detail::channel_state<T>* channel;
  /// The caller's value: moved from only when this case wins.
  T* value;
};

/// A Go channel for tasks: a cheap copyable handle to shared state (copies refer to the same
/// channel; the state lives while any handle does), any number of senders and receivers on any
/// workers (MPMC), `capacity` values buffered; capacity 0 is a rendezvous channel, where a send
/// completes only when a receiver takes the value. Values are moved, never copied, so move-only
/// types work.
///
/// Semantics are Go's: waiters are served first-come first-served; a value goes from a sender to
/// a waiting receiver directly (into the receiver's frame, even across workers) when one waits;
/// close() wakes every waiter, receivers then drain what is buffered and get std::nullopt, and a
/// send on a closed channel throws channel_closed (the non-throwing forms hand the value back).
/// A waiter is parked on a node that is claimed by exactly one of a peer, its timeout or close,
/// in one atomic step (detail/park.hpp), so no value is lost or delivered twice.
///
/// A buffered channel keeps its values in a lock-free ring (Vyukov's bounded MPMC queue): a send
/// into a ring with room, or a receive from one with values, takes no lock while no task waits
/// on the channel; the lock and the wait lists are for parking, waking, close and select
/// (docs/internals.md, "Channels' fast path").
///
/// Moving a T must not throw (a move that throws inside the channel ends the program:
/// std::terminate), as for the elements of most lock-free queues.
///
/// Every member is thread-safe. The awaitables must be `co_await`ed inside a task on a runtime;
/// try_send, try_recv, close, size, capacity and closed may be called from any thread. An empty
/// (moved-from) handle throws std::logic_error on every operation.
template <class T>
class channel {
  static_assert(std::is_move_constructible_v<T>, "corio::channel<T>: T must be move-constructible");

 public:
  /// A channel holding up to `capacity` values (0: rendezvous). Throws std::bad_alloc.
  explicit channel(std::size_t capacity = 0) : state_(new detail::channel_state<T>(capacity)) {}
  /// Another handle to the same channel (a reference count; no values are copied). Thread-safe.
  channel(const channel& other) noexcept : state_(other.state_) {
    if (state_ != nullptr) state_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  /// Takes over `other`'s reference; `other` is left empty (its operations throw std::logic_error).
  channel(channel&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  /// Makes this handle refer to `other`'s channel, dropping its own reference (the channel's state is
  /// freed with its last handle; values still buffered are destroyed with it).
  channel& operator=(channel other) noexcept {
    std::swap(state_, other.state_);
    return *this;
  }
  ~channel() {
    if (state_ != nullptr && state_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete state_;
  }

  /// `co_await ch.send(v)`: hands `v` over, waiting while the channel is full (capacity 0: until
  /// a receiver takes it). Throws channel_closed if the channel is or gets closed first.
  [[nodiscard]] detail::send_operation<T, false> send(T value) {
    return detail::send_operation<T, false>{state_, std::move(value)};
  }
  /// `co_await ch.recv()`: the next value, waiting while the channel is empty; std::nullopt once
  /// the channel is closed and its buffer drained.
  [[nodiscard]] detail::recv_operation<T, false> recv() { return detail::recv_operation<T, false>{state_}; }

  /// As send, giving up after `timeout` (any std::chrono duration; zero or negative: only if it
  /// can complete at once; one too large for the clock, such as nanoseconds::max(), saturates to
  /// no time limit, see to_clock_duration): `co_await` gives a send_result with the value back
  /// unless delivered.
  template <class Rep, class Period>
  [[nodiscard]] detail::send_operation<T, true> send_for(T value, std::chrono::duration<Rep, Period> timeout) {
    return detail::send_operation<T, true>{state_, std::move(value), to_clock_duration(timeout)};
  }
  /// As recv, giving up after `timeout` (as for send_for): `co_await` gives a recv_result.
  template <class Rep, class Period>
  [[nodiscard]] detail::recv_operation<T, true> recv_for(std::chrono::duration<Rep, Period> timeout) {
    return detail::recv_operation<T, true>{state_, to_clock_duration(timeout)};
  }

  /// Sends without waiting: delivered, would_block (full, or no receiver waiting on a rendezvous
  /// channel) or closed; the value comes back unless delivered. Any thread.
  send_result<T> try_send(T value) {
    send_result<T> r;
    if (checked().try_push_fast(value)) return r;
    detail::wake_ticket w;
    state_->lock_slow(detail::channel_core::no_flags);
    r.status = state_->send_locked(value, w);
    state_->unlock_slow(w);
    if (r.status != channel_status::delivered) r.value.emplace(std::move(value));
    return r;
  }
  /// Receives without waiting: delivered (with the value), would_block (empty) or closed (closed
  /// and drained). Any thread.
  recv_result<T> try_recv() {
    recv_result<T> r;
    if (checked().try_pop_fast(r.value)) return r;
    detail::wake_ticket w;
    state_->lock_slow(detail::channel_core::no_flags);
    r.status = state_->recv_locked(r.value, w);
    state_->unlock_slow(w);
    return r;
  }

  /// Closes the channel: idempotent; every waiting receiver and sender is woken (receivers with
  /// std::nullopt, senders with closed); buffered values can still be received. Any thread.
  void close() {
    checked().lock_slow(detail::channel_core::no_flags);
    if (!state_->closed) state_->close_locked();
    state_->unlock_slow();
  }

  /// Values buffered now (a snapshot).
  [[nodiscard]] std::size_t size() const { return checked().size_now(); }
  /// The capacity given at construction.
  [[nodiscard]] std::size_t capacity() const { return checked().capacity; }
  /// True once close() was called.
  [[nodiscard]] bool closed() const {
    detail::spin_guard g{checked().lock};
    return state_->closed;
  }
  /// False for a moved-from handle.
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }

  /// The receive case of this channel for corio::select.
  [[nodiscard]] corio::recv_case<T> recv_case() const {
    (void)checked();
    return corio::recv_case<T>{state_};
  }
  /// The send case of this channel for corio::select, offering `value` (moved from only if the
  /// case wins; see corio::send_case).
  [[nodiscard]] corio::send_case<T> send_case(T& value) const {
    (void)checked();
    return corio::send_case<T>{state_, &value};
  }
  void send_case(T&&) const = delete;  // a losing case would destroy a temporary: pass an lvalue

  friend bool operator==(const channel& a, const channel& b) noexcept { return a.state_ == b.state_; }

 private:
  detail::channel_state<T>& checked() const {
    if (state_ == nullptr) throw std::logic_error("corio::channel: used after it was moved from");
    return *state_;
  }
  detail::channel_state<T>* state_;
};

}  // namespace corio
