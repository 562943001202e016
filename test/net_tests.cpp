// Suite "net": endpoints, TCP listener and stream on the io_uring reactor.
#include <corio/corio.hpp>
#include <doctest/doctest.h>
#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "raw_sockets.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;

namespace {

std::byte pattern_at(std::size_t offset, std::uint32_t seed) {
  return static_cast<std::byte>((offset * 131 + seed + (offset >> 12)) & 0xff);
}

corio::task<void> echo_connection(tcp_stream s) {
  std::array<std::byte, 16384> buf{};
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) co_return;
    co_await s.write_all({buf.data(), n});
  }
}

corio::task<void> echo_server(tcp_listener* l, int connections) {
  for (int i = 0; i < connections; ++i) {
    corio::spawn(echo_connection(co_await l->accept())).detach();
  }
}

corio::task<void> write_pattern(tcp_stream* s, std::size_t bytes, std::uint32_t seed) {
  std::vector<std::byte> chunk(65536);
  std::size_t sent = 0;
  while (sent < bytes) {
    const std::size_t n = std::min(chunk.size(), bytes - sent);
    for (std::size_t i = 0; i < n; ++i) chunk[i] = pattern_at(sent + i, seed);
    const std::size_t w = co_await s->write_all({chunk.data(), n});
    sent += w;
  }
  s->shutdown(corio::net::shutdown_type::send);
}

struct echo_result {
  std::size_t received = 0;
  std::size_t mismatches = 0;
};

corio::task<echo_result> echo_client(endpoint server, std::size_t bytes, std::uint32_t seed) {
  tcp_stream s = co_await tcp_stream::connect(server);
  // One task writes while this one reads the same stream.
  auto writer = corio::spawn(write_pattern(&s, bytes, seed));
  echo_result r;
  std::vector<std::byte> buf(32768);
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) r.mismatches += buf[i] != pattern_at(r.received + i, seed) ? 1 : 0;
    r.received += n;
  }
  co_await writer;
  co_return r;
}

corio::task<std::size_t> echo_many(int clients, std::size_t bytes) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  auto server = corio::spawn(echo_server(&l, clients));
  std::vector<corio::join_handle<echo_result>> hs;
  for (int i = 0; i < clients; ++i) hs.push_back(corio::spawn(echo_client(ep, bytes, static_cast<std::uint32_t>(i))));
  std::size_t good = 0;
  for (auto& h : hs) {
    const echo_result r = co_await h;
    good += (r.received == bytes && r.mismatches == 0) ? 1 : 0;
  }
  co_await server;
  co_return good;
}

corio::task<std::error_code> connect_refused(endpoint ep, bool throwing) {
  if (throwing) {
    try {
      (void)co_await tcp_stream::connect(ep);
    } catch (const std::system_error& e) {
      co_return e.code();
    }
    co_return std::error_code{};
  }
  std::error_code ec;
  tcp_stream s = co_await tcp_stream::connect(ep, ec);
  CHECK_FALSE(s.is_open());
  co_return ec;
}

