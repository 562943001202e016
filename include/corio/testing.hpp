// corio/testing.hpp - a test entry for doctest: a test body runs as a task on a fresh runtime, on the
// manual clock by default, with a watchdog that prints a task dump and aborts when the body hangs.
//
// The header uses doctest (https://github.com/doctest/doctest, 2.4 or later). It includes
// <doctest/doctest.h> itself unless doctest is already included, so either order works, and so does
// the translation unit that defines DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN (or DOCTEST_CONFIG_IMPLEMENT)
// before including this header or doctest. A doctest kept elsewhere (a single "doctest.h" in the
// project's tree) must be included before this header. corio.hpp does not include this header: only
// test programs need doctest.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#ifndef DOCTEST_LIBRARY_INCLUDED
#if __has_include(<doctest/doctest.h>)
#include <doctest/doctest.h>
#else
#include <doctest.h>
#endif
#endif

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "corio/runtime.hpp"
#include "corio/task.hpp"
#include "corio/time.hpp"

namespace corio::testing {

/// The hang limit a test gets when it sets none: 60 s (wall time). Generous on purpose: the limit
/// turns a test that would hang into a failure with a task dump, it never measures anything.
inline constexpr std::chrono::milliseconds default_hang_limit{60'000};

/// How corio::testing::run (and CORIO_TEST_CASE_WITH) builds the runtime a test body runs on.
/// The defaults are Tokio's `#[tokio::test(start_paused = true)]` and llam's `#[llam::test]`: one
/// worker, paused time. A plain aggregate: build it with designated initializers,
/// `corio::testing::options{.workers = 4, .clock = corio::clock_source::steady}`.
struct options {
  /// Worker threads of the test's runtime (1 by default). 0: CORIO_WORKERS from the environment,
  /// else one per hardware thread (runtime_options::workers).
  unsigned workers = 1;
  /// Where the runtime's time comes from. corio::manual_clock (the default): time stands still
  /// until runtime::advance() and jumps to the next timer whenever every worker is idle, so a
  /// `sleep_for(1h)` ends at once and at exactly one hour later. clock_source::steady: real time.
  clock_source clock = manual_clock;
  /// Wall time (ms) the body may run, steady time whatever `clock` says. Past it the watchdog
  /// prints the runtime's task dump to stderr, reports a doctest failure and aborts the process.
  /// Left at default_hang_limit, the environment variable CORIO_TEST_HANG_MS (a count of ms,
  /// 1 ms to a year) replaces it; anything else in it makes run() throw std::invalid_argument.
  /// Zero, negative, or a year or more: no limit, and no watchdog thread starts.
  std::chrono::milliseconds hang_limit = default_hang_limit;
  /// Every other runtime option (the reactor, the stall detector, hooks...), as
  /// corio::runtime_options; its `workers` and `clock` are ignored in favour of the fields above.
  runtime_options runtime{};
};

namespace detail {

/// Whether T is a corio::task<U>: what run() requires of a body.
template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<corio::task<T>> : std::true_type {};

/// A year: hang limits from here on mean "no limit" (and keep the condition variable's deadline
/// far from the clock's overflow).
inline constexpr std::chrono::milliseconds hang_limit_cap{std::chrono::hours{24 * 365}};

/// `limit` with CORIO_TEST_HANG_MS applied when `limit` is default_hang_limit. Throws
/// std::invalid_argument when the variable is set to anything but a count of ms from 1 to a year.
inline std::chrono::milliseconds effective_hang_limit(std::chrono::milliseconds limit) {
  if (limit != default_hang_limit) return limit;
  const char* env = std::getenv("CORIO_TEST_HANG_MS");
  if (env == nullptr || *env == '\0') return limit;
  char* end = nullptr;
  errno = 0;
  const unsigned long long ms = std::strtoull(env, &end, 10);
  // strtoull accepts a sign and wraps "-1" around: only digits are a count.
  const bool digits = *env >= '0' && *env <= '9' && end != env && *end == '\0' && errno != ERANGE;
  if (!digits || ms == 0 || ms > static_cast<unsigned long long>(hang_limit_cap.count())) {
    throw std::invalid_argument(
        std::string("corio::testing: CORIO_TEST_HANG_MS must be a count of ms from 1 to ") +
        std::to_string(hang_limit_cap.count()) + ", got '" + env + "'");
  }
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
}

/// The watchdog of one run(): a thread that waits on a condition variable until the run ends or
/// `limit` has passed (steady time). In the second case it prints `rt`'s task dump and a failure to
/// stderr, reports the failure to doctest when a test is running, and aborts the process. Nothing
/// in the pass path depends on time: ending the run just wakes the thread. No thread with no limit.
class hang_watchdog {
 public:
  hang_watchdog(const corio::runtime* rt, std::chrono::milliseconds limit, std::source_location where) {
    if (limit <= std::chrono::milliseconds::zero() || limit >= hang_limit_cap) return;
    thread_ = std::thread([this, rt, limit, where] {
      std::unique_lock lock{mutex_};
      if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
      report_and_abort(*rt, limit, where);
    });
  }
  hang_watchdog(const hang_watchdog&) = delete;
  hang_watchdog& operator=(const hang_watchdog&) = delete;
  ~hang_watchdog() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock{mutex_};
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  [[noreturn]] static void report_and_abort(const corio::runtime& rt, std::chrono::milliseconds limit,
                                            std::source_location where) {
    std::string dump;
    try {
      dump = rt.dump_tasks();
    } catch (const std::exception& e) {
      dump = std::string("(no task dump: ") + e.what() + ")\n";
    } catch (...) {
      dump = "(no task dump)\n";
    }
    const std::string what = std::string("corio::testing: the test body run at ") + where.file_name() + ":" +
                             std::to_string(where.line()) + " is still running after " +
                             std::to_string(limit.count()) + " ms (hang_limit); aborting";
    std::fprintf(stderr, "%s\ncorio::testing: task dump of the test's runtime:\n%s", what.c_str(),
                 dump.c_str());
    std::fflush(stderr);
#ifndef DOCTEST_CONFIG_DISABLE
    // Reported as a failed check of the running test (doctest's reporters are thread-safe); then
    // doctest's SIGABRT handler, when it has one, reports the test case as crashed.
    if (doctest::is_running_in_test)
      ADD_FAIL_CHECK_AT(where.file_name(), static_cast<int>(where.line()), what);
#endif
    std::fflush(stdout);
    std::abort();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace detail

/// Runs a test body: builds a fresh corio::runtime from `opts` (one worker and the manual clock by
/// default), calls `make_body()` (a callable with no arguments returning corio::task<T>, such as a
/// coroutine function's address) and runs the task with block_on, then shuts the runtime down
/// (runtime::shutdown(), which ends or destroys the tasks the body left behind) and returns the
/// task's result. An exception from the body (a failed doctest REQUIRE included) propagates after
/// the shutdown, so doctest reports it; so do the runtime's own construction errors
/// (std::invalid_argument, std::system_error) and std::invalid_argument for a bad
/// CORIO_TEST_HANG_MS.
///
/// When the body and the shutdown have not finished after `opts.hang_limit` (wall time), a
/// watchdog thread prints a failure naming `where` and `rt.dump_tasks()` to stderr, reports a
/// failed check to doctest, and aborts the process: a runtime whose tasks hang cannot be unwound
/// safely (its workers and the blocked caller hold frames that nothing will ever resume), and the
/// point is the dump, printed before anything else can go wrong.
///
/// Call it from a plain thread (a test's), not from a worker of a runtime: block_on would block that
/// worker. Runs may go on concurrently on several threads, each with its own runtime. Tokio's
/// `#[tokio::test]` and llam's `#[llam::test]` are the model.
template <class F>
decltype(auto) run(const options& opts, F&& make_body,
                   std::source_location where = std::source_location::current()) {
  static_assert(detail::is_task<std::invoke_result_t<F&>>::value,
                "corio::testing::run: the body must return a corio::task<T>");
  const auto limit = detail::effective_hang_limit(opts.hang_limit);
  runtime_options ro = opts.runtime;
  ro.workers = opts.workers;
  ro.clock = opts.clock;
  corio::runtime rt{std::move(ro)};
  detail::hang_watchdog watchdog{&rt, limit, where};
  // Shuts the runtime down while the watchdog still looks, however the body ends.
  struct shutdown_on_exit {
    corio::runtime* rt;
    ~shutdown_on_exit() { rt->shutdown(); }
  } shutdown{&rt};
  return rt.block_on(std::invoke(make_body));
}

}  // namespace corio::testing

/// A doctest test case whose body is a coroutine run by corio::testing::run with default options
/// (one worker, the manual clock, the default hang limit). Write the body after it as a function
/// body that co_awaits and ends with `co_return;` when it has no other co_await or co_return:
///
///     CORIO_TEST_CASE("a sleep of an hour ends at once, an hour later") {
///       const auto start = corio::now();
///       co_await corio::sleep_for(std::chrono::hours{1});
///       CHECK(corio::now() - start == std::chrono::hours{1});
///     }
///
/// The body is a `corio::task<void>` function of its own (a static function at namespace scope,
/// so no captures); doctest's CHECK and REQUIRE work in it, on a worker thread (a failed REQUIRE
/// ends the body by its exception). SUBCASE does not (doctest runs subcases on the test's own
/// thread). INFO and CAPTURE must not live across a co_await: doctest keeps them on a per-thread
/// stack that their destructor pops, and after a co_await the task may run on another worker, or
/// other tasks on the same one. Works inside TEST_SUITE and
/// TEST_SUITE_BEGIN like TEST_CASE. Tokio's `#[tokio::test(start_paused = true)]`.
#define CORIO_TEST_CASE(name) CORIO_TEST_CASE_WITH(name, ::corio::testing::options{})

/// As CORIO_TEST_CASE, with the options given after the name: any expression of type
/// corio::testing::options, or a braced list of its fields (commas allowed), e.g.
/// `CORIO_TEST_CASE_WITH("x", {.workers = 4, .clock = corio::clock_source::steady})`.
#define CORIO_TEST_CASE_WITH(name, ...) \
  CORIO_TESTING_DETAIL_CASE(DOCTEST_ANONYMOUS(CORIO_TEST_BODY_), name, __VA_ARGS__)

// The body's name is made once here and used three times (DOCTEST_ANONYMOUS counts on each use).
#define CORIO_TESTING_DETAIL_CASE(body, name, ...)               \
  static ::corio::task<void> body();                             \
  TEST_CASE(name) { ::corio::testing::run(__VA_ARGS__, &body); } \
  static ::corio::task<void> body()
