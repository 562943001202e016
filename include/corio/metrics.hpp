// corio/metrics.hpp - a runtime's metrics (runtime::metrics()) and their renderings as text, JSON
// and the Prometheus exposition format.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace corio {

/// Durations counted in buckets whose upper bounds double: bucket i counts the durations in
/// (upper_bound_ns(i-1), upper_bound_ns(i)] (bucket 0 from 0), from 128 ns to about 1.07 s; longer
/// ones count only in `count` and `sum_ns` (Prometheus' `le="+Inf"`). Tokio's poll-time histogram
/// uses the same log scale (its HistogramScale::Log).
struct duration_histogram {
  static constexpr std::size_t buckets = 24;  ///< number of finite buckets
  /// The upper bound of bucket `i` (0 .. buckets-1), in ns: 128 << i.
  static constexpr std::uint64_t upper_bound_ns(std::size_t i) noexcept { return std::uint64_t{128} << i; }
  std::array<std::uint64_t, buckets> counts{};  ///< per bucket, not cumulative
  std::uint64_t count = 0;                      ///< every duration recorded, the longest ones included
  std::uint64_t sum_ns = 0;                     ///< their sum, in ns
};

/// Counters of one worker since the runtime started, as runtime::metrics() read them. Each counter
/// is written only by its worker (a relaxed load and a store, no locked instruction) and read with
/// an acquire load, so a snapshot is consistent per counter, not across counters. The set follows
/// Tokio's RuntimeMetrics (tokio::runtime::RuntimeMetrics, worker_* functions) and adds what
/// corio's reactors count. All counts only grow, except those said to be a snapshot.
struct worker_metrics {
  unsigned index = 0;                ///< the worker's number, 0 .. workers-1
  std::uint64_t polls = 0;           ///< tasks resumed from the run queues (Tokio: worker_poll_count)
  std::uint64_t steal_operations = 0;  ///< steals that took at least one task from another worker
  std::uint64_t tasks_stolen = 0;    ///< tasks taken by those steals (Tokio: worker_steal_count)
  std::uint64_t injections = 0;      ///< tasks taken from the shared injection queue
  std::uint64_t parks = 0;           ///< times the worker went to sleep in its reactor (Tokio: worker_park_count)
  std::uint64_t unparks = 0;         ///< times it woke up from that sleep (a completion, a timer, a wake)
  /// Wake-ups after which the worker found nothing to run and parked again (Tokio:
  /// worker_noop_count).
  std::uint64_t noop_unparks = 0;
  /// Tasks woken into this worker's LIFO slot by one of its own tasks (Tokio's
  /// worker_local_schedule_count counts spawns there too; corio counts those in `spawned` only, so
  /// that a spawn pays one counter).
  std::uint64_t local_schedules = 0;
  /// Times this worker's stealable queue was full, so that half of it moved to the injection queue
  /// (Tokio: worker_overflow_count).
  std::uint64_t overflows = 0;
  std::uint64_t budget_yields = 0;   ///< awaits turned into yields by the cooperation budget (runtime_options::budget)
  /// Time the worker was awake (not parked in its reactor) since start, in ns of the steady clock
  /// (also under the manual clock). Accumulated at each park, plus the current awake stretch when
  /// read (Tokio: worker_total_busy_duration, which also counts the time spent looking for work).
  std::uint64_t busy_ns = 0;
  /// Tasks in the worker's stealable queue now (a snapshot; Tokio: worker_local_queue_depth). Its
  /// LIFO slot and private queue, which only the worker itself reads, are not counted.
  std::uint64_t local_queue_depth = 0;
  /// Tasks spawned by tasks running on this worker: corio::spawn and the children of when_all and
  /// when_any (spawns from other threads count in runtime_metrics::tasks_spawned only).
  std::uint64_t spawned = 0;
  std::uint64_t wakes_sent = 0;      ///< wake-ups this worker sent to parked workers
  std::uint64_t timers_fired = 0;    ///< timers of this worker that expired (sleeps, timeouts)
  std::uint64_t timers_pending = 0;  ///< timers in this worker's wheel now (a snapshot)
  // The reactor (io_uring or Asio); see worker_stats for each.
  std::uint64_t io_submitted = 0;    ///< I/O operations handed to the reactor
  std::uint64_t io_completed = 0;    ///< I/O completions reaped
  std::uint64_t uring_enters = 0;    ///< io_uring_enter system calls (0 on Asio)
  /// Completions the kernel dropped because this worker's completion queue was full (the ring's
  /// cq.koverflow; kernels with IORING_FEAT_NODROP keep them instead and drop only when out of
  /// memory). 0 on Asio.
  std::uint64_t cq_overflows = 0;
  std::uint64_t multishot_accept_arms = 0;  ///< multishot accepts armed (io_uring)
  std::uint64_t multishot_accepts = 0;      ///< connections they delivered
  std::uint64_t multishot_recv_arms = 0;    ///< multishot receives armed (io_uring)
  std::uint64_t multishot_recvs = 0;        ///< buffers of data they delivered
  std::uint64_t msg_ring_wakes = 0;         ///< wakes sent as IORING_OP_MSG_RING
  std::uint64_t send_zc = 0;                ///< sends submitted as IORING_OP_SEND_ZC
  std::uint64_t linked_timeouts = 0;        ///< operations submitted with an IORING_OP_LINK_TIMEOUT
  std::uint64_t linked_timeouts_fired = 0;  ///< of those, the link timeouts that expired
  std::uint64_t provided_buffers = 0;       ///< buffers in the provided buffer ring (a snapshot)
  std::uint64_t provided_in_use = 0;        ///< of those, held by leases now (a snapshot)
  std::uint64_t provided_enobufs = 0;       ///< receives that found the ring empty (ENOBUFS)
  std::uint64_t provided_grows = 0;         ///< times the ring was given more buffers
  std::uint64_t provided_fallbacks = 0;     ///< receives that went to a heap buffer as the ring stayed empty
  /// Poll times (runtime_options::timing_histograms; all zero when it is off). Each bucket is
  /// read on its own: count may run ahead of the buckets' sum by the polls being recorded.
  duration_histogram poll_time;
  /// Schedule latencies (runtime_options::timing_histograms; all zero when it is off): for each
  /// poll of a task that had been queued, the time from its queueing (a spawn, a wake-up, an I/O
  /// completion, a timer, a yield through the FIFO list, a bound task's delivery) to the start of
  /// that poll, counted on the worker that runs it. A task resumed without a queue (a joiner
  /// resumed by the task it joined, a yield on yield's fast path, which swaps the task with
  /// the front of the FIFO list, a when_all child run inline) is not counted. Latencies past 4.5 minutes wrap (the stamp
  /// keeps 32 bits of 64 ns units). Go's trace calls this scheduler latency; tokio-console shows
  /// it per task as "scheduled" time.
  duration_histogram schedule_latency;
};