corio::task<int> moved_from_stream() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_stream a = co_await tcp_stream::connect(l.local_endpoint());
  tcp_stream b = std::move(a);
  int checks = 0;
  std::array<std::byte, 16> buf{};
  try {
    (void)co_await a.read_some(buf);
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  try {
    (void)co_await a.write_all(std::string_view{"x"});
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  std::error_code ec;
  const std::size_t n = co_await a.read_some(buf, ec);
  checks += (n == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  const std::size_t w = co_await a.write_all(std::string_view{"x"}, ec);
  checks += (w == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  CHECK_THROWS_AS((void)a.local_endpoint(), std::system_error);
  tcp_listener l2 = std::move(l);
  try {
    (void)co_await l.accept();
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  co_return checks;
}

corio::task<void> reset_after_accept(tcp_listener* l) {
  tcp_stream s = co_await l->accept();
  const linger lg{1, 0};  // close with RST
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&lg), sizeof lg);
  s.close();
}

corio::task<std::error_code> write_to_reset_peer() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(reset_after_accept(&l));
  tcp_stream s = co_await tcp_stream::connect(l.local_endpoint());
  co_await server;
  std::vector<std::byte> chunk(65536);
  std::error_code ec;
  for (int i = 0; i < 1000 && !ec; ++i) (void)co_await s.write_all(chunk, ec);
  co_return ec;
}

corio::task<void> read_forever(tcp_stream s) {
  std::array<std::byte, 64> buf{};
  (void)co_await s.read_some(buf);
  co_await corio::sleep_for(24h);
}

corio::task<void> accept_and_park(tcp_listener* l, int n) {
  for (int i = 0; i < n; ++i) corio::spawn(read_forever(co_await l->accept())).detach();
  co_await corio::sleep_for(24h);
}

corio::task<void> connect_and_park(endpoint ep) {
  tcp_stream s = co_await tcp_stream::connect(ep);
  std::array<std::byte, 64> buf{};
  (void)co_await s.read_some(buf);
}

[[maybe_unused]] corio::task<std::vector<std::error_code>> accept_codes(tcp_listener* l, int n, std::vector<tcp_stream>* kept) {
  std::vector<std::error_code> codes;
  for (int i = 0; i < n; ++i) {
    std::error_code ec;
    tcp_stream s = co_await l->accept(ec);
    codes.push_back(ec);
    if (!ec) kept->push_back(std::move(s));
  }
  co_return codes;
}

/// What a connect from a local endpoint saw: its error, the client's local endpoint and the peer
/// endpoint the server accepted.
struct bound_connect {
  std::error_code ec;
  endpoint client_local;
  endpoint server_peer;
};

corio::task<bound_connect> connect_from(tcp_listener* l, endpoint local, bool throwing) {
  const endpoint server = l->local_endpoint();
  bound_connect r;
  tcp_stream s;
  if (throwing) {
    try {
      s = co_await tcp_stream::connect(server, local);
    } catch (const std::system_error& e) {
      r.ec = e.code();
      co_return r;
    }
  } else {
    s = co_await tcp_stream::connect(server, local, r.ec);
    if (r.ec) {
      CHECK_FALSE(s.is_open());
      co_return r;
    }
  }
  r.client_local = s.local_endpoint();
  tcp_stream accepted = co_await l->accept();
  r.server_peer = accepted.remote_endpoint();
  co_return r;
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed).
std::uint16_t recently_free_port() {
  const int fd = raw::open_tcp();
  REQUIRE(fd >= 0);
  const endpoint any = endpoint::parse("127.0.0.1:0");
  REQUIRE(::bind(fd, static_cast<const sockaddr*>(any.data()), any.size()) == 0);
  endpoint e;
  raw::length_t len = static_cast<raw::length_t>(endpoint::capacity());
  REQUIRE(::getsockname(fd, static_cast<sockaddr*>(e.data()), &len) == 0);
  e.resize(static_cast<std::uint32_t>(len));
  raw::close(fd);
  return e.port();
}

/// A blocking client connect (it completes from the listener's backlog without an accept).
int raw_connect(const endpoint& ep) {
  const int fd = raw::open_tcp();
  REQUIRE(fd >= 0);
  REQUIRE(::connect(fd, static_cast<const sockaddr*>(ep.data()), ep.size()) == 0);
  return fd;
}

/// Closes `s` at 10 s on the manual clock.
corio::task<void> close_at_ten_seconds(tcp_stream s) {
  co_await corio::sleep_for(10s);
  s.close();
}

/// Reads until the peer closes and returns the manual time at which the end of stream was seen.
corio::task<std::int64_t> time_of_end_of_stream(tcp_stream s) {
  std::array<std::byte, 16> buf{};
  for (int i = 0; i < 1000; ++i) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
  }
  co_return std::chrono::duration_cast<std::chrono::milliseconds>(corio::now().time_since_epoch()).count();
}

corio::task<void> sleep_long() { co_await corio::sleep_for(1000s); }

/// `n` connections whose server sides close at 10 s, their clients waiting for the end of stream,
/// and a 1000 s sleep as the next timer after that: returns the latest time a client saw its end.
corio::task<std::int64_t> ends_of_stream_at_ten_seconds(int n) {
  const auto start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(corio::now().time_since_epoch()).count();
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  auto distant = corio::spawn(sleep_long());
  std::vector<corio::join_handle<std::int64_t>> readers;
  for (int i = 0; i < n; ++i) {
    tcp_stream client = co_await tcp_stream::connect(ep);
    tcp_stream server = co_await l.accept();
    corio::spawn(close_at_ten_seconds(std::move(server))).detach();
    readers.push_back(corio::spawn(time_of_end_of_stream(std::move(client))));
  }
  std::int64_t latest = 0;
  for (auto& h : readers) {
    const std::int64_t t = co_await h;
    latest = std::max(latest, t);
  }
  distant.cancel();
  try {
    co_await distant;
  } catch (const corio::operation_cancelled&) {
  }
  co_return latest - start_ms;
}

}  // namespace

TEST_SUITE_BEGIN("net");

TEST_CASE("endpoints parse numeric IPv4 and IPv6 and reject everything else") {
  CHECK(endpoint::parse("127.0.0.1:8080").to_string() == "127.0.0.1:8080");
  CHECK(endpoint::parse("[::1]:80").to_string() == "[::1]:80");
  CHECK(endpoint::parse("0.0.0.0:0").port() == 0);
  CHECK(endpoint::parse("[::1]:65535").port() == 65535);
  CHECK(endpoint::parse("10.1.2.3:1").is_v4());
  CHECK(endpoint::parse("[::ffff:1.2.3.4]:1").is_v6());
  for (const char* bad : {"", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "localhost:80",
                          "::1:80", "[::1]80", "[::1]:", "[]:80", "1.2.3:80", "1.2.3.4.5:80", "127.0.0.1:80x",
                          "[::1]:8 0", " 127.0.0.1:80"}) {
    CAPTURE(bad);
    CHECK_FALSE(endpoint::try_parse(bad).has_value());
    try {
      (void)endpoint::parse(bad);
      FAIL("accepted");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::invalid_argument);
    }
  }
}

