// The task dump (runtime::dump_tasks) and the stall report's async stack: every kind of wait shows
// up in words, with the file:line of each frame of the task's async stack, innermost first.
#include <corio/corio.hpp>
#include <corio/net/tcp_listener.hpp>
#include <doctest/doctest.h>
#include <fmt/format.h>
#if !defined(_WIN32)
#include <unistd.h>  // pipe(2): the read wait (corio::wait_fd has no Windows port, by design)
#endif

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "waiting_support.hpp"

using namespace std::chrono_literals;

TEST_SUITE_BEGIN("sched");

namespace {

// The line of each co_await the tasks below park in, recorded by the tasks themselves.
std::atomic<int> line_recv{0}, line_send{0}, line_sleep{0}, line_join{0}, line_lock{0}, line_read{0},
    line_accept{0}, line_inner{0}, line_middle{0}, line_outer{0};

corio::task<void> parks_on_recv(corio::channel<int> ch) {
  line_recv = __LINE__ + 1;
  auto v = co_await ch.recv();
  (void)v;
}

corio::task<void> parks_on_send(corio::channel<int> ch) {
  try {
    line_send = __LINE__ + 1;
    co_await ch.send(1);
  } catch (const corio::channel_closed&) {
    // The test closes the channel to end the task.
  }
}

corio::task<void> parks_in_sleep() {
  line_sleep = __LINE__ + 1;
  co_await corio::sleep_for(1h);
}

corio::task<void> parks_on_join(corio::channel<int> ch) {
  auto h = corio::spawn(parks_on_recv(ch), "joined");
  line_join = __LINE__ + 1;
  co_await h;
}

corio::task<void> parks_on_lock(corio::mutex* m) {
  line_lock = __LINE__ + 1;
  auto guard = co_await m->scoped_lock();
}

[[maybe_unused]] corio::task<void> parks_on_read(int fd) {
  line_read = __LINE__ + 1;
  auto ready = co_await corio::wait_readable(fd);
  (void)ready;
}

corio::task<void> parks_on_accept(corio::net::tcp_listener* l) {
  line_accept = __LINE__ + 1;
  auto s = co_await l->accept();
  (void)s;
}

corio::task<int> inner(corio::channel<int> ch) {
  line_inner = __LINE__ + 1;
  auto v = co_await ch.recv();
  co_return v.value_or(0);
}
corio::task<int> middle(corio::channel<int> ch) {
  line_middle = __LINE__ + 1;
  const int v = co_await inner(ch);
  co_return v + 1;
}
corio::task<void> outer(corio::channel<int> ch) {
  line_outer = __LINE__ + 1;
  const int v = co_await middle(ch);
  (void)v;
}

std::atomic<int> line_fork{0}, line_nested{0}, line_child_recv{0};

corio::task<int> child_recv(corio::channel<int> ch) {
  line_child_recv = __LINE__ + 1;
  auto v = co_await ch.recv();
  co_return v.value_or(0);
}

corio::task<int> child_done() { co_return 7; }

corio::task<int> child_nested(corio::channel<int> ch) {
  line_nested = __LINE__ + 1;
  const auto r = co_await corio::when_all(child_recv(ch), child_recv(ch));
  co_return std::get<0>(r) + std::get<1>(r);
}

corio::task<void> forks(corio::channel<int> ch) {
  line_fork = __LINE__ + 1;
  const auto r = co_await corio::when_all(child_recv(ch), child_done(), child_nested(ch));
  (void)r;
}

/// "dump_tests.cpp:N" for the line recorded in `line`.
std::string at(const std::atomic<int>& line) { return fmt::format("dump_tests.cpp:{}", line.load()); }

/// The block of the dump that describes the task named `name` (from its header to the blank line).
std::string block_of(const std::string& dump, const std::string& name) {
  const auto start = dump.find(fmt::format("\"{}\" [", name));
  if (start == std::string::npos) return {};
  const auto end = dump.find("\n\n", start);
  return dump.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

/// Dumps until every named task shows as parked (bounded: a task may still be on its way to its
/// wait when the first dump is taken). Returns the last dump.
std::string dump_when_parked(corio::runtime& rt, const std::vector<std::string>& names) {
  std::string dump;
  for (int attempt = 0; attempt < 2000; ++attempt) {
    dump = rt.dump_tasks();
    bool all = true;
    for (const auto& n : names) {
      const std::string b = block_of(dump, n);
      all = all && !b.empty() && b.find("running") == std::string::npos && b.find("queued") == std::string::npos;
    }
    if (all) break;
    std::this_thread::sleep_for(1ms);
  }
  return dump;
}

}  // namespace

TEST_CASE("the task dump names each kind of wait and the file:line of every frame of each task's stack") {
  corio_test::hang_guard guard{"task dump", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    // The real clock: under the manual clock an idle runtime jumps to the sleeper's deadline.
    corio::runtime rt{{.workers = workers}};
    corio::channel<int> empty_ch;     // nobody sends: receivers park
    corio::channel<int> full_ch{0};   // rendezvous, nobody receives: senders park
    corio::channel<int> join_ch;
    corio::channel<int> chain_ch;
    corio::mutex m;
#if !defined(_WIN32)
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
#endif
    auto listener = corio::net::tcp_listener::bind("127.0.0.1:0");
    // Held by the test's own task so that the lock task parks.
    corio::channel<int> release_lock;
    auto holder = rt.spawn(
        [](corio::mutex* m, corio::channel<int> release) -> corio::task<void> {
          auto g = co_await m->scoped_lock();
          auto v = co_await release.recv();
          (void)v;
        }(&m, release_lock),
        "holder");
    auto recv_h = rt.spawn(parks_on_recv(empty_ch), "recv");
    auto send_h = rt.spawn(parks_on_send(full_ch), "send");
    auto sleep_h = rt.spawn(parks_in_sleep(), "sleep");
    auto join_h = rt.spawn(parks_on_join(join_ch), "join");
#if !defined(_WIN32)
    auto read_h = rt.spawn(parks_on_read(pipe_fds[0]), "read");
#endif
    auto accept_h = rt.spawn(parks_on_accept(&listener), "accept");
    auto chain_h = rt.spawn(outer(chain_ch), "chain");
    // The lock task only once the holder has the lock (it parks on release_lock then).
    (void)dump_when_parked(rt, {"holder"});
    auto lock_h = rt.spawn(parks_on_lock(&m), "lock");

    // "joined" too: a worker answers with its registry as it is at its loop turn, and a task its
    // poll spawns after that (join's child) is in the next dump only, while join's state is read
    // when the dump is written.
#if !defined(_WIN32)
    const std::string dump =
        dump_when_parked(rt, {"holder", "recv", "send", "sleep", "join", "joined", "read", "accept", "chain", "lock"});
#else
    const std::string dump =
        dump_when_parked(rt, {"holder", "recv", "send", "sleep", "join", "joined", "accept", "chain", "lock"});
#endif
    INFO(dump);
    CHECK(dump.find("corio task dump: ") == 0);

    const std::string recv = block_of(dump, "recv");
    CHECK(recv.find("recv on channel 0x") != std::string::npos);
    CHECK(recv.find(at(line_recv)) != std::string::npos);
    CHECK(recv.find("parks_on_recv") != std::string::npos);

    const std::string send = block_of(dump, "send");
    CHECK(send.find("send on channel 0x") != std::string::npos);
    CHECK(send.find(at(line_send)) != std::string::npos);

    const std::string sleep = block_of(dump, "sleep");
    CHECK(sleep.find("sleep until +") != std::string::npos);
    CHECK(sleep.find(at(line_sleep)) != std::string::npos);

    // The joined task is listed on its own, and the joiner names its number.
    const std::string joined = block_of(dump, "joined");
    REQUIRE(!joined.empty());
    CHECK(joined.find("recv on channel") != std::string::npos);
    const std::string join = block_of(dump, "join");
    CHECK(join.find("join task ") != std::string::npos);
    CHECK(join.find(at(line_join)) != std::string::npos);
    // ... and the joined task was created by the joiner.
    const auto join_id = join.substr(join.find("join task ") + 10, join.find(',', join.find("join task ")) -
                                                                       join.find("join task ") - 10);
    CHECK(dump.find(fmt::format("task {} \"joined\"", join_id)) != std::string::npos);

    const std::string lock = block_of(dump, "lock");
    CHECK(lock.find("lock (") != std::string::npos);
    CHECK(lock.find(at(line_lock)) != std::string::npos);

#if !defined(_WIN32)
    const std::string read = block_of(dump, "read");
    CHECK(read.find(fmt::format("poll fd {}", pipe_fds[0])) != std::string::npos);
    CHECK(read.find(at(line_read)) != std::string::npos);
#endif

    const std::string accept = block_of(dump, "accept");
    CHECK(accept.find(at(line_accept)) != std::string::npos);
    CHECK((accept.find("accept fd ") != std::string::npos || accept.find("co_await") != std::string::npos));

    // The async stack, innermost first: inner, middle, outer, each with its co_await's line.
    const std::string chain = block_of(dump, "chain");
    const auto pi = chain.find(at(line_inner)), pm = chain.find(at(line_middle)), po = chain.find(at(line_outer));
    CHECK(chain.find("recv on channel") != std::string::npos);
    REQUIRE(pi != std::string::npos);
    REQUIRE(pm != std::string::npos);
    REQUIRE(po != std::string::npos);
    CHECK(pi < pm);
    CHECK(pm < po);

    // Let everything end: close what they wait on, cancel the rest.
    empty_ch.close();
    full_ch.close();
    join_ch.close();
    chain_ch.close();
    release_lock.close();
    sleep_h.cancel();
#if !defined(_WIN32)
    read_h.cancel();
#endif
    accept_h.cancel();
    rt.shutdown(5s);
#if !defined(_WIN32)
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
#endif
  }
}

TEST_CASE("the task dump lists a when_all's children under the task that awaits it, nested ones deeper") {
  corio_test::hang_guard guard{"when_all in the dump", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    corio::channel<int> ch;  // nobody sends until the end: the receiving children park
    auto h = rt.spawn(forks(ch), "fork");
    const std::string dump = dump_when_parked(rt, {"fork"});
    INFO(dump);
    const std::string fork = block_of(dump, "fork");
    CHECK(fork.find("\"fork\" [when_all, parked") != std::string::npos);
    const auto p_fork = fork.find(at(line_fork));
    const auto p_c1 = fork.find("\n  when_all child 1 of 3 [recv on channel 0x");
    const auto p_c2 = fork.find("\n  when_all child 2 of 3 [finished]\n");
    const auto p_c3 = fork.find("\n  when_all child 3 of 3 [when_all");
    const auto p_nested = fork.find(at(line_nested));
    const auto p_n1 = fork.find("\n    when_all child 1 of 2 [recv on channel 0x");
    const auto p_n2 = fork.find("\n    when_all child 2 of 2 [recv on channel 0x");
    REQUIRE(p_fork != std::string::npos);
    REQUIRE(p_c1 != std::string::npos);
    REQUIRE(p_c2 != std::string::npos);
    REQUIRE(p_c3 != std::string::npos);
    REQUIRE(p_nested != std::string::npos);
    REQUIRE(p_n1 != std::string::npos);
    REQUIRE(p_n2 != std::string::npos);
    // In order: the awaiting frame, then each child with its own stack (the receiving children's
    // co_await line, four spaces in at the first level), the nested when_all's children deeper.
    CHECK(p_fork < p_c1);
    CHECK(p_c1 < p_c2);
    CHECK(p_c2 < p_c3);
    CHECK(p_c3 < p_nested);
    CHECK(p_nested < p_n1);
    CHECK(p_n1 < p_n2);
    CHECK(fork.substr(p_c1, p_c2 - p_c1).find(at(line_child_recv)) != std::string::npos);
    CHECK(fork.substr(p_n1).find(at(line_child_recv)) != std::string::npos);
    // The children are not tasks of their own in the dump: one block, the spawned task's.
    CHECK(dump.find("when_all child", dump.find("\n\n", dump.find("\"fork\" ["))) == std::string::npos);
    ch.close();
    rt.block_on(corio_test::joined(std::move(h)));
  }
}

TEST_CASE("a dump taken from a task of the runtime lists the task that takes it as running") {
  corio_test::hang_guard guard{"dump from a task", 120s};
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
  corio::channel<int> ch;
  auto parked = rt.spawn(parks_on_recv(ch), "parked");
  (void)dump_when_parked(rt, {"parked"});
  const std::string dump = rt.block_on([](corio::runtime* rt) -> corio::task<std::string> {
    co_return rt->dump_tasks();
  }(&rt));
  INFO(dump);
  CHECK(block_of(dump, "parked").find("recv on channel") != std::string::npos);
  CHECK(dump.find("running on worker") != std::string::npos);  // block_on's own task
  ch.close();
}

TEST_CASE("a dump after shutdown says the runtime is shut down, at once") {
  corio_test::hang_guard guard{"dump after shutdown", 120s};
  corio::runtime rt{{.workers = 2}};
  rt.shutdown(0s);
  const std::string dump = rt.dump_tasks();
  CHECK(dump == "corio task dump: the runtime is shut down; no task runs\n");
}

TEST_CASE("dumps taken while tasks spawn, migrate and finish on 4 workers read no freed frame") {
  corio_test::hang_guard guard{"dump under churn", 120s};
  corio::runtime rt{{.workers = 4}};
  std::atomic<bool> stop{false};
  auto churn = [](std::atomic<bool>* stop) -> corio::task<std::uint64_t> {
    std::uint64_t n = 0;
    while (!stop->load()) {
      std::vector<corio::join_handle<int>> hs;
      for (int i = 0; i < 16; ++i) {
        hs.push_back(corio::spawn([](int i) -> corio::task<int> {
          co_await corio::yield();
          co_return i;
        }(i)));
      }
      for (auto& h : hs) {
        const int v = co_await h;
        n += static_cast<std::uint64_t>(v);
      }
    }
    co_return n;
  };
  // And when_alls, whose children the dump lists while they run, finish and are freed.
  auto fork_churn = [](std::atomic<bool>* stop) -> corio::task<std::uint64_t> {
    std::uint64_t n = 0;
    while (!stop->load()) {
      std::vector<corio::task<int>> children;
      for (int i = 0; i < 16; ++i) {
        children.push_back([](int i) -> corio::task<int> {
          co_await corio::yield();
          co_return i;
        }(i));
      }
      const std::vector<int> results = co_await corio::when_all(std::move(children));
      for (int v : results) n += static_cast<std::uint64_t>(v);
    }
    co_return n;
  };
  std::vector<corio::join_handle<std::uint64_t>> churners;
  for (int i = 0; i < 4; ++i) churners.push_back(rt.spawn(churn(&stop), "churn"));
  for (int i = 0; i < 2; ++i) churners.push_back(rt.spawn(fork_churn(&stop), "fork churn"));
  std::size_t dumps = 0;
  for (int i = 0; i < static_cast<int>(corio_test::scaled(50)); ++i) {
    const std::string d = rt.dump_tasks();
    CHECK(d.find("corio task dump: ") == 0);
    ++dumps;
  }
  stop = true;
  std::uint64_t total = 0;
  for (auto& h : churners) total += rt.block_on(corio_test::joined(std::move(h)));
  CHECK(total % 120 == 0);  // every round of 16 children or tasks returned 0..15: nothing lost
  CHECK(dumps > 0);
}

namespace {
std::atomic<int> line_busy_outer{0};
corio::task<void> busy_inner(std::chrono::milliseconds d) {
  co_await corio::yield();
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}
corio::task<void> busy_outer(std::chrono::milliseconds d) {
  line_busy_outer = __LINE__ + 1;
  co_await busy_inner(d);
}
}  // namespace

TEST_CASE("a task that busy-loops 300 ms is reported once by the stall detector, with its name and async stack") {
  corio_test::hang_guard guard{"stall stack", 120s};
  std::mutex mutex;
  std::vector<corio::stall_report> reports;
  corio::runtime rt{{.workers = 2,
                     .stall_threshold = 100ms,
                     .on_stall = [&](const corio::stall_report& r) {
                       std::lock_guard lock{mutex};
                       reports.push_back(r);
                     }}};
  auto h = rt.spawn(busy_outer(300ms), "busy");
  rt.block_on(corio_test::joined(std::move(h)));
  std::lock_guard lock{mutex};
  REQUIRE(reports.size() == 1);
  INFO(reports[0].stack);
  CHECK(reports[0].task_id != 0);
  REQUIRE(reports[0].name != nullptr);
  CHECK(std::string{reports[0].name} == "busy");
  CHECK(reports[0].stack.find("\"busy\"") != std::string::npos);
  CHECK(reports[0].stack.find("running on worker") != std::string::npos);
  CHECK(reports[0].stack.find("busy_inner") != std::string::npos);
  CHECK(reports[0].stack.find(at(line_busy_outer)) != std::string::npos);
}

TEST_SUITE_END();
