// Suite "time": sleep_for / sleep_until.
#include <corio/corio.hpp>
#include <corio/testing.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <numeric>
#include <random>
#include <vector>

#include "test_support.hpp"
#include "waiting_support.hpp"

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

struct wake_record {
  corio::clock::time_point deadline;
  corio::clock::time_point woke;
};

corio::task<void> sleep_and_record(corio::clock::time_point deadline, wake_record* out) {
  co_await corio::sleep_until(deadline);
  out->deadline = deadline;
  out->woke = corio::now();
}

corio::task<void> many_manual_sleepers(std::vector<corio::clock::duration> offsets, std::vector<wake_record>* out) {
  const auto base = corio::now();
  std::vector<corio::join_handle<void>> hs;
  hs.reserve(offsets.size());
  for (std::size_t i = 0; i < offsets.size(); ++i) hs.push_back(corio::spawn(sleep_and_record(base + offsets[i], &(*out)[i])));
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

corio::task<void> sleep_hours(int hours, bool* done) {
  co_await corio::sleep_for(std::chrono::hours{hours});
  *done = true;
}

// --- huge and negative durations ------------------------------------------------------------------

/// A thousand years: beyond what corio's clock (nanoseconds in 64 bits, about 292 years) can hold.
constexpr std::chrono::hours thousand_years{24 * 365 * 1000};

template <class D>
corio::task<void> sleep_for_d(D d) {
  co_await corio::sleep_for(d);
}

corio::task<void> sleep_until_the_end() { co_await corio::sleep_until(corio::clock::time_point::max()); }

template <class D>
corio::task<void> first_tick(D period) {
  corio::interval tick{period};
  co_await tick.next();
}

/// The endless sleeps of the test below: for nanoseconds::max(), a thousand years, 1e30 s (double),
/// and an interval's first tick a thousand years away.
corio::task<void> endless_sleep(int kind) {
  switch (kind) {
    case 0:
      return sleep_for_d(std::chrono::nanoseconds::max());
    case 1:
      return sleep_for_d(thousand_years);
    case 2:
      return sleep_for_d(std::chrono::duration<double>{1e30});
    default:
      return first_tick(thousand_years);
  }
}

corio::task<void> yield_a_few() {
  for (int i = 0; i < 4; ++i) co_await corio::yield();
}

corio::task<void> join_void(corio::join_handle<void> h) { co_await h; }

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

CORIO_TEST_CASE("on one worker sleeps complete in deadline order (manual clock)") {
  std::vector<int> ranks(500);
  std::iota(ranks.begin(), ranks.end(), 0);
  std::shuffle(ranks.begin(), ranks.end(), std::mt19937_64{corio_test::test_seed()});
  order_log log;
  const auto base = corio::now();
  std::vector<corio::join_handle<void>> hs;
  for (int rank : ranks) hs.push_back(corio::spawn(wake_and_record(base + 1ms + rank * 7us, rank, &log)));
  for (auto& h : hs) co_await h;
  REQUIRE(log.order.size() == 500);
  CHECK(std::is_sorted(log.order.begin(), log.order.end()));
}

TEST_CASE("under manual_clock every sleep ends exactly at its deadline, on 1 and 4 workers") {
  const auto seed = corio_test::test_seed();
  std::mt19937_64 rng{seed};
  // Whole microseconds (the wheel's tick), from 1 µs to ~3 days: every level of the wheel.
  std::uniform_int_distribution<int> exponent{0, 38};
  // 20,000 sleeps on 400 distinct deadlines: each jump of the manual clock wakes every worker, so
  // the number of distinct deadlines, not of sleeps, sets the test's cost.
  const std::size_t n = corio_test::scaled(20'000);
  std::vector<corio::clock::duration> pool(400);
  for (auto& d : pool) d = std::chrono::microseconds{1 + (rng() % (std::int64_t{1} << exponent(rng)))};
  std::vector<corio::clock::duration> offsets(n);
  for (auto& d : offsets) d = pool[rng() % pool.size()];
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    std::vector<wake_record> records(n);
    rt.block_on(many_manual_sleepers(offsets, &records));
    std::size_t exact = 0;
    for (const auto& r : records) exact += r.woke == r.deadline ? 1 : 0;
    CHECK(exact == n);
  }
}

TEST_CASE("manual time stands still until advance(), and jumps to the next timer when all is idle") {
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
  const auto start = rt.now();
  bool done = false;
  // Idle runtime: time jumps straight to the 48-hour timer; no real waiting.
  rt.block_on(sleep_hours(48, &done));
  CHECK(done);
  CHECK(rt.now() - start >= 48h);
  const auto before = rt.now();
  rt.advance(1s);
  CHECK(rt.now() - before == 1s);
  corio::runtime steady{{.workers = 1}};
  CHECK_THROWS_AS(steady.advance(1s), std::logic_error);
}

CORIO_TEST_CASE("an interval ticks on its grid and skips the ticks a slow receiver missed") {
  const auto start = corio::now();
  corio::interval tick{10ms};
  std::vector<corio::clock::duration> at;
  for (int i = 0; i < 5; ++i) {
    if (i == 3) co_await corio::sleep_for(35ms);  // a slow receiver: misses ticks 4 and 5
    co_await tick.next();
    at.push_back(corio::now() - start);
  }
  // 10, 20, 30; then a 35 ms sleep ends at 65: ticks 40, 50 and 60 were missed, one fires at once
  // (at 65) and the next stays on the grid (70).
  const std::vector<corio::clock::duration> expected{10ms, 20ms, 30ms, 65ms, 70ms};
  CHECK(at == expected);
}

CORIO_TEST_CASE_WITH("zero, negative and past sleeps complete at once",
                     {.clock = corio::clock_source::steady}) {
  co_await corio::sleep_for(0ms);
  co_await corio::sleep_for(-5ms);
  co_await corio::sleep_until(corio::clock::now() - 1s);
}

TEST_CASE("to_clock_duration rounds up and saturates; deadline_after saturates at the clock's ends") {
  using corio::clock;
  using corio::to_clock_duration;
  static_assert(to_clock_duration(1h) == std::chrono::nanoseconds{3'600'000'000'000});
  static_assert(to_clock_duration(-1h) == -1h);
  static_assert(to_clock_duration(std::chrono::nanoseconds::max()) == clock::duration::max());
  static_assert(to_clock_duration(thousand_years) == clock::duration::max());
  static_assert(to_clock_duration(-thousand_years) == clock::duration::min());
  static_assert(to_clock_duration(std::chrono::hours::max()) == clock::duration::max());
  static_assert(to_clock_duration(std::chrono::hours::min()) == clock::duration::min());
  static_assert(to_clock_duration(std::chrono::duration<unsigned long long, std::ratio<3600>>{~0ull}) ==
                clock::duration::max());
  static_assert(to_clock_duration(std::chrono::nanoseconds{9'222'000'000'000'000'000}) ==
                std::chrono::nanoseconds{9'222'000'000'000'000'000});
  static_assert(to_clock_duration(std::chrono::duration<long long, std::pico>{1}) == 1ns);
  static_assert(to_clock_duration(std::chrono::duration<long long, std::pico>{-1999}) == -1ns);
  static_assert(to_clock_duration(std::chrono::duration<long long, std::ratio<1, 3>>{3}) == 1s);
  static_assert(to_clock_duration(std::chrono::duration<long long, std::ratio<1, 3>>{1}) ==
                std::chrono::nanoseconds{333'333'334});
  static_assert(to_clock_duration(std::chrono::duration<double>{1.5e-9}) == std::chrono::nanoseconds{2});
  static_assert(to_clock_duration(std::chrono::duration<double>{-1.5e-9}) == std::chrono::nanoseconds{-1});
  static_assert(to_clock_duration(std::chrono::duration<double>{1e30}) == clock::duration::max());
  static_assert(to_clock_duration(std::chrono::duration<double>{-1e30}) == clock::duration::min());
  static_assert(to_clock_duration(std::chrono::duration<double>{std::numeric_limits<double>::infinity()}) ==
                clock::duration::max());
  static_assert(to_clock_duration(std::chrono::duration<double>{std::numeric_limits<double>::quiet_NaN()}) ==
                clock::duration::zero());
  constexpr clock::time_point t{1h};
  static_assert(corio::deadline_after(t, 1s) == t + 1s);
  static_assert(corio::deadline_after(t, -1s) == t - 1s);
  static_assert(corio::deadline_after(t, clock::duration::max()) == clock::time_point::max());
  static_assert(corio::deadline_after(clock::time_point::max(), 1ns) == clock::time_point::max());
  static_assert(corio::deadline_after(clock::time_point{-1h}, clock::duration::min()) ==
                clock::time_point::min());
  static_assert(corio::deadline_after(t, clock::duration::min()) == t + clock::duration::min());
  // The static_asserts above are the test.
  CHECK(to_clock_duration(thousand_years) == clock::duration::max());
}

TEST_CASE("a sleep until time_point::max() waits until cancelled: the idle manual clock never jumps there") {
  corio_test::hang_guard guard{"sleep until time_point::max()", 120s};
  corio_test::check_waits_with_no_timer(&sleep_until_the_end);
}

TEST_CASE("a sleep for nanoseconds::max() or a thousand years waits until cancelled, through advance(24h)") {
  corio_test::hang_guard guard{"endless sleeps", 120s};
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    for (int kind = 0; kind < 4; ++kind) {
      CAPTURE(kind);
      corio_test::check_waits_until_cancelled(rt, endless_sleep(kind));
    }
  }
}

