// benchmarks/programs/link_timeout_bench.cpp - timeout() around reads: linked timeouts against the
// wheel's timer (issue 19).
//
//   link_timeout_bench [--round-trips N] [--runs N] [--workers N]
//
// A TCP ping-pong over 127.0.0.1 on one runtime: a client task writes 64 bytes and reads the echo,
// a server task reads and writes them back, --round-trips times (20000); every read is
// `corio::timeout(5s, stream.read_some(buf))`, so no timeout ever fires. Measured with
// CORIO_URING_LINK_TIMEOUT=1 (on io_uring: each read goes out with a linked IORING_OP_LINK_TIMEOUT)
// and without (the default: each read arms and removes a timer in the worker's wheel),
// --runs times each (3), alternating, on a fresh runtime of --workers workers (2) each time.
// Prints one line per mode with the median rate, and their ratio:
//   <linked|wheel> round_trips/s=<median> runs=<each> linked_timeouts=<of the last run>
//   ratio linked/wheel=<x>
// On the Asio reactor (CORIO_BACKEND=asio) both modes use the wheel.
#include <fmt/format.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <corio/corio.hpp>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
constexpr std::size_t message = 64;

/// Reads exactly `buf.size()` bytes, each read under a 5 s timeout; false at end of stream.
corio::task<bool> read_exactly(corio::net::tcp_stream* s, std::span<std::byte> buf) {
  std::size_t got = 0;
  while (got < buf.size()) {
    const std::size_t n = co_await corio::timeout(5s, s->read_some(buf.subspan(got)));
    if (n == 0) co_return false;
    got += n;
  }
  co_return true;
}

corio::task<void> server(corio::net::tcp_stream* s, std::size_t round_trips) {
  std::array<std::byte, message> buf{};
  for (std::size_t i = 0; i < round_trips; ++i) {
    const bool ok = co_await read_exactly(s, buf);
    if (!ok) co_return;
    co_await s->write_all(buf);
  }
}

corio::task<std::size_t> client(corio::net::tcp_stream* s, std::size_t round_trips) {
  std::array<std::byte, message> buf{};
  std::size_t done = 0;
  for (std::size_t i = 0; i < round_trips; ++i) {
    buf[0] = static_cast<std::byte>(i);
    co_await s->write_all(buf);
    const bool ok = co_await read_exactly(s, buf);
    if (!ok || buf[0] != static_cast<std::byte>(i)) break;
    ++done;
  }
  co_return done;
}

corio::task<std::size_t> ping_pong(std::size_t round_trips) {
  auto l = corio::net::tcp_listener::bind("127.0.0.1:0");
  corio::net::tcp_stream c = co_await corio::net::tcp_stream::connect(l.local_endpoint());
  corio::net::tcp_stream s = co_await l.accept();
  auto srv = corio::spawn(server(&s, round_trips));
  auto cli = corio::spawn(client(&c, round_trips));
  const std::size_t done = co_await cli;
  co_await srv;
  co_return done;
}

struct run_result {
  double rate;
  std::uint64_t linked;
};

run_result run(unsigned workers, bool wheel, std::size_t round_trips) {
  if (wheel) ::unsetenv("CORIO_URING_LINK_TIMEOUT");
  else ::setenv("CORIO_URING_LINK_TIMEOUT", "1", 1);
  corio::runtime rt{{.workers = workers}};
  const auto start = clock_type::now();
  const std::size_t done = rt.block_on(ping_pong(round_trips));
  const double s = std::chrono::duration<double>(clock_type::now() - start).count();
  std::uint64_t linked = 0;
  for (const auto& w : rt.stats().workers) linked += w.linked_timeouts;
  if (done != round_trips) {
    fmt::print(stderr, "link_timeout_bench: {} round trips of {}\n", done, round_trips);
    std::exit(1);
  }
  return {static_cast<double>(done) / s, linked};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t round_trips = 20000;
  unsigned runs = 3;
  unsigned workers = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view arg = argv[i];
    const unsigned long v = std::strtoul(argv[i + 1], nullptr, 10);
    if (arg == "--round-trips") round_trips = std::clamp(v, 1ul, 100'000'000ul);
    else if (arg == "--runs") runs = static_cast<unsigned>(std::clamp(v, 1ul, 101ul));
    else if (arg == "--workers") workers = static_cast<unsigned>(std::clamp(v, 1ul, 256ul));
    else {
      fmt::print(stderr, "usage: link_timeout_bench [--round-trips N] [--runs N] [--workers N]\n");
      return 2;
    }
  }
  if (argc % 2 == 0) {
    fmt::print(stderr, "usage: link_timeout_bench [--round-trips N] [--runs N] [--workers N]\n");
    return 2;
  }
  std::vector<double> linked, wheel;
  std::uint64_t linked_count = 0, wheel_count = 0;
  for (unsigned i = 0; i < runs; ++i) {
    const run_result a = run(workers, false, round_trips);
    linked.push_back(a.rate);
    linked_count = a.linked;
    const run_result b = run(workers, true, round_trips);
    wheel.push_back(b.rate);
    wheel_count = b.linked;
  }
  const double ml = median(linked), mw = median(wheel);
  fmt::print("linked round_trips/s={:.0f} runs={:.0f} linked_timeouts={}\n", ml, fmt::join(linked, ","), linked_count);
  fmt::print("wheel round_trips/s={:.0f} runs={:.0f} linked_timeouts={}\n", mw, fmt::join(wheel, ","), wheel_count);
  fmt::print("ratio linked/wheel={:.3f}\n", ml / mw);
  return 0;
}
