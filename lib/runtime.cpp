// lib/runtime.cpp - the runtime: start-up, the injection queue, the idle set and wake-ups, the
// manual clock, shutdown and stats (the workers: worker.cpp; tasks: spawn.cpp).
#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <limits>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <typeinfo>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

namespace corio::detail {

namespace {
/// Gates are never freed (see runtime_gate): a closed one waits here for the next runtime.
struct gate_pool {
  std::mutex mutex;
  std::vector<runtime_gate*> free;
};
gate_pool& gates() {
  static gate_pool* pool = new gate_pool;  // never destroyed: wakes may come during static destruction
  return *pool;
}
}  // namespace

void runtime_gate::close() noexcept {
  runtime.store(nullptr, std::memory_order_seq_cst);
  for (unsigned spins = 0; entered.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins >= 64) std::this_thread::yield();  // a waker inside was preempted
  }
}

gate_hold::gate_hold(runtime_impl* rt)
    : gate([] {
        gate_pool& pool = gates();
        std::lock_guard lock{pool.mutex};
        if (pool.free.empty()) return new runtime_gate;
        runtime_gate* g = pool.free.back();
        pool.free.pop_back();
        return g;
      }()),
      generation(gate->generation.load(std::memory_order_relaxed)) {
  gate->runtime.store(rt, std::memory_order_seq_cst);
}

gate_hold::~gate_hold() {
  gate->close();
  // The next runtime to take this gate gets the next generation: a ticket of this one that is
  // still held somewhere no longer matches.
  gate->generation.store(generation + 1, std::memory_order_release);
  gate_pool& pool = gates();
  std::lock_guard lock{pool.mutex};
  pool.free.push_back(gate);
}

namespace {
/// The value of environment variable `name` as a count in [0, max], or nullopt when it is unset or
/// empty. Throws std::invalid_argument naming the variable and `unit` when it is not a decimal
/// count in that range.
std::optional<unsigned long long> env_count(const char* name, const char* unit, unsigned long long max) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(env, &end, 10);
  // strtoull accepts a sign ("-1" wraps around): only digits are a count.
  if (end == env || *end != '\0' || errno == ERANGE || value > max || *env < '0' || *env > '9') {
    throw std::invalid_argument(fmt::format("corio: {} must be a count of {} from 0 to {}, got '{}'", name, unit, max, env));
  }
  return value;
}
}  // namespace