TEST_CASE("200 concurrent clients echo their bytes back in order through a corio server") {
  const auto before = corio_test::open_descriptors();
  {
    corio::runtime rt{{.workers = 2}};
    const std::size_t bytes = corio_test::scaled(1 << 20);
    CHECK(rt.block_on(echo_many(200, bytes)) == 200);
  }
  CHECK(corio_test::open_descriptors() == before);
}

TEST_CASE("the echo runs on 1 and 4 workers too") {
  for (unsigned workers : {1u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    CHECK(rt.block_on(echo_many(20, corio_test::scaled(256 * 1024))) == 20);
  }
}

TEST_CASE("connecting to a closed port fails with ECONNREFUSED, thrown or as an error_code") {
  corio::runtime rt{{.workers = 1}};
  endpoint ep;
  {
    auto l = tcp_listener::bind("127.0.0.1:0");
    ep = l.local_endpoint();
  }  // closed: nothing listens there now
  CHECK(rt.block_on(connect_refused(ep, true)) == std::errc::connection_refused);
  CHECK(rt.block_on(connect_refused(ep, false)) == std::errc::connection_refused);
}

TEST_CASE("a connect from a local address leaves from it, on a port the kernel picks, in both forms") {
  corio::runtime rt{{.workers = 2}};
  auto l = tcp_listener::bind("127.0.0.1:0");
  for (const bool throwing : {true, false}) {
    const bound_connect r = rt.block_on(connect_from(&l, endpoint::parse("127.0.0.1:0"), throwing));
    CHECK_FALSE(r.ec);
    CHECK(r.client_local.address_string() == "127.0.0.1");
    CHECK(r.client_local.port() != 0);
    CHECK(r.server_peer == r.client_local);
  }
  // An unspecified local endpoint binds nothing: a plain connect.
  const bound_connect plain = rt.block_on(connect_from(&l, endpoint{}, false));
  CHECK_FALSE(plain.ec);
  CHECK(plain.server_peer == plain.client_local);
}

TEST_CASE("a connect from a local port leaves from that port") {
  corio::runtime rt{{.workers = 1}};
  auto l = tcp_listener::bind("127.0.0.1:0");
  // The port was free a moment ago; another process may take it in between, so try a few.
  bool connected = false;
  for (int attempt = 0; attempt < 10 && !connected; ++attempt) {
    const std::uint16_t port = recently_free_port();
    const bound_connect r =
        rt.block_on(connect_from(&l, endpoint::parse("127.0.0.1:" + std::to_string(port)), false));
    if (r.ec == std::errc::address_in_use) continue;
    REQUIRE_FALSE(r.ec);
    CHECK(r.client_local.port() == port);
    CHECK(r.server_peer.port() == port);
    connected = true;
  }
  CHECK(connected);
}

TEST_CASE("a connect whose local endpoint cannot be bound fails with bind's error and keeps no descriptor") {
  corio::runtime rt{{.workers = 1}};
  auto l = tcp_listener::bind("127.0.0.1:0");
  const auto before = corio_test::open_descriptors();
  for (const bool throwing : {true, false}) {
    // The listener's own address and port are in use.
    CHECK(rt.block_on(connect_from(&l, l.local_endpoint(), throwing)).ec == std::errc::address_in_use);
    // An IPv6 source for an IPv4 destination.
    CHECK(rt.block_on(connect_from(&l, endpoint::parse("[::1]:0"), throwing)).ec ==
          std::errc::address_family_not_supported);
  }
  CHECK(corio_test::open_descriptors() == before);
}

TEST_CASE("binding to a port in use fails with EADDRINUSE") {
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  CHECK(ep.port() != 0);
  try {
    (void)tcp_listener::bind(ep);
    FAIL("bound twice");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::address_in_use);
  }
}

TEST_CASE("binding to an unparsable address throws invalid_argument") {
  CHECK_THROWS_AS((void)tcp_listener::bind("not an address"), std::system_error);
  try {
    (void)tcp_listener::bind("localhost:80");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::invalid_argument);
  }
}

TEST_CASE("operations on moved-from sockets throw EBADF; the error_code forms report it") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(moved_from_stream()) == 5);
}

TEST_CASE("writing to a peer that reset the connection is an error, never SIGPIPE") {
  corio::runtime rt{{.workers = 2}};
  const std::error_code ec = rt.block_on(write_to_reset_peer());
  CHECK((ec == std::errc::broken_pipe || ec == std::errc::connection_reset));
}

