// Watching a runtime from outside its tasks: the environment knobs, the stall detector and the
// task hooks (runtime_options).
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "test_support.hpp"

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
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator{"/proc/self/task"}) ++n;
  return n;
}

std::uint64_t stalls_of(const corio::runtime& rt) {
  std::uint64_t n = 0;
  for (const auto& w : rt.stats().workers) n += w.stalls;
  return n;
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
  CHECK(reports[0].running <= 600ms);
  CHECK(rt.stats().workers[worker].stalls == 1);
  CHECK(stalls_of(rt) == 1);
  // The next stall of the same worker is a new one.
  (void)rt.block_on(busy_task(600ms));
  CHECK(log.taken().size() == 2);
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

TEST_SUITE_END();
