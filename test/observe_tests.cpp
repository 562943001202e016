// Watching a runtime from outside its tasks: the environment knobs, the stall detector and the
// task hooks (runtime_options).
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>

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

TEST_SUITE_END();
