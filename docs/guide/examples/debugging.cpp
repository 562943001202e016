// Debugging and observability: named tasks, the task dump, the stall detector, metrics.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <corio/corio.hpp>

using namespace std::chrono_literals;

corio::task<void> waiter(corio::channel<int> ch) {
  std::optional<int> v = co_await ch.recv();  // parked: the dump says "recv on channel 0x..."
  (void)v;
}

// Blocks its worker's thread without co_await: what the stall detector reports.
corio::task<void> blocks_its_worker() {
  std::this_thread::sleep_for(300ms);  // never do this in a task: use spawn_blocking
  co_return;
}

corio::task<int> amain(corio::runtime* rt) {
  corio::channel<int> ch{0};
  corio::join_handle<void> w = corio::spawn(waiter(ch), "waiter");  // the name shows in the dump
  co_await corio::sleep_for(20ms);

  // Every live task: number, name, state and what it waits for, age, worker, async stack.
  const std::string dump = rt->dump_tasks();
  std::fputs(dump.c_str(), stdout);

  co_await corio::spawn(blocks_its_worker(), "blocker");  // reported once, to on_stall below
  ch.close();
  co_await w;

  // Metrics: Tokio's RuntimeMetrics set, per worker and global, as text, JSON or Prometheus.
  const corio::runtime_metrics m = rt->metrics();
  const std::string prometheus = corio::to_prometheus(m);
  std::printf("%s\n%zu bytes of Prometheus text, %llu tasks spawned\n", corio::to_text(m).c_str(), prometheus.size(),
              static_cast<unsigned long long>(m.tasks_spawned));
  co_return dump.find("\"waiter\"") != std::string::npos ? 0 : 1;
}

int main() {
  corio::runtime_options options;
  options.workers = 2;
  options.stall_threshold = 100ms;  // the default; 0 turns the detector off (or CORIO_STALL_MS)
  options.on_stall = [](const corio::stall_report& r) {  // default: one line on stderr
    std::fprintf(stderr, "stall: worker %u ran one poll for %lld ms (task %llu \"%s\")\n", r.worker,
                 static_cast<long long>(r.running.count()), static_cast<unsigned long long>(r.task_id),
                 r.name != nullptr ? r.name : "");
  };
  corio::runtime rt{options};
  return rt.block_on(amain(&rt));
}
