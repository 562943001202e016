// Testing code that uses corio: CORIO_TEST_CASE runs a doctest body as a task on a fresh runtime
// with the manual clock, so timeouts of minutes are tested at once, and exactly.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN  // in one file of the test program
#include <corio/corio.hpp>
#include <corio/testing.hpp>  // includes doctest unless it already is

using namespace std::chrono_literals;

CORIO_TEST_CASE("a receive with nothing sent times out after exactly 5 s") {
  corio::channel<int> ch{1};
  const auto start = corio::now();
  auto r = co_await ch.recv_for(5s);
  CHECK(r.status == corio::channel_status::timed_out);
  CHECK(corio::now() - start == 5s);
}

corio::task<int> answer_later() {
  co_await corio::sleep_for(1h);
  co_return 42;
}

CORIO_TEST_CASE_WITH("an hour-long task finishes under a two-hour timeout", {.workers = 2}) {
  std::optional<int> v = co_await corio::try_timeout(2h, answer_later());
  REQUIRE(v.has_value());
  CHECK(*v == 42);
}
