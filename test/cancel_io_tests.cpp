// Suite "cancel", I/O part: cancelling a task blocked in accept, recv or send (on either reactor:
// the suite also runs under `meson test --setup asio`), the race of a recv with its cancel (no
// byte lost), and corio::signal. Manual time that nobody advances: nothing but the cancel can end
// a wait.
#include <corio/corio.hpp>
#include <doctest/doctest.h>
#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <winsock2.h>
#include <windows.h>  // CTRL_C_EVENT ...
#else
#include <sys/socket.h>
#include <unistd.h>
#endif

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "stream_pair.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_test::accept_one;
using corio_test::connected_pair;
using corio_test::hang_guard;
using corio_test::stream_pair;
using corio_test::open_descriptors;

#if !defined(MSG_NOSIGNAL)
#define MSG_NOSIGNAL 0  // Windows: no SIGPIPE to suppress
#endif
using corio_test::scaled;

namespace {

enum outcome : int { none = 0, cancelled = 1, returned = 2, failed = 3 };

corio::runtime_options options(unsigned workers) {
  return corio::runtime_options{.workers = workers, .clock = corio::manual_clock};
}

std::uint64_t submitted(const corio::runtime& rt) {
  return corio_test::worker_sum(rt, &corio::worker_stats::io_submitted);
}

/// Yields until `pred` holds (inside a task; the manual clock never moves).
template <class Pred>
corio::task<void> until(Pred pred) {
  while (!pred()) co_await corio::yield();
}

corio::task<int> join_outcome(corio::join_handle<void> h) {
  try {
    co_await h;
    co_return returned;
  } catch (const corio::operation_cancelled&) {
    co_return cancelled;
  } catch (...) {
    co_return failed;
  }
}

corio::task<void> accept_forever(tcp_listener* l) {
  tcp_stream s = co_await l->accept();
  (void)s;
}

corio::task<void> recv_forever(tcp_stream* s) {
  std::array<std::byte, 64> buf{};
  (void)co_await s->read_some(buf);
}

corio::task<void> send_forever(tcp_stream* s, std::vector<std::byte>* data) {
  (void)co_await s->write_all(*data);  // the peer never reads: blocks once the buffers are full
}

enum class op { accept, recv, send };

/// A task blocked in `kind` (submitted, so the wait is in the reactor), cancelled from another
/// task (`from_thread` false) or a plain thread: it ends with operation_cancelled and every
/// descriptor the test opened is closed afterwards.
void blocked_then_cancelled(unsigned workers, op kind, bool from_thread) {
  hang_guard guard{"blocked_then_cancelled", 60s};
  const std::size_t before = open_descriptors();
  {
    corio::runtime rt{options(workers)};
    int result = none;
    {
      tcp_listener listener = tcp_listener::bind("127.0.0.1:0");
      stream_pair pair = rt.block_on(connected_pair());
      std::vector<std::byte> big(64u << 20);  // more than loopback socket buffers hold
      const std::uint64_t base = submitted(rt);
      corio::join_handle<void> h = kind == op::accept ? rt.spawn(accept_forever(&listener))
                                   : kind == op::recv ? rt.spawn(recv_forever(&pair.a))
                                                      : rt.spawn(send_forever(&pair.a, &big));
      if (from_thread) {
        // The victim's operation reached its reactor; for send, wait until it stopped making progress.
        while (submitted(rt) == base) std::this_thread::sleep_for(1ms);
        if (kind == op::send) std::this_thread::sleep_for(50ms);
        std::thread canceller{[&h] { CHECK(h.cancel()); }};
        canceller.join();
        result = rt.block_on(join_outcome(std::move(h)));
      } else {
        result = rt.block_on([](corio::runtime* r, std::uint64_t b, corio::join_handle<void> victim,
                                op k) -> corio::task<int> {
          co_await until([r, b] { return submitted(*r) != b; });
          if (k == op::send) {
            for (int i = 0; i < 1000; ++i) co_await corio::yield();
          }
          CHECK(victim.cancel());
          co_return co_await join_outcome(std::move(victim));
        }(&rt, base, std::move(h), kind));
      }
    }
    CHECK(result == cancelled);
  }
  CHECK(open_descriptors() == before);
}

/// Waits for a byte that never comes and notes the manual time at which the wait ended.
corio::task<void> recv_noting_end(tcp_stream* s, std::atomic<bool>* started, std::atomic<std::int64_t>* ended_ns) {
  started->store(true);
  std::array<std::byte, 1> b{};
  try {
    auto n = co_await s->read_some(b);
    (void)n;
  } catch (const corio::operation_cancelled&) {
  }
  ended_ns->store(corio::now().time_since_epoch().count());
}

corio::task<void> sleep_a_day() { co_await corio::sleep_for(24h); }

/// On worker 1: cancels a recv parked in worker 0's reactor, then parks itself (joining it) while
/// a 24 h sleep of its own is the only timer. Returns the manual time the recv saw, from the start.
corio::task<std::int64_t> cancel_recv_on_other_worker() {
  const auto start_ns = corio::now().time_since_epoch().count();
  auto p = co_await connected_pair();
  std::atomic<bool> started{false};
  std::atomic<std::int64_t> ended_ns{-1};
  auto sleeper = corio::spawn(sleep_a_day());
  auto recv = corio::spawn_on(0, recv_noting_end(&p.b, &started, &ended_ns));
  co_await until([&started] { return started.load(); });
  for (int i = 0; i < 100; ++i) co_await corio::yield();  // the recv is in worker 0's reactor
  recv.cancel();
  co_await recv;
  sleeper.cancel();
  try {
    co_await sleeper;
  } catch (const corio::operation_cancelled&) {
  }
  co_return ended_ns.load() - start_ns;
}

corio::task<std::int64_t> cancel_recv_from_worker_1() { co_return co_await corio::spawn_on(1, cancel_recv_on_other_worker()); }

}  // namespace

