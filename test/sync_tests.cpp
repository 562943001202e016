// Suite "sync": mutex, shared_mutex, condition_variable, semaphore, wait_group, event, latch; all
// park tasks, never the workers' threads.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio_test::scaled;

namespace {

corio::task<void> add_under_lock(corio::mutex* m, long* total, long n) {
  for (long i = 0; i < n; ++i) {
    co_await m->lock();
    const long v = *total;  // a plain read-modify-write: any overlap would lose increments
    if (i % 64 == 0) co_await corio::yield();  // hold the lock across a suspension now and then
    *total = v + 1;
    m->unlock();
  }
}

corio::task<long> mutex_total(int tasks, long per_task) {
  corio::mutex m;
  long total = 0;
  std::vector<corio::join_handle<void>> hs;
  for (int t = 0; t < tasks; ++t) hs.push_back(corio::spawn(add_under_lock(&m, &total, per_task)));
  for (auto& h : hs) co_await h;
  co_return total;
}

corio::task<int> mutex_guard_and_try_lock() {
  int wrong = 0;
  corio::mutex m;
  {
    auto guard = co_await m.scoped_lock();
    wrong += guard.owns_lock() ? 0 : 1;
    wrong += m.try_lock() ? 1 : 0;  // held
  }
  wrong += m.try_lock() ? 0 : 1;  // released by the guard
  m.unlock();
  co_return wrong;
}

// Producer/consumer over a bounded deque with one mutex and two condition variables.
struct bounded_queue {
  corio::mutex m;
  corio::condition_variable not_empty, not_full;
  std::deque<int> items;
  std::size_t capacity = 4;
  bool done = false;
};

corio::task<void> cv_producer(bounded_queue* q, int from, int count) {
  for (int i = from; i < from + count; ++i) {
    auto g = co_await q->m.scoped_lock();
    co_await q->not_full.wait(g, [q] { return q->items.size() < q->capacity; });
    q->items.push_back(i);
    q->not_empty.notify_one();
  }
}

corio::task<long> cv_consumer(bounded_queue* q) {
  long sum = 0;
  for (;;) {
    auto g = co_await q->m.scoped_lock();
    co_await q->not_empty.wait(g, [q] { return !q->items.empty() || q->done; });
    if (q->items.empty()) co_return sum;
    sum += q->items.front();
    q->items.pop_front();
    q->not_full.notify_one();
  }
}

corio::task<long> condvar_round(int producers, int per_producer, int consumers) {
  bounded_queue q;
  std::vector<corio::join_handle<void>> ps;
  std::vector<corio::join_handle<long>> cs;
  for (int c = 0; c < consumers; ++c) cs.push_back(corio::spawn(cv_consumer(&q)));
  for (int p = 0; p < producers; ++p) ps.push_back(corio::spawn(cv_producer(&q, p * per_producer, per_producer)));
  for (auto& p : ps) co_await p;
  {
    auto g = co_await q.m.scoped_lock();
    q.done = true;
    q.not_empty.notify_all();
  }
  long sum = 0;
  for (auto& c : cs) sum += co_await c;
  co_return sum;
}

corio::task<void> use_semaphore(corio::semaphore* s, std::atomic<int>* in_use, std::atomic<int>* peak, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await s->acquire();
    const int now = in_use->fetch_add(1) + 1;
    int p = peak->load();
    while (now > p && !peak->compare_exchange_weak(p, now)) {
    }
    co_await corio::yield();
    in_use->fetch_sub(1);
    s->release();
  }
}

corio::task<int> semaphore_peak(int tasks, int units, int rounds) {
  corio::semaphore s{units};
  std::atomic<int> in_use{0}, peak{0};
  std::vector<corio::join_handle<void>> hs;
  for (int t = 0; t < tasks; ++t) hs.push_back(corio::spawn(use_semaphore(&s, &in_use, &peak, rounds)));
  for (auto& h : hs) co_await h;
  if (s.available() != units) co_return -1;
  co_return peak.load();
}

