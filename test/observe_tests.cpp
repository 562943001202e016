// Watching a runtime from outside its tasks: the environment knobs, the stall detector and the
// task hooks (runtime_options).
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "test_support.hpp"

#if defined(_WIN32)
#include <windows.h>
#include <tlhelp32.h>
#endif

using namespace std::chrono_literals;
using corio_test::scoped_env;

TEST_SUITE_BEGIN("sched");

TEST_CASE("CORIO_WORKERS sets the worker count the program left at 0 and is ignored when the program set it") {
  {
    const scoped_env env{"CORIO_WORKERS", "3"};
    corio::runtime rt{{.clock = corio::manual_clock}};
    CHECK(rt.workers() == 3);
    corio::runtime set{{.workers = 2, .clock = corio::manual_clock}};
    CHECK(set.workers() == 2);
  }
  {
    const scoped_env env{"CORIO_WORKERS", ""};  // empty: as if unset
    corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
    CHECK(rt.workers() == 1);
  }
}

TEST_CASE("malformed or out-of-range CORIO_* values make the runtime's construction throw invalid_argument naming them") {
  const struct {
    const char* name;
    const char* value;
  } cases[] = {{"CORIO_WORKERS", "three"}, {"CORIO_WORKERS", "-1"}, {"CORIO_WORKERS", "4097"},
               {"CORIO_WORKERS", "2x"},   {"CORIO_WORKERS", "99999999999999999999999"},
               {"CORIO_SQPOLL_IDLE_MS", "5ms"}, {"CORIO_SQPOLL_IDLE_MS", "-5"},
               {"CORIO_SEND_ZC_THRESHOLD", "+1"}, {"CORIO_BACKEND", "epoll-please"}};
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.value);
    const scoped_env env{c.name, c.value};
    bool named = false;
    try {
      corio::runtime rt{{.clock = corio::manual_clock}};
    } catch (const std::invalid_argument& e) {
      named = std::string_view{e.what()}.find(c.name) != std::string_view::npos;
    }
    CHECK(named);
  }
}

namespace {

/// Collects the stall detector's reports (runtime_options::on_stall).
struct stall_log {
  std::mutex mutex;
  std::vector<corio::stall_report> reports;
  void add(const corio::stall_report& r) {
    std::lock_guard lock{mutex};
    reports.push_back(r);
  }
  std::vector<corio::stall_report> taken() {
    std::lock_guard lock{mutex};
    return reports;
  }
};

/// Spins on the steady clock for `d` without a co_await: one poll that long (real time).
void busy_for(std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

corio::task<unsigned> busy_task(std::chrono::milliseconds d) {
  co_await corio::yield();  // starts its poll on whatever worker runs it now
  const unsigned worker = corio::this_worker_index().value();
  busy_for(d);
  co_return worker;
}

corio::task<void> short_pieces(int pieces) {
  for (int i = 0; i < pieces; ++i) {
    busy_for(std::chrono::milliseconds{1});
    co_await corio::yield();
  }
}

std::size_t threads_of_this_process() {
  std::size_t n = 0;
#if defined(_WIN32)
  const HANDLE snapshot = ::CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  REQUIRE(snapshot != INVALID_HANDLE_VALUE);
  THREADENTRY32 entry{};
  entry.dwSize = sizeof entry;
  for (BOOL more = ::Thread32First(snapshot, &entry); more; more = ::Thread32Next(snapshot, &entry)) {
    if (entry.th32OwnerProcessID == ::GetCurrentProcessId()) ++n;
  }
  ::CloseHandle(snapshot);
#else
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator{"/proc/self/task"}) ++n;
#endif
  return n;
}

std::uint64_t stalls_of(const corio::runtime& rt) {
  return corio_test::worker_sum(rt, &corio::worker_stats::stalls);
}

}  // namespace

TEST_CASE("a task that busy-loops 600 ms against a 100 ms stall threshold is reported once, on its worker") {
  corio_test::hang_guard guard{"stall report", 120s};
  stall_log log;
  corio::runtime rt{{.workers = 2,
                     .stall_threshold = 100ms,
                     .on_stall = [&log](const corio::stall_report& r) { log.add(r); }}};
  const unsigned worker = rt.block_on(busy_task(600ms));
  const auto reports = log.taken();
  REQUIRE(reports.size() == 1);  // once per stall, not once per look (about ten looks saw it)
  CHECK(reports[0].worker == worker);
  CHECK(reports[0].task != 0);
  CHECK(reports[0].running >= 100ms);
  CHECK(reports[0].running < 60s);  // a duration, not garbage (its upper end depends on the machine's load)
  CHECK(rt.stats().workers[worker].stalls == 1);
  CHECK(stalls_of(rt) == 1);
  // The next stall of the same worker is a new one.
  (void)rt.block_on(busy_task(600ms));
  CHECK(log.taken().size() == 2);
}