bool apply_environment(runtime_options& options) {
  // Every knob that overrides an option applies only where the program left it at its default.
  if (options.workers == 0) {
    if (auto n = env_count("CORIO_WORKERS", "worker threads", 4096)) options.workers = static_cast<unsigned>(*n);
  }
  bool backend_from_env = false;
  if (options.backend == io_backend::automatic) {
    if (const char* env = std::getenv("CORIO_BACKEND"); env != nullptr && *env != '\0') {
      const std::string_view value = env;
      if (value == "asio") {
        options.backend = io_backend::asio;
        backend_from_env = true;
      } else if (value == "uring" || value == "io_uring") {
        options.backend = io_backend::uring;
      } else if (value != "auto") {
        throw std::invalid_argument(fmt::format("corio: CORIO_BACKEND={}: expected asio, uring or auto", value));
      }
    }
  }
  if (options.sqpoll_idle <= std::chrono::milliseconds::zero()) {
    options.sqpoll_idle = std::chrono::milliseconds::zero();
    // Larger values than the cap are accepted and capped, as the option is.
    if (auto ms = env_count("CORIO_SQPOLL_IDLE_MS", "ms", std::numeric_limits<long>::max())) {
      options.sqpoll_idle = std::chrono::milliseconds(std::min<unsigned long long>(*ms, 60'000));
    }
  }
  if (options.send_zc_threshold == 0) {
    if (auto bytes = env_count("CORIO_SEND_ZC_THRESHOLD", "bytes", std::numeric_limits<long long>::max())) {
      options.send_zc_threshold = static_cast<std::size_t>(*bytes);
    }
  }
  constexpr auto a_day = std::chrono::milliseconds{std::chrono::hours{24}};
  if (options.stall_threshold == runtime_options{}.stall_threshold) {
    if (auto ms = env_count("CORIO_STALL_MS", "ms", a_day.count())) options.stall_threshold = std::chrono::milliseconds(*ms);
  }
  options.stall_threshold = std::clamp(options.stall_threshold, std::chrono::milliseconds::zero(), a_day);
  return backend_from_env;
}

runtime_impl::runtime_impl(runtime_options options) : options_(std::move(options)) {
  const bool backend_from_env = apply_environment(options_);
  unsigned n = options_.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  options_.workers = n;
  if (options_.seed == 0) options_.seed = (std::uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  if (options_.spin_limit == 0) options_.spin_limit = 1;
  // The manual clock jumps once every worker has polled its reactor and found nothing: that needs
  // a submission to be issued when poll() returns, which a kernel poller does later, on its own.
  if (options_.clock == clock_source::manual) options_.sqpoll_idle = std::chrono::milliseconds::zero();
  manual_ = options_.clock == clock_source::manual;
  backend_ = choose_backend(options_.backend);
  if (backend_from_env && backend_.fallback_reason.empty()) backend_.fallback_reason = "CORIO_BACKEND=asio";
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
  if (options_.stall_threshold > std::chrono::milliseconds::zero()) {
    try {
      watchdog_ = std::thread(&runtime_impl::watch, this);
    } catch (...) {
      stop_and_destroy();
      throw;
    }
  }
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
  target = std::min(target, end_of_time());
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(target - origin_).count();
  std::int64_t cur = manual_ns_.load(std::memory_order_acquire);
  while (cur < ns && !manual_ns_.compare_exchange_weak(cur, ns, std::memory_order_acq_rel)) {
  }
  for (auto& w : workers_) {
    if (w->reactor_) w->reactor_->wake();
  }
}

void runtime_impl::blocking_drained(void* self) noexcept {
  auto* rt = static_cast<runtime_impl*>(self);
  if (!rt->manual_) return;
  // The pool ends before the reactors are destroyed (stop_and_destroy), and a pool thread exists
  // only after a worker, its reactor set up, submitted to it.
  for (auto& w : rt->workers_) {
    if (w->reactor_) w->reactor_->wake();
  }
}

void runtime_impl::auto_advance() noexcept {
  // A blocking job queued or running is work still to run (manual-clock-waits-for-work): its
  // completion wakes a task. The pool wakes every worker when the last one ends (blocking_drained).
  if (blocking_.outstanding() != 0) return;
  // I/O that the last tasks started may complete on a worker that has not looked at its reactor
  // since (a peer's close reaching a read): every worker must have polled in the current settle
  // round first. One that has not is woken to do so; the last of them to park makes the jump.
  const std::uint64_t round = settle_round_.load(std::memory_order_seq_cst);
  bool settled = true;
  for (auto& w : workers_) {
    if (w->polled_round_.load(std::memory_order_seq_cst) == round) continue;
    settled = false;
    if (w->reactor_) w->reactor_->wake();
  }
  if (!settled) return;
  std::uint64_t earliest = ~std::uint64_t{0};
  for (auto& w : workers_) earliest = std::min(earliest, w->published_deadline_.load(std::memory_order_seq_cst));
  if (earliest == ~std::uint64_t{0}) return;  // no timer anywhere: time stays
  // The caller saw every worker idle before it read the deadlines. A worker woken since then (by
  // an earlier jump) may have fired its due timers and published its next deadline while the
  // tasks it woke still wait in its FIFO list: jumping to that deadline would run them late. Such
  // a worker left the idle list before it published (both sequentially consistent), so counting
  // again after the reads tells: then that worker makes the next jump when it parks.
  if (idle_count_.load(std::memory_order_seq_cst) != workers_.size()) return;
  // Work handed to an idle worker from another thread (its inbox, an I/O cancel) makes it leave
  // the idle list (worker::wake_for_work), but one that was not on the list yet when the work came
  // joins it and only then looks: until it leaves again, that work is still to run.
  for (auto& w : workers_) {
    if (w->inbox_nonempty() || (w->reactor_ && w->reactor_->cancels().pending())) return;
  }
  // Wake every worker: each fires what is due on its wheel and publishes its next deadline, and
  // the last one to park again makes the next jump. A deadline after the end of time has no
  // timer (worker::insert_timer), so `earliest` is a tick the clock can reach.
  advance_to(tick_time(earliest));
}

void runtime_impl::add_idle(worker& w) {
  std::lock_guard lock{idle_mutex_};
  CORIO_ASSERT(std::find(idle_.begin(), idle_.end(), &w) == idle_.end(), "idle-list-exact");
  idle_.push_back(&w);
  idle_count_.fetch_add(1, std::memory_order_seq_cst);
}

void runtime_impl::claim_idle(worker& w) { (void)remove_idle(w, true); }

bool runtime_impl::remove_idle(worker& w, bool as_spinner) {
  std::lock_guard lock{idle_mutex_};
  auto it = std::find(idle_.begin(), idle_.end(), &w);
  if (it == idle_.end()) return false;
  // Counted before it leaves the list, under the list's lock: w learns that it was taken off only
  // from its own remove_idle, under this lock, and from then on counts itself a spinner and may
  // stop spinning (decrement) at once (spinners-counted).
  if (as_spinner) spinning_.fetch_add(1, std::memory_order_seq_cst);
  idle_.erase(it);
  idle_count_.fetch_sub(1, std::memory_order_seq_cst);
  CORIO_ASSERT(idle_count_.load(std::memory_order_relaxed) == idle_.size(), "idle-list-exact");
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
    stop_all_requests_.fetch_add(1, std::memory_order_seq_cst);
    stop_all_epoch_.fetch_add(1, std::memory_order_seq_cst);  // before the wakes: see worker::park
    for (auto& w : workers_) {
      if (w->reactor_) w->reactor_->wake();
    }
    const auto until = deadline_after(std::chrono::steady_clock::now(), grace);  // max(): no limit
    for (auto pause = std::chrono::microseconds{20}; stats().live_tasks != 0 && std::chrono::steady_clock::now() < until;
         pause = std::min(pause * 2, std::chrono::microseconds{2000})) {
      std::this_thread::sleep_for(pause);
    }
  }
  return stop_and_destroy();
}

std::size_t runtime_impl::stop_and_destroy() noexcept {
  stop_watchdog();  // it reads the workers' polls: gone before they stop
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
  // The blocking pool: queued jobs are dropped (their tasks are destroyed below), running ones
  // are waited for, however long they take, since a job may use its task's frame; their
  // completions still pass the gate and land in the injection queue, dropped below.
  blocking_.shutdown();
  // Threads that are not workers may still be waking tasks of this runtime (a channel's try_send
  // or close, an unlock): from now on their wakes are dropped, and those already inside finish
  // before anything they might touch (the queues, the reactors) goes away.
  gate_.gate->close();
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
    w->drain_timers();  // before the frames holding the entries are destroyed
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
      call_terminate_hook(*p);  // it never finished: this is its end
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

std::uint64_t runtime_impl::live_tasks() const noexcept {
  // Every finish first, then every spawn: a task's spawn happens before its finish, so a finish
  // read here comes with its spawn, and the count is never short of a task that is still alive
  // (read the other way round, a task spawned on one worker and finished on another between the
  // two reads could cancel a live one out: shutdown waits for this count to reach 0).
  std::uint64_t finished = foreign_finished_.load(std::memory_order_acquire);
  for (const auto& w : workers_) finished += w->finished.get();
  std::uint64_t spawned = foreign_spawned_.load(std::memory_order_relaxed);
  for (const auto& w : workers_) {
    // The slot before the counter: a task moving from the slot into the list is counted in
    // `spawned` before it leaves the slot (worker::link), so it is seen at least once.
    spawned += w->registry_pending_count();
    spawned += w->spawned.get();
  }
  CORIO_ASSERT(shut_down_ || spawned >= finished, "registry-slot-counted");
  return shut_down_ ? 0 : (spawned > finished ? spawned - finished : 0);
}

runtime_stats runtime_impl::stats() const {
  runtime_stats s;
  s.seed = options_.seed;
  s.live_tasks = live_tasks();
  s.backend_fallback = backend_.fallback_reason;
  for (const auto& w : workers_) {
    if (s.backend.empty()) s.backend_features = w->reactor_features_;
    add_backend_name(s.backend, w->reactor_name_);
    if (s.backend_fallback.empty()) s.backend_fallback = w->reactor_fallback_;
    s.workers.push_back(worker_stats{w->tick(), w->steals.get(), w->injections.get(), w->parks.get(),
                                     w->wakes.get(), w->io_submitted.get(), w->io_completed.get(),
                                     w->timers_fired.get(), w->budget_yields.get(),
                                     w->reactor_counts.multishot_arms.get(),
                                     w->reactor_counts.multishot_accepts.get(), w->reactor_counts.enters.get(),
                                     w->reactor_counts.msg_ring_wakes.get()});
    s.workers.back().stalls = w->stalls.get();
    if (w->reactor_) {
      const provided_buffer_stats b = w->reactor_->buffer_stats();
      worker_stats& ws = s.workers.back();
      ws.provided_buffers = b.buffers;
      ws.send_zc = w->reactor_counts.send_zc.get();
      ws.multishot_recv_arms = w->reactor_counts.multishot_recv_arms.get();
      ws.multishot_recvs = w->reactor_counts.multishot_recvs.get();
      ws.linked_timeouts = w->reactor_counts.linked_timeouts.get();
      ws.linked_timeouts_fired = w->reactor_counts.linked_timeouts_fired.get();
      ws.provided_in_use = b.in_use;
      ws.provided_enobufs = b.enobufs;
      ws.provided_grows = b.grows;
      ws.provided_fallbacks = b.fallbacks;
    }
  }
  s.blocking = blocking_.stats();
  return s;
}

clock::time_point runtime_now() noexcept {
  worker* w = current_worker();
  return w != nullptr ? w->runtime().now() : clock::now();
}

void check_not_on_worker(runtime_impl* rt) {
  worker* w = current_worker();
  if (w != nullptr && &w->runtime() == rt) {
    throw std::logic_error("corio::runtime::block_on: called from one of the runtime's own workers");
  }
}

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
  impl_->advance_to(deadline_after(impl_->now(), d));  // stops at the end of time
}

bool sleep_operation::await_ready() const noexcept {
  return deadline_ <= now() && detail::coop_spend();
}

unsigned runtime::workers() const noexcept { return static_cast<unsigned>(impl_->workers_.size()); }

runtime_stats runtime::stats() const { return impl_->stats(); }

runtime_metrics runtime::metrics() const { return impl_->metrics(); }

const char* runtime::backend() const noexcept {
  // Written by each worker before the constructor returned (worker_started), read-only since.
  const char* name = impl_->backend_.backend == io_backend::asio ? "asio" : "io_uring";
  for (const auto& w : impl_->workers_) {
    if (w->reactor_name_ != name) return "io_uring+asio";
  }
  return name;
}

}  // namespace corio