TEST_CASE("I/O cancel: accept, recv and send blocked in the reactor end with operation_cancelled") {
  for (unsigned workers : {1u, 4u}) {
    for (op kind : {op::accept, op::recv, op::send}) {
      for (bool from_thread : {false, true}) {
        CAPTURE(workers);
        CAPTURE(static_cast<int>(kind));
        CAPTURE(from_thread);
        blocked_then_cancelled(workers, kind, from_thread);
      }
    }
  }
}

namespace {
corio::task<void> recv_after_flag(std::atomic<bool>* go, tcp_stream* s) {
  while (!go->load()) co_await corio::yield();
  std::array<std::byte, 8> buf{};
  (void)co_await s->read_some(buf);
}

corio::task<void> recv_ec_after_flag(std::atomic<bool>* go, tcp_stream* s, std::error_code* ec) {
  while (!go->load()) co_await corio::yield();
  std::array<std::byte, 8> buf{};
  (void)co_await s->read_some(buf, *ec);  // the error_code form: no exception
}
}  // namespace

TEST_CASE("I/O cancel: stop requested before the operation suspends: nothing is submitted") {
  hang_guard guard{"cancel before suspend", 60s};
  corio::runtime rt{options(1)};
  stream_pair pair = rt.block_on(connected_pair());
  std::atomic<bool> go{false};
  auto h = rt.spawn(recv_after_flag(&go, &pair.a));
  CHECK(h.cancel());
  const std::uint64_t base = submitted(rt);
  go.store(true);
  CHECK(rt.block_on(join_outcome(std::move(h))) == cancelled);
  CHECK(submitted(rt) == base);
}

TEST_CASE("I/O cancel: the error_code form reports std::errc::operation_canceled") {
  hang_guard guard{"error_code form", 60s};
  corio::runtime rt{options(1)};
  stream_pair pair = rt.block_on(connected_pair());
  std::atomic<bool> go{false};
  std::error_code ec;
  auto h = rt.spawn(recv_ec_after_flag(&go, &pair.a, &ec));
  CHECK(h.cancel());
  go.store(true);
  CHECK(rt.block_on(join_outcome(std::move(h))) == returned);
  CHECK(ec == std::errc::operation_canceled);
}

