// Suite "sched": when_all (fork-join): results in order, every child run exactly once, exceptions,
// binding, shutdown with children suspended, and a stress run on several workers.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio_test::counted;
using corio_test::scaled;

namespace {

struct boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

corio::task<int> value_after_yield(int v) {
  co_await corio::yield();
  co_return v;
}

corio::task<std::string> text(std::string s) { co_return s; }

corio::task<void> bump(std::atomic<int>* n) {
  n->fetch_add(1);
  co_return;
}

corio::task<std::tuple<int, std::string, std::monostate>> mixed(std::atomic<int>* n) {
  co_return co_await corio::when_all(value_after_yield(7), text("seven"), bump(n));
}

// A 10-ary tree of when_all; each leaf marks its slot, so that a leaf run twice or never shows.
corio::task<std::int64_t> tree(std::int64_t num, std::int64_t size, std::atomic<std::uint8_t>* seen) {
  if (size == 1) {
    seen[num].fetch_add(1, std::memory_order_relaxed);
    co_return num;
  }
  const std::int64_t step = size / 10;
  std::array<corio::task<std::int64_t>, 10> children;
  for (std::int64_t i = 0; i < 10; ++i) children[i] = tree(num + i * step, step, seen);
  const auto results = co_await corio::when_all(std::move(children));
  std::int64_t sum = 0;
  for (auto r : results) sum += r;
  co_return sum;
}

corio::task<std::vector<int>> squares(int n) {
  std::vector<corio::task<int>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(value_after_yield(i * i));
  co_return co_await corio::when_all(std::move(tasks));
}

corio::task<int> count_void_children(int n) {
  std::atomic<int> runs{0};
  std::vector<corio::task<void>> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(bump(&runs));
  co_await corio::when_all(std::move(tasks));
  co_return runs.load();
}

corio::task<std::size_t> nothing_to_wait_for() {
  auto results = co_await corio::when_all(std::vector<corio::task<int>>{});
  co_return results.size();
}

corio::task<int> throw_if(int i, bool fail, std::atomic<int>* ran) {
  co_await corio::yield();
  ran->fetch_add(1);
  if (fail) throw boom("child " + std::to_string(i));
  co_return i;
}

// Children 2 and 5 throw; every child still runs, and child 2's exception comes out.
corio::task<std::string> first_failure(std::atomic<int>* ran) {
  std::vector<corio::task<int>> tasks;
  for (int i = 0; i < 8; ++i) tasks.push_back(throw_if(i, i == 2 || i == 5, ran));
  try {
    (void)co_await corio::when_all(std::move(tasks));
  } catch (const boom& e) {
    co_return e.what();
  }
  co_return "no exception";
}

// Child 0 can only finish once child 1 ran: on one worker, that holds only if the children are
// separate tasks, not run one after the other to the end.
corio::task<int> wait_for_flag(std::atomic<bool>* flag) {
  int yields = 0;
  while (!flag->load() && yields < 1'000'000) {
    ++yields;
    co_await corio::yield();
  }
  co_return flag->load() ? 1 : 0;
}

corio::task<int> set_flag(std::atomic<bool>* flag) {
  flag->store(true);
  co_return 1;
}

corio::task<int> children_are_independent_tasks() {
  std::atomic<bool> flag{false};
  auto [a, b] = co_await corio::when_all(wait_for_flag(&flag), set_flag(&flag));
  co_return a + b;
}

corio::task<unsigned> where_am_i() {
  co_await corio::yield();
  co_return corio::this_worker_index().value_or(999);
}

// Bound with spawn_on: the children may run anywhere, the parent resumes on its own worker.
corio::task<int> bound_parent(unsigned bound, int rounds) {
  int wrong = 0;
  for (int r = 0; r < rounds; ++r) {
    std::vector<corio::task<unsigned>> tasks;
    for (int i = 0; i < 8; ++i) tasks.push_back(where_am_i());
    (void)co_await corio::when_all(std::move(tasks));
    wrong += corio::this_worker_index() == bound ? 0 : 1;
  }
  co_return wrong;
}

corio::task<int> join_it(corio::join_handle<int> h) { co_return co_await h; }

corio::task<void> hold_forever(counted guard) {
  (void)guard;
  co_await corio::sleep_for(24h);
}

corio::task<void> fork_and_hold(counted guard) {
  (void)guard;
  co_await corio::when_all(hold_forever(counted{1}), hold_forever(counted{2}), hold_forever(counted{3}));
}

corio::task<int> await_twice() {
  auto all = corio::when_all(value_after_yield(1), value_after_yield(2));
  (void)co_await all;
  try {
    (void)co_await all;
  } catch (const std::logic_error&) {
    co_return 1;
  }
  co_return 0;
}

corio::task<int> await_moved_from() {
  auto all = corio::when_all(value_after_yield(1), value_after_yield(2));
  auto moved = std::move(all);
  const auto [a, b] = co_await moved;
  try {
    (void)co_await all;
  } catch (const std::logic_error&) {
    co_return a + b;
  }
  co_return 0;
}

// Mixed load for the stress test: when_all trees whose leaves yield, spawn and join.
corio::task<std::int64_t> busy_leaf(std::int64_t v) {
  if (v % 3 == 0) co_await corio::yield();
  if (v % 5 == 0) {
    auto h = corio::spawn(value_after_yield(1));
    v += co_await h - 1;
  }
  co_return v;
}

corio::task<std::int64_t> mixed_tree(std::int64_t base, int depth) {
  if (depth == 0) co_return co_await busy_leaf(base);
  auto [a, b, c] = co_await corio::when_all(mixed_tree(base * 3, depth - 1), mixed_tree(base * 3 + 1, depth - 1),
                                            mixed_tree(base * 3 + 2, depth - 1));
  co_return a + b + c;
}

void wait_until_no_live_tasks(corio::runtime& rt) {
  for (int i = 0; i < 10'000 && rt.stats().live_tasks != 0; ++i) std::this_thread::sleep_for(1ms);
}

}  // namespace

TEST_SUITE_BEGIN("sched");

TEST_CASE("when_all of a tuple gives each result in argument order; void gives monostate") {
  corio::runtime rt{{.workers = 2}};
  std::atomic<int> bumped{0};
  auto [i, s, v] = rt.block_on(mixed(&bumped));
  CHECK(i == 7);
  CHECK(s == "seven");
  CHECK(v == std::monostate{});
  CHECK(bumped.load() == 1);
}

TEST_CASE("when_all trees run every leaf exactly once and sum right on 1, 2, 4 and 8 workers") {
  const std::int64_t leaves = 10'000;
  for (unsigned workers : {1u, 2u, 4u, 8u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    const int rounds = static_cast<int>(scaled(20));
    for (int round = 0; round < rounds; ++round) {
      auto seen = std::make_unique<std::atomic<std::uint8_t>[]>(leaves);
      for (std::int64_t i = 0; i < leaves; ++i) seen[i].store(0);
      REQUIRE(rt.block_on(tree(0, leaves, seen.get())) == leaves * (leaves - 1) / 2);
      std::int64_t wrong = 0;
      for (std::int64_t i = 0; i < leaves; ++i) wrong += seen[i].load() == 1 ? 0 : 1;
      REQUIRE(wrong == 0);
    }
    wait_until_no_live_tasks(rt);
    CHECK(rt.stats().live_tasks == 0);
  }
}

TEST_CASE("when_all of a vector gives the results in order; of void tasks runs each once") {
  corio::runtime rt{{.workers = 4}};
  const auto results = rt.block_on(squares(1000));
  REQUIRE(results.size() == 1000);
  int wrong = 0;
  for (int i = 0; i < 1000; ++i) wrong += results[static_cast<std::size_t>(i)] == i * i ? 0 : 1;
  CHECK(wrong == 0);
  CHECK(rt.block_on(count_void_children(5000)) == 5000);
  CHECK(rt.block_on(nothing_to_wait_for()) == 0);
}

TEST_CASE("when_all waits for every child and rethrows the first exception in order") {
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    std::atomic<int> ran{0};
    CHECK(rt.block_on(first_failure(&ran)) == std::string{"child 2"});
    CHECK(ran.load() == 8);
  }
}

TEST_CASE("when_all children are separate tasks: a child can wait for a later one on one worker") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(children_are_independent_tasks()) == 2);
}

