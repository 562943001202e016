// lib/runtime.cpp - workers, scheduling, parking, spawn/join, shutdown (see runtime_impl.hpp).
#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <stdexcept>
#include <typeinfo>
#include <random>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#include "corio/errors.hpp"
#include "corio/when_all.hpp"
#include "corio/yield.hpp"

namespace corio::detail {

// --- thread-locals, reached only through these out-of-line functions (llvm #47179) -----------

#if defined(__ELF__)
[[gnu::tls_model("initial-exec")]]
#endif
thread_local constinit worker* this_worker = nullptr;

namespace {
thread_local std::coroutine_handle<> trampoline_next{};
}  // namespace

worker* current_worker() noexcept { return this_worker; }

bool is_cancellation(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const operation_cancelled&) {
    return true;
  } catch (...) {
    return false;
  }
}


#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
// Referenced only by name from inline asm (stop_state.hpp): `used` and `externally_visible` keep
// link-time optimization from dropping or renaming it (an LTO build failed to link without).
[[gnu::tls_model("initial-exec"), gnu::used, gnu::externally_visible]] thread_local constinit stop_state* tls_current_stop =
    nullptr;
#else
namespace {
thread_local constinit stop_state* tls_current_stop = nullptr;
}
stop_state* current_stop() noexcept { return tls_current_stop; }
void set_current_stop(stop_state* s) noexcept { tls_current_stop = s; }
#endif

// --- stop states ------------------------------------------------------------------------------

bool stop_state::request_stop() noexcept {
  std::uintptr_t old = word_.load(std::memory_order_relaxed);
  std::uintptr_t desired;
  do {
    if ((old & requested_bit) != 0) return false;
    desired = requested_bit | (old != 0 ? busy_bit : 0);
  } while (!word_.compare_exchange_weak(old, desired, std::memory_order_acq_rel, std::memory_order_relaxed));
  if (old != 0) {
    auto* c = reinterpret_cast<stop_canceller*>(old);
    c->cancel(*c);
    // The last touch: once busy is clear, the task may disarm and free both `c` and this state.
    word_.fetch_and(~busy_bit, std::memory_order_release);
  }
  return true;
}

void stop_state::wait_not_busy() noexcept {
  for (unsigned spins = 0; (word_.load(std::memory_order_acquire) & busy_bit) != 0; ++spins) {
    if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();  // the canceller's thread was preempted
    }
  }
}

void stop_state::stop_late_child(stop_state& child) noexcept { child.request_stop(); }

void stop_state::propagate() noexcept {
  flush();
  for (stop_state* c = first_child_; c != nullptr; c = c->next_sibling_) {
    if (!c->detached()) c->request_stop();
  }
}

void stop_state::splice_children_into(stop_state& to) noexcept {
  flush();
  while (stop_state* c = first_child_) {
    unlink_child(*c);
    to.link_child(*c);
  }
}

void stop_state::release_children() noexcept {
  flush();
  while (stop_state* c = first_child_) {
    unlink_child(*c);
    promise_base& child = *c->task_;
    const std::uint32_t old = child.spawn_.state.fetch_and(~state_parented, std::memory_order_acq_rel);
    if ((old & state_alive) == state_parented) destroy_spawned(child);
  }
}

void trampoline_push(std::coroutine_handle<> next) noexcept {
  assert(!trampoline_next && "corio: two transfers pending on one thread");
  trampoline_next = next;
}

std::coroutine_handle<> trampoline_take() noexcept { return std::exchange(trampoline_next, {}); }

worker& require_worker(const char* what) {
  worker* w = current_worker();
  if (w == nullptr) throw std::logic_error(fmt::format("corio: {} outside a task on a runtime", what));
  return *w;
}

// --- worker ---------------------------------------------------------------------------------

worker::worker(runtime_impl& rt, unsigned index, std::uint64_t seed)
    : rt_(rt), index_(index), ring_(rt.options_.queue_capacity), private_(rt.options_.queue_capacity),
      random_state_((seed + 0x9E3779B97F4A7C15ull * (index + 1)) | 1), full_budget_(rt.options_.budget) {}

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
    fifo_.push_back(h);
    return;
  }
  rt_.workers_[bound]->post(h);
}

void worker::post(std::coroutine_handle<> h) {
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
  if (first && reactor_) {
    if (rt_.manual_) rt_.claim_idle(*this);
    reactor_->wake();
  }
}

void worker::drain_inbox() {
  std::lock_guard lock{inbox_mutex_};
  for (auto h : inbox_) fifo_.push_back(h);
  inbox_.clear();
  release_timers_locked();
  inbox_flag_.store(false, std::memory_order_seq_cst);
}

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
  t->~timeout_timer();
  frame_deallocate(t, sizeof(timeout_timer));
}

void worker::post_timer_release(timeout_timer* t) {
  {
    std::lock_guard lock{inbox_mutex_};
    timer_releases_.push_back(t);
    inbox_flag_.store(true, std::memory_order_seq_cst);
  }
  if (reactor_) {
    if (rt_.manual_) rt_.claim_idle(*this);
    reactor_->wake();
  }
}

void worker::drain_timer_releases() noexcept {
  std::lock_guard lock{inbox_mutex_};
  release_timers_locked();
}

void worker::insert_timer(timer_entry& e, void* owner, std::uintptr_t tag, clock::time_point deadline) {
  e.context = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(owner) | tag);  // see fire_timers
  e.deadline_tick = rt_.ticks_ceil(deadline);
  wheel_.insert(e);
  if (rt_.manual_) publish_deadline();
}

void worker::remove_timer(timer_entry& e) noexcept {
  if (!e.inserted()) return;
  wheel_.cancel(e);
  if (rt_.manual_) publish_deadline();
}

void worker::add_timeout_timer(timeout_timer& t, clock::time_point deadline) { insert_timer(t.entry, &t, 2, deadline); }

void worker::remove_timeout_timer(timeout_timer& t) noexcept { remove_timer(t.entry); }

void worker::push_displaced(std::coroutine_handle<> displaced) {
  if (private_.full()) publish();  // full: its older half becomes stealable
  private_.push_back(displaced);
  if (rt_.someone_looking()) publish();
}

void worker::publish() {
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
      rt_.inject_batch(overflow_batch_);
      continue;
    }
    pushed = true;
  }
  if (pushed) rt_.wakep(false);
}

promise_base* worker::schedule_children(promise_base* last, std::uint32_t n) noexcept {
  // Whatever held the LIFO slot is older than the children: it goes behind them.
  if (n > 1 && lifo_) {
    if (private_.full()) publish();
    private_.push_back(std::exchange(lifo_, {}));
  }
  promise_base* p = last;
  for (std::uint32_t i = n - 1; i > 0; --i) {  // children n-1 .. 1: the second ends on top
    promise_base* prev = p->spawn_.prev;      // read before the child can be stolen and run
    p->spawn_.runtime = &rt_;
    if (private_.full()) publish();
    private_.push_back(p->spawn_.self);
    p = prev;
  }
  if (n > 1 && rt_.someone_looking()) publish();
  p->spawn_.runtime = &rt_;  // the first child, run now
  return p;
}

