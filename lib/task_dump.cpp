// lib/task_dump.cpp - the task dump (runtime::dump_tasks) and the stall watchdog with its report's
// async stack: how the workers hand their registries over, how frames stay readable while the dump
// reads them, and how a task's record (corio/detail/task_trace.hpp) is put into words. docs/internals.md, "The task
// dump", says why this is safe while tasks run and migrate.
#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string_view>
#include <thread>

namespace corio::detail {

// Read on every suspension and every frame free by every worker: a cache line of their own, which
// nothing written often shares (coarse_ms moves at most once a millisecond).
alignas(64) std::atomic<std::uint32_t> coarse_ms{0};
std::atomic<std::uint32_t> frame_free_deferred{0};

namespace {
const std::chrono::steady_clock::time_point coarse_origin = std::chrono::steady_clock::now();

/// Frames freed while a dump read frames (defer_frame_free), under deferred_mutex.
alignas(64) std::mutex deferred_mutex;
std::vector<std::pair<void*, std::size_t>> deferred_frames;

/// The process's task numbers (task_id).
alignas(64) std::atomic<std::uint64_t> task_id_source{1};
/// Numbers a worker takes at once from task_id_source (worker::next_task_id).
constexpr std::uint64_t task_id_block = 256;
}  // namespace

void update_coarse_ms() noexcept {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - coarse_origin);
  // +1: 0 means "never written" (task_trace.hpp). Stored only when it moved: every suspension reads
  // the word, so parks and wakes on other workers must not keep taking its cache line away.
  const auto value = static_cast<std::uint32_t>(ms.count()) + 1;
  if (coarse_ms.load(std::memory_order_relaxed) != value) coarse_ms.store(value, std::memory_order_relaxed);
}

void defer_frame_free(void* frame, std::size_t bytes) noexcept {
  {
    std::lock_guard lock{deferred_mutex};
    // Rechecked under the lock: the last dump to end empties the list under it.
    if (frame_free_deferred.load(std::memory_order_relaxed) != 0) {
      try {
        deferred_frames.emplace_back(frame, bytes);
        return;
      } catch (...) {
        // Out of memory: free now. The dump may then read a recycled frame, which is only text.
      }
    }
  }
  frame_deallocate(frame, bytes);
}

namespace {
/// Begins reading frames: frees are deferred from here on (seq_cst, see docs/internals.md).
void begin_reading_frames() noexcept { frame_free_deferred.fetch_add(1, std::memory_order_seq_cst); }

/// Ends reading frames: the last reader frees what was deferred.
void end_reading_frames() noexcept {
  std::vector<std::pair<void*, std::size_t>> frames;
  {
    std::lock_guard lock{deferred_mutex};
    if (frame_free_deferred.fetch_sub(1, std::memory_order_seq_cst) == 1) frames.swap(deferred_frames);
  }
  for (auto [frame, bytes] : frames) frame_deallocate(frame, bytes);
  frame_flush_remote();
}

struct frame_reading {
  frame_reading() noexcept { begin_reading_frames(); }
  ~frame_reading() { end_reading_frames(); }
  frame_reading(const frame_reading&) = delete;
  frame_reading& operator=(const frame_reading&) = delete;
};
}  // namespace

std::uint64_t next_foreign_task_id() noexcept { return task_id_source.fetch_add(1, std::memory_order_relaxed); }

void worker::refill_task_ids() noexcept {
  next_task_id_ = task_id_source.fetch_add(task_id_block, std::memory_order_relaxed);
  task_id_end_ = next_task_id_ + task_id_block;
}

std::uint64_t task_id(promise_base& p) noexcept {
  std::uint64_t id = p.spawn_.id.load(std::memory_order_relaxed);
  if (id != 0) return id;
  const std::uint64_t fresh = next_foreign_task_id();
  return p.spawn_.id.compare_exchange_strong(id, fresh, std::memory_order_relaxed, std::memory_order_relaxed) ? fresh
                                                                                                            : id;
}