TEST_CASE("shutting down the runtime with connections suspended in reads closes every descriptor") {
  const auto before = corio_test::open_descriptors();
  {
    corio::runtime rt{{.workers = 2}};
    auto l = tcp_listener::bind("127.0.0.1:0");
    const endpoint ep = l.local_endpoint();
    rt.spawn(accept_and_park(&l, 50)).detach();
    for (int i = 0; i < 50; ++i) rt.spawn(connect_and_park(ep)).detach();
    // Bounded wait until most I/O is in flight; correctness does not depend on it.
    for (int i = 0; i < 2000 && rt.stats().live_tasks < 100; ++i) std::this_thread::sleep_for(1ms);
    rt.shutdown();
  }
  CHECK(corio_test::open_descriptors() == before);
}

#if !defined(_WIN32)  // by design: Windows has no descriptor limit (RLIMIT_NOFILE) to lower
TEST_CASE("accept reports EMFILE as an error, and the connection waits in the backlog until a descriptor is free") {
  corio::runtime rt{{.workers = 1}};
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  std::vector<int> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(raw_connect(ep));
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  std::vector<tcp_stream> kept;
  std::vector<std::error_code> first;
  {
    // Room for exactly two more descriptors: new descriptors take the lowest free numbers, and
    // the limit caps the number, not the count.
    const int lowest_free = ::dup(0);
    REQUIRE(lowest_free >= 0);
    ::close(lowest_free);
    REQUIRE(::fcntl(lowest_free + 1, F_GETFD) == -1);  // the next number is free too
    rlimit tight = saved;
    tight.rlim_cur = static_cast<rlim_t>(lowest_free) + 2;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
    first = rt.block_on(accept_codes(&l, 3, &kept));
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  }
  REQUIRE(first.size() == 3);
  CHECK_FALSE(first[0]);
  CHECK_FALSE(first[1]);
  CHECK(first[2] == std::errc::too_many_files_open);
  // With the limit restored the waiting connections are accepted (as many as are left, so that a
  // failure above cannot turn into a hang here).
  const auto second = rt.block_on(accept_codes(&l, static_cast<int>(4 - kept.size()), &kept));
  for (const auto& ec : second) CHECK_FALSE(ec);
  CHECK(kept.size() == 4);
  for (int fd : clients) raw::close(fd);
}
#endif

TEST_CASE("IPv6 loopback carries an echo where the machine has it") {
  std::optional<tcp_listener> probe;
  try {
    probe.emplace(tcp_listener::bind("[::1]:0"));
  } catch (const std::system_error&) {
    MESSAGE("no IPv6 loopback here; skipped");
    return;
  }
  CHECK(probe->local_endpoint().is_v6());
}

TEST_SUITE_END();

