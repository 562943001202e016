// A loop of `co_await corio::spawn(empty())` (or of a send and a receive on a channel of one, or of
// yields), for instruction counts under valgrind and for pinned timings without Google
// Benchmark's own loop around it:
//   CORIO_BACKEND=asio valgrind --tool=callgrind <build>/benchmarks/micro/spawn_join_loop 40000 0
//   taskset -c 1 <build>/benchmarks/micro/spawn_join_loop 50000000 0
// Arguments: the number of iterations, the mode (0 spawn + join, 1 channel, 2 yield), and 1 to
// turn runtime_options::timing_histograms on (default 0). One worker. The per-iteration cost is the difference of two runs (40,000 and 20,000 iterations).
#include <corio/corio.hpp>

#include <cstdlib>

namespace {

corio::task<void> empty() { co_return; }

corio::task<void> spawn_join(long n) {
  for (long i = 0; i < n; ++i) co_await corio::spawn(empty());
}

corio::task<void> channel_round(long n) {
  corio::channel<int> ch{1};
  for (long i = 0; i < n; ++i) {
    co_await ch.send(1);
    auto v = co_await ch.recv();
    (void)v;
  }
}

corio::task<void> yields(long n) {
  for (long i = 0; i < n; ++i) co_await corio::yield();
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 1'000'000;
  const int mode = argc > 2 ? std::atoi(argv[2]) : 0;
  const bool timing = argc > 3 && std::atoi(argv[3]) == 1;
  corio::runtime rt{{.workers = 1, .timing_histograms = timing}};
  if (mode == 0) rt.block_on(spawn_join(n));
  else if (mode == 1) rt.block_on(channel_round(n));
  else rt.block_on(yields(n));
}
