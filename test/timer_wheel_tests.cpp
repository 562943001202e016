// Suite "time": lib/timer_wheel.hpp, the hierarchical timing wheel, on its own (abstract ticks).
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "test_support.hpp"
#include "timer_wheel.hpp"

using corio::detail::timer_entry;
using corio::detail::timer_wheel;

namespace {

constexpr std::uint64_t max_tick = std::numeric_limits<std::uint64_t>::max();

/// Deadlines just around every level boundary and around the wheel's range, relative to 0.
std::vector<std::uint64_t> boundary_offsets() {
  std::vector<std::uint64_t> r{1, 2, 62, 63};
  for (unsigned bits = 6; bits <= 42; bits += 6) {
    const std::uint64_t b = std::uint64_t{1} << bits;
    r.insert(r.end(), {b - 1, b, b + 1, 3 * b + 17});
  }
  return r;
}

struct boom {};

/// An on_fire that throws boom at its first call and does nothing afterwards.
auto throws_once() {
  return [thrown = false](timer_entry&) mutable {
    if (!thrown) {
      thrown = true;
      throw boom{};
    }
  };
}

}  // namespace

TEST_SUITE_BEGIN("time");

TEST_CASE("a timer entry is at most 48 bytes and starts out not inserted") {
  static_assert(sizeof(timer_entry) <= 48);
  const timer_entry e{};
  CHECK_FALSE(e.inserted());
  const timer_wheel w;
  CHECK(w.empty());
  CHECK(w.size() == 0);
  CHECK(w.now() == 0);
  CHECK_FALSE(w.next_deadline().has_value());
}

TEST_CASE("a single timer fires exactly at its deadline tick, never before") {
  // From several starting times, aligned and not, for deadlines around every level boundary.
  for (const std::uint64_t start : {std::uint64_t{0}, std::uint64_t{12345}, std::uint64_t{1} << 36,
                                    (std::uint64_t{1} << 36) - 5, std::uint64_t{0xabcdef012345}}) {
    for (const std::uint64_t offset : boundary_offsets()) {
      CAPTURE(start);
      CAPTURE(offset);
      timer_wheel w{start};
      timer_entry e{};
      e.deadline_tick = start + offset;
      w.insert(e);
      CHECK(e.inserted());
      CHECK(w.size() == 1);
      const auto nd = w.next_deadline();
      REQUIRE(nd.has_value());
      CHECK(*nd > start);
      CHECK(*nd <= e.deadline_tick);

      int fired = 0;
      auto count = [&](timer_entry& f) {
        CHECK(&f == &e);
        CHECK_FALSE(f.inserted());
        CHECK(w.now() == e.deadline_tick);
        ++fired;
      };
      // Approach the deadline in a few uneven steps, then stop one tick short.
      for (std::uint64_t t = start + offset / 3; t < e.deadline_tick - 1;
           t += (e.deadline_tick - t) / 2 + 1) {
        CHECK(w.advance(t, count) == 0);
      }
      CHECK(w.advance(e.deadline_tick - 1, count) == 0);
      CHECK(fired == 0);
      CHECK(e.inserted());
      const auto before = w.next_deadline();
      REQUIRE(before.has_value());
      CHECK(*before <= e.deadline_tick);
      CHECK(*before > w.now());

      CHECK(w.advance(e.deadline_tick, count) == 1);
      CHECK(fired == 1);
      CHECK_FALSE(e.inserted());
      CHECK(w.empty());
      CHECK(w.now() == e.deadline_tick);
      CHECK_FALSE(w.next_deadline().has_value());
      CHECK(w.advance(e.deadline_tick + 1000, count) == 0);
      CHECK(fired == 1);
    }
  }
}

