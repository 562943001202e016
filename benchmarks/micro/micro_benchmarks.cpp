// benchmarks/micro/micro_benchmarks.cpp - Google Benchmark micro benchmarks of corio's building
// blocks: spawn+join, when_all, yield, spawn_blocking's round trip, the cross-thread wake of a parked worker, the frame allocator (frames
// freed on their own thread, and frames freed on another thread: frame_remote_free) and the timer
// wheel.
//
//   <build>/benchmarks/micro/micro_benchmarks --benchmark_min_time=0.2     (Debian's 1.7.1 syntax)
//
// Every benchmark prints `per_op`: the time of one operation (a counter with
// kIsIterationInvariantRate | kInvert, so "35ns" means 35 ns per operation). Where one iteration
// is one operation it equals the Time column; batched benchmarks do many operations per iteration.
//
// Benchmarks that run on a runtime:
// - A runtime is created once per worker count for the whole process (runtime_for below), never
//   per iteration; they are destroyed after the last benchmark. Counters read from stats() are
//   differences taken around the timed loop.
// - The timed loop itself runs inside a task (`for (auto _ : *state)` in a coroutine, via one
//   block_on per call of the benchmark function): what is timed is the operation as a task sees
//   it, not a block_on per iteration. A task may migrate between workers, so these benchmarks
//   report real (wall) time and process CPU time (the CPU column then covers every thread,
//   spinning workers included).
//
// The wake benchmarks (see their comments):
// - wake_parked_worker: a task on worker X makes a task runnable in X's deque and busy-waits for
//   it to run on worker Y, which is parked in its io_uring ring: wakep() + eventfd write + the
//   kernel waking Y + Y leaving the idle list + a steal + a resume + the flag's cache line coming
//   back. Manual time covers only that round trip; between iterations the task waits (untimed)
//   until Y has parked again, and `parks/op` (Y's parks per iteration, ~1) shows it did;
//   `wakes/op` counts the wake-ups X sent (~1) and `local/op` the iterations where the setter did
//   not reach Y within 10 ms (should be 0; the figure is then not a wake).
//   A join alone never crosses workers in corio: the finishing worker resumes the joiner itself
//   by symmetric transfer, and a spawned task goes to the spawner's LIFO slot, which no thief
//   sees. Only a task displaced into the deque (or injected) reaches a parked worker.
// - foreign_block_on: a plain thread calls runtime::block_on(empty task) in a loop: spawn from a
//   foreign thread (registry mutex), the injection queue + wakep + unpark of a worker, the run,
//   and the blocking_signal (mutex + condition variable) back to the calling thread.
// - baseline_eventfd_wake: the same round trip as wake_parked_worker to a plain thread blocked on
//   an eventfd, without corio: the floor the machine sets (on a VM, the vCPU wake-up dominates).
#include <benchmark/benchmark.h>

#include <corio/corio.hpp>
#include <corio/detail/frame_allocator.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/eventfd.h>
#include <unistd.h>

#include "timer_wheel.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

const auto per_op_flags = benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert;

/// Reports the time of one operation, `ops` operations being done per iteration.
void report_per_op(benchmark::State& state, double ops) {
  state.counters["per_op"] = benchmark::Counter(ops, per_op_flags);
}

// One runtime per worker count for the whole process (created at first use).
std::map<unsigned, std::unique_ptr<corio::runtime>>& runtimes() {
  static std::map<unsigned, std::unique_ptr<corio::runtime>> map;
  return map;
}

corio::runtime& runtime_for(unsigned workers) {
  auto& slot = runtimes()[workers];
  if (!slot) slot = std::make_unique<corio::runtime>(corio::runtime_options{.workers = workers});
  return *slot;
}

std::uint64_t total_parks(const corio::runtime_stats& s) {
  std::uint64_t n = 0;
  for (const auto& w : s.workers) n += w.parks;
  return n;
}

std::uint64_t total_steals(const corio::runtime_stats& s) {
  std::uint64_t n = 0;
  for (const auto& w : s.workers) n += w.steals;
  return n;
}

