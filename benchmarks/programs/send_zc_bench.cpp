// benchmarks/programs/send_zc_bench.cpp - zero-copy send against plain send over loopback (issue 19).
//
//   send_zc_bench [--writes N] [--runs N] [--workers N]
//
// One TCP connection over 127.0.0.1: a task write_all's a 1 MiB buffer --writes times (1024),
// another task on the same runtime reads it all with 256 KiB reads. Measured with
// runtime_options::send_zc_threshold at 0 (plain IORING_OP_SEND) and at 64 KiB (every write goes
// out as IORING_OP_SEND_ZC), --runs times each (5), alternating, on a fresh runtime of --workers
// workers (2) each time. Prints one line per mode with the median throughput:
//   <plain|zc> MB/s=<median> runs=<each> send_zc=<SEND_ZC submissions of the last run>
// On the Asio reactor (CORIO_BACKEND=asio) or a kernel without SEND_ZC both modes are plain.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <corio/corio.hpp>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
constexpr std::size_t block = std::size_t{1} << 20;

corio::task<void> writer(corio::net::tcp_stream* s, std::size_t writes) {
  std::vector<std::byte> data(block, std::byte{0x5a});
  for (std::size_t i = 0; i < writes; ++i) co_await s->write_all(data);
  s->shutdown(corio::net::shutdown_type::send);
}

corio::task<std::size_t> reader(corio::net::tcp_stream* s) {
  std::vector<std::byte> buf(256 * 1024);
  std::size_t total = 0;
  for (;;) {
    const std::size_t n = co_await s->read_some(buf);
    if (n == 0) break;
    total += n;
  }
  co_return total;
}

corio::task<std::size_t> transfer(std::size_t writes) {
  auto l = corio::net::tcp_listener::bind("127.0.0.1:0");
  corio::net::tcp_stream c = co_await corio::net::tcp_stream::connect(l.local_endpoint());
  corio::net::tcp_stream s = co_await l.accept();
  auto w = corio::spawn(writer(&c, writes));
  auto r = corio::spawn(reader(&s));
  const std::size_t total = co_await r;
  co_await w;
  co_return total;
}

struct run_result {
  double mb_per_s;
  std::uint64_t send_zc;
};

run_result run(unsigned workers, std::size_t threshold, std::size_t writes) {
  corio::runtime rt{{.workers = workers, .send_zc_threshold = threshold}};
  const auto start = clock_type::now();
  const std::size_t total = rt.block_on(transfer(writes));
  const double s = std::chrono::duration<double>(clock_type::now() - start).count();
  std::uint64_t zc = 0;
  for (const auto& w : rt.stats().workers) zc += w.send_zc;
  if (total != writes * block) {
    fmt::print(stderr, "send_zc_bench: received {} bytes of {}\n", total, writes * block);
    std::exit(1);
  }
  return {static_cast<double>(total) / 1e6 / s, zc};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t writes = 1024;
  unsigned runs = 5;
  unsigned workers = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view arg = argv[i];
    const unsigned long v = std::strtoul(argv[i + 1], nullptr, 10);
    if (arg == "--writes") writes = std::max(1ul, v);
    else if (arg == "--runs") runs = static_cast<unsigned>(std::clamp(v, 1ul, 101ul));
    else if (arg == "--workers") workers = static_cast<unsigned>(std::clamp(v, 1ul, 256ul));
    else {
      fmt::print(stderr, "usage: send_zc_bench [--writes N] [--runs N] [--workers N]\n");
      return 2;
    }
  }
  std::vector<double> plain, zc;
  std::uint64_t zc_count = 0;
  for (unsigned i = 0; i < runs; ++i) {
    plain.push_back(run(workers, 0, writes).mb_per_s);
    const run_result z = run(workers, 64 * 1024, writes);
    zc.push_back(z.mb_per_s);
    zc_count = z.send_zc;
  }
  fmt::print("plain MB/s={:.0f} runs={:.0f}\n", median(plain), fmt::join(plain, ","));
  fmt::print("zc MB/s={:.0f} runs={:.0f} send_zc={}\n", median(zc), fmt::join(zc, ","), zc_count);
  return 0;
}
