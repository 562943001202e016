// Suite "net": reads that hand over their buffer (tcp_stream::read_lease): a worker's provided buffer
// ring on io_uring, heap buffers on Asio and with the ring turned off (CORIO_URING_NO_BUFRING=1).
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "reactor_factory.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::buffer_lease;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_test::hang_guard;
using corio_test::scoped_env;

namespace {

std::byte pattern_at(std::size_t offset, std::uint32_t seed) {
  return static_cast<std::byte>((offset * 131 + seed + (offset >> 12)) & 0xff);
}

/// True when this process's runtimes use a provided buffer ring: io_uring, not turned off.
bool ring_expected(const corio::runtime_stats& s) {
  const char* off = std::getenv("CORIO_URING_NO_BUFRING");
  return s.backend == "io_uring" && (off == nullptr || std::string_view{off} != "1");
}

struct ring_totals {
  std::uint64_t buffers = 0, in_use = 0, enobufs = 0, grows = 0, fallbacks = 0;
};

ring_totals totals(const corio::runtime_stats& s) {
  ring_totals t;
  for (const auto& w : s.workers) {
    t.buffers += w.provided_buffers;
    t.in_use += w.provided_in_use;
    t.enobufs += w.provided_enobufs;
    t.grows += w.provided_grows;
    t.fallbacks += w.provided_fallbacks;
  }
  return t;
}

/// Forces a ring configuration on the rings set up while alive.
struct ring_config {
  explicit ring_config(corio::detail::buffer_ring_config c) { corio::detail::set_buffer_ring_config(&c); }
  ~ring_config() { corio::detail::set_buffer_ring_config(nullptr); }
  ring_config(const ring_config&) = delete;
  ring_config& operator=(const ring_config&) = delete;
};

corio::task<void> write_pattern(tcp_stream s, std::size_t bytes, std::uint32_t seed) {
  std::vector<std::byte> chunk(8192);
  std::size_t sent = 0;
  while (sent < bytes) {
    const std::size_t n = std::min(chunk.size(), bytes - sent);
    for (std::size_t i = 0; i < n; ++i) chunk[i] = pattern_at(sent + i, seed);
    sent += co_await s.write_all({chunk.data(), n});
    if ((sent / n) % 4 == 0) co_await corio::yield();  // let other tasks (and workers) in
  }
}

struct read_result {
  std::size_t received = 0;
  std::size_t mismatches = 0;
  std::size_t leases = 0;
  std::size_t from_ring = 0;
};

/// Checks one lease against the pattern and releases it (on whichever worker runs this).
void check_lease(buffer_lease& l, read_result& r, std::uint32_t seed) {
  for (std::size_t i = 0; i < l.size(); ++i) r.mismatches += l.bytes()[i] != pattern_at(r.received + i, seed) ? 1 : 0;
  r.received += l.size();
  ++r.leases;
  r.from_ring += l.from_ring() ? 1 : 0;
  l.release();
}

/// Reads with read_lease until the end of the stream. With `hold`, each lease is kept while the
/// next read waits (so that many readers drain a small ring); with `hand_off`, each lease goes
/// through a channel to a checker task, which releases it on whatever worker it runs on.
corio::task<read_result> read_leases(tcp_stream s, std::uint32_t seed, bool hold, bool hand_off) {
  read_result r;
  buffer_lease held;
  corio::channel<buffer_lease> ch{4};
  auto checker = [](corio::channel<buffer_lease>* ch, std::uint32_t seed) -> corio::task<read_result> {
    read_result cr;
    for (;;) {
      auto v = co_await ch->recv();
      if (!v) co_return cr;
      check_lease(*v, cr, seed);
      co_await corio::yield();
    }
  };
  corio::join_handle<read_result> checked;
  if (hand_off) checked = corio::spawn(checker(&ch, seed));
  for (;;) {
    buffer_lease l = co_await s.read_lease();
    if (l.empty()) break;
    if (hand_off) {
      co_await ch.send(std::move(l));
    } else if (hold) {
      if (!held.empty()) check_lease(held, r, seed);
      held = std::move(l);
    } else {
      check_lease(l, r, seed);
    }
  }
  if (!held.empty()) check_lease(held, r, seed);
  if (hand_off) {
    ch.close();
    r = co_await checked;
  }
  co_return r;
}

struct many_result {
  std::size_t good = 0;
  std::size_t leases = 0;
  std::size_t from_ring = 0;
};

corio::task<many_result> lease_many(int connections, std::size_t bytes, bool hold, bool hand_off) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  std::vector<corio::join_handle<read_result>> readers;
  std::vector<corio::join_handle<void>> writers;
  for (int i = 0; i < connections; ++i) {
    tcp_stream c = co_await tcp_stream::connect(ep);
    tcp_stream s = co_await l.accept();
    const auto seed = static_cast<std::uint32_t>(i * 7 + 1);
    readers.push_back(corio::spawn(read_leases(std::move(s), seed, hold, hand_off)));
    writers.push_back(corio::spawn(write_pattern(std::move(c), bytes, seed)));
  }
  many_result m;
  for (auto& w : writers) co_await w;
  for (auto& h : readers) {
    const read_result r = co_await h;
    m.good += (r.received == bytes && r.mismatches == 0) ? 1 : 0;
    m.leases += r.leases;
    m.from_ring += r.from_ring;
  }
  co_return m;
}

