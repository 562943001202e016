// test/mixed_build_program.cpp - a small program that suite "build" builds at another
// optimization level than the library it links (test/meson.build) and with the other compiler
// (test/mixed_builds.sh): a million synchronous awaits in a loop, 100,000 nested awaits, spawns
// and joins, and a channel ping-pong, each result checked, on 1 and 2 workers.
// Prints one line per check and exits 0 when all hold, 1 otherwise; killed by SIGALRM after 60 s.
#include <corio/channel.hpp>
#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/task.hpp>

#include <cstdio>
#include <vector>
#if __has_include(<unistd.h>)
#include <unistd.h>  // alarm
#endif

#include "await_chains.hpp"

namespace {

using corio_test::loop_of_awaits;
using corio_test::recurse;

corio::task<long> square(long i) { co_return i * i; }

corio::task<long> spawn_and_join(long n) {
  std::vector<corio::join_handle<long>> handles;
  for (long i = 0; i < n; ++i) handles.push_back(corio::spawn(square(i)));
  long sum = 0;
  for (auto& h : handles) sum += co_await h;
  for (long i = 0; i < n; ++i) sum += co_await corio::spawn(square(i));  // joined at once
  co_return sum;
}

corio::task<void> ponger(corio::channel<long> in, corio::channel<long> out) {
  for (;;) {
    const auto v = co_await in.recv();  // a variable, not a condition: g++ 12 (README)
    if (!v) co_return;
    co_await out.send(*v + 1);
  }
}

corio::task<long> pinger(long n) {
  corio::channel<long> ping{0}, pong{0};
  auto other = corio::spawn(ponger(ping, pong));
  long x = 0;
  for (long i = 0; i < n; ++i) {
    co_await ping.send(x);
    const auto v = co_await pong.recv();
    x = v ? *v : -1;
  }
  ping.close();
  co_await other;
  co_return x;
}

bool check(const char* what, long got, long want) {
  std::printf("%s: %ld (want %ld)\n", what, got, want);
  std::fflush(stdout);
  return got == want;
}

}  // namespace

int main() {
#if __has_include(<unistd.h>)
  alarm(60);  // a hang (a transfer left in the trampoline that nobody resumes) ends with SIGALRM
#endif
  bool ok = true;
  for (unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers}};
    ok &= check("a loop of 1,000,000 synchronous awaits", rt.block_on(loop_of_awaits(1'000'000)), 500'000);
    ok &= check("100,000 nested awaits", rt.block_on(recurse(100'000)), 100'000);
    // The sum of i*i for i < 1000, twice.
    ok &= check("spawn and join", rt.block_on(spawn_and_join(1000)), 2 * 332'833'500);
    ok &= check("channel ping-pong", rt.block_on(pinger(100'000)), 100'000);
  }
  return ok ? 0 : 1;
}
