// Suite "cancel", linked timeouts: corio::timeout() around one socket operation on io_uring under
// the real clock goes out as an IORING_OP_LINK_TIMEOUT linked to the operation (no wheel timer).
// Every test runs both ways, with the link (CORIO_URING_LINK_TIMEOUT=1) and without it (the
// wheel's timer, the default), and on the Asio reactor under `meson test --setup asio` (the wheel): the
// outcomes must be the same. The real clock is needed here (the kernel knows nothing of
// manual_clock); deadlines are short and the assertions are about outcomes, never durations.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "stream_pair.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_test::accept_one;
using corio_test::connected_pair;
using corio_test::hang_guard;
using corio_test::stream_pair;
using corio_test::scoped_env;

namespace {

struct link_counts {
  std::uint64_t linked = 0;
  std::uint64_t fired = 0;
};

link_counts counts(const corio::runtime& rt) {
  link_counts c;
  for (const auto& w : rt.stats().workers) {
    c.linked += w.linked_timeouts;
    c.fired += w.linked_timeouts_fired;
  }
  return c;
}

/// True when this runtime's reactors link timeouts (io_uring with the opcode, not turned off).
bool links(const corio::runtime& rt) {
  const auto s = rt.stats();
  return s.backend == "io_uring" && s.backend_features.find("link_timeout") != std::string::npos;
}

/// Runs `body` once with the link turned on (CORIO_URING_LINK_TIMEOUT=1) and once without it
/// (`forced`: the wheel's timer, the default).
template <class Body>
void both_ways(Body body) {
  for (const bool forced : {false, true}) {
    CAPTURE(forced);
    std::optional<scoped_env> env;
    if (forced) env.emplace("CORIO_URING_LINK_TIMEOUT", nullptr);
    else env.emplace("CORIO_URING_LINK_TIMEOUT", "1");
    body(forced);
  }
}

struct silent_read_result {
  bool timed_out = false;
  bool scope_named = false;  ///< timed_out::cancelled_by() names the timeout's scope, not null
  bool try_gave_nullopt = false;
  std::string later;  ///< what a read got after the peer wrote
};

corio::task<silent_read_result> silent_read() {
  silent_read_result r;
  stream_pair p = co_await connected_pair();
  std::array<std::byte, 64> buf{};
  try {
    auto n = co_await corio::timeout(20ms, p.b.read_some(buf));
    (void)n;
  } catch (const corio::timed_out& e) {
    r.timed_out = true;
    r.scope_named = e.cancelled_by() != nullptr;
  }
  auto maybe = co_await corio::try_timeout(20ms, p.b.read_some(buf));
  r.try_gave_nullopt = !maybe.has_value();
  const std::string hello = "hello, later";
  co_await p.a.write_all(std::as_bytes(std::span{hello}));
  // The socket is still usable and nothing was consumed by the timed-out reads.
  while (r.later.size() < hello.size()) {
    auto n = co_await corio::timeout(10s, p.b.read_some(buf));
    if (n == 0) break;
    r.later.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  co_return r;
}

corio::task<void> write_soon(tcp_stream* a) {
  co_await corio::sleep_for(5ms);
  const std::string msg = "in time";
  co_await a->write_all(std::as_bytes(std::span{msg}));
}

corio::task<std::string> read_before_long_deadline() {
  stream_pair p = co_await connected_pair();
  auto writer = corio::spawn(write_soon(&p.a));
  std::array<std::byte, 64> buf{};
  std::string got;
  while (got.size() < 7) {
    auto n = co_await corio::timeout(10s, p.b.read_some(buf));
    if (n == 0) break;
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  co_await writer;
  co_return got;
}

enum outcome : int { none = 0, cancelled = 1, timed_out = 2, returned = 3, failed = 4 };

corio::task<std::size_t> read_with_deadline(tcp_stream* s) {
  std::array<std::byte, 16> buf{};
  co_return co_await corio::timeout(10s, s->read_some(buf));
}

corio::task<int> join_outcome(corio::join_handle<std::size_t> h) {
  try {
    co_await h;
    co_return returned;
  } catch (const corio::timed_out&) {
    co_return timed_out;
  } catch (const corio::operation_cancelled&) {
    co_return cancelled;
  } catch (...) {
    co_return failed;
  }
}

corio::task<int> cancel_during_read() {
  stream_pair p = co_await connected_pair();
  auto h = corio::spawn(read_with_deadline(&p.b));
  co_await corio::sleep_for(20ms);  // most likely suspended in the read by now (either way: cancelled)
  h.cancel();
  co_return co_await join_outcome(std::move(h));
}

struct write_result {
  std::size_t written = 0;
  std::size_t received = 0;
  std::size_t mismatches = 0;
};

corio::task<std::size_t> read_all(tcp_stream* s, std::size_t total, std::size_t* mismatches) {
  std::vector<std::byte> buf(65536);
  std::size_t got = 0;
  while (got < total) {
    auto n = co_await s->read_some(buf);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) {
      if (buf[i] != static_cast<std::byte>((got + i) % 251)) ++*mismatches;
    }
    got += n;
  }
  co_return got;
}

corio::task<write_result> timed_write_all(std::size_t total) {
  stream_pair p = co_await connected_pair();
  std::vector<std::byte> data(total);
  for (std::size_t i = 0; i < total; ++i) data[i] = static_cast<std::byte>(i % 251);
  write_result r;
  auto reader = corio::spawn(read_all(&p.b, total, &r.mismatches));
  r.written = co_await corio::timeout(10s, p.a.write_all(data));
  r.received = co_await reader;
  co_return r;
}

/// `rounds` times: a read on a silent socket times out, then one byte written arrives intact.
corio::task<std::size_t> timed_out_rounds(std::size_t rounds, std::size_t* timeouts) {
  stream_pair p = co_await connected_pair();
  std::size_t good = 0;
  std::array<std::byte, 8> buf{};
  for (std::size_t i = 0; i < rounds; ++i) {
    auto silent = co_await corio::try_timeout(10ms, p.b.read_some(buf));
    if (!silent) ++*timeouts;
    const std::array<std::byte, 1> one{static_cast<std::byte>(i % 256)};
    co_await p.a.write_all(one);
    auto n = co_await corio::timeout(10s, p.b.read_some(buf));
    if (n == 1 && buf[0] == one[0]) ++good;
  }
  co_return good;
}

/// Two timed_out_rounds at once (on two workers when there are two): the rounds both completed.
corio::task<std::size_t> two_round_loops(std::size_t rounds, std::size_t* timeouts_a, std::size_t* timeouts_b) {
  auto a = corio::spawn(timed_out_rounds(rounds, timeouts_a));
  auto b = corio::spawn(timed_out_rounds(rounds, timeouts_b));
  const std::size_t good_a = co_await a;
  const std::size_t good_b = co_await b;
  co_return good_a + good_b;
}

corio::task<void> racing_writer(tcp_stream* a, std::size_t count, std::uint32_t seed) {
  std::mt19937 rng{seed};
  for (std::size_t i = 0; i < count; ++i) {
    co_await corio::sleep_for(std::chrono::microseconds{rng() % 3000});
    const std::array<std::byte, 1> one{static_cast<std::byte>(i % 256)};
    co_await a->write_all(one);
  }
}

/// Reads `count` bytes with deadlines of about a millisecond that race the writer's bytes: every
/// byte must arrive once, in order, whichever of the data and the deadline came first.
corio::task<std::size_t> racing_reads(std::size_t count, std::uint32_t seed, std::size_t* timeouts) {
  stream_pair p = co_await connected_pair();
  auto writer = corio::spawn(racing_writer(&p.a, count, seed));
  std::array<std::byte, 64> buf{};
  std::size_t got = 0;
  std::size_t wrong = 0;
  for (std::size_t round = 0; got < count && round < count * 100; ++round) {
    auto n = co_await corio::try_timeout(1ms, p.b.read_some(buf));
    if (!n) {
      ++*timeouts;
      continue;
    }
    if (*n == 0) break;
    for (std::size_t i = 0; i < *n; ++i) {
      if (buf[i] != static_cast<std::byte>((got + i) % 256)) ++wrong;
    }
    got += *n;
  }
  co_await writer;
  co_return wrong == 0 ? got : 0;
}

corio::task<int> accept_times_out_then_accepts() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  int result = 0;
  try {
    auto s = co_await corio::timeout(20ms, l.accept());
    (void)s;
  } catch (const corio::timed_out&) {
    result = 1;
  }
  auto acceptor = corio::spawn(accept_one(&l));
  tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
  tcp_stream s = co_await acceptor;
  if (s.is_open() && c.is_open()) result += 1;
  co_return result;
}

/// A read_lease under a short timeout on a silent stream, then the bytes written afterwards:
/// returns what the reads got after the timeout ("" when the timeout did not give nullopt).
corio::task<std::string> silent_lease() {
  stream_pair p = co_await connected_pair();
  std::error_code ec;
  auto r = co_await corio::try_timeout(20ms, p.b.read_lease(ec));
  if (r.has_value() && !ec) co_return std::string{};
  co_await p.a.write_all(std::string_view{"leased later"});
  std::string got;
  while (got.size() < 12) {
    corio::buffer_lease l = co_await p.b.read_lease();
    if (l.empty()) break;
    got += l.chars();
  }
  co_return got;
}

}  // namespace

