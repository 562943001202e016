// Suite "core": the invariant checks of docs/internals.md (CORIO_ASSERT). Built twice, once with
// NDEBUG defined and once without, whatever the library was built with: a program and the library
// may differ in NDEBUG and still work together, because a check never changes a type.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <vector>

#include "test_support.hpp"

using corio_test::scaled;

namespace {

corio::task<long> leaf(long v) { co_return v; }

corio::task<long> spawn_and_join(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await corio::spawn(leaf(i));
  co_return sum;
}

corio::task<void> producer(corio::channel<long> ch, long from, long n) {
  for (long i = from; i < from + n; ++i) co_await ch.send(i);
}

corio::task<long> consume_with_select(corio::channel<long> a, corio::channel<long> b, long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) {
    auto r = co_await corio::select(b.recv_case(), a.recv_case());
    sum += r.index() == 0 ? *std::get<0>(r) : *std::get<1>(r);
  }
  co_return sum;
}

corio::task<long> channels_and_select(long n) {
  corio::channel<long> a{0}, b{4};
  auto pa = corio::spawn(producer(a, 0, n));
  auto pb = corio::spawn(producer(b, n, n));
  const long sum = co_await consume_with_select(a, b, 2 * n);
  co_await pa;
  co_await pb;
  co_return sum;
}

corio::task<long> locked_counter(long tasks, long rounds) {
  corio::mutex m;
  long counter = 0;
  std::vector<corio::join_handle<void>> handles;
  for (long t = 0; t < tasks; ++t) {
    handles.push_back(corio::spawn([](corio::mutex* mu, long* c, long r) -> corio::task<void> {
      for (long i = 0; i < r; ++i) {
        auto g = co_await mu->scoped_lock();
        ++*c;
      }
    }(&m, &counter, rounds)));
  }
  for (auto& h : handles) co_await h;
  co_return counter;
}

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("a program whose NDEBUG differs from the library's spawns, joins, sends, selects and locks correctly") {
#if defined(NDEBUG)
    MESSAGE("this program: NDEBUG defined (invariant checks off in the inline code)");
#else
    MESSAGE("this program: NDEBUG not defined (invariant checks on in the inline code)");
#endif
    const long n = static_cast<long>(scaled(20'000));
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      CHECK(rt.block_on(spawn_and_join(n)) == n * (n - 1) / 2);
      CHECK(rt.block_on(channels_and_select(n)) == (2 * n) * (2 * n - 1) / 2);
      CHECK(rt.block_on(locked_counter(8, n / 8)) == 8 * (n / 8));
    }
  }
}
