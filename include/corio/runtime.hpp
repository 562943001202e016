// corio/runtime.hpp - the M:N runtime: workers, run queues, reactors; block_on and run.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "corio/metrics.hpp"
#include "corio/spawn.hpp"
#include "corio/task.hpp"
#include "corio/time.hpp"

namespace corio {

/// Which reactor the workers of a runtime use (DESIGN.md, "Reactors").
enum class io_backend : std::uint8_t {
  /// io_uring where the kernel allows it (ring setup and the opcodes corio needs are probed at
  /// start), Asio otherwise, saying why in runtime_stats::backend_fallback. The environment
  /// variable CORIO_BACKEND (`asio`, `uring`, `auto`) overrides this choice.
  automatic,
  /// io_uring only (Linux): the runtime's construction throws std::system_error where it is
  /// unavailable, and std::invalid_argument when corio was built without it.
  uring,
  /// Asio only (epoll on Linux, kqueue on the BSDs and macOS, IOCP on Windows). Throws
  /// std::invalid_argument when corio was built without it.
  asio,
};

/// One stall the stall detector saw (runtime_options::stall_threshold): a worker that has run one
/// poll for longer than the threshold. Reported once per stall, from the runtime's watchdog thread.
struct stall_report {
  unsigned worker = 0;  ///< the number (0 .. workers-1) of the stalled worker
  /// The address of the coroutine frame the worker resumed last: the task's own frame, or the
  /// frame of a coroutine it awaits inline (the one that was suspended). An identity to compare
  /// with the task hooks' ids, not a pointer to follow: the task may have moved on or ended since.
  std::uintptr_t task = 0;
  /// How long the poll has run so far, at least: counted from the watchdog's first look that saw
  /// it, so the poll may have started up to stall_threshold/2 earlier (ms).
  std::chrono::milliseconds running{0};
  /// The stalled task's number (as in the task dump; 0 when the frame is not a spawned corio
  /// task's, or the poll ended before the watchdog read it) and its name from spawn (or null).
  std::uint64_t task_id = 0;
  /// The name given at spawn (a pointer kept as given: a string literal), or null.
  const char* name = nullptr;
  /// The task as the task dump shows it: its header line and its async stack, innermost first,
  /// each frame's function and the file:line of its last co_await (runtime::dump_tasks). Empty
  /// when the frame could not be read as a corio task's.
  std::string stack;
};

/// A task hook (runtime_options::on_task_spawn and the others): called with the task's id, the
/// address of a coroutine frame as an integer (see each hook for which frame), and
/// runtime_options::task_hook_data. Must not throw (noexcept is part of the type) and should be
/// short: it runs on the runtime's threads, inside the scheduling of tasks.
using task_hook = void (*)(std::uintptr_t task, void* data) noexcept;

/// How a runtime is built. Every field has a usable default.
struct runtime_options {
  /// Number of worker threads; 0 means the environment variable CORIO_WORKERS when set (1 to 4096;
  /// anything else makes the construction throw std::invalid_argument), else
  /// std::thread::hardware_concurrency() (at least 1). README, "The environment".
  unsigned workers = 0;
  /// Capacity of each worker's run queue (rounded up to a power of two, at least 4). When it is
  /// full, half of it moves to the shared injection queue in one batch (Go: 256).
  unsigned queue_capacity = 256;
  /// Rounds over all other workers an idle worker makes trying to steal before it parks (Go: 4).
  unsigned spin_limit = 4;
  /// Cooperation budget: awaitables that could complete at once without suspending do so at most
  /// this many times per turn of a task; the next one yields (Tokio's coop budget: 128).
  unsigned budget = 128;
  /// Pin worker i to CPU i modulo the CPUs this process may run on (pthread_setaffinity_np).
  /// Failure to pin is not an error: the worker then runs unpinned (as everywhere but Linux).
  bool pin_workers = false;
  /// Seed of the workers' random choices (steal victims, later select); 0 picks one at random.
  std::uint64_t seed = 0;
  /// Where time comes from: the steady clock, or `corio::manual_clock` (paused time that moves by
  /// runtime::advance() and jumps to the next timer whenever every worker is idle).
  clock_source clock = clock_source::steady;
  /// Submission queue entries of each worker's io_uring ring (rounded up to a power of two by the
  /// kernel); the completion queue is twice as large. Bounded to [8, 32768].
  unsigned ring_entries = 1024;
  /// io_uring only: when above zero, each worker's ring gets a kernel thread that polls its
  /// submission queue (IORING_SETUP_SQPOLL, io_uring_setup(2)), so submitting costs no system
  /// call while that thread is awake; it sleeps after this long without work (ms, capped at
  /// 60,000). Each poller is a kernel thread that spins on a CPU while awake: on a machine with
  /// no spare cores it competes with the workers (measured in benchmarks/RESULTS.md, "SQPOLL").
  /// A kernel that refuses it (EPERM before Linux 5.11 without CAP_SYS_NICE) gets the usual
  /// ring, and stats().backend_features says `sqpoll_refused(...)`. 0 (the default): off. The
  /// environment variable CORIO_SQPOLL_IDLE_MS sets it where the program left it at 0. Ignored
  /// under the manual clock, whose idle detection needs a submission issued by the time the
  /// worker's poll returns (a kernel poller issues it later, on its own thread).
  std::chrono::milliseconds sqpoll_idle{0};
  /// io_uring only: sends (tcp_stream write_some, write_all) of at least this many bytes go out
  /// as IORING_OP_SEND_ZC (Linux 6.0): the kernel pins the caller's pages instead of copying them,
  /// and the operation completes only once the kernel's notification says it no longer needs the
  /// buffer (so a cancelled or timed-out zero-copy send resumes its task only then). Pays for
  /// large sends over a real network device; loopback copies anyway, where it measured slower
  /// (benchmarks/RESULTS.md, "zero-copy send"). A kernel without SEND_ZC, the Asio reactor, and
  /// a socket that refuses zero copy (not TCP: one failed attempt, then a plain send) use plain
  /// sends; stats().backend_features says `send_zc` when it is on. Bytes; 0 (the default): off.
  /// The environment variable CORIO_SEND_ZC_THRESHOLD sets it where the program left it at 0.
  std::size_t send_zc_threshold = 0;
  /// The reactor: io_uring with a fallback to Asio by default (see io_backend).
  io_backend backend = io_backend::automatic;
  /// Called with the exception of a task that finished by throwing while nobody held its
  /// join_handle (a detached task). Runs on the worker that finished the task; must not throw.
  /// Default: one line on stderr, through fmt, and the runtime carries on.
  std::function<void(std::exception_ptr)> unhandled_exception{};
  /// Most threads the blocking pool (corio::spawn_blocking, corio/blocking.hpp) runs at once,
  /// apart from the workers; jobs beyond it wait in FIFO order. Threads start on demand. At least
  /// 1: 0 makes the runtime's construction throw std::invalid_argument (as Tokio's builder
  /// refuses 0). Tokio's max_blocking_threads (default 512); 64 here.
  unsigned max_blocking_threads = 64;
  /// How long a blocking-pool thread waits idle for a job before it ends (ns resolution; steady
  /// time, also under the manual clock). Zero or negative: a thread ends as soon as it finds no
  /// job; clock::duration::max(): threads never end before shutdown. Tokio's thread_keep_alive
  /// (default 10 s).
  clock::duration blocking_keep_alive = std::chrono::seconds{10};
  /// Time each poll (a task's run from its resumption until it suspends or finishes and hands the
  /// worker on) with two steady-clock reads, into a histogram with logarithmic buckets per worker:
  /// worker_metrics::poll_time (Tokio's poll-time histogram, enable_metrics_poll_time_histogram);
  /// and the time each queued task waits from its queueing to the start of its poll, into
  /// worker_metrics::schedule_latency (Go's scheduler latency). Off by default: on, every poll pays
  /// a clock read and every queueing another (benchmarks/RESULTS.md, "Metrics" and "Issue 20").
  bool timing_histograms = false;
  /// The stall detector: a worker that runs one poll (from the resume of a task until control
  /// comes back to the worker loop or passes to the next task, docs/internals.md "Polls") for
  /// longer than this is reported once per stall, by a watchdog thread that looks every
  /// threshold/2 (steady time, also under the manual clock): to on_stall when set, else one line on
  /// stderr (through fmt) with the worker, the frame and the time so far. Each stall also counts in
  /// worker_stats::stalls. A task that busy-loops or blocks its thread (a lock, a system call)
  /// without co_await is what it finds; the workers pay one relaxed store of the frame per poll,
  /// next to the tick they count anyway, and no clock read (benchmarks/RESULTS.md). 0 (or negative): off, and no watchdog thread starts.
  /// The time is wall time: a worker thread the OS leaves descheduled (an oversubscribed machine,
  /// a sanitizer build) is reported as well. Capped at one day. The environment variable CORIO_STALL_MS sets it where the program left
  /// it at its default of 100 ms. Tokio has no such detector (tokio-console's "lost waker" and
  /// busy-task lints come closest; Go's scheduler preempts instead).
  std::chrono::milliseconds stall_threshold{100};
  /// Receives the stall detector's reports instead of stderr. Runs on the watchdog thread, one
  /// call at a time; must not throw (an exception is caught and ignored) and should not block for
  /// long (the other workers are not looked at meanwhile).
  std::function<void(const stall_report&)> on_stall{};

