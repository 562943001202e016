// lib/spawn.cpp - root tasks: spawn, finish and join (with the lazy arming of a join's canceller),
// when_all's fork groups, the registry of spawned tasks, and freeing a spawned frame.
#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "corio/errors.hpp"
#include "corio/when_all.hpp"

namespace corio::detail {

bool is_cancellation(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const operation_cancelled&) {
    return true;
  } catch (...) {
    return false;
  }
}

void worker::insert_registered(promise_base& p) noexcept {
  p.spawn_.prev = nullptr;
  p.spawn_.next = registry_head_;
  if (registry_head_ != nullptr) registry_head_->spawn_.prev = &p;
  registry_head_ = &p;
}

void worker::push_remote_finished(promise_base& p) noexcept {
  promise_base* head = remote_finished_.load(std::memory_order_relaxed);
  do {
    // An atomic store (a plain move): the stall report may read the word as `group` meanwhile.
    std::atomic_ref<promise_base*>{p.spawn_.remote_next}.store(head, std::memory_order_relaxed);
  } while (!remote_finished_.compare_exchange_weak(head, &p, std::memory_order_seq_cst,
                                                   std::memory_order_relaxed));
  // The frame is freed, and its parameters' destructors run (a socket closed, a lock released),
  // only when this worker drains the stack: a sleeping home is woken for it (remote-finish-wakes).
  if (head == nullptr && sleeping_.load(std::memory_order_seq_cst)) reactor_->wake();
}

void worker::adopt(promise_base& p) noexcept {
  promise_base* head = adopted_.load(std::memory_order_relaxed);
  do {
    p.spawn_.next = head;
  } while (!adopted_.compare_exchange_weak(head, &p, std::memory_order_release, std::memory_order_relaxed));
}

void worker::drain_adopted() noexcept {
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
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
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
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

namespace {
/// Writes the whole spawn state of a task about to be queued: running, held by a handle, in the
/// registry of worker `home` (spawn_state's fields are not initialized before this).
[[gnu::always_inline]] inline void init_spawned(promise_base& p, runtime_impl& rt, std::coroutine_handle<> self,
                                               std::uint32_t bound, std::uint32_t home, worker* on_worker,
                                               const char* name) noexcept {
  p.bound_ = bound;
  p.spawn_.id.store(on_worker != nullptr ? on_worker->next_task_id() : next_foreign_task_id(), std::memory_order_relaxed);
  p.spawn_.name = name;
  p.spawn_.spawned_ms = coarse_ms.load(std::memory_order_relaxed);
  p.spawn_.runtime = &rt;
  p.spawn_.group = nullptr;
  p.spawn_.self = self;
  p.spawn_.home = home;  // (`owner` is written by the join_handle every spawn makes)
  stop_state& st = p.spawn_.stop;
  // Linked under the spawning task (the thread's current stop state), which then owns the link;
  // a spawn from outside the runtime's workers has no spawner to link to.
  stop_state* parent = on_worker != nullptr ? current_stop() : nullptr;
  // The spawner: the task whose stop state is the thread's current one (0 inside a timeout's scope,
  // whose state names no task, and inside a when_all child, whose number is 0).
  promise_base* spawner = parent != nullptr ? parent->task_ : nullptr;
  p.spawn_.parent_id = spawner != nullptr ? spawner->spawn_.id.load(std::memory_order_relaxed) : 0;
  st.reset(&p, nullptr, parent);
  p.stop_ = &st;
  std::uint32_t bits = state_running | state_handle | state_linked;
  if (parent != nullptr) {
    parent->adopt_child(st);
    bits |= state_parented;
  }
  p.spawn_.state.store(bits, std::memory_order_relaxed);
}

/// runtime_options::on_task_spawn, when set, for the task of frame `self` (before it is queued).
[[gnu::noinline]] void call_spawn_hook(const runtime_impl& rt, std::coroutine_handle<> self) noexcept {
  if (task_hook hook = rt.options_.on_task_spawn) hook(reinterpret_cast<std::uintptr_t>(self.address()), rt.options_.task_hook_data);
}

/// Everything spawn_root() does off its fast path: spawns from outside the workers, onto another
/// runtime, bound tasks, and the errors (the frame is destroyed before an error leaves).
[[gnu::noinline]] void spawn_root_slow(runtime_impl* rt, promise_base& p, std::coroutine_handle<> self,
                                       std::uint32_t bound, const char* name) {
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
    call_spawn_hook(*rt, self);  // the checks are passed: the task will run (or be destroyed at shutdown)
    if (w != nullptr && &w->runtime() == rt) {
      init_spawned(p, *rt, self, bound, w->index(), w, name);
      w->link(p);  // counts it (see worker::link)
      if (w->timing_) stamp_ready(self);
      if (bound != unbound_worker) w->deliver_bound(bound, self);
      else w->schedule_local(self);
      return;
    }
    // From outside the workers: homes in turn, registered with one CAS (see runtime_impl.hpp).
    const std::uint64_t n = rt->foreign_spawned_.fetch_add(1, std::memory_order_relaxed);
    const auto home = bound != unbound_worker ? bound : static_cast<std::uint32_t>(n % rt->workers_.size());
    init_spawned(p, *rt, self, bound, home, nullptr, name);
    rt->workers_[home]->adopt(p);
    if (rt->options_.timing_histograms && bound == unbound_worker) stamp_ready(self);  // (post() stamps)
    if (bound != unbound_worker) rt->workers_[bound]->post(self);
    else rt->inject(self);  // publishes the frame: another worker may run it from here on
  } catch (...) {
    self.destroy();  // the task never started: this frees its arguments
    throw;
  }
}
}  // namespace

