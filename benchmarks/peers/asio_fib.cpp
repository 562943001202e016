// asio_fib: the same-run Asio peer of benchmarks/programs/fib.cpp: fib(30) with a co_spawn per
// call, on standalone Asio C++20 coroutines.
//
// fib(n) for n >= 2 co_spawns BOTH fib(n-1) and fib(n-2) onto the current executor (an
// asio::thread_pool of --threads threads, default 2) and joins them with a per-parent counter and
// a concurrent_channel (see asio_join.hpp), as the corio program spawns both. Result 832040.
//
// usage: asio_fib [--threads N] [--runs N] [--warmup N] [--n N]   (N in [0, 40], default 30)
// Output and exit status: see benchmarks/programs/bench_harness.hpp.
#include "asio_join.hpp"

#include <cstdint>
#include <memory>

#include "bench_harness.hpp"

namespace {

asio::awaitable<std::int64_t> fib(std::int64_t n) {
  if (n < 2) co_return n;
  auto ex = co_await asio::this_coro::executor;
  auto state = std::make_shared<peers::join_state>(2);
  asio::co_spawn(ex, fib(n - 1), peers::child_done{state});
  asio::co_spawn(ex, fib(n - 2), peers::child_done{state});
  const std::int64_t sum = co_await peers::join_children(state);
  co_return peers::checked(*state, sum);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "asio_fib", {30, 0, 40});
  asio::thread_pool pool(opt.workers);
  int rc = bench::measure("asio_fib", opt, bench::fib_value(opt.n),
                          [&] { return asio::co_spawn(pool, fib(opt.n), asio::use_future).get(); });
  pool.join();
  return rc;
}