promise_base* worker::claim_child(fork_group& g) noexcept {
  promise_base* c = g.next;
  if (c == nullptr || g.owner != this || private_.empty() || private_.back() != c->spawn_.self) return nullptr;
  // Maintenance (I/O, timers, the stop flag) is due: leave the rest to the loop.
  if (tick() - maintained_at_ >= maintenance_interval) return nullptr;
  (void)private_.pop_back();
  count_tick();
  g.next = c->spawn_.next;
  c->spawn_.home = 1;  // inline: counted off by the run, not one by one
  return c;
}

void worker::schedule_back(std::coroutine_handle<> h) { fifo_.push_back(h); }

void worker::insert_registered(promise_base& p) noexcept {
  p.spawn_.prev = nullptr;
  p.spawn_.next = registry_head_;
  if (registry_head_ != nullptr) registry_head_->spawn_.prev = &p;
  registry_head_ = &p;
}


void worker::push_remote_finished(promise_base& p) noexcept {
  promise_base* head = remote_finished_.load(std::memory_order_relaxed);
  do {
    p.spawn_.remote_next = head;
  } while (!remote_finished_.compare_exchange_weak(head, &p, std::memory_order_release,
                                                   std::memory_order_relaxed));
}

void worker::adopt(promise_base& p) noexcept {
  promise_base* head = adopted_.load(std::memory_order_relaxed);
  do {
    p.spawn_.next = head;
  } while (!adopted_.compare_exchange_weak(head, &p, std::memory_order_release, std::memory_order_relaxed));
}

void worker::drain_adopted() noexcept {
  if (adopted_.load(std::memory_order_relaxed) == nullptr) return;
  promise_base* p = adopted_.exchange(nullptr, std::memory_order_acquire);
  while (p != nullptr) {
    promise_base* next = p->spawn_.next;  // read before insert_registered() reuses the field
    insert_registered(*p);  // straight into the list: counted by foreign_spawned_ already
    p = next;
  }
}

void worker::stop_registry() noexcept {
  drain_adopted();
  flush_registry();
  for (promise_base* p = registry_head_; p != nullptr; p = p->spawn_.next) {
    if ((p->spawn_.state.load(std::memory_order_acquire) & state_running) != 0) p->spawn_.stop.request_stop();
  }
}

void worker::drain_remote_finished() noexcept {
  if (remote_finished_.load(std::memory_order_relaxed) == nullptr) return;
  promise_base* p = remote_finished_.exchange(nullptr, std::memory_order_acquire);
  drain_adopted();  // a task adopted here may be among them: link before unlinking
  while (p != nullptr) {
    promise_base* next = p->spawn_.remote_next;
    unlink_finished_elsewhere(*p);
    // state_linked is set until this line: subtracting it clears it with a plain `lock xadd`
    // instead of a compare-exchange loop (the same for every bit cleared or set below).
    const std::uint32_t old = p->spawn_.state.fetch_sub(state_linked, std::memory_order_acq_rel);
    if ((old & state_alive & ~state_linked) == 0) destroy_spawned(*p);
    p = next;
  }
}

void worker::add_park_timer(park_timer& t) {
  insert_timer(t.entry, &t, 1, clock::time_point{clock::duration{t.deadline_ns}});
}

void worker::cancel_park_timer(park_timer& t) noexcept { remove_timer(t.entry); }

void worker::publish_deadline() noexcept {
  const auto next = wheel_.next_deadline();
  published_deadline_.store(next ? *next : ~std::uint64_t{0}, std::memory_order_seq_cst);
}

std::size_t worker::fire_timers() {
  if (wheel_.empty()) return 0;
  const std::uint64_t now_tick = rt_.ticks_floor(rt_.now());
  if (const auto next = wheel_.next_deadline(); !next || *next > now_tick) return 0;
  // In deadline order, onto the FIFO list; each node is in a frame that is published by this and
  // not touched again.
  const std::size_t fired = wheel_.advance(now_tick, [this](timer_entry& e) {
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
  if (rt_.manual_) publish_deadline();
  return fired;
}

std::optional<clock::time_point> worker::next_deadline() const {
  const auto next = wheel_.next_deadline();
  if (!next) return std::nullopt;
  return rt_.tick_time(*next);
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
    return h;
  }
  return {};
}

std::coroutine_handle<> worker::next_direct() {
  // Maintenance is due: leave it to the loop (as the stop flag).
  if (tick() - maintained_at_ >= maintenance_interval || rt_.stopping_.load(std::memory_order_relaxed)) return {};
  std::coroutine_handle<> h = next_local();
  if (h) begin_task();
  return h;
}

std::coroutine_handle<> worker::next_or_noop() noexcept {
  std::coroutine_handle<> h = next_direct();
  return h ? h : std::noop_coroutine();
}

inline std::coroutine_handle<> worker::yield_next(std::coroutine_handle<> h) {
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
  begin_task();
  return fifo_.empty() ? h : fifo_.rotate(h);
}

void worker::stop_spinning() noexcept {
  spinning_ = false;
  // The last spinner to find work wakes another, so that somebody keeps looking.
  if (rt_.spinning_.fetch_sub(1, std::memory_order_seq_cst) == 1) rt_.wakep(true);
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

void worker::park() {
  const bool was_spinning = spinning_;
  if (spinning_) {
    spinning_ = false;
    rt_.spinning_.fetch_sub(1, std::memory_order_seq_cst);
  }
  rt_.add_idle(*this);  // idle_count += 1, sequentially consistent
  // Look once more at everything another worker could have pushed before it read idle_count.
  bool work = !rt_.injection_empty() || inbox_nonempty() || rt_.stopping_.load(std::memory_order_seq_cst);
  for (std::size_t i = 0; !work && i < rt_.workers_.size(); ++i) work = !rt_.workers_[i]->ring_.empty();
  if (work) {
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
    timeout = std::max(std::chrono::nanoseconds{0}, *deadline - clock::now());
  }
  parks.add();
  frame_flush_remote();  // frames freed here for other workers go home before this one sleeps
  reactor_->wait(timeout);
  // Woken by a completion, a timer or the stop flag: leave the idle list ourselves. Otherwise a
  // waker did, and made us the spinner.
  if (!rt_.remove_idle(*this)) spinning_ = true;
}

void worker::run() noexcept {
  this_worker = this;
  try {
    reactor_ = make_reactor(rt_.backend_, rt_.options_.ring_entries, completion_sink{&worker::on_ready, this},
                            reactor_fallback_);
    reactor_name_ = reactor_->name();
    reactor_features_ = reactor_->features();
  } catch (...) {
    this_worker = nullptr;
    rt_.worker_started(std::current_exception());
    return;
  }
  rt_.worker_started(nullptr);

  while (!rt_.stopping_.load(std::memory_order_acquire)) {
    if (const auto epoch = rt_.stop_all_epoch_.load(std::memory_order_acquire); epoch != stop_all_seen_) [[unlikely]] {
      stop_all_seen_ = epoch;
      stop_registry();
    }
    std::coroutine_handle<> h = find_work();
    if (!h) continue;
    if (spinning_) stop_spinning();  // found work: the last spinner to do so wakes another
    begin_task();
    resume(h);  // may run several tasks: see next_direct()
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
  reactor_->drain();
  this_worker = nullptr;
}

// --- runtime_impl ---------------------------------------------------------------------------

runtime_impl::runtime_impl(runtime_options options) : options_(std::move(options)) {
  unsigned n = options_.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  options_.workers = n;
  if (options_.seed == 0) options_.seed = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  if (options_.spin_limit == 0) options_.spin_limit = 1;
  manual_ = options_.clock == clock_source::manual;
  backend_ = choose_backend(options_.backend);
  workers_.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<worker>(*this, i, options_.seed));
  idle_.reserve(n);

  unsigned launched = 0;
  try {
    for (auto& w : workers_) {
      w->thread_ = std::thread(&worker::run, w.get());
      ++launched;
    }
  } catch (...) {
    start_error_ = std::current_exception();
  }
  {
    std::unique_lock lock{start_mutex_};
    start_cv_.wait(lock, [&] { return started_ == launched; });
  }
  if (start_error_) {
    stop_and_destroy();
    std::rethrow_exception(start_error_);
  }
#if defined(__linux__)
  if (options_.pin_workers) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (::sched_getaffinity(0, sizeof allowed, &allowed) == 0) {
      std::vector<int> cpus;
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
      }
      for (std::size_t i = 0; i < workers_.size() && !cpus.empty(); ++i) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[i % cpus.size()], &one);
        ::pthread_setaffinity_np(workers_[i]->thread_.native_handle(), sizeof one, &one);
      }
    }
  }
