// Suite "sched": when_all (fork-join): results in order, every child run exactly once, exceptions,
// binding, shutdown with children suspended, and a stress run on several workers.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <array>
#include <csignal>
#include <optional>
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

#if !defined(_WIN32)
#include <signal.h>
#include <unistd.h>
#endif

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


// --- when_all / when_any over awaitables --------------------------------------------------------

corio::task<int> slow_value(int v, corio::clock::duration d) {
  co_await corio::sleep_for(d);
  co_return v;
}

// when_all mixing a task, a sleep, a channel receive, a join by lvalue and a join by rvalue.
corio::task<void> when_all_mixes_kinds() {
  corio::channel<int> ch{1};
  auto sender = corio::spawn(slow_value(5, 2ms));
  auto joined = corio::spawn(slow_value(7, 3ms));
  co_await ch.send(11);
  auto [a, slept, received, by_lvalue, by_rvalue] = co_await corio::when_all(
      value_after_yield(1), corio::sleep_for(1ms), ch.recv(), joined, std::move(sender));
  CHECK(a == 1);
  CHECK(std::is_same_v<decltype(slept), std::monostate>);
  CHECK(received == std::optional<int>{11});
  CHECK(by_lvalue == 7);
  CHECK(by_rvalue == 5);
  CHECK_FALSE(joined.valid());  // the lvalue handle was joined, as co_await joined consumes it
}

// when_any: a channel receive wins over a long sleep; the sleep's timer is gone afterwards, so
// the manual clock (which jumps to the next timer when every worker idles) stays put.
corio::task<void> receive_beats_sleep(corio::clock::time_point* finished) {
  corio::channel<int> ch{1};
  co_await ch.send(3);
  auto r = co_await corio::when_any(corio::sleep_for(1h), ch.recv());
  REQUIRE(r.index() == 1);
  CHECK(std::get<1>(r) == std::optional<int>{3});
  *finished = corio::now();
}

// when_any: a sleep wins over a receive, which is withdrawn from the channel: a later try_send
// on the rendezvous channel finds no receiver, and a buffered value stays in the buffer.
corio::task<void> sleep_beats_receive() {
  corio::channel<int> rendezvous{0};
  corio::channel<int> buffered{4};
  auto r = co_await corio::when_any(rendezvous.recv(), buffered.recv(), corio::sleep_for(5ms));
  CHECK(r.index() == 2);
  CHECK(rendezvous.try_send(1).status == corio::channel_status::would_block);
  CHECK(buffered.try_send(2).status == corio::channel_status::delivered);
  CHECK(buffered.size() == 1);
  auto v = co_await buffered.recv();
  CHECK(v == std::optional<int>{2});
}

// when_any: a sleep wins over a join; the join is withdrawn, the joined task is not cancelled,
// and the handle still gives its value.
corio::task<void> sleep_beats_join() {
  auto h = corio::spawn(slow_value(9, 50ms));
  auto r = co_await corio::when_any(h, corio::sleep_for(1ms));
  CHECK(r.index() == 1);
  REQUIRE(h.valid());
  const int v = co_await h;
  CHECK(v == 9);
}

// when_any: a join wins over a sleep (given as an rvalue handle).
corio::task<void> join_beats_sleep() {
  auto r = co_await corio::when_any(corio::spawn(slow_value(4, 1ms)), corio::sleep_for(1h));
  REQUIRE(r.index() == 0);
  CHECK(std::get<0>(r) == 4);
}

// when_any: a sleep wins over a socket read, which is cancelled in the reactor: bytes the peer
// sends afterwards all reach the next read (a read left in flight would have taken them).
corio::task<void> sleep_beats_read() {
  auto listener = corio::net::tcp_listener::bind("127.0.0.1:0");
  auto client = co_await corio::net::tcp_stream::connect(listener.local_endpoint());
  auto server = co_await listener.accept();
  std::array<std::byte, 16> buf{};
  auto r = co_await corio::when_any(server.read_some(buf), corio::sleep_for(2ms));
  CHECK(r.index() == 1);
  const std::array<std::byte, 3> data{std::byte{1}, std::byte{2}, std::byte{3}};
  co_await client.write_all(data);
  std::size_t got = 0;
  for (int i = 0; i < 3 && got < data.size(); ++i) {
    const std::size_t n = co_await server.read_some(std::span<std::byte>{buf}.subspan(got));
    if (n == 0) break;
    got += n;
  }
  CHECK(got == 3);
  CHECK(buf[0] == std::byte{1});
  CHECK(buf[2] == std::byte{3});
}