std::uint64_t total_wakes(const corio::runtime_stats& s) {
  std::uint64_t n = 0;
  for (const auto& w : s.workers) n += w.wakes;
  return n;
}

/// Sets "<name>/op": a difference of a stats() counter, per operation.
void report_counter_per_op(benchmark::State& state, const char* name, std::uint64_t delta, double ops_per_iteration) {
  state.counters[std::string(name) + "/op"] =
      benchmark::Counter(static_cast<double>(delta) / ops_per_iteration, benchmark::Counter::kAvgIterations);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

corio::task<void> empty() { co_return; }

// --- spawn + join ---------------------------------------------------------------------------

corio::task<void> wait_on(corio::channel<int> ch) {
  try {
    auto v = co_await ch.recv();
    benchmark::DoNotOptimize(v);
  } catch (const corio::operation_cancelled&) {
  }
}

corio::task<void> spawn_join_loop(benchmark::State* state) {
  for (auto _ : *state) co_await corio::spawn(empty());
}

// Spawn+join of an empty task from inside a task. The child goes to the worker's LIFO slot and
// the joiner is resumed by the child's finish (symmetric transfer): no other worker is involved.
void BM_spawn_join(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  runtime_for(workers).block_on(spawn_join_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_spawn_join)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->MeasureProcessCPUTime();

constexpr std::size_t batch = 1000;

corio::task<void> spawn_join_batch_loop(benchmark::State* state) {
  std::vector<corio::join_handle<void>> handles;
  handles.reserve(batch);
  for (auto _ : *state) {
    for (std::size_t i = 0; i < batch; ++i) handles.push_back(corio::spawn(empty()));
    for (auto& h : handles) co_await h;
    handles.clear();
  }
}

// Spawn 1000 empty tasks, then join the 1000. Each spawn displaces the previous child from the
// LIFO slot into the deque (and calls wakep), the deque overflows into the injection queue at
// 256, and on 2 workers the other worker steals: per_op is per task (spawn + run + join).
void BM_spawn_join_batch(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  auto& rt = runtime_for(workers);
  const auto before = rt.stats();
  rt.block_on(spawn_join_batch_loop(&state));
  const auto after = rt.stats();
  report_per_op(state, batch);
  report_counter_per_op(state, "steals", total_steals(after) - total_steals(before), batch);
  report_counter_per_op(state, "wakes", total_wakes(after) - total_wakes(before), batch);
}
BENCHMARK(BM_spawn_join_batch)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->MeasureProcessCPUTime();

constexpr std::size_t fork_width = 10;

corio::task<void> when_all_loop(benchmark::State* state) {
  for (auto _ : *state) {
    std::array<corio::task<void>, fork_width> children;
    for (auto& c : children) c = empty();
    (void)co_await corio::when_all(std::move(children));
  }
}

// when_all of 10 empty tasks (the fork-join form of spawn + join): per_op is per task (create,
// queue, run, count off the group, free). Compare with spawn_join_batch.
void BM_when_all(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  runtime_for(workers).block_on(when_all_loop(&state));
  report_per_op(state, fork_width);
}
BENCHMARK(BM_when_all)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->MeasureProcessCPUTime();

// --- yield ----------------------------------------------------------------------------------

corio::task<void> yield_loop(benchmark::State* state) {
  for (auto _ : *state) co_await corio::yield();
}

// One task yielding in a loop on a 1-worker runtime: the FIFO list, the worker's loop (with its
// every-32-tasks reactor and timer poll) and a resume.
void BM_yield_one_task(benchmark::State& state) {
  runtime_for(1).block_on(yield_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_yield_one_task)->UseRealTime()->MeasureProcessCPUTime();

corio::task<void> yield_until(std::atomic<bool>* stop) {
  while (!stop->load(std::memory_order_relaxed)) co_await corio::yield();
}

corio::task<void> yield_pair_loop(benchmark::State* state) {
  std::atomic<bool> stop{false};
  auto partner = corio::spawn(yield_until(&stop));
  co_await corio::yield();  // the partner starts and yields: from here on the two alternate
  for (auto _ : *state) co_await corio::yield();
  stop.store(true, std::memory_order_relaxed);
  co_await partner;
}

// Two tasks alternating by yield on a 1-worker runtime: each iteration is two yields (this task's
// and the partner's); per_op is per yield.
void BM_yield_two_tasks(benchmark::State& state) {
  runtime_for(1).block_on(yield_pair_loop(&state));
  report_per_op(state, 2);
}
BENCHMARK(BM_yield_two_tasks)->UseRealTime()->MeasureProcessCPUTime();

// --- sync primitives ------------------------------------------------------------------------

corio::task<void> mutex_loop(benchmark::State* state) {
  corio::mutex m;
  for (auto _ : *state) {
    co_await m.lock();
    m.unlock();
  }
}

// An uncontended corio::mutex: co_await lock() (one compare-and-swap, no suspension) and
// unlock() (another), from one task on a 1-worker runtime. The bar: <= 15 ns.
void BM_mutex_uncontended(benchmark::State& state) {
  runtime_for(1).block_on(mutex_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_mutex_uncontended)->UseRealTime()->MeasureProcessCPUTime();

corio::task<void> channel_loop(benchmark::State* state) {
  corio::channel<int> ch{1};
  for (auto _ : *state) {
    co_await ch.send(1);
    const auto v = co_await ch.recv();
    benchmark::DoNotOptimize(v);
  }
}

// A send and a receive on a buffered channel with room, by one task: the uncontended cost of
// the channel's lock and ring, no suspension.
void BM_channel_send_recv_uncontended(benchmark::State& state) {
  runtime_for(1).block_on(channel_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_channel_send_recv_uncontended)->UseRealTime()->MeasureProcessCPUTime();

// --- cancellation -----------------------------------------------------------------------------

corio::task<void> timeout_ready_loop(benchmark::State* state) {
  corio::channel<int> ch{1};
  for (auto _ : *state) {
    co_await ch.send(1);
    const auto v = co_await corio::timeout(std::chrono::seconds{1}, ch.recv());
    benchmark::DoNotOptimize(v);
  }
}

// BM_channel_send_recv_uncontended with the receive inside corio::timeout(1s, ...): the receive
// is ready at once, so no timer and no stop scope is set up. The bar: timeout() adds
// <= 30 ns (compare with BM_channel_send_recv_uncontended, same process).
void BM_timeout_ready_recv(benchmark::State& state) {
  runtime_for(1).block_on(timeout_ready_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_timeout_ready_recv)->UseRealTime()->MeasureProcessCPUTime();

corio::task<int> ready_value() { co_return 1; }

corio::task<void> timeout_task_loop(benchmark::State* state) {
  for (auto _ : *state) {
    const int v = co_await corio::timeout(std::chrono::seconds{1}, ready_value());
    benchmark::DoNotOptimize(v);
  }
}
corio::task<void> plain_task_loop(benchmark::State* state) {
  for (auto _ : *state) {
    const int v = co_await ready_value();
    benchmark::DoNotOptimize(v);
  }
}

// A task that returns at once, awaited bare and inside corio::timeout(1s, ...). A task always
// suspends its awaiter, so the timeout form pays the whole slow path: a stop scope linked to the
// task, a timer inserted into and removed from the wheel (allocated and freed), and the task
// run under the scope.
void BM_await_task(benchmark::State& state) {
  runtime_for(1).block_on(plain_task_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_await_task)->UseRealTime()->MeasureProcessCPUTime();
void BM_timeout_await_task(benchmark::State& state) {
  runtime_for(1).block_on(timeout_task_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_timeout_await_task)->UseRealTime()->MeasureProcessCPUTime();

corio::task<void> cancel_join_loop(benchmark::State* state) {
  corio::channel<int> never{0};
  for (auto _ : *state) {
    auto h = corio::spawn(wait_on(never));
    co_await corio::yield();  // the child parks in its receive
    h.cancel();
    co_await h;
  }
}

// Spawn a task that parks in a channel receive, cancel it, join it: the cost of a cancellation
// that reaches a parked wait (claim, wake on its worker, unwind with operation_cancelled).
void BM_spawn_cancel_join(benchmark::State& state) {
  runtime_for(1).block_on(cancel_join_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_spawn_cancel_join)->UseRealTime()->MeasureProcessCPUTime();

// --- waking a parked worker -----------------------------------------------------------------

corio::task<void> set_flag(std::atomic<int>* flag) {
  flag->store(1, std::memory_order_release);
  co_return;
}

/// Busy-waits (without yielding the worker) for `d`.
void spin_for(std::chrono::nanoseconds d) {
  const auto until = clock_type::now() + d;
  while (clock_type::now() < until) cpu_relax();
}

struct wake_counts {
  std::uint64_t parks = 0;
  std::uint64_t wakes = 0;
  std::uint64_t local = 0;  ///< iterations where the setter did not reach the other worker in time
};

corio::task<void> wake_parked_loop(benchmark::State* state, corio::runtime* rt, wake_counts* counts) {
  std::atomic<int> flag{0};
  const auto before = rt->stats();
  spin_for(std::chrono::microseconds(200));  // let the other worker park first
  for (auto _ : *state) {
    flag.store(0, std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    auto setter = corio::spawn(set_flag(&flag));  // into this worker's LIFO slot
    auto filler = corio::spawn(empty());          // displaces the setter into the deque: wakep()
    // Hold this worker: only the parked one can run the setter. Bounded, so that a scheduler that
    // keeps the setter to itself cannot hang the benchmark: after 10 ms this task yields until
    // the setter ran (counted in local/op; such an iteration measures no cross-worker wake).
    const auto give_up = t0 + std::chrono::milliseconds(10);
    while (flag.load(std::memory_order_acquire) == 0 && clock_type::now() < give_up) cpu_relax();
    if (flag.load(std::memory_order_acquire) == 0) {
      ++counts->local;
      while (flag.load(std::memory_order_acquire) == 0) co_await corio::yield();
    }
    const auto t1 = clock_type::now();
    state->SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    co_await setter;
    co_await filler;
    // Untimed: the other worker spins (spin_limit rounds) and parks again.
    spin_for(std::chrono::microseconds(40));
  }
  const auto after = rt->stats();
  counts->parks = total_parks(after) - total_parks(before);
  counts->wakes = total_wakes(after) - total_wakes(before);
}

void BM_wake_parked_worker(benchmark::State& state) {
  auto& rt = runtime_for(2);
  wake_counts counts;
  rt.block_on(wake_parked_loop(&state, &rt, &counts));
  report_per_op(state, 1);
  report_counter_per_op(state, "parks", counts.parks, 1);
  report_counter_per_op(state, "wakes", counts.wakes, 1);
  report_counter_per_op(state, "local", counts.local, 1);
}
BENCHMARK(BM_wake_parked_worker)->UseManualTime();

// Baseline for the two above, without corio: the same round trip to a plain thread blocked in
// read(2) on an eventfd (what a parked worker's ring waits on): write the eventfd, busy-wait for
// the thread's flag; untimed, let it block again. What the kernel (and a VM's vCPU wake-up)
// costs by itself.
void BM_baseline_eventfd_wake(benchmark::State& state) {
  const int fd = ::eventfd(0, EFD_CLOEXEC);
  if (fd < 0) {
    state.SkipWithError("eventfd failed");
    return;
  }
  std::atomic<int> flag{0};
  std::atomic<bool> stop{false};
  std::thread sleeper([&] {
    for (;;) {
      std::uint64_t value = 0;
      if (::read(fd, &value, sizeof value) != sizeof value) break;
      if (stop.load(std::memory_order_relaxed)) break;
      flag.store(1, std::memory_order_release);
    }
  });
  const std::uint64_t one = 1;
  spin_for(std::chrono::microseconds(200));
  for (auto _ : state) {
    flag.store(0, std::memory_order_relaxed);
    const auto t0 = clock_type::now();
    if (::write(fd, &one, sizeof one) != sizeof one) break;
    while (flag.load(std::memory_order_acquire) == 0) cpu_relax();
    const auto t1 = clock_type::now();
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    spin_for(std::chrono::microseconds(40));
  }
  stop.store(true, std::memory_order_relaxed);
  [[maybe_unused]] auto written = ::write(fd, &one, sizeof one);
  sleeper.join();
  ::close(fd);
  report_per_op(state, 1);
}
BENCHMARK(BM_baseline_eventfd_wake)->UseManualTime();

// A foreign thread's block_on of an empty task, on 1 and 2 workers (see the top of the file).
void BM_foreign_block_on(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  auto& rt = runtime_for(workers);
  const auto before = rt.stats();
  for (auto _ : state) rt.block_on(empty());
  const auto after = rt.stats();
  report_per_op(state, 1);
  report_counter_per_op(state, "parks", total_parks(after) - total_parks(before), 1);
}
BENCHMARK(BM_foreign_block_on)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->MeasureProcessCPUTime();

// --- spawn_blocking ---------------------------------------------------------------------------

corio::task<void> spawn_blocking_loop(benchmark::State* state) {
  for (auto _ : *state) {
    int v = co_await corio::spawn_blocking([] { return 1; });
    benchmark::DoNotOptimize(v);
  }
}

// The round trip of `co_await corio::spawn_blocking([] { return 1; })` from a task: the job to
// the blocking pool (mutex, condition variable: the idle pool thread wakes), the call, and the
// task back through the injection queue to a worker (which may have parked meanwhile). The peer is
// Tokio's `tokio::task::spawn_blocking(|| 1).await` (benchmarks/tokio, `spawn_blocking`).
void BM_spawn_blocking(benchmark::State& state) {
  const auto workers = static_cast<unsigned>(state.range(0));
  runtime_for(workers).block_on(spawn_blocking_loop(&state));
  report_per_op(state, 1);
}
BENCHMARK(BM_spawn_blocking)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->MeasureProcessCPUTime();

// --- frame allocation -----------------------------------------------------------------------

constexpr std::size_t frames_in_flight = 32;

// One allocate + free of `size` bytes (the hot LIFO path of a size class).
void BM_frame_allocate(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = corio::detail::frame_allocate(size);
    benchmark::DoNotOptimize(p);
    corio::detail::frame_deallocate(p, size);
  }
  report_per_op(state, 1);
}

void BM_operator_new(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = ::operator new(size);
    benchmark::DoNotOptimize(p);
    ::operator delete(p);  // unsized: clang 16 has no sized delete without -fsized-deallocation
  }
  report_per_op(state, 1);
}

// 32 allocations, then 32 frees (newest first): per_op is one allocate + free.
void BM_frame_allocate_x32(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  void* frames[frames_in_flight];
  for (auto _ : state) {
    for (auto& f : frames) f = corio::detail::frame_allocate(size);
    benchmark::DoNotOptimize(frames);
    for (std::size_t i = frames_in_flight; i-- > 0;) corio::detail::frame_deallocate(frames[i], size);
  }
  report_per_op(state, frames_in_flight);
}

void BM_operator_new_x32(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  void* frames[frames_in_flight];
  for (auto _ : state) {
    for (auto& f : frames) f = ::operator new(size);
    benchmark::DoNotOptimize(frames);
    for (std::size_t i = frames_in_flight; i-- > 0;) ::operator delete(frames[i]);
  }
  report_per_op(state, frames_in_flight);
}

BENCHMARK(BM_frame_allocate)->ArgName("bytes")->RangeMultiplier(2)->Range(64, 1024);
BENCHMARK(BM_operator_new)->ArgName("bytes")->RangeMultiplier(2)->Range(64, 1024);
BENCHMARK(BM_frame_allocate_x32)->ArgName("bytes")->RangeMultiplier(4)->Range(64, 1024);
BENCHMARK(BM_operator_new_x32)->ArgName("bytes")->RangeMultiplier(4)->Range(64, 1024);

/// A bounded single-producer single-consumer ring of pointers (for BM_frame_remote_free).
class pointer_ring {
 public:
  bool push(void* p) noexcept {
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ == size) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (t - head_cache_ == size) return false;
    }
    slots_[t & (size - 1)] = p;
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  void* pop() noexcept {
    const std::size_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (h == tail_cache_) return nullptr;
    }
    void* p = slots_[h & (size - 1)];
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  static constexpr std::size_t size = 1024;  // a power of two
  alignas(64) std::atomic<std::size_t> head_{0};
  std::size_t tail_cache_ = 0;  // consumer's
  alignas(64) std::atomic<std::size_t> tail_{0};
  std::size_t head_cache_ = 0;  // producer's
  alignas(64) void* slots_[size];
};

// Allocate on one thread, free on another: the benchmark thread allocates frames of `size` bytes
// and passes them through a 1024-entry ring to a consumer thread that frees them (the pattern of
// tasks spawned on one worker and finished on another). per_op: wall time per frame, i.e. the
// throughput of the pair (allocate + ring + remote free, and the return of frames to their home).
void BM_frame_remote_free(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto ring = std::make_unique<pointer_ring>();
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    for (;;) {
      if (void* p = ring->pop()) {
        corio::detail::frame_deallocate(p, size);
      } else if (done.load(std::memory_order_acquire)) {
        while (void* q = ring->pop()) corio::detail::frame_deallocate(q, size);
        return;
      } else {
        cpu_relax();
      }
    }
  });
  for (auto _ : state) {
    void* p = corio::detail::frame_allocate(size);
    while (!ring->push(p)) cpu_relax();
  }
  done.store(true, std::memory_order_release);
  consumer.join();
  report_per_op(state, 1);
}
BENCHMARK(BM_frame_remote_free)->ArgName("bytes")->Arg(64)->Arg(256)->Arg(1024)->UseRealTime();

// --- timer wheel ----------------------------------------------------------------------------

constexpr std::size_t deadline_count = 4096;  // a power of two

/// Deadlines spread over every level: now + 2^k + jitter, k in [0, 30).
std::vector<std::uint64_t> random_offsets(std::uint64_t seed) {
  std::mt19937_64 random{seed};
  std::vector<std::uint64_t> offsets(deadline_count);
  for (auto& o : offsets) {
    const unsigned k = static_cast<unsigned>(random() % 30);
    o = (std::uint64_t{1} << k) + random() % (std::uint64_t{1} << k);
  }
  return offsets;
}

// Insert + cancel of one entry, deadlines cycling through 4096 random offsets over all levels,
// with range(0) other entries pending in the wheel (0: the wheel is otherwise empty).
void BM_timer_wheel_insert_cancel(benchmark::State& state) {
  const auto pending = static_cast<std::size_t>(state.range(0));
  corio::detail::timer_wheel wheel{1'000'000};
  const auto offsets = random_offsets(42);
  std::vector<corio::detail::timer_entry> others(pending);  // never resized: entries must not move
  for (std::size_t i = 0; i < pending; ++i) {
    others[i].deadline_tick = wheel.now() + offsets[(i * 7) % deadline_count];
    wheel.insert(others[i]);
  }
  corio::detail::timer_entry e;
  std::size_t i = 0;
  for (auto _ : state) {
    e.deadline_tick = wheel.now() + offsets[i++ & (deadline_count - 1)];
    wheel.insert(e);
    benchmark::DoNotOptimize(e);
    wheel.cancel(e);
  }
  benchmark::DoNotOptimize(wheel.next_deadline());
  wheel.drain([](corio::detail::timer_entry&) {});
  report_per_op(state, 1);
}
BENCHMARK(BM_timer_wheel_insert_cancel)->ArgName("pending")->Arg(0)->Arg(10'000);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  runtimes().clear();  // stops the workers before static destruction
  return 0;
}
