// channel_throughput: the channel program of tzcnt/runtime-benchmarks (cpp/*/channel.cpp), written
// for corio shape for shape: P producers and C consumers (P = C = threads / 2, at least 1) share
// one MPMC channel; 10,000,000 std::size_t values in all, producer i sending its contiguous share
// base_i .. base_i + count_i - 1; consumers receive until the channel is closed and drained; the
// count and the sum are checked. One untimed warm-up run, then one timed run, as the original.
// TooManyCooks' channel is unbounded; corio's is bounded (capacity 1024 by default, as issue 22
// measures). Compared against TooManyCooks' own build of the same program by
// benchmarks/channel_compare.sh.
//
// usage: channel_throughput [THREADS=2] [CAPACITY=1024]
// Output: "duration: N us" and "elements/sec: N" (runtime-benchmarks' lines); exit status 1 when
// the count or the sum is wrong, 2 on bad arguments.
#include <corio/channel.hpp>
#include <corio/runtime.hpp>
#include <corio/spawn.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

constexpr std::size_t element_count = 10'000'000;

struct result {
  std::size_t count = 0;
  std::size_t sum = 0;
};

corio::task<void> producer(corio::channel<std::size_t> ch, std::size_t count, std::size_t base) {
  for (std::size_t i = 0; i < count; ++i) co_await ch.send(base + i);
}

corio::task<result> consumer(corio::channel<std::size_t> ch) {
  result r;
  for (;;) {
    const auto v = co_await ch.recv();  // a variable, never a co_await in the condition (README)
    if (!v) co_return r;
    ++r.count;
    r.sum += *v;
  }
}

corio::task<result> bench(std::size_t producers, std::size_t consumers, std::size_t capacity) {
  corio::channel<std::size_t> ch{capacity};
  std::vector<corio::join_handle<result>> cs;
  for (std::size_t i = 0; i < consumers; ++i) cs.push_back(corio::spawn(consumer(ch)));
  std::vector<corio::join_handle<void>> ps;
  const std::size_t per_task = element_count / producers;
  const std::size_t rem = element_count % producers;
  std::size_t base = 0;
  for (std::size_t i = 0; i < producers; ++i) {
    const std::size_t count = i < rem ? per_task + 1 : per_task;
    ps.push_back(corio::spawn(producer(ch, count, base)));
    base += count;
  }
  for (auto& p : ps) co_await p;
  ch.close();
  result total;
  for (auto& c : cs) {
    const result r = co_await c;
    total.count += r.count;
    total.sum += r.sum;
  }
  co_return total;
}

std::size_t arg(int argc, char** argv, int i, std::size_t fallback, std::size_t lo, std::size_t hi) {
  if (argc <= i) return fallback;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(argv[i], &end, 10);
  if (end == argv[i] || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "usage: channel_throughput [THREADS=2] [CAPACITY=1024]\n");
    std::exit(2);
  }
  return static_cast<std::size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t threads = arg(argc, argv, 1, 2, 1, 1024);
  const std::size_t capacity = arg(argc, argv, 2, 1024, 0, std::size_t{1} << 30);
  const std::size_t pc = threads / 2 == 0 ? 1 : threads / 2;
  std::size_t expected = 0;
  for (std::size_t i = 0; i < element_count; ++i) expected += i;
  std::printf("threads: %zu\nproducers: %zu\nconsumers: %zu\ncapacity: %zu\n", threads, pc, pc, capacity);
  corio::runtime rt{{.workers = static_cast<unsigned>(threads)}};
  const result warm = rt.block_on(bench(pc, pc, capacity));
  const auto start = std::chrono::steady_clock::now();
  const result r = rt.block_on(bench(pc, pc, capacity));
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  int status = 0;
  for (const result& x : {warm, r}) {
    if (x.count != element_count || x.sum != expected) {
      std::printf("FAIL: %zu elements (sum %zu), expected %zu (sum %zu)\n", x.count, x.sum, element_count, expected);
      status = 1;
    }
  }
  std::printf("duration: %lld us\nelements/sec: %.0f\n", static_cast<long long>(us),
              static_cast<double>(element_count) * 1e6 / static_cast<double>(us));
  return status;
}