/// True when this process's runtimes serve read_lease with a multishot receive (io_uring, Linux
/// 6.0+, ring and multishot not turned off).
bool multishot_expected(const corio::runtime_stats& s) {
  return ring_expected(s) && s.backend_features.find("multishot_recv") != std::string::npos;
}

struct multishot_totals {
  std::uint64_t arms = 0, recvs = 0;
};

multishot_totals multishot(const corio::runtime_stats& s) {
  multishot_totals t;
  for (const auto& w : s.workers) {
    t.arms += w.multishot_recv_arms;
    t.recvs += w.multishot_recvs;
  }
  return t;
}

struct mixed_result {
  std::size_t received = 0;
  std::size_t mismatches = 0;
  std::size_t reads = 0;
  std::size_t max_held = 0;
};

/// Reads to the end of the stream alternating read_lease and read_some (into buffers of varying
/// size), checking every byte against the pattern; up to `hold` leases are kept at once before
/// they are checked and released (a reader that holds buffers while the multishot keeps filling).
corio::task<mixed_result> read_mixed(tcp_stream s, std::uint32_t seed, std::size_t hold) {
  mixed_result r;
  std::vector<buffer_lease> held;
  std::vector<std::byte> buffer(6000);
  std::uint32_t lcg = seed;
  auto check = [&r, seed](std::span<const std::byte> bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i) r.mismatches += bytes[i] != pattern_at(r.received + i, seed) ? 1 : 0;
    r.received += bytes.size();
  };
  for (;;) {
    lcg = lcg * 1664525u + 1013904223u;
    ++r.reads;
    if ((lcg >> 16) % 3 != 0) {
      buffer_lease l = co_await s.read_lease();
      if (l.empty()) break;
      held.push_back(std::move(l));
      r.max_held = std::max(r.max_held, held.size());
      if (held.size() >= hold) {
        for (auto& h : held) check(h.bytes());
        held.clear();
      }
    } else {
      for (auto& h : held) check(h.bytes());  // in order: the held leases came first
      held.clear();
      const std::size_t want = 1 + (lcg >> 8) % buffer.size();
      const std::size_t n = co_await s.read_some(std::span{buffer.data(), want});
      if (n == 0) break;
      check({buffer.data(), n});
    }
  }
  for (auto& h : held) check(h.bytes());
  co_return r;
}

corio::task<std::vector<mixed_result>> mixed_many(int connections, std::size_t bytes, std::size_t hold) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  std::vector<corio::join_handle<mixed_result>> readers;
  std::vector<corio::join_handle<void>> writers;
  for (int i = 0; i < connections; ++i) {
    tcp_stream c = co_await tcp_stream::connect(ep);
    tcp_stream s = co_await l.accept();
    const auto seed = static_cast<std::uint32_t>(i * 13 + 5);
    readers.push_back(corio::spawn(read_mixed(std::move(s), seed, hold)));
    writers.push_back(corio::spawn(write_pattern(std::move(c), bytes, seed)));
  }
  for (auto& w : writers) co_await w;
  std::vector<mixed_result> out;
  for (auto& h : readers) out.push_back(co_await h);
  co_return out;
}

