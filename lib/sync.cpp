// lib/sync.cpp - the spin lock's slow path and the task-parking sync primitives (mutex,
// shared_mutex, condition_variable, semaphore, event, latch, wait_group). Each keeps its waiters
// in a FIFO wait_list under its spin_lock; whoever ends a wait claims the waiter's node there
// (detail/park.hpp) and wakes the task after unlocking.
#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <thread>

#include "corio/condition_variable.hpp"
#include "corio/errors.hpp"
#include "corio/event.hpp"
#include "corio/latch.hpp"
#include "corio/mutex.hpp"
#include "corio/semaphore.hpp"
#include "corio/shared_mutex.hpp"
#include "corio/wait_group.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace corio {
namespace detail {

void spin_wait(unsigned& spins) noexcept {
  if (spins++ < 64) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
  } else {
    std::this_thread::yield();
  }
}

void spin_lock::lock_slow() noexcept {
  for (unsigned spins = 0;; ++spins) {
    if (!locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire)) return;
    if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
    } else {
      std::this_thread::yield();  // the holder may be preempted: let it run
    }
  }
}

wait_node* claim_all(wait_list& list, wait_node* chain, bool closed) noexcept {
  while (wait_node* n = list.front()) {
    list.remove(*n);
    if (!n->owner->try_claim(n->case_index)) continue;
    n->closed = closed;
    n->next = chain;
    chain = n;
  }
  return chain;
}

void throw_cancelled(park_state& s, const char* what) {
  if (s.stop != nullptr) s.stop->observe();
  throw operation_cancelled(what, s.stop);
}

void wake_chain(wait_node* n) noexcept {
  while (n != nullptr) {
    CORIO_ASSERT(!n->linked, "peer-unlinks-first");
    wait_node* next = n->next;  // read first: the node lives in the frame being woken
    wake_parked(ticket_of(*n->owner));
    n = next;
  }
}

wait_node* claim_first(wait_list& list) noexcept {
  while (wait_node* n = list.front()) {
    list.remove(*n);
    if (n->owner->try_claim(n->case_index)) return n;
  }
  return nullptr;
}

}  // namespace detail

// --- mutex ---------------------------------------------------------------------------------

bool mutex::lock_or_enqueue(detail::wait_node& node) {
  detail::spin_guard g{lock_};
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  // Waiters are queued only while the mutex is held (an unlock hands it to the first of them).
  CORIO_ASSERT(queue_.empty() || (s & locked) != 0, "queue-head-blocked");
  for (;;) {
    if ((s & locked) == 0) {
      // Free (with nobody queued, or the queue would hold the lock): take it.
      if (state_.compare_exchange_weak(s, s | locked, std::memory_order_acquire, std::memory_order_relaxed)) return true;
      continue;
    }
    // Held: announce a waiter so that the holder's unlock takes the slow path, then queue.
    if (state_.compare_exchange_weak(s, s | waiters, std::memory_order_relaxed, std::memory_order_relaxed)) break;
  }
  return !detail::enqueue_parked(queue_, node);  // cancelled: go on (await_resume throws)
}

void mutex::unlock_slow() noexcept {
  detail::wait_node* next;
  {
    detail::spin_guard g{lock_};
    next = detail::claim_first(queue_);
    if (next == nullptr) {
      state_.store(0, std::memory_order_release);  // the waiters were cancelled
      return;
    }
    // Hand-off: the mutex stays locked and now belongs to `next`.
    state_.store(queue_.empty() ? locked : locked | waiters, std::memory_order_release);
  }
  detail::wake_parked(detail::ticket_of(*next->owner));
}

// --- shared_mutex --------------------------------------------------------------------------

bool shared_mutex::try_lock() noexcept {
  detail::spin_guard g{lock_};
  if (writer_ || readers_ != 0 || !queue_.empty()) return false;
  writer_ = true;
  return true;
}

bool shared_mutex::try_lock_shared() noexcept {
  detail::spin_guard g{lock_};
  if (writer_ || !queue_.empty()) return false;
  ++readers_;
  return true;
}

bool shared_mutex::lock_or_enqueue(detail::wait_node& node) noexcept {
  detail::spin_guard g{lock_};
  // A newcomer queues behind the head only because the head cannot take the lock now.
  CORIO_ASSERT(queue_.empty() || writer_ || (queue_.front()->amount == 1 && readers_ != 0),
               "queue-head-blocked");
  const bool exclusive = node.amount == 1;
  if (queue_.empty() && !writer_ && (!exclusive || readers_ == 0)) {
    if (exclusive) writer_ = true;
    else ++readers_;
    return true;
  }
  return !detail::enqueue_parked(queue_, node);
}