// when_any: a channel receive wins over a signal wait, which is withdrawn; a later wait for the
// same signal gets it.
#if defined(_WIN32)
constexpr int test_signal = SIGTERM;  // Windows has SIGINT and SIGTERM only (corio/signal.hpp)
#else
constexpr int test_signal = SIGUSR2;
#endif
corio::task<int> raise_later(int sig) {
  co_await corio::sleep_for(1ms);
#if defined(_WIN32)
  std::raise(sig);
#else
  ::kill(::getpid(), sig);
#endif
  co_return sig;
}
corio::task<void> receive_beats_signal() {
  corio::channel<int> ch{1};
  co_await ch.send(1);
  auto r = co_await corio::when_any(corio::signal({test_signal}), ch.recv());
  CHECK(r.index() == 1);
  auto [sig, raised] = co_await corio::when_all(corio::signal({test_signal}), raise_later(test_signal));
  CHECK(sig == test_signal);
  CHECK(raised == test_signal);
}

// An awaitable kept in a variable is awaited in place (by reference): it must outlive the
// co_await, as it does here.
corio::task<void> lvalue_operation() {
  corio::channel<int> ch{1};
  co_await ch.send(8);
  auto recv = ch.recv();
  auto r = co_await corio::when_any(recv, corio::sleep_for(1h));
  REQUIRE(r.index() == 0);
  CHECK(std::get<0>(r) == std::optional<int>{8});
}

// Cancelling the task awaiting when_any over operations cancels every operation.
corio::task<void> wait_both(corio::channel<int>* ch, std::atomic<int>* cancelled) {
  try {
    auto r = co_await corio::when_any(ch->recv(), corio::sleep_for(1h));
    (void)r;
  } catch (const corio::operation_cancelled&) {
    cancelled->fetch_add(1);
  }
}
corio::task<void> cancel_awaiting_task() {
  corio::channel<int> ch{0};
  std::atomic<int> cancelled{0};
  auto h = corio::spawn(wait_both(&ch, &cancelled));
  co_await corio::sleep_for(1ms);
  h.cancel();
  co_await h;
  CHECK(cancelled.load() == 1);
  CHECK(ch.try_send(1).status == corio::channel_status::would_block);  // the receive was withdrawn
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


TEST_CASE("when_all over awaitables mixes tasks, sleeps, channel operations and joins") {
  corio_test::hang_guard guard{"when_all over awaitables", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    for (int round = 0; round < static_cast<int>(scaled(20)); ++round) rt.block_on(when_all_mixes_kinds());
  }
}

TEST_CASE("when_any over awaitables: a receive beats a sleep, whose timer is removed") {
  corio_test::hang_guard guard{"when_any receive vs sleep", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const auto start = rt.now();
    corio::clock::time_point finished{};
    rt.block_on(receive_beats_sleep(&finished));
    CHECK(finished - start < 1h);
    rt.block_on(lvalue_operation());
    std::this_thread::sleep_for(20ms);  // every worker idles: a timer left behind would be jumped to
    CHECK(rt.now() - start < 1h);
  }
}

TEST_CASE("when_any over awaitables: a sleep beats receives, which are withdrawn from their channels") {
  corio_test::hang_guard guard{"when_any sleep vs receive", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    for (int round = 0; round < static_cast<int>(scaled(20)); ++round) rt.block_on(sleep_beats_receive());
  }
}

TEST_CASE("when_any over awaitables: a losing join is withdrawn and the joined task runs on") {
  corio_test::hang_guard guard{"when_any sleep vs join", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    for (int round = 0; round < static_cast<int>(scaled(20)); ++round) {
      rt.block_on(sleep_beats_join());
      rt.block_on(join_beats_sleep());
    }
  }
}

TEST_CASE("when_any over awaitables: a losing socket read is cancelled in the reactor and loses no byte") {
  corio_test::hang_guard guard{"when_any sleep vs read", 120s};
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    for (int round = 0; round < static_cast<int>(scaled(10)); ++round) rt.block_on(sleep_beats_read());
  }
}

TEST_CASE("when_any over awaitables: a losing signal wait is withdrawn and a later wait gets the signal") {
  corio_test::hang_guard guard{"when_any receive vs signal", 120s};
  corio::runtime rt{{.workers = 2}};
  rt.block_on(receive_beats_signal());
}

TEST_CASE("cancelling the task awaiting when_any over operations cancels each operation") {
  corio_test::hang_guard guard{"when_any cancelled", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    rt.block_on(cancel_awaiting_task());
  }
}

TEST_SUITE_END();