void spawn_root(runtime_impl* rt, promise_base& p, std::coroutine_handle<> self, std::uint32_t bound,
                const char* name) {
  worker* w = this_worker;
  // The fast path: an unbound spawn from a task onto its own runtime (Go's `go`, tokio::spawn).
  // (A runtime with task hooks or timing histograms takes the slow path, which calls the hooks and
  // stamps the task ready.)
  if (w != nullptr && bound == unbound_worker && (rt == nullptr || rt == &w->runtime()) && !w->spawn_slow_ &&
      !w->runtime().closing_.load(std::memory_order_relaxed)) [[likely]] {
    init_spawned(p, w->runtime(), self, unbound_worker, w->index(), w, name);
    w->link(p);  // counts it (see worker::link)
    w->schedule_local(self);  // runs next here, unless a thief takes the task it displaced
    return;
  }
  spawn_root_slow(rt, p, self, bound, name);
}

/// finish_spawned() for a when_all child (see fork_group). An inline child hands the thread to
/// the next child it can take; the last of the run, and every child the scheduler ran, count
/// themselves off `remaining`; whoever takes it to zero resumes the parent (on its own worker when
/// it is bound). The parent owns the children's frames and reads their results, so nothing of `p`
/// or the group is touched after the subtraction unless it reached zero.
[[gnu::noinline]] static std::coroutine_handle<> finish_grouped(promise_base& p) noexcept {
  p.wait_.store(&finished_wait_info, std::memory_order_release);  // the dump: finished, frame still held
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
  const std::uint32_t remaining = g.remaining.fetch_sub(done, std::memory_order_acq_rel);
  CORIO_ASSERT(remaining >= done, "fork-group-counted-once");
  if (remaining == done) {
    const std::uint32_t bound = g.parent_bound;
    const std::coroutine_handle<> parent = g.parent;
    if (bound == unbound_worker || (w != nullptr && w->index() == bound)) return on_runtime ? w->continue_poll(parent) : parent;
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
  w->spawns.add(n);  // metrics: when_all children count as spawned tasks
  promise_base* first = w->schedule_children(last, n);
  first->spawn_.home = 1;  // the first child starts the run of inline children
  g.next = first->spawn_.next;
  return w->begin_task(first->spawn_.self);
}

namespace {
/// finish_spawned() off its fast path.
[[gnu::noinline]] std::coroutine_handle<> finish_spawned_slow(promise_base& p, worker* w) noexcept {
  runtime_impl& rt = *p.spawn_.runtime;
  if (rt.options_.on_task_terminate != nullptr) [[unlikely]] call_terminate_hook(p);
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
  // Clears the bits known set and sets `observed` (known clear when it is set) in one addition:
  // a joiner, its canceller, the spawner or the home worker may race us.
  const std::uint32_t old = p.spawn_.state.fetch_add(observed - release, std::memory_order_acq_rel);
  if ((old & (state_joiner | state_join_cancel)) == state_joiner) {  // the joiner frees the frame
    const std::uint32_t bound = p.joiner_bound_;
    if (bound == unbound_worker || (w != nullptr && w->index() == bound)) {
      return on_runtime ? w->continue_poll(p.continuation_) : p.continuation_;
    }
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

void call_terminate_hook(promise_base& p) noexcept {
  const runtime_options& o = p.spawn_.runtime->options_;
  if (o.on_task_terminate != nullptr) {
    o.on_task_terminate(reinterpret_cast<std::uintptr_t>(std::coroutine_handle<>(p.spawn_.self).address()),
                        o.task_hook_data);
  }
}

std::coroutine_handle<> finish_spawned(promise_base& p) noexcept {
  if (p.spawn_.group != nullptr) return finish_grouped(p);
  worker* w = this_worker;
  stop_state& st = p.spawn_.stop;
  // The usual end of a joined task, the plain-store join (docs/internals.md, lazy-join-pending:
  // nobody else can write the state): here, its home worker, with no children left and a joiner
  // that may run here, the registry and the state are released with plain stores and the joiner
  // resumes by symmetric transfer. (lazy_join_ keeps its stale value: the joiner frees the frame
  // next, and nothing reads it before.)
  // (A runtime with hooks takes the slow path, which calls them.)
  if (st.lazy_join_ != nullptr && !st.has_children() && w != nullptr && !w->any_hooks_ &&
      (p.joiner_bound_ == unbound_worker || p.joiner_bound_ == w->index())) [[likely]] {
    if (w->in_registry_slot(p)) {
      w->clear_registry_slot();  // its home is this worker, and it was never counted (worker::link)
    } else if (w->index() == p.spawn_.home && &w->runtime() == p.spawn_.runtime && !w->has_adopted()) {
      w->unlink(p);  // in the list: a task spawned before the newest one (fib's first child)
    } else {
      return finish_spawned_slow(p, w);
    }
    const std::uint32_t seen = p.spawn_.state.load(std::memory_order_relaxed);
    CORIO_ASSERT((seen & (state_running | state_linked | state_joiner | state_join_armed | state_join_cancel |
                          state_parented)) == (state_running | state_linked | state_joiner),
                 "lazy-join-pending");
    p.spawn_.state.store(seen - (state_running | state_linked), std::memory_order_release);
    return w->continue_poll_unhooked(p.continuation_);
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
    const gate_hold& gate = c.task->spawn_.runtime->gate_;
    wake_parked(wake_ticket{c.task->continuation_, gate.gate, gate.generation, c.park_worker});
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
  CORIO_ASSERT((old & (state_joiner | state_join_armed)) == 0, "one-join-per-handle");
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
    // The plain-store join (docs/internals.md, unpublished-task-owner-only; its parent, if any, is
    // the joiner): the canceller stays pending until the task, or a task it joins the same way,
    // waits for real (arm_lazy_join, lazy-join-pending).
    CORIO_ASSERT(
        (seen & (state_running | state_joiner | state_join_cancel | state_join_armed)) == state_running,
        "unpublished-task-owner-only");
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
    return w->next_or_noop();
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
  // Laziness is transitive (docs/internals.md, "Lazy arming"): every pending canceller of the
  // chain above `s` is armed now, through when_all levels (their forwarders) too.
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
  if ((seen & state_joiner) == 0) throw operation_cancelled("corio::join_handle: the joiner was cancelled", c.stop);
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
    throw operation_cancelled("corio::join_handle: the joiner was cancelled", c.stop);
  }
}

void destroy_spawned(promise_base& p) noexcept {
  CORIO_ASSERT((p.spawn_.state.load(std::memory_order_relaxed) & (state_running | state_linked)) == 0,
               "frame-freed-by-last-bit");
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
  if (promise_ == orphaned_promise()) {
    throw operation_cancelled("corio::join_handle: the runtime destroyed the task at shutdown", nullptr);
  }
  throw std::logic_error("corio::join_handle: awaited after it was joined, detached or moved from");
}

}  // namespace corio::detail