void shared_mutex::hand_off_locked(detail::wait_node*& woken) noexcept {
  // The head of the queue gets the lock: a writer alone, or every reader up to the next writer.
  // Runs after every change that can let the head proceed: an unlock, and a cancelled waiter
  // leaving the queue (sync_operation::settle), which may uncover readers that can share the lock
  // with the readers holding it (queue-head-blocked).
  while (detail::wait_node* n = queue_.front()) {
    const bool exclusive = n->amount == 1;
    if (exclusive && (writer_ || readers_ != 0)) return;
    if (!exclusive && writer_) return;
    queue_.remove(*n);
    if (!n->owner->try_claim(n->case_index)) continue;
    if (exclusive) writer_ = true;
    else ++readers_;
    n->next = woken;
    woken = n;
    if (exclusive) return;
  }
}

void shared_mutex::unlock() noexcept {
  detail::wait_node* woken = nullptr;
  {
    detail::spin_guard g{lock_};
    writer_ = false;
    hand_off_locked(woken);
  }
  detail::wake_chain(woken);
}

void shared_mutex::unlock_shared() noexcept {
  detail::wait_node* woken = nullptr;
  {
    detail::spin_guard g{lock_};
    --readers_;
    if (readers_ == 0) hand_off_locked(woken);
  }
  detail::wake_chain(woken);
}

// --- condition_variable --------------------------------------------------------------------

task<void> condition_variable::wait(mutex_guard& guard) {
  mutex* m = guard.release();
  if (m == nullptr) throw std::logic_error("corio::condition_variable::wait: the guard holds no mutex");
  // The mutex is taken back whatever ended the wait, cancellation included, before the
  // cancellation is thrown: the caller's guard always holds it again.
  std::exception_ptr cancelled;
  try {
    co_await park_operation{*this, *m};
  } catch (const operation_cancelled&) {
    cancelled = std::current_exception();
  }
  co_await mutex::lock_operation{*m, false};
  guard = mutex_guard{*m};
  if (cancelled) std::rethrow_exception(cancelled);
}

bool condition_variable::enqueue_and_unlock(detail::wait_node& node, mutex& m) noexcept {
  // Queue, then release the mutex, both under this lock: a notify (which needs this lock) comes
  // after both, and the task is not touched by anyone before the lock is released.
  detail::spin_guard g{lock_};
  const bool queued = detail::enqueue_parked(queue_, node);  // false: cancelled already
  m.unlock();
  return queued;
}

void condition_variable::notify_one() noexcept {
  detail::wait_node* n;
  {
    detail::spin_guard g{lock_};
    n = detail::claim_first(queue_);
  }
  if (n != nullptr) detail::wake_parked(detail::ticket_of(*n->owner));
}

void condition_variable::notify_all() noexcept {
  detail::wait_node* woken;
  {
    detail::spin_guard g{lock_};
    woken = detail::claim_all(queue_);
  }
  detail::wake_chain(woken);
}

// --- semaphore -----------------------------------------------------------------------------

namespace {
void check_units(std::int64_t n, const char* what) {
  if (n < 0) {
    throw std::invalid_argument(fmt::format("corio::semaphore::{}: a negative unit count ({})", what, n));
  }
}
}  // namespace

semaphore::semaphore(std::int64_t initial) : count_(initial) {
  if (initial < 0) {
    throw std::invalid_argument(fmt::format("corio::semaphore: a negative initial count ({})", initial));
  }
}

semaphore::acquire_operation semaphore::acquire(std::int64_t n) {
  check_units(n, "acquire");
  return acquire_operation{*this, n};
}

bool semaphore::try_acquire(std::int64_t n) {
  check_units(n, "try_acquire");
  return try_take(n);
}

bool semaphore::try_take(std::int64_t n) noexcept {
  if (n == 0) return true;
  detail::spin_guard g{lock_};
  if (count_ < n || !queue_.empty()) return false;
  count_ -= n;
  return true;
}

bool semaphore::acquire_or_enqueue(detail::wait_node& node) noexcept {
  detail::spin_guard g{lock_};
  // A newcomer queues behind the head only because the head needs more than is available.
  CORIO_ASSERT(queue_.empty() || queue_.front()->amount > count_, "queue-head-blocked");
  if (count_ >= node.amount && queue_.empty()) {
    count_ -= node.amount;
    return true;
  }
  return !detail::enqueue_parked(queue_, node);
}