void worker::answer_dump(std::uint32_t request) noexcept {
  CORIO_ASSERT(owner_or_stopped(), "worker-owner-only");
  drain_adopted();
  flush_registry();
  {
    std::lock_guard lock{dump_mutex_};
    dump_snapshot_.clear();
    try {
      for (promise_base* p = registry_head_; p != nullptr; p = p->spawn_.next) dump_snapshot_.push_back(p);
    } catch (...) {
      // Out of memory: the dump shows what was copied.
    }
  }
  dump_answered_.store(request, std::memory_order_release);
}

namespace {

/// The promise of coroutine frame `frame` when it is a corio task's (by address arithmetic; not
/// dereferenced).
promise_base* promise_at(void* frame) noexcept {
  return frame == nullptr ? nullptr : &std::coroutine_handle<promise_base>::from_address(frame).promise();
}

/// The function's name as the compiler spells it in a source_location, shortened: GCC names a
/// coroutine's body "void f(f(args)::_Z...Frame*)"; the original signature is put back.
std::string_view function_name(const char* raw) {
  std::string_view s{raw != nullptr ? raw : "?"};
  if (const auto frame = s.rfind(".Frame*)"); frame != std::string_view::npos) {
    const auto open = s.find('(');
    const auto mangled = s.rfind("::_Z", frame);
    if (open != std::string_view::npos && mangled != std::string_view::npos && mangled > open) {
      return s.substr(open + 1, mangled - open - 1);
    }
  }
  return s;
}

/// The awaiter's type, cut out of awaiter_signature's __PRETTY_FUNCTION__.
std::string_view awaiter_name(const char* signature) {
  if (signature == nullptr) return "an awaiter";
  std::string_view s{signature};
  const auto at = s.find("A = ");
  if (at == std::string_view::npos) return s;
  s.remove_prefix(at + 4);
  const auto end = s.find_first_of(";]");
  return end == std::string_view::npos ? s : s.substr(0, end);
}

const char* io_name(std::uint32_t op) {
  static constexpr const char* names[] = {"accept", "connect", "recv", "send",    "read",   "poll",
                                          "recvmsg", "sendmsg", "read", "write", "fsync", "open",
                                          "statx",   "close",   "splice"};
  static_assert(std::size(names) == io_opcode_count, "one name per io_opcode, in its order");
  return op < std::size(names) ? names[op] : "I/O";
}

/// Seconds as "1.234s" (or ms below one second).
std::string seconds(std::int64_t ms) {
  if (ms < 1000 && ms > -1000) return fmt::format("{}ms", ms);
  return fmt::format("{:.3f}s", static_cast<double>(ms) / 1000.0);
}

/// A wait in words: "recv on channel 0x...", "recv fd 7", "sleep until +1.200s", "join task 12".
std::string describe_wait(const wait_info& info, std::uintptr_t object, const runtime_impl& rt) {
  switch (info.kind) {
    case wait_kind::child: return "awaits a task";
    case wait_kind::join: return fmt::format("join task {}", task_id(*reinterpret_cast<promise_base*>(object)));
    case wait_kind::when_all: return "when_all";
    case wait_kind::channel_recv: return fmt::format("recv on channel {:#x}", object);
    case wait_kind::channel_send: return fmt::format("send on channel {:#x}", object);
    case wait_kind::select: return fmt::format("select over {} cases", object);
    case wait_kind::io: {
      const auto fd = static_cast<std::int32_t>(static_cast<std::uint32_t>(object & 0xffffffffu));
      return fmt::format("{} fd {}", io_name(static_cast<std::uint32_t>(object >> 32)), fd);
    }
    case wait_kind::sleep: {
      const auto now = rt.now().time_since_epoch();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          clock::duration{static_cast<clock::rep>(object)} - now);
      return fmt::format("sleep until {}{}", left.count() >= 0 ? "+" : "", seconds(left.count()));
    }
    case wait_kind::yield: return "yield";
    case wait_kind::mutex: return fmt::format("lock ({})", awaiter_name(info.signature));
    case wait_kind::semaphore: return fmt::format("semaphore ({})", awaiter_name(info.signature));
    case wait_kind::condition: return fmt::format("wait ({})", awaiter_name(info.signature));
    case wait_kind::signal: return "signal";
    case wait_kind::blocking: return "blocking pool job";
    case wait_kind::finished: return "finished";
    case wait_kind::other: break;
  }
  return fmt::format("co_await {}", awaiter_name(info.signature));
}