corio::task<void> take_units(corio::semaphore* s, std::int64_t n, std::atomic<int>* order,
                             std::atomic<int>* at, corio::event* hold) {
  co_await s->acquire(n);
  at->store(order->fetch_add(1) + 1);
  co_await hold->wait();
  s->release(n);
}

/// acquire(3) queues on a semaphore with 2 units; an acquire(1) after it waits behind it (FIFO)
/// although a unit is there; release(1) serves the first, its release(3) the second. Returns the
/// number of things that went wrong.
corio::task<int> weighted_semaphore_round() {
  corio::semaphore sem{2};
  std::atomic<int> order{0}, a_at{0}, b_at{0};
  corio::event a_hold, b_hold;
  int wrong = 0;
  auto a = corio::spawn(take_units(&sem, 3, &order, &a_at, &a_hold));
  for (int i = 0; i < 1000000; ++i) {
    if (!sem.try_acquire(1)) break;  // fails once the acquire(3) is queued
    sem.release(1);
    co_await corio::yield();
  }
  auto b = corio::spawn(take_units(&sem, 1, &order, &b_at, &b_hold));
  for (int i = 0; i < 1000; ++i) co_await corio::yield();
  wrong += b_at.load() != 0 ? 1 : 0;  // it does not pass the acquire(3)
  wrong += sem.available() != 2 ? 1 : 0;
  sem.release(1);
  for (int i = 0; i < 1000000 && a_at.load() == 0; ++i) co_await corio::yield();
  wrong += a_at.load() != 1 ? 1 : 0;
  wrong += sem.available() != 0 ? 1 : 0;
  a_hold.set();
  co_await a;
  for (int i = 0; i < 1000000 && b_at.load() == 0; ++i) co_await corio::yield();
  wrong += b_at.load() != 2 ? 1 : 0;
  wrong += sem.available() != 2 ? 1 : 0;
  b_hold.set();
  co_await b;
  wrong += sem.available() != 3 ? 1 : 0;
  co_return wrong;
}

corio::task<void> work_then_done(corio::wait_group* wg, std::atomic<int>* finished) {
  co_await corio::yield();
  finished->fetch_add(1);
  wg->done();
}

corio::task<int> wait_group_round(int n) {
  corio::wait_group wg;
  std::atomic<int> finished{0};
  wg.add(n);
  for (int i = 0; i < n; ++i) corio::spawn(work_then_done(&wg, &finished)).detach();
  co_await wg.wait();
  const int seen = finished.load();
  co_await wg.wait();  // zero: at once
  co_return seen;
}

corio::task<void> wait_event(corio::event* e, std::atomic<int>* woken) {
  co_await e->wait();
  woken->fetch_add(1);
}

corio::task<int> event_round(int waiters) {
  corio::event e;
  std::atomic<int> woken{0};
  std::vector<corio::join_handle<void>> hs;
  for (int i = 0; i < waiters; ++i) hs.push_back(corio::spawn(wait_event(&e, &woken)));
  for (int i = 0; i < 10; ++i) co_await corio::yield();
  const int before = woken.load();
  e.set();
  for (auto& h : hs) co_await h;
  co_await e.wait();  // set: at once
  e.reset();
  if (e.is_set()) co_return -1;
  co_return before == 0 ? woken.load() : -2;
}

corio::task<void> count_down_later(corio::latch* l) {
  co_await corio::yield();
  l->count_down();
}

corio::task<int> latch_round(int n) {
  corio::latch l{n};
  for (int i = 0; i < n; ++i) corio::spawn(count_down_later(&l)).detach();
  co_await l.wait();
  co_return l.try_wait() ? 0 : 1;
}

corio::task<void> reader(corio::shared_mutex* m, std::atomic<int>* readers, std::atomic<int>* writers,
                         std::atomic<int>* violations, std::atomic<int>* max_readers, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await m->lock_shared();
    const int r = readers->fetch_add(1) + 1;
    int mr = max_readers->load();
    while (r > mr && !max_readers->compare_exchange_weak(mr, r)) {
    }
    if (writers->load() != 0) violations->fetch_add(1);
    co_await corio::yield();
    readers->fetch_sub(1);
    m->unlock_shared();
  }
}

