// Cancellation and structured concurrency: join_handle::cancel, stop_requested, timeout and
// try_timeout, shield, task_group (fail-fast, bounded, supervising), when_any, std::stop_token.
// Runs on the manual clock, so every sleep and timeout here takes no real time.
#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <stop_token>
#include <variant>

#include <corio/corio.hpp>

using namespace std::chrono_literals;

corio::task<int> slow_answer() {
  co_await corio::sleep_for(10s);
  co_return 42;
}

// A loop that computes without waiting checks its stop now and then.
corio::task<long> busy_sum() {
  long sum = 0;
  for (long i = 0; i < 1'000'000'000; ++i) {
    sum += i;
    if (i % 1024 == 0) {
      const bool stop = co_await corio::this_task::stop_requested();
      if (stop) co_return sum;
    }
  }
  co_return sum;
}

corio::task<void> failing_child() {
  co_await corio::sleep_for(1s);
  throw std::runtime_error("child failed");
}

corio::task<void> sleeping_child(std::atomic<int>* ended) {
  try {
    co_await corio::sleep_for(1h);
  } catch (const corio::operation_cancelled&) {
    ended->fetch_add(1);  // a cancelled wait throws operation_cancelled
    throw;
  }
}

corio::task<void> counted_child(std::atomic<int>* finished) {
  co_await corio::sleep_for(100ms);
  finished->fetch_add(1);
}

corio::task<int> amain() {
  // 1. Cancel a spawned task: the wait it is parked in throws operation_cancelled inside it.
  corio::join_handle<int> h = corio::spawn(slow_answer());
  co_await corio::sleep_for(1s);
  h.cancel();
  bool cancelled = false;
  try {
    co_await h;
  } catch (const corio::operation_cancelled&) {
    cancelled = true;
  }

  // 2. A task that never waits sees the stop through this_task::stop_requested(). This one is
  // cancelled before it even started: it still runs, and returns at its first check.
  corio::join_handle<long> busy = corio::spawn(busy_sum());
  busy.cancel();
  const long partial = co_await busy;  // 0

  // 3. timeout() throws timed_out; try_timeout() gives std::nullopt. The operation is cancelled in place.
  bool timed_out = false;
  try {
    co_await corio::timeout(2s, slow_answer());
  } catch (const corio::timed_out&) {
    timed_out = true;
  }
  std::optional<int> fast = co_await corio::try_timeout(20s, slow_answer());  // 42
  std::optional<int> slow = co_await corio::try_timeout(1s, slow_answer());   // std::nullopt

  // 4. shield(): work that must finish even when the task is cancelled meanwhile.
  const int promised = co_await corio::shield(slow_answer());

  // 5. A fail-fast task_group (a nursery): the first failure cancels the siblings; join() rethrows it.
  std::atomic<int> ended{0};
  std::string failure;
  {
    corio::task_group group;
    group.spawn(failing_child(), "failing child");
    for (int i = 0; i < 3; ++i) group.spawn(sleeping_child(&ended));
    try {
      co_await group.join();
    } catch (const std::runtime_error& e) {
      failure = e.what();
    }
  }

  // 6. At most 2 children run at once; join() waits for all of them.
  std::atomic<int> finished{0};
  corio::task_group bounded{2};
  for (int i = 0; i < 6; ++i) bounded.spawn(counted_child(&finished));
  co_await bounded.join();
  const std::size_t most = bounded.max_observed_concurrency();

  // 7. A supervising group: each failure goes to the callback (thread-safe, must not block).
  std::atomic<int> reported{0};
  corio::task_group supervised{corio::task_group::policy::supervise,
                               [&reported](std::exception_ptr) { reported.fetch_add(1); }};
  supervised.spawn(failing_child());
  supervised.spawn(counted_child(&finished));
  co_await supervised.join();  // does not throw for the failure

  // 8. when_any: the first to finish wins, the others are cancelled and waited for.
  corio::channel<int> never{1};
  auto first = co_await corio::when_any(never.recv(), corio::sleep_for(5s));  // the sleep wins
  // 9. A std::stop_token from code that is not corio's stops this task's waits.
  std::stop_source source;
  bool stopped = false;
  {
    corio::stop_link link = corio::stop_when(source.get_token());
    source.request_stop();
    try {
      co_await corio::sleep_for(1h);
    } catch (const corio::operation_cancelled&) {
      stopped = true;
    }
  }

  std::printf("cancelled %d, timed out %d, fast %d, slow %s, promised %d, failure \"%s\", %d siblings cancelled, "
              "bounded to %zu, %d reported, when_any index %zu, stop_token %d\n",
              cancelled, timed_out, fast.value_or(0), slow ? "some" : "none", promised, failure.c_str(),
              ended.load(), most, reported.load(), first.index(), stopped);
  const bool ok = cancelled && partial == 0 && timed_out && fast == 42 && !slow && promised == 42 && failure == "child failed" &&
                  ended.load() == 3 && most == 2 && finished.load() == 7 && reported.load() == 1 &&
                  first.index() == 1 && stopped;
  co_return ok ? 0 : 1;
}

// The manual clock: time moves only when every worker is idle (it jumps to the next timer).
int main() { return corio::run(amain(), {.workers = 2, .clock = corio::manual_clock}); }