#endif  // elsewhere pin_workers is accepted and the workers run unpinned (documented)
}

runtime_impl::~runtime_impl() { shutdown(clock::duration::zero()); }

void runtime_impl::worker_started(std::exception_ptr error) noexcept {
  std::lock_guard lock{start_mutex_};
  if (error && !start_error_) start_error_ = error;
  ++started_;
  start_cv_.notify_all();
}

void runtime_impl::inject(std::coroutine_handle<> h) {
  {
    std::lock_guard lock{injection_mutex_};
    injection_.push_back(h);
    injection_size_.store(injection_.size(), std::memory_order_seq_cst);
  }
  wakep(true);
}

void runtime_impl::inject_batch(std::vector<std::coroutine_handle<>>& batch) {
  {
    std::lock_guard lock{injection_mutex_};
    injection_.insert(injection_.end(), batch.begin(), batch.end());
    injection_size_.store(injection_.size(), std::memory_order_seq_cst);
  }
  batch.clear();
  wakep(true);
}

std::coroutine_handle<> runtime_impl::pop_injection(worker* into) {
  // Go's globrunqget: take a fair share in one lock (the queue over the workers, bounded by half
  // the private queue), keep one to run and queue the rest locally, so that a stream of foreign
  // spawns costs one lock per batch rather than one per task on the taking side.
  std::lock_guard lock{injection_mutex_};
  if (injection_.empty()) return {};
  auto h = injection_.front();
  injection_.pop_front();
  if (into != nullptr) {
    std::size_t extra = std::min<std::size_t>(injection_.size() / workers_.size(), into->private_room());
    extra = std::min<std::size_t>(extra, 64);
    while (extra-- > 0) {
      into->take_injected(injection_.front());
      injection_.pop_front();
    }
  }
  injection_size_.store(injection_.size(), std::memory_order_seq_cst);
  return h;
}

