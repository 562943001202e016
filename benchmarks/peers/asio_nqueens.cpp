// asio_nqueens: the same-run Asio peer of benchmarks/programs/nqueens.cpp: the 11-queens count
// with a co_spawn per queen placed, on standalone Asio C++20 coroutines.
//
// Every queen a coroutine can place in its row co_spawns the search of the next row onto the
// current executor (an asio::thread_pool of --threads threads, default 2); the parent joins them
// with a per-parent counter and a concurrent_channel (see asio_join.hpp). Result 2680.
//
// usage: asio_nqueens [--threads N] [--runs N] [--warmup N] [--n N]   (N in [1, 14], default 11)
// Output and exit status: see benchmarks/programs/bench_harness.hpp.
#include "asio_join.hpp"

#include <bit>
#include <cstdint>
#include <memory>

#include "bench_harness.hpp"

namespace {

asio::awaitable<std::int64_t> place(int n, int row, std::uint32_t cols, std::uint32_t diag1, std::uint32_t diag2) {
  if (row == n) co_return 1;
  const std::uint32_t all = (std::uint32_t{1} << n) - 1;
  std::uint32_t free = all & ~(cols | diag1 | diag2);
  if (free == 0) co_return 0;
  auto ex = co_await asio::this_coro::executor;
  auto state = std::make_shared<peers::join_state>(std::popcount(free));
  while (free != 0) {
    const std::uint32_t bit = free & (~free + 1);
    free ^= bit;
    asio::co_spawn(ex, place(n, row + 1, cols | bit, ((diag1 | bit) << 1) & all, (diag2 | bit) >> 1),
                   peers::child_done{state});
  }
  const std::int64_t sum = co_await peers::join_children(state);
  co_return peers::checked(*state, sum);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "asio_nqueens", {11, 1, 14});
  asio::thread_pool pool(opt.workers);
  const int n = static_cast<int>(opt.n);
  int rc = bench::measure("asio_nqueens", opt, bench::nqueens_value(opt.n),
                          [&] { return asio::co_spawn(pool, place(n, 0, 0, 0, 0), asio::use_future).get(); });
  pool.join();
  return rc;
}
