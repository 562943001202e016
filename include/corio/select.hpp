// corio/select.hpp - Go's select over channel cases, a timeout case and a default case.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "corio/channel.hpp"

namespace corio {

/// The timeout case of corio::select: fires `duration` after the select starts waiting, if no
/// other case fired first. Its result is corio::timed_out_t.
struct after_case {
  /// How long the select waits for another case (ns; saturated, as every corio duration).
  clock::duration duration;
};

/// The default case of corio::select: taken when no other case is ready at the instant of the
/// select, which then never waits. Its result is corio::default_t.
struct default_case_t {};

/// Results of the timeout and default cases.
struct timed_out_t {};
struct default_t {};

/// `corio::after(d)`: a select case that fires after `d` (any std::chrono duration; zero or
/// negative: at once if no other case is ready; one too large for the clock saturates to never,
/// see to_clock_duration).
template <class Rep, class Period>
[[nodiscard]] after_case after(std::chrono::duration<Rep, Period> d) {
  return after_case{to_clock_duration(d)};
}

/// `corio::default_case()`: a select case taken when nothing else is ready.
[[nodiscard]] inline default_case_t default_case() noexcept { return {}; }

namespace detail {

/// What a case gives when it fires (the alternative of the select's result at its index).
template <class Case>
struct select_case_traits;
template <class T>
struct select_case_traits<recv_case<T>> {
  using result = std::optional<T>;  ///< empty: the channel is closed and drained
  static constexpr bool channel = true;
};
template <class T>
struct select_case_traits<send_case<T>> {
  using result = channel_status;  ///< delivered or closed
  static constexpr bool channel = true;
};
template <>
struct select_case_traits<after_case> {
  using result = timed_out_t;
  static constexpr bool channel = false;
};
template <>
struct select_case_traits<default_case_t> {
  using result = default_t;
  static constexpr bool channel = false;
};

template <class Case>
constexpr bool is_after = std::is_same_v<Case, after_case>;
template <class Case>
constexpr bool is_default = std::is_same_v<Case, default_case_t>;

/// Per-case storage in the select awaiter: a recv case's value slot.
template <class Case>
struct select_slot {};
template <class T>
struct select_slot<recv_case<T>> {
  std::optional<T> value{};
};

/// The awaiter of corio::select (Go's selectgo, runtime/select.go): lock every channel involved
/// in address order; visit the channel cases in a random order and take the first that can
/// complete at once (uniform among the ready cases); else the default case if there is one;
/// else queue one node per channel case in that same random order (all sharing one park_state,
/// so that exactly one case can win), arm the timeout if there is one, unlock and park. When
/// woken, lock again and take the nodes of the cases that did not win off their channels.
///
/// The queueing order is what makes a parked select fair: a peer takes the first node it can
/// claim on a channel's FIFO list, so among several cases on one channel the one queued first
/// wins. Go queues its sudogs in lock order, an address sort that starts from the random poll
/// order so that cases on one channel come out permuted; queueing in the poll order itself gives
/// the same fairness (each case on a channel equally likely to be found first).
template <class... Cases>
class [[nodiscard("co_await it")]] select_operation {
  static constexpr std::size_t n = sizeof...(Cases);
  static constexpr std::size_t channels = (std::size_t{select_case_traits<Cases>::channel} + ... + 0);
  static constexpr std::size_t afters = (std::size_t{is_after<Cases>} + ... + 0);
  static constexpr std::size_t defaults = (std::size_t{is_default<Cases>} + ... + 0);
  static_assert(n > 0, "corio::select needs at least one case");
  static_assert(afters <= 1, "corio::select takes at most one after() case");
  static_assert(defaults <= 1, "corio::select takes at most one default_case()");
  static_assert(n <= 256, "corio::select takes at most 256 cases");

 public:
  using result_type = std::variant<typename select_case_traits<Cases>::result...>;
  static constexpr wait_kind corio_wait = wait_kind::select;  ///< for the task dump
  /// The number of cases, for the task dump.
  std::uintptr_t corio_wait_object() const noexcept { return n; }

  explicit select_operation(Cases... cases) : cases_(std::move(cases)...) {}
  select_operation(const select_operation&) = delete;
  select_operation& operator=(const select_operation&) = delete;
  /// Destroyed while parked (shutdown): take every node off its channel, under the channels'
  /// locks (see channel_wait).
  ~select_operation() {
    if (!parked_) return;
    lock_all();
    unlink_all(std::make_index_sequence<n>{});
    unlock_all();
  }

