// asio_join.hpp - what the Asio peers of corio's scheduler benchmarks (asio_skynet, asio_fib,
// asio_nqueens, asio_fanout) share: the Asio include and the way a parent joins its children.
//
// How children are joined, and why this way. Standalone Asio 1.22 (Debian 12) has no ranged
// parallel_group (that arrived in 1.24) and its experimental::promise is not thread-safe, so on a
// multi-threaded thread_pool a variable number of co_spawned coroutines is joined with a
// per-parent counter and a completion:
//   * the parent makes one join_state (a shared_ptr), then `co_spawn`s each child onto its own
//     executor with a child_done completion handler holding a reference to it;
//   * child_done adds the child's result to an atomic sum and counts down an atomic counter that
//     started at children + 1 (the extra count is the parent's wait);
//   * the parent `co_await`s join_children(state): a custom asynchronous operation built with
//     asio::async_initiate (Asio's documented way to write one) that stores the parent's
//     completion handler in the state and then counts down itself. Whoever counts down last
//     completes the parent: a child with asio::dispatch (the parent resumes at once on that pool
//     thread, as a channel receive would after a post), the parent itself with asio::post (an
//     initiating function must not call its handler inline).
// Per child: one co_spawn (its frame, the post that starts it and its completion), two atomic
// RMWs and a reference-count pair; per parent: the state and the stored handler. This replaced a
// first version whose parents waited on an asio::experimental::concurrent_channel (try_send by
// the last child, async_receive by the parent), which needed about 1.4x the CPU time for fib(25)
// on one thread: every channel costs a service lookup under the context's lock and a mutex.
// Everything else is Asio's defaults (thread_pool, use_awaitable, the recycling allocator's cache).
// The state is shared (not in the parent's frame) so that the last child may still be inside
// child_done when the parent has resumed on the other thread and returned.
#pragma once

// Asio before 1.24 (Debian 12 ships 1.22.1) only recognises clang's old coroutines TS, so with
// clang++ >= 14 and C++20 it silently compiles out asio::awaitable/co_spawn (see
// asio_http_hello.cpp). Tell it that co_await is there.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#if __has_include(<coroutine>)
#define ASIO_HAS_CO_AWAIT 1
#endif
#endif

#include <asio.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace peers {

/// The parent's completion handler, type-erased (Asio 1.22 has no any_completion_handler).
class waiter_base {
 public:
  virtual ~waiter_base() = default;
  /// Completes the parent with `sum`: inline when `may_run_inline` (asio::dispatch), else posted.
  virtual void complete(std::int64_t sum, bool may_run_inline) = 0;
};

template <class Handler>
class waiter final : public waiter_base {
 public:
  explicit waiter(Handler h) : handler_(std::move(h)) {}
  void complete(std::int64_t sum, bool may_run_inline) override {
    auto ex = asio::get_associated_executor(handler_);
    // A plain (non-coroutine) lambda: the handler moved in, called with the sum.
    auto bound = [h = std::move(handler_), sum]() mutable { std::move(h)(sum); };
    if (may_run_inline) {
      asio::dispatch(ex, std::move(bound));
    } else {
      asio::post(ex, std::move(bound));
    }
  }

 private:
  Handler handler_;
};

struct join_state {
  explicit join_state(std::int64_t children) : pending(children + 1) {}
  std::atomic<std::int64_t> pending;  ///< children that have not finished, + 1 until the parent waits
  std::atomic<std::int64_t> sum{0};   ///< sum of the finished children's results
  std::atomic<bool> failed{false};    ///< a child threw
  std::unique_ptr<waiter_base> parent;  ///< the parent's handler; written before its count-down

  /// One count-down; the last one completes the parent with the sum. acq_rel: the last one sees
  /// every child's fetch_add and the parent's handler (each precedes its own count-down).
  void arrive(bool may_run_inline) {
    if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::unique_ptr<waiter_base> w = std::move(parent);
      w->complete(sum.load(std::memory_order_relaxed), may_run_inline);
    }
  }
};

/// co_spawn's completion handler for a child: accumulate, count down.
struct child_done {
  std::shared_ptr<join_state> state;
  void operator()(std::exception_ptr error, std::int64_t value) const {
    if (error) {
      state->failed.store(true, std::memory_order_relaxed);
    } else {
      state->sum.fetch_add(value, std::memory_order_relaxed);
    }
    state->arrive(true);
  }
};

struct join_initiation {
  template <class Handler>
  void operator()(Handler&& handler, std::shared_ptr<join_state> state) const {
    state->parent = std::make_unique<waiter<std::decay_t<Handler>>>(std::forward<Handler>(handler));
    state->arrive(false);
  }
};

/// The awaitable that completes with the sum of the children's results once all of them have
/// finished: `co_await peers::join_children(state)` in the parent, once.
inline auto join_children(const std::shared_ptr<join_state>& state) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::int64_t)>(join_initiation{}, asio::use_awaitable,
                                                                               state);
}

/// Returns `sum` (what join_children gave), or throws std::runtime_error when a child threw.
inline std::int64_t checked(const join_state& state, std::int64_t sum) {
  if (state.failed.load(std::memory_order_relaxed)) throw std::runtime_error("a child coroutine threw");
  return sum;
}

}  // namespace peers
