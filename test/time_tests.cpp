// Suite "time": sleep_for / sleep_until.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <numeric>
#include <random>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

struct early_log {
  std::mutex mutex;
  int early = 0;
  int done = 0;
};

corio::task<void> sleep_and_check(corio::clock::duration d, early_log* log) {
  const auto deadline = corio::clock::now() + d;
  co_await corio::sleep_until(deadline);
  const bool early = corio::clock::now() < deadline;
  std::lock_guard lock{log->mutex};
  log->early += early ? 1 : 0;
  ++log->done;
}

corio::task<void> sleep_for_and_check(corio::clock::duration d, early_log* log) {
  const auto start = corio::clock::now();
  co_await corio::sleep_for(d);
  const bool early = corio::clock::now() - start < d;
  std::lock_guard lock{log->mutex};
  log->early += early ? 1 : 0;
  ++log->done;
}

corio::task<void> many_sleepers(int n, std::uint64_t seed, early_log* log) {
  std::mt19937_64 rng{seed};
  std::uniform_int_distribution<int> us{0, 20'000};
  std::vector<corio::join_handle<void>> hs;
  for (int i = 0; i < n; ++i) {
    const auto d = std::chrono::microseconds{us(rng)};
    if (i % 2 == 0) hs.push_back(corio::spawn(sleep_and_check(d, log)));
    else hs.push_back(corio::spawn(sleep_for_and_check(d, log)));
  }
  for (auto& h : hs) co_await h;
}

struct order_log {
  std::mutex mutex;
  std::vector<int> order;
};

corio::task<void> wake_and_record(corio::clock::time_point deadline, int rank, order_log* log) {
  co_await corio::sleep_until(deadline);
  std::lock_guard lock{log->mutex};
  log->order.push_back(rank);
}

corio::task<void> deadline_order(int n, std::uint64_t seed, order_log* log) {
  std::vector<int> ranks(static_cast<std::size_t>(n));
  std::iota(ranks.begin(), ranks.end(), 0);
  std::shuffle(ranks.begin(), ranks.end(), std::mt19937_64{seed});
  // Every timer is registered long before the first deadline, so the order of firing is the
  // timer heap's, not the order of registration.
  const auto base = corio::clock::now() + 300ms;
  std::vector<corio::join_handle<void>> hs;
  for (int rank : ranks) hs.push_back(corio::spawn(wake_and_record(base + rank * 100us, rank, log)));
  for (auto& h : hs) co_await h;
}

corio::task<int> zero_and_past_sleeps() {
  co_await corio::sleep_for(0ms);
  co_await corio::sleep_for(-5ms);
  co_await corio::sleep_until(corio::clock::now() - 1s);
  co_return 1;
}

}  // namespace

TEST_SUITE_BEGIN("time");

TEST_CASE("sleeps never complete early, on any worker") {
  const auto seed = corio_test::test_seed();
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    early_log log;
    const int n = static_cast<int>(corio_test::scaled(400));
    rt.block_on(many_sleepers(n, seed, &log));
    CHECK(log.done == n);
    CHECK(log.early == 0);
  }
}

TEST_CASE("on one worker sleeps complete in deadline order") {
  const auto seed = corio_test::test_seed();
  corio::runtime rt{{.workers = 1}};
  order_log log;
  rt.block_on(deadline_order(200, seed, &log));
  REQUIRE(log.order.size() == 200);
  CHECK(std::is_sorted(log.order.begin(), log.order.end()));
}

TEST_CASE("zero, negative and past sleeps complete at once") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(zero_and_past_sleeps()) == 1);
}

TEST_SUITE_END();
