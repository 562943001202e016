// skynet: 1,000,000 leaf tasks in a tree of branching 10 and depth 6, on corio.
//
// The shape of github.com/atemerev/skynet: skynet(num, size) with size == 1 is a leaf and returns
// num; otherwise it runs 10 children skynet(num + i * size/10, size/10) and returns the sum of
// their results. Every node below the root is its own task. The root is run with runtime::block_on
// (which spawns it as a task on a worker). 1,111,111 tasks in all; result 499999500000 (the sum of
// 0..999999). This file builds two programs:
// - skynet: a parent spawns its 10 children (corio::spawn) and awaits their 10 join_handles in
//   order, the shape of the Go and Tokio peers.
// - skynet_when_all (built with SKYNET_WHEN_ALL=1): a parent runs its children with
//   `co_await corio::when_all(std::array<task, 10>)`; each child is still its own task, queued on
//   the worker and stealable by the others, and the last to finish resumes the parent (one atomic
//   decrement per child, no join handles). The shape of TooManyCooks' skynet (tmc::spawn_many),
//   the fastest C++ runtime the scheduler issue measured.
//
// usage: skynet[_when_all] [--workers N] [--runs N] [--warmup N] [--n LEAVES]   (a power of 10)
// Output and exit status: see bench_harness.hpp. Timed: block_on of the root task.
#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>

#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/when_all.hpp>

#include "bench_harness.hpp"

#ifndef SKYNET_WHEN_ALL
#define SKYNET_WHEN_ALL 0
#endif

namespace {

constexpr const char* name = SKYNET_WHEN_ALL ? "skynet_when_all" : "skynet";
constexpr std::int64_t branching = 10;

// Parameters by value, no coroutine lambdas (GCC 12 coroutine bugs; DESIGN.md).
corio::task<std::int64_t> skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) co_return num;
  const std::int64_t step = size / branching;
  std::int64_t sum = 0;
  if constexpr (SKYNET_WHEN_ALL) {
    std::array<corio::task<std::int64_t>, branching> children;
    for (std::int64_t i = 0; i < branching; ++i) children[i] = skynet(num + i * step, step);
    for (const std::int64_t r : co_await corio::when_all(std::move(children))) sum += r;
  } else {
    std::array<corio::join_handle<std::int64_t>, branching> children;
    for (std::int64_t i = 0; i < branching; ++i) children[i] = corio::spawn(skynet(num + i * step, step));
    for (auto& child : children) sum += co_await child;
  }
  co_return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, name, {1'000'000, 1, 10'000'000});
  if (!bench::is_power_of_10(opt.n)) bench::usage(name, "--n must be a power of 10");
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure(name, opt, bench::sum_below(opt.n), [&] { return rt.block_on(skynet(0, opt.n)); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: cannot start the runtime: %s\n", name, e.what());
    return 2;
  }
}