CORIO_TEST_CASE("negative durations, however large, are already due: the sleeps end at once and time stays") {
  const auto before = corio::now();
  co_await corio::sleep_for(-thousand_years);
  co_await corio::sleep_for(std::chrono::nanoseconds::min());
  co_await corio::sleep_for(std::chrono::duration<double>{-1e30});
  co_await corio::sleep_until(corio::clock::time_point::min());
  CHECK(corio::now() == before);  // no timer was waited for: an idle runtime would have jumped to it
}

TEST_CASE("advance by nanoseconds::max() moves time to its end, never back; a saturated deadline stays unreached") {
  corio_test::hang_guard guard{"advance by nanoseconds::max()", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  std::atomic<int> never{corio_test::not_started}, long_sleep{corio_test::not_started};
  auto never_h = rt.spawn(corio_test::run_marked(sleep_for_d(std::chrono::nanoseconds::max()), &never));
  auto long_h = rt.spawn(corio_test::run_marked(sleep_for_d(1000h), &long_sleep));
  rt.block_on(corio_test::sleep_hours_probe(1h));  // both wait
  const auto before = rt.now();
  rt.advance(std::chrono::nanoseconds::max());
  const auto end = rt.now();
  CHECK(end > before);
  CHECK(end - before > 24h * 365 * 200);
  CHECK(end < corio::clock::time_point::max());
  rt.block_on(join_void(std::move(long_h)));
  CHECK(long_sleep.load() == corio_test::ended);
  rt.advance(thousand_years);
  CHECK(rt.now() == end);
  rt.advance(std::chrono::nanoseconds::max());
  CHECK(rt.now() == end);
  rt.advance(std::chrono::nanoseconds::min());
  CHECK(rt.now() == end);
  rt.block_on(yield_a_few());  // a task woken by the advances would have run before this
  CHECK(never.load() == corio_test::waiting);
  CHECK(never_h.cancel());
  CHECK(rt.block_on(corio_test::ends_cancelled(std::move(never_h))));
  CHECK(never.load() == corio_test::cancelled);
}

TEST_SUITE_END();
