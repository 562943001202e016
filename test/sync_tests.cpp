// Suite "sync": mutex, shared_mutex, condition_variable, semaphore, wait_group, event, latch; all
// park tasks, never the workers' threads.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <deque>
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

/// How the head waiter gives up: its task is cancelled, or its try_timeout runs out.
enum class give_up { cancel, timeout, last = timeout };
/// How the task holding the lock waits for the waiters queued behind the head: bounded by 1 h of
/// manual time (a waiter left parked shows as a false), or unbounded (it shows as a deadlock).
enum class wait_form { bounded, unbounded };

const char* name_of(give_up g) { return g == give_up::cancel ? "cancel" : "timeout"; }

struct head_fixture {
  corio::shared_mutex m;
  corio::latch in{2};                // counted down by each waiter behind the head once it got in
  corio::event leave;                // set when they may let go
  std::atomic<int> started{0};       // waiters behind the head about to queue
  std::atomic<int> head_outcome{0};  // 1 gave up (cancelled or timed out), 2 got in
};

/// The head waiter: a writer that queues on `f->m` and gives up as `how` says.
corio::task<void> head_waiter(head_fixture* f, give_up how) {
  try {
    if (how == give_up::timeout) {
      const bool got = co_await corio::try_timeout(1s, f->m.lock());
      if (got) f->m.unlock();
      f->head_outcome.store(got ? 2 : 1);
    } else {
      co_await f->m.lock();
      f->m.unlock();
      f->head_outcome.store(2);
    }
  } catch (const corio::operation_cancelled&) {
    f->head_outcome.store(1);
  }
}

/// A waiter behind the head: a reader, which can share the lock with the readers holding it.
corio::task<void> waiter_behind(head_fixture* f) {
  f->started.fetch_add(1);
  co_await f->m.lock_shared();
  f->in.count_down();
  co_await f->leave.wait();
  f->m.unlock_shared();
}

/// True once a waiter is queued on `f`'s primitive: a try that succeeds while nobody waits fails.
bool head_queued(head_fixture* f) {
  if (!f->m.try_lock_shared()) return true;
  f->m.unlock_shared();
  return false;
}

struct head_result {
  bool behind_got_in = false;  // the waiters behind the head got in while the lock was still held
  int head_outcome = 0;
  bool free_after = false;  // everything was given back at the end
};

/// This task holds the lock (shared); a head waiter queues, two waiters that could share the lock
/// with this task queue behind it, the head gives up, and this task waits for the two (`form`)
/// before it lets go.
corio::task<head_result> head_gives_up_round(give_up how, wait_form form) {
  head_fixture f;
  co_await f.m.lock_shared();
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
  f.m.unlock_shared();
  if (how == give_up::timeout) co_await head;
  for (auto& b : behind) co_await b;
  r.head_outcome = f.head_outcome.load();
  r.free_after = f.m.try_lock();
  if (r.free_after) f.m.unlock();
  co_return r;
}

/// Runs head_gives_up_round on 1 and 4 workers (manual time), `rounds` times each.
void check_head_gives_up(give_up how, wait_form form, int rounds) {
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    for (int i = 0; i < rounds; ++i) {
      const head_result r = rt.block_on(head_gives_up_round(how, form));
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

TEST_CASE("shared_mutex: readers share it, a writer holds it alone") {
  corio::runtime rt{{.workers = 4}};
  const auto [violations, max_readers] = rt.block_on(shared_mutex_round(6, 2, static_cast<int>(scaled(2'000))));
  CHECK(violations == 0);
  CHECK(max_readers >= 1);
}

TEST_CASE("shared_mutex: readers queued behind a cancelled writer share the lock with its holders") {
  check_head_gives_up(give_up::cancel, wait_form::bounded, static_cast<int>(scaled(20)));
}

TEST_CASE("shared_mutex: readers queued behind a writer whose try_timeout ran out share the lock") {
  check_head_gives_up(give_up::timeout, wait_form::bounded, static_cast<int>(scaled(20)));
}

TEST_CASE("a holder waiting for the waiters queued behind a waiter that gave up is not deadlocked") {
  corio_test::hang_guard guard{"waiters behind a head that gave up", 120s};
  for (int g = 0; g <= static_cast<int>(give_up::last); ++g) {
    const auto how = static_cast<give_up>(g);
    const std::string how_name = name_of(how);
    CAPTURE(how_name);
    check_head_gives_up(how, wait_form::unbounded, static_cast<int>(scaled(5)));
  }
}

TEST_SUITE_END();
