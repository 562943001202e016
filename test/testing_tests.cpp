// Suite "core": corio/testing.hpp, the test entry (CORIO_TEST_CASE, corio::testing::run).
// First on purpose: corio/testing.hpp includes doctest itself.
#include <corio/testing.hpp>

#include <corio/corio.hpp>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

extern char** environ;

using namespace std::chrono_literals;

namespace {

corio::task<unsigned> worker_index() {
  const auto index = corio::this_worker_index();
  co_return index.value_or(1000);
}

corio::task<int> answer() { co_return 42; }

corio::task<void> throws_logic_error() {
  co_await corio::yield();
  throw std::logic_error("from the body");
}

corio::task<void> wait_forever() {
  corio::event never;
  co_await never.wait();
}

/// The name of the hang test below, which re-runs itself in a child process.
constexpr const char* hang_case =
    "a body that hangs past its hang_limit aborts the process after printing the task dump";

}  // namespace

TEST_SUITE_BEGIN("core");

CORIO_TEST_CASE(
    "CORIO_TEST_CASE runs its body on one worker and the manual clock: a 1 h sleep is exactly 1 h") {
  CHECK(corio::this_worker_index() == std::optional<unsigned>{0});
  const auto start = corio::now();
  co_await corio::sleep_for(1h);
  CHECK(corio::now() - start == 1h);
  co_await corio::sleep_for(30min);
  CHECK(corio::now() - start == 90min);
}

CORIO_TEST_CASE_WITH("CORIO_TEST_CASE_WITH builds the runtime from its options: 4 workers on the real clock",
                     {.workers = 4, .clock = corio::clock_source::steady}) {
  // Four workers: a task bound to the last one runs there (spawn_on refuses a worker that does not exist).
  auto on_last = corio::spawn_on(3, worker_index());
  const unsigned index = co_await on_last;
  CHECK(index == 3);
  // The real clock: a thread blocked in real time sees corio's time move (the manual clock would
  // stand still: no timer, no advance()).
  const auto start = corio::now();
  std::this_thread::sleep_for(5ms);
  CHECK(corio::now() - start >= 5ms);
}

TEST_CASE("corio::testing::run returns the body's value and passes the runtime options through") {
  CHECK(corio::testing::run({}, &answer) == 42);
  // The passthrough: an option the testing fields do not name reaches the runtime.
  const int v = corio::testing::run({.workers = 2, .runtime = {.budget = 7}}, &answer);
  CHECK(v == 42);
  // A runtime that cannot be built is reported by run(), before any body runs.
  CHECK_THROWS_AS(corio::testing::run({.runtime = {.max_blocking_threads = 0}}, &answer),
                  std::invalid_argument);
}

TEST_CASE("an exception from the body propagates out of corio::testing::run after the runtime shut down") {
  CHECK_THROWS_WITH_AS(corio::testing::run({}, &throws_logic_error), "from the body", std::logic_error);
  CHECK_THROWS_AS(
      corio::testing::run({.workers = 4, .clock = corio::clock_source::steady}, &throws_logic_error),
      std::logic_error);
}

TEST_CASE("CORIO_TEST_HANG_MS replaces the default hang limit only, and a bad value is refused") {
  using corio::testing::detail::effective_hang_limit;
  {
    corio_test::scoped_env env{"CORIO_TEST_HANG_MS", "1500"};
    CHECK(effective_hang_limit(corio::testing::default_hang_limit) == 1500ms);
    CHECK(effective_hang_limit(3s) == 3s);
    CHECK(corio::testing::run({}, &answer) == 42);
  }
  for (const char* bad : {"-1", "0", "abc", "12ms", "99999999999999999999999", "31536000001"}) {
    CAPTURE(bad);
    corio_test::scoped_env env{"CORIO_TEST_HANG_MS", bad};
    CHECK_THROWS_AS(corio::testing::run({}, &answer), std::invalid_argument);
  }
  // No limit at all: zero, negative, or a year or more (no watchdog thread, nothing overflows).
  for (auto limit : {0ms, -5ms, std::chrono::milliseconds::min(), std::chrono::milliseconds::max()}) {
    CHECK(corio::testing::run({.hang_limit = limit}, &answer) == 42);
  }
}

TEST_CASE(hang_case) {
  if (std::getenv("CORIO_TESTING_HANG_CHILD") != nullptr) {
    // The child: the body waits for an event nobody sets; the watchdog must end the process.
    corio::testing::run({.hang_limit = 200ms}, &wait_forever);
    FAIL("corio::testing::run returned from a body that never ends");
    return;
  }
  // The parent: run this test case alone in a child (the test binary again), read its stderr.
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  REQUIRE(::posix_spawn_file_actions_init(&actions) == 0);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::string filter = std::string("--test-case=") + hang_case;
  std::vector<char*> argv{const_cast<char*>("/proc/self/exe"), filter.data(), nullptr};
  std::vector<std::string> env_strings{"CORIO_TESTING_HANG_CHILD=1"};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  pid_t child = -1;
  const int spawned = ::posix_spawn(&child, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  REQUIRE(spawned == 0);
  // Read until the child closes its end; a bound of 120 s (the child should die after 200 ms).
  std::string text;
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    if (std::chrono::steady_clock::now() >= give_up) break;
    if (::poll(&p, 1, 1000) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  if (std::chrono::steady_clock::now() >= give_up) ::kill(child, SIGKILL);
  REQUIRE(::waitpid(child, &status, 0) == child);
  INFO("child output:\n" << text);
  // Killed by SIGABRT; under ThreadSanitizer doctest's crash handler (signal-unsafe calls inside
  // the signal) makes TSan end the process with its own exit code instead: abnormal either way.
  const bool aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  const bool sanitizer_exit = WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
                              text.find("ThreadSanitizer: signal-unsafe call inside of a signal") != std::string::npos;
  CHECK((aborted || sanitizer_exit));
  CHECK(text.find("is still running after 200 ms (hang_limit); aborting") != std::string::npos);
  CHECK(text.find("corio::testing: task dump of the test's runtime:") != std::string::npos);
  CHECK(text.find("testing_tests.cpp") != std::string::npos);
}

TEST_SUITE_END();

// The macros inside TEST_SUITE's block form too.
TEST_SUITE("core") {
  CORIO_TEST_CASE("CORIO_TEST_CASE works inside a TEST_SUITE block") {
    const auto v = co_await answer();
    CHECK(v == 42);
  }
}
