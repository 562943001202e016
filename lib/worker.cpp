// lib/worker.cpp - the worker loop: where a worker finds its next task (LIFO slot, private queue,
// deque, FIFO list, injection queue, steals), spinning and parking, maintenance, and the calls that
// awaiters make into the running worker (yield, the cooperation budget, I/O submission).
#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <stdexcept>

#include "corio/yield.hpp"

namespace corio::detail {

#if defined(__ELF__)
[[gnu::tls_model("initial-exec")]]
#endif
thread_local constinit worker* this_worker = nullptr;

namespace {
/// The trampoline's slot (transfer.hpp). initial-exec like this_worker: resume() reads it after
/// every resumption, in every build.
#if defined(__ELF__)
[[gnu::tls_model("initial-exec")]]
#endif
thread_local constinit std::coroutine_handle<> trampoline_next{};
}  // namespace

worker* current_worker() noexcept { return this_worker; }

void trampoline_push(std::coroutine_handle<> next) noexcept {
  CORIO_ASSERT(!trampoline_next, "one-transfer-pending");
  trampoline_next = next;
}

void resume(std::coroutine_handle<> h) noexcept {
  for (;;) {
    h.resume();
    // Empty unless the chain ran code built in trampoline mode: one thread-local load.
    h = trampoline_next;
    if (!h) return;
    trampoline_next = nullptr;
  }
}

worker& require_worker(const char* what) {
  worker* w = current_worker();
  if (w == nullptr) throw std::logic_error(fmt::format("corio: {} outside a task on a runtime", what));
  return *w;
}

std::uint64_t steady_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

namespace {
constexpr std::uint32_t max_lifo_runs = 16;  // LIFO-slot tasks in a row before the queues are served
constexpr std::uint32_t maintenance_interval = 32;  // tasks between reactor/timer polls under load
}  // namespace

worker::worker(runtime_impl& rt, unsigned index, std::uint64_t seed)
    : poll_hooks_(rt.options_.before_task_poll != nullptr || rt.options_.after_task_poll != nullptr),
      task_hooks_(rt.options_.on_task_spawn != nullptr || rt.options_.on_task_terminate != nullptr),
      any_hooks_(poll_hooks_ || task_hooks_),
      spawn_slow_(task_hooks_ || rt.options_.timing_histograms),
      rt_(rt), index_(index), ring_(rt.options_.queue_capacity), private_(rt.options_.queue_capacity),
      random_state_((seed + 0x9E3779B97F4A7C15ull * (index + 1)) | 1), full_budget_(rt.options_.budget) {
  timing_ = rt.options_.timing_histograms;
  poll_slow_ = poll_hooks_ || timing_;
}

void worker::end_poll_slow() noexcept {
  if (poll_hooks_) call_poll_hooks(nullptr);
  if (timing_) end_poll_timing();
}

void worker::end_poll_timing() noexcept {
  if (poll_started_ == 0) return;
  const std::uint64_t ns = steady_ns() - poll_started_;
  poll_started_ = 0;
  poll_time.record(ns);
}

void worker::poll_boundary() noexcept {
  end_poll_timing();
  poll_started_ = steady_ns();
}

void stamp_ready(std::coroutine_handle<> h) noexcept {
  promise_base& p = std::coroutine_handle<promise_base>::from_address(h.address()).promise();
  if (!p.has_trace_tag()) return;  // another kind of coroutine: not measured
  // 32 bits of 64 ns units: latencies up to 4.5 minutes, then they wrap. Never 0 (0: not stamped).
  const auto stamp = static_cast<std::uint32_t>(steady_ns() >> 6) | 1u;
  p.trace_word_.store(task_trace_tag | (std::uint64_t{stamp} << 32), std::memory_order_relaxed);
}

void worker::record_schedule_latency(void* frame) noexcept {
  promise_base& p = std::coroutine_handle<promise_base>::from_address(frame).promise();
  const std::uint64_t word = p.trace_word_.load(std::memory_order_relaxed);
  const auto stamp = static_cast<std::uint32_t>(word >> 32);
  if (static_cast<std::uint32_t>(word) != task_trace_tag || stamp == 0) return;
  p.trace_word_.store(task_trace_tag, std::memory_order_relaxed);
  // Modulo 2^32 units, as the stamp was taken. The stamp's low bit is forced to 1, so it may be
  // one unit ahead of a poll that starts within the same 64 ns: that one reads as 0.
  std::uint32_t units = static_cast<std::uint32_t>(poll_started_ >> 6) - stamp;
  if (units == UINT32_MAX) units = 0;
  schedule_latency.record(std::uint64_t{units} << 6);
}

std::coroutine_handle<> worker::begin_task_hooked(std::coroutine_handle<> h) noexcept {
  if (poll_hooks_) call_poll_hooks(h.address());
  begin_poll(h.address());
  budget_ = full_budget_;
  if (timing_) [[unlikely]] {
    poll_boundary();
    record_schedule_latency(h.address());
  }
  return h;
}

std::coroutine_handle<> worker::continue_poll_hooked(std::coroutine_handle<> h) noexcept {
  call_poll_hooks(h.address());
  polling_.store(h.address(), std::memory_order_release);
  return h;
}

void worker::call_poll_hooks(void* next) noexcept {
  const runtime_options& o = rt_.options_;
  if (void* prev = polling_.load(std::memory_order_relaxed); prev != nullptr && o.after_task_poll != nullptr) {
    o.after_task_poll(reinterpret_cast<std::uintptr_t>(prev), o.task_hook_data);
  }
  if (next != nullptr && o.before_task_poll != nullptr) {
    o.before_task_poll(reinterpret_cast<std::uintptr_t>(next), o.task_hook_data);
  }
}

void worker::on_ready(void* self, std::coroutine_handle<> h, std::uint32_t bound) noexcept {
  auto* w = static_cast<worker*>(self);
  w->io_completed.add();
  // In completion order on the worker that owns the ring (as an Asio io_context per thread does):
  // measured against LIFO wake-ups, http_hello's p99 latency halved and req/s rose ~15%.
  if (bound == unbound_worker) w->schedule_back(h);
  else w->deliver_bound(bound, h);
}

void worker::deliver_bound(std::uint32_t bound, std::coroutine_handle<> h) {
  if (bound == index_) {
    if (timing_) [[unlikely]] stamp_ready(h);
    fifo_.push_back(h);
    return;
  }
  rt_.workers_[bound]->post(h);
}

void worker::post(std::coroutine_handle<> h) {
  if (timing_) [[unlikely]] stamp_ready(h);  // (timing_ is the runtime's option: any thread reads it)
  bool first;
  {
    std::lock_guard lock{inbox_mutex_};
    inbox_.push_back(h);
    first = !inbox_flag_.load(std::memory_order_relaxed);
    inbox_flag_.store(true, std::memory_order_seq_cst);
  }
  // A direct wake: wakep() would wake any idle worker, and only this one may run the task. A wake
  // that arrives before the wait makes the wait return at once. Only the post that raised the flag
  // wakes: the others find the inbox not drained yet, so the wake it sent is still to come or to
  // be acted on (a burst of cancellations costs one eventfd write, not one each).
  if (first) wake_for_work();
}

void worker::wake_for_work() noexcept {
  if (!reactor_) return;
  if (rt_.manual_) rt_.claim_idle(*this);
  // From another worker of this runtime, its own ring can post the wake (IORING_OP_MSG_RING);
  // any other thread, or a reactor without it, uses the eventfd.
  if (worker* me = this_worker; me != nullptr && me != this && &me->rt_ == &rt_ && me->reactor_ &&
                                me->reactor_->wake_peer(*reactor_)) {
    return;
  }
  reactor_->wake();
}

void worker::drain_inbox() {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  std::lock_guard lock{inbox_mutex_};
  for (auto h : inbox_) fifo_.push_back(h);
  inbox_.clear();
  release_timers_locked();
  inbox_flag_.store(false, std::memory_order_seq_cst);
}

void worker::push_displaced(std::coroutine_handle<> displaced) {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  if (private_.full()) publish();  // full: its older half becomes stealable
  private_.push_back(displaced);
  if (rt_.someone_looking()) publish();
}

void worker::publish() {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  // The oldest half (at least one) of the private queue becomes stealable, oldest first, so that
  // thieves take the roots of the largest subtrees.
  std::uint32_t n = (private_.size() + 1) / 2;
  bool pushed = false;
  while (n-- > 0) {
    auto h = private_.pop_front();
    if (!h) break;
    if (!ring_.push(h)) {
      overflow_batch_.clear();
      ring_.take_half(overflow_batch_);
      overflow_batch_.push_back(h);
      overflows.add();
      rt_.inject_batch(overflow_batch_);
      continue;
    }
    pushed = true;
  }
  if (pushed) rt_.wakep(false);
}

namespace {
/// Timing on: stamps the `count` children of a when_all that end at `last` ready (before they are
/// queued; the one the caller runs at once is not queued).
[[gnu::noinline]] void stamp_children(promise_base* last, std::uint32_t count) noexcept {
  for (promise_base* p = last; count > 0; --count, p = p->spawn_.prev) stamp_ready(p->spawn_.self);
}
}  // namespace

promise_base* worker::schedule_children(promise_base* last, std::uint32_t n) noexcept {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  // Whatever held the LIFO slot is older than the children: it goes behind them.
  if (n > 1 && lifo_) {
    if (private_.full()) publish();
    private_.push_back(std::exchange(lifo_, {}));
  }
  if (timing_) [[unlikely]] stamp_children(last, n - 1);
  promise_base* p = last;
  for (std::uint32_t i = n - 1; i > 0; --i) {  // children n-1 .. 1: the second ends on top
    promise_base* prev = p->spawn_.prev;      // read before the child can be stolen and run
    p->spawn_.runtime = &rt_;
    p->spawn_.id.store(0, std::memory_order_relaxed);  // numbered if it spawns (spawn_state::id)
    if (private_.full()) publish();
    private_.push_back(p->spawn_.self);
    p = prev;
  }
  if (n > 1 && rt_.someone_looking()) publish();
  p->spawn_.runtime = &rt_;  // the first child, run now
  p->spawn_.id.store(0, std::memory_order_relaxed);
  return p;
}

promise_base* worker::claim_child(fork_group& g) noexcept {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  promise_base* c = g.next;
  if (c == nullptr || g.owner != this || private_.empty() || private_.back() != c->spawn_.self) return nullptr;
  // Maintenance (I/O, timers, the stop flag) is due: leave the rest to the loop.
  if (tick() - maintained_at_ >= maintenance_interval) return nullptr;
  (void)private_.pop_back();
  void* frame = std::coroutine_handle<>(c->spawn_.self).address();
  if (poll_hooks_) [[unlikely]] call_poll_hooks(frame);
  begin_poll(frame);
  g.next = c->spawn_.next;
  c->spawn_.home = 1;  // inline: counted off by the run, not one by one
  return c;
}

void worker::schedule_back(std::coroutine_handle<> h) {
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
  if (timing_) [[unlikely]] stamp_ready(h);
  fifo_.push_back(h);
}

void worker::maintenance() {
  if (!private_.empty() && rt_.someone_looking()) publish();
  reactor_->poll();
  fire_timers();
  drain_remote_finished();
}

std::coroutine_handle<> worker::pop_fifo() noexcept {
  return fifo_.pop_front();
}

std::coroutine_handle<> worker::next_local() {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  if (inbox_flag_.load(std::memory_order_relaxed)) drain_inbox();
  if (--fairness_countdown_ == 0) {
    fairness_countdown_ = 61;
    // Fairness: the oldest work gets a turn even while new work keeps arriving (Go, Tokio).
    if (!rt_.injection_empty()) {
      if (auto h = rt_.pop_injection(this)) {
        injections.add();
        return h;
      }
    }
    if (auto h = pop_fifo()) return h;
    // Not the oldest task of this worker's own deque: in fork-join work that is the root of the
    // largest untouched subtree, and starting it every 61 tasks runs the tree breadth-first (fib(30)
    // on one worker kept ~40,000 frames alive and overflowed into the injection queue). Old local
    // tasks are taken by thieves whenever a worker has nothing else to do.
  }
  if (lifo_ && lifo_runs_ < max_lifo_runs) {
    ++lifo_runs_;
    return std::exchange(lifo_, {});
  }
  lifo_runs_ = 0;
  if (!private_.empty()) {
    if (rt_.someone_looking()) publish();
    if (auto h = private_.pop_back()) return h;
  }
  if (auto h = ring_.pop()) return h;
  if (lifo_) return std::exchange(lifo_, {});
  if (auto h = pop_fifo()) return h;
  if (!rt_.injection_empty()) {
    if (auto h = rt_.pop_injection(this)) {
      injections.add();
      return h;
    }
  }
  return {};
}

std::coroutine_handle<> worker::steal() {
  const std::size_t n = rt_.workers_.size();
  if (n < 2) return {};
  const std::size_t start = random_u32() % n;
  for (std::size_t i = 0; i < n; ++i) {
    worker& victim = *rt_.workers_[(start + i) % n];
    if (&victim == this) continue;
    // Half of what the victim has published, rounded up (Go's runqgrab, Tokio's steal_into):
    // the oldest task to run now, the rest onto this worker's private queue, so that the next
    // tasks come without another trip to the victim. Each task is one linearizable steal; the
    // victim's top stays in this core's cache for the run.
    const std::uint32_t available = victim.ring_.size();
    if (available == 0) continue;
    auto h = victim.ring_.steal();
    if (!h) continue;
    const std::uint32_t want = std::min<std::uint32_t>(available - available / 2,
                                                       static_cast<std::uint32_t>(private_room()) + 1);
    std::uint32_t taken = 1;
    for (; taken < want; ++taken) {
      auto more = victim.ring_.steal();
      if (!more) break;
      private_.push_back(more);
    }
    steals.add(taken);
    steal_operations.add();
    return h;
  }
  return {};
}

std::coroutine_handle<> worker::next_direct() {
  // Maintenance is due: leave it to the loop (as the stop flag).
  if (tick() - maintained_at_ >= maintenance_interval || rt_.stopping_.load(std::memory_order_relaxed)) return {};
  std::coroutine_handle<> h = next_local();
  return h ? begin_task(h) : h;
}

std::coroutine_handle<> worker::next_or_noop() noexcept {
  std::coroutine_handle<> h = next_direct();
  return h ? h : std::noop_coroutine();
}

inline std::coroutine_handle<> worker::yield_next(std::coroutine_handle<> h) {
  CORIO_ASSERT(this_worker == this, "worker-owner-only");
  // Anything that makes next_local() choose differently from "front of the FIFO list", or that
  // the loop must see: the general path.
  if (tick() - maintained_at_ >= maintenance_interval || fairness_countdown_ == 1 || lifo_ ||
      !private_.empty() || inbox_flag_.load(std::memory_order_relaxed) ||
      !ring_.empty_owner() || rt_.stopping_.load(std::memory_order_relaxed)) [[unlikely]] {
    schedule_back(h);
    return next_direct();
  }
  // What next_local() would do here: count towards the fairness turn (not due), reset the LIFO
  // run (the slot is empty), take the FIFO list's front after queueing h.
  --fairness_countdown_;
  lifo_runs_ = 0;
  return begin_task(fifo_.empty() ? h : fifo_.rotate(h));
}

void worker::stop_spinning() noexcept {
  spinning_ = false;
  // The last spinner to find work wakes another, so that somebody keeps looking.
  const std::uint32_t spinners = rt_.spinning_.fetch_sub(1, std::memory_order_seq_cst);
  CORIO_ASSERT(spinners != 0, "spinners-counted");
  if (spinners == 1) rt_.wakep(true);
}

std::coroutine_handle<> worker::find_work() {
  if (auto h = next_local()) return h;
  // Completions and timers may make local work.
  if (reactor_->poll() != 0 || fire_timers() != 0) {
    if (auto h = next_local()) return h;
  }
  drain_remote_finished();
  const auto total = static_cast<std::uint32_t>(rt_.workers_.size());
  if (!spinning_ && total > 1 &&
      2 * rt_.spinning_.load(std::memory_order_seq_cst) < total - rt_.idle_count_.load(std::memory_order_seq_cst)) {
    spinning_ = true;
    rt_.spinning_.fetch_add(1, std::memory_order_seq_cst);
  }
  if (spinning_) {
    for (unsigned round = 0; round < rt_.options_.spin_limit; ++round) {
      if (auto h = steal()) return h;
      if (!rt_.injection_empty()) {
        if (auto h = rt_.pop_injection(this)) {
          injections.add();
          return h;
        }
      }
    }
  }
  park();
  return {};
}

void worker::attend() noexcept {
  if (const auto n = rt_.stop_all_requests_.load(std::memory_order_acquire); n != stop_requests_seen_) {
    stop_requests_seen_ = n;
    stop_registry();
  }
  if (const auto d = rt_.dump_requests_.load(std::memory_order_acquire); d != dump_seen_) {
    dump_seen_ = d;
    answer_dump(d);
  }
}

void worker::park() {
  const bool was_spinning = spinning_;
  if (spinning_) {
    spinning_ = false;
    [[maybe_unused]] const std::uint32_t spinners = rt_.spinning_.fetch_sub(1, std::memory_order_seq_cst);
    CORIO_ASSERT(spinners != 0, "spinners-counted");
  }
  if (rt_.manual_) {
    // Before joining the idle list (manual-clock-waits-for-work): the tasks this worker ran since
    // it last parked may have started I/O that completes on any worker, so they open a new
    // settle round, in which every worker must look at its reactor again before the time jumps;
    // this one looks now (completions land in the FIFO list, work for the check below).
    if (std::exchange(ran_since_park_, false)) rt_.settle_round_.fetch_add(1, std::memory_order_seq_cst);
    const std::uint64_t round = rt_.settle_round_.load(std::memory_order_seq_cst);
    reactor_->poll();
    polled_round_.store(round, std::memory_order_seq_cst);
    publish_deadline();
  }
  rt_.add_idle(*this);  // idle_count += 1, sequentially consistent
  sleeping_.store(true, std::memory_order_seq_cst);  // before the look at remote_finished_ below
  // Look once more at everything another thread could have handed over before it read the idle
  // list (tasks, I/O cancels for this reactor), and at this worker's own queues
  // (owner-parks-empty): find_work's last look at them came before it settled the tasks other
  // workers finished for it, and destroying one of those frames runs its parameters' destructors,
  // which may wake a task here (a guard that unlocks a corio::mutex).
  // The flags a shutdown raises before it wakes the workers are looked at here too: the reactor
  // poll in find_work may have consumed that wake already (after run() last looked at them), and
  // wait() would then sleep through it (a shutdown's stop of every task never reached this worker).
  bool work = lifo_ || !private_.empty() || !fifo_.empty() || !rt_.injection_empty() || inbox_nonempty() ||
              reactor_->cancels().pending() || remote_finished_.load(std::memory_order_seq_cst) != nullptr ||
              rt_.stopping_.load(std::memory_order_seq_cst) ||
              rt_.stop_all_epoch_.load(std::memory_order_seq_cst) != stop_all_seen_;
  for (std::size_t i = 0; !work && i < rt_.workers_.size(); ++i) work = !rt_.workers_[i]->ring_.empty();
  if (work) {
    sleeping_.store(false, std::memory_order_relaxed);
    if (rt_.remove_idle(*this)) {
      if (was_spinning) {
        spinning_ = true;
        rt_.spinning_.fetch_add(1, std::memory_order_seq_cst);
      }
    } else {
      spinning_ = true;  // a waker took us off the list and counted us as its spinner
    }
    return;
  }
  std::optional<std::chrono::nanoseconds> timeout;
  if (rt_.manual_) {
    // Paused time moves only by advance() or, once every worker is idle, to the next timer.
    if (rt_.idle_count_.load(std::memory_order_seq_cst) == rt_.workers_.size()) rt_.auto_advance();
  } else if (auto deadline = next_deadline()) {
    // At most a day: a reactor adds the wait to its own reading of the clock (Asio's
    // run_one_for), which must not overflow for a timer near the end of time.
    timeout = std::clamp(*deadline - clock::now(), std::chrono::nanoseconds{0},
                         std::chrono::nanoseconds{std::chrono::hours{24}});
  }
  parks.add();
  // Metrics: the previous wake-up was for nothing if no task ran since; the awake stretch ends.
  if (!std::exchange(ran_since_unpark_, false)) noop_unparks.add();
  const std::uint64_t slept_at = steady_ns();
  update_coarse_ms();
  busy_ns.add(slept_at - std::min(slept_at, awake_since_ns.load(std::memory_order_relaxed)));
  awake_since_ns.store(0, std::memory_order_relaxed);
  frame_flush_remote();  // frames freed here for other workers go home before this one sleeps
  CORIO_ASSERT(!lifo_ && private_.empty() && fifo_.empty() && ring_.empty_owner(), "owner-parks-empty");
  reactor_->wait(timeout);
  awake_since_ns.store(steady_ns(), std::memory_order_relaxed);
  update_coarse_ms();
  unparks.add();
  sleeping_.store(false, std::memory_order_relaxed);
  // Woken by a completion, a timer or the stop flag: leave the idle list ourselves. Otherwise a
  // waker did, and made us the spinner.
  if (!rt_.remove_idle(*this)) spinning_ = true;
}

void worker::run() noexcept {
  this_worker = this;
  try {
    reactor_ = make_reactor(rt_.backend_, rt_.options_.ring_entries, completion_sink{&worker::on_ready, this},
                            reactor_fallback_, rt_.options_.sqpoll_idle, rt_.options_.send_zc_threshold);
    reactor_->cancels().set_waker({[](void* self) noexcept { static_cast<worker*>(self)->wake_for_work(); }, this});
    reactor_->set_counters(reactor_counts);
    reactor_name_ = reactor_->name();
    reactor_features_ = reactor_->features();
  } catch (...) {
    this_worker = nullptr;
    rt_.worker_started(std::current_exception());
    return;
  }
  awake_since_ns.store(steady_ns(), std::memory_order_relaxed);
  rt_.worker_started(nullptr);

  while (!rt_.stopping_.load(std::memory_order_acquire)) {
    if (const auto epoch = rt_.stop_all_epoch_.load(std::memory_order_acquire); epoch != stop_all_seen_) [[unlikely]] {
      stop_all_seen_ = epoch;
      attend();
    }
    std::coroutine_handle<> h = find_work();
    if (!h) continue;
    if (spinning_) stop_spinning();  // found work: the last spinner to do so wakes another
    ran_since_park_ = true;
    ran_since_unpark_ = true;
    begin_task(h);
    resume(h);  // may run several tasks: see next_direct()
    end_poll();
    set_current_stop(nullptr);  // no task runs on this thread until the next resume
    if (tick() - maintained_at_ >= maintenance_interval) {  // keep I/O and timers flowing under load
      maintained_at_ = tick();
      maintenance();
    }
  }
  if (spinning_) {
    spinning_ = false;
    rt_.spinning_.fetch_sub(1, std::memory_order_seq_cst);
  }
  const std::uint64_t stopped_at = steady_ns();  // the last awake stretch counts as busy
  busy_ns.add(stopped_at - std::min(stopped_at, awake_since_ns.load(std::memory_order_relaxed)));
  awake_since_ns.store(0, std::memory_order_relaxed);
  reactor_->drain();
  this_worker = nullptr;
}

std::coroutine_handle<> next_after_park() noexcept {
  worker* w = this_worker;
  return w != nullptr ? w->next_or_noop() : std::noop_coroutine();
}

void schedule_yield(std::coroutine_handle<> h) noexcept {
  worker* w = current_worker();
  assert(w != nullptr && "corio::yield outside a task on a runtime");
  w->schedule_back(h);
}

std::coroutine_handle<> yield_next(std::coroutine_handle<> h) noexcept {
  worker* w = current_worker();
  assert(w != nullptr && "corio::yield outside a task on a runtime");
  std::coroutine_handle<> next = w->yield_next(h);
  return next ? next : std::noop_coroutine();
}

bool coop_spend() noexcept {
  worker* w = current_worker();
  if (w == nullptr) return true;
  if (w->budget_ == 0) {
    w->budget_yields.add();
    return false;
  }
  --w->budget_;
  return true;
}

std::optional<unsigned> current_worker_index(const runtime_impl* rt) noexcept {
  worker* w = current_worker();
  if (w == nullptr || (rt != nullptr && &w->runtime() != rt)) return std::nullopt;
  return w->index();
}

void submit_io(io_request& request) {
  worker& w = require_worker("corio I/O");
  w.reactor_->submit(request);
  w.io_submitted.add();
}

void io_operation::throw_error(std::error_code code, const char* what) {
  throw std::system_error(code, what);
}

}  // namespace corio::detail