TEST_CASE("one big advance fires a spread of timers in nondecreasing deadline order") {
  timer_wheel w{7};
  std::vector<timer_entry> entries(boundary_offsets().size() * 2);
  std::size_t i = 0;
  for (const std::uint64_t offset : boundary_offsets()) {
    entries[i++].deadline_tick = 7 + offset;
    entries[i++].deadline_tick = 7 + offset;  // two on the same tick
  }
  std::reverse(entries.begin(), entries.end());
  for (auto& e : entries) w.insert(e);
  std::vector<std::uint64_t> order;
  CHECK(w.advance(max_tick, [&](timer_entry& e) {
    CHECK(w.now() == e.deadline_tick);
    order.push_back(e.deadline_tick);
  }) == entries.size());
  CHECK(order.size() == entries.size());
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK(w.empty());
  CHECK(w.now() == max_tick);
}

TEST_CASE("a deadline at or before now fires at the next advance, even to the same tick") {
  timer_wheel w;
  CHECK(w.advance(100, [](timer_entry&) { FAIL("nothing is inserted"); }) == 0);
  timer_entry past{}, present{}, zero{};
  past.deadline_tick = 50;
  present.deadline_tick = 100;
  zero.deadline_tick = 0;
  w.insert(past);
  w.insert(present);
  w.insert(zero);
  CHECK(w.size() == 3);
  REQUIRE(w.next_deadline().has_value());
  CHECK(*w.next_deadline() == 100);  // due now
  std::vector<timer_entry*> order;
  CHECK(w.advance(100, [&](timer_entry& e) {
    CHECK(w.now() == 100);
    order.push_back(&e);
  }) == 3);
  CHECK(order == std::vector<timer_entry*>{&past, &present, &zero});  // insertion order
  CHECK(w.empty());

  // An advance to an earlier tick does not move time back, and still fires what is due.
  w.insert(past);
  CHECK(w.advance(10, [&](timer_entry& e) { CHECK(&e == &past); }) == 1);
  CHECK(w.now() == 100);
}

TEST_CASE("long idle gaps are skipped in a few steps, not one per tick") {
  // 2^40 ticks per advance, 200 times over, with three timers pending each time: a loop over
  // ticks or over empty slots would never finish.
  timer_wheel w;
  const std::uint64_t gap = std::uint64_t{1} << 40;
  std::uint64_t fired = 0;
  for (int round = 0; round < 200; ++round) {
    const std::uint64_t base = w.now();
    timer_entry a{}, b{}, c{};
    a.deadline_tick = base + 3;
    b.deadline_tick = base + (std::uint64_t{1} << 33) + 12345;
    c.deadline_tick = base + gap;  // exactly at the end of the gap
    w.insert(c);
    w.insert(a);
    w.insert(b);
    std::vector<std::uint64_t> order;
    const std::size_t n = w.advance(base + gap, [&](timer_entry& e) { order.push_back(e.deadline_tick); });
    REQUIRE(n == 3);
    CHECK(order == std::vector<std::uint64_t>{a.deadline_tick, b.deadline_tick, c.deadline_tick});
    CHECK(w.now() == base + gap);
    CHECK(w.empty());
    fired += n;
  }
  CHECK(fired == 600);

  // The same with the wheel empty: time just moves.
  CHECK(w.advance(w.now() + gap, [](timer_entry&) { FAIL("nothing is inserted"); }) == 0);
  CHECK(w.advance(max_tick - 1, [](timer_entry&) { FAIL("nothing is inserted"); }) == 0);
  CHECK(w.now() == max_tick - 1);
}

TEST_CASE("deadlines beyond the wheel's range wait in the overflow list and fire on time") {
  const std::uint64_t range = timer_wheel::range_ticks;
  timer_wheel w{1000};
  std::vector<std::uint64_t> deadlines{1000 + range,
                                       1000 + range + 1,
                                       3 * range,
                                       5 * range + 77,
                                       std::uint64_t{1} << 50,
                                       (std::uint64_t{1} << 50) + 1,
                                       max_tick - 1,
                                       max_tick};
  std::vector<timer_entry> entries(deadlines.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].deadline_tick = deadlines[i];
    w.insert(entries[i]);
  }
  // A cancelled overflow entry earlier than all the others leaves only a stale lower bound.
  timer_entry cancelled{};
  cancelled.deadline_tick = 2 * range + 5;
  w.insert(cancelled);
  w.cancel(cancelled);
  CHECK(w.size() == entries.size());

  std::vector<std::uint64_t> fired;
  auto record = [&](timer_entry& e) {
    CHECK(&e != &cancelled);
    CHECK(w.now() == e.deadline_tick);
    fired.push_back(e.deadline_tick);
  };
  for (std::size_t i = 0; i < deadlines.size(); ++i) {
    CAPTURE(i);
    const auto nd = w.next_deadline();
    REQUIRE(nd.has_value());
    CHECK(*nd <= deadlines[i]);
    CHECK(*nd > w.now());
    CHECK(w.advance(deadlines[i] - 1, record) == 0);
    CHECK(entries[i].inserted());
    CHECK(w.advance(deadlines[i], record) == 1);
    CHECK_FALSE(entries[i].inserted());
  }
  CHECK(fired == deadlines);
  CHECK(w.empty());
}

