// Suite "core": corio::task<T> - laziness, results, exceptions, frame lifetime, deep chains.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "await_chains.hpp"
#include "test_support.hpp"

using corio_test::counted;
using corio_test::loop_of_awaits;
using corio_test::recurse;
using corio_test::scaled;

namespace {

corio::task<int> value_of(int x) { co_return x * 2; }

corio::task<int> add_three_levels(int x) {
  int a = co_await value_of(x);
  int b = co_await value_of(a);
  co_return a + b;
}

corio::task<void> set_flag(bool* flag) {
  *flag = true;
  co_return;
}

corio::task<int&> pick(int* target) { co_return *target; }

struct marker_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

corio::task<int> throws_at(int depth) {
  if (depth == 0) throw marker_error("bottom");
  co_return co_await throws_at(depth - 1) + 1;
}

corio::task<std::unique_ptr<int>> make_unique_value(int v) { co_return std::make_unique<int>(v); }

corio::task<int> observe(counted c, bool* ran) {
  *ran = true;
  co_return c.id;
}

corio::task<counted> make_counted(int id) { co_return counted{id}; }

corio::task<int> consume_counted() {
  counted c = co_await make_counted(7);
  co_return c.id;
}

// The forms README's compiler notes give for passing an aggregate that owns memory to a coroutine
// under g++ 12: built in a statement of its own or by a function, then awaited directly, through
// spawn and through when_all; and a coroutine that returns one with co_return.
corio::task<int> open_parcel(corio_test::parcel p) {
  co_return p.text == std::string(40, static_cast<char>('a' + p.id % 26)) ? p.id : -1000;
}

corio::task<corio_test::parcel> wrap_parcel(int id) {
  co_return corio_test::parcel{id, std::string(40, static_cast<char>('a' + id % 26)), counted{id}};
}

corio::task<int> pass_parcels_safely() {
  corio_test::parcel first = corio_test::make_parcel(1);
  int sum = co_await open_parcel(std::move(first));  // built first, moved in
  sum += co_await open_parcel(corio_test::make_parcel(2));  // built by a function
  corio_test::parcel third = corio_test::make_parcel(3);
  sum += co_await corio::spawn(open_parcel(std::move(third)));
  corio_test::parcel fourth = corio_test::make_parcel(4);
  const auto [a, b] = co_await corio::when_all(open_parcel(std::move(fourth)), open_parcel(corio_test::make_parcel(5)));
  sum += a + b;
  const corio_test::parcel sixth = co_await wrap_parcel(6);
  sum += co_await open_parcel(sixth);  // a copy
  co_return sum;
}

}  // namespace

TEST_SUITE_BEGIN("core");

TEST_CASE("a task returns its value to the awaiter, through nested awaits") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(value_of(21)) == 42);
  CHECK(rt.block_on(add_three_levels(1)) == 2 + 4);
}

TEST_CASE("a task<void> runs its body when awaited and not before") {
  corio::runtime rt{{.workers = 1}};
  bool flag = false;
  auto t = set_flag(&flag);
  CHECK_FALSE(flag);  // lazy: creating the task runs nothing
  rt.block_on(std::move(t));
  CHECK(flag);
}

TEST_CASE("a task<T&> yields a reference to the very object") {
  corio::runtime rt{{.workers = 1}};
  int target = 5;
  int& r = rt.block_on(pick(&target));
  CHECK(&r == &target);
}

TEST_CASE("an exception propagates through several levels of awaiting tasks with its type") {
  corio::runtime rt{{.workers = 2}};
  CHECK_THROWS_AS(rt.block_on(throws_at(10)), marker_error);
  try {
    rt.block_on(throws_at(3));
    FAIL("no exception");
  } catch (const marker_error& e) {
    CHECK(std::string(e.what()) == "bottom");
  }
}

TEST_CASE("move-only results are moved out") {
  corio::runtime rt{{.workers = 1}};
  auto p = rt.block_on(make_unique_value(9));
  REQUIRE(p != nullptr);
  CHECK(*p == 9);
}

TEST_CASE("a task that is never awaited destroys its frame and arguments without running") {
  counted::reset();
  bool ran = false;
  {
    auto t = observe(counted{1}, &ran);
    CHECK(counted::alive() == 1);  // the argument copy lives in the frame
  }
  CHECK_FALSE(ran);
  CHECK(counted::alive() == 0);
}

TEST_CASE("a moved-from task is empty and the moved-to task runs once") {
  corio::runtime rt{{.workers = 1}};
  counted::reset();
  bool ran = false;
  auto a = observe(counted{3}, &ran);
  auto b = std::move(a);
  CHECK_FALSE(a.valid());
  CHECK(b.valid());
  CHECK(rt.block_on(std::move(b)) == 3);
  CHECK(ran);
  CHECK(counted::alive() == 0);
}

TEST_CASE("aggregates that own memory, built before the co_await as the README says, reach coroutines once each") {
  counted::reset();
  for (unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers}};
    CHECK(rt.block_on(pass_parcels_safely()) == 1 + 2 + 3 + 4 + 5 + 6);
  }
  CHECK(counted::alive() == 0);  // g++ 12's double destruction shows as a negative count (and in ASan)
}

TEST_CASE("every returned value is destroyed exactly once") {
  corio::runtime rt{{.workers = 2}};
  counted::reset();
  for (int i = 0; i < 100; ++i) CHECK(rt.block_on(consume_counted()) == 7);
  CHECK(counted::alive() == 0);
}

// GCC at -O0/-O1 does not make symmetric transfer a tail call (libcoro #273/#277); corio's
// trampoline (detail/transfer.hpp) keeps these flat in the debug and ASan builds too.
TEST_CASE("a loop of synchronously completing awaits does not grow the stack") {
  corio::runtime rt{{.workers = 1}};
  const long n = static_cast<long>(scaled(1'000'000));
  CHECK(rt.block_on(loop_of_awaits(n)) == n / 2);
}

TEST_CASE("a chain of 100,000 nested awaits does not grow the stack") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(recurse(100'000)) == 100'000);
}

TEST_SUITE_END();
