// fanout: 1,000,000 tasks spawned from a foreign (non-worker) thread, then all joined, on corio.
//
// The main thread (not a worker) calls runtime::spawn(leaf(i)) for i in 0..n-1, which goes through
// the runtime's injection queue, and keeps the join_handles in a vector. A join_handle can only
// be awaited from a task, so the vector is then moved into one task, run with block_on, that
// awaits every handle in spawn order and returns the sum. Result 499999500000 (sum of 0..999999).
// The workers start running leaves while the main thread is still spawning.
//
// usage: fanout [--workers N] [--runs N] [--warmup N] [--n TASKS]
// Output and exit status: see bench_harness.hpp. Timed: the spawn loop plus block_on of the
// joining task (the vector's allocation included).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <utility>
#include <vector>

#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include "bench_harness.hpp"

namespace {

corio::task<std::int64_t> leaf(std::int64_t i) { co_return i; }

corio::task<std::int64_t> join_all(std::vector<corio::join_handle<std::int64_t>> handles) {
  std::int64_t sum = 0;
  for (auto& h : handles) sum += co_await h;
  co_return sum;
}

std::int64_t run_once(corio::runtime& rt, std::int64_t n) {
  std::vector<corio::join_handle<std::int64_t>> handles;
  handles.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) handles.push_back(rt.spawn(leaf(i)));
  return rt.block_on(join_all(std::move(handles)));
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "fanout", {1'000'000, 1, 10'000'000});
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure("fanout", opt, bench::sum_below(opt.n), [&] { return run_once(rt, opt.n); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fanout: cannot start the runtime: %s\n", e.what());
    return 2;
  }
}
