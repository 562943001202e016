// lib/runtime.cpp - workers, scheduling, parking, spawn/join, shutdown (see runtime_impl.hpp).
#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <stdexcept>
#include <typeinfo>

#include "corio/errors.hpp"
#include "corio/yield.hpp"
#include "uring_reactor.hpp"

namespace corio::detail {

// --- thread-locals, reached only through these out-of-line functions (llvm #47179) -----------

namespace {
thread_local worker* this_worker = nullptr;
thread_local std::coroutine_handle<> trampoline_next{};
}  // namespace

worker* current_worker() noexcept { return this_worker; }

void trampoline_push(std::coroutine_handle<> next) noexcept {
  assert(!trampoline_next && "corio: two transfers pending on one thread");
  trampoline_next = next;
}

std::coroutine_handle<> trampoline_take() noexcept { return std::exchange(trampoline_next, {}); }

runtime_impl* current_runtime() noexcept {
  worker* w = current_worker();
  return w != nullptr ? &w->runtime() : nullptr;
}

namespace {
worker& require_worker(const char* what) {
  worker* w = current_worker();
  if (w == nullptr) throw std::logic_error(fmt::format("corio: {} outside a task on a runtime", what));
  return *w;
}

bool timer_after(const timer_node* a, const timer_node* b) noexcept {
  if (a->deadline != b->deadline) return a->deadline > b->deadline;
  return a->sequence > b->sequence;
}
}  // namespace

// --- worker ---------------------------------------------------------------------------------

worker::worker(runtime_impl& rt, unsigned index)
    : rt_(rt), index_(index), random_state_(0x9E3779B97F4A7C15ull * (index + 1)) {}

void worker::on_ready(void* self, std::coroutine_handle<> h) noexcept {
  auto* w = static_cast<worker*>(self);
  w->io_completed.add();
  w->push(h);  // the worker loop wakes a peer once per batch of completions, not per completion
}

void worker::push(std::coroutine_handle<> h) {
  std::lock_guard lock{queue_mutex_};
  queue_.push_back(h);
  queue_size_.store(queue_.size(), std::memory_order_seq_cst);
}

std::coroutine_handle<> worker::pop() {
  if (queue_size_.load(std::memory_order_relaxed) == 0) return {};
  std::lock_guard lock{queue_mutex_};
  if (queue_.empty()) return {};
  auto h = queue_.front();
  queue_.pop_front();
  queue_size_.store(queue_.size(), std::memory_order_seq_cst);
  return h;
}

std::coroutine_handle<> worker::steal_into(worker& thief) {
  if (queue_size_.load(std::memory_order_relaxed) == 0) return {};
  std::vector<std::coroutine_handle<>> taken;
  {
    std::lock_guard lock{queue_mutex_};
    const std::size_t n = (queue_.size() + 1) / 2;
    if (n == 0) return {};
    taken.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    queue_size_.store(queue_.size(), std::memory_order_seq_cst);
  }
  // Never hold two queue locks at once: two workers may steal from each other.
  if (taken.size() > 1) {
    std::lock_guard lock{thief.queue_mutex_};
    thief.queue_.insert(thief.queue_.end(), taken.begin() + 1, taken.end());
    thief.queue_size_.store(thief.queue_.size(), std::memory_order_seq_cst);
  }
  return taken.front();
}

void worker::add_timer(timer_node& node) {
  node.sequence = ++timer_sequence_;
  timers_.push_back(&node);
  std::push_heap(timers_.begin(), timers_.end(), timer_after);
}

std::size_t worker::fire_timers() {
  if (timers_.empty()) return 0;
  const auto now = clock::now();
  std::size_t fired = 0;
  while (!timers_.empty() && timers_.front()->deadline <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), timer_after);
    timer_node* node = timers_.back();
    timers_.pop_back();
    push(node->waiter);  // publishes the frame: node is not touched again
    ++fired;
  }
  timers_fired.add(fired);
  return fired;
}

std::optional<clock::time_point> worker::next_deadline() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.front()->deadline;
}

std::coroutine_handle<> worker::find_work(std::uint32_t tick) {
  if (tick % 61 == 0) {
    if (auto h = rt_.pop_injection()) {
      injections.add();
      return h;
    }
  }
  if (auto h = pop()) return h;
  if (auto h = rt_.pop_injection()) {
    injections.add();
    return h;
  }
  const std::size_t n = rt_.workers_.size();
  if (n > 1) {
    random_state_ ^= random_state_ << 13;  // xorshift64
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    const std::size_t start = random_state_ % n;
    for (std::size_t i = 0; i < n; ++i) {
      worker& victim = *rt_.workers_[(start + i) % n];
      if (&victim == this) continue;
      if (auto h = victim.steal_into(*this)) {
        steals.add();
        return h;
      }
    }
  }
  return {};
}