/// The text of one frame's location: "  function\n      file:line\n", each line after `indent`
/// more spaces.
void append_frame(std::string& out, std::uintptr_t where, std::string_view note, std::size_t indent = 0) {
  const std::string pad(indent, ' ');
  if constexpr (source_location_is_word) {
    if (where != 0) {
      const auto loc = std::bit_cast<std::source_location>(where);
      fmt::format_to(std::back_inserter(out), "{}  {}{}\n{}      {}:{}\n", pad, function_name(loc.function_name()),
                     note, pad, loc.file_name(), loc.line());
      return;
    }
  }
  fmt::format_to(std::back_inserter(out), "{}  (no location){}\n", pad, note);
}

/// What a dump knows of the workers' polls in progress: the promise each one polls.
struct polls {
  std::vector<promise_base*> promise;  ///< per worker; null when it runs its loop
  int worker_of(const promise_base* p) const noexcept {
    for (std::size_t i = 0; i < promise.size(); ++i) {
      if (promise[i] == p) return static_cast<int>(i);
    }
    return -1;
  }
};

/// The async stack of the task rooted at `root`: the chain of promises from the root down to the
/// innermost suspended coroutine (bounded depth; stops at a cycle).
std::vector<promise_base*> chain_of(promise_base* root) {
  std::vector<promise_base*> chain;
  for (promise_base* p = root; p != nullptr && chain.size() < 64;) {
    if (std::find(chain.begin(), chain.end(), p) != chain.end()) break;
    if (!p->has_trace_tag()) break;
    chain.push_back(p);
    const wait_info* info = p->wait_.load(std::memory_order_acquire);
    if (info == nullptr || info->kind != wait_kind::child) break;
    p = reinterpret_cast<promise_base*>(p->wait_object_.load(std::memory_order_relaxed));
  }
  return chain;
}

/// The state of the chain `chain` (its root first) in words: running on a worker (`on`, else -1),
/// queued, or what its innermost coroutine waits for and for how long.
std::string chain_state(const std::vector<promise_base*>& chain, const runtime_impl& rt, const polls& running,
                        std::uint32_t now_ms, int& on) {
  on = -1;
  for (promise_base* p : chain) {
    if (on < 0) on = running.worker_of(p);
  }
  if (on >= 0) return fmt::format("running on worker {}", on);
  promise_base& inner = *chain.back();
  const wait_info* info = inner.wait_.load(std::memory_order_acquire);
  if (info == nullptr) return chain.size() == 1 ? "queued, not started" : "queued";
  if (info->kind == wait_kind::yield) return "queued (yield)";
  std::string state = describe_wait(*info, inner.wait_object_.load(std::memory_order_relaxed), rt);
  if (info->kind == wait_kind::finished) return state;
  if (const std::uint32_t since = inner.wait_since_ms_.load(std::memory_order_relaxed); since != 0 && now_ms >= since) {
    state += fmt::format(", parked {}", seconds(static_cast<std::int64_t>(now_ms - since)));
  }
  return state;
}

/// The frames of `chain`, innermost first, `indent` more spaces in; then, when the innermost
/// coroutine awaits a when_all, its children (append_children).
void append_frames(std::string& out, const std::vector<promise_base*>& chain, const runtime_impl& rt,
                   const polls& running, std::uint32_t now_ms, int on, std::size_t indent, int depth);

