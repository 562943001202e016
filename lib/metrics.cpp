// lib/metrics.cpp - the runtime's metrics snapshot (runtime_impl::metrics) and runtime_metrics
// rendered as text, JSON and the Prometheus exposition format.
#include "corio/metrics.hpp"

#include "runtime_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <string_view>

namespace corio {

namespace {

enum class kind : std::uint8_t { counter, gauge, seconds };

/// One per-worker figure: its field, its name (the C++ field's, which JSON and text use; Prometheus
/// adds `corio_worker_` and, for counters, `_total`), and its Prometheus help text.
struct worker_field {
  std::uint64_t worker_metrics::* field;
  std::string_view name;
  kind type;
  std::string_view help;
};

constexpr std::array worker_fields{
    worker_field{&worker_metrics::polls, "polls", kind::counter, "Tasks resumed from the run queues."},
    worker_field{&worker_metrics::steal_operations, "steal_operations", kind::counter,
                 "Steals that took at least one task from another worker."},
    worker_field{&worker_metrics::tasks_stolen, "tasks_stolen", kind::counter, "Tasks taken from other workers."},
    worker_field{&worker_metrics::injections, "injections", kind::counter,
                 "Tasks taken from the shared injection queue."},
    worker_field{&worker_metrics::parks, "parks", kind::counter, "Times the worker slept in its reactor."},
    worker_field{&worker_metrics::unparks, "unparks", kind::counter, "Times the worker woke from that sleep."},
    worker_field{&worker_metrics::noop_unparks, "noop_unparks", kind::counter,
                 "Wake-ups after which the worker found nothing to run."},
    worker_field{&worker_metrics::local_schedules, "local_schedules", kind::counter,
                 "Spawns and wake-ups into the worker's LIFO slot."},
    worker_field{&worker_metrics::overflows, "overflows", kind::counter,
                 "Times the stealable queue was full and half of it moved to the injection queue."},
    worker_field{&worker_metrics::budget_yields, "budget_yields", kind::counter,
                 "Awaits turned into yields by the cooperation budget."},
    worker_field{&worker_metrics::busy_ns, "busy", kind::seconds, "Time the worker was awake (not parked)."},
    worker_field{&worker_metrics::local_queue_depth, "local_queue_depth", kind::gauge,
                 "Tasks in the worker's stealable queue."},
    worker_field{&worker_metrics::spawned, "spawned", kind::counter, "Tasks spawned by tasks on this worker (spawn, when_all children)."},
    worker_field{&worker_metrics::wakes_sent, "wakes_sent", kind::counter,
                 "Wake-ups this worker sent to parked workers."},
    worker_field{&worker_metrics::timers_fired, "timers_fired", kind::counter, "Timers that expired."},
    worker_field{&worker_metrics::timers_pending, "timers_pending", kind::gauge, "Timers waiting in the wheel."},
    worker_field{&worker_metrics::io_submitted, "io_submitted", kind::counter,
                 "I/O operations handed to the reactor."},
    worker_field{&worker_metrics::io_completed, "io_completed", kind::counter, "I/O completions reaped."},
    worker_field{&worker_metrics::uring_enters, "uring_enters", kind::counter, "io_uring_enter system calls."},
    worker_field{&worker_metrics::cq_overflows, "cq_overflows", kind::counter,
                 "Completions the kernel dropped on a full completion queue."},
    worker_field{&worker_metrics::multishot_accept_arms, "multishot_accept_arms", kind::counter,
                 "Multishot accepts armed."},
    worker_field{&worker_metrics::multishot_accepts, "multishot_accepts", kind::counter,
                 "Connections multishot accepts delivered."},
    worker_field{&worker_metrics::multishot_recv_arms, "multishot_recv_arms", kind::counter,
                 "Multishot receives armed."},
    worker_field{&worker_metrics::multishot_recvs, "multishot_recvs", kind::counter,
                 "Buffers of data multishot receives delivered."},
    worker_field{&worker_metrics::msg_ring_wakes, "msg_ring_wakes", kind::counter,
                 "Wake-ups sent as IORING_OP_MSG_RING."},
    worker_field{&worker_metrics::send_zc, "send_zc", kind::counter, "Sends submitted as IORING_OP_SEND_ZC."},
    worker_field{&worker_metrics::linked_timeouts, "linked_timeouts", kind::counter,
                 "Operations submitted with a linked timeout."},
    worker_field{&worker_metrics::linked_timeouts_fired, "linked_timeouts_fired", kind::counter,
                 "Linked timeouts that expired."},
    worker_field{&worker_metrics::provided_buffers, "provided_buffers", kind::gauge,
                 "Buffers in the provided buffer ring."},
    worker_field{&worker_metrics::provided_in_use, "provided_in_use", kind::gauge,
                 "Provided buffers held by leases."},
    worker_field{&worker_metrics::provided_enobufs, "provided_enobufs", kind::counter,
                 "Receives that found the provided buffer ring empty."},
    worker_field{&worker_metrics::provided_grows, "provided_grows", kind::counter,
                 "Times the provided buffer ring was given more buffers."},
    worker_field{&worker_metrics::provided_fallbacks, "provided_fallbacks", kind::counter,
                 "Receives that went to a heap buffer as the ring stayed empty."},
};

/// One global figure.
struct global_field {
  std::uint64_t runtime_metrics::* field;
  std::string_view name;  ///< the C++ field's; Prometheus adds `corio_` and, for counters, `_total`
  kind type;
  std::string_view help;
};

constexpr std::array global_fields{
    global_field{&runtime_metrics::tasks_alive, "tasks_alive", kind::gauge, "Spawned tasks that have not finished."},
    global_field{&runtime_metrics::tasks_spawned, "tasks_spawned", kind::counter, "Tasks spawned since start."},
    global_field{&runtime_metrics::injection_queue_depth, "injection_queue_depth", kind::gauge,
                 "Tasks in the shared injection queue."},
    global_field{&runtime_metrics::blocking_threads, "blocking_threads", kind::gauge,
                 "Blocking-pool threads alive."},
    global_field{&runtime_metrics::blocking_idle_threads, "blocking_idle_threads", kind::gauge,
                 "Blocking-pool threads waiting for a job."},
    global_field{&runtime_metrics::blocking_queued, "blocking_queued", kind::gauge,
                 "Jobs waiting for a blocking-pool thread."},
    global_field{&runtime_metrics::blocking_jobs, "blocking_jobs", kind::counter,
                 "Jobs blocking-pool threads started."},
};

/// Seconds from ns, printed in the shortest form that reads back the same double.
double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

/// A string as a JSON string literal's contents (RFC 8259: quote, backslash and control characters).
void append_json_escaped(std::string& out, std::string_view s) {
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
}

/// A label value in the exposition format: backslash, quote and newline escaped.
void append_label_escaped(std::string& out, std::string_view s) {
  for (const char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

/// One per-worker histogram (runtime_options::timing_histograms): its field, its name (JSON and
/// text; Prometheus: corio_worker_<name>_seconds) and its help text.
struct histogram_field {
  duration_histogram worker_metrics::* field;
  std::string_view name;
  std::string_view help;
};

constexpr std::array histogram_fields{
    histogram_field{&worker_metrics::poll_time, "poll_time", "Time of each poll"},
    histogram_field{&worker_metrics::schedule_latency, "schedule_latency",
                    "Time from a task's queueing to the start of its poll"},
};

/// The `# HELP` and `# TYPE` lines of a family; returns its sample name.
std::string prometheus_family(std::string& out, std::string_view prefix, std::string_view name, kind type,
                              std::string_view help) {
  std::string full = fmt::format("{}{}{}", prefix, name,
                                 type == kind::counter ? "_total" : type == kind::seconds ? "_seconds_total" : "");
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", full, help, full,
                 type == kind::gauge ? "gauge" : "counter");
  return full;
}

}  // namespace

std::string to_text(const runtime_metrics& m) {
  std::string out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "backend {}, {} workers\n", m.backend, m.workers.size());
  for (const global_field& f : global_fields) fmt::format_to(it, "{} {}\n", f.name, m.*f.field);
  for (const worker_metrics& w : m.workers) {
    fmt::format_to(it, "worker {}:", w.index);
    for (const worker_field& f : worker_fields) {
      const std::uint64_t v = w.*f.field;
      if (v == 0) continue;
      if (f.type == kind::seconds) fmt::format_to(it, " {}={:.3f}s", f.name, seconds(v));
      else fmt::format_to(it, " {}={}", f.name, v);
    }
    if (m.timing_histograms) {
      for (const histogram_field& h : histogram_fields) {
        const duration_histogram& d = w.*h.field;
        if (d.count != 0) fmt::format_to(it, " {}(count={}, mean={}ns)", h.name, d.count, d.sum_ns / d.count);
      }
    }
    out += '\n';
  }
  return out;
}

std::string to_json(const runtime_metrics& m) {
  std::string out = "{\"backend\":\"";
  append_json_escaped(out, m.backend);
  out += '"';
  auto it = std::back_inserter(out);
  for (const global_field& f : global_fields) fmt::format_to(it, ",\"{}\":{}", f.name, m.*f.field);
  out += ",\"workers\":[";
  for (std::size_t i = 0; i < m.workers.size(); ++i) {
    const worker_metrics& w = m.workers[i];
    fmt::format_to(it, "{}{{\"index\":{}", i == 0 ? "" : ",", w.index);
    for (const worker_field& f : worker_fields) {
      // JSON keeps the field's unit (busy_ns), exact as an integer.
      fmt::format_to(it, ",\"{}{}\":{}", f.name, f.type == kind::seconds ? "_ns" : "", w.*f.field);
    }
    if (m.timing_histograms) {
      // Buckets as duration_histogram's: per bucket, not cumulative; upper bounds 128 << i ns.
      for (const histogram_field& h : histogram_fields) {
        const duration_histogram& d = w.*h.field;
        fmt::format_to(it, ",\"{}\":{{\"count\":{},\"sum_ns\":{},\"buckets\":[", h.name, d.count, d.sum_ns);
        for (std::size_t b = 0; b < duration_histogram::buckets; ++b) {
          fmt::format_to(it, "{}{}", b == 0 ? "" : ",", d.counts[b]);
        }
        out += "]}";
      }
    }
    out += '}';
  }
  fmt::format_to(it, "],\"timing_histograms\":{}}}", m.timing_histograms);
  return out;
}

std::string to_prometheus(const runtime_metrics& m) {
  std::string out;
  auto it = std::back_inserter(out);
  out += "# HELP corio_info The runtime's reactor.\n# TYPE corio_info gauge\ncorio_info{backend=\"";
  append_label_escaped(out, m.backend);
  out += "\"} 1\n";
  fmt::format_to(it, "# HELP corio_workers Worker threads.\n# TYPE corio_workers gauge\ncorio_workers {}\n",
                 m.workers.size());
  for (const global_field& f : global_fields) {
    const std::string name = prometheus_family(out, "corio_", f.name, f.type, f.help);
    fmt::format_to(it, "{} {}\n", name, m.*f.field);
  }
  for (const worker_field& f : worker_fields) {
    const std::string name = prometheus_family(out, "corio_worker_", f.name, f.type, f.help);
    for (const worker_metrics& w : m.workers) {
      if (f.type == kind::seconds) fmt::format_to(it, "{}{{worker=\"{}\"}} {}\n", name, w.index, seconds(w.*f.field));
      else fmt::format_to(it, "{}{{worker=\"{}\"}} {}\n", name, w.index, w.*f.field);
    }
  }
  if (m.timing_histograms) {
    for (const histogram_field& h : histogram_fields) {
      fmt::format_to(it, "# HELP corio_worker_{0}_seconds {1} (runtime_options::timing_histograms).\n"
                         "# TYPE corio_worker_{0}_seconds histogram\n", h.name, h.help);
      for (const worker_metrics& w : m.workers) {
        const duration_histogram& d = w.*h.field;
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < duration_histogram::buckets; ++b) {
          cumulative += d.counts[b];
          fmt::format_to(it, "corio_worker_{}_seconds_bucket{{worker=\"{}\",le=\"{}\"}} {}\n", h.name, w.index,
                         seconds(duration_histogram::upper_bound_ns(b)), cumulative);
        }
        fmt::format_to(it, "corio_worker_{}_seconds_bucket{{worker=\"{}\",le=\"+Inf\"}} {}\n", h.name, w.index,
                       std::max(cumulative, d.count));
        fmt::format_to(it, "corio_worker_{}_seconds_sum{{worker=\"{}\"}} {}\n", h.name, w.index, seconds(d.sum_ns));
        fmt::format_to(it, "corio_worker_{}_seconds_count{{worker=\"{}\"}} {}\n", h.name, w.index,
                       std::max(cumulative, d.count));
      }
    }
  }
  return out;
}

}  // namespace corio