void worker::park() {
  parked_.store(true, std::memory_order_seq_cst);
  rt_.parked_count_.fetch_add(1, std::memory_order_seq_cst);
  auto unpark = [this] {
    if (parked_.exchange(false, std::memory_order_seq_cst)) {
      rt_.parked_count_.fetch_sub(1, std::memory_order_seq_cst);
    }
  };
  if (rt_.has_work() || rt_.stopping_.load(std::memory_order_seq_cst)) {
    unpark();
    return;
  }
  std::optional<std::chrono::nanoseconds> timeout;
  if (auto deadline = next_deadline()) {
    timeout = std::max(std::chrono::nanoseconds{0}, *deadline - clock::now());
  }
  parks.add();
  reactor_->wait(timeout);
  unpark();
  if (queue_size() > 1) rt_.notify_one(this);
}

void worker::run() noexcept {
  this_worker = this;
  try {
    reactor_ = std::make_unique<uring_reactor>(rt_.options_.ring_entries,
                                               completion_sink{&worker::on_ready, this});
    reactor_name_ = reactor_->name();
    reactor_features_ = reactor_->features();
  } catch (...) {
    this_worker = nullptr;
    rt_.worker_started(std::current_exception());
    return;
  }
  rt_.worker_started(nullptr);

  std::uint32_t tick = 0;
  while (!rt_.stopping_.load(std::memory_order_acquire)) {
    if (auto h = find_work(tick)) {
      ++tick;
      polls.add();
      resume(h);
      if ((tick & 31) == 0) {  // keep I/O and timers flowing under a long run queue
        reactor_->poll();
        fire_timers();
        if (queue_size() > 1) rt_.notify_one(this);
      }
      continue;
    }
    if (reactor_->poll() != 0 || fire_timers() != 0) {
      if (queue_size() > 1) rt_.notify_one(this);  // more than this worker runs next: share it
      continue;
    }
    park();
  }
  reactor_->drain();
  this_worker = nullptr;
}

// --- runtime_impl ---------------------------------------------------------------------------

runtime_impl::runtime_impl(runtime_options options) : options_(std::move(options)) {
  unsigned n = options_.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  options_.workers = n;
  shard_count_ = n + 1;
  shards_ = std::make_unique<registry_shard[]>(shard_count_);
  workers_.reserve(n);
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<worker>(*this, i));

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
    shutdown();
    std::rethrow_exception(start_error_);
  }
}

runtime_impl::~runtime_impl() { shutdown(); }

void runtime_impl::worker_started(std::exception_ptr error) noexcept {
  std::lock_guard lock{start_mutex_};
  if (error && !start_error_) start_error_ = error;
  ++started_;
  start_cv_.notify_all();
}

void runtime_impl::schedule(std::coroutine_handle<> h) {
  worker* w = current_worker();
  if (w != nullptr && &w->runtime() == this) {
    w->push(h);
    if (w->queue_size() > 1) notify_one(w);
    return;
  }
  {
    std::lock_guard lock{injection_mutex_};
    injection_.push_back(h);
    injection_size_.store(injection_.size(), std::memory_order_seq_cst);
  }
  notify_one(nullptr);
}

std::coroutine_handle<> runtime_impl::pop_injection() {
  if (injection_size_.load(std::memory_order_relaxed) == 0) return {};
  std::lock_guard lock{injection_mutex_};
  if (injection_.empty()) return {};
  auto h = injection_.front();
  injection_.pop_front();
  injection_size_.store(injection_.size(), std::memory_order_seq_cst);
  return h;
}

bool runtime_impl::has_work() const noexcept {
  if (injection_size_.load(std::memory_order_seq_cst) != 0) return true;
  for (const auto& w : workers_) {
    if (w->queue_size() != 0) return true;
  }
  return false;
}

void runtime_impl::notify_one(worker* waker) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (parked_count_.load(std::memory_order_seq_cst) == 0) return;
  const std::size_t n = workers_.size();
  const std::size_t start = wake_cursor_.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    worker& w = *workers_[(start + i) % n];
    if (&w == waker) continue;
    if (w.parked_.load(std::memory_order_seq_cst) && w.parked_.exchange(false, std::memory_order_seq_cst)) {
      parked_count_.fetch_sub(1, std::memory_order_seq_cst);
      w.reactor_->wake();
      if (waker != nullptr) waker->wakes.add();
      return;
    }
  }
}

void runtime_impl::register_task(promise_base& p) noexcept {
  worker* w = current_worker();
  const std::size_t shard =
      (w != nullptr && &w->runtime() == this) ? w->index() : shard_count_ - 1;
  p.spawn_.shard = static_cast<std::uint32_t>(shard);
  registry_shard& s = shards_[shard];
  std::lock_guard lock{s.mutex};
  p.spawn_.prev = nullptr;
  p.spawn_.next = s.head;
  if (s.head != nullptr) s.head->spawn_.prev = &p;
  s.head = &p;
}

void runtime_impl::unregister_task(promise_base& p) noexcept {
  registry_shard& s = shards_[p.spawn_.shard];
  std::lock_guard lock{s.mutex};
  if (p.spawn_.prev != nullptr) p.spawn_.prev->spawn_.next = p.spawn_.next;
  else s.head = p.spawn_.next;
  if (p.spawn_.next != nullptr) p.spawn_.next->spawn_.prev = p.spawn_.prev;
  p.spawn_.prev = p.spawn_.next = nullptr;
}

