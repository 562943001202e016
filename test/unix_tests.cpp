// Suite "net", Unix socket part: corio::net::unix_listener, unix_stream and unix_endpoint, with
// paths in a fresh temporary directory and Linux abstract names, on either reactor (the suite
// also runs with CORIO_BACKEND=asio).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <corio/corio.hpp>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::unix_endpoint;
using corio::net::unix_listener;
using corio::net::unix_stream;
using corio_test::hang_guard;

namespace {

/// A fresh directory under /tmp (mkdtemp), removed with what it holds at the end of the scope.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = "/tmp/corio_unix_XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] std::string file(std::string_view name) const { return path_ + "/" + std::string{name}; }

 private:
  std::string path_;
};

/// A name no other run of this test uses at the same time (abstract names are machine-wide).
std::string unique_abstract_name(std::string_view what) {
  return "corio-test-" + std::string{what} + "-" + std::to_string(::getpid());
}

std::byte pattern_at(std::size_t offset, std::size_t seed) {
  return static_cast<std::byte>((offset * 31 + seed) & 0xff);
}

corio::task<void> echo_connection(unix_stream s) {
  std::array<std::byte, 4096> buf{};
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) co_return;
    co_await s.write_all({buf.data(), n});
  }
}

corio::task<void> echo_server(unix_listener* l, int connections) {
  corio::task_group group;
  for (int i = 0; i < connections; ++i) {
    unix_stream s = co_await l->accept();
    group.spawn(echo_connection(std::move(s)));
  }
  co_await group.join();
}