/// A snapshot of a runtime's metrics (runtime::metrics()): the global figures and one
/// worker_metrics per worker. Counters are read one by one without stopping the workers, so the
/// snapshot is consistent per counter, not across counters (a sum may lag one of its terms).
struct runtime_metrics {
  std::string backend;               ///< the reactor in use: "io_uring" or "asio"
  /// runtime_options::timing_histograms: the poll-time and schedule-latency histograms are filled
  /// (and rendered).
  bool timing_histograms = false;
  /// Spawned tasks that have not finished (Tokio: num_alive_tasks); see runtime_stats::live_tasks.
  std::uint64_t tasks_alive = 0;
  /// Tasks spawned since start, from the workers and from other threads (Tokio: spawned_tasks_count).
  std::uint64_t tasks_spawned = 0;
  std::uint64_t injection_queue_depth = 0;  ///< tasks in the shared injection queue now (Tokio: global_queue_depth)
  std::uint64_t blocking_threads = 0;       ///< blocking-pool threads alive (Tokio: num_blocking_threads)
  std::uint64_t blocking_idle_threads = 0;  ///< of those, idle (Tokio: num_idle_blocking_threads)
  std::uint64_t blocking_queued = 0;        ///< jobs waiting for a pool thread (Tokio: blocking_queue_depth)
  std::uint64_t blocking_jobs = 0;          ///< jobs a pool thread started since start
  std::vector<worker_metrics> workers;      ///< one per worker, in index order

  /// The sum of `field` over the workers, e.g. `m.total(&worker_metrics::polls)`.
  [[nodiscard]] std::uint64_t total(std::uint64_t worker_metrics::* field) const noexcept {
    std::uint64_t sum = 0;
    for (const worker_metrics& w : workers) sum += w.*field;
    return sum;
  }
};

/// `m` as lines of text for people: the global figures, then one line per worker with the counters
/// that are not zero. Throws std::bad_alloc only.
[[nodiscard]] CORIO_API std::string to_text(const runtime_metrics& m);

/// `m` as one JSON object: the global figures as members, and "workers", an array of one object
/// per worker with every counter (the member names are the C++ field names). Throws std::bad_alloc
/// only.
[[nodiscard]] CORIO_API std::string to_json(const runtime_metrics& m);

/// `m` in the Prometheus text exposition format 0.0.4 (what an HTTP endpoint serves with
/// `Content-Type: text/plain; version=0.0.4`): each family with `# HELP` and `# TYPE` lines, names
/// prefixed `corio_`, counters ending in `_total`, per-worker families labelled `worker="N"`
/// (e.g. `corio_worker_polls_total{worker="0"}`), snapshots as gauges. README.md, "Metrics", lists
/// the families. Throws std::bad_alloc only.
[[nodiscard]] CORIO_API std::string to_prometheus(const runtime_metrics& m);

}  // namespace corio
