// lib/park.cpp - parking a task and waking it (corio/detail/park.hpp): the wake-up, the park
// state's canceller, a parked operation's timer, select's random numbers.
#include "runtime_impl.hpp"

#include <stdexcept>

namespace corio::detail {

namespace {
/// wake_parked() from a thread that is not a worker of the task's runtime.
[[gnu::noinline]] void wake_from_outside(const wake_ticket& t) noexcept {
  // Any other thread: only while the runtime has not stopped its workers (runtime_gate).
  runtime_impl* rt = t.gate->enter(t.generation);
  if (rt == nullptr) return;  // shut down: the runtime destroys the task's frame
  if (t.wake_on != unbound_worker) rt->workers_[t.wake_on]->post(t.task);
  else {
    if (rt->options_.timing_histograms) [[unlikely]] stamp_ready(t.task);
    rt->inject(t.task);
  }
  t.gate->leave();
}

/// wake_parked() on a worker of the task's runtime, off its fast path: a bound task, or timing
/// histograms on (the task is stamped ready first). Out of line, so that the fast path saves no
/// register around a call.
[[gnu::noinline]] void wake_here_slow(worker& w, const wake_ticket& t) noexcept {
  if (t.wake_on != unbound_worker) {
    w.deliver_bound(t.wake_on, t.task);  // (stamps the task itself when timing is on)
    return;
  }
  stamp_ready(t.task);
  w.local_schedules.add();
  w.schedule_local(t.task);
}
}  // namespace

void wake_parked(const wake_ticket& t) noexcept {
  worker* w = this_worker;
  if (w != nullptr && w->runtime().gate_.gate == t.gate) [[likely]] {
    // A worker of the task's runtime (which is therefore running, and the ticket's generation).
    if (t.wake_on == unbound_worker && !w->timing_) [[likely]] {
      w->local_schedules.add();  // metrics: a wake-up into the LIFO slot (spawns count in `spawns`)
      w->schedule_local(t.task);  // runs next here (Go's ready() into runnext)
      return;
    }
    wake_here_slow(*w, t);
    return;
  }
  wake_from_outside(t);
}

void wake_parked_in_order(const wake_ticket& t) noexcept {
  worker* w = this_worker;
  if (w != nullptr && w->runtime().gate_.gate == t.gate && t.wake_on == unbound_worker) [[likely]] {
    // In completion order, as worker::on_ready queues a one-shot receive's task (its comment
    // says what the LIFO wake cost http_hello).
    w->io_completed.add();
    w->schedule_back(t.task);
    return;
  }
  wake_parked(t);
}

void prepare_park(park_state& s, std::coroutine_handle<> task, std::uint32_t bound, spin_lock* lock,
                  stop_state* stop) {
  worker* w = this_worker;
  if (w == nullptr) throw std::logic_error("corio: a channel, select or lock wait outside a task on a runtime");
  s.task = task;
  s.gate = w->runtime().gate_.gate;
  s.generation = w->runtime().gate_.generation;
  s.wake_on = bound;
  s.park_worker = w->index();
  s.lock = lock;
  s.stop = stop;
}

void cancel_park(stop_canceller& c) noexcept {
  auto& s = static_cast<park_state&>(c);
  bool won;
  if (s.solo) {
    spin_guard g{*s.lock};
    won = s.try_claim(park_state::cancelled);
  } else {
    won = s.try_claim(park_state::cancelled);
  }
  if (won) wake_parked(wake_ticket{s.task, s.gate, s.generation, s.park_worker});
}

void refuse_park(park_state& s) noexcept {
  CORIO_ASSERT(s.claim.load(std::memory_order_relaxed) == park_state::waiting, "refusal-is-private");
  s.claim.store(park_state::cancelled, std::memory_order_relaxed);  // nobody else can see it yet
}

void park_timer::arm(park_state& s) {
  worker* w = this_worker;
  if (w == nullptr) throw std::logic_error("corio: a timed wait outside a task on a runtime");
  CORIO_ASSERT(!s.solo, "solo-claim-under-lock");  // a timer claims without any list's lock
  state = &s;
  s.wake_on = w->index();  // a peer's wake brings the task back here, where disarm() runs
  w->add_park_timer(*this);
}

void park_timer::disarm() noexcept {
  if (!entry.inserted()) return;
  worker* w = this_worker;
  CORIO_ASSERT(w != nullptr && w->index() == state->wake_on, "park-timer-on-its-worker");
  w->cancel_park_timer(*this);
}

std::uint32_t random_u32() noexcept {
  if (worker* w = this_worker) return w->random_u32();
  thread_local std::uint64_t state = 0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(&state);
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return static_cast<std::uint32_t>(state >> 32);
}

}  // namespace corio::detail