void runtime_impl::report_unhandled(std::exception_ptr e) noexcept {
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

void runtime_impl::shutdown() noexcept {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_.store(true, std::memory_order_seq_cst);
  // Every worker leaves its loop at the next check; each drains its own ring (cancels and reaps
  // every request in flight) on its own thread before it exits.
  for (auto& w : workers_) {
    if (w->reactor_) w->reactor_->wake();
  }
  for (auto& w : workers_) {
    if (w->thread_.joinable()) w->thread_.join();
  }
  // No thread runs tasks any more and no ring holds a request: drop the queues and timers (they
  // only point into frames), then destroy every task that never finished. Destroying a root frame
  // destroys the tasks it awaits, and runs the destructors of its locals (closing sockets).
  {
    std::lock_guard lock{injection_mutex_};
    injection_.clear();
    injection_size_.store(0);
  }
  for (std::size_t i = 0; i < shard_count_; ++i) {
    promise_base* p = nullptr;
    {
      std::lock_guard lock{shards_[i].mutex};
      p = std::exchange(shards_[i].head, nullptr);
    }
    while (p != nullptr) {
      promise_base* next = p->spawn_.next;
      if (join_handle_base* owner = std::exchange(p->spawn_.owner, nullptr)) {
        owner->promise_ = nullptr;
        owner->orphaned_ = true;
      }
      p->spawn_.self.destroy();
      p = next;
    }
  }
  live_tasks_.store(0);
  for (auto& w : workers_) w->reactor_.reset();
}

runtime_stats runtime_impl::stats() const {
  runtime_stats s;
  s.live_tasks = live_tasks_.load(std::memory_order_relaxed);
  for (const auto& w : workers_) {
    if (s.backend.empty()) {
      s.backend = w->reactor_name_;
      s.backend_features = w->reactor_features_;
    }
    s.workers.push_back(worker_stats{w->polls.get(), w->steals.get(), w->injections.get(), w->parks.get(),
                                     w->wakes.get(), w->io_submitted.get(), w->io_completed.get(),
                                     w->timers_fired.get()});
  }
  return s;
}

// --- spawn / join ---------------------------------------------------------------------------

void spawn_root(runtime_impl* rt, promise_base& p, std::coroutine_handle<> self) {
  if (rt == nullptr) {
    throw std::logic_error("corio::spawn: called outside a task on a runtime; use runtime::spawn");
  }
  if (rt->stopping_.load(std::memory_order_acquire)) {
    throw std::runtime_error("corio::spawn: the runtime is shutting down");
  }
  p.spawn_.runtime = rt;
  p.spawn_.self = self;
  p.spawn_.state.store(state_running | state_handle, std::memory_order_relaxed);
  rt->register_task(p);
  rt->live_tasks_.fetch_add(1, std::memory_order_relaxed);
  rt->schedule(self);  // publishes the frame: another worker may run it from here on
}

std::coroutine_handle<> finish_spawned(promise_base& p) noexcept {
  runtime_impl& rt = *p.spawn_.runtime;
  rt.unregister_task(p);
  rt.live_tasks_.fetch_sub(1, std::memory_order_relaxed);
  const std::uint32_t old = p.spawn_.state.fetch_and(~state_running, std::memory_order_acq_rel);
  if ((old & state_joiner) != 0) return p.continuation_;  // the joiner frees the frame
  if ((old & state_handle) == 0) {
    if (p.exception_) rt.report_unhandled(p.exception_);
    p.spawn_.self.destroy();
  }
  return {};
}

void join_handle_base::release(promise_base* p, bool observed) noexcept {
  p->spawn_.owner = nullptr;
  const std::uint32_t old = p->spawn_.state.fetch_and(~state_handle, std::memory_order_acq_rel);
  if ((old & state_running) != 0) return;  // the task frees itself when it finishes
  if (!observed && p->exception_) p->spawn_.runtime->report_unhandled(p->exception_);
  p->spawn_.self.destroy();
}

void join_handle_base::throw_empty() const {
  if (orphaned_) throw operation_cancelled("corio::join_handle: the runtime destroyed the task at shutdown");
  throw std::logic_error("corio::join_handle: awaited after it was joined, detached or moved from");
}

// --- what awaiters call ----------------------------------------------------------------------

void schedule_yield(std::coroutine_handle<> h) noexcept {
  worker* w = current_worker();
  assert(w != nullptr && "corio::yield outside a task on a runtime");
  w->push(h);
  if (w->queue_size() > 1) w->runtime().notify_one(w);
}

void add_timer(timer_node& node) { require_worker("corio::sleep_for/sleep_until").add_timer(node); }

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
  impl_->shutdown();
}

unsigned runtime::workers() const noexcept { return static_cast<unsigned>(impl_->workers_.size()); }

runtime_stats runtime::stats() const { return impl_->stats(); }

}  // namespace corio
