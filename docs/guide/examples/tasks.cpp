// Tasks and the runtime: lazy tasks, spawn and join, when_all, spawn_blocking, yield, and a
// runtime driven from main() with block_on and runtime::spawn.
#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include <corio/corio.hpp>

using namespace std::chrono_literals;

// A coroutine returning corio::task<T> is lazy: nothing runs until it is awaited or spawned.
corio::task<int> square(int x) {
  co_await corio::yield();  // lets the other runnable tasks of this worker go first
  co_return x * x;
}

// Awaiting a task runs it inside the caller, like a function call (no new task is scheduled).
corio::task<int> sum_of_squares(int n) {
  int sum = 0;
  for (int i = 1; i <= n; ++i) sum += co_await square(i);
  co_return sum;
}

corio::task<long> fib(int n) {
  if (n < 2) co_return n;
  // Fork-join: both run as tasks of their own, stealable by idle workers.
  auto [a, b] = co_await corio::when_all(fib(n - 1), fib(n - 2));
  co_return a + b;
}

corio::task<std::size_t> count_words(std::string text) {
  // A blocking or long computation goes to the blocking pool, never to a worker.
  auto count = [text] {
    std::size_t words = 0;
    bool in_word = false;
    for (char c : text) {
      const bool letter = c != ' ';
      if (letter && !in_word) ++words;
      in_word = letter;
    }
    return words;
  };
  const std::size_t words = co_await corio::spawn_blocking(std::move(count));
  co_return words;
}

// Joins a task spawned from outside the runtime (a join_handle is awaited inside a task).
corio::task<int> join(corio::join_handle<int> h) { co_return co_await h; }

corio::task<int> amain() {
  // spawn: a task of its own, run by any worker; the handle joins it (or detach() it).
  corio::join_handle<int> h = corio::spawn(sum_of_squares(10), "sum of squares");
  const long f = co_await fib(15);

  std::vector<corio::task<int>> squares;
  for (int i = 0; i < 4; ++i) squares.push_back(square(i));
  std::vector<int> results = co_await corio::when_all(std::move(squares));  // {0, 1, 4, 9}

  const int s = co_await h;  // the task's value, or its exception rethrown here
  const std::size_t words = co_await count_words("tasks are cheap and lazy");
  co_await corio::sleep_for(10ms);
  std::printf("sum of squares %d, fib(15) %ld, squares %d %d %d %d, %zu words, on worker %u\n", s, f, results[0],
              results[1], results[2], results[3], words, corio::this_worker_index().value_or(0));
  co_return s == 385 && f == 610 && results[3] == 9 && words == 5 ? 0 : 1;
}

int main() {
  // A runtime with two workers; options are designated initializers of corio::runtime_options.
  corio::runtime rt{{.workers = 2}};
  // From a thread that is not a worker: runtime::spawn, and block_on to wait for a task.
  corio::join_handle<int> background = rt.spawn(square(7));
  const int status = rt.block_on(amain());
  const int seven_squared = rt.block_on(join(std::move(background)));
  std::printf("runtime on %s, 7*7 = %d\n", rt.backend(), seven_squared);
  return status == 0 && seven_squared == 49 ? 0 : 1;
}  // ~runtime: stops every task left, waits up to 1 s, joins the workers