/// Connects, sends `bytes` of a pattern (write_some for the first piece, write_all for the rest)
/// while reading the echo; true when every byte came back in order.
corio::task<bool> echo_client(unix_endpoint server, std::size_t bytes, std::size_t seed) {
  unix_stream s = co_await unix_stream::connect(server);
  std::vector<std::byte> data(bytes);
  for (std::size_t i = 0; i < bytes; ++i) data[i] = pattern_at(i, seed);
  const std::size_t first = co_await s.write_some({data.data(), std::min<std::size_t>(100, bytes)});
  std::size_t sent = first;
  std::vector<std::byte> got;
  std::array<std::byte, 8192> buf{};
  while (got.size() < bytes) {
    if (sent < bytes) {
      const std::size_t chunk = std::min<std::size_t>(8192, bytes - sent);
      sent += co_await s.write_all({data.data() + sent, chunk});
    }
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  s.shutdown(corio::net::shutdown_type::send);
  const std::size_t after = co_await s.read_some(buf);  // the server closes: end of stream
  co_return first > 0 && after == 0 && got == data;
}

corio::task<int> echo_many(unix_endpoint where, int clients, std::size_t bytes) {
  unix_listener l = unix_listener::bind(where);
  CHECK(l.local_endpoint() == where);
  auto server = corio::spawn(echo_server(&l, clients));
  std::vector<corio::join_handle<bool>> hs;
  for (int i = 0; i < clients; ++i)
    hs.push_back(corio::spawn(echo_client(where, bytes, static_cast<std::size_t>(i))));
  int good = 0;
  for (auto& h : hs) {
    const bool ok = co_await h;
    good += ok ? 1 : 0;
  }
  co_await server;
  co_return good;
}

struct pair_outcome {
  std::string a_got;
  std::size_t eof = 99;
  bool unnamed = false;
};

corio::task<pair_outcome> pair_round_trip() {
  auto [a, b] = unix_stream::pair();
  pair_outcome out;
  out.unnamed = a.local_endpoint().is_unnamed() && b.remote_endpoint().is_unnamed();
  const std::string_view hello = "hello over a pair";
  (void)co_await b.write_all(hello);
  std::array<char, 64> buf{};
  std::size_t got = 0;
  while (got < hello.size()) {
    const std::size_t n = co_await a.read_some(std::span<char>{buf.data() + got, buf.size() - got});
    if (n == 0) break;
    got += n;
  }
  out.a_got.assign(buf.data(), got);
  b.close();
  out.eof = co_await a.read_some(std::span<char>{buf});
  co_return out;
}

struct failure {
  std::error_code code;
  std::string message;
  bool open = true;
};

corio::task<failure> connect_failure(unix_endpoint where, bool throwing) {
  failure f;
  if (throwing) {
    try {
      unix_stream s = co_await unix_stream::connect(where);
      f.open = s.is_open();
    } catch (const std::system_error& e) {
      f.code = e.code();
      f.message = e.what();
      f.open = false;
    }
    co_return f;
  }
  unix_stream s = co_await unix_stream::connect(where, f.code);
  f.open = s.is_open();
  co_return f;
}

corio::task<failure> write_to_closed_peer() {
  auto [a, b] = unix_stream::pair();
  b.close();
  failure f;
  std::vector<std::byte> data(1 << 16);
  try {
    (void)co_await a.write_all(data);
  } catch (const std::system_error& e) {
    f.code = e.code();
    f.message = e.what();
  }
  std::error_code ec;
  const std::size_t n = co_await a.write_some(data, ec);
  CHECK(n == 0);
  CHECK(ec == std::errc::broken_pipe);
  co_return f;
}

corio::task<void> accept_forever(unix_listener* l, int* outcome) {
  try {
    unix_stream s = co_await l->accept();
    *outcome = 2;
  } catch (const corio::operation_cancelled&) {
    *outcome = 1;
  }
}

std::uint64_t submitted(const corio::runtime& rt) {
  return corio_test::worker_sum(rt, &corio::worker_stats::io_submitted);
}

corio::task<bool> cancelled_accept_then_used(corio::runtime* rt, unix_listener* l, unix_endpoint where,
                                             int* outcome) {
  const std::uint64_t base = submitted(*rt);
  auto h = corio::spawn(accept_forever(l, outcome));
  for (int i = 0; i < 100000 && submitted(*rt) == base; ++i) co_await corio::yield();
  h.cancel();
  co_await h;
  // The listener still accepts.
  unix_stream client = co_await unix_stream::connect(where);
  unix_stream server = co_await l->accept();
  (void)co_await client.write_all(std::string_view{"x"});
  std::array<std::byte, 4> buf{};
  const std::size_t n = co_await server.read_some(buf);
  co_return n == 1 && client.remote_endpoint() == where;
}

corio::task<int> moved_from_stream() {
  auto [a, b] = unix_stream::pair();
  unix_stream c = std::move(a);
  int checks = 0;
  std::array<std::byte, 16> buf{};
  try {
    (void)co_await a.read_some(buf);
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  try {
    (void)co_await a.write_some(buf);
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  std::error_code ec;
  const std::size_t n = co_await a.read_some(buf, ec);
  checks += (n == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  const std::size_t w = co_await a.write_all(std::string_view{"x"}, ec);
  checks += (w == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  a.shutdown(corio::net::shutdown_type::both, ec);
  checks += ec == std::errc::bad_file_descriptor ? 1 : 0;
  CHECK_THROWS_AS((void)a.local_endpoint(), std::system_error);
  co_return checks;
}

}  // namespace

TEST_SUITE_BEGIN("net");

TEST_CASE("a Unix listener on a path echoes to several clients on 1, 2 and 4 workers") {
  hang_guard guard{"unix path echo", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    temp_dir dir;
    corio::runtime rt{{.workers = workers}};
    const unix_endpoint where{dir.file("echo.sock")};
    CHECK(rt.block_on(echo_many(where, 10, corio_test::scaled(64 * 1024))) == 10);
    // The listener is gone; its file stays (the listener does not remove it).
    CHECK(std::filesystem::exists(where.path()));
  }
}

TEST_CASE("a Unix listener on an abstract name echoes to several clients") {
  hang_guard guard{"unix abstract echo", 120s};
  for (unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers}};
    const unix_endpoint where = unix_endpoint::abstract(unique_abstract_name("echo"));
    CHECK(where.to_string() == "@" + where.path());
    CHECK(rt.block_on(echo_many(where, 10, corio_test::scaled(64 * 1024))) == 10);
  }
}

TEST_CASE("unix_stream::pair carries bytes both ways and reports end of stream after a close") {
  hang_guard guard{"unix pair", 60s};
  corio::runtime rt{{.workers = 2}};
  const pair_outcome out = rt.block_on(pair_round_trip());
  CHECK(out.a_got == "hello over a pair");
  CHECK(out.eof == 0);
  CHECK(out.unnamed);
}

TEST_CASE("connecting to a missing path fails with ENOENT naming the path, in both forms") {
  hang_guard guard{"unix missing", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  const unix_endpoint missing{dir.file("nobody-here.sock")};
  const failure thrown = rt.block_on(connect_failure(missing, true));
  CHECK(thrown.code == std::errc::no_such_file_or_directory);
  CHECK(thrown.message.find(missing.path()) != std::string::npos);
  const failure returned = rt.block_on(connect_failure(missing, false));
  CHECK(returned.code == std::errc::no_such_file_or_directory);
  CHECK_FALSE(returned.open);
}

TEST_CASE("a stale socket file refuses connections and is not removed by a new bind") {
  hang_guard guard{"unix stale", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  const unix_endpoint stale{dir.file("stale.sock")};
  unix_listener::bind(stale).close();  // the file stays behind
  REQUIRE(std::filesystem::is_socket(stale.path()));
  const failure f = rt.block_on(connect_failure(stale, true));
  CHECK(f.code == std::errc::connection_refused);
  CHECK(f.message.find(stale.path()) != std::string::npos);
  try {
    (void)unix_listener::bind(stale);
    FAIL("bind over a stale socket file succeeded");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::address_in_use);
    CHECK(std::string{e.what()}.find(stale.path()) != std::string::npos);
  }
  // Removing it is the caller's decision; then the path binds again.
  std::filesystem::remove(stale.path());
  CHECK(unix_listener::bind(stale).is_open());
}

TEST_CASE("a path or abstract name too long for sun_path fails with ENAMETOOLONG naming it") {
  const std::string long_path = "/tmp/" + std::string(200, 'p');
  try {
    (void)unix_endpoint{long_path};
    FAIL("a 205-byte path was accepted");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::filename_too_long);
    CHECK(std::string{e.what()}.find(long_path) != std::string::npos);
  }
  constexpr std::size_t capacity = sizeof(sockaddr_un::sun_path);
  CHECK_NOTHROW((void)unix_endpoint{std::string(capacity - 1, 'a')});
  CHECK_THROWS_AS((void)unix_endpoint{std::string(capacity, 'a')}, std::system_error);
  CHECK_NOTHROW((void)unix_endpoint::abstract(std::string(capacity - 1, 'a')));
  try {
    (void)unix_endpoint::abstract(std::string(capacity, 'a'));
    FAIL("a too long abstract name was accepted");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::filename_too_long);
  }
  CHECK_THROWS_AS((void)unix_endpoint{""}, std::system_error);
  const std::string_view with_nul{"a\0b", 3};
  CHECK_THROWS_AS((void)unix_endpoint{with_nul}, std::system_error);
  CHECK_THROWS_AS((void)unix_listener::bind(unix_endpoint{}), std::system_error);
}

TEST_CASE("unix endpoints print and convert to and from sockaddr_un") {
  const unix_endpoint path{"/run/x.sock"};
  CHECK(path.to_string() == "/run/x.sock");
  CHECK_FALSE(path.is_abstract());
  const unix_endpoint name = unix_endpoint::abstract("corio");
  CHECK(name.to_string() == "@corio");
  CHECK(name.is_abstract());
  CHECK(unix_endpoint{}.to_string() == "(unnamed)");
  for (const unix_endpoint& e : {path, name, unix_endpoint{}}) {
    alignas(8) std::array<std::byte, 128> storage{};
    const std::uint32_t size = e.to_native(storage.data());
    CHECK(unix_endpoint::from_native(storage.data(), size) == e);
  }
  CHECK_FALSE(path == name);
  sockaddr_in other{};
  other.sin_family = AF_INET;
  CHECK_THROWS_AS((void)unix_endpoint::from_native(&other, sizeof other), std::system_error);
}

TEST_CASE("writing to a Unix stream whose peer closed is EPIPE as a system_error, never SIGPIPE") {
  hang_guard guard{"unix epipe", 60s};
  corio::runtime rt{{.workers = 1}};
  const failure f = rt.block_on(write_to_closed_peer());
  CHECK(f.code == std::errc::broken_pipe);
  CHECK(f.message.find("unix_stream::write_all") != std::string::npos);
}

TEST_CASE("a cancelled Unix accept ends with operation_cancelled and the listener still accepts") {
  hang_guard guard{"unix cancelled accept", 60s};
  for (unsigned workers : {1u, 2u}) {
    temp_dir dir;
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const unix_endpoint where{dir.file("accept.sock")};
    unix_listener l = unix_listener::bind(where);
    int outcome = 0;
    CHECK(rt.block_on(cancelled_accept_then_used(&rt, &l, where, &outcome)));
    CHECK(outcome == 1);
  }
}

TEST_CASE("operations on a moved-from Unix stream fail with EBADF in both forms") {
  hang_guard guard{"unix moved-from", 60s};
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(moved_from_stream()) == 5);
  unix_listener closed;
  CHECK_THROWS_AS((void)closed.accept(), std::system_error);
  CHECK_THROWS_AS((void)closed.local_endpoint(), std::system_error);
}

TEST_SUITE_END();