  bool await_ready() {
    collect_locks();
    lock_all(defaults == 0);
    // A random permutation of the cases (Fisher-Yates); the first ready channel case wins, and
    // await_suspend queues the cases in the same order.
    for (std::size_t i = 0; i < n; ++i) order_[i] = static_cast<std::uint8_t>(i);
    for (std::size_t i = n; i > 1; --i) std::swap(order_[i - 1], order_[random_u32() % i]);
    wake_ticket w;
    for (std::size_t k = 0; k < n && !decided_; ++k) try_case(order_[k], w);
    if (!decided_) {
      if constexpr (defaults != 0) {
        decide<index_of_default()>(default_t{});
      } else {
        return false;  // the locks stay held until await_suspend parks
      }
    }
    unlock_all();
    if (w) wake_parked(w);
    yield_ = !coop_spend();
    return !yield_;
  }

  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
    if (yield_) {
      schedule_yield(h);
      return transfer(next_after_park());
    }
    try {
      prepare_park(park_, h, binding_of(h), nullptr, stop_of(h));
      park_.solo = false;
      if constexpr (afters != 0) {
        const clock::duration d = std::get<index_of_after()>(cases_).duration;
        timer_.deadline_ns = deadline_after(now(), d).time_since_epoch().count();
        timer_.arm(park_);
      }
    } catch (...) {
      unlock_all();
      throw;
    }
    parked_ = true;  // until settle(): the destructor takes the nodes off under the locks
    enqueue_all();
    if (!arm_park(park_)) {  // the task's stop came first: take the nodes off, go on at once
      unlink_all(std::make_index_sequence<n>{});
      if constexpr (afters != 0) timer_.disarm();
      unlock_all();
      return h;
    }
    unlock_all();  // publishes the nodes: touch nothing of this frame after (llvm #56301)
    return transfer(next_after_park());
  }

  /// The fired case's index is the variant's index(); its alternative is the case's result.
  result_type await_resume() {
    if (!decided_) settle();
    return std::move(*result_);
  }

 private:
  static constexpr std::size_t index_of_after() {
    constexpr bool flags[] = {is_after<Cases>...};
    for (std::size_t i = 0; i < n; ++i) {
      if (flags[i]) return i;
    }
    return n;
  }
  static constexpr std::size_t index_of_default() {
    constexpr bool flags[] = {is_default<Cases>...};
    for (std::size_t i = 0; i < n; ++i) {
      if (flags[i]) return i;
    }
    return n;
  }

  template <std::size_t I, class R>
  void decide(R&& r) {
    result_.emplace(std::in_place_index<I>, std::forward<R>(r));
    decided_ = true;
  }

  template <std::size_t I>
  channel_core* core_of() noexcept {
    auto& c = std::get<I>(cases_);
    if constexpr (select_case_traits<std::tuple_element_t<I, std::tuple<Cases...>>>::channel) {
      return c.channel;
    } else {
      return nullptr;
    }
  }

  void collect_locks() {
    locks_count_ = 0;
    [this]<std::size_t... I>(std::index_sequence<I...>) {
      ((add_lock(core_of<I>())), ...);
    }(std::make_index_sequence<n>{});
    std::sort(locks_.begin(), locks_.begin() + locks_count_);
    locks_count_ = static_cast<std::size_t>(std::unique(locks_.begin(), locks_.begin() + locks_count_) - locks_.begin());
  }
  void add_lock(channel_core* c) {
    if (c == nullptr) return;
    locks_[locks_count_++] = c;
  }
  /// Locks every channel in address order (channel_core::lock_slow). `may_park`: raise the wait
  /// flags before the cases are tried, so that no fast-path operation can take a value from, or
  /// put one into, a channel this select may park on without seeing the select's nodes.
  void lock_all(bool may_park = false) noexcept {
    const unsigned flags = may_park ? (channel_core::receive_flag | channel_core::send_flag) : channel_core::no_flags;
    for (std::size_t i = 0; i < locks_count_; ++i) {
      CORIO_ASSERT(i == 0 || std::less<>{}(locks_[i - 1], locks_[i]), "select-locks-ordered");
      locks_[i]->lock_slow(flags);
    }
  }
  void unlock_all() noexcept {
    for (std::size_t i = locks_count_; i > 0; --i) locks_[i - 1]->unlock_slow();
  }

