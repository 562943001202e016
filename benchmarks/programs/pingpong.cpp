// pingpong: two tasks bounce a counter over two rendezvous (capacity 0) channels, on corio.
//
// The pinger sends i on `ping`, the ponger receives it and sends i + 1 on `pong`, the pinger
// receives that: one round trip is two rendezvous hand-offs and two task switches. --n round
// trips (default 1,000,000); the result is the last value received (n). The Go, Tokio and Asio
// peers do the same with unbuffered Go channels, Tokio mpsc channels of capacity 1, and Asio's
// experimental::concurrent_channel (benchmarks/go, benchmarks/tokio, benchmarks/peers).
//
// usage: pingpong [--workers N] [--runs N] [--warmup N] [--n ROUND_TRIPS]
// Output: see bench_harness.hpp; also pingpong_per_op (ns per round trip).
#include <corio/channel.hpp>
#include <corio/runtime.hpp>
#include <corio/spawn.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>

#include "bench_harness.hpp"

namespace {

corio::task<void> ponger(corio::channel<std::int64_t> in, corio::channel<std::int64_t> out) {
  for (;;) {
    const auto v = co_await in.recv();  // a variable, not a condition: g++ 12 (README)
    if (!v) co_return;
    co_await out.send(*v + 1);
  }
}

corio::task<std::int64_t> pinger(std::int64_t n) {
  corio::channel<std::int64_t> ping{0}, pong{0};
  auto other = corio::spawn(ponger(ping, pong));
  std::int64_t x = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    co_await ping.send(x);
    const auto v = co_await pong.recv();
    x = *v;
  }
  ping.close();
  co_await other;
  co_return x;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "pingpong", {1'000'000, 1, 100'000'000});
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return bench::measure("pingpong", opt, opt.n, [&] { return rt.block_on(pinger(opt.n)); }, opt.n);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pingpong: cannot start the runtime: %s\n", e.what());
    return 2;
  }
}
