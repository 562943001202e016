// Cancellation of every kind of suspended operation (suite "cancel"): the wait ends with
// operation_cancelled and nothing else can end it (manual time that nobody advances; an idle
// runtime would jump it to the next timer, so a timer left behind shows as time that moved).
#include <corio/corio.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio_test::scaled;

namespace {

enum class op_kind { sleep, recv, send, select, mutex, semaphore, condvar, event, latch, wait_group, join, shared_lock,
                     when_all, nested_when_all, timeout_scope, join_of_when_all, join_of_join, last = join_of_join };

struct fixture {
  corio::channel<int> ch{0};
  corio::channel<int> ch2{0};
  corio::mutex mutex;
  corio::shared_mutex shared;
  corio::semaphore sem{0};
  corio::condition_variable cv;
  corio::event ev;
  corio::latch latch{1};
  corio::wait_group wg;
  std::atomic<bool> started{false};
  std::atomic<int> outcome{0};  // 1 cancelled, 2 returned normally, 3 other exception
  std::atomic<int> child_outcome{0};  // the same, for the task a joining waiter spawned
};

corio::task<void> forever() {
  corio::event never;
  co_await never.wait();
}

corio::task<int> recv_forever(corio::channel<int> ch) {
  auto v = co_await ch.recv();
  co_return v.value_or(0);
}

corio::task<int> compute(int n) { co_return n; }

corio::task<int> fork_then_wait(corio::channel<int> ch) {
  // A fork-join level that never waits, then one whose child waits: the stop must still reach it.
  auto [a, b] = co_await corio::when_all(compute(1), compute(2));
  auto [c, d] = co_await corio::when_all(compute(a), recv_forever(ch));
  co_return b + c + d;
}

corio::task<int> both_forever(corio::channel<int> a, corio::channel<int> b) {
  auto [x, y] = co_await corio::when_all(recv_forever(a), recv_forever(b));
  co_return x + y;
}

corio::task<void> child_forever(fixture* f) {
  try {
    co_await forever();
    f->child_outcome.store(2);
  } catch (const corio::operation_cancelled&) {
    f->child_outcome.store(1);
  }
}

corio::task<void> join_forever() {
  auto h = corio::spawn(forever());
  co_await h;
}

corio::task<void> waiter(op_kind kind, fixture* f) {
  try {
    f->started.store(true);
    switch (kind) {
      case op_kind::sleep: co_await corio::sleep_for(1h); break;
      case op_kind::recv: {
        auto v = co_await f->ch.recv();
        (void)v;
        break;
      }
      case op_kind::send: co_await f->ch.send(7); break;
      case op_kind::select: {
        auto r = co_await corio::select(f->ch.recv_case(), f->ch2.recv_case(), corio::after(1h));
        (void)r;
        break;
      }
      case op_kind::mutex: {
        auto g = co_await f->mutex.scoped_lock();
        break;
      }
      case op_kind::shared_lock: co_await f->shared.lock(); break;
      case op_kind::semaphore: co_await f->sem.acquire(); break;
      case op_kind::condvar: {
        auto g = co_await f->mutex.scoped_lock();
        try {
          co_await f->cv.wait(g);
        } catch (const corio::operation_cancelled&) {
          CHECK(g.owns_lock());  // the mutex is held again when the cancellation is thrown
          throw;
        }
        break;
      }
      case op_kind::event: co_await f->ev.wait(); break;
      case op_kind::latch: co_await f->latch.wait(); break;
      case op_kind::wait_group: co_await f->wg.wait(); break;
      case op_kind::when_all: {
        auto r = co_await corio::when_all(recv_forever(f->ch), recv_forever(f->ch2));
        (void)r;
        break;
      }
      case op_kind::nested_when_all: {
        auto r = co_await corio::when_all(compute(0), fork_then_wait(f->ch));
        (void)r;
        break;
      }
      case op_kind::timeout_scope: {
        auto r = co_await corio::timeout(24h, corio::when_all(recv_forever(f->ch), compute(3)));
        (void)r;
        break;
      }
      case op_kind::join: {
        auto h = corio::spawn(child_forever(f));
        co_await h;  // the child is linked to us: it is cancelled too, and we wait for nothing else
        break;
      }
      case op_kind::join_of_when_all: {
        // The joined task never suspends itself: only its when_all's children wait.
        auto h = corio::spawn(both_forever(f->ch, f->ch2));
        auto r = co_await h;
        (void)r;
        break;
      }
      case op_kind::join_of_join: {
        auto h = corio::spawn(join_forever());
        co_await h;
        break;
      }
    }
    f->outcome.store(2);
  } catch (const corio::operation_cancelled&) {
    f->outcome.store(1);
  } catch (...) {
    f->outcome.store(3);
  }
}

corio::task<void> cancel_after_start(op_kind kind, fixture* f) {
  if (kind == op_kind::mutex || kind == op_kind::shared_lock) {
    co_await f->mutex.lock();  // held by us: the waiter queues
    co_await f->shared.lock();
  }
  if (kind == op_kind::wait_group) f->wg.add(1);
  auto h = corio::spawn(waiter(kind, f));
  // Keep this worker busy (no auto-advance of the manual time) until the waiter has begun.
  for (int i = 0; i < 1000000 && !f->started.load(); ++i) co_await corio::yield();
  for (int i = 0; i < 100; ++i) co_await corio::yield();
  CHECK(h.cancel());
  CHECK_FALSE(h.cancel());  // the request is made once
  co_await h;
  if (kind == op_kind::mutex || kind == op_kind::shared_lock) {
    f->mutex.unlock();
    f->shared.unlock();
    // Nothing was handed to the cancelled waiter: the mutex is free.
    CHECK(f->mutex.try_lock());
    f->mutex.unlock();
  }
  if (kind == op_kind::wait_group) f->wg.add(-1);
  if (kind == op_kind::join) {
    // The joined child, spawned by the waiter, was cancelled with it (it may still be unwinding).
    for (int i = 0; i < 1000000 && f->child_outcome.load() == 0; ++i) co_await corio::yield();
    CHECK(f->child_outcome.load() == 1);
  }
}

/// One round of the released-timeout test: `n` tasks each wait in a 24 h timeout around a
/// when_all whose children may be stolen (so the scope often ends on another worker than the one
/// that armed its timer, which then gets the timer back through its inbox), and are cancelled.
corio::task<int> timeout_round(int n) {
  corio::channel<int> ch{0};
  std::vector<corio::join_handle<int>> handles;
  auto one = [](corio::channel<int> c) -> corio::task<int> {
    try {
      auto r = co_await corio::timeout(24h, corio::when_all(recv_forever(c), compute(3)));
      co_return std::get<0>(r) + std::get<1>(r);
    } catch (const corio::operation_cancelled&) {
      co_return -1;
    }
  };
  for (int i = 0; i < n; ++i) handles.push_back(corio::spawn(one(ch)));
  for (int i = 0; i < 50; ++i) co_await corio::yield();
  for (auto& h : handles) h.cancel();
  int cancelled = 0;
  for (auto& h : handles) cancelled += (co_await h) == -1 ? 1 : 0;
  co_return cancelled;
}

/// The waits a task and the child it spawned can share one lock for (refused_wait_round).
enum class shared_wait { mutex, semaphore, recv, send, select, condvar, shared_lock, last = shared_lock };

struct shared_wait_fixture {
  corio::mutex mutex;
  corio::semaphore sem{0};
  corio::channel<int> ch{0};
  corio::condition_variable cv;
  corio::shared_mutex shared;
  std::atomic<bool> child_waiting{false};
  std::atomic<bool> stop_requested{false};
  std::atomic<int> parent_outcome{0};  // 1 cancelled, 2 returned normally, 3 other exception
  std::atomic<int> child_outcome{0};
};

/// Waits once, for something nobody provides, on the fixture's object of `kind`.
corio::task<void> wait_on(shared_wait kind, shared_wait_fixture* f) {
  switch (kind) {
    case shared_wait::mutex: co_await f->mutex.lock(); f->mutex.unlock(); break;
    case shared_wait::semaphore: co_await f->sem.acquire(); break;
    case shared_wait::recv: {
      auto v = co_await f->ch.recv();
      (void)v;
      break;
    }
    case shared_wait::send: co_await f->ch.send(1); break;
    case shared_wait::select: {
      auto r = co_await corio::select(f->ch.recv_case());
      (void)r;
      break;
    }
    case shared_wait::condvar: {
      auto g = co_await f->mutex.scoped_lock();
      co_await f->cv.wait(g);
      break;
    }
    case shared_wait::shared_lock: co_await f->shared.lock_shared(); break;
  }
}

corio::task<void> waiting_child(shared_wait kind, shared_wait_fixture* f) {
  try {
    f->child_waiting.store(true);
    co_await wait_on(kind, f);
    f->child_outcome.store(2);
  } catch (const corio::operation_cancelled&) {
    f->child_outcome.store(1);
  } catch (...) {
    f->child_outcome.store(3);
  }
}

/// Spawns a child that waits on `kind`'s object, keeps running (yields do not see a stop) until
/// its own stop was requested, then waits on the same object: the wait is refused at once.
corio::task<void> refused_parent(shared_wait kind, shared_wait_fixture* f) {
  auto child = corio::spawn(waiting_child(kind, f));
  for (int i = 0; i < 1000000 && !f->stop_requested.load(); ++i) co_await corio::yield();
  try {
    co_await wait_on(kind, f);
    f->parent_outcome.store(2);
  } catch (const corio::operation_cancelled&) {
    f->parent_outcome.store(1);
  } catch (...) {
    f->parent_outcome.store(3);
  }
}

corio::task<void> refused_wait_round(shared_wait kind, shared_wait_fixture* f) {
  if (kind == shared_wait::mutex) co_await f->mutex.lock();  // held: both waiters queue
  if (kind == shared_wait::shared_lock) co_await f->shared.lock();
  auto parent = corio::spawn(refused_parent(kind, f));
  for (int i = 0; i < 1000000 && !f->child_waiting.load(); ++i) co_await corio::yield();
  for (int i = 0; i < 100; ++i) co_await corio::yield();  // the child parks
  CHECK(parent.cancel());
  f->stop_requested.store(true);
  co_await parent;
  // The parent saw its stop when its wait was refused: its child is cancelled too.
  for (int i = 0; i < 1000000 && f->child_outcome.load() == 0; ++i) co_await corio::yield();
  if (kind == shared_wait::mutex) f->mutex.unlock();
  if (kind == shared_wait::shared_lock) f->shared.unlock();
}

const char* name_of(op_kind k) {
  static const char* names[] = {"sleep", "recv", "send", "select", "mutex", "semaphore", "condvar", "event",
                                "latch", "wait_group", "join", "shared_lock", "when_all", "nested_when_all",
                                "timeout_scope", "join_of_when_all", "join_of_join"};
  return names[static_cast<int>(k)];
}

const char* name_of(shared_wait k) {
  static const char* names[] = {"mutex", "semaphore", "recv", "send", "select", "condvar", "shared_lock"};
  return names[static_cast<int>(k)];
}

}  // namespace