corio::task<void> writer(corio::shared_mutex* m, std::atomic<int>* readers, std::atomic<int>* writers,
                         std::atomic<int>* violations, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    co_await m->lock();
    if (writers->fetch_add(1) != 0 || readers->load() != 0) violations->fetch_add(1);
    co_await corio::yield();
    writers->fetch_sub(1);
    m->unlock();
  }
}

corio::task<std::pair<int, int>> shared_mutex_round(int readers_n, int writers_n, int rounds) {
  corio::shared_mutex m;
  std::atomic<int> readers{0}, writers{0}, violations{0}, max_readers{0};
  std::vector<corio::join_handle<void>> hs;
  for (int i = 0; i < readers_n; ++i) hs.push_back(corio::spawn(reader(&m, &readers, &writers, &violations, &max_readers, rounds)));
  for (int i = 0; i < writers_n; ++i) hs.push_back(corio::spawn(writer(&m, &readers, &writers, &violations, rounds)));
  for (auto& h : hs) co_await h;
  co_return std::pair{violations.load(), max_readers.load()};
}

corio::task<void> hold_then_wait(corio::mutex* m, corio::event* never, std::atomic<int>* started) {
  co_await m->lock();
  started->fetch_add(1);
  co_await never->wait();  // holds the mutex forever
}

corio::task<void> lock_forever(corio::mutex* m, std::atomic<int>* started) {
  started->fetch_add(1);
  co_await m->lock();
  m->unlock();
}

// --- a waiter at the head of a queue that gives up -----------------------------------------

/// The primitive whose head waiter gives up: a writer queued on a shared_mutex that readers hold,
/// or an acquire(3) queued on a semaphore with 2 units.
enum class head_kind { shared_mutex, semaphore, last = semaphore };
/// How the head waiter gives up: its task is cancelled, or its try_timeout runs out.
enum class give_up { cancel, timeout, last = timeout };
/// How the task holding the lock waits for the waiters queued behind the head: bounded by 1 h of
/// manual time (a waiter left parked shows as a false), or unbounded (it shows as a deadlock).
enum class wait_form { bounded, unbounded };

const char* name_of(head_kind k) { return k == head_kind::shared_mutex ? "shared_mutex" : "semaphore"; }
const char* name_of(give_up g) { return g == give_up::cancel ? "cancel" : "timeout"; }

struct head_fixture {
  explicit head_fixture(head_kind k) : kind(k) {}
  head_kind kind;
  corio::shared_mutex m;
  corio::semaphore sem{2};
  corio::latch in{2};                // counted down by each waiter behind the head once it got in
  corio::event leave;                // set when they may let go
  std::atomic<int> started{0};       // waiters behind the head about to queue
  std::atomic<int> head_outcome{0};  // 1 gave up (cancelled or timed out), 2 got in
};

/// The head waiter: a writer on `f->m`, or an acquire(3) on `f->sem`; it gives up as `how` says.
corio::task<void> head_waiter(head_fixture* f, give_up how) {
  try {
    bool got = true;
    if (f->kind == head_kind::shared_mutex) {
      if (how == give_up::timeout) got = co_await corio::try_timeout(1s, f->m.lock());
      else co_await f->m.lock();
      if (got) f->m.unlock();
    } else {
      if (how == give_up::timeout) got = co_await corio::try_timeout(1s, f->sem.acquire(3));
      else co_await f->sem.acquire(3);
      if (got) f->sem.release(3);
    }
    f->head_outcome.store(got ? 2 : 1);
  } catch (const corio::operation_cancelled&) {
    f->head_outcome.store(1);
  }
}