namespace {
corio::task<int> read_one(tcp_stream* s, std::atomic<bool>* started) {
  std::array<std::byte, 1> buf{};
  started->store(true);
  try {
    const std::size_t n = co_await s->read_some(buf);
    co_return static_cast<int>(n);
  } catch (const corio::operation_cancelled&) {
    co_return -1;
  }
}

corio::task<int> join_int(corio::join_handle<int> h) { co_return co_await h; }

/// One round: a recv of one byte races its cancel and the peer's one-byte send; afterwards the
/// byte was either returned by that recv or is still there for the next one.
corio::task<int> race_round(stream_pair* p, unsigned order, unsigned spins) {
  std::atomic<bool> started{false};
  auto h = corio::spawn(read_one(&p->a, &started));
  while (!started.load()) co_await corio::yield();
  for (unsigned i = 0; i < spins; ++i) co_await corio::yield();
  const char byte = 'x';
  if (order == 0) h.cancel();
  REQUIRE(::send(p->b.native_handle(), &byte, 1, MSG_NOSIGNAL) == 1);
  if (order != 0) h.cancel();
  const int got = co_await join_int(std::move(h));
  if (got == 1) co_return 1;
  REQUIRE(got == -1);
  std::array<std::byte, 4> buf{};
  const std::size_t n = co_await p->a.read_some(buf);  // not cancelled: this task's stop is clear
  REQUIRE(n == 1);
  co_return 0;
}

struct race_outcomes {
  int counts[2] = {0, 0};  // [0] cancelled (byte read later), [1] received by the raced recv
  int operator[](std::size_t i) const { return counts[i]; }
};

corio::task<race_outcomes> race_rounds(std::size_t rounds, std::uint64_t seed) {
  stream_pair p = co_await connected_pair();
  std::mt19937_64 random{seed};
  race_outcomes outcomes;
  for (std::size_t i = 0; i < rounds; ++i) {
    const int r = co_await race_round(&p, static_cast<unsigned>(random() % 2), static_cast<unsigned>(random() % 4));
    ++outcomes.counts[r];
  }
  co_return outcomes;
}
}  // namespace

TEST_CASE("I/O cancel: a recv racing its cancel never loses the byte") {
  hang_guard guard{"recv race", 120s};
  const std::uint64_t seed = corio_test::test_seed();
  const std::size_t before = open_descriptors();
  for (unsigned workers : {1u, 4u}) {
    corio::runtime rt{options(workers)};
    const auto outcomes = rt.block_on(race_rounds(scaled(500), seed));
    MESSAGE(workers << " workers: " << outcomes[1] << " received, " << outcomes[0] << " cancelled");
    CHECK(outcomes[0] + outcomes[1] == static_cast<int>(scaled(500)));
  }
  CHECK(open_descriptors() == before);
}

// --- corio::signal ------------------------------------------------------------------------------

namespace {
corio::task<int> wait_signal(int s) { co_return co_await corio::signal({s}); }
corio::task<int> wait_signal_outcome(int s) {
  try {
    co_return co_await corio::signal({s});
  } catch (const corio::operation_cancelled&) {
    co_return -1;
  }
}
corio::task<int> join_signal(corio::join_handle<int> h) { co_return co_await h; }

#if defined(_WIN32)
// Windows has SIGINT and SIGTERM only (corio/signal.hpp); raise() delivers them in this process.
constexpr int signal_a = SIGINT, signal_b = SIGTERM;
int send_to_self(int s) { return std::raise(s); }
#else
constexpr int signal_a = SIGUSR1, signal_b = SIGUSR2;
int send_to_self(int s) { return ::kill(::getpid(), s); }
#endif

/// Waits (from a plain thread) until `n` more operations reached the reactors than `base`.
void wait_submitted(const corio::runtime& rt, std::uint64_t target) {
  while (submitted(rt) < target) std::this_thread::sleep_for(1ms);
}
}  // namespace

TEST_CASE("signal: a wait returns the signal that arrived; waits repeat; cancelling one throws") {
  hang_guard guard{"signal", 60s};
  const std::size_t before = open_descriptors();
  for (unsigned workers : {1u, 4u}) {
    corio::runtime rt{options(workers)};
    for (int round = 0; round < 3; ++round) {
      const std::uint64_t base = submitted(rt);
      auto h = rt.spawn(wait_signal(signal_a));
      wait_submitted(rt, base + 1);  // its read is in the reactor
      REQUIRE(send_to_self(signal_a) == 0);
      CHECK(rt.block_on(join_signal(std::move(h))) == signal_a);
    }
    {  // two waits at once both see it
      const std::uint64_t base = submitted(rt);
      auto h1 = rt.spawn(wait_signal(signal_a));
      auto h2 = rt.spawn(wait_signal(signal_a));
      wait_submitted(rt, base + 2);
      REQUIRE(std::raise(signal_a) == 0);
      CHECK(rt.block_on(join_signal(std::move(h1))) == signal_a);
      CHECK(rt.block_on(join_signal(std::move(h2))) == signal_a);
    }
    {  // cancelled: operation_cancelled, and a later signal still reaches the next wait
      const std::uint64_t base = submitted(rt);
      auto h = rt.spawn(wait_signal_outcome(signal_b));
      wait_submitted(rt, base + 1);
      CHECK(h.cancel());
      CHECK(rt.block_on(join_signal(std::move(h))) == -1);
      REQUIRE(std::raise(signal_b) == 0);  // nobody waits: remembered
      CHECK(rt.block_on(wait_signal(signal_b)) == signal_b);
    }
  }
  CHECK(open_descriptors() == before);
}

