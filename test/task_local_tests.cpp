// Suite "core": corio::task_local: scoped bindings that follow the task across workers, which
// tasks inherit them (awaited tasks, timeouts, when_all / when_any children) and which do not
// (spawned tasks, task_group children), nesting, and the errors when nothing is bound.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio_test::scaled;

namespace {

corio::task_local<std::string> request_id;
corio::task_local<int> depth;

corio::task<std::string> read_id() {
  co_await corio::yield();
  co_return request_id.get();
}

corio::task<int> read_depth() {
  co_await corio::yield();
  co_return depth.get();
}

corio::task<bool> nothing_bound() {
  co_await corio::yield();
  co_return request_id.try_get() == nullptr;
}

corio::task<void> report_unbound(corio::channel<bool> out) {
  co_await corio::yield();
  co_await out.send(request_id.try_get() == nullptr);
}

corio::task<void> count_unbound(std::atomic<int>* n) {
  co_await corio::yield();
  if (request_id.try_get() == nullptr) n->fetch_add(1);
}

// Bound to one worker: answers each reply channel it is sent. A task parked on its reply channel
// is woken by this relay into this relay's worker (the waker's LIFO slot), so a task that goes
// through the relays in turn moves from worker to worker.
corio::task<void> relay(corio::channel<corio::channel<int>> in) {
  for (;;) {
    auto reply = co_await in.recv();
    if (!reply) co_return;
    co_await reply->send(1);
  }
}

// Reads the value after each yield and each trip through another worker's relay, while other
// tasks run on every worker: the task migrates and must see its own value each time.
corio::task<int> keeps_its_value(std::string expected, int rounds,
                                 std::vector<corio::channel<corio::channel<int>>>* relays,
                                 std::atomic<int>* moves) {
  int mismatches = 0;
  corio::channel<int> reply{0};
  auto where = corio::this_worker_index();
  for (int i = 0; i < rounds; ++i) {
    co_await corio::yield();
    if (request_id.get() != expected) ++mismatches;
    co_await (*relays)[static_cast<std::size_t>(i) % relays->size()].send(reply);
    auto got = co_await reply.recv();
    if (!got) ++mismatches;
    if (request_id.get() != expected) ++mismatches;
    const std::string inner = co_await read_id();  // an awaited task sees it too
    if (inner != expected) ++mismatches;
    const auto now = corio::this_worker_index();
    if (now != where) moves->fetch_add(1);
    where = now;
  }
  co_return mismatches;
}

corio::task<int> many_tasks_migrate(unsigned workers, int tasks, int rounds, std::atomic<int>* moves) {
  std::vector<corio::channel<corio::channel<int>>> relays;
  for (unsigned w = 0; w < workers; ++w) {
    relays.emplace_back(0);
    corio::spawn_on(w, relay(relays.back())).detach();
  }
  std::vector<corio::join_handle<int>> handles;
  handles.reserve(static_cast<std::size_t>(tasks));
  for (int i = 0; i < tasks; ++i) {
    std::string id = "request-" + std::to_string(i);
    handles.push_back(corio::spawn(request_id.scope(id, keeps_its_value(id, rounds, &relays, moves))));
  }
  int mismatches = 0;
  for (auto& h : handles) {
    const int m = co_await h;
    mismatches += m;
  }
  for (auto& r : relays) r.close();
  co_return mismatches;
}

corio::task<std::string> shadowed() {
  const std::string inner = co_await request_id.scope("inner", read_id());
  const std::string after = request_id.get();  // the outer binding is back
  co_return inner + "/" + after;
}

corio::task<void> throws_inside() {
  co_await corio::yield();
  throw std::runtime_error("body failed");
}

corio::task<void> scopes_nest_and_unwind() {
  CHECK(request_id.try_get() == nullptr);
  CHECK_THROWS_AS((void)request_id.get(), std::logic_error);
  const std::string outer = co_await request_id.scope("outer", read_id());
  CHECK(outer == "outer");
  CHECK(request_id.try_get() == nullptr);  // the scope ended
  const std::string both = co_await request_id.scope("outer", shadowed());
  CHECK(both == "inner/outer");
  bool threw = false;
  try {
    co_await request_id.scope("doomed", throws_inside());
  } catch (const std::runtime_error&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(request_id.try_get() == nullptr);  // an exception ends the scope too
  const int d = co_await depth.scope(3, read_depth());  // two task_locals are independent
  CHECK(d == 3);
}

// Inside the scope: when_all and when_any children inherit, a timeout's operation sees it; a
// spawned task and a task_group child do not, unless bound again explicitly.
corio::task<void> inheritance_inside() {
  auto [a, b] = co_await corio::when_all(read_id(), read_id());
  CHECK(a == "parent");
  CHECK(b == "parent");
  auto any = co_await corio::when_any(read_id(), corio::sleep_for(1h));
  REQUIRE(any.index() == 0);
  CHECK(std::get<0>(any) == "parent");
  const std::string timed = co_await corio::timeout(1h, read_id());
  CHECK(timed == "parent");
  auto nested = co_await corio::when_all(corio::when_all(read_id()), read_id());  // two levels up
  CHECK(std::get<0>(std::get<0>(nested)) == "parent");

  auto spawned = corio::spawn(nothing_bound());
  const bool spawned_unbound = co_await spawned;
  CHECK(spawned_unbound);  // not inherited
  corio::channel<bool> done{1};
  corio::spawn(report_unbound(done)).detach();
  const auto detached_unbound = co_await done.recv();
  CHECK(detached_unbound == std::optional<bool>{true});
  auto rebound = corio::spawn(request_id.scope(request_id.get(), read_id()));
  const std::string rebound_value = co_await rebound;
  CHECK(rebound_value == "parent");  // bound again explicitly

  std::atomic<int> unbound_children{0};
  corio::task_group g;
  for (int i = 0; i < 4; ++i) g.spawn(count_unbound(&unbound_children));
  co_await g.join();
  CHECK(unbound_children.load() == 4);
}

}  // namespace

TEST_SUITE("core") {
  TEST_CASE("task_local: get gives the innermost scope's value; nothing bound throws, try_get gives null") {
    corio_test::hang_guard guard{"task_local scopes", 60s};
    corio::runtime rt{{.workers = 2}};
    rt.block_on(scopes_nest_and_unwind());
    CHECK(request_id.try_get() == nullptr);  // not a task: nothing bound
    CHECK_THROWS_AS((void)request_id.get(), std::logic_error);
  }
  TEST_CASE("task_local: when_all, when_any and timeout children inherit the binding; spawned tasks do not") {
    corio_test::hang_guard guard{"task_local inheritance", 60s};
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
      for (int round = 0; round < static_cast<int>(scaled(10)); ++round) {
        rt.block_on(request_id.scope("parent", inheritance_inside()));
      }
    }
  }
  TEST_CASE("task_local: the binding follows each task across workers through yields and steals") {
    corio_test::hang_guard guard{"task_local migration", 120s};
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      std::atomic<int> moves{0};
      const int mismatches = rt.block_on(
          many_tasks_migrate(workers, static_cast<int>(scaled(32)), static_cast<int>(scaled(100)), &moves));
      CHECK(mismatches == 0);
      if (workers > 1) CHECK(moves.load() > 0);  // the tasks did move between workers
    }
  }
}