/// The children of the when_all of group `g`, in argument order, each with its state and its own
/// async stack, `indent` more spaces in (nested when_alls below theirs, up to 8 levels; at most
/// 1,000 children each). A child's frame lives until the awaiting task resumes, which clears the
/// record that led here (stop_aware::clears_wait); a child that finished says so.
void append_children(std::string& out, const fork_group& g, const runtime_impl& rt, const polls& running,
                     std::uint32_t now_ms, std::size_t indent, int depth) {
  std::vector<promise_base*> children;
  // The prev links were written before last_child's release store, and do not change after it.
  for (promise_base* c = g.last_child.load(std::memory_order_acquire); c != nullptr && children.size() < 1000;
       c = c->spawn_.prev) {
    if (!c->has_trace_tag()) break;
    children.push_back(c);
  }
  std::reverse(children.begin(), children.end());
  const std::string pad(indent, ' ');
  for (std::size_t i = 0; i < children.size(); ++i) {
    const std::vector<promise_base*> chain = chain_of(children[i]);
    int on = -1;
    const std::string state = chain_state(chain, rt, running, now_ms, on);
    const wait_info* info = chain.back()->wait_.load(std::memory_order_acquire);
    const bool finished = on < 0 && info != nullptr && info->kind == wait_kind::finished;
    fmt::format_to(std::back_inserter(out), "{}  when_all child {} of {} [{}]{}\n", pad, i + 1, children.size(), state,
                   finished || depth >= 8 ? "" : ":");
    if (!finished && depth < 8) append_frames(out, chain, rt, running, now_ms, on, indent + 2, depth + 1);
  }
}

void append_frames(std::string& out, const std::vector<promise_base*>& chain, const runtime_impl& rt,
                   const polls& running, std::uint32_t now_ms, int on, std::size_t indent, int depth) {
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    promise_base& p = **it;
    const wait_info* i = p.wait_.load(std::memory_order_acquire);
    if (i == nullptr) {
      append_frame(out, 0, it == chain.rbegin() ? " (running, or not suspended yet)" : "", indent);
      continue;
    }
    if (i->kind == wait_kind::finished) {
      // A when_all child that finished meanwhile (the caller saw it unfinished): where_ is
      // written by a co_await only, and the child may have made none (never read it then).
      append_frame(out, 0, " (finished)", indent);
      continue;
    }
    append_frame(out, p.where_.load(std::memory_order_relaxed),
                 it == chain.rbegin() && on >= 0 ? " (last co_await; running now)" : "", indent);
    if (it == chain.rbegin() && on < 0 && i->kind == wait_kind::when_all) {
      const auto object = p.wait_object_.load(std::memory_order_relaxed);
      if (object != 0) append_children(out, *reinterpret_cast<const fork_group*>(object), rt, running, now_ms, indent, depth);
    }
  }
}

/// Appends one task's block to `out`: its header line, its async stack innermost first (with the
/// children of a when_all it awaits), its spawner. `spawned` false: `root` is the top of a chain
/// that is not a spawned task's (a when_all child, a coroutine whose awaiter is not a corio task),
/// which has no number, name or spawn time.
void append_task(std::string& out, promise_base& root, const runtime_impl& rt, const polls& running,
                 std::uint32_t now_ms, int home, bool spawned = true) {
  const std::vector<promise_base*> chain = chain_of(&root);
  int on = -1;
  const std::string state = chain_state(chain, rt, running, now_ms, on);
  if (spawned) {
    fmt::format_to(std::back_inserter(out), "task {}", task_id(root));
    if (root.spawn_.name != nullptr) fmt::format_to(std::back_inserter(out), " \"{}\"", root.spawn_.name);
  } else {
    out += root.spawn_.runtime != nullptr ? "a when_all child" : "a coroutine";
  }
  fmt::format_to(std::back_inserter(out), " [{}", state);
  if (spawned && root.spawn_.spawned_ms != 0 && now_ms >= root.spawn_.spawned_ms) {
    fmt::format_to(std::back_inserter(out), ", age {}", seconds(static_cast<std::int64_t>(now_ms - root.spawn_.spawned_ms)));
  }
  fmt::format_to(std::back_inserter(out), ", worker {}]:\n", on >= 0 ? on : home);
  append_frames(out, chain, rt, running, now_ms, on, 0, 0);
  if (spawned && root.spawn_.parent_id != 0) fmt::format_to(std::back_inserter(out), "created by task {}\n", root.spawn_.parent_id);
  out += '\n';
}

