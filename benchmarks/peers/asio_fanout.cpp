// asio_fanout: the same-run Asio peer of benchmarks/programs/fanout.cpp: 1,000,000 coroutines
// co_spawned from a foreign (non-pool) thread, then all joined, on standalone Asio.
//
// The main thread co_spawns leaf(i) for i in 0..n-1 onto an asio::thread_pool of --threads
// threads (default 2), each with a completion handler that adds the result to an atomic sum and
// counts down; the last one opens a std::latch the main thread waits on. (corio's version keeps
// join_handles and awaits them from one task; Asio's co_spawn reports through its completion
// handler, so the handler is the join.) The shared state is a shared_ptr the handlers hold, so the
// main thread may return while the last handler is still leaving. Result 499999500000.
//
// usage: asio_fanout [--threads N] [--runs N] [--warmup N] [--n TASKS]
// Output and exit status: see benchmarks/programs/bench_harness.hpp.
#include "asio_join.hpp"

#include <atomic>
#include <cstdint>
#include <exception>
#include <latch>
#include <memory>
#include <stdexcept>

#include "bench_harness.hpp"

namespace {

asio::awaitable<std::int64_t> leaf(std::int64_t i) { co_return i; }

struct fanout_state {
  explicit fanout_state(std::int64_t n) : pending(n) {}
  std::atomic<std::int64_t> pending;
  std::atomic<std::int64_t> sum{0};
  std::atomic<bool> failed{false};
  std::latch done{1};
};

struct leaf_done {
  std::shared_ptr<fanout_state> state;
  void operator()(std::exception_ptr error, std::int64_t value) const {
    if (error) {
      state->failed.store(true, std::memory_order_relaxed);
    } else {
      state->sum.fetch_add(value, std::memory_order_relaxed);
    }
    if (state->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) state->done.count_down();
  }
};

std::int64_t run_once(asio::thread_pool& pool, std::int64_t n) {
  auto state = std::make_shared<fanout_state>(n);
  for (std::int64_t i = 0; i < n; ++i) asio::co_spawn(pool, leaf(i), leaf_done{state});
  state->done.wait();
  if (state->failed.load()) throw std::runtime_error("a leaf coroutine threw");
  return state->sum.load();
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "asio_fanout", {1'000'000, 1, 10'000'000});
  asio::thread_pool pool(opt.workers);
  int rc = bench::measure("asio_fanout", opt, bench::sum_below(opt.n), [&] { return run_once(pool, opt.n); });
  pool.join();
  return rc;
}
