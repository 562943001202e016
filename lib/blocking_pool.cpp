// lib/blocking_pool.cpp - the blocking pool (lib/blocking_pool.hpp) and spawn_blocking's untyped
// awaiter (corio/blocking.hpp).
#include "blocking_pool.hpp"

#include <stdexcept>
#include <string>
#include <system_error>

#include "corio/errors.hpp"
#include "runtime_impl.hpp"

namespace corio::detail {

namespace {
unsigned checked_max_threads(unsigned n) {
  if (n == 0) throw std::invalid_argument("corio: runtime_options::max_blocking_threads must be at least 1");
  return n;
}
}  // namespace

blocking_pool::blocking_pool(unsigned max_threads, clock::duration keep_alive, void (*on_drained)(void*) noexcept,
                             void* context)
    : max_threads_(checked_max_threads(max_threads)),
      keep_alive_(std::max(keep_alive, clock::duration::zero())),
      on_drained_(on_drained),
      context_(context) {}

blocking_pool::~blocking_pool() { shutdown(); }

void blocking_pool::start_thread_locked() {
  threads_list_.reserve(threads_list_.size() + 1);  // so that no allocation fails with the thread started
  threads_list_.emplace_back([this] { thread_main(); });
  ++threads_;
}

bool blocking_pool::submit(blocking_job& job) {
  bool notify = false;
  std::vector<std::thread> to_join;
  {
    std::lock_guard lock{mutex_};
    if (shutdown_) throw std::runtime_error("corio: blocking pool used while the runtime shuts down");
    if (job.state == blocking_job::cancelled) return false;  // try_cancel came first
    CORIO_ASSERT(job.state == blocking_job::fresh, "blocking-job-fresh");
    if (idle_ > notified_) {
      ++notified_;
      notify = true;
    } else if (threads_ < max_threads_) {
      try {
        start_thread_locked();
      } catch (const std::system_error&) {
        if (threads_ == 0) throw;  // nobody would ever run it
        // Otherwise the job waits for one of the running threads, as beyond max_threads.
      }
    }
    job.state = blocking_job::queued;
    job.next = nullptr;
    job.prev = tail_;
    if (tail_ != nullptr) tail_->next = &job;
    else head_ = &job;
    tail_ = &job;
    ++queued_;
    outstanding_.fetch_add(1, std::memory_order_seq_cst);
    to_join.swap(exited_);
  }
  if (notify) work_cv_.notify_one();
  for (auto& t : to_join) t.join();  // ended idle threads, past their last use of the pool
  return true;
}

bool blocking_pool::try_cancel(blocking_job& job) noexcept {
  bool drained = false;
  {
    std::lock_guard lock{mutex_};
    if (job.state == blocking_job::fresh) {
      job.state = blocking_job::cancelled;  // submit() will refuse it
      return false;
    }
    if (job.state != blocking_job::queued) return false;  // running, ran, cancelled or dropped
    if (job.prev != nullptr) job.prev->next = job.next;
    else head_ = job.next;
    if (job.next != nullptr) job.next->prev = job.prev;
    else tail_ = job.prev;
    job.next = job.prev = nullptr;
    job.state = blocking_job::cancelled;
    --queued_;
    drained = outstanding_.fetch_sub(1, std::memory_order_seq_cst) == 1;
  }
  if (drained && on_drained_ != nullptr) on_drained_(context_);
  return true;
}

bool blocking_pool::abandon(blocking_job& job) noexcept {
  if (try_cancel(job)) return false;  // removed from the queue: never runs
  std::lock_guard lock{mutex_};
  // Running is final (the pool never touches the job again); so are cancelled and dropped.
  return job.state == blocking_job::running;
}

void blocking_pool::thread_main() noexcept {
  std::unique_lock lock{mutex_};
  for (;;) {
    if (head_ != nullptr) {
      blocking_job* job = head_;
      head_ = job->next;
      if (head_ != nullptr) head_->prev = nullptr;
      else tail_ = nullptr;
      job->next = job->prev = nullptr;
      job->state = blocking_job::running;
      --queued_;
      ++jobs_run_;  // counted as it starts: its submitter, once notified, sees it counted
      lock.unlock();
      job->run(*job);  // does the work, then notifies its submitter: job is not touched again
      lock.lock();
      if (outstanding_.fetch_sub(1, std::memory_order_seq_cst) == 1 && on_drained_ != nullptr) {
        lock.unlock();
        on_drained_(context_);
        lock.lock();
      }
      continue;
    }
    if (shutdown_) break;
    // Idle: wait for a job, at most keep_alive (steady time) in all. Every wake consumes one
    // notification, including one whose job a busy thread took first (this thread then waits
    // again): were notified_ left counting it, later submits would see no idle thread to
    // notify, and their jobs would queue behind the busy threads while this one sleeps.
    ++idle_;
    const bool forever = keep_alive_ == clock::duration::max();
    const auto until = forever ? std::chrono::steady_clock::time_point::max()
                               : deadline_after(std::chrono::steady_clock::now(), keep_alive_);
    bool timed_out = false;
    while (head_ == nullptr && !shutdown_ && !timed_out) {
      if (forever) work_cv_.wait(lock);
      else timed_out = work_cv_.wait_until(lock, until) == std::cv_status::timeout;
      if (notified_ > 0) --notified_;
    }
    --idle_;
    if (head_ == nullptr) break;  // kept alive long enough with nothing to do, or shut down
  }
  // Leaving: hand this thread's handle to whoever joins next (a submit or the shutdown).
  --threads_;
  for (auto it = threads_list_.begin(); it != threads_list_.end(); ++it) {
    if (it->get_id() == std::this_thread::get_id()) {
      exited_.push_back(std::move(*it));
      threads_list_.erase(it);
      break;
    }
  }
  if (threads_ == 0) shutdown_cv_.notify_all();
}

void blocking_pool::shutdown() noexcept {
  std::unique_lock lock{mutex_};
  if (!shutdown_) {
    shutdown_ = true;
    // Queued jobs never start: their submitters are destroyed with the runtime (Tokio drops them too).
    for (blocking_job* j = head_; j != nullptr;) {
      blocking_job* next = j->next;
      j->next = j->prev = nullptr;
      j->state = blocking_job::dropped;
      outstanding_.fetch_sub(1, std::memory_order_seq_cst);
      j = next;
    }
    head_ = tail_ = nullptr;
    queued_ = 0;
  }
  work_cv_.notify_all();
  // Running jobs are waited for, however long they take: a job may use its submitter's memory.
  shutdown_cv_.wait(lock, [this] { return threads_ == 0; });
  std::vector<std::thread> to_join;
  to_join.swap(exited_);
  lock.unlock();
  for (auto& t : to_join) t.join();
}

blocking_pool_stats blocking_pool::stats() const {
  std::lock_guard lock{mutex_};
  return blocking_pool_stats{threads_, idle_, queued_, jobs_run_};
}

blocking_pool& current_blocking_pool(const char* what) {
  worker* w = current_worker();
  if (w == nullptr) throw std::logic_error(what);
  return w->runtime().blocking_;
}

// --- spawn_blocking's awaiter ------------------------------------------------------------------

bool on_runtime_worker() noexcept { return current_worker() != nullptr; }

void throw_not_on_runtime() {
  throw std::logic_error("corio::spawn_blocking: called outside a task on a runtime's worker");
}

blocking_wait::~blocking_wait() {
  if (armed_) stop_->disarm(*this);
  // Destroyed while suspended (runtime shutdown): the pool dropped a queued job already; a job that
  // ran finished before any frame was destroyed. Kept for a frame destroyed some other way.
  if (pool_ != nullptr) (void)pool_->try_cancel(*this);
}

bool blocking_wait::suspend(std::coroutine_handle<> task, std::uint32_t bound, stop_state* stop) {
  worker* w = current_worker();
  if (w == nullptr) throw_not_on_runtime();
  runtime_impl& rt = w->runtime();
  ticket_ = wake_ticket{task, rt.gate_.gate, rt.gate_.generation, bound};
  park_worker_ = w->index();
  pool_ = &rt.blocking_;  // before the canceller is armed: it reads pool_
  if (stop != nullptr) {
    stop_ = stop;
    cancel = &cancel_job;
    if (!stop->arm(*this)) {  // stop came first: the job is never submitted
      cancelled_ = true;
      return false;
    }
    armed_ = true;
  }
  bool queued;
  try {
    queued = pool_->submit(*this);
  } catch (...) {
    if (armed_) {
      armed_ = false;
      stop_->disarm(*this);  // waits for a canceller still reading pool_
    }
    pool_ = nullptr;
    throw;
  }
  if (!queued) {  // the canceller ran between arm and submit; it leaves the job alone then
    cancelled_ = true;
    return false;
  }
  return true;  // queued: the job may have run and the task resumed already; touch nothing
}

void blocking_wait::cancel_job(stop_canceller& c) noexcept {
  auto& self = static_cast<blocking_wait&>(c);
  if (!self.pool_->try_cancel(self)) return;  // running or ran: its completion resumes the task
  self.cancelled_ = true;
  // On the worker where the task parked (cancel-resumes-on-park-worker): a cancel may come while
  // await_suspend is still returning there.
  wake_parked(wake_ticket{self.ticket_.task, self.ticket_.gate, self.ticket_.generation, self.park_worker_});
}

void blocking_wait::complete() noexcept {
  // The frame may be resumed, and freed, once the wake is out: copy first. An unbound task goes
  // back to the worker it parked on (its inbox, one direct wake of that worker), not to the
  // injection queue, whose wakep() wakes whichever worker went idle last and sets off spinning.
  wake_ticket t = ticket_;
  if (t.wake_on == unbound_worker) t.wake_on = park_worker_;
  wake_parked(t);
}

void blocking_wait::settle() {
  if (armed_) {
    armed_ = false;
    stop_->disarm(*this);  // waits for a canceller still running
  }
  pool_ = nullptr;
  if (cancelled_) {
    stop_->observe();  // the task saw its stop: its children get it too
    throw operation_cancelled("corio::spawn_blocking: cancelled before the job started", stop_);
  }
}

}  // namespace corio::detail
