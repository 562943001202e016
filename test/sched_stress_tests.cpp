// Suite "sched", stress part: lost wake-ups between foreign threads, spinning and parked workers,
// and the Chase-Lev deque (lib/run_queue.hpp) under concurrent pops, steals and take_half.
//
// Sizes scale with corio_test::scaled (CORIO_STRESS_SCALE: 100 in release, 10 under sanitizers).
// Each randomized test prints its seed; CORIO_TEST_SEED=<seed> replays the same choices (the
// thread interleaving itself is not reproducible). A lost wake-up shows up as a hang: every test
// here runs under a watchdog that prints the seed and aborts instead.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "run_queue.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio_test::scaled;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool under_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool under_sanitizer = true;
#else
constexpr bool under_sanitizer = false;
#endif
#else
constexpr bool under_sanitizer = false;
#endif

/// A watchdog: if the guarded scope has not ended within `limit`, prints what was running and the
/// seed to stderr and calls std::abort(), so that a lost wake-up fails loudly instead of hanging.
class hang_guard {
 public:
  hang_guard(const char* what, std::uint64_t seed, std::chrono::seconds limit)
      : what_(what), seed_(seed), limit_(under_sanitizer ? 3 * limit : limit), thread_([this] { watch(); }) {}
  hang_guard(const hang_guard&) = delete;
  hang_guard& operator=(const hang_guard&) = delete;
  ~hang_guard() {
    {
      std::lock_guard lock{mutex_};
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// What the guarded scope is doing now (printed if it hangs). `text` must outlive the guard.
  void phase(const char* text) noexcept { phase_.store(text, std::memory_order_relaxed); }

 private:
  void watch() {
    std::unique_lock lock{mutex_};
    if (cv_.wait_for(lock, limit_, [this] { return done_; })) return;
    std::fprintf(stderr,
                 "\nsched_stress_tests: HANG: \"%s\" (%s) did not finish within %lld s; seed %llu "
                 "(replay with CORIO_TEST_SEED=%llu). Aborting.\n",
                 what_, phase_.load(std::memory_order_relaxed), static_cast<long long>(limit_.count()),
                 static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    std::fflush(stderr);
    std::abort();
  }

  const char* what_;
  std::uint64_t seed_;
  std::chrono::seconds limit_;
  std::atomic<const char*> phase_{"starting"};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// --- lost wake-ups ----------------------------------------------------------------------------

/// One counter per task id: each task adds 1 to its own when it runs.
struct ledger {
  explicit ledger(std::size_t capacity, std::uint64_t seed)
      : counts(std::make_unique<std::atomic<std::uint32_t>[]>(capacity)), capacity(capacity), seed(seed) {}

  std::uint64_t allocate() noexcept {
    const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
    if (id >= capacity) overflowed.store(true, std::memory_order_relaxed);
    return id;
  }
  void ran(std::uint64_t id) noexcept {
    if (id < capacity) counts[id].fetch_add(1, std::memory_order_relaxed);
    finished.fetch_add(1, std::memory_order_release);
  }

  std::unique_ptr<std::atomic<std::uint32_t>[]> counts;
  const std::size_t capacity;
  const std::uint64_t seed;
  std::atomic<std::uint64_t> next_id{0};
  std::atomic<std::uint64_t> finished{0};
  std::atomic<bool> overflowed{false};
};

constexpr unsigned max_root_children = 16;
constexpr unsigned max_inner_children = 2;
/// Upper bound of the tasks one root (depth 2) makes: itself, its children with their children,
/// and one detached task per node.
constexpr std::size_t max_tasks_per_root = 2 * (1 + max_root_children * (1 + max_inner_children));

/// A task of the tree: maybe yields first, spawns `depth`-dependent children (which thieves on
/// other workers take from this worker's deque, so joins resume across workers), maybe one
/// detached child, joins its children in an order of its own, and counts itself.
corio::task<void> node(ledger* l, std::uint64_t id, int depth) {
  const std::uint64_t h = mix(l->seed ^ (id * 0xD1B54A32D192ED03ull));
  if ((h & 3) == 0) co_await corio::yield();
  // A little work (well under a microsecond), so that thieves find something to take while a
  // parent runs (the result is used, so that the loop stays).
  std::uint64_t work = h;
  for (unsigned i = 0, n = 16 + static_cast<unsigned>((h >> 24) % 64); i < n; ++i) work = mix(work) ^ (work >> 1);
  if (work == 0) co_await corio::yield();
  if (depth > 0) {
    const unsigned n = depth >= 2 ? 1 + static_cast<unsigned>((h >> 8) % max_root_children)
                                  : static_cast<unsigned>((h >> 8) % (max_inner_children + 1));
    std::vector<corio::join_handle<void>> children;
    children.reserve(n);
    for (unsigned i = 0; i < n; ++i) children.push_back(corio::spawn(node(l, l->allocate(), depth - 1)));
    if (((h >> 16) & 7) == 0) corio::spawn(node(l, l->allocate(), 0)).detach();
    if ((h >> 20) & 1) {
      for (auto& c : children) co_await c;
    } else {
      for (auto it = children.rbegin(); it != children.rend(); ++it) co_await *it;
    }
  } else if (((h >> 16) & 15) == 0) {
    corio::spawn(node(l, l->allocate(), 0)).detach();
  }
  l->ran(id);
}

/// A thread that is not a worker: detached roots through runtime::spawn (the injection queue and
/// wakep from outside), a block_on each round (inject, then the calling thread sleeps until a
/// worker finishes it), short random gaps, and every `pause_every` rounds a 1 ms pause taken by
/// all foreign threads together, during which every worker goes idle and parks.
void foreign_thread(corio::runtime* rt, ledger* l, std::size_t rounds, std::size_t pause_every, unsigned index,
                    std::barrier<>* pause) {
  std::mt19937_64 random{mix(l->seed + index)};
  for (std::size_t r = 0; r < rounds; ++r) {
    if (r % pause_every == pause_every - 1) {
      pause->arrive_and_wait();
      std::this_thread::sleep_for(1ms);
    }
    const std::uint64_t choice = random();
    rt->spawn(node(l, l->allocate(), 2)).detach();
    if (choice & 1) rt->spawn(node(l, l->allocate(), 0)).detach();
    if ((choice >> 1) % 16 == 0) std::this_thread::yield();
    if ((choice >> 5) % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds((choice >> 11) % 50));
    rt->block_on(node(l, l->allocate(), (choice >> 17) % 3 == 0 ? 0 : 2));
  }
}

struct wake_run_result {
  std::uint64_t tasks = 0;
  std::uint64_t zero = 0;      ///< ids whose task never ran
  std::uint64_t multiple = 0;  ///< ids whose task ran more than once
  std::uint64_t first_bad = 0;
  bool overflowed = false;
  bool all_finished = false;
  std::uint64_t live_tasks = 0;
  corio::runtime_stats stats;
  double seconds = 0;
};

wake_run_result run_wake_stress(unsigned workers, std::uint64_t seed, std::size_t rounds) {
  constexpr unsigned foreign_threads = 2;
  constexpr std::size_t pause_every = 256;
  // Each round of a foreign thread: at most two depth-2 roots and one bare task.
  const std::size_t capacity = foreign_threads * rounds * (2 * max_tasks_per_root + 2) + 64;
  ledger l{capacity, seed};
  const auto start = std::chrono::steady_clock::now();
  wake_run_result result;
  {
    corio::runtime rt{corio::runtime_options{.workers = workers, .seed = seed | 1}};
    std::barrier<> pause{foreign_threads};
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < foreign_threads; ++i) {
      threads.emplace_back(foreign_thread, &rt, &l, rounds, pause_every, i, &pause);
    }
    for (auto& t : threads) t.join();

    // Every task spawned (detached ones included) runs exactly once: wait until as many finished
    // as were allocated, then until the runtime counts no live task (bounded polling).
    const auto deadline = std::chrono::steady_clock::now() + (under_sanitizer ? 60s : 20s);
    while (l.finished.load(std::memory_order_acquire) < l.next_id.load(std::memory_order_relaxed) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    result.live_tasks = rt.stats().live_tasks;
    while (result.live_tasks != 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
      result.live_tasks = rt.stats().live_tasks;
    }
    result.stats = rt.stats();
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.tasks = l.next_id.load();
  result.overflowed = l.overflowed.load();
  result.all_finished = l.finished.load() == result.tasks;
  for (std::uint64_t i = 0; i < result.tasks && i < l.capacity; ++i) {
    const std::uint32_t c = l.counts[i].load(std::memory_order_relaxed);
    if (c == 1) continue;
    if (result.zero == 0 && result.multiple == 0) result.first_bad = i;
    (c == 0 ? result.zero : result.multiple) += 1;
  }
  return result;
}

// --- the deque ----------------------------------------------------------------------------------

/// A distinct, non-null, 16-byte aligned (+8) address standing for item i (never resumed).
std::coroutine_handle<> fake_handle(std::uint64_t i) noexcept {
  return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(static_cast<std::uintptr_t>(i << 4 | 8)));
}

/// Records every item taken from the deque (and counts it for its taker); detects duplicates and
/// garbage.
struct deque_tally {
  explicit deque_tally(std::uint64_t items) : items(items), seen(items + 1) {}

  void record(std::coroutine_handle<> h, std::uint64_t& taken) noexcept {
    const auto a = reinterpret_cast<std::uintptr_t>(h.address());
    const std::uint64_t i = a >> 4;
    ++taken;
    if ((a & 15) != 8 || i == 0 || i > items) {
      garbage.fetch_add(1, std::memory_order_relaxed);
    } else if (seen[i].fetch_add(1, std::memory_order_relaxed) != 0) {
      duplicates.fetch_add(1, std::memory_order_relaxed);
    }
  }

  const std::uint64_t items;
  std::vector<std::atomic<std::uint8_t>> seen;
  std::atomic<std::uint64_t> duplicates{0};
  std::atomic<std::uint64_t> garbage{0};
};

enum class owner_takes { pop, take_half };

struct deque_run_result {
  std::uint64_t by_owner = 0;
  std::uint64_t by_thieves = 0;
  std::uint64_t missing = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t garbage = 0;
  std::uint64_t full = 0;  ///< pushes refused because the deque was full
  double seconds = 0;
};

void thief(corio::detail::run_queue* q, deque_tally* tally, std::atomic<unsigned>* ready,
           const std::atomic<bool>* done, std::uint64_t* taken) {
  ready->fetch_add(1, std::memory_order_release);
  std::uint64_t n = 0;
  std::uint64_t misses = 0;
  for (;;) {
    if (auto h = q->steal()) {
      tally->record(h, n);
      continue;
    }
    if (done->load(std::memory_order_acquire) && q->empty()) break;
    if (++misses % 64 == 0) std::this_thread::yield();  // 4 threads on few cores: let the owner run
  }
  *taken = n;
}

/// Three thieves start stealing; then the owner pushes items 1..items in blocks of 64, each block
/// in a random mode: "trickle" (push one, pop one: the deque stays at 0-1 items, so pop and steal
/// race for the last one), "burst" (push the whole block; on a full deque the owner either yields
/// its core to the thieves or makes room by pop or take_half) and "mixed" (pop after about half of
/// the pushes). With owner_takes::take_half the owner also calls take_half at
/// random, as a worker does on overflow, while the thieves steal. Then it drains the deque.
deque_run_result run_deque_stress(std::uint32_t capacity, owner_takes mode, std::uint64_t items, std::uint64_t seed) {
  corio::detail::run_queue q{capacity};
  deque_tally tally{items};
  std::atomic<unsigned> ready{0};
  std::atomic<bool> done{false};
  constexpr unsigned thieves = 3;
  std::uint64_t stolen[thieves] = {};
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < thieves; ++i) threads.emplace_back(thief, &q, &tally, &ready, &done, &stolen[i]);

  deque_run_result result;
  std::mt19937_64 random{seed};
  std::vector<std::coroutine_handle<>> half;
  half.reserve(capacity);
  std::uint64_t owned = 0;
  auto take_for_room = [&] {
    if (mode == owner_takes::take_half) {
      half.clear();
      q.take_half(half);
      for (auto h : half) tally.record(h, owned);
    } else if (auto h = q.pop()) {
      tally.record(h, owned);
    }
  };

  const auto start = std::chrono::steady_clock::now();
  while (ready.load(std::memory_order_acquire) < thieves) std::this_thread::yield();  // all thieves steal already
  std::uint64_t next = 1;
  while (next <= items) {
    const std::uint64_t choice = random();
    const unsigned kind = static_cast<unsigned>(choice % 3);
    const std::uint64_t end = std::min(items + 1, next + 64);
    for (; next < end; ++next) {
      while (!q.push(fake_handle(next))) {
        // Full: half the time let the thieves (more threads than cores) empty it, else make room.
        if ((++result.full ^ choice) & 1) {
          std::this_thread::yield();
        } else {
          take_for_room();
        }
      }
      if (kind == 0 || (kind == 2 && ((choice >> (8 + (next & 31))) & 1))) {
        if (auto h = q.pop()) tally.record(h, owned);
      }
    }
    if (mode == owner_takes::take_half && ((choice >> 40) & 3) == 0) {
      half.clear();
      q.take_half(half);
      for (auto h : half) tally.record(h, owned);
    }
  }
  while (!q.empty()) {
    if (auto h = q.pop()) tally.record(h, owned);
  }
  done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  result.by_owner = owned;
  for (auto s : stolen) result.by_thieves += s;
  result.duplicates = tally.duplicates.load();
  result.garbage = tally.garbage.load();
  for (std::uint64_t i = 1; i <= items; ++i) {
    if (tally.seen[i].load(std::memory_order_relaxed) == 0) ++result.missing;
  }
  return result;
}

}  // namespace

TEST_SUITE_BEGIN("sched");

TEST_CASE("no wake-up is lost and no task runs twice while foreign threads inject work into parking workers, on 2, 4 and 8 workers") {
  const std::uint64_t seed = corio_test::test_seed();
  hang_guard guard{"lost wake-ups stress", seed, 120s};
  const std::size_t rounds = scaled(16000);
  for (unsigned workers : {2u, 4u, 8u}) {
    guard.phase(workers == 2 ? "2 workers" : workers == 4 ? "4 workers" : "8 workers");
    CAPTURE(workers);
    const wake_run_result r = run_wake_stress(workers, seed, rounds);
    std::uint64_t wakes = 0, parks = 0, steals = 0, injections = 0, polls = 0;
    for (const auto& w : r.stats.workers) {
      wakes += w.wakes;
      parks += w.parks;
      steals += w.steals;
      injections += w.injections;
      polls += w.polls;
    }
    MESSAGE(workers << " workers: " << r.tasks << " tasks, " << polls << " resumes, " << steals << " steals, "
                    << injections << " injected, " << wakes << " wakes sent by workers (foreign threads' are not counted), "
                    << parks << " parks in "
                    << r.seconds << " s");
    REQUIRE_FALSE(r.overflowed);
    CHECK(r.all_finished);
    CHECK_MESSAGE(r.zero == 0, r.zero << " tasks never ran (first bad id " << r.first_bad << ")");
    CHECK_MESSAGE(r.multiple == 0, r.multiple << " tasks ran more than once (first bad id " << r.first_bad << ")");
    CHECK(r.live_tasks == 0);
  }
}

TEST_CASE("every item pushed on a deque is taken exactly once by its owner's pops or by three concurrent thieves") {
  const std::uint64_t seed = corio_test::test_seed();
  hang_guard guard{"deque pop/steal stress", seed, 120s};
  const std::uint64_t items = scaled(3'000'000);
  for (std::uint32_t capacity : {64u, 1024u}) {
    guard.phase(capacity == 64 ? "capacity 64" : "capacity 1024");
    CAPTURE(capacity);
    const deque_run_result r = run_deque_stress(capacity, owner_takes::pop, items, seed + capacity);
    MESSAGE("capacity " << capacity << ": " << items << " items, " << r.by_owner << " popped, " << r.by_thieves
                        << " stolen, " << r.full << " pushes on a full deque, " << r.seconds << " s");
    CHECK(r.garbage == 0);
    CHECK(r.duplicates == 0);
    CHECK(r.missing == 0);
    CHECK(r.by_owner + r.by_thieves == items);
    CHECK(r.by_thieves > 0);
  }
}

TEST_CASE("take_half under concurrent steals moves every item exactly once") {
  const std::uint64_t seed = corio_test::test_seed();
  hang_guard guard{"deque take_half stress", seed, 120s};
  const std::uint64_t items = scaled(3'000'000);
  for (std::uint32_t capacity : {64u, 1024u}) {
    guard.phase(capacity == 64 ? "capacity 64" : "capacity 1024");
    CAPTURE(capacity);
    const deque_run_result r = run_deque_stress(capacity, owner_takes::take_half, items, seed + capacity);
    MESSAGE("capacity " << capacity << ": " << items << " items, " << r.by_owner << " taken by pop/take_half, "
                        << r.by_thieves << " stolen, " << r.full << " pushes on a full deque, " << r.seconds << " s");
    CHECK(r.garbage == 0);
    CHECK(r.duplicates == 0);
    CHECK(r.missing == 0);
    CHECK(r.by_owner + r.by_thieves == items);
  }
}

TEST_SUITE_END();