/// A waiter behind the head that could proceed without it: a reader, which can share the lock
/// with the readers holding it, or an acquire(1), which the 2 units available cover.
corio::task<void> waiter_behind(head_fixture* f) {
  f->started.fetch_add(1);
  if (f->kind == head_kind::shared_mutex) co_await f->m.lock_shared();
  else co_await f->sem.acquire(1);
  f->in.count_down();
  co_await f->leave.wait();
  if (f->kind == head_kind::shared_mutex) f->m.unlock_shared();
  else f->sem.release(1);
}

/// True once a waiter is queued on `f`'s primitive: a try that succeeds while nobody waits fails.
bool head_queued(head_fixture* f) {
  if (f->kind == head_kind::shared_mutex) {
    if (!f->m.try_lock_shared()) return true;
    f->m.unlock_shared();
  } else {
    if (!f->sem.try_acquire(1)) return true;
    f->sem.release(1);
  }
  return false;
}

struct head_result {
  bool behind_got_in = false;  // the waiters behind the head got in (while a reader held the lock)
  int head_outcome = 0;
  bool free_after = false;  // everything was given back at the end
};

/// On a shared_mutex this task holds the lock (shared); a head waiter queues, two waiters that
/// could proceed without it (readers that can share the lock with this task, small acquires) queue
/// behind it, the head gives up, and this task waits for the two (`form`) before it lets go.
corio::task<head_result> head_gives_up_round(head_kind kind, give_up how, wait_form form) {
  head_fixture f(kind);
  if (kind == head_kind::shared_mutex) co_await f.m.lock_shared();
  auto head = corio::spawn(head_waiter(&f, how));
  for (int i = 0; i < 1000000 && !head_queued(&f); ++i) co_await corio::yield();
  std::vector<corio::join_handle<void>> behind;
  for (int i = 0; i < 2; ++i) behind.push_back(corio::spawn(waiter_behind(&f)));
  for (int i = 0; i < 1000000 && f.started.load() < 2; ++i) co_await corio::yield();
  for (int i = 0; i < 100; ++i) co_await corio::yield();  // they queue behind the head
  if (how == give_up::cancel) {
    head.cancel();
    co_await head;
  }
  head_result r;
  if (form == wait_form::bounded) {
    r.behind_got_in = co_await corio::try_timeout(1h, f.in.wait());
  } else {
    co_await f.in.wait();
    r.behind_got_in = true;
  }
  f.leave.set();
  if (kind == head_kind::shared_mutex) f.m.unlock_shared();
  // A failed run left the small acquires parked with the units there: one more unit runs the
  // hand-off, so that the round ends (it is taken back below).
  const bool extra_unit = kind == head_kind::semaphore && !r.behind_got_in;
  if (extra_unit) f.sem.release(1);
  if (how == give_up::timeout) co_await head;
  for (auto& b : behind) co_await b;
  if (extra_unit) static_cast<void>(f.sem.try_acquire(1));
  r.head_outcome = f.head_outcome.load();
  if (kind == head_kind::shared_mutex) {
    r.free_after = f.m.try_lock();
    if (r.free_after) f.m.unlock();
  } else {
    r.free_after = f.sem.available() == 2;
  }
  co_return r;
}

/// Runs head_gives_up_round on 1 and 4 workers (manual time), `rounds` times each.
void check_head_gives_up(head_kind kind, give_up how, wait_form form, int rounds) {
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    for (int i = 0; i < rounds; ++i) {
      const head_result r = rt.block_on(head_gives_up_round(kind, how, form));
      CHECK(r.behind_got_in);
      CHECK(r.head_outcome == 1);
      CHECK(r.free_after);
      if (!r.behind_got_in) break;
    }
  }
}

}  // namespace

TEST_SUITE_BEGIN("sync");