polls read_polls(const runtime_impl& rt) {
  polls p;
  for (const auto& w : rt.workers_) p.promise.push_back(promise_at(w->polling()));
  return p;
}

}  // namespace

std::string runtime_impl::dump_tasks() {
  // Stopped workers answer nothing: say so rather than wait for them.
  if (stopping_.load(std::memory_order_acquire)) return "corio task dump: the runtime is shut down; no task runs\n";
  std::lock_guard one{dump_mutex_};
  update_coarse_ms();
  frame_reading reading;
  const std::uint32_t request = dump_requests_.fetch_add(1, std::memory_order_seq_cst) + 1;
  stop_all_epoch_.fetch_add(1, std::memory_order_seq_cst);  // attention (worker::attend), before the wakes
  worker* self = this_worker;
  if (self != nullptr && &self->runtime() != this) self = nullptr;
  if (self != nullptr) {
    self->dump_seen_ = request;
    self->answer_dump(request);
  }
  for (auto& w : workers_) {
    if (w.get() != self && w->reactor_) w->reactor_->wake();
  }
  // Every worker answers at its next loop turn; one that runs a long poll answers late, and the
  // dump goes on without its registry after this bound (it says so).
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{300};
  for (auto pause = std::chrono::microseconds{20};; pause = std::min(pause * 2, std::chrono::microseconds{2000})) {
    bool all = true;
    for (auto& w : workers_) all = all && w->dump_answered_.load(std::memory_order_acquire) == request;
    if (all || std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(pause);
  }
  const polls running = read_polls(*this);
  const std::uint32_t now_ms = coarse_ms.load(std::memory_order_relaxed);
  std::string body;
  std::size_t tasks = 0;
  std::string missing;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    worker& w = *workers_[i];
    if (w.dump_answered_.load(std::memory_order_acquire) != request) {
      fmt::format_to(std::back_inserter(missing),
                     "worker {} did not answer within 300 ms (one poll runs long: see the stall detector); the "
                     "tasks it is home to are not listed\n",
                     i);
      continue;
    }
    std::vector<promise_base*> snapshot;
    {
      std::lock_guard lock{w.dump_mutex_};
      snapshot = w.dump_snapshot_;
    }
    for (promise_base* p : snapshot) {
      // Finished tasks wait in the registry until their home unlinks them: not listed.
      if ((p->spawn_.state.load(std::memory_order_acquire) & state_running) == 0) continue;
      append_task(body, *p, *this, running, now_ms, static_cast<int>(i));
      ++tasks;
    }
  }
  std::string out = fmt::format("corio task dump: {} task{} on {} worker{}\n\n", tasks, tasks == 1 ? "" : "s",
                                workers_.size(), workers_.size() == 1 ? "" : "s");
  out += missing;
  if (!missing.empty()) out += '\n';
  out += body;
  return out;
}

namespace {
/// False when `p`'s frame is known to be freed: under AddressSanitizer, a frame corio's allocator
/// took back is poisoned (frame_allocator.hpp), and the stall report's one gap (docs/internals.md,
/// "The stall report") may hand it a frame a finished inline child left in `polling_`. Elsewhere
/// always true: such a frame stays mapped, and what the report reads of it is only text.
bool frame_readable([[maybe_unused]] const promise_base* p) noexcept {
#if defined(CORIO_FRAME_ASAN)
  const void* frame = std::coroutine_handle<promise_base>::from_promise(*const_cast<promise_base*>(p)).address();
  return __asan_region_is_poisoned(const_cast<void*>(frame), 16 + sizeof(std::uint64_t)) == nullptr;
#else
  return true;
#endif
}
}  // namespace