corio::task<buffer_lease> one_lease(std::string text) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
  tcp_stream s = co_await l.accept();
  co_await c.write_all(text);
  buffer_lease lease = co_await s.read_lease();
  co_return lease;
}

corio::task<void> hold_lease_forever(corio::event* never) {
  buffer_lease l = co_await one_lease("held at shutdown");
  co_await never->wait();
  (void)l.size();
}

}  // namespace

TEST_SUITE("net") {
  TEST_CASE("a lease read hands over the bytes, and every buffer goes back to its ring") {
    hang_guard guard{"lease basic", 120s};
    for (unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      const many_result m = rt.block_on(lease_many(4, 200000, false, false));
      CHECK(m.good == 4);
      const auto s = rt.stats();
      const ring_totals t = totals(s);
      CHECK(t.in_use == 0);
      if (ring_expected(s)) {
        CHECK(t.buffers > 0);
        CHECK(m.from_ring == m.leases);
      } else {
        CHECK(t.buffers == 0);
        CHECK(m.from_ring == 0);
      }
    }
  }

  TEST_CASE("leases released on other workers keep every stream's bytes in order and all come back") {
    hang_guard guard{"lease hand-off", 300s};
    for (unsigned workers : {1u, 2u, 4u}) {
      for (int round = 0; round < 3; ++round) {
        corio::runtime rt{{.workers = workers}};
        const many_result m = rt.block_on(lease_many(8, 300000, false, true));
        CHECK(m.good == 8);
        const auto s = rt.stats();
        CHECK(totals(s).in_use == 0);
        if (ring_expected(s)) CHECK(m.from_ring == m.leases);
      }
    }
  }

  TEST_CASE("a tiny ring that runs dry grows to its bound, then reads into heap buffers, losing no byte") {
    hang_guard guard{"lease enobufs", 300s};
    ring_config tiny{{.initial_buffers = 1, .max_buffers = 2, .buffer_bytes = 64}};
    for (unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      // 16 readers each hold a lease while their next read waits: 2 ring buffers cannot serve them.
      const many_result m = rt.block_on(lease_many(16, 50000, true, false));
      CHECK(m.good == 16);
      const auto s = rt.stats();
      const ring_totals t = totals(s);
      CHECK(t.in_use == 0);
      if (ring_expected(s)) {
        CHECK(t.enobufs > 0);
        CHECK(t.fallbacks > 0);
        CHECK(t.buffers <= 2 * workers);
        CHECK(m.from_ring > 0);
        CHECK(m.from_ring < m.leases);
      }
    }
  }

  TEST_CASE("CORIO_URING_NO_BUFRING=1 turns the ring off: lease reads use heap buffers") {
    hang_guard guard{"lease no ring", 120s};
    scoped_env off{"CORIO_URING_NO_BUFRING", "1"};
    corio::runtime rt{{.workers = 2}};
    const many_result m = rt.block_on(lease_many(4, 100000, false, true));
    CHECK(m.good == 4);
    CHECK(m.from_ring == 0);
    const ring_totals t = totals(rt.stats());
    CHECK(t.buffers == 0);
    CHECK(t.in_use == 0);
  }

  TEST_CASE("a lease that outlives its runtime keeps its bytes and can be released afterwards") {
    hang_guard guard{"lease outlives runtime", 120s};
    buffer_lease kept;
    bool ring = false;
    {
      corio::runtime rt{{.workers = 2}};
      kept = rt.block_on(one_lease("outlives the runtime"));
      ring = ring_expected(rt.stats());
      CHECK(totals(rt.stats()).in_use == (ring ? 1u : 0u));
    }
    CHECK(kept.chars() == "outlives the runtime");
    CHECK(kept.from_ring() == ring);
    buffer_lease moved = std::move(kept);
    CHECK(kept.empty());
    moved.release();
    CHECK(moved.empty());
    moved.release();  // idempotent
  }

  TEST_CASE("a runtime shut down while a task holds a lease and another waits in read_lease ends cleanly") {
    hang_guard guard{"lease at shutdown", 120s};
    for (unsigned workers : {1u, 2u}) {
      corio::event never;
      auto l = tcp_listener::bind("127.0.0.1:0");
      const endpoint ep = l.local_endpoint();
      corio::runtime rt{{.workers = workers}};
      rt.spawn(hold_lease_forever(&never)).detach();
      auto idle = [](tcp_listener* l, endpoint ep) -> corio::task<void> {
        tcp_stream c = co_await tcp_stream::connect(ep);
        tcp_stream s = co_await l->accept();
        buffer_lease lease = co_await s.read_lease();  // never gets data: drained at shutdown
        (void)lease.size();
        (void)c.is_open();
      };
      rt.spawn(idle(&l, ep)).detach();
      // Wait until the holder has its lease (on io_uring: in_use 1) or, elsewhere, a moment.
      for (int i = 0; i < 2000; ++i) {
        const auto s = rt.stats();
        if (!ring_expected(s) || totals(s).in_use == 1) break;
        std::this_thread::sleep_for(1ms);
      }
      rt.shutdown(10ms);
    }
  }

  TEST_CASE("a lease read cancelled by its timeout while waiting holds no buffer, and reading goes on") {
    hang_guard guard{"lease timeout", 120s};
    corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
    auto body = []() -> corio::task<int> {
      auto l = tcp_listener::bind("127.0.0.1:0");
      tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
      tcp_stream s = co_await l.accept();
      int checks = 0;
      std::error_code ec;
      auto r = co_await corio::try_timeout(5s, s.read_lease(ec));
      checks += (!r.has_value() || ec == std::errc::operation_canceled) ? 1 : 0;
      co_await c.write_all(std::string_view{"after the timeout"});
      std::string got;
      while (got.size() < 17) {
        buffer_lease lease = co_await s.read_lease();
        if (lease.empty()) break;
        got += lease.chars();
      }
      checks += got == "after the timeout" ? 1 : 0;
      co_return checks;
    };
    CHECK(rt.block_on(body()) == 2);
    CHECK(totals(rt.stats()).in_use == 0);
  }

  TEST_CASE("a multishot receive serves many reads with few submissions, and read_some after read_lease keeps the byte order") {
    hang_guard guard{"multishot mixed reads", 300s};
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      const auto results = rt.block_on(mixed_many(6, 400000, 1));
      std::size_t reads = 0;
      for (const auto& r : results) {
        CHECK(r.received == 400000);
        CHECK(r.mismatches == 0);
        reads += r.reads;
      }
      const auto s = rt.stats();
      CHECK(totals(s).in_use == 0);
      const multishot_totals m = multishot(s);
      if (multishot_expected(s)) {
        CHECK(m.recvs > 0);
        CHECK(m.arms >= 6);      // one per stream at least
        CHECK(m.arms < reads);  // far fewer submissions than reads
      } else {
        CHECK(m.arms == 0);
        CHECK(m.recvs == 0);
      }
    }
  }

  TEST_CASE("a reader holding many leases while the multishot keeps filling the ring loses no byte") {
    hang_guard guard{"multishot held leases", 300s};
    for (unsigned workers : {1u, 2u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      // Each reader keeps up to 12 leases (past the queue's soft capacity of 8): the multishot is
      // cancelled when the queue fills and armed again as the reader catches up.
      const auto results = rt.block_on(mixed_many(4, 1'000'000, 12));
      for (const auto& r : results) {
        CHECK(r.received == 1'000'000);
        CHECK(r.mismatches == 0);
      }
      CHECK(totals(rt.stats()).in_use == 0);
    }
  }

  TEST_CASE("a tiny ring under multishot receives falls back to heap buffers and loses no byte") {
    hang_guard guard{"multishot enobufs", 300s};
    ring_config tiny{{.initial_buffers = 1, .max_buffers = 2, .buffer_bytes = 64}};
    for (unsigned workers : {1u, 2u}) {
      CAPTURE(workers);
      corio::runtime rt{{.workers = workers}};
      const auto results = rt.block_on(mixed_many(8, 60000, 3));
      for (const auto& r : results) {
        CHECK(r.received == 60000);
        CHECK(r.mismatches == 0);
      }
      const auto s = rt.stats();
      CHECK(totals(s).in_use == 0);
      if (multishot_expected(s)) CHECK(totals(s).enobufs > 0);
    }
  }

  TEST_CASE("after the end of the stream every read_lease and read_some says so again") {
    hang_guard guard{"multishot eof", 120s};
    corio::runtime rt{{.workers = 2}};
    auto body = []() -> corio::task<int> {
      auto l = tcp_listener::bind("127.0.0.1:0");
      tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
      tcp_stream s = co_await l.accept();
      co_await c.write_all(std::string_view{"last words"});
      c.shutdown(corio::net::shutdown_type::send);
      std::string got;
      int ends = 0;
      for (int i = 0; i < 8; ++i) {
        buffer_lease lease = co_await s.read_lease();
        if (lease.empty()) ++ends;
        else got += lease.chars();
      }
      std::array<std::byte, 16> buffer{};
      for (int i = 0; i < 3; ++i) ends += co_await s.read_some(buffer) == 0 ? 1 : 0;
      co_return got == "last words" && ends >= 10 ? 1 : 0;
    };
    CHECK(rt.block_on(body()) == 1);
  }

  TEST_CASE("closing a stream with its multishot receive armed ends it: the peer reads the end, nothing leaks") {
    hang_guard guard{"multishot close", 120s};
    const std::size_t before = corio_test::open_descriptors();
    for (unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      auto body = []() -> corio::task<int> {
        auto l = tcp_listener::bind("127.0.0.1:0");
        int ok = 0;
        for (int i = 0; i < 50; ++i) {
          tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
          tcp_stream s = co_await l.accept();
          co_await c.write_all(std::string_view{"ping"});
          buffer_lease lease = co_await s.read_lease();  // arms the multishot, which stays armed
          co_await c.write_all(std::string_view{"queued, never read"});
          s.close();
          std::array<std::byte, 64> buffer{};
          std::error_code ec;
          std::size_t n = 1;
          for (int k = 0; k < 100 && n != 0 && !ec; ++k) n = co_await c.read_some(buffer, ec);
          ok += (lease.chars() == "ping" && (n == 0 || ec)) ? 1 : 0;
        }
        co_return ok;
      };
      CHECK(rt.block_on(body()) == 50);
      CHECK(totals(rt.stats()).in_use == 0);
    }
    CHECK(corio_test::open_descriptors() == before);
  }

  TEST_CASE("CORIO_URING_NO_MULTISHOT_RECV=1 keeps one receive per read_lease, with the same bytes") {
    hang_guard guard{"no multishot recv", 300s};
    scoped_env off{"CORIO_URING_NO_MULTISHOT_RECV", "1"};
    corio::runtime rt{{.workers = 2}};
    const auto results = rt.block_on(mixed_many(4, 200000, 2));
    for (const auto& r : results) {
      CHECK(r.received == 200000);
      CHECK(r.mismatches == 0);
    }
    const auto s = rt.stats();
    CHECK(s.backend_features.find("multishot_recv") == std::string::npos);
    CHECK(multishot(s).arms == 0);
    CHECK(totals(s).in_use == 0);
  }

  TEST_CASE("a second read of a stream while its multishot read is parked fails with EBUSY, and the first one goes on") {
    hang_guard guard{"multishot busy", 120s};
    corio::runtime rt{{.workers = 2}};
    auto body = []() -> corio::task<int> {
      auto l = tcp_listener::bind("127.0.0.1:0");
      tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
      tcp_stream s = co_await l.accept();
      co_await c.write_all(std::string_view{"a"});
      buffer_lease first = co_await s.read_lease();  // gives the stream its multishot receive
      auto reader = [](tcp_stream* s) -> corio::task<std::string> {
        buffer_lease l = co_await s->read_lease();
        co_return std::string{l.chars()};
      };
      corio::join_handle<std::string> parked = corio::spawn(reader(&s));
      for (int i = 0; i < 100; ++i) co_await corio::yield();  // let it park (or, elsewhere, submit)
      std::error_code ec;
      auto second = co_await corio::try_timeout(50ms, s.read_lease(ec));
      (void)second;
      const bool busy = ec == std::errc::device_or_resource_busy;
      co_await c.write_all(std::string_view{"b"});
      const std::string got = co_await parked;
      co_return (first.chars() == "a" ? 1 : 0) + (busy ? 2 : 0) + (got == "b" ? 4 : 0);
    };
    const int r = rt.block_on(body());
    CHECK((r & 1) != 0);
    CHECK((r & 4) != 0);
    if (multishot_expected(rt.stats())) CHECK((r & 2) != 0);
  }
}
