// mpmc: 4 producer tasks and 4 consumer tasks share one channel of capacity 1024, on corio.
//
// --n messages in all (default 1,000,000), producer p sending p, p + 4, p + 8, ...; consumers
// receive until the channel is closed and drained and add what they got; the result is the sum
// of 0..n-1. The Go peer (benchmarks/go) does the same with a buffered Go channel. Tokio has no
// MPMC channel (its mpsc has one receiver), so it has no peer here.
//
// usage: mpmc [--workers N] [--runs N] [--warmup N] [--n MESSAGES]
// Output: see bench_harness.hpp; also mpmc_rate (messages per second).
#include <corio/channel.hpp>
#include <corio/runtime.hpp>
#include <corio/spawn.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include "bench_harness.hpp"

namespace {

constexpr int producers = 4;
constexpr int consumers = 4;

corio::task<void> produce(corio::channel<std::int64_t> ch, std::int64_t first, std::int64_t n) {
  for (std::int64_t v = first; v < n; v += producers) co_await ch.send(v);
}

corio::task<std::int64_t> consume(corio::channel<std::int64_t> ch) {
  std::int64_t sum = 0;
  for (;;) {
    const auto v = co_await ch.recv();
    if (!v) co_return sum;
    sum += *v;
  }
}

corio::task<std::int64_t> run(std::int64_t n) {
  corio::channel<std::int64_t> ch{1024};
  std::vector<corio::join_handle<void>> ps;
  std::vector<corio::join_handle<std::int64_t>> cs;
  for (int c = 0; c < consumers; ++c) cs.push_back(corio::spawn(consume(ch)));
  for (int p = 0; p < producers; ++p) ps.push_back(corio::spawn(produce(ch, p, n)));
  for (auto& p : ps) co_await p;
  ch.close();
  std::int64_t sum = 0;
  for (auto& c : cs) sum += co_await c;
  co_return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "mpmc", {1'000'000, 1, 100'000'000});
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure("mpmc", opt, bench::sum_below(opt.n), [&] { return rt.block_on(run(opt.n)); }, opt.n);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpmc: cannot start the runtime: %s\n", e.what());
    return 2;
  }
}