std::string runtime_impl::stall_stack(worker& w, void* frame, std::uint64_t& id, const char*& name) {
  frame_reading reading;
  // The poll may have ended between the watchdog's look and the flag above: then no stack.
  if (w.polling() != frame) return {};
  promise_base* p = promise_at(frame);
  if (p == nullptr || !frame_readable(p) || !p->has_trace_tag()) return {};
  // Up from the polled frame to the spawned task it belongs to (a child's continuation is the
  // coroutine awaiting it); then the whole chain down from there, which the task may have
  // extended below the polled frame since.
  for (int depth = 0; depth < 64 && p->spawn_.runtime == nullptr; ++depth) {
    promise_base* up = promise_at(p->continuation_.address());
    if (up == nullptr || !frame_readable(up) || !up->has_trace_tag()) break;
    p = up;
  }
  std::string out;
  // (`group` shares its word with remote_next, which the task's finish may write meanwhile.)
  const bool spawned = p->spawn_.runtime != nullptr &&
                       std::atomic_ref<fork_group*>{p->spawn_.group}.load(std::memory_order_relaxed) == nullptr;
  if (spawned) {
    id = task_id(*p);
    name = p->spawn_.name;
  }
  polls running = read_polls(*this);
  append_task(out, *p, *this, running, coarse_ms.load(std::memory_order_relaxed), static_cast<int>(w.index()),
              spawned);
  return out;
}

// --- The stall watchdog (runtime_options::stall_threshold; docs/internals.md, "Polls") -----------

void runtime_impl::watch() noexcept {
  // Per worker: the tick and the time of the first look that saw it with a poll in progress.
  // The same tick with a poll in progress at a later look means the worker has not begun another
  // poll nor returned to its loop since: one poll has run at least that long (docs/internals.md,
  // "Polls"). Reported once per tick.
  struct look {
    std::uint64_t tick = ~std::uint64_t{0};
    std::chrono::steady_clock::time_point since{};
    bool reported = false;
  };
  std::vector<look> looks(workers_.size());
  const auto threshold = options_.stall_threshold;
  const auto period = std::max(threshold / 2, std::chrono::milliseconds{1});
  std::unique_lock lock{watchdog_mutex_};
  while (!watchdog_cv_.wait_for(lock, period, [this] { return watchdog_stop_; })) {
    lock.unlock();
    update_coarse_ms();
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      worker& w = *workers_[i];
      look& l = looks[i];
      void* frame = w.polling();
      const std::uint64_t tick = w.tick();
      if (frame == nullptr || tick != l.tick) {
        l = look{frame == nullptr ? ~std::uint64_t{0} : tick, now, false};
        continue;
      }
      if (l.reported || now - l.since < threshold) continue;
      l.reported = true;
      w.stalls.add();
      stall_report r;
      r.worker = static_cast<unsigned>(i);
      r.task = reinterpret_cast<std::uintptr_t>(frame);
      r.running = std::chrono::duration_cast<std::chrono::milliseconds>(now - l.since);
      try {
        r.stack = stall_stack(w, frame, r.task_id, r.name);
      } catch (...) {
        // Out of memory: reported without its stack.
      }
      report_stall(r);
    }
    lock.lock();
  }
}

void runtime_impl::report_stall(const stall_report& r) noexcept {
  if (options_.on_stall) {
    try {
      options_.on_stall(r);
    } catch (...) {
      fmt::print(stderr, "corio: the on_stall handler threw; ignored\n");
    }
    return;
  }
  fmt::print(stderr,
             "corio: stall: worker {} has run one poll for at least {} ms (stall_threshold {} ms), coroutine frame "
             "{:#x}; a task that blocks or loops without co_await holds this worker\n{}",
             r.worker, r.running.count(), options_.stall_threshold.count(), r.task, r.stack);
}

void runtime_impl::stop_watchdog() noexcept {
  if (!watchdog_.joinable()) return;
  {
    std::lock_guard lock{watchdog_mutex_};
    watchdog_stop_ = true;
  }
  watchdog_cv_.notify_all();
  watchdog_.join();
}

}  // namespace corio::detail

namespace corio {
std::string runtime::dump_tasks() const { return impl_->dump_tasks(); }
}  // namespace corio