namespace {

corio::task<int> child_resumed_by_the_poll() {
  co_await corio::yield();  // the poll that resumes this frame goes on in its parent once it ends
  co_return 1;
}

/// Awaits a child whose frame the worker's poll began with; the child finishes and its frame is
/// freed inside that poll, and the parent then blocks the worker until the watchdog reports it
/// (bounded: 60 s).
corio::task<int> stall_after_polled_child_finished(stall_log* log) {
  const int v = co_await child_resumed_by_the_poll();
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (log->taken().empty() && std::chrono::steady_clock::now() < until) {
  }
  co_return v;
}

}  // namespace

TEST_CASE("a stall that goes on after the polled frame, an inline child, finished is reported without reading the freed frame") {
  // The watchdog knows the poll by the frame it began with; the report then reads a frame the
  // child's parent freed (the gap named in docs/internals.md, "The stall report"). Under
  // AddressSanitizer that frame is poisoned in corio's free list: the report must skip it.
  corio_test::hang_guard guard{"stall after child", 120s};
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    stall_log log;
    corio::runtime rt{{.workers = 2,
                       .stall_threshold = 50ms,
                       .on_stall = [&log](const corio::stall_report& r) { log.add(r); }}};
    CHECK(rt.block_on(stall_after_polled_child_finished(&log)) == 1);
    const auto reports = log.taken();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].running >= 50ms);
  }
}

TEST_CASE("with a stall threshold of 0, or CORIO_STALL_MS=0, no watchdog starts and nothing is reported") {
  corio_test::hang_guard guard{"stall off", 120s};
  const std::size_t before = threads_of_this_process();
  {
    stall_log log;
    corio::runtime on{{.workers = 2, .on_stall = [&log](const corio::stall_report& r) { log.add(r); }}};
    CHECK(threads_of_this_process() == before + 3);  // two workers and the watchdog
  }
  for (const bool from_env : {false, true}) {
    CAPTURE(from_env);
    const corio_test::scoped_env env{"CORIO_STALL_MS", from_env ? "0" : nullptr};
    stall_log log;
    corio::runtime rt{{.workers = 2,
                       .stall_threshold = from_env ? 100ms : 0ms,
                       .on_stall = [&log](const corio::stall_report& r) { log.add(r); }}};
    CHECK(threads_of_this_process() == before + 2);  // the workers only
    (void)rt.block_on(busy_task(300ms));
    CHECK(log.taken().empty());
    CHECK(stalls_of(rt) == 0);
  }
}

TEST_CASE("CORIO_STALL_MS sets the stall threshold the program left at its default, and bad values are refused") {
  corio_test::hang_guard guard{"stall env", 120s};
  {
    const corio_test::scoped_env env{"CORIO_STALL_MS", "100"};
    stall_log log;
    corio::runtime rt{{.workers = 1,
                       .stall_threshold = 0ms,  // set by the program: the environment does not apply
                       .on_stall = [&log](const corio::stall_report& r) { log.add(r); }}};
    (void)rt.block_on(busy_task(300ms));
    CHECK(log.taken().empty());
  }
  for (const char* bad : {"-1", "100ms", "86400001"}) {
    CAPTURE(bad);
    const corio_test::scoped_env env{"CORIO_STALL_MS", bad};
    CHECK_THROWS_AS((corio::runtime{{.workers = 1}}), std::invalid_argument);
  }
}

TEST_CASE("a task that runs 300 pieces of 1 ms with a yield between them is never reported as a stall") {
  corio_test::hang_guard guard{"short polls", 120s};
  for (const unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    stall_log log;
    // 200 ms: a margin of 200 over each 1 ms poll, while the whole task runs past the threshold.
    corio::runtime rt{{.workers = workers,
                       .stall_threshold = 200ms,
                       .on_stall = [&log](const corio::stall_report& r) { log.add(r); }}};
    rt.block_on(short_pieces(300));
    CHECK(log.taken().empty());
    CHECK(stalls_of(rt) == 0);
  }
}