TEST_CASE("an overflow entry comes into range after the wheel has advanced part of the way") {
  const std::uint64_t range = timer_wheel::range_ticks;
  timer_wheel w;
  timer_entry far{}, near{};
  far.deadline_tick = range + range / 2;  // beyond the range when inserted at 0
  w.insert(far);
  int fired = 0;
  auto count = [&](timer_entry&) { ++fired; };
  CHECK(w.advance(range - 1, count) == 0);  // still in the first 2^36 block
  near.deadline_tick = range + 10;          // level 1 relative to range - 1
  w.insert(near);
  CHECK(*w.next_deadline() <= near.deadline_tick);
  CHECK(w.advance(range + 10, count) == 1);
  CHECK_FALSE(near.inserted());
  CHECK(far.inserted());
  CHECK(*w.next_deadline() <= far.deadline_tick);
  CHECK(w.advance(far.deadline_tick - 1, count) == 0);
  CHECK(w.advance(far.deadline_tick, count) == 1);
  CHECK(fired == 2);
}

TEST_CASE("cancel removes an entry, and cancelling one that is not inserted is a no-op") {
  timer_wheel w;
  timer_entry never{}, a{}, b{}, overflow{};
  never.deadline_tick = 5;
  w.cancel(never);  // never inserted
  CHECK_FALSE(never.inserted());
  CHECK(w.size() == 0);

  a.deadline_tick = 10;
  b.deadline_tick = 10;
  overflow.deadline_tick = timer_wheel::range_ticks * 4;
  w.insert(a);
  w.insert(b);
  w.insert(overflow);
  CHECK(w.size() == 3);
  w.cancel(a);
  w.cancel(a);  // twice
  w.cancel(overflow);
  CHECK_FALSE(a.inserted());
  CHECK(w.size() == 1);
  CHECK(*w.next_deadline() == 10);

  std::vector<timer_entry*> fired;
  CHECK(w.advance(10, [&](timer_entry& e) { fired.push_back(&e); }) == 1);
  CHECK(fired == std::vector<timer_entry*>{&b});
  w.cancel(b);  // after it fired
  CHECK(w.size() == 0);
  CHECK_FALSE(b.inserted());

  // A cancelled entry can be inserted again, and re-inserting an inserted entry moves it.
  a.deadline_tick = 20;
  w.insert(a);
  w.cancel(a);
  a.deadline_tick = 30;  // only while not inserted
  w.insert(a);
  w.insert(a);  // moves it: still one entry
  CHECK(w.size() == 1);
  CHECK(w.advance(29, [](timer_entry&) { FAIL("not yet"); }) == 0);
  CHECK(w.advance(30, [&](timer_entry& e) { CHECK(&e == &a); }) == 1);
  CHECK(w.empty());
  CHECK_FALSE(w.next_deadline().has_value());
}