TEST_CASE("under the manual clock, a peer's close reaches a read on another worker before time jumps on") {
  // The close at 10 s makes each client's read complete; a worker whose completion is still in
  // its reactor must not count as idle, or the idle runtime jumps to the 1000 s timer first.
  corio_test::hang_guard guard{"ends of stream under the manual clock", 120s};
  for (int round = 0; round < static_cast<int>(corio_test::scaled(10)); ++round) {
    CAPTURE(round);
    corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
    const std::int64_t latest_ms = rt.block_on(ends_of_stream_at_ten_seconds(40));
    CHECK(latest_ms >= 10'000);
    CHECK(latest_ms < 11'000);
  }
}

namespace {

corio::task<std::vector<std::size_t>> reads_past_end_of_stream() {
  auto listener = tcp_listener::bind("127.0.0.1:0");
  tcp_stream client = co_await tcp_stream::connect(listener.local_endpoint());
  tcp_stream server = co_await listener.accept();
  (void)co_await client.write_all(std::string_view{"abc"});
  client.shutdown(corio::net::shutdown_type::send);
  std::array<std::byte, 100> buf{};
  std::vector<std::size_t> sizes;
  std::size_t total = 0;
  while (total < 3 && sizes.size() < 10) {  // "abc" may come in pieces
    const std::size_t n = co_await server.read_some(buf);
    total += n;
    if (n == 0) break;
  }
  for (int i = 0; i < 3; ++i) sizes.push_back(co_await server.read_some(buf));
  co_return sizes;
}

}  // namespace

TEST_CASE("reads after the end of a stream keep returning 0 instead of waiting") {
  // On Asio 1.22 a read after one that returned 0 waited for an epoll edge that never comes.
  corio_test::hang_guard guard{"reads past the end of a stream", 120s};
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(reads_past_end_of_stream()) == std::vector<std::size_t>{0, 0, 0});
}

// --- multishot accept (io_uring, Linux 5.19+; the plain accept elsewhere) --------------------

namespace {

std::uint64_t multishot_accepts(const corio::runtime& rt) {
  return corio_test::worker_sum(rt, &corio::worker_stats::multishot_accepts);
}

/// Accepts until `next` reaches `total` (each call claims one), reads the client's 4-byte id from
/// each connection and counts it in `seen`.
corio::task<void> accept_ids(tcp_listener* l, std::atomic<int>* next, int total, std::vector<std::atomic<int>>* seen) {
  while (next->fetch_add(1) < total) {
    tcp_stream s = co_await l->accept();
    std::array<std::byte, 4> id{};
    const std::size_t n = co_await corio::read_exact(s, id);
    REQUIRE(n == id.size());
    int v = 0;
    std::memcpy(&v, id.data(), sizeof v);
    REQUIRE(v >= 0);
    REQUIRE(static_cast<std::size_t>(v) < seen->size());
    (*seen)[static_cast<std::size_t>(v)].fetch_add(1);
  }
}

/// Connects, sends its id, and waits for the server to close.
corio::task<void> send_id(endpoint ep, int id) {
  tcp_stream s = co_await tcp_stream::connect(ep);
  std::array<std::byte, 4> buf{};
  std::memcpy(buf.data(), &id, sizeof id);
  co_await s.write_all(buf);
  std::array<std::byte, 16> rest{};
  (void)co_await s.read_some(rest);  // 0: the server closed after reading the id
}

corio::task<void> accept_many_ids(tcp_listener* l, int acceptors, int clients, std::vector<std::atomic<int>>* seen) {
  const endpoint ep = l->local_endpoint();
  std::atomic<int> next{0};
  std::vector<corio::join_handle<void>> handles;
  for (int i = 0; i < acceptors; ++i) handles.push_back(corio::spawn(accept_ids(l, &next, clients, seen)));
  for (int i = 0; i < clients; ++i) handles.push_back(corio::spawn(send_id(ep, i)));
  for (auto& h : handles) co_await h;
}

/// Parks an accept, which the test cancels; returns whether it ended cancelled.
corio::task<bool> accept_expecting_cancel(tcp_listener* l, std::atomic<bool>* parked) {
  parked->store(true);
  try {
    tcp_stream s = co_await l->accept();
    co_return false;
  } catch (const corio::operation_cancelled&) {
    co_return true;
  }
}

/// One accept that may be cancelled: the stream it got (empty when cancelled).
corio::task<tcp_stream> accept_or_cancelled(tcp_listener* l) {
  std::error_code ec;
  tcp_stream s = co_await l->accept(ec);
  if (ec) REQUIRE(ec == std::errc::operation_canceled);
  co_return s;
}

template <class T>
corio::task<T> join(corio::join_handle<T> h) {
  T v = co_await h;
  co_return v;
}

/// Spawns an accept and cancels it before it can start (one worker: the child waits in the LIFO
/// slot while this task runs); returns whether the accept took a connection.
corio::task<bool> accept_stopped_before_it_waits(tcp_listener* l) {
  auto h = corio::spawn(accept_or_cancelled(l));
  h.cancel();
  tcp_stream s;
  try {
    s = co_await h;
  } catch (const corio::operation_cancelled&) {
  }
  co_return s.is_open();
}

corio::task<tcp_stream> accept_one(tcp_listener* l) {
  tcp_stream s = co_await l->accept();
  co_return s;
}

/// Accepts `n` connections and returns their peers' ports.
corio::task<std::vector<std::uint16_t>> accept_ports(tcp_listener* l, int n) {
  std::vector<std::uint16_t> ports;
  for (int i = 0; i < n; ++i) {
    tcp_stream s = co_await l->accept();
    ports.push_back(s.remote_endpoint().port());
  }
  co_return ports;
}

std::uint16_t local_port(int fd) {
  endpoint e;
  raw::length_t len = static_cast<raw::length_t>(endpoint::capacity());
  REQUIRE(::getsockname(fd, static_cast<sockaddr*>(e.data()), &len) == 0);
  e.resize(len);
  return e.port();
}

/// Runs the concurrent-accept check with `workers` workers; returns the multishot accept count.
std::uint64_t check_every_connect_accepted_once(unsigned workers, int acceptors, int clients) {
  corio::runtime rt{{.workers = workers}};
  auto l = tcp_listener::bind("127.0.0.1:0");
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(clients));
  rt.block_on(accept_many_ids(&l, acceptors, clients, &seen));
  int once = 0;
  for (auto& s : seen) once += s.load() == 1 ? 1 : 0;
  CHECK(once == clients);
  return multishot_accepts(rt);
}

}  // namespace

TEST_CASE("many concurrent connects are each accepted exactly once by acceptors on several workers") {
  corio_test::hang_guard guard{"concurrent accepts", 240s};
  const int clients = static_cast<int>(corio_test::scaled(400));
  std::uint64_t via_multishot = 0;
  for (const unsigned workers : {1u, 2u, 4u}) {
    for (const int acceptors : {1, 3}) via_multishot += check_every_connect_accepted_once(workers, acceptors, clients);
  }
  corio::runtime probe{{.workers = 1}};
  const auto features = probe.stats().backend_features;
  // On io_uring with multishot accept, the connections came through it.
  CHECK((features.find("multishot_accept") != std::string::npos) == (via_multishot > 0));
}

