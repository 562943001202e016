// fib: fib(30) with a spawn per call, on corio.
//
// fib(n) for n >= 2 spawns BOTH fib(n-1) and fib(n-2) as tasks (corio::spawn) and awaits the two
// join_handles, so every call below the root is its own task: 2,692,536 spawns for fib(30)
// (2*fib(31) - 2), no work besides the scheduling. fib(0) and fib(1) return at once. The Asio,
// Go and Tokio peers spawn both children too. Result 832040.
//
// usage: fib [--workers N] [--runs N] [--warmup N] [--n N]   (N in [0, 40], default 30)
// Output and exit status: see bench_harness.hpp. Timed: block_on of the root task. The 1 -> 2
// worker speedup (DESIGN.md "Performance") is `fib --workers 1` over `fib --workers 2`.
#include <cstdint>
#include <cstdio>
#include <exception>

#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include "bench_harness.hpp"

namespace {

corio::task<std::int64_t> fib(std::int64_t n) {
  if (n < 2) co_return n;
  auto a = corio::spawn(fib(n - 1));
  auto b = corio::spawn(fib(n - 2));
  std::int64_t x = co_await a;
  std::int64_t y = co_await b;
  co_return x + y;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "fib", {30, 0, 40});
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure("fib", opt, bench::fib_value(opt.n), [&] { return rt.block_on(fib(opt.n)); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fib: cannot start the runtime: %s\n", e.what());
    return 2;
  }
}