namespace corio::detail {

runtime_metrics runtime_impl::metrics() const {
  runtime_metrics m;
  m.timing_histograms = options_.timing_histograms;
  m.tasks_alive = live_tasks();
  m.tasks_spawned = foreign_spawned_.load(std::memory_order_relaxed);
  m.injection_queue_depth = injection_size_.load(std::memory_order_relaxed);
  const std::uint64_t now = steady_ns();
  m.workers.reserve(workers_.size());
  for (const auto& w : workers_) {
    add_backend_name(m.backend, w->reactor_name_);
    m.tasks_spawned += w->spawns.get();
    worker_metrics& x = m.workers.emplace_back();
    x.index = w->index();
    x.polls = w->tick();
    x.steal_operations = w->steal_operations.get();
    x.tasks_stolen = w->steals.get();
    x.injections = w->injections.get();
    x.parks = w->parks.get();
    x.unparks = w->unparks.get();
    x.noop_unparks = w->noop_unparks.get();
    x.local_schedules = w->local_schedules.get();
    x.overflows = w->overflows.get();
    x.budget_yields = w->budget_yields.get();
    // The current awake stretch too, read after the total: a park in between moves the stretch
    // into a total already read and clears its start, so it is missed once, never counted twice.
    x.busy_ns = w->busy_ns.get();
    const std::uint64_t awake_since = w->awake_since_ns.load(std::memory_order_acquire);
    if (awake_since != 0 && now > awake_since) x.busy_ns += now - awake_since;
    x.local_queue_depth = w->stealable_depth();
    x.spawned = w->spawns.get();
    x.wakes_sent = w->wakes.get();
    x.timers_fired = w->timers_fired.get();
    x.timers_pending = w->timers_pending.get();
    x.io_submitted = w->io_submitted.get();
    x.io_completed = w->io_completed.get();
    const reactor_counters& r = w->reactor_counts;
    x.uring_enters = r.enters.get();
    x.multishot_accept_arms = r.multishot_arms.get();
    x.multishot_accepts = r.multishot_accepts.get();
    x.multishot_recv_arms = r.multishot_recv_arms.get();
    x.multishot_recvs = r.multishot_recvs.get();
    x.msg_ring_wakes = r.msg_ring_wakes.get();
    x.send_zc = r.send_zc.get();
    x.linked_timeouts = r.linked_timeouts.get();
    x.linked_timeouts_fired = r.linked_timeouts_fired.get();
    // Buckets before the count (timing_histogram::read): a duration being recorded may be in the
    // count and not in its bucket yet, never the other way round.
    x.poll_time = w->poll_time.read();
    x.schedule_latency = w->schedule_latency.read();
    if (w->reactor_) {
      x.cq_overflows = w->reactor_->cq_overflows();
      const provided_buffer_stats b = w->reactor_->buffer_stats();
      x.provided_buffers = b.buffers;
      x.provided_in_use = b.in_use;
      x.provided_enobufs = b.enobufs;
      x.provided_grows = b.grows;
      x.provided_fallbacks = b.fallbacks;
    }
  }
  const blocking_pool_stats b = blocking_.stats();
  m.blocking_threads = b.threads;
  m.blocking_idle_threads = b.idle_threads;
  m.blocking_queued = b.queued;
  m.blocking_jobs = b.jobs_run;
  return m;
}

}  // namespace corio::detail