  /// Tries case `i` now (locks held); decides the select if it completes.
  void try_case(std::size_t i, wake_ticket& w) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((i == I ? try_case_at<I>(w) : void()), ...);
    }(std::make_index_sequence<n>{});
  }
  template <std::size_t I>
  void try_case_at(wake_ticket& w) {
    using Case = std::tuple_element_t<I, std::tuple<Cases...>>;
    auto& c = std::get<I>(cases_);
    if constexpr (select_case_traits<Case>::channel) {
      if constexpr (std::is_same_v<typename select_case_traits<Case>::result, channel_status>) {  // send
        const channel_status s = c.channel->send_locked(*c.value, w);
        if (s != channel_status::would_block) decide<I>(s);
      } else {  // recv
        auto& slot = std::get<I>(slots_).value;
        const channel_status s = c.channel->recv_locked(slot, w);
        if (s == channel_status::delivered) decide<I>(std::move(slot));
        else if (s == channel_status::closed) decide<I>(std::optional<typename decltype(std::get<I>(slots_).value)::value_type>{});
      }
    }
  }

  /// Queues a node for every channel case, in the random order await_ready drew (locks held).
  void enqueue_all() noexcept {
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = order_[k];
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((i == I ? enqueue_at<I>() : void()), ...);
      }(std::make_index_sequence<n>{});
    }
  }
  template <std::size_t I>
  void enqueue_at() noexcept {
    using Case = std::tuple_element_t<I, std::tuple<Cases...>>;
    if constexpr (select_case_traits<Case>::channel) {
      auto& c = std::get<I>(cases_);
      wait_node& node = nodes_[I];
      node.owner = &park_;
      node.case_index = static_cast<std::uint32_t>(I + 1);
      if constexpr (std::is_same_v<typename select_case_traits<Case>::result, channel_status>) {
        node.slot = c.value;
        node.sender = true;
        c.channel->senders.push_back(node);
      } else {
        node.slot = &std::get<I>(slots_).value;
        node.sender = false;
        c.channel->receivers.push_back(node);
      }
    }
  }

  /// After a parked select: find the winner, take every other node off its channel. Throws
  /// operation_cancelled when cancellation ended it (no case took effect).
  void settle() {
    parked_ = false;
    disarm_park(park_);
    const std::uint32_t c = park_.claim.load(std::memory_order_acquire);
    CORIO_ASSERT(c != park_state::waiting, "claim-once-then-effect");  // only a claimer wakes a task
    lock_all();
    unlink_all(std::make_index_sequence<n>{});
    unlock_all();
    if (c == park_state::cancelled) {
      if constexpr (afters != 0) timer_.disarm();  // resumed where it parked: the timer's worker
      throw_cancelled(park_, "corio::select: cancelled");
    }
    if constexpr (afters != 0) {
      if (c == park_state::timed_out) {
        decide<index_of_after()>(timed_out_t{});
        return;
      }
      timer_.disarm();  // a peer won and woke us on the timer's worker
    }
    const std::size_t winner = c - 1;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((winner == I ? settle_at<I>() : void()), ...);
    }(std::make_index_sequence<n>{});
  }
  template <std::size_t... I>
  void unlink_all(std::index_sequence<I...>) noexcept {
    (unlink_at<I>(), ...);
  }
  template <std::size_t I>
  void unlink_at() noexcept {
    using Case = std::tuple_element_t<I, std::tuple<Cases...>>;
    if constexpr (select_case_traits<Case>::channel) std::get<I>(cases_).channel->unlink(nodes_[I]);
  }
  template <std::size_t I>
  void settle_at() {
    using Case = std::tuple_element_t<I, std::tuple<Cases...>>;
    if constexpr (select_case_traits<Case>::channel) {
      if constexpr (std::is_same_v<typename select_case_traits<Case>::result, channel_status>) {
        decide<I>(nodes_[I].closed ? channel_status::closed : channel_status::delivered);
      } else {
        decide<I>(std::move(std::get<I>(slots_).value));  // empty when the channel was closed
      }
    }
  }

  std::tuple<Cases...> cases_;
  std::tuple<select_slot<Cases>...> slots_{};
  std::array<wait_node, n> nodes_{};
  std::array<std::uint8_t, n> order_{};  ///< await_ready's random case order, kept for enqueue_all
  std::array<channel_core*, channels == 0 ? 1 : channels> locks_{};
  std::size_t locks_count_ = 0;
  park_state park_{};
  [[no_unique_address]] std::conditional_t<afters != 0, park_timer, std::monostate> timer_{};
  std::optional<result_type> result_{};
  bool decided_ = false;
  bool parked_ = false;  ///< the nodes were queued and settle() has not run
  bool yield_ = false;
};

}  // namespace detail

/// Waits on several channel operations at once and runs exactly one (Go's select):
/// `co_await corio::select(a.recv_case(), b.send_case(v), corio::after(5ms))`. Cases: a
/// channel's recv_case() (result std::optional<T>, empty once closed and drained), send_case(v)
/// (result channel_status::delivered or channel_status::closed; `v` is moved from only if that case wins), at
/// most one corio::after(d) (result timed_out_t) and at most one corio::default_case() (result
/// default_t: taken, without waiting, when no other case is ready at that instant).
///
/// The result is a std::variant whose index() is the position of the case that fired and whose
/// alternative is that case's result (`std::get<1>(r)`). Among cases ready at once, one is chosen
/// uniformly at random (a permutation drawn from the worker's generator, seeded by
/// runtime_options::seed); a select that waits queues its cases in that same random order, so
/// that of several cases on one channel each is equally likely to be the one a later peer takes
/// (Go's fairness, checked by its TestPseudoRandomSend). A case that does not win takes no value
/// and loses none, and leaves no waiter behind on its channel. A closed channel's cases are always ready. The same channel may
/// appear in several cases. A case refers to its channel without owning it: keep a handle to each
/// channel (and the value of a send case) alive until the co_await returns. Throws
/// std::logic_error outside a task on a runtime (when it would have to wait).
template <class... Cases>
[[nodiscard("co_await it")]] detail::select_operation<Cases...> select(Cases... cases) {
  return detail::select_operation<Cases...>{std::move(cases)...};
}

}  // namespace corio