namespace {

/// What the task hooks saw (runtime_options::task_hook_data points to one).
struct hook_log {
  std::atomic<std::uint64_t> before{0}, after{0}, unmatched{0};
  std::mutex mutex;
  std::vector<std::uintptr_t> spawned, terminated;
};
/// The poll in progress on this thread, as the hooks saw it (0: none).
thread_local std::uintptr_t hooked_poll = 0;

void on_spawn(std::uintptr_t task, void* data) noexcept {
  auto* log = static_cast<hook_log*>(data);
  std::lock_guard lock{log->mutex};
  log->spawned.push_back(task);
}
void on_terminate(std::uintptr_t task, void* data) noexcept {
  auto* log = static_cast<hook_log*>(data);
  std::lock_guard lock{log->mutex};
  log->terminated.push_back(task);
}
void before_poll(std::uintptr_t task, void* data) noexcept {
  auto* log = static_cast<hook_log*>(data);
  if (hooked_poll != 0 || task == 0) log->unmatched.fetch_add(1);  // a poll inside a poll
  hooked_poll = task;
  log->before.fetch_add(1);
}
void after_poll(std::uintptr_t task, void* data) noexcept {
  auto* log = static_cast<hook_log*>(data);
  if (hooked_poll != task) log->unmatched.fetch_add(1);  // not the poll this thread began
  hooked_poll = 0;
  log->after.fetch_add(1);
}

corio::runtime_options hooked(unsigned workers, hook_log& log) {
  return {.workers = workers,
          .clock = corio::manual_clock,
          .on_task_spawn = &on_spawn,
          .on_task_terminate = &on_terminate,
          .before_task_poll = &before_poll,
          .after_task_poll = &after_poll,
          .task_hook_data = &log};
}

corio::task<int> leaf(int i) {
  co_await corio::yield();
  co_return i;
}

corio::task<int> pair_of_leaves(int i) {
  auto both = co_await corio::when_all(leaf(i), leaf(1));
  co_return std::get<0>(both) + std::get<1>(both);
}

/// Spawns `n` tasks (each a when_all of two leaves), joins them, and sleeps a little: spawns,
/// joins, yields, forks and timers, each a way to begin or end a poll.
corio::task<long> hooked_work(int n) {
  std::vector<corio::join_handle<int>> handles;
  for (int i = 0; i < n; ++i) handles.push_back(corio::spawn(pair_of_leaves(i)));
  long sum = 0;
  for (auto& h : handles) sum += co_await h;
  co_await corio::sleep_for(1ms);
  const int joined_at_once = co_await corio::spawn(leaf(5));
  co_return sum + joined_at_once;
}

std::vector<std::uintptr_t> sorted(std::vector<std::uintptr_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

corio::task<void> wait_forever(corio::event* e) { co_await e->wait(); }

}  // namespace

TEST_CASE("task hooks: one spawn and one terminate per spawned task, and balanced polls at least as many as the ticks") {
  corio_test::hang_guard guard{"task hooks", 120s};
  const int n = static_cast<int>(corio_test::scaled(500));
  for (const unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    for (int round = 0; round < 3; ++round) {
      hook_log log;
      std::uint64_t ticks = 0;
      {
        corio::runtime rt{hooked(workers, log)};
        const long sum = rt.block_on(hooked_work(n));
        CHECK(sum == static_cast<long>(n) * (n - 1) / 2 + n + 5);
        for (const auto& w : rt.stats().workers) ticks += w.polls;
      }  // shut down: every poll has ended
      std::lock_guard lock{log.mutex};
      CHECK(log.spawned.size() == static_cast<std::size_t>(n) + 2);  // the tasks, the second spawn, block_on's root
      CHECK(sorted(log.spawned) == sorted(log.terminated));  // each terminated once, same ids
      CHECK(log.before.load() == log.after.load());
      CHECK(log.unmatched.load() == 0);
      CHECK(log.before.load() >= ticks);
      CHECK(ticks >= static_cast<std::uint64_t>(3 * n));  // each spawned task and both leaves ran at least once
    }
  }
}

TEST_CASE("task hooks: a task the shutdown destroys is terminated once, and a runtime without hooks calls none") {
  corio_test::hang_guard guard{"task hooks at shutdown", 120s};
  hook_log log;
  corio::event never;
  {
    corio::runtime rt{hooked(2, log)};
    corio::runtime plain{{.workers = 2, .clock = corio::manual_clock}};
    for (int i = 0; i < 10; ++i) rt.spawn(wait_forever(&never)).detach();
    CHECK(plain.block_on(hooked_work(50)) == 50L * 49 / 2 + 50 + 5);  // calls nothing
    CHECK(rt.shutdown(std::chrono::milliseconds{0}) <= 10);
  }
  std::lock_guard lock{log.mutex};
  CHECK(log.spawned.size() == 10);
  CHECK(sorted(log.spawned) == sorted(log.terminated));
  CHECK(log.before.load() == log.after.load());
  CHECK(log.unmatched.load() == 0);
}

TEST_SUITE_END();
