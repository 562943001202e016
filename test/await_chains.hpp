// test/await_chains.hpp - the deep chains of awaits that must not grow the stack: used by suite
// "core" (test/task_tests.cpp) and by the mixed-build program (test/mixed_build_program.cpp).
#pragma once

#include <corio/task.hpp>

namespace corio_test {

/// 1 for odd `i`, 0 for even, without suspending.
inline corio::task<int> leaf(int i) { co_return i & 1; }

/// Awaits `n` leaves one after the other in a loop: n / 2. Each await completes synchronously, so
/// every one is a pair of transfers (into the leaf and back); none may leave a stack frame behind.
inline corio::task<long> loop_of_awaits(long n) {
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += co_await leaf(static_cast<int>(i));
  co_return sum;
}

/// `depth` nested awaits, each task awaiting the next: depth.
inline corio::task<long> recurse(long depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await recurse(depth - 1);
}

}  // namespace corio_test
