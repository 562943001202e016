// asio_pingpong: the same-run Asio peer of benchmarks/programs/pingpong.cpp: two coroutines
// bounce a counter over two asio::experimental::concurrent_channel<void(error_code, int64_t)>
// of capacity 0 (Asio's channels hand over directly when the capacity is 0), on an
// asio::io_context run by --threads threads (default 2; 1 is the single-worker case).
//
// Seen here and not investigated: built with clang 16 and run with --threads 2, it stalls (both
// threads idle in the io_context) somewhere within 1,000,000 round trips; the g++ build and every
// 1-thread run finish. benchmarks/run runs it on 1 thread, the single-worker case of the bar.
//
// usage: asio_pingpong [--threads N] [--runs N] [--warmup N] [--n ROUND_TRIPS]
// Output: see benchmarks/programs/bench_harness.hpp.
// Asio 1.22 turns its C++20 coroutine support on for g++ by itself and for clang only when told
// (as in asio_join.hpp).
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#if __has_include(<coroutine>)
#define ASIO_HAS_CO_AWAIT 1
#endif
#endif

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/experimental/concurrent_channel.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <cstdint>
#include <thread>
#include <vector>

#include "bench_harness.hpp"

namespace {

using channel = asio::experimental::concurrent_channel<void(asio::error_code, std::int64_t)>;

asio::awaitable<void> ponger(channel& in, channel& out) {
  for (;;) {
    asio::error_code ec;
    const std::int64_t v = co_await in.async_receive(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // closed
    co_await out.async_send(asio::error_code{}, v + 1, asio::use_awaitable);
  }
}

asio::awaitable<std::int64_t> pinger(std::int64_t n) {
  auto ex = co_await asio::this_coro::executor;
  channel ping{ex, 0}, pong{ex, 0};
  asio::co_spawn(ex, ponger(ping, pong), asio::detached);
  std::int64_t x = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    co_await ping.async_send(asio::error_code{}, x, asio::use_awaitable);
    x = co_await pong.async_receive(asio::use_awaitable);
  }
  ping.close();
  co_return x;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "asio_pingpong", {1'000'000, 1, 100'000'000});
  asio::io_context io{static_cast<int>(opt.workers)};
  auto guard = asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < opt.workers; ++i) threads.emplace_back([&io] { io.run(); });
  const int rc = bench::measure(
      "asio_pingpong", opt, opt.n, [&] { return asio::co_spawn(io, pinger(opt.n), asio::use_future).get(); }, opt.n);
  guard.reset();
  io.stop();
  for (auto& t : threads) t.join();
  return rc;
}