TEST_CASE("a task bound with spawn_on resumes on its worker after when_all") {
  corio::runtime rt{{.workers = 4}};
  for (unsigned w = 0; w < 4; ++w) {
    CHECK(rt.block_on(join_it(rt.spawn_on(w, bound_parent(w, static_cast<int>(scaled(50)))))) == 0);
  }
}

TEST_CASE("when_all refuses empty tasks, a second await and an await after a move") {
  corio::runtime rt{{.workers = 1}};
  CHECK_THROWS_AS((void)corio::when_all(corio::task<int>{}, value_after_yield(1)), std::invalid_argument);
  CHECK(rt.block_on(await_twice()) == 1);
  CHECK(rt.block_on(await_moved_from()) == 3);
}

TEST_CASE("shutting down with when_all children suspended destroys every frame") {
  counted::reset();
  {
    corio::runtime rt{{.workers = 2}};
    for (int i = 0; i < 20; ++i) rt.spawn(fork_and_hold(counted{i})).detach();
    // 20 parents, 60 children: wait (bounded) until they are all suspended.
    for (int i = 0; i < 10'000 && rt.stats().live_tasks < 80; ++i) std::this_thread::sleep_for(1ms);
    // Each parent holds its guard and, until its co_await ends, the three temporaries it moved
    // into its children's parameters: 20 + 60 + 60.
    CHECK(counted::alive() == 140);
  }
  CHECK(counted::alive() == 0);
}

TEST_CASE("stress: when_all trees with yields, spawns and joins on 2, 4 and 8 workers") {
  // 3^7 = 2187 leaves; leaf v contributes v: the sum of 0..2186.
  const std::int64_t expected = 2186LL * 2187 / 2;
  for (unsigned workers : {2u, 4u, 8u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    const int rounds = static_cast<int>(scaled(50));
    for (int round = 0; round < rounds; ++round) REQUIRE(rt.block_on(mixed_tree(0, 7)) == expected);
    wait_until_no_live_tasks(rt);
    CHECK(rt.stats().live_tasks == 0);
  }
}

TEST_SUITE_END();