TEST_CASE("on_fire may cancel other entries, including ones due on the same tick") {
  timer_wheel w;
  std::vector<timer_entry> same(10);
  timer_entry later{}, far{};
  for (auto& e : same) {
    e.deadline_tick = 5000;
    w.insert(e);
  }
  later.deadline_tick = 5001;
  far.deadline_tick = 5000 + timer_wheel::range_ticks * 2;
  w.insert(later);
  w.insert(far);
  std::size_t calls = 0;
  const std::size_t n = w.advance(6000, [&](timer_entry& e) {
    ++calls;
    CHECK(e.deadline_tick == 5000);
    for (auto& other : same) w.cancel(other);  // the rest of the slot: they must not fire
    w.cancel(later);
    w.cancel(e);  // itself: already unlinked, a no-op
  });
  CHECK(n == 1);
  CHECK(calls == 1);
  CHECK(w.size() == 1);
  CHECK(far.inserted());

  // ... and overflow entries while the overflow list is being brought into range.
  std::vector<timer_entry> block(5);
  for (std::size_t i = 0; i < block.size(); ++i) {
    block[i].deadline_tick = far.deadline_tick;
    w.insert(block[i]);
  }
  calls = 0;
  CHECK(w.advance(max_tick, [&](timer_entry&) {
    ++calls;
    w.cancel(far);
    for (auto& e : block) w.cancel(e);
  }) == 1);
  CHECK(calls == 1);
  CHECK(w.empty());
}

TEST_CASE("a periodic ticker re-inserted from on_fire fires once per period") {
  constexpr std::uint64_t period = 7;
  timer_wheel w;
  timer_entry ticker{};
  ticker.deadline_tick = period;
  w.insert(ticker);
  std::vector<std::uint64_t> ticks;
  auto rearm = [&](timer_entry& e) {
    ticks.push_back(e.deadline_tick);
    e.deadline_tick += period;
    w.insert(e);
  };
  std::mt19937_64 rng{corio_test::test_seed()};
  std::uint64_t previous = 0;
  while (w.now() < 100'000) {
    const std::uint64_t to = w.now() + std::uniform_int_distribution<std::uint64_t>{0, 40}(rng);
    const std::size_t before = ticks.size();
    const std::size_t n = w.advance(to, rearm);
    REQUIRE(n == ticks.size() - before);
    // Fired in this advance exactly the multiples of the period in (previous, to].
    CHECK(n == to / period - previous / period);
    previous = to;
    REQUIRE(ticker.inserted());
    CHECK(ticker.deadline_tick > to);
    CHECK(ticker.deadline_tick <= to + period);
  }
  for (std::size_t i = 0; i < ticks.size(); ++i) REQUIRE(ticks[i] == (i + 1) * period);

  // One long advance catches up within the same advance, in order, across level boundaries.
  ticks.clear();
  const std::uint64_t first = ticker.deadline_tick;
  CHECK(w.advance(first + 5000 * period, rearm) == 5001);
  for (std::size_t i = 0; i < ticks.size(); ++i) REQUIRE(ticks[i] == first + i * period);
  w.cancel(ticker);
  CHECK(w.empty());
}

TEST_CASE("an entry re-inserted from on_fire with a deadline not in the future fires at the next advance") {
  timer_wheel w;
  timer_entry e{};
  e.deadline_tick = 10;
  w.insert(e);
  int fired = 0;
  auto again = [&](timer_entry& f) {
    ++fired;
    f.deadline_tick = w.now();  // zero period: due, must not livelock this advance
    w.insert(f);
  };
  CHECK(w.advance(1000, again) == 1);
  CHECK(e.inserted());
  CHECK(*w.next_deadline() == 1000);
  CHECK(w.advance(1000, again) == 1);
  CHECK(w.advance(1001, again) == 1);
  CHECK(fired == 3);
  w.cancel(e);
  CHECK(w.empty());
}