TEST_CASE("signal: bad signal numbers are std::system_error EINVAL") {
  corio::runtime rt{options(1)};
#if defined(_WIN32)
  // Windows has no other signal to wait for: ENOTSUP, "not supported on this platform".
  for (int s : {SIGSEGV, SIGABRT, SIGBREAK, 9}) {
    CAPTURE(s);
    try {
      (void)rt.block_on(wait_signal(s));
      FAIL("no error");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::not_supported);
      CHECK(std::string{e.what()}.find("not supported on this platform") != std::string::npos);
    }
  }
#else
  CHECK_THROWS_AS(rt.block_on(wait_signal(SIGKILL)), std::system_error);
#endif
  CHECK_THROWS_AS(rt.block_on(wait_signal(0)), std::system_error);
  CHECK_THROWS_AS(rt.block_on(wait_signal(65)), std::system_error);
}

#if defined(_WIN32)
TEST_CASE("signal: console control events arrive as SIGINT (Ctrl+C) and SIGTERM (break, close, shutdown)") {
  // The handler registered with SetConsoleCtrlHandler is called here through the function it
  // calls first (deliver_console_event): GenerateConsoleCtrlEvent needs a console shared with the
  // test, which a CI run under Wine does not have.
  hang_guard guard{"console events", 60s};
  CHECK(corio::detail::signal_of_console_event(CTRL_C_EVENT) == SIGINT);
  CHECK(corio::detail::signal_of_console_event(CTRL_LOGOFF_EVENT) == 0);
  corio::runtime rt{options(2)};
  for (unsigned long event : {CTRL_C_EVENT, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_SHUTDOWN_EVENT}) {
    CAPTURE(event);
    const int expected = event == CTRL_C_EVENT ? SIGINT : SIGTERM;
    const std::uint64_t base = submitted(rt);
    auto h = rt.spawn(wait_signal(expected));
    wait_submitted(rt, base + 1);
    CHECK(corio::detail::deliver_console_event(event));
    CHECK(rt.block_on(join_signal(std::move(h))) == expected);
  }
  CHECK_FALSE(corio::detail::deliver_console_event(CTRL_LOGOFF_EVENT));  // left to the next handler
}
#endif

namespace {

// A connect to a listener whose accept queue is full stays pending (the kernel drops the SYN and
// the client retransmits), so only its cancellation can end it soon.
corio::task<int> connect_outcome(endpoint ep) {
  try {
    tcp_stream s = co_await tcp_stream::connect(ep);
    co_return returned;  // `s` is closed here
  } catch (const corio::operation_cancelled&) {
    co_return cancelled;
  } catch (...) {
    co_return failed;
  }
}

corio::task<int> join_connect(corio::join_handle<int> h) { co_return co_await h; }

}  // namespace

TEST_CASE("I/O cancel: a connect left pending by a full accept queue ends with operation_cancelled") {
  hang_guard guard{"connect cancel", std::chrono::seconds{120}};
  const std::size_t before = open_descriptors();
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    tcp_listener listener = tcp_listener::bind("127.0.0.1:0", 1);  // never accepted from
    const endpoint ep = listener.local_endpoint();
    std::vector<corio::join_handle<int>> connects;
    for (int i = 0; i < 8; ++i) connects.push_back(rt.spawn(connect_outcome(ep)));
    std::this_thread::sleep_for(300ms);  // the queue fills; the rest wait for a SYN-ACK
    int done = 0, was_cancelled = 0;
    for (auto& h : connects) {
      h.cancel();
      const int r = rt.block_on(join_connect(std::move(h)));
      CHECK(r != failed);
      done += r == returned ? 1 : 0;
      was_cancelled += r == cancelled ? 1 : 0;
    }
    CHECK(done + was_cancelled == 8);
    CHECK(was_cancelled >= 1);  // at least one connect could only end by its cancellation
  }
  CHECK(open_descriptors() == before);
}

TEST_CASE("I/O cancel: the manual clock does not move while a cancelled recv's worker is still to run it") {
  // The canceller's worker parks right after the cancel; the recv's worker, woken through its
  // cancel inbox, must not count as idle, or the idle runtime jumps the time to the 24 h sleep.
  hang_guard guard{"manual clock and an I/O cancel", 120s};
  const int rounds = static_cast<int>(scaled(30));
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    corio::runtime rt{options(2)};
    const std::int64_t seen = rt.block_on(cancel_recv_from_worker_1());
    CHECK(seen >= 0);
    CHECK(seen < std::chrono::nanoseconds{1h}.count());
  }
}
