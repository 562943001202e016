// skynet: 1,000,000 leaf tasks in a tree of branching 10 and depth 6, on corio.
//
// The shape of github.com/atemerev/skynet: skynet(num, size) with size == 1 is a leaf and returns
// num; otherwise it spawns 10 children skynet(num + i * size/10, size/10) and returns the sum of
// their results. Every node below the root is its own task (corio::spawn), and a parent awaits its
// 10 join_handles in order. The root is run with runtime::block_on (which spawns it as a task on a
// worker). 1,111,111 tasks in all; result 499999500000 (the sum of 0..999999).
//
// usage: skynet [--workers N] [--runs N] [--warmup N] [--n LEAVES]   (LEAVES a power of 10)
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

constexpr std::int64_t branching = 10;

// Parameters by value, no coroutine lambdas (GCC 12 coroutine bugs; DESIGN.md).
corio::task<std::int64_t> skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) co_return num;
  const std::int64_t step = size / branching;
  std::array<corio::join_handle<std::int64_t>, branching> children;
  for (std::int64_t i = 0; i < branching; ++i) children[i] = corio::spawn(skynet(num + i * step, step));
  std::int64_t sum = 0;
  for (auto& child : children) sum += co_await child;
  co_return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "skynet", {1'000'000, 1, 10'000'000});
  if (!bench::is_power_of_10(opt.n)) bench::usage("skynet", "--n must be a power of 10");
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure("skynet", opt, bench::sum_below(opt.n), [&] { return rt.block_on(skynet(0, opt.n)); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "skynet: cannot start the runtime: %s\n", e.what());
    return 2;
  }
}