TEST_CASE("an exception from on_fire leaves the wheel consistent, and the rest fire at the next advance") {
  timer_wheel w;

  // In a wheel slot: three entries on tick 100 (level 1 when inserted at 0), one on 101.
  std::vector<timer_entry> slot(3);
  for (auto& e : slot) {
    e.deadline_tick = 100;
    w.insert(e);
  }
  timer_entry after{};
  after.deadline_tick = 101;
  w.insert(after);
  CHECK_THROWS_AS(w.advance(150, throws_once()), boom);
  CHECK(w.size() == 3);
  CHECK(w.now() == 100);
  REQUIRE(w.next_deadline().has_value());
  CHECK(*w.next_deadline() <= 100);
  std::vector<std::uint64_t> fired;
  auto record = [&](timer_entry& e) { fired.push_back(e.deadline_tick); };
  CHECK(w.advance(150, record) == 3);
  CHECK(fired == std::vector<std::uint64_t>{100, 100, 101});
  CHECK(w.empty());

  // In the overflow list: two entries at the start of a 2^36-tick block, one further in.
  const std::uint64_t block = 2 * timer_wheel::range_ticks;
  std::vector<timer_entry> far(3);
  far[0].deadline_tick = block;
  far[1].deadline_tick = block;
  far[2].deadline_tick = block + (std::uint64_t{1} << 20);
  for (auto& e : far) w.insert(e);
  CHECK_THROWS_AS(w.advance(block, throws_once()), boom);
  CHECK(w.size() == 2);
  REQUIRE(w.next_deadline().has_value());
  CHECK(*w.next_deadline() <= block);
  fired.clear();
  CHECK(w.advance(far[2].deadline_tick - 1, record) == 1);
  CHECK(fired == std::vector<std::uint64_t>{block});
  CHECK(far[2].inserted());
  CHECK(w.advance(far[2].deadline_tick, record) == 1);
  CHECK(w.empty());

  // In the due list.
  timer_entry d1{}, d2{};
  d1.deadline_tick = d2.deadline_tick = 0;
  w.insert(d1);
  w.insert(d2);
  CHECK_THROWS_AS(w.advance(w.now(), throws_once()), boom);
  CHECK(w.size() == 1);
  CHECK(w.advance(w.now(), record) == 1);
  CHECK(w.empty());
}

TEST_CASE("drain removes every entry without firing it") {
  timer_wheel w{3};
  std::vector<timer_entry> entries(50);
  std::uint64_t d = 1;
  for (auto& e : entries) {
    e.deadline_tick = d;  // due, every level, overflow
    d *= 3;
    w.insert(e);
  }
  std::size_t removed = 0;
  CHECK(w.drain([&](timer_entry& e) {
    CHECK_FALSE(e.inserted());
    ++removed;
  }) == entries.size());
  CHECK(removed == entries.size());
  CHECK(w.empty());
  CHECK_FALSE(w.next_deadline().has_value());
  CHECK(w.now() == 3);
  for (const auto& e : entries) CHECK_FALSE(e.inserted());
  CHECK(w.advance(max_tick, [](timer_entry&) { FAIL("drained"); }) == 0);
}

