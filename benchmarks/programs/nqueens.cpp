// nqueens: the number of solutions of the 11-queens problem, with a spawn per row, on corio.
//
// place(row, cols, diag1, diag2) (bitmasks of the attacked columns) returns 1 when row == n;
// otherwise every queen it can place in `row` spawns (corio::spawn) the search of the next row
// with that queen added, and the task returns the sum of its children's results, awaiting their
// join_handles in order. 166,926 tasks for n = 11 (every partial placement is one); result 2680.
//
// usage: nqueens [--workers N] [--runs N] [--warmup N] [--n N]   (N in [1, 14], default 11)
// Output and exit status: see bench_harness.hpp. Timed: block_on of the root task.
#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>

#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include "bench_harness.hpp"

namespace {

constexpr int max_n = 14;  // 15 needs several GB of live tasks

corio::task<std::int64_t> place(int n, int row, std::uint32_t cols, std::uint32_t diag1, std::uint32_t diag2) {
  if (row == n) co_return 1;
  const std::uint32_t all = (std::uint32_t{1} << n) - 1;
  std::uint32_t free = all & ~(cols | diag1 | diag2);
  std::array<corio::join_handle<std::int64_t>, max_n> children;
  int k = 0;
  while (free != 0) {
    const std::uint32_t bit = free & (~free + 1);
    free ^= bit;
    children[k++] = corio::spawn(place(n, row + 1, cols | bit, ((diag1 | bit) << 1) & all, (diag2 | bit) >> 1));
  }
  std::int64_t sum = 0;
  for (int i = 0; i < k; ++i) sum += co_await children[i];
  co_return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "nqueens", {11, 1, max_n});
  try {
    corio::runtime rt{{.workers = opt.workers}};
    const int n = static_cast<int>(opt.n);
    return bench::measure("nqueens", opt, bench::nqueens_value(opt.n),
                          [&] { return rt.block_on(place(n, 0, 0, 0, 0)); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nqueens: cannot start the runtime: %s\n", e.what());
    return 2;
  }
}
