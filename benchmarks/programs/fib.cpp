// fib: fib(30) with a task per call, on corio.
//
// fib(n) for n >= 2 runs BOTH fib(n-1) and fib(n-2) as tasks, so every call below the root is its
// own task: 2,692,536 tasks for fib(30) (2*fib(31) - 2), no work besides the scheduling. fib(0)
// and fib(1) return at once. Result 832040. This file builds two programs:
// - fib: both children spawned (corio::spawn) and their two join_handles awaited; the Asio, Go and
//   Tokio peers spawn both children too.
// - fib_when_all (built with FIB_WHEN_ALL=1): `co_await corio::when_all(fib(n-1), fib(n-2))`; each
//   child is still its own task, queued on the worker and stealable by the others, and the last to
//   finish resumes the parent (no join handles). The shape of TooManyCooks' fib (spawn_many).
//
// usage: fib[_when_all] [--workers N] [--runs N] [--warmup N] [--n N]   (N in [0, 40], default 30)
// Output and exit status: see bench_harness.hpp. Timed: block_on of the root task. The 1 -> 2
// worker speedup (DESIGN.md "Performance") is `fib --workers 1` over `fib --workers 2`.
#include <cstdint>
#include <cstdio>
#include <exception>

#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>
#include <corio/when_all.hpp>

#include "bench_harness.hpp"

#ifndef FIB_WHEN_ALL
#define FIB_WHEN_ALL 0
#endif

namespace {

constexpr const char* name = FIB_WHEN_ALL ? "fib_when_all" : "fib";

corio::task<std::int64_t> fib(std::int64_t n) {
  if (n < 2) co_return n;
  if constexpr (FIB_WHEN_ALL) {
    const auto [x, y] = co_await corio::when_all(fib(n - 1), fib(n - 2));
    co_return x + y;
  } else {
    auto a = corio::spawn(fib(n - 1));
    auto b = corio::spawn(fib(n - 2));
    const std::int64_t x = co_await a;
    const std::int64_t y = co_await b;
    co_return x + y;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, name, {30, 0, 40});
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure(name, opt, bench::fib_value(opt.n), [&] { return rt.block_on(fib(opt.n)); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: cannot start the runtime: %s\n", name, e.what());
    return 2;
  }
}