TEST_SUITE("cancel") {
  TEST_CASE("a timeout released on another worker never moves a manual clock that nobody advances") {
    // The worker that armed a timeout's timer removes it when its inbox hands it back; until then
    // it must not count as idle, or the idle runtime jumps its time to that timer.
    corio_test::hang_guard guard{"released timeouts", 120s};
    corio::runtime rt{{.workers = 4, .clock = corio::manual_clock}};
    const auto start = rt.now();
    const int rounds = static_cast<int>(scaled(200));
    int moved_at = -1;
    for (int round = 0; round < rounds && moved_at < 0; ++round) {
      CHECK(rt.block_on(timeout_round(8)) == 8);
      std::this_thread::sleep_for(1ms);  // time for an idle worker to make a wrong jump
      if (rt.now() - start >= 1h) moved_at = round;
    }
    CHECK(moved_at == -1);
  }

  TEST_CASE("cancelling a task ends the wait it is suspended in with operation_cancelled, on 1 and 4 workers") {
    corio_test::hang_guard guard{"cancel each kind of wait", 120s};
    for (unsigned workers : {1u, 4u}) {
      for (int k = 0; k <= static_cast<int>(op_kind::last); ++k) {
        const auto kind = static_cast<op_kind>(k);
        CAPTURE(workers);
        const std::string kind_name = name_of(kind);
        CAPTURE(kind_name);
        corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
        const auto start = rt.now();
        fixture f;
        rt.block_on(cancel_after_start(kind, &f));
        CHECK(f.outcome.load() == 1);
        // No timer was left behind: the idle runtime would have jumped its time to it.
        std::this_thread::sleep_for(5ms);
        CHECK(rt.now() - start < 1h);
      }
    }
  }

  TEST_CASE("a task cancelled while it runs, whose child waits on the lock it then waits on, is refused without a deadlock") {
    // The refused wait holds the object's lock when it finds the stop; telling the child (parked
    // on that same lock) from there took the lock again and spun forever.
    corio_test::hang_guard guard{"refused wait beside a waiting child", 120s};
    for (unsigned workers : {1u, 4u}) {
      for (int k = 0; k <= static_cast<int>(shared_wait::last); ++k) {
        const auto kind = static_cast<shared_wait>(k);
        CAPTURE(workers);
        const std::string kind_name = name_of(kind);
        CAPTURE(kind_name);
        corio::runtime rt{{.workers = workers}};
        shared_wait_fixture f;
        rt.block_on(refused_wait_round(kind, &f));
        CHECK(f.parent_outcome.load() == 1);
        CHECK(f.child_outcome.load() == 1);
      }
    }
  }
}
