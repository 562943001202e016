// corio/channel.hpp - Go's channels for tasks: MPMC, buffered or rendezvous, closable.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
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
/// lists, the closed flag. Every field but `refs` is guarded by `lock`.
class channel_core {
 public:
  spin_lock lock;
  wait_list senders;    ///< tasks waiting to send: a full buffer, or no receiver (capacity 0)
  wait_list receivers;  ///< tasks waiting to receive: an empty buffer
  bool closed = false;
  std::size_t capacity = 0;
  std::size_t count = 0;  ///< values in the buffer
  std::atomic<std::size_t> refs{1};

  /// Removes `n` from whichever list it is on, if any. Under lock.
  void unlink(wait_node& n) noexcept {
    if (!n.linked) return;
    (n.sender ? senders : receivers).remove(n);
  }
  /// Marks the channel closed and claims every waiter with `closed`; returns the claimed nodes
  /// chained for wake_chain() after unlock. Under lock.
  wait_node* close_locked() noexcept {
    closed = true;
    return claim_all(senders, claim_all(receivers, nullptr, true), true);
  }
};

/// A channel's shared state: the core and a ring buffer of `capacity` values.
template <class T>
class channel_state : public channel_core {
 public:
  explicit channel_state(std::size_t cap) {
    capacity = cap;
    if (cap != 0) ring_ = std::make_unique<std::optional<T>[]>(cap);
  }

  /// Sends `v` now if it can: to a waiting receiver (moved into its slot), or into the buffer.
  /// `v` is moved from only when delivered. A receiver woken is put in `wake`. Under lock.
  channel_status send_locked(T& v, wake_ticket& wake) {
    if (closed) return channel_status::closed;
    while (wait_node* n = receivers.front()) {
      receivers.remove(*n);
      if (!n->owner->try_claim(n->case_index)) continue;  // a select or timeout ended it elsewhere
      static_cast<std::optional<T>*>(n->slot)->emplace(std::move(v));
      wake = ticket_of(*n->owner);
      return channel_status::delivered;
    }
    if (count < capacity) {
      std::size_t tail = head_ + count;
      if (tail >= capacity) tail -= capacity;
      ring_[tail].emplace(std::move(v));
      ++count;
      return channel_status::delivered;
    }
    return channel_status::would_block;
  }

  /// Receives now if it can: from the buffer (then refilled from a waiting sender), or straight
  /// from a waiting sender (capacity 0). A sender woken is put in `wake`. Under lock.
  channel_status recv_locked(std::optional<T>& out, wake_ticket& wake) {
    if (count > 0) {
      out.emplace(std::move(*ring_[head_]));
      ring_[head_].reset();
      if (++head_ == capacity) head_ = 0;
      --count;
      while (wait_node* n = senders.front()) {
        senders.remove(*n);
        if (!n->owner->try_claim(n->case_index)) continue;
        std::size_t tail = head_ + count;
        if (tail >= capacity) tail -= capacity;
        ring_[tail].emplace(std::move(*static_cast<T*>(n->slot)));
        ++count;
        wake = ticket_of(*n->owner);
        break;
      }
      return channel_status::delivered;
    }
    while (wait_node* n = senders.front()) {
      senders.remove(*n);
      if (!n->owner->try_claim(n->case_index)) continue;
      out.emplace(std::move(*static_cast<T*>(n->slot)));
      wake = ticket_of(*n->owner);
      return channel_status::delivered;
    }
    return closed ? channel_status::closed : channel_status::would_block;
  }

 private:
  std::unique_ptr<std::optional<T>[]> ring_;
  std::size_t head_ = 0;
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
      spin_guard g{ch_->lock};
      if (node_.linked) ch_->unlink(node_);
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
      ch_->lock.unlock();
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
    ch_->lock.unlock();  // publishes the node: touch nothing of this frame after (llvm #56301)
    return transfer(parked ? next_after_park() : std::coroutine_handle<>{h});
  }

  /// The end of an await_ready that tried the operation under the lock: done (unlock, wake the
  /// peer, spend the budget) or not (keep the lock for await_suspend). A zero timeout does not
  /// wait.
  bool end_ready(channel_status status, const wake_ticket& w, clock::duration timeout) {
    status_ = status;
    if constexpr (Timed) {
      if (status_ == channel_status::would_block && timeout <= clock::duration::zero()) {
        status_ = channel_status::timed_out;
      }
    }
    if (status_ == channel_status::would_block) return false;  // the lock stays held
    ch_->lock.unlock();
    if (w) wake_parked(w);
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
      {
        spin_guard g{ch_->lock};  // a peer may be taking the claimed node off right now
        ch_->unlink(node_);
      }
      throw_cancelled(park_,
                      node_.sender ? "corio::channel::send: cancelled" : "corio::channel::recv: cancelled");
    }
    if constexpr (Timed) {
      if (c == park_state::timed_out) {
        spin_guard g{ch_->lock};
        ch_->unlink(node_);
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

  bool await_ready() {
    if (this->ch_ == nullptr) throw std::logic_error("corio::channel: send on an empty (moved-from) channel");
    wake_ticket w;
    this->ch_->lock.lock();
    return this->end_ready(this->ch_->send_locked(value_, w), w, timeout_);
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

  bool await_ready() {
    if (this->ch_ == nullptr) throw std::logic_error("corio::channel: recv on an empty (moved-from) channel");
    wake_ticket w;
    this->ch_->lock.lock();
    return this->end_ready(this->ch_->recv_locked(out_, w), w, timeout_);
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
      if (s == channel_status::delivered) r.value = std::move(out_);
      return r;
    } else {
      return std::move(out_);
    }
  }

 private:
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
    detail::wake_ticket w;
    {
      detail::spin_guard g{checked().lock};
      r.status = state_->send_locked(value, w);
    }
    if (w) detail::wake_parked(w);
    if (r.status != channel_status::delivered) r.value.emplace(std::move(value));
    return r;
  }
  /// Receives without waiting: delivered (with the value), would_block (empty) or closed (closed
  /// and drained). Any thread.
  recv_result<T> try_recv() {
    recv_result<T> r;
    detail::wake_ticket w;
    {
      detail::spin_guard g{checked().lock};
      r.status = state_->recv_locked(r.value, w);
    }
    if (w) detail::wake_parked(w);
    return r;
  }

  /// Closes the channel: idempotent; every waiting receiver and sender is woken (receivers with
  /// std::nullopt, senders with closed); buffered values can still be received. Any thread.
  void close() {
    detail::wait_node* woken;
    {
      detail::spin_guard g{checked().lock};
      if (state_->closed) return;
      woken = state_->close_locked();
    }
    detail::wake_chain(woken);
  }

  /// Values buffered now (a snapshot).
  [[nodiscard]] std::size_t size() const {
    detail::spin_guard g{checked().lock};
    return state_->count;
  }
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