TEST_CASE("a runtime destroyed while tasks wait on a mutex and an event leaves them without waiters") {
  corio::mutex m;
  corio::event never;
  {
    corio::runtime rt{{.workers = 2}};
    std::atomic<int> started{0};
    rt.spawn(hold_then_wait(&m, &never, &started)).detach();
    for (int i = 0; i < 2000 && started.load() < 1; ++i) std::this_thread::sleep_for(1ms);
    for (int i = 0; i < 4; ++i) rt.spawn(lock_forever(&m, &started)).detach();
    for (int i = 0; i < 2000 && started.load() < 5; ++i) std::this_thread::sleep_for(1ms);
  }
  // The holder's frame is gone without unlocking (it never ran to the end); the waiters' nodes
  // left the queue with their frames, so unlocking hands the mutex to nobody.
  if (!m.try_lock()) m.unlock();
  CHECK(m.try_lock());
  m.unlock();
  never.set();  // wakes nobody: the waiter's node left with its frame
  CHECK(never.is_set());
}

TEST_CASE("mutex: 8 tasks x 100,000 increments under the lock on 4 workers give the exact total") {
  const long per_task = static_cast<long>(scaled(100'000));
  corio::runtime rt{{.workers = 4}};
  CHECK(rt.block_on(mutex_total(8, per_task)) == 8 * per_task);
}

TEST_CASE("mutex: scoped_lock's guard unlocks; try_lock fails while held") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(mutex_guard_and_try_lock()) == 0);
}