TEST_CASE("with CORIO_URING_NO_MULTISHOT=1 every accept is a plain one and connects are still accepted once") {
  corio_test::hang_guard guard{"plain accepts", 240s};
  corio_test::scoped_env env{"CORIO_URING_NO_MULTISHOT", "1"};
  const int clients = static_cast<int>(corio_test::scaled(200));
  for (const unsigned workers : {1u, 2u, 4u}) {
    CHECK(check_every_connect_accepted_once(workers, 2, clients) == 0);
  }
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.stats().backend_features.find("multishot_accept") == std::string::npos);
}

TEST_CASE("a cancelled accept leaves the connections that arrive after it for the next accepts") {
  corio_test::hang_guard guard{"accept after a cancelled one", 120s};
  for (const unsigned workers : {1u, 2u, 4u}) {
    corio::runtime rt{{.workers = workers}};
    auto l = tcp_listener::bind("127.0.0.1:0");
    const endpoint ep = l.local_endpoint();
    std::atomic<bool> parked{false};
    auto h = rt.spawn(accept_expecting_cancel(&l, &parked));
    for (int i = 0; i < 2000 && !parked.load(); ++i) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(5ms);  // let it reach the queue; either way the outcome is the same
    h.cancel();
    CHECK(rt.block_on(join(std::move(h))));
    // Connections arriving now are queued by the still-armed multishot (or wait in the backlog).
    std::vector<int> clients;
    std::vector<std::uint16_t> expected;
    for (int i = 0; i < 8; ++i) {
      clients.push_back(raw_connect(ep));
      expected.push_back(local_port(clients.back()));
    }
    auto ports = rt.block_on(accept_ports(&l, 8));
    std::sort(ports.begin(), ports.end());
    std::sort(expected.begin(), expected.end());
    CHECK(ports == expected);
    for (int fd : clients) raw::close(fd);
  }
}

TEST_CASE("accepts cancelled while connections arrive lose none: each is accepted exactly once") {
  corio_test::hang_guard guard{"cancelled accepts racing connects", 240s};
  const int rounds = static_cast<int>(corio_test::scaled(150));
  for (const unsigned workers : {1u, 2u, 4u}) {
    corio::runtime rt{{.workers = workers}};
    auto l = tcp_listener::bind("127.0.0.1:0");
    const endpoint ep = l.local_endpoint();
    std::vector<int> clients;
    std::size_t accepted = 0;
    for (int i = 0; i < rounds; ++i) {
      auto h = rt.spawn(accept_or_cancelled(&l));
      clients.push_back(raw_connect(ep));
      h.cancel();  // races the connection: either the accept got it, or it stays for the next
      tcp_stream s = rt.block_on(join(std::move(h)));
      if (s.is_open()) ++accepted;
    }
    // Every connection not taken by the racing accepts is still there, exactly once.
    const auto rest = rt.block_on(accept_ports(&l, static_cast<int>(clients.size() - accepted)));
    CHECK(accepted + rest.size() == clients.size());
    for (int fd : clients) raw::close(fd);
  }
}

TEST_CASE("an accept whose task was stopped before it waited takes no queued connection") {
  corio_test::hang_guard guard{"stopped accept", 120s};
  corio::runtime rt{{.workers = 1}};
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  const int first = raw_connect(ep);
  { tcp_stream s = rt.block_on(accept_one(&l)); }  // arms the multishot where there is one
  std::vector<int> clients;
  std::vector<std::uint16_t> expected;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(raw_connect(ep));
    expected.push_back(local_port(clients.back()));
  }
  // Let the multishot queue them (bounded; without multishot they wait in the backlog).
  for (int i = 0; i < 2000 && multishot_accepts(rt) != 0 && multishot_accepts(rt) < 4; ++i) {
    std::this_thread::sleep_for(1ms);
  }
  CHECK_FALSE(rt.block_on(accept_stopped_before_it_waits(&l)));
  auto ports = rt.block_on(accept_ports(&l, 3));
  std::sort(ports.begin(), ports.end());
  std::sort(expected.begin(), expected.end());
  CHECK(ports == expected);
  for (int fd : clients) raw::close(fd);
  raw::close(first);
}

TEST_CASE("closing a listener with queued connections closes them and leaks no descriptor") {
  corio_test::hang_guard guard{"listener close with queued connections", 120s};
  for (const unsigned workers : {1u, 2u}) {
    const auto before = corio_test::open_descriptors();
    std::vector<int> clients;
    {
      corio::runtime rt{{.workers = workers}};
      auto l = tcp_listener::bind("127.0.0.1:0");
      const endpoint ep = l.local_endpoint();
      clients.push_back(raw_connect(ep));
      { tcp_stream s = rt.block_on(accept_one(&l)); }  // arms the multishot where there is one
      for (int i = 0; i < 20; ++i) clients.push_back(raw_connect(ep));
      const bool multishot = multishot_accepts(rt) != 0;
      for (int i = 0; i < 2000 && multishot && multishot_accepts(rt) < 21; ++i) std::this_thread::sleep_for(1ms);
      l.close();
      // Every queued connection was closed: each client sees its end (EOF or a reset).
      for (std::size_t i = 1; i < clients.size(); ++i) {
        std::array<char, 8> buf{};
        const auto n = raw::recv(clients[i], buf.data(), buf.size());
        CHECK(n <= 0);
      }
      // The port is free again at once: nothing keeps the socket listening.
      CHECK_NOTHROW((void)tcp_listener::bind(ep));
    }
    for (int fd : clients) raw::close(fd);
    CHECK(corio_test::open_descriptors() == before);
  }
}