void semaphore::hand_off_locked(detail::wait_node*& woken) noexcept {
  // FIFO, as Go's semaphore.Weighted: the head takes its units while the count covers them; the
  // waiters behind a head that needs more wait for it. Runs after a release and after a cancelled
  // waiter left the queue (sync_operation::settle), which may uncover smaller acquires that the
  // count covers (queue-head-blocked).
  while (detail::wait_node* w = queue_.front()) {
    if (w->amount > count_) return;
    queue_.remove(*w);
    if (!w->owner->try_claim(w->case_index)) continue;
    count_ -= w->amount;  // the units go to this waiter directly
    w->next = woken;
    woken = w;
  }
}

void semaphore::release(std::int64_t n) {
  check_units(n, "release");
  if (n == 0) return;
  detail::wait_node* woken = nullptr;
  {
    detail::spin_guard g{lock_};
    if (count_ > std::numeric_limits<std::int64_t>::max() - n) {
      throw std::overflow_error(
          fmt::format("corio::semaphore::release: {} units on top of {} overflow the count", n, count_));
    }
    count_ += n;
    hand_off_locked(woken);
  }
  detail::wake_chain(woken);
}

std::int64_t semaphore::available() const noexcept {
  detail::spin_guard g{lock_};
  return count_;
}

// --- event ---------------------------------------------------------------------------------

bool event::wait_or_enqueue(detail::wait_node& node) noexcept {
  detail::spin_guard g{lock_};
  if (set_.load(std::memory_order_relaxed)) return true;
  return !detail::enqueue_parked(queue_, node);
}

void event::set() noexcept {
  detail::wait_node* woken;
  {
    detail::spin_guard g{lock_};
    set_.store(true, std::memory_order_release);
    woken = detail::claim_all(queue_);
  }
  detail::wake_chain(woken);
}

void event::reset() noexcept {
  detail::spin_guard g{lock_};
  set_.store(false, std::memory_order_relaxed);
}

// --- latch ---------------------------------------------------------------------------------

latch::latch(std::int64_t count) : count_(count) {
  if (count < 0) throw std::invalid_argument(fmt::format("corio::latch: a negative count ({})", count));
}

void latch::count_down(std::int64_t n) {
  if (n < 0) {
    throw std::invalid_argument(fmt::format("corio::latch::count_down: a negative count ({})", n));
  }
  detail::wait_node* woken = nullptr;
  {
    detail::spin_guard g{lock_};
    const std::int64_t left = count_.load(std::memory_order_relaxed);
    if (n > left) {
      throw std::logic_error(
          fmt::format("corio::latch::count_down: {} is more than the count left ({})", n, left));
    }
    count_.store(left - n, std::memory_order_release);
    if (left - n == 0) woken = detail::claim_all(queue_);
  }
  detail::wake_chain(woken);
}

bool latch::wait_or_enqueue(detail::wait_node& node) noexcept {
  detail::spin_guard g{lock_};
  if (count_.load(std::memory_order_relaxed) == 0) return true;
  return !detail::enqueue_parked(queue_, node);
}

// --- wait_group ----------------------------------------------------------------------------

void wait_group::add(std::int64_t n) {
  detail::wait_node* woken = nullptr;
  {
    detail::spin_guard g{lock_};
    const std::int64_t was = count_.load(std::memory_order_relaxed);  // >= 0, so was + n >= INT64_MIN
    if (n > 0 && was > std::numeric_limits<std::int64_t>::max() - n) {
      throw std::overflow_error(
          fmt::format("corio::wait_group::add: {} on top of {} overflows the counter", n, was));
    }
    const std::int64_t now = was + n;
    if (now < 0) {
      throw std::logic_error(
          fmt::format("corio::wait_group::add: {} would take the counter ({}) below zero", n, was));
    }
    count_.store(now, std::memory_order_release);
    if (now == 0) woken = detail::claim_all(queue_);
  }
  detail::wake_chain(woken);
}

bool wait_group::wait_or_enqueue(detail::wait_node& node) noexcept {
  detail::spin_guard g{lock_};
  if (count_.load(std::memory_order_relaxed) == 0) return true;
  return !detail::enqueue_parked(queue_, node);
}

}  // namespace corio