TEST_CASE("condition_variable: producers and consumers over a bounded queue move every item once") {
  const int per_producer = static_cast<int>(scaled(5'000));
  const int producers = 4;
  const long n = static_cast<long>(producers) * per_producer;
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    CHECK(rt.block_on(condvar_round(producers, per_producer, 3)) == n * (n - 1) / 2);
  }
}

TEST_CASE("semaphore: never more holders than units, and every unit comes back") {
  corio::runtime rt{{.workers = 4}};
  const int peak = rt.block_on(semaphore_peak(16, 3, static_cast<int>(scaled(2'000))));
  CHECK(peak >= 1);
  CHECK(peak <= 3);
}

TEST_CASE("wait_group waits for every done(); a negative counter throws") {
  corio::runtime rt{{.workers = 4}};
  CHECK(rt.block_on(wait_group_round(1'000)) == 1'000);
  corio::wait_group wg;
  CHECK_THROWS_AS(wg.done(), std::logic_error);
}

TEST_CASE("event: waiters park until set, all wake, later waits pass until reset") {
  corio::runtime rt{{.workers = 2}};
  CHECK(rt.block_on(event_round(50)) == 50);
}

TEST_CASE("latch: wait returns once the count reaches zero; counting below zero throws") {
  corio::runtime rt{{.workers = 4}};
  CHECK(rt.block_on(latch_round(100)) == 0);
  corio::latch l{1};
  CHECK_THROWS_AS(l.count_down(2), std::logic_error);
}

TEST_CASE("semaphore: a release past INT64_MAX throws overflow_error, a negative count invalid_argument") {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  corio::semaphore s{max - 1};
  CHECK_THROWS_WITH_AS(s.release(2),
                       "corio::semaphore::release: 2 units on top of 9223372036854775806 overflow the count",
                       std::overflow_error);
  CHECK(s.available() == max - 1);  // unchanged
  CHECK(s.try_acquire(max - 1));
  CHECK(s.available() == 0);
  s.release(max);
  CHECK_THROWS_AS(s.release(1), std::overflow_error);
  CHECK(s.available() == max);
  CHECK_THROWS_WITH_AS(s.release(-1), "corio::semaphore::release: a negative unit count (-1)",
                       std::invalid_argument);
  CHECK(s.available() == max);
  s.release(0);  // nothing
  CHECK(s.available() == max);
  CHECK_THROWS_WITH_AS(corio::semaphore{-1}, "corio::semaphore: a negative initial count (-1)",
                       std::invalid_argument);
}

TEST_CASE("wait_group: an add past INT64_MAX throws overflow_error and leaves the counter") {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  corio::wait_group wg;
  wg.add(max);
  CHECK_THROWS_WITH_AS(wg.add(1),
                       "corio::wait_group::add: 1 on top of 9223372036854775807 overflows the counter",
                       std::overflow_error);
  CHECK(wg.count() == max);
  CHECK_THROWS_WITH_AS(
      wg.add(std::numeric_limits<std::int64_t>::min()),
      "corio::wait_group::add: -9223372036854775808 would take the counter (9223372036854775807) "
      "below zero",
      std::logic_error);
  CHECK(wg.count() == max);
  wg.add(-max);
  CHECK(wg.count() == 0);
  CHECK_THROWS_AS(wg.done(), std::logic_error);
  CHECK(wg.count() == 0);
}

TEST_CASE("latch: a negative count throws invalid_argument; counting down more than is left throws") {
  CHECK_THROWS_WITH_AS(corio::latch{-1}, "corio::latch: a negative count (-1)", std::invalid_argument);
  corio::latch l{2};
  CHECK_THROWS_WITH_AS(l.count_down(-1), "corio::latch::count_down: a negative count (-1)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(l.count_down(3), "corio::latch::count_down: 3 is more than the count left (2)",
                       std::logic_error);
  CHECK_FALSE(l.try_wait());
  l.count_down(2);
  CHECK(l.try_wait());
  l.count_down(0);  // nothing
  CHECK(l.try_wait());
}

TEST_CASE("shared_mutex: readers share it, a writer holds it alone") {
  corio::runtime rt{{.workers = 4}};
  const auto [violations, max_readers] = rt.block_on(shared_mutex_round(6, 2, static_cast<int>(scaled(2'000))));
  CHECK(violations == 0);
  CHECK(max_readers >= 1);
}

TEST_CASE("shared_mutex: readers queued behind a cancelled writer share the lock with its holders") {
  check_head_gives_up(head_kind::shared_mutex, give_up::cancel, wait_form::bounded,
                      static_cast<int>(scaled(20)));
}

TEST_CASE("shared_mutex: readers queued behind a writer whose try_timeout ran out share the lock") {
  check_head_gives_up(head_kind::shared_mutex, give_up::timeout, wait_form::bounded,
                      static_cast<int>(scaled(20)));
}

TEST_CASE("semaphore: acquires queued behind a cancelled acquire(n) take the units available") {
  check_head_gives_up(head_kind::semaphore, give_up::cancel, wait_form::bounded,
                      static_cast<int>(scaled(20)));
}

TEST_CASE("semaphore: acquires queued behind an acquire(n) whose try_timeout ran out take the units") {
  check_head_gives_up(head_kind::semaphore, give_up::timeout, wait_form::bounded,
                      static_cast<int>(scaled(20)));
}

TEST_CASE("semaphore: acquire(n) waits for n units in FIFO order; a negative n throws") {
  corio::runtime rt{{.workers = 2}};
  CHECK(rt.block_on(weighted_semaphore_round()) == 0);
  corio::semaphore s{1};
  CHECK_THROWS_AS((void)s.acquire(-1), std::invalid_argument);
  CHECK_THROWS_AS((void)s.try_acquire(-1), std::invalid_argument);
  CHECK(s.try_acquire(0));
  CHECK_FALSE(s.try_acquire(2));
  CHECK(s.try_acquire(1));
  CHECK(s.available() == 0);
}

TEST_CASE("a holder waiting for the waiters queued behind a waiter that gave up is not deadlocked") {
  corio_test::hang_guard guard{"waiters behind a head that gave up", 120s};
  for (int k = 0; k <= static_cast<int>(head_kind::last); ++k) {
    for (int g = 0; g <= static_cast<int>(give_up::last); ++g) {
      const auto kind = static_cast<head_kind>(k);
      const auto how = static_cast<give_up>(g);
      const std::string kind_name = name_of(kind), how_name = name_of(how);
      CAPTURE(kind_name);
      CAPTURE(how_name);
      check_head_gives_up(kind, how, wait_form::unbounded, static_cast<int>(scaled(5)));
    }
  }
}

TEST_SUITE_END();