TEST_CASE("a listener closed while the runtime has its multishot accept armed shuts down cleanly") {
  corio_test::hang_guard guard{"runtime shutdown with a multishot accept armed", 120s};
  const auto before = corio_test::open_descriptors();
  std::vector<int> clients;
  {
    tcp_listener l = tcp_listener::bind("127.0.0.1:0");
    const endpoint ep = l.local_endpoint();
    {
      corio::runtime rt{{.workers = 2}};
      clients.push_back(raw_connect(ep));
      { tcp_stream s = rt.block_on(accept_one(&l)); }
      for (int i = 0; i < 5; ++i) clients.push_back(raw_connect(ep));
      // The runtime ends with the multishot armed and connections queued or in the backlog.
    }
    // The listener outlives the runtime: a second runtime takes the queued connections.
    corio::runtime rt2{{.workers = 1}};
    CHECK(rt2.block_on(accept_ports(&l, 5)).size() == 5);
  }
  for (int fd : clients) raw::close(fd);
  CHECK(corio_test::open_descriptors() == before);
}

// --- zero-copy send (runtime_options::send_zc_threshold, issue 19) ------------------------------

namespace {

/// Writes `sizes` one write_all each, the pattern running on across them, then shuts down sending.
corio::task<void> write_sizes(tcp_stream* s, std::vector<std::size_t> sizes, std::uint32_t seed) {
  std::size_t offset = 0;
  for (const std::size_t n : sizes) {
    std::vector<std::byte> chunk(n);
    for (std::size_t i = 0; i < n; ++i) chunk[i] = pattern_at(offset + i, seed);
    const std::size_t w = co_await s->write_all(chunk);
    REQUIRE(w == n);
    offset += n;
  }
  s->shutdown(corio::net::shutdown_type::send);
}

/// Reads until the end of the stream, checking the pattern from offset 0.
corio::task<echo_result> read_pattern(tcp_stream* s, std::uint32_t seed) {
  echo_result r;
  std::vector<std::byte> buf(65536);
  for (;;) {
    const std::size_t n = co_await s->read_some(buf);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) r.mismatches += buf[i] != pattern_at(r.received + i, seed) ? 1 : 0;
    r.received += n;
  }
  co_return r;
}

corio::task<echo_result> transfer_sizes(std::vector<std::size_t> sizes, std::uint32_t seed) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
  tcp_stream s = co_await l.accept();
  auto writer = corio::spawn(write_sizes(&c, sizes, seed));
  auto reader = corio::spawn(read_pattern(&s, seed));
  echo_result r = co_await reader;
  co_await writer;
  co_return r;
}

std::uint64_t send_zc_count(const corio::runtime_stats& s) {
  std::uint64_t n = 0;
  for (const auto& w : s.workers) n += w.send_zc;
  return n;
}

/// Sleeps 2 s, then reads as read_pattern (seed 7).
corio::task<echo_result> read_pattern_later(tcp_stream* s) {
  co_await corio::sleep_for(2s);
  echo_result r = co_await read_pattern(s, 7);
  co_return r;
}

/// A write_all of `bytes` to a peer that reads nothing for 2 s, timed out after 1 s; the peer
/// then reads to the end. Returns what the peer received and how many bytes differ from the pattern.
corio::task<echo_result> timed_out_write(std::size_t bytes) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_stream c = co_await tcp_stream::connect(l.local_endpoint());
  tcp_stream s = co_await l.accept();
  auto reader = corio::spawn(read_pattern_later(&s));
  std::vector<std::byte> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = pattern_at(i, 7);
  std::error_code ec;
  auto sent = co_await corio::try_timeout(1s, c.write_all(data, ec));
  REQUIRE((!sent.has_value() || ec == std::errc::operation_canceled));
  c.shutdown(corio::net::shutdown_type::send);
  echo_result r = co_await reader;
  co_return r;
}

}  // namespace

