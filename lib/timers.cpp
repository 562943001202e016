// lib/timers.cpp - each worker's timer wheel: parked operations' timeouts (park_timer), timeout()'s
// timers (timeout_timer, which any thread may let go of), firing them, the next deadline.
#include "runtime_impl.hpp"

#include <thread>

namespace corio::detail {

void worker::release_timers_locked() noexcept {
  for (timeout_timer* t : timer_releases_) {
    remove_timeout_timer(*t);
    free_timeout_timer(t);
  }
  timer_releases_.clear();
}

namespace {
/// A timeout's timer comes from the frame allocator's per-thread cache (any thread may free it: a
/// free away from home goes back to its home in a batch), not from malloc.
timeout_timer* allocate_timeout_timer() {
  return ::new (frame_allocate(sizeof(timeout_timer))) timeout_timer;
}
}  // namespace

void free_timeout_timer(timeout_timer* t) noexcept {
  CORIO_ASSERT(!t->entry.inserted(), "timer-entry-outlives-insertion");
  t->~timeout_timer();
  frame_deallocate(t, sizeof(timeout_timer));
}

void worker::post_timer_release(timeout_timer* t) {
  {
    std::lock_guard lock{inbox_mutex_};
    timer_releases_.push_back(t);
    inbox_flag_.store(true, std::memory_order_seq_cst);
  }
  wake_for_work();
}

void worker::drain_timers() noexcept {
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
  wheel_.drain([](timer_entry&) noexcept {});
  timers_pending.value.store(wheel_.size(), std::memory_order_relaxed);
}

void worker::drain_timer_releases() noexcept {
  std::lock_guard lock{inbox_mutex_};
  release_timers_locked();
}

void worker::insert_timer(timer_entry& e, void* owner, std::uintptr_t tag, clock::time_point deadline) {
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
  const std::uint64_t tick = rt_.ticks_ceil(deadline);
  // A deadline after the end of time (time_point::max(), a saturated duration) never comes: no
  // timer, so that it neither bounds a reactor wait nor makes the manual clock jump. The entry
  // stays not inserted, and removing it is a no-op.
  if (tick > rt_.end_tick_) return;
  e.context = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(owner) | tag);  // see fire_timers
  e.deadline_tick = tick;
  wheel_.insert(e);
  timers_pending.value.store(wheel_.size(), std::memory_order_relaxed);
  if (rt_.manual_) publish_deadline();
}

void worker::remove_timer(timer_entry& e) noexcept {
  if (!e.inserted()) return;
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
  wheel_.cancel(e);
  timers_pending.value.store(wheel_.size(), std::memory_order_relaxed);
  if (rt_.manual_) publish_deadline();
}

void worker::add_timeout_timer(timeout_timer& t, clock::time_point deadline) { insert_timer(t.entry, &t, 2, deadline); }

void worker::remove_timeout_timer(timeout_timer& t) noexcept { remove_timer(t.entry); }

void worker::add_park_timer(park_timer& t) {
  insert_timer(t.entry, &t, 1, clock::time_point{clock::duration{t.deadline_ns}});
}

void worker::cancel_park_timer(park_timer& t) noexcept { remove_timer(t.entry); }

void worker::publish_deadline() noexcept {
  // A cancelled I/O operation whose completion is still to come is work about to run: publish a
  // tick that is never in the future, so that no auto_advance() jumps past it.
  const auto next = wheel_.next_deadline();
  const bool cancel_pending =
      reactor_ && (reactor_->cancels().pending() || reactor_->cancels().outstanding() != 0);
  published_deadline_.store(cancel_pending ? 0 : next ? *next : ~std::uint64_t{0}, std::memory_order_seq_cst);
}

std::size_t worker::fire_timers() {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  if (wheel_.empty()) return 0;
  const std::uint64_t now_tick = rt_.ticks_floor(rt_.now());
  if (const auto next = wheel_.next_deadline(); !next || *next > now_tick) return 0;
  // In deadline order, onto the FIFO list; each node is in a frame that is published by this and
  // not touched again.
  const std::size_t fired = wheel_.advance(now_tick, [this, now_tick](timer_entry& e) {
    CORIO_ASSERT(e.deadline_tick <= now_tick, "timer-never-early");
    (void)now_tick;  // captured for the check alone (NDEBUG builds compile it out)
    const auto bits = reinterpret_cast<std::uintptr_t>(e.context);
    if ((bits & 2) != 0) {
      // A timeout's timer: stop its scope, unless the awaiter let go of it already.
      auto& t = *reinterpret_cast<timeout_timer*>(bits & ~std::uintptr_t{3});
      std::uint32_t expected = timeout_timer::armed;
      if (t.state.compare_exchange_strong(expected, timeout_timer::firing, std::memory_order_acq_rel)) {
        t.scope->request_stop();
        t.state.store(timeout_timer::fired, std::memory_order_release);  // the last touch
      }
      return;
    }
    // A parked operation's timeout (a sleep's too): resume the task only if it ended the wait.
    park_state& state = *reinterpret_cast<park_timer*>(bits & ~std::uintptr_t{1})->state;
    if (state.try_claim(park_state::timed_out)) schedule_back(state.task);
  });
  timers_fired.add(fired);
  timers_pending.value.store(wheel_.size(), std::memory_order_relaxed);
  if (rt_.manual_) publish_deadline();
  return fired;
}

std::optional<clock::time_point> worker::next_deadline() const {
  const auto next = wheel_.next_deadline();
  if (!next) return std::nullopt;
  return rt_.tick_time(*next);
}

timeout_timer* arm_timeout_timer(stop_state& scope, clock::time_point deadline) {
  worker& w = require_worker("corio::timeout");
  timeout_timer* t = allocate_timeout_timer();
  t->scope = &scope;
  t->owner = &w;
  w.add_timeout_timer(*t, deadline);
  return t;
}

bool release_timeout_timer(timeout_timer* t) noexcept {
  auto* owner = static_cast<worker*>(t->owner);
  worker* w = this_worker;
  if (w == owner || w == nullptr) {
    // On its own worker (a firing would have run on this thread), or after the workers stopped.
    const bool fired = t->state.load(std::memory_order_acquire) == timeout_timer::fired;
    owner->remove_timeout_timer(*t);
    free_timeout_timer(t);
    return fired;
  }
  std::uint32_t expected = timeout_timer::armed;
  if (t->state.compare_exchange_strong(expected, timeout_timer::abandoned, std::memory_order_acq_rel)) {
    owner->post_timer_release(t);  // it never fires now; its worker frees it
    return false;
  }
  // Firing or fired on its worker: wait for the firing to let go, then it is ours to free.
  while (t->state.load(std::memory_order_acquire) != timeout_timer::fired) std::this_thread::yield();
  free_timeout_timer(t);
  return true;
}

}  // namespace corio::detail