void runtime_impl::wakep(bool fenced) noexcept {
  if (fenced) std::atomic_thread_fence(std::memory_order_seq_cst);
  if (idle_count_.load(std::memory_order_seq_cst) == 0) return;
  if (spinning_.load(std::memory_order_seq_cst) != 0) return;
  std::uint32_t expected = 0;
  if (!spinning_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  worker* w = nullptr;
  {
    std::lock_guard lock{idle_mutex_};
    if (!idle_.empty()) {
      w = idle_.back();
      idle_.pop_back();
      idle_count_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  if (w == nullptr) {
    spinning_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  if (worker* self = current_worker(); self != nullptr && &self->runtime() == this) self->wakes.add();
  w->reactor_->wake();  // w now counts as the spinner
}

void runtime_impl::advance_to(clock::time_point target) noexcept {
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(target - origin_).count();
  std::int64_t cur = manual_ns_.load(std::memory_order_acquire);
  while (cur < ns && !manual_ns_.compare_exchange_weak(cur, ns, std::memory_order_acq_rel)) {
  }
  for (auto& w : workers_) {
    if (w->reactor_) w->reactor_->wake();
  }
}

void runtime_impl::auto_advance() noexcept {
  std::uint64_t earliest = ~std::uint64_t{0};
  for (auto& w : workers_) earliest = std::min(earliest, w->published_deadline_.load(std::memory_order_seq_cst));
  if (earliest == ~std::uint64_t{0}) return;  // no timer anywhere: time stays
  // The caller saw every worker idle before it read the deadlines. A worker woken since then (by
  // an earlier jump) may have fired its due timers and published its next deadline while the
  // tasks it woke still wait in its FIFO list: jumping to that deadline would run them late. Such
  // a worker left the idle list before it published (both sequentially consistent), so counting
  // again after the reads tells: then that worker makes the next jump when it parks.
  if (idle_count_.load(std::memory_order_seq_cst) != workers_.size()) return;
  const auto target = tick_time(earliest);
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(target - origin_).count();
  std::int64_t cur = manual_ns_.load(std::memory_order_acquire);
  while (cur < ns && !manual_ns_.compare_exchange_weak(cur, ns, std::memory_order_acq_rel)) {
  }
  // Wake every worker: each fires what is due on its wheel and publishes its next deadline, and
  // the last one to park again makes the next jump.
  for (auto& w : workers_) {
    if (w->reactor_) w->reactor_->wake();
  }
}

void runtime_impl::add_idle(worker& w) {
  std::lock_guard lock{idle_mutex_};
  idle_.push_back(&w);
  idle_count_.fetch_add(1, std::memory_order_seq_cst);
}

void runtime_impl::claim_idle(worker& w) {
  if (remove_idle(w)) spinning_.fetch_add(1, std::memory_order_seq_cst);  // w now counts as a spinner
}

bool runtime_impl::remove_idle(worker& w) {
  std::lock_guard lock{idle_mutex_};
  auto it = std::find(idle_.begin(), idle_.end(), &w);
  if (it == idle_.end()) return false;
  idle_.erase(it);
  idle_count_.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

void runtime_impl::report_unhandled(std::exception_ptr e) noexcept {
  // A task that ended because it was cancelled did what was asked of it: nothing to report.
  if (is_cancellation(e)) return;
  if (options_.unhandled_exception) {
    try {
      options_.unhandled_exception(e);
    } catch (...) {
      fmt::print(stderr, "corio: the unhandled_exception handler threw; ignored\n");
    }
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    fmt::print(stderr, "corio: a detached task ended with an exception ({}): {}\n", typeid(ex).name(),
               ex.what());
  } catch (...) {
    fmt::print(stderr, "corio: a detached task ended with a non-standard exception\n");
  }
}

std::size_t runtime_impl::shutdown(clock::duration grace) noexcept {
  if (shut_down_) return 0;
  // Graceful part: no new spawns, stop requested on every task (each worker walks its own
  // registry), then wait for the tasks to end, up to `grace`.
  closing_.store(true, std::memory_order_seq_cst);
  if (grace > clock::duration::zero()) {
    stop_all_epoch_.fetch_add(1, std::memory_order_acq_rel);
    for (auto& w : workers_) {
      if (w->reactor_) w->reactor_->wake();
    }
    const auto until = std::chrono::steady_clock::now() + grace;
    for (auto pause = std::chrono::microseconds{20}; stats().live_tasks != 0 && std::chrono::steady_clock::now() < until;
         pause = std::min(pause * 2, std::chrono::microseconds{2000})) {
      std::this_thread::sleep_for(pause);
    }
  }
  return stop_and_destroy();
}

std::size_t runtime_impl::stop_and_destroy() noexcept {
  shut_down_ = true;
  closing_.store(true, std::memory_order_seq_cst);
  stopping_.store(true, std::memory_order_seq_cst);
  // Every worker leaves its loop at the next check; each drains its own ring (cancels and reaps
  // every request in flight) on its own thread before it exits.
  for (auto& w : workers_) {
    if (w->reactor_) w->reactor_->wake();
  }
  for (auto& w : workers_) {
    if (w->thread_.joinable()) w->thread_.join();
  }
  // No thread runs tasks any more and no ring holds a request: drop the queues (they only point
  // into frames), settle the tasks that finished away from home, then destroy every task that never
  // finished. Destroying a root frame destroys the tasks it awaits and runs the destructors of its
  // locals (closing sockets); a join_handle still referring to it is emptied.
  {
    std::lock_guard lock{injection_mutex_};
    injection_.clear();
    injection_size_.store(0);
  }
  for (auto& w : workers_) {
    w->drain_adopted();
    w->drain_remote_finished();
    w->drain_timer_releases();
    w->flush_registry();
  }
  // Finished tasks still linked under a task that never finished are in no registry: free them
  // first, while every registered frame (and so every children list) is still alive.
  for (auto& w : workers_) {
    for (promise_base* p = w->registry_head_; p != nullptr; p = p->spawn_.next) {
      p->spawn_.stop.flush();
      for (stop_state* c = p->spawn_.stop.first_child(); c != nullptr;) {
        stop_state* next = c->next_sibling();
        promise_base& child = *c->task_;
        if ((child.spawn_.state.load(std::memory_order_relaxed) & state_running) == 0) {
          p->spawn_.stop.unlink_child(*c);
          if (join_handle_base* owner = std::exchange(child.spawn_.owner, nullptr)) owner->promise_ = orphaned_promise();
          child.spawn_.self.destroy();
        }
        c = next;
      }
    }
  }
  std::size_t destroyed = 0;
  auto destroy_list = [&destroyed](promise_base* p) {
    while (p != nullptr) {
      promise_base* next = p->spawn_.next;
      if (join_handle_base* owner = std::exchange(p->spawn_.owner, nullptr)) {
        owner->promise_ = orphaned_promise();
      }
      p->spawn_.self.destroy();
      ++destroyed;
      p = next;
    }
  };
  for (auto& w : workers_) destroy_list(std::exchange(w->registry_head_, nullptr));
  for (auto& w : workers_) w->reactor_.reset();
  return destroyed;
}

runtime_stats runtime_impl::stats() const {
  runtime_stats s;
  s.seed = options_.seed;
  // Every finish first, then every spawn: a task's spawn happens before its finish, so a finish
  // read here comes with its spawn, and the count is never short of a task that is still alive
  // (read the other way round, a task spawned on one worker and finished on another between the
  // two reads could cancel a live one out: shutdown waits for this count to reach 0).
  std::uint64_t finished = foreign_finished_.load(std::memory_order_acquire);
  for (const auto& w : workers_) finished += w->finished.get();
  std::uint64_t spawned = foreign_spawned_.load(std::memory_order_relaxed);
  s.backend_fallback = backend_.fallback_reason;
  for (const auto& w : workers_) {
    if (s.backend.empty()) {
      s.backend = w->reactor_name_;
      s.backend_features = w->reactor_features_;
    } else if (s.backend != w->reactor_name_ && s.backend.find('+') == std::string::npos) {
      s.backend += "+" + w->reactor_name_;  // a worker fell back on its own
    }
    if (s.backend_fallback.empty()) s.backend_fallback = w->reactor_fallback_;
    // The slot before the counter: a task moving from the slot into the list is counted in
    // `spawned` before it leaves the slot (worker::link), so it is seen at least once.
    spawned += w->registry_pending_count();
    spawned += w->spawned.get();
    s.workers.push_back(worker_stats{w->tick(), w->steals.get(), w->injections.get(), w->parks.get(),
                                     w->wakes.get(), w->io_submitted.get(), w->io_completed.get(),
                                     w->timers_fired.get(), w->budget_yields.get()});
  }
  s.live_tasks = shut_down_ ? 0 : (spawned > finished ? spawned - finished : 0);
  return s;
}

// --- spawn / join ---------------------------------------------------------------------------

namespace {
/// Writes the whole spawn state of a task about to be queued: running, held by a handle, in the
/// registry of worker `home` (spawn_state's fields are not initialized before this).
[[gnu::always_inline]] inline void init_spawned(promise_base& p, runtime_impl& rt, std::coroutine_handle<> self,
                                               std::uint32_t bound, std::uint32_t home, bool on_worker) noexcept {
  p.bound_ = bound;
  p.spawn_.runtime = &rt;
  p.spawn_.group = nullptr;
  p.spawn_.self = self;
  p.spawn_.home = home;  // (`owner` is written by the join_handle every spawn makes)
  stop_state& st = p.spawn_.stop;
  // Linked under the spawning task (the thread's current stop state), which then owns the link;
  // a spawn from outside the runtime's workers has no spawner to link to.
  stop_state* parent = on_worker ? current_stop() : nullptr;
  st.reset(&p, nullptr, parent);
  p.stop_ = &st;
  std::uint32_t bits = state_running | state_handle | state_linked;
  if (parent != nullptr) {
    parent->adopt_child(st);
    bits |= state_parented;
  }
  p.spawn_.state.store(bits, std::memory_order_relaxed);
}

/// Everything spawn_root() does off its fast path: spawns from outside the workers, onto another
/// runtime, bound tasks, and the errors (the frame is destroyed before an error leaves).
[[gnu::noinline]] void spawn_root_slow(runtime_impl* rt, promise_base& p, std::coroutine_handle<> self,
                                       std::uint32_t bound) {
  try {
    worker* w = this_worker;
    if (rt == nullptr && w != nullptr) rt = &w->runtime();
    if (rt == nullptr) {
      throw std::logic_error("corio::spawn: called outside a task on a runtime; use runtime::spawn");
    }
    if (rt->closing_.load(std::memory_order_acquire)) {
      throw std::runtime_error("corio::spawn: the runtime is shutting down");
    }
    if (bound != unbound_worker && bound >= rt->workers_.size()) {
      throw std::out_of_range(fmt::format("corio::spawn_on: worker {} does not exist (the runtime has {})", bound,
                                          rt->workers_.size()));
    }
    if (w != nullptr && &w->runtime() == rt) {
      init_spawned(p, *rt, self, bound, w->index(), true);
      w->link(p);  // counts it (see worker::link)
      if (bound != unbound_worker) w->deliver_bound(bound, self);
      else w->schedule_local(self);
      return;
    }
    // From outside the workers: homes in turn, registered with one CAS (see runtime_impl.hpp).
    const std::uint64_t n = rt->foreign_spawned_.fetch_add(1, std::memory_order_relaxed);
    const auto home = bound != unbound_worker ? bound : static_cast<std::uint32_t>(n % rt->workers_.size());
    init_spawned(p, *rt, self, bound, home, false);
    rt->workers_[home]->adopt(p);
    if (bound != unbound_worker) rt->workers_[bound]->post(self);
    else rt->inject(self);  // publishes the frame: another worker may run it from here on
  } catch (...) {
    self.destroy();  // the task never started: this frees its arguments
    throw;
  }
}
}  // namespace

void spawn_root(runtime_impl* rt, promise_base& p, std::coroutine_handle<> self, std::uint32_t bound) {
  worker* w = this_worker;
  // The fast path: an unbound spawn from a task onto its own runtime (Go's `go`, tokio::spawn).
  if (w != nullptr && bound == unbound_worker && (rt == nullptr || rt == &w->runtime()) &&
      !w->runtime().closing_.load(std::memory_order_relaxed)) [[likely]] {
    init_spawned(p, w->runtime(), self, unbound_worker, w->index(), true);
    w->link(p);  // counts it (see worker::link)
    w->schedule_local(self);  // runs next here, unless a thief takes the task it displaced
    return;
  }
  spawn_root_slow(rt, p, self, bound);
}

/// finish_spawned() for a when_all child (see fork_group). An inline child hands the thread to
/// the next child it can take; the last of the run, and every child the scheduler ran, count
/// themselves off `remaining`; whoever takes it to zero resumes the parent (on its own worker when
/// it is bound). The parent owns the children's frames and reads their results, so nothing of `p`
/// or the group is touched after the subtraction unless it reached zero.
[[gnu::noinline]] static std::coroutine_handle<> finish_grouped(promise_base& p) noexcept {
  if (stop_state& st = p.spawn_.stop; st.has_children()) [[unlikely]] {
    if (st.stop_requested()) st.observe();
    st.release_children();
  }
  worker* w = this_worker;
  fork_group& g = *p.spawn_.group;
  runtime_impl& rt = *p.spawn_.runtime;
  const bool on_runtime = w != nullptr && &w->runtime() == &rt;
  std::uint32_t done = 1;
  if (p.spawn_.home != 0) {  // an inline child: go on with the next one if it is still ours
    ++g.inline_done;
    if (on_runtime) {
      if (promise_base* next = w->claim_child(g)) return next->spawn_.self;
    }
    done = g.inline_done;
  }
  if (on_runtime) w->finished.add(done);
  else rt.foreign_finished_.fetch_add(done, std::memory_order_release);
  if (g.remaining.fetch_sub(done, std::memory_order_acq_rel) == done) {
    const std::uint32_t bound = g.parent_bound;
    const std::coroutine_handle<> parent = g.parent;
    if (bound == unbound_worker || (w != nullptr && w->index() == bound)) return parent;
    if (w != nullptr) w->deliver_bound(bound, parent);
    else rt.workers_[bound]->post(parent);
  }
  return on_runtime ? w->next_direct() : std::coroutine_handle<>{};
}

std::coroutine_handle<> fork_start(fork_group& g, promise_base* last, std::uint32_t n,
                                   std::coroutine_handle<> parent, std::uint32_t parent_bound) {
  worker* w = this_worker;
  if (w == nullptr) throw std::logic_error("corio::when_all: awaited outside a task on a runtime");
  runtime_impl& rt = w->runtime();
  if (rt.closing_.load(std::memory_order_relaxed)) {
    throw std::runtime_error("corio::when_all: the runtime is shutting down");
  }
  g.parent = parent;
  g.parent_bound = parent_bound;
  g.owner = w;
  g.inline_done = 0;
  g.remaining.store(n, std::memory_order_relaxed);  // published with the children below
  w->spawned.add(n);
  promise_base* first = w->schedule_children(last, n);
  first->spawn_.home = 1;  // the first child starts the run of inline children
  g.next = first->spawn_.next;
  w->begin_task();
  return first->spawn_.self;
}

namespace {
/// finish_spawned() off its fast path.
[[gnu::noinline]] std::coroutine_handle<> finish_spawned_slow(promise_base& p, worker* w) noexcept {
  runtime_impl& rt = *p.spawn_.runtime;
  // The task's own children first: a cancelled task passes its stop on, then lets them go.
  stop_state& st = p.spawn_.stop;
  st.lazy_join_ = nullptr;
  if (st.has_children()) [[unlikely]] {
    if (st.stop_requested()) st.observe();
    st.release_children();
  }
  std::uint32_t release = state_running;
  const bool on_runtime = w != nullptr && &w->runtime() == &rt;
  if (on_runtime && w->index() == p.spawn_.home) [[likely]] {
    w->drain_adopted();  // this task may have been adopted here and not linked yet
    w->unlink(p);  // counts it finished, unless it was in the registry's slot (never counted)
    release |= state_linked;
  } else {
    // Finished away from home: the home worker unlinks it later (no lock on the fast path).
    rt.workers_[p.spawn_.home]->push_remote_finished(p);
  }
  // A detached task's exception is reported when it finishes, not when its frame is freed (which
  // waits for the home worker when the task finished elsewhere). Only before the step below may
  // this thread still read the frame: once `running` is clear, whoever clears the last bit frees it.
  std::uint32_t observed = 0;
  if (p.exception_ && (p.spawn_.state.load(std::memory_order_acquire) & state_handle) == 0) [[unlikely]] {
    rt.report_unhandled(p.exception_);
    observed = state_observed;  // set in the same step, so that destroy_spawned does not report again
  }
  if (!on_runtime) {
    rt.foreign_finished_.fetch_add(1, std::memory_order_release);
  } else if ((release & state_linked) == 0) {
    w->finished.add();  // away from home (at home, counted above)
  }
  // Clears the bits known set and sets `observed` (known clear when it is set) in one addition.
  // When a joiner is already parked without a canceller and this is the home worker, nobody else
  // can write the state any more (the joiner waits, the handle is its own, the parent is the joiner
  // or gone, and no remote-finished entry exists): a plain release store does. Otherwise a joiner,
  // its canceller, the parent or the home may race us: one atomic addition.
  std::uint32_t old;
  if (const std::uint32_t seen = p.spawn_.state.load(std::memory_order_acquire);
      (seen & state_joiner) != 0 && (release & state_linked) != 0 && (seen & state_join_armed) == 0) {
    old = seen;
    p.spawn_.state.store(seen + observed - release, std::memory_order_release);
  } else {
    old = p.spawn_.state.fetch_add(observed - release, std::memory_order_acq_rel);
  }
  if ((old & (state_joiner | state_join_cancel)) == state_joiner) {  // the joiner frees the frame
    const std::uint32_t bound = p.joiner_bound_;
    if (bound == unbound_worker || (w != nullptr && w->index() == bound)) return p.continuation_;
    // The joiner must run on its own worker: hand it over instead of resuming it here.
    if (w != nullptr) w->deliver_bound(bound, p.continuation_);
    else rt.workers_[bound]->post(p.continuation_);
    return {};
  }
  if ((old & ~release & state_alive) == 0) destroy_spawned(p);
  // Nothing waits for this task: go straight on to the next local task.
  return on_runtime ? w->next_direct() : std::coroutine_handle<>{};
}
}  // namespace

std::coroutine_handle<> finish_spawned(promise_base& p) noexcept {
  if (p.spawn_.group != nullptr) return finish_grouped(p);
  worker* w = this_worker;
  stop_state& st = p.spawn_.stop;
  // The usual end of a joined task: its join parked with a plain store while the task waited in
  // the joiner's worker (join_park), and its canceller is still pending (the task, and the tasks
  // it joined the same way, never waited for real: see arm_lazy_join), so nobody else can write
  // the state; this is its home worker, it has no children left and its joiner may run here.
  // The registry and the state are released with plain stores, and the joiner resumes by
  // symmetric transfer. (lazy_join_ keeps its stale value: the joiner frees the frame next, and
  // nothing reads it before.)
  if (st.lazy_join_ != nullptr && !st.has_children() && w != nullptr &&
      (p.joiner_bound_ == unbound_worker || p.joiner_bound_ == w->index())) [[likely]] {
    if (w->in_registry_slot(p)) {
      w->clear_registry_slot();  // its home is this worker, and it was never counted (worker::link)
    } else if (w->index() == p.spawn_.home && &w->runtime() == p.spawn_.runtime && !w->has_adopted()) {
      w->unlink(p);  // in the list: a task spawned before the newest one (fib's first child)
    } else {
      return finish_spawned_slow(p, w);
    }
    const std::uint32_t seen = p.spawn_.state.load(std::memory_order_relaxed);
    p.spawn_.state.store(seen - (state_running | state_linked), std::memory_order_release);
    return p.continuation_;
  }
  return finish_spawned_slow(p, w);
}

namespace {
/// join_canceller::cancel (see spawn.hpp).
void cancel_join(stop_canceller& sc) noexcept {
  auto& c = static_cast<join_canceller&>(sc);
  const std::uint32_t old = c.task->spawn_.state.fetch_or(state_join_cancel, std::memory_order_acq_rel);
  if ((old & (state_joiner | state_running)) == (state_joiner | state_running)) {
    // Parked and not finished: this call resumes the joiner, and the finish will not.
    // The joiner is the task's continuation (join_park stored it before publishing).
    wake_parked(wake_ticket{c.task->continuation_, c.task->spawn_.runtime, c.park_worker});
  }
}
}  // namespace

namespace {
/// join_park() off its fast path: the task may be running or reachable by other threads, or the
/// joiner's stop was requested already. The joiner bit is set with one atomic addition, after the
/// canceller was armed.
[[gnu::noinline]] std::coroutine_handle<> join_park_slow(promise_base& p, std::coroutine_handle<> joiner,
                                                         join_canceller& c) noexcept {
  worker* w = this_worker;
  stop_state* s = c.stop;
  if (s != nullptr && s->lazy_join_ != nullptr) arm_lazy_join(*s);  // the joiner waits for real
  if (s != nullptr) {
    if (s->stop_requested()) {
      s->observe();
      return joiner;  // seen before waiting: the joiner bit stays clear, and join_settle throws
    }
    c.task = &p;
    c.cancel = &cancel_join;
    c.park_worker = w != nullptr && &w->runtime() == p.spawn_.runtime ? w->index() : p.joiner_bound_;
    if (!s->arm(c)) {
      s->observe();
      return joiner;
    }
  }
  // The joiner bit is clear (one join per handle), and so is state_join_armed (a withdrawn join
  // clears it): an addition sets both without a CAS loop.
  const std::uint32_t old =
      p.spawn_.state.fetch_add(s != nullptr ? state_joiner | state_join_armed : state_joiner, std::memory_order_acq_rel);
  if ((old & state_running) == 0 || (old & state_join_cancel) != 0) {
    return joiner;  // finished meanwhile, or cancelled before the joiner was published: go on now
  }
  return w != nullptr ? w->next_or_noop() : std::noop_coroutine();
}

}  // namespace

std::coroutine_handle<> join_park(promise_base& p, std::coroutine_handle<> joiner, join_canceller& c) noexcept {
  worker* w = this_worker;
  stop_state* s = c.stop;
  const std::uint32_t seen = p.spawn_.state.load(std::memory_order_relaxed);
  if (w != nullptr && w->holds_unpublished(p.spawn_.self) &&
      ((seen & state_parented) == 0 || p.spawn_.stop.parent() == s)) [[likely]] {
    // Queued here and not running (unstarted, or woken and not yet resumed), and reachable by
    // this thread only until a release-publishing queue hands it on (its parent, if any, is the
    // joiner): a plain store of the joiner bit happens before anyone else can touch the task. The
    // canceller is armed once the task, or a task it joins the same way, waits for real
    // (arm_lazy_join; a pending join of the joiner itself stays pending too, see there);
    // until then a stop of the joiner waits, even one requested before this join: either the
    // task finishes without suspending and the join took effect, or its first suspension ends
    // the join with operation_cancelled (the stop is then seen, as the rule asks).
    std::uint32_t next = seen | state_joiner;
    if ((seen & state_parented) != 0) {
      // The joiner spawned it (its own list, plain stores): while the joiner waits, its stop
      // reaches the join through the canceller; a cancelled join links the task back (the task's
      // parent() stays the joiner, which tells join_settle so).
      s->withdraw_child(p.spawn_.stop);
      next &= ~state_parented;
    }
    p.spawn_.stop.lazy_join_ = s != nullptr ? &c : nullptr;
    p.spawn_.state.store(next, std::memory_order_relaxed);
    return w->next_or_noop_inline();
  }
  return join_park_slow(p, joiner, c);
}

namespace {
/// Arms the canceller of a join that parked with a plain store on `c.task` (taken out of its
/// lazy_join_ by arm_lazy_join): the joiner is parked for good.
void arm_pending_join(join_canceller& c) noexcept {
  promise_base& task = *c.task;
  c.cancel = &cancel_join;
  c.park_worker = task.joiner_bound_;  // any worker may resume it (or the one it is bound to)
  task.spawn_.state.fetch_or(state_join_armed, std::memory_order_acq_rel);  // a canceller may write it now
  if (!c.stop->arm(c)) cancel_join(c);  // the joiner's stop came first: end the join now
}

/// A when_all child running under `s` (or parked in a join that parked lazily on it) waits for
/// real: arms its group's forwarder on the parent's stop state, and so on up while the parent is
/// itself a when_all child whose group's forwarder is not armed yet. Returns the state of the
/// spawned task at the top (suspended in the outermost when_all), whose own pending join the
/// caller arms next, or null when there is nothing more to arm: a sibling armed the levels above
/// already, the group has no parent state, or a parent's stop was requested already (the stop is
/// then forwarded at once).
stop_state* arm_group_forwarders(stop_state* s) noexcept {
  while (s != nullptr && s->task_ != nullptr && s->task_->spawn_.group != nullptr) {
    fork_group& g = *s->task_->spawn_.group;
    stop_state* parent = g.parent_stop;
    if (parent == nullptr || g.forwarder == nullptr) return nullptr;
    if (parent->armed_with(*g.forwarder)) return nullptr;  // a sibling did it (and the levels above)
    if (!parent->arm(*g.forwarder)) {
      forward_to_children(*g.forwarder);
      return nullptr;
    }
    s = parent;
  }
  return s != nullptr && s->task_ != nullptr ? s : nullptr;
}
}  // namespace

void arm_lazy_join(stop_state& s) noexcept {
  // Laziness is transitive: a task that parks in a join that parked lazily (join_park's plain
  // path) leaves its own pending join unarmed, so a whole chain of such joins (fib: a spawn and a
  // join at every level) arms nothing until a task at its end waits for real. Then every pending
  // canceller of the chain is armed: the join parked on that task, the join parked on that joiner,
  // and so on up, through when_all levels (their forwarders) too.
  //
  // Only `s` is the calling thread's own; the states above belong to parked tasks, which nothing
  // can resume while no canceller of the chain is armed (each waits for the one below, and the
  // one at the bottom is the caller). So the pending cancellers are first collected, claimed by an
  // exchange (children of one when_all on several workers may climb to the same parent at once),
  // and then armed from the top down: an armed join may resume its joiner at once (its stop came
  // first), after which nothing below it is touched by anyone but its own thread. (Forwarders are
  // armed on the way up: they never resume the task they are armed on.)
  join_canceller* top = nullptr;
  stop_state* at = &s;
  stop_canceller* pending = std::exchange(s.lazy_join_, nullptr);
  while (pending != nullptr) {
    if (pending == group_marker()) {
      at = arm_group_forwarders(at);
    } else {
      auto& c = static_cast<join_canceller&>(*pending);
      c.task = at->task_;  // the joined task: its continuation_ is the joiner
      c.chain_next = top;
      top = &c;
      at = c.stop;  // the joiner, parked on this join
    }
    if (at == nullptr) break;
    std::atomic_ref<stop_canceller*> next{at->lazy_join_};
    if (next.load(std::memory_order_acquire) == nullptr) break;
    pending = next.exchange(nullptr, std::memory_order_acq_rel);
  }
  while (top != nullptr) {
    join_canceller* below = top->chain_next;
    arm_pending_join(*top);
    top = below;
  }
}

void join_settle(join_canceller& c, promise_base& task) {
  if (c.stop != nullptr) c.stop->disarm(c);
  auto& state = task.spawn_.state;
  const std::uint32_t seen = state.load(std::memory_order_acquire);
  // The joiner bit is clear only when join_park saw the stop before it parked.
  if ((seen & state_joiner) == 0) throw operation_cancelled("corio::join_handle: the joiner was cancelled");
  if ((seen & state_running) != 0) {
    // Resumed by the canceller before the task finished: withdraw the join (the finish, racing
    // us, sees state_join_cancel and leaves us alone either way).
    state.fetch_and(~(state_joiner | state_join_cancel | state_join_armed), std::memory_order_acq_rel);
    // Taken out of the joiner's children when the join parked (join_park): not parented, but
    // its parent() is still the joiner.
    if ((seen & state_parented) == 0 && c.stop != nullptr && task.spawn_.stop.parent() == c.stop) {
      // Back under the joiner, which is the spawner and runs here: its stop reaches the task again
      // (link_child passes on a stop the joiner saw already; observe() below passes on this one).
      c.stop->link_child(task.spawn_.stop);
      state.fetch_or(state_parented, std::memory_order_acq_rel);
    }
    c.stop->observe();
    throw operation_cancelled("corio::join_handle: the joiner was cancelled");
  }
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

void forward_to_children(stop_canceller& c) noexcept {
  for (promise_base* p = static_cast<children_forwarder&>(c).last; p != nullptr; p = p->spawn_.prev) {
    p->spawn_.stop.request_stop();
  }
}

void forward_stop(stop_canceller& c) noexcept { static_cast<scope_forwarder&>(c).scope->request_stop(); }

void wake_parked(const wake_ticket& t) noexcept {
  worker* w = this_worker;
  runtime_impl& rt = *t.runtime;
  const bool here = w != nullptr && &w->runtime() == &rt;
  if (t.wake_on != unbound_worker) {
    if (here) w->deliver_bound(t.wake_on, t.task);
    else rt.workers_[t.wake_on]->post(t.task);
    return;
  }
  if (here) w->schedule_local(t.task);  // runs next here (Go's ready() into runnext)
  else rt.inject(t.task);
}

void prepare_park(park_state& s, std::coroutine_handle<> task, std::uint32_t bound, spin_lock* lock,
                  stop_state* stop) {
  worker* w = this_worker;
  if (w == nullptr) throw std::logic_error("corio: a channel, select or lock wait outside a task on a runtime");
  s.task = task;
  s.runtime = &w->runtime();
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
  if (won) wake_parked(wake_ticket{s.task, s.runtime, s.park_worker});
}

void refuse_park(park_state& s) noexcept {
  s.claim.store(park_state::cancelled, std::memory_order_relaxed);  // nobody else can see it yet
  s.stop->observe();
}

void park_timer::arm(park_state& s) {
  worker* w = this_worker;
  if (w == nullptr) throw std::logic_error("corio: a timed wait outside a task on a runtime");
  state = &s;
  s.wake_on = w->index();  // a peer's wake brings the task back here, where disarm() runs
  w->add_park_timer(*this);
}

void park_timer::disarm() noexcept {
  if (!entry.inserted()) return;
  worker* w = this_worker;
  assert(w != nullptr && "corio: park_timer disarmed off its worker");
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

std::coroutine_handle<> next_after_park() noexcept {
  worker* w = this_worker;
  return w != nullptr ? w->next_or_noop() : std::noop_coroutine();
}

void destroy_spawned(promise_base& p) noexcept {
  if (p.exception_ && (p.spawn_.state.load(std::memory_order_relaxed) & state_observed) == 0 &&
      !is_cancellation(p.exception_)) {
    p.spawn_.runtime->report_unhandled(p.exception_);
  }
  p.spawn_.self.destroy();
}

void join_handle_base::release(promise_base* p, bool observed) noexcept {
  p->spawn_.owner = nullptr;
  std::uint32_t s = p->spawn_.state.load(std::memory_order_acquire);
  if (!observed && (s & state_running) == 0 && p->exception_ && is_cancellation(p->exception_)) observed = true;
  if (!observed && (s & state_running) == 0 && p->exception_) {
    // Dropped after the task failed: report now, while this handle keeps the frame alive, rather
    // than whenever the frame is freed (finish_spawned reports the tasks detached while running).
    p->spawn_.runtime->report_unhandled(p->exception_);
    observed = true;
  }
  std::uint32_t drop = state_handle;
  if ((s & state_parented) != 0) {
    stop_state* parent = p->spawn_.stop.parent();
    if (parent != nullptr && parent == current_stop()) {
      parent->unlink_child(p->spawn_.stop);  // the spawner lets go: its own list, plain stores
      drop |= state_parented;
    } else {
      // Only the spawner may unlink; until it does, its stop no longer reaches this task.
      p->spawn_.stop.set_detached();
    }
  }
  if ((s & state_alive & ~drop) == 0) {
    // Nobody else refers to the frame any more: no atomic read-modify-write needed.
    if (observed) p->spawn_.state.store(s | state_observed, std::memory_order_relaxed);
    destroy_spawned(*p);
    return;
  }
  // Clear the handle bit (known set) and set observed (known clear) in one addition.
  const std::uint32_t delta = (observed ? state_observed : 0u) - drop;
  s = p->spawn_.state.fetch_add(delta, std::memory_order_acq_rel);
  if ((s & ~drop & state_alive) == 0) destroy_spawned(*p);
}

void join_handle_base::throw_empty() const {
  if (promise_ == orphaned_promise()) throw operation_cancelled("corio::join_handle: the runtime destroyed the task at shutdown");
  throw std::logic_error("corio::join_handle: awaited after it was joined, detached or moved from");
}

// --- what awaiters call ----------------------------------------------------------------------

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

clock::time_point runtime_now() noexcept {
  worker* w = current_worker();
  return w != nullptr ? w->runtime().now() : clock::now();
}

void submit_io(io_request& request) {
  worker& w = require_worker("corio I/O");
  w.reactor_->submit(request);
  w.io_submitted.add();
}

void io_operation::throw_error(std::error_code code, const char* what) {
  throw std::system_error(code, what);
}

void check_not_on_worker(runtime_impl* rt) {
  worker* w = current_worker();
  if (w != nullptr && &w->runtime() == rt) {
    throw std::logic_error("corio::runtime::block_on: called from one of the runtime's own workers");
  }
}

// --- blocking_signal --------------------------------------------------------------------------

struct blocking_signal::state {
  std::mutex mutex;
  std::condition_variable cv;
  bool raised = false;
};

blocking_signal::blocking_signal() : state_(std::make_unique<state>()) {}
blocking_signal::~blocking_signal() = default;

void blocking_signal::raise() noexcept {
  std::lock_guard lock{state_->mutex};
  state_->raised = true;
  state_->cv.notify_one();  // under the lock: the waiter cannot free the state before unlock
}

void blocking_signal::wait() noexcept {
  std::unique_lock lock{state_->mutex};
  state_->cv.wait(lock, [this] { return state_->raised; });
}

}  // namespace corio::detail

// --- runtime ---------------------------------------------------------------------------------

namespace corio {

runtime::runtime(runtime_options options)
    : impl_(std::make_unique<detail::runtime_impl>(std::move(options))) {}

runtime::~runtime() { shutdown(); }

void runtime::shutdown() {
  if (!impl_) return;
  detail::check_not_on_worker(impl_.get());
  impl_->shutdown(default_shutdown_grace);
}

std::size_t runtime::shutdown(clock::duration grace) {
  if (!impl_) return 0;
  detail::check_not_on_worker(impl_.get());
  return impl_->shutdown(grace);
}

clock::time_point runtime::now() const noexcept { return impl_->now(); }

std::optional<unsigned> this_worker_index() noexcept { return detail::current_worker_index(nullptr); }

void runtime::advance(clock::duration d) {
  if (!impl_->manual_) throw std::logic_error("corio::runtime::advance: the runtime does not use manual_clock");
  if (d <= clock::duration::zero()) return;
  impl_->advance_to(impl_->now() + d);
}

bool sleep_operation::await_ready() const noexcept {
  return deadline_ <= now() && detail::coop_spend();
}

unsigned runtime::workers() const noexcept { return static_cast<unsigned>(impl_->workers_.size()); }

runtime_stats runtime::stats() const { return impl_->stats(); }

const char* runtime::backend() const noexcept {
  // Written by each worker before the constructor returned (worker_started), read-only since.
  const char* name = impl_->backend_.backend == io_backend::asio ? "asio" : "io_uring";
  for (const auto& w : impl_->workers_) {
    if (w->reactor_name_ != name) return "io_uring+asio";
  }
  return name;
}

}  // namespace corio