TEST_SUITE("cancel") {

TEST_CASE("a read under timeout on a silent socket times out, and the bytes sent later are all read") {
  hang_guard guard{"linked timeout: silent read", 120s};
  both_ways([](bool forced) {
    corio::runtime rt{{.workers = 2}};
    const silent_read_result r = rt.block_on(silent_read());
    CHECK(r.timed_out);
    CHECK(r.scope_named);
    CHECK(r.try_gave_nullopt);
    CHECK(r.later == "hello, later");
    const link_counts c = counts(rt);
    if (links(rt)) {
      CHECK_FALSE(forced);
      CHECK(c.linked >= 3);  // two timed-out reads, at least one read of the data
      CHECK(c.fired >= 2);
    } else {
      CHECK(c.linked == 0);
      CHECK(c.fired == 0);
    }
    if (forced) CHECK(rt.stats().backend_features.find("link_timeout") == std::string::npos);
  });
}

TEST_CASE("a read whose data comes before a long deadline returns the data") {
  hang_guard guard{"linked timeout: data in time", 120s};
  both_ways([](bool) {
    corio::runtime rt{{.workers = 2}};
    CHECK(rt.block_on(read_before_long_deadline()) == "in time");
    CHECK(counts(rt).fired == 0);
  });
}

TEST_CASE("the task's stop during a read under timeout gives operation_cancelled, not timed_out") {
  hang_guard guard{"linked timeout: task stop", 120s};
  both_ways([](bool) {
    for (const unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      CHECK(rt.block_on(cancel_during_read()) == cancelled);
      CHECK(counts(rt).fired == 0);
    }
  });
}

TEST_CASE("a write_all of 4 MiB under a long timeout completes intact") {
  hang_guard guard{"linked timeout: write_all", 120s};
  both_ways([](bool) {
    corio::runtime rt{{.workers = 2}};
    constexpr std::size_t total = std::size_t{4} << 20;
    const write_result r = rt.block_on(timed_write_all(total));
    CHECK(r.written == total);
    CHECK(r.received == total);
    CHECK(r.mismatches == 0);
    if (links(rt)) CHECK(counts(rt).linked >= 1);
  });
}

TEST_CASE("an accept under timeout with nobody connecting times out, and the listener accepts after") {
  hang_guard guard{"linked timeout: accept", 120s};
  both_ways([](bool) {
    // With multishot accept the accept parks on the listener's queue (the wheel's timer); without
    // it the accept is its own request, with the linked deadline.
    for (const bool multishot : {true, false}) {
      std::optional<scoped_env> env;
      if (!multishot) env.emplace("CORIO_URING_NO_MULTISHOT", "1");
      corio::runtime rt{{.workers = 2}};
      CHECK(rt.block_on(accept_times_out_then_accepts()) == 2);
    }
  });
}

TEST_CASE("200 timed-out reads over 2 workers lose no byte written after each") {
  hang_guard guard{"linked timeout: many rounds", 300s};
  both_ways([](bool forced) {
    corio::runtime rt{{.workers = 2}};
    const std::size_t rounds = corio_test::scaled(100);
    std::size_t timeouts_a = 0;
    std::size_t timeouts_b = 0;
    CHECK(rt.block_on(two_round_loops(rounds, &timeouts_a, &timeouts_b)) == 2 * rounds);
    CHECK(timeouts_a == rounds);
    CHECK(timeouts_b == rounds);
    const link_counts c = counts(rt);
    MESSAGE(rt.stats().backend << ": " << c.linked << " linked timeouts, " << c.fired << " fired");
    if (links(rt)) {
      CHECK(c.linked >= 4 * rounds);
      CHECK(c.fired >= 2 * rounds);
    } else {
      CHECK(c.linked == 0);
    }
    (void)forced;
  });
}

TEST_CASE("reads whose 1 ms deadlines race the writer's bytes get every byte once and in order") {
  hang_guard guard{"linked timeout: racing reads", 300s};
  both_ways([](bool) {
    for (const unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      const std::size_t count = corio_test::scaled(200);
      std::size_t timeouts = 0;
      CHECK(rt.block_on(racing_reads(count, static_cast<std::uint32_t>(corio_test::test_seed() + workers), &timeouts)) == count);
    }
  });
}

TEST_CASE("under the manual clock a read's timeout uses the wheel and still times out") {
  hang_guard guard{"linked timeout: manual clock", 120s};
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
  const silent_read_result r = rt.block_on(silent_read());
  CHECK(r.timed_out);
  CHECK(r.try_gave_nullopt);
  CHECK(r.later == "hello, later");
  CHECK(counts(rt).linked == 0);
}

TEST_CASE("a read_lease under timeout (on io_uring served by the stream's multishot receive) times out, and the bytes sent later are all read") {
  hang_guard guard{"linked timeout: lease", 120s};
  both_ways([](bool) {
    for (const unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      CHECK(rt.block_on(silent_lease()) == "leased later");
    }
  });
}

}