TEST_CASE("with send_zc_threshold at 1 byte, write_all of many sizes up to 1 MiB arrives intact and in order") {
  corio_test::hang_guard guard{"send_zc transfers", 120s};
  const std::vector<std::size_t> sizes{1, 7, 100, 4096, 65535, 65536, 65537, 100000, 1u << 20, 3, 1u << 20};
  std::size_t total = 0;
  for (const std::size_t n : sizes) total += n;
  for (const unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers, .send_zc_threshold = 1}};
    for (std::uint32_t seed = 0; seed < 3; ++seed) {
      const echo_result r = rt.block_on(transfer_sizes(sizes, seed));
      CHECK(r.received == total);
      CHECK(r.mismatches == 0);
    }
    const auto stats = rt.stats();
    const bool on = stats.backend_features.find("send_zc") != std::string::npos;
    // io_uring on a kernel with SEND_ZC (6.0) names it and used it; Asio names and uses nothing.
    CHECK(on == (send_zc_count(stats) > 0));
    if (stats.backend != "io_uring") CHECK_FALSE(on);
  }
}

TEST_CASE("with the threshold at 0 or CORIO_URING_NO_SEND_ZC=1 sends are plain and still arrive intact") {
  corio_test::hang_guard guard{"plain sends", 120s};
  const std::vector<std::size_t> sizes{1, 65536, 1u << 20};
  for (const bool forced : {false, true}) {
    std::optional<corio_test::scoped_env> env;
    if (forced) env.emplace("CORIO_URING_NO_SEND_ZC", "1");
    corio::runtime rt{{.workers = 2, .send_zc_threshold = forced ? std::size_t{1} : std::size_t{0}}};
    const echo_result r = rt.block_on(transfer_sizes(sizes, 5));
    CHECK(r.received == (1u << 20) + 65537);
    CHECK(r.mismatches == 0);
    CHECK(rt.stats().backend_features.find("send_zc") == std::string::npos);
    CHECK(send_zc_count(rt.stats()) == 0);
  }
}

TEST_CASE("CORIO_SEND_ZC_THRESHOLD sets the threshold the program left at 0, and bad values are refused") {
  {
    corio_test::scoped_env env{"CORIO_SEND_ZC_THRESHOLD", "1"};
    corio::runtime rt{{.workers = 1}};
    const std::vector<std::size_t> sizes{4096, 4096};
    const echo_result r = rt.block_on(transfer_sizes(sizes, 9));
    CHECK(r.received == 8192);
    CHECK(r.mismatches == 0);
    if (rt.stats().backend == "io_uring") {
      CHECK((rt.stats().backend_features.find("send_zc") != std::string::npos) == (send_zc_count(rt.stats()) > 0));
    }
  }
  for (const char* bad : {"-1", "lots", "12k"}) {
    corio_test::scoped_env env{"CORIO_SEND_ZC_THRESHOLD", bad};
    CHECK_THROWS_AS((corio::runtime{{.workers = 1}}), std::invalid_argument);
  }
}

TEST_CASE("a zero-copy write_all timed out against a peer that does not read leaves a prefix and no request behind") {
  corio_test::hang_guard guard{"send_zc timeout", 120s};
  for (const unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock, .send_zc_threshold = 1}};
    const echo_result r = rt.block_on(timed_out_write(std::size_t{64} << 20));
    CHECK(r.received < (std::size_t{64} << 20));  // the peer's buffers cannot hold it all
    CHECK(r.mismatches == 0);
    // The reader's task leaves the registry just after its join completes.
    for (int i = 0; i < 10'000 && rt.stats().live_tasks != 0; ++i) std::this_thread::sleep_for(1ms);
    CHECK(rt.stats().live_tasks == 0);
    CHECK((rt.stats().backend_features.find("send_zc") != std::string::npos) == (send_zc_count(rt.stats()) > 0));
  }
}

#if !defined(_WIN32)  // by design: Unix socket pairs
namespace {

corio::task<void> write_unix(corio::net::unix_stream* s, const std::vector<std::byte>* data) {
  co_await s->write_all(*data);
  s->shutdown(corio::net::shutdown_type::send);
}

/// Writes `bytes` of the pattern through one end of a Unix stream pair and reads them at the other.
corio::task<echo_result> unix_transfer(std::size_t bytes) {
  auto [a, b] = corio::net::unix_stream::pair();
  std::vector<std::byte> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = pattern_at(i, 3);
  auto writer = corio::spawn(write_unix(&a, &data));
  echo_result r;
  std::vector<std::byte> buf(65536);
  for (;;) {
    const std::size_t n = co_await b.read_some(buf);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) r.mismatches += buf[i] != pattern_at(r.received + i, 3) ? 1 : 0;
    r.received += n;
  }
  co_await writer;
  co_return r;
}

}  // namespace

TEST_CASE("with send_zc_threshold set, a Unix stream (no zero copy) still sends every byte, with plain sends") {
  corio_test::hang_guard guard{"send_zc on a unix stream", 120s};
  for (const unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers, .send_zc_threshold = 1}};
    const echo_result r = rt.block_on(unix_transfer(std::size_t{1} << 20));
    CHECK(r.received == (std::size_t{1} << 20));
    CHECK(r.mismatches == 0);
  }
}
#endif