TEST_CASE("a million random timers, 90% cancelled, fire exactly once, in order, never early") {
  const std::size_t n = corio_test::scaled(1'000'000);
  std::mt19937_64 rng{corio_test::test_seed()};
  MESSAGE(n << " timers");

  // Log-uniform deadlines in [1, 2^42): every level and the overflow list get their share.
  auto random_tick = [&](unsigned max_bits) {
    const auto bits = std::uniform_int_distribution<unsigned>{0, max_bits}(rng);
    return std::uniform_int_distribution<std::uint64_t>{0, (std::uint64_t{1} << bits) - 1}(rng);
  };
  enum class fate : unsigned char { live, cancel_first, cancel_later };
  std::vector<timer_entry> entries(n);
  std::vector<fate> fates(n);
  std::vector<std::uint64_t> cancel_at(n, 0);
  std::vector<unsigned char> fired(n, 0), cancelled(n, 0);
  std::uint64_t last_deadline = 0;

  timer_wheel w;
  for (std::size_t i = 0; i < n; ++i) {
    entries[i].deadline_tick = 1 + random_tick(42);
    last_deadline = std::max(last_deadline, entries[i].deadline_tick);
    const auto r = std::uniform_int_distribution<int>{0, 9}(rng);
    fates[i] = r == 0 ? fate::live : r == 1 ? fate::cancel_later : fate::cancel_first;
    if (fates[i] == fate::cancel_later) cancel_at[i] = random_tick(42);
    w.insert(entries[i]);
  }
  REQUIRE(w.size() == n);

  // Pending entries that are to fire or still to be cancelled, by deadline: the true earliest.
  std::set<std::pair<std::uint64_t, std::size_t>> pending;
  std::vector<std::pair<std::uint64_t, std::size_t>> late_cancels;  // (when, index)
  for (std::size_t i = 0; i < n; ++i) {
    if (fates[i] == fate::cancel_first) {
      w.cancel(entries[i]);
      cancelled[i] = 1;
    } else {
      pending.emplace(entries[i].deadline_tick, i);
      if (fates[i] == fate::cancel_later) late_cancels.emplace_back(cancel_at[i], i);
    }
  }
  std::sort(late_cancels.begin(), late_cancels.end(), std::greater<>{});  // pop_back = earliest
  REQUIRE(w.size() == pending.size());

  std::uint64_t previous_now = 0;
  std::uint64_t last_fired = 0;
  std::size_t total_fired = 0;
  std::size_t steps = 0;
  bool in_order = true, on_time = true, once = true, not_cancelled = true;
  auto on_fire = [&](timer_entry& e) {
    const auto i = static_cast<std::size_t>(&e - entries.data());
    in_order = in_order && e.deadline_tick >= last_fired;
    on_time = on_time && e.deadline_tick > previous_now && w.now() == e.deadline_tick;
    once = once && fired[i] == 0;
    not_cancelled = not_cancelled && cancelled[i] == 0;
    last_fired = e.deadline_tick;
    fired[i] = 1;
    pending.erase({e.deadline_tick, i});
  };

  while (w.now() < last_deadline) {
    // Log-uniform steps of up to a quarter of the current time (about twice it, one time in 16):
    // thousands of stops between 1 and 2^42, small and large jumps over every level.
    const auto width = static_cast<unsigned>(std::bit_width(w.now()));
    const bool big = std::uniform_int_distribution<int>{0, 15}(rng) == 0;
    const std::uint64_t step = 1 + random_tick(big ? width + 1 : std::max(width, 8u) - 2);
    const std::uint64_t to = w.now() + step;
    const std::size_t count = w.advance(to, on_fire);
    total_fired += count;
    previous_now = to;
    ++steps;
    REQUIRE(w.now() == to);
    REQUIRE(w.size() == pending.size());
    // Nothing due is left behind; the wheel's next deadline is in the future and never later
    // than the true earliest one.
    const auto nd = w.next_deadline();
    if (pending.empty()) {
      REQUIRE_FALSE(nd.has_value());
    } else {
      REQUIRE(pending.begin()->first > to);
      REQUIRE(nd.has_value());
      REQUIRE(*nd > to);
      REQUIRE(*nd <= pending.begin()->first);
    }
    // Late cancellations whose time has come: a no-op on entries that already fired.
    while (!late_cancels.empty() && late_cancels.back().first <= to) {
      const std::size_t i = late_cancels.back().second;
      late_cancels.pop_back();
      const std::size_t size_before = w.size();
      w.cancel(entries[i]);
      CHECK_FALSE(entries[i].inserted());
      if (fired[i] != 0) {
        REQUIRE(w.size() == size_before);
      } else {
        REQUIRE(w.size() == size_before - 1);
        cancelled[i] = 1;
        pending.erase({entries[i].deadline_tick, i});
      }
    }
  }
  MESSAGE(steps << " advances, " << total_fired << " fired");
  CHECK(in_order);
  CHECK(on_time);
  CHECK(once);
  CHECK(not_cancelled);
  CHECK(w.empty());
  CHECK(pending.empty());
  std::size_t expected = 0;
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE((fired[i] != 0) != (cancelled[i] != 0));  // each either fired or was cancelled
    REQUIRE_FALSE(entries[i].inserted());
    if (fates[i] == fate::live) REQUIRE(fired[i] != 0);
    if (fates[i] == fate::cancel_first) REQUIRE(fired[i] == 0);
    expected += fired[i];
  }
  CHECK(total_fired == expected);
  CHECK(steps > 500);
}

TEST_SUITE_END();