  // Task hooks (Tokio's on_task_spawn, on_task_terminate, on_before_task_poll and
  // on_after_task_poll), for a program's own tracing. Each is called with an id (see below) and
  // task_hook_data. Plain function pointers rather than std::function: an unset hook costs one
  // load of a flag the worker keeps next to its queues and one never-taken branch, and a set one
  // an indirect call with no wrapper to go through. docs/internals.md, "Polls", says exactly where
  // polls begin and end.
  /// Called when a task is spawned (corio::spawn, spawn_on, runtime::spawn, block_on's root
  /// task), on the spawning thread (a worker, or the thread calling runtime::spawn), before the
  /// task can run, with the address of the task's frame. Not for when_all's children, which are
  /// part of the task that awaits them. A spawn that throws calls nothing.
  task_hook on_task_spawn = nullptr;
  /// Called once for every task on_task_spawn was called for: when it finishes (returns or
  /// throws), on the worker that ran it, at its final suspend point, inside its last poll (before
  /// that poll's after_task_poll) while its frame is alive; or, for a task that never finished,
  /// when the runtime's shutdown destroys it, on the thread that shuts down. Same id as at spawn.
  task_hook on_task_terminate = nullptr;
  /// Called on the worker as a poll of a task begins: before the worker loop resumes it, and at
  /// each hand-off by symmetric transfer to a task taken from the queues or to a joiner (after
  /// the after_task_poll of the task that handed over), with the frame about to run: the task's
  /// own frame, or that of a coroutine it awaits inline where it was suspended, or a when_all
  /// child's frame. So an id is a frame, and equals the spawn id only while the task is suspended
  /// in its own body.
  task_hook before_task_poll = nullptr;
  /// Called on the worker when that poll ends: the task suspended or finished and the thread goes
  /// back to the worker loop or to the next task, with the same id as its before_task_poll. Every
  /// before_task_poll is followed by exactly one after_task_poll on the same thread. The task may
  /// already be running on another worker by then (a wake raced with its suspension).
  task_hook after_task_poll = nullptr;
  /// The `data` argument of every task hook; corio never reads it.
  void* task_hook_data = nullptr;
};

/// Counters of a runtime's blocking pool (corio::spawn_blocking), a snapshot taken under the
/// pool's lock (consistent across its fields).
struct blocking_pool_stats {
  std::uint64_t threads = 0;       ///< pool threads alive (running a job or idle)
  std::uint64_t idle_threads = 0;  ///< pool threads waiting for a job
  std::uint64_t queued = 0;        ///< jobs waiting for a thread
  std::uint64_t jobs_run = 0;      ///< jobs a pool thread took since start (counted as they start; cancelled or dropped ones never)
};

/// Counters of one worker since start. Each is written only by its worker and read with relaxed
/// loads, so a snapshot is consistent per counter, not across counters.
struct worker_stats {
  std::uint64_t polls = 0;          ///< tasks resumed from the run queues
  std::uint64_t steals = 0;         ///< tasks taken from another worker's queue
  std::uint64_t injections = 0;     ///< tasks taken from the injection queue
  std::uint64_t parks = 0;          ///< times the worker slept in its reactor
  std::uint64_t wakes = 0;          ///< wake-ups this worker sent to parked workers
  std::uint64_t io_submitted = 0;   ///< I/O operations handed to the reactor
  std::uint64_t io_completed = 0;   ///< I/O completions reaped
  std::uint64_t timers_fired = 0;   ///< sleeps that expired
  std::uint64_t budget_yields = 0;  ///< awaits turned into yields by the cooperation budget
  /// Multishot accepts armed on this worker's io_uring ring (the first of a listener and every
  /// re-arm after one ended: a full queue, an error, a cancel). 0 on Asio.
  std::uint64_t multishot_arms = 0;
  /// Connections a multishot accept on this worker's ring delivered (to a parked accept or to its
  /// listener's queue). 0 on Asio, or with CORIO_URING_NO_MULTISHOT=1.
  std::uint64_t multishot_accepts = 0;
  /// io_uring_enter system calls this worker's reactor made (submissions, reaps and waits;
  /// counted where liburing may enter the kernel). 0 on Asio.
  std::uint64_t uring_enters = 0;
  /// Wakes this worker sent to another worker as an IORING_OP_MSG_RING into its ring (Linux
  /// 5.18) instead of an eventfd write. 0 on Asio, or with CORIO_URING_NO_MSG_RING=1.
  std::uint64_t msg_ring_wakes = 0;
  /// Sends this worker's ring submitted as IORING_OP_SEND_ZC (runtime_options::send_zc_threshold;
  /// a write_all's resubmissions count each). 0 on Asio, with the threshold at 0, or with
  /// CORIO_URING_NO_SEND_ZC=1.
  std::uint64_t send_zc = 0;
  /// Multishot receives armed on this worker's io_uring ring (IORING_RECV_MULTISHOT, Linux 6.0):
  /// a stream's first read_lease and every re-arm after one ended (a full queue, a dry ring, the
  /// kernel). 0 on Asio, or with CORIO_URING_NO_MULTISHOT_RECV=1 or CORIO_URING_NO_BUFRING=1.
  std::uint64_t multishot_recv_arms = 0;
  /// Buffers of data the multishot receives on this worker's ring delivered (to a parked read or
  /// to the stream's queue). Compare with io_submitted: with multishot, reads cost no submission.
  std::uint64_t multishot_recvs = 0;
  /// Socket operations this worker's ring submitted with a linked IORING_OP_LINK_TIMEOUT (corio::timeout
  /// around one I/O operation under the real clock; a write_all's resubmissions count each). 0 on
  /// Asio, under manual_clock, or without CORIO_URING_LINK_TIMEOUT=1 (the default).
  std::uint64_t linked_timeouts = 0;
  /// Of those, link timeouts that expired (the deadline cancelled the operation, or came just as
  /// it completed).
  std::uint64_t linked_timeouts_fired = 0;
  // The worker's provided buffer ring (io_uring; net::tcp_stream::read_lease). All zero on Asio,
  // with CORIO_URING_NO_BUFRING=1, or before a task of this worker asked for a lease.
  std::uint64_t provided_buffers = 0;    ///< buffers in the ring (grows when it runs dry)
  std::uint64_t provided_in_use = 0;     ///< ring buffers held by leases (any thread releases them)
  std::uint64_t provided_enobufs = 0;    ///< receives that found the ring empty (ENOBUFS)
  std::uint64_t provided_grows = 0;      ///< times the ring was given more buffers
  std::uint64_t provided_fallbacks = 0;  ///< receives that went to a heap buffer as the ring stayed empty
  /// Stalls the stall detector reported on this worker (runtime_options::stall_threshold; once per
  /// stall). Written by the runtime's watchdog thread, not the worker.
  std::uint64_t stalls = 0;
};

/// A snapshot of a runtime's counters.
struct runtime_stats {
  std::string backend;               ///< the reactor in use: "io_uring" or "asio"
  std::string backend_features;      ///< e.g. "single_issuer,defer_taskrun", or "epoll" for Asio
  /// Why the runtime runs on Asio although io_uring was its first choice (the error of the
  /// io_uring set-up, or "CORIO_BACKEND=asio"); empty when it runs on its first choice.
  std::string backend_fallback;
  std::uint64_t seed = 0;            ///< the seed in use (runtime_options::seed, or the one drawn)
  /// Spawned tasks that have not finished. A snapshot of counters the workers keep without a
  /// lock: while tasks spawn and finish it may count a finishing task still, but never fewer
  /// than the tasks alive throughout the call (runtime::shutdown waits for it to reach 0).
  std::uint64_t live_tasks = 0;
  /// One entry per worker, in worker order (see worker_stats).
  std::vector<worker_stats> workers;
  /// The blocking pool (spawn_blocking).
  blocking_pool_stats blocking;
};

/// The M:N runtime: `options.workers` threads, each owning a run queue, an io_uring ring (created
/// on that thread) and a timer heap; tasks spawned on it run on any worker and migrate by work
/// stealing. The model is Go's scheduler (an M per P, local run queues, a global injection queue)
/// and Tokio's multi-threaded runtime.
///
/// Construction starts the workers, each with its reactor (options.backend): io_uring where the
/// kernel allows it (old kernels, seccomp and `kernel.io_uring_disabled` do not), Asio otherwise.
/// It throws std::system_error when a worker cannot set up the reactor it must use (the message
/// says which errno), std::invalid_argument for a backend corio was built without or an unknown
/// CORIO_BACKEND value. Destruction (or shutdown()) requests stop on every task and gives them
/// default_shutdown_grace to end, then stops the workers, cancels every operation still in a
/// reactor and reaps its completion, and only then destroys the frames of tasks that never
/// finished (their destructors run, closing what they hold). Spawning is thread-safe; shutdown() and the destructor must not be called from one of the
/// runtime's own workers.
class CORIO_API runtime {
 public:
  /// Starts `options.workers` worker threads, each with its reactor (see the class). Throws
  /// std::system_error or std::invalid_argument as the class says.
  explicit runtime(runtime_options options = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Spawns `t` on this runtime from any thread (a worker's local queue when called from one of its
  /// workers, the injection queue otherwise). Throws like corio::spawn; `name` as there (kept as a
  /// pointer: a string that outlives the task, or null).
  template <class T>
  join_handle<T> spawn(task<T> t, const char* name = nullptr) {
    if (!t.valid()) throw std::invalid_argument("corio::runtime::spawn: empty task");
    return join_handle<T>::spawn_on(impl_.get(), std::move(t), detail::unbound_worker, name);
  }

  /// As corio::spawn_on, from any thread: `t` runs only on worker number `worker`.
  template <class T>
  join_handle<T> spawn_on(unsigned worker, task<T> t, const char* name = nullptr) {
    if (!t.valid()) throw std::invalid_argument("corio::runtime::spawn_on: empty task");
    return join_handle<T>::spawn_on(impl_.get(), std::move(t), worker, name);
  }

  /// Runs `t` on this runtime and blocks the calling thread until it finishes; returns its result
  /// or rethrows its exception. Must not be called from one of this runtime's workers (it would
  /// block a worker): throws std::logic_error there.
  template <class T>
  T block_on(task<T> t);

  /// Every live spawned task of this runtime as text, Go's goroutine dump for corio: per task its
  /// number, its name (spawn's), its state (running on worker N; queued; or parked, with what it
  /// waits for in words: `recv on channel 0x…`, `recv fd 7`, `sleep until +1.200s`, `join task 12`,
  /// a lock, and for how long), its age, its worker, the task that spawned it, and its async stack:
  /// the coroutines it is suspended in, innermost first, each with its function and the file:line
  /// of its co_await. Tasks that only ever were awaited appear in their awaiter's stack; a
  /// when_all's children are not listed (their parent shows "when_all").
  ///
  /// Nothing is paused and nothing re-polled: each worker copies its own registry at its next loop
  /// turn (woken if it sleeps), frames freed meanwhile are kept until the dump ends, and a task's
  /// record is read with atomic loads (docs/internals.md, "The task dump"). A worker that does not
  /// answer within 300 ms (a poll that runs long) is named instead of its tasks. Blocks the caller
  /// for that long at most; callable from any thread, a task of this runtime included (its own
  /// worker answers at once); one dump at a time per runtime. Times are to the coarse clock's
  /// resolution (ms, refreshed when workers park and wake and by the stall watchdog). After
  /// shutdown() it returns at once, saying the runtime is shut down. Throws std::bad_alloc only.
  std::string dump_tasks() const;

  /// How long the destructor and shutdown() let tasks end after requesting their stop.
  static constexpr clock::duration default_shutdown_grace = std::chrono::seconds{1};

  /// Shuts the runtime down, Tokio's shutdown_timeout with structured cancellation: refuses new
  /// spawns (they throw std::runtime_error), requests stop on every task (the operation each is
  /// suspended in ends with operation_cancelled), and waits until every task has ended or `grace`
  /// (ns resolution; zero: no wait) has passed. Then it stops the workers, cancels and reaps every
  /// operation still in a reactor, and destroys the frames of the tasks still suspended (their
  /// destructors run and close what they hold; a join_handle to one throws operation_cancelled).
  /// Jobs of the blocking pool (spawn_blocking): queued ones are dropped (their tasks are among the
  /// destroyed), running ones are waited for even past `grace`, since a job may use its task's
  /// frame; so a job that never returns keeps shutdown waiting.
  /// Returns how many tasks had to be destroyed. Idempotent: later calls return 0. Not from one of
  /// the runtime's workers (throws std::logic_error). clock::duration::max() waits for as long as
  /// tasks live (a task that ignores its stop then keeps shutdown waiting).
  std::size_t shutdown(clock::duration grace);
  /// As shutdown(clock::duration), with `grace` any std::chrono duration, converted by
  /// to_clock_duration: one too large for the clock (a thousand years) saturates to no time limit.
  template <class Rep, class Period>
  std::size_t shutdown(std::chrono::duration<Rep, Period> grace) {
    return shutdown(to_clock_duration(grace));
  }
  /// shutdown(default_shutdown_grace), what the destructor does.
  void shutdown();

  /// The runtime's current time (corio::now() as its tasks see it). Thread-safe.
  [[nodiscard]] clock::time_point now() const noexcept;

  /// Manual clock only: moves time forward by `d` (negative: no-op) and wakes every worker so that
  /// due timers fire. Time stops at the end of the clock's range (the last microsecond before
  /// clock::time_point::max()), so advance(nanoseconds::max()) moves it there; deadlines after it
  /// never come, and every timed wait begun there never ends by itself. Thread-safe. Throws
  /// std::logic_error on a runtime with the steady clock.
  void advance(clock::duration d);
  /// As advance(clock::duration), with `d` any std::chrono duration, converted by
  /// to_clock_duration (one too large for the clock saturates).
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    advance(to_clock_duration(d));
  }

  /// Number of worker threads.
  [[nodiscard]] unsigned workers() const noexcept;

  /// Counters and the reactor in use. Thread-safe.
  [[nodiscard]] runtime_stats stats() const;

  /// The runtime's metrics (corio/metrics.hpp): Tokio's RuntimeMetrics set and the reactors'
  /// counters, per worker and global. Callable from any thread, also from the runtime's own tasks;
  /// takes no lock the workers take on their fast paths (the blocking pool's and the injection
  /// queue's size are read without theirs). A snapshot, consistent per counter, not across
  /// counters. After shutdown it reports the counters as they ended, with no live task. Render it
  /// with to_text, to_json or to_prometheus. Throws std::bad_alloc only.
  [[nodiscard]] runtime_metrics metrics() const;

  /// The reactor the workers run on: "io_uring" or "asio" (see io_backend). Thread-safe.
  [[nodiscard]] const char* backend() const noexcept;

 private:
  std::unique_ptr<detail::runtime_impl> impl_;
};

/// The number (0 .. workers-1) of the worker running the calling task, or std::nullopt on a thread
/// that is not a worker. Tasks migrate between workers at suspension points unless bound with
/// spawn_on, so the answer holds until the next co_await. Never throws; thread-safe.
CORIO_API std::optional<unsigned> this_worker_index() noexcept;

namespace detail {

/// The calling worker's number when it belongs to `rt` (any runtime when null), else nullopt.
CORIO_API std::optional<unsigned> current_worker_index(const runtime_impl* rt) noexcept;

/// A one-shot flag a plain thread can block on and a task can raise (mutex and condition
/// variable; the raiser touches nothing after the unlock, so the waiter may free it at once).
class CORIO_API blocking_signal {
 public:
  blocking_signal();
  ~blocking_signal();
  blocking_signal(const blocking_signal&) = delete;
  blocking_signal& operator=(const blocking_signal&) = delete;
  void raise() noexcept;
  void wait() noexcept;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

/// Throws std::logic_error when the calling thread is a worker of `rt`.
CORIO_API void check_not_on_worker(runtime_impl* rt);

template <class T>
struct block_on_result {
  std::optional<T> value;
  std::exception_ptr error;
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};
template <class T>
struct block_on_result<T&> {
  T* value = nullptr;
  std::exception_ptr error;
  T& take() {
    if (error) std::rethrow_exception(error);
    return *value;
  }
};
template <>
struct block_on_result<void> {
  std::exception_ptr error;
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

// Parameters by value and raw pointers on purpose: GCC 12 mishandles references and captures in
// coroutine lambdas (GCC PR 95599 lineage; C++ Core Guidelines CP.51).
template <class T>
task<void> block_on_root(task<T> t, block_on_result<T>* out, blocking_signal* done) {
  // Raises the signal however the frame ends: finished, or destroyed by a runtime shutdown while
  // suspended (then `out` keeps the operation_cancelled it was given).
  struct raise_on_exit {
    blocking_signal* signal;
    ~raise_on_exit() { signal->raise(); }  // the last touch of *out and *done
  } guard{done};
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
    } else if constexpr (std::is_reference_v<T>) {
      out->value = std::addressof(co_await std::move(t));
    } else {
      out->value.emplace(co_await std::move(t));
    }
    out->error = nullptr;
  } catch (...) {
    out->error = std::current_exception();
  }
  t = task<T>{};  // the task's frame (its locals and arguments) is gone before block_on returns
}

}  // namespace detail

template <class T>
T runtime::block_on(task<T> t) {
  detail::check_not_on_worker(impl_.get());
  detail::block_on_result<T> result;
  result.error =
      std::make_exception_ptr(operation_cancelled("corio: the runtime was shut down before the task finished", nullptr));
  detail::blocking_signal done;
  spawn(detail::block_on_root<T>(std::move(t), &result, &done)).detach();
  done.wait();
  return result.take();
}

/// Builds a runtime with `options`, runs `main_task` on it to completion, shuts the runtime down
/// and returns the task's result: for `task<int>` its value, for `task<void>` 0. An exception from
/// the task propagates out of run() after shutdown. The usual body of `main`.
template <class T>
auto run(task<T> main_task, runtime_options options = {}) {
  runtime rt{std::move(options)};
  if constexpr (std::is_void_v<T>) {
    rt.block_on(std::move(main_task));
    return 0;
  } else {
    return rt.block_on(std::move(main_task));
  }
}

}  // namespace corio
