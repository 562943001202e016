// asio_skynet: the same-run Asio peer of benchmarks/programs/skynet.cpp: 1,000,000 leaf
// coroutines in a tree of branching 10 and depth 6 (github.com/atemerev/skynet), on standalone
// Asio C++20 coroutines.
//
// Every node below the root is `asio::co_spawn`ed onto the current executor (an asio::thread_pool
// of --threads threads, default 2); a parent joins its 10 children with a per-parent counter and a
// concurrent_channel (see asio_join.hpp). The root is co_spawned onto the pool with use_future and
// the main thread waits on the future. Result 499999500000.
//
// usage: asio_skynet [--threads N] [--runs N] [--warmup N] [--n LEAVES]   (LEAVES a power of 10)
// Output and exit status: see benchmarks/programs/bench_harness.hpp.
#include "asio_join.hpp"

#include <cstdint>
#include <memory>

#include "bench_harness.hpp"

namespace {

constexpr std::int64_t branching = 10;

asio::awaitable<std::int64_t> skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) co_return num;
  const std::int64_t step = size / branching;
  auto ex = co_await asio::this_coro::executor;
  auto state = std::make_shared<peers::join_state>(branching);
  for (std::int64_t i = 0; i < branching; ++i) asio::co_spawn(ex, skynet(num + i * step, step), peers::child_done{state});
  const std::int64_t sum = co_await peers::join_children(state);
  co_return peers::checked(*state, sum);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "asio_skynet", {1'000'000, 1, 10'000'000});
  if (!bench::is_power_of_10(opt.n)) bench::usage("asio_skynet", "--n must be a power of 10");
  asio::thread_pool pool(opt.workers);
  int rc = bench::measure("asio_skynet", opt, bench::sum_below(opt.n),
                          [&] { return asio::co_spawn(pool, skynet(0, opt.n), asio::use_future).get(); });
  pool.join();
  return rc;
}
