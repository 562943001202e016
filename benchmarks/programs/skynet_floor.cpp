// skynet_floor: the cost of the coroutines alone. Skynet (1,000,000 leaves, branching 10, depth 6,
// result 499999500000) on one thread with the least machinery a coroutine runtime can have: lazy
// C++20 coroutines, frames from a global free list, a LIFO array of runnable coroutines, plain
// stores for the join flag, no atomics, no registry, no I/O, no second thread.
//
// It is not a runtime (nothing is thread-safe and nothing can block); it is the reference line of
// benchmarks/run: what one core of the machine needs to create, run, join and free 1,111,111
// coroutine frames in the compiler at hand. A work-stealing runtime on W workers cannot beat
// floor / W, and the ratio corio-1-worker / floor is the price of everything corio adds.
//
// usage: skynet_floor [--runs N] [--warmup N] [--n LEAVES]   (--workers is accepted and ignored)
// Output and exit status: see bench_harness.hpp.
#include <array>
#include <exception>
#include <coroutine>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "bench_harness.hpp"

namespace {

// Frames: one LIFO free list per 64-byte size class (what corio's per-thread cache does).
struct free_block {
  free_block* next;
};
free_block* free_heads[64];

void* frame_new(std::size_t bytes) {
  const std::size_t c = (bytes - 1) / 64;
  if (c < 64 && free_heads[c] != nullptr) return std::exchange(free_heads[c], free_heads[c]->next);
  return ::operator new(c < 64 ? (c + 1) * 64 : bytes);
}
void frame_free(void* p, std::size_t bytes) {
  const std::size_t c = (bytes - 1) / 64;
  if (c >= 64) return ::operator delete(p);
  auto* b = static_cast<free_block*>(p);
  b->next = free_heads[c];
  free_heads[c] = b;
}

std::vector<std::coroutine_handle<>> runnable;  // LIFO, as corio's local queue

struct node {
  struct promise_type {
    static void* operator new(std::size_t n) { return frame_new(n); }
    static void operator delete(void* p, std::size_t n) { frame_free(p, n); }
    std::coroutine_handle<> joiner{};
    std::int64_t value = 0;
    bool finished = false;
    node get_return_object() { return node{std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct final_awaiter {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        h.promise().finished = true;
        return h.promise().joiner ? h.promise().joiner : std::noop_coroutine();
      }
      void await_resume() noexcept {}
    };
    final_awaiter final_suspend() noexcept { return {}; }
    void return_value(std::int64_t v) { value = v; }
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
};

struct join {
  std::coroutine_handle<node::promise_type> child;
  bool await_ready() const noexcept { return child.promise().finished; }
  void await_suspend(std::coroutine_handle<> me) noexcept { child.promise().joiner = me; }
  std::int64_t await_resume() noexcept {
    const std::int64_t v = child.promise().value;
    child.destroy();
    return v;
  }
};

node skynet(std::int64_t num, std::int64_t size) {
  if (size == 1) co_return num;
  const std::int64_t step = size / 10;
  std::array<std::coroutine_handle<node::promise_type>, 10> children;
  for (std::int64_t i = 0; i < 10; ++i) {
    children[i] = skynet(num + i * step, step).h;
    runnable.push_back(children[i]);
  }
  std::int64_t sum = 0;
  for (auto c : children) sum += co_await join{c};
  co_return sum;
}

std::int64_t run_once(std::int64_t n) {
  auto root = skynet(0, n).h;
  runnable.push_back(root);
  while (!runnable.empty()) {
    auto h = runnable.back();
    runnable.pop_back();
    h.resume();
  }
  const std::int64_t v = root.promise().value;
  root.destroy();
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::options opt = bench::parse(argc, argv, "skynet_floor", {1'000'000, 1, 10'000'000});
  if (!bench::is_power_of_10(opt.n)) bench::usage("skynet_floor", "--n must be a power of 10");
  runnable.reserve(1024);
  return bench::measure("skynet_floor", opt, bench::sum_below(opt.n), [&] { return run_once(opt.n); });
}
