// Channels and select: buffered and rendezvous channels, close, timed and non-blocking forms,
// select with a timeout case and a default case, and a worker pool fed by one channel.
#include <cstdio>
#include <optional>
#include <string>
#include <variant>

#include <corio/corio.hpp>

using namespace std::chrono_literals;

// A worker of a pool: takes jobs until the channel is closed and drained, sends results on.
corio::task<void> worker(corio::channel<int> jobs, corio::channel<int> results, corio::wait_group* done) {
  while (std::optional<int> job = co_await jobs.recv()) co_await results.send(*job * 2);
  done->done();
}

// Closes `results` once every worker has finished (Go's "close after wg.Wait()").
corio::task<void> close_when_done(corio::wait_group* done, corio::channel<int> results) {
  co_await done->wait();
  results.close();
}

// Sends the jobs, then closes the channel: the workers drain what is queued, then get std::nullopt.
corio::task<void> feed(corio::channel<int> jobs, int n) {
  for (int i = 1; i <= n; ++i) co_await jobs.send(i);
  jobs.close();
}

corio::task<int> amain() {
  corio::channel<int> jobs{16};     // buffered: a send waits only when 16 values are queued
  corio::channel<int> results{0};   // rendezvous: a send waits for a receiver
  corio::wait_group done;
  done.add(3);
  for (int i = 0; i < 3; ++i) corio::spawn(worker(jobs, results, &done)).detach();
  corio::spawn(close_when_done(&done, results)).detach();
  // Feeding from a task of its own: were this task to send all 100 jobs before it receives, the
  // workers would wait on the rendezvous channel for it and it on the full jobs channel for them.
  corio::spawn(feed(jobs, 100)).detach();
  int total = 0;
  while (std::optional<int> r = co_await results.recv()) total += *r;

  // Non-blocking and timed forms report a status and hand back a value they did not deliver.
  corio::channel<std::string> mailbox{1};
  corio::send_result<std::string> first = mailbox.try_send("first");    // delivered: room for one
  corio::send_result<std::string> second = mailbox.try_send("second");  // would_block: full
  const bool refused = second.status == corio::channel_status::would_block && second.value == "second";
  corio::recv_result<std::string> got = co_await mailbox.recv_for(100ms);
  corio::recv_result<std::string> none = co_await mailbox.recv_for(10ms);  // timed_out: nothing came

  // select: the first ready case wins; its index is the variant's index.
  corio::channel<int> a{1};
  corio::channel<std::string> b{1};
  b.try_send("from b");
  auto r = co_await corio::select(a.recv_case(), b.recv_case(), corio::after(1s));
  std::string picked;
  if (r.index() == 1) picked = *std::get<1>(r);  // std::optional<std::string>: empty if b was closed
  // With nothing ready, default_case() is taken at once (Go's select with a default).
  auto idle = co_await corio::select(a.recv_case(), corio::default_case());
  // Without a default, after(d) bounds the wait.
  auto late = co_await corio::select(a.recv_case(), corio::after(50ms));

  std::printf("total %d, first %s, refused %s, got %s, none timed out %s, picked \"%s\", idle %zu, late %zu\n", total,
              first ? "delivered" : "not delivered", refused ? "yes" : "no", got.value.value_or("-").c_str(),
              none.status == corio::channel_status::timed_out ? "yes" : "no", picked.c_str(), idle.index(),
              late.index());
  const bool ok = total == 10100 && first && refused && got && !none && picked == "from b" && idle.index() == 1 &&
                  late.index() == 1;
  co_return ok ? 0 : 1;
}

int main() { return corio::run(amain()); }
