// Suite "net": choosing the reactor (io_uring or Asio), the fallback to Asio, and what the Asio
// reactor must get right that the io_uring one gets for free (descriptor numbers reused by new
// sockets). Everything else in the net, sched and samples suites runs on both reactors: once as
// built, once under `meson test --setup asio` (CORIO_BACKEND=asio).
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "http/http_server.hpp"
#include "reactor_factory.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_test::hang_guard;
using corio_test::scoped_env;

namespace {

/// Makes every io_uring set-up in this process fail with `error` while alive.
struct uring_failure {
  explicit uring_failure(int error) { corio::detail::set_uring_setup_failure(error); }
  ~uring_failure() { corio::detail::set_uring_setup_failure(0); }
  uring_failure(const uring_failure&) = delete;
  uring_failure& operator=(const uring_failure&) = delete;
};

corio::task<void> echo_once(tcp_stream s) {
  std::array<std::byte, 4096> buf{};
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) co_return;
    co_await s.write_all({buf.data(), n});
  }
}

/// Accepts `n` connections and echoes each; returns the descriptor numbers the accepted streams
/// had, in order.
corio::task<std::vector<int>> echo_server(tcp_listener* l, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    tcp_stream s = co_await l->accept();
    fds.push_back(s.native_handle());
    co_await echo_once(std::move(s));
  }
  co_return fds;
}

/// Connects, sends `message`, half-closes and returns what came back.
corio::task<std::string> echo_client(endpoint server, std::string message, int* fd) {
  tcp_stream s = co_await tcp_stream::connect(server);
  *fd = s.native_handle();
  co_await s.write_all(message);
  s.shutdown(corio::net::shutdown_type::send);
  std::string got;
  std::array<char, 4096> buf{};
  for (int i = 0; i < 10'000; ++i) {  // bounded
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    got.append(buf.data(), n);
  }
  co_return got;
}

struct reuse_result {
  int rounds_ok = 0;
  std::set<int> numbers;  ///< every descriptor number the connections had
};

/// `rounds` connections one after the other, each closed before the next opens, so that the
/// kernel hands the same few descriptor numbers out again and again, alternately to the client
/// and the server side.
corio::task<reuse_result> reuse_descriptor_numbers(int rounds) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(echo_server(&l, rounds));
  reuse_result r;
  for (int i = 0; i < rounds; ++i) {
    const std::string message = "round " + std::to_string(i);
    int fd = -1;
    const std::string echoed = co_await echo_client(l.local_endpoint(), message, &fd);
    if (echoed == message) ++r.rounds_ok;
    r.numbers.insert(fd);
  }
  for (int fd : co_await server) r.numbers.insert(fd);
  co_return r;
}

corio::task<void> serve_http(tcp_listener* l) {
  co_await corio_samples::http::serve_connection(co_await l->accept());
}

corio::task<std::string> http_request(endpoint server) {
  tcp_stream s = co_await tcp_stream::connect(server);
  co_await s.write_all(std::string_view{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"});
  std::string got;
  std::array<char, 4096> buf{};
  for (int i = 0; i < 10'000; ++i) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    got.append(buf.data(), n);
  }
  co_return got;
}

corio::task<std::string> http_round_trip() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_http(&l));
  std::string got = co_await http_request(l.local_endpoint());
  co_await server;
  co_return got;
}

bool uring_works_here() {
  try {
    corio::runtime rt{{.workers = 1, .backend = corio::io_backend::uring}};
    return true;
  } catch (const std::system_error&) {
    return false;
  } catch (const std::invalid_argument&) {
    return false;  // built without io_uring
  }
}

}  // namespace

TEST_SUITE_BEGIN("net");

TEST_CASE("with io_uring failing at set-up (ENOSYS), an automatic runtime runs on Asio, says why, and serves echo and HTTP") {
  const scoped_env env{"CORIO_BACKEND", nullptr};
  const uring_failure failing{ENOSYS};
  const hang_guard guard{"echo and HTTP on the Asio fallback", 120s};
  corio::runtime rt{{.workers = 2}};
  CHECK(std::string{rt.backend()} == "asio");
  const auto stats = rt.stats();
  CHECK(stats.backend == "asio");
  CHECK(stats.backend_fallback.find("io_uring") != std::string::npos);
  CHECK(stats.backend_fallback.find(std::system_category().message(ENOSYS)) != std::string::npos);
  const reuse_result echo = rt.block_on(reuse_descriptor_numbers(20));
  CHECK(echo.rounds_ok == 20);
  const std::string reply = rt.block_on(http_round_trip());
  CHECK(reply.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(reply.ends_with("Hello, World!"));
}

TEST_CASE("a runtime that must use io_uring refuses to start when io_uring fails, with the errno") {
  const scoped_env env{"CORIO_BACKEND", nullptr};
  const uring_failure failing{EPERM};
  try {
    corio::runtime rt{{.workers = 1, .backend = corio::io_backend::uring}};
    FAIL("started without io_uring");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::operation_not_permitted);
  } catch (const std::invalid_argument&) {
    MESSAGE("built without io_uring");
  }
}

TEST_CASE("CORIO_BACKEND=asio moves an automatic runtime to Asio; an explicit option wins; an unknown value is refused") {
  {
    const scoped_env env{"CORIO_BACKEND", "asio"};
    corio::runtime rt{{.workers = 1}};
    CHECK(std::string{rt.backend()} == "asio");
    CHECK(rt.stats().backend_fallback == "CORIO_BACKEND=asio");
  }
  if (uring_works_here()) {
    const scoped_env env{"CORIO_BACKEND", "asio"};
    corio::runtime rt{{.workers = 1, .backend = corio::io_backend::uring}};
    CHECK(std::string{rt.backend()} == "io_uring");
    CHECK(rt.stats().backend_fallback.empty());
  }
  {
    const scoped_env env{"CORIO_BACKEND", "uring"};
    corio::runtime rt{{.workers = 1, .backend = corio::io_backend::asio}};
    CHECK(std::string{rt.backend()} == "asio");
    CHECK(rt.stats().backend_fallback.empty());
  }
  {
    const scoped_env env{"CORIO_BACKEND", "epoll-please"};
    CHECK_THROWS_AS(corio::runtime(corio::runtime_options{.workers = 1}), std::invalid_argument);
  }
}

TEST_CASE("an automatic runtime runs on io_uring where the kernel allows it") {
  const scoped_env env{"CORIO_BACKEND", nullptr};
  if (!uring_works_here()) {
    MESSAGE("io_uring unavailable here: the automatic choice is Asio");
    return;
  }
  corio::runtime rt{{.workers = 2}};
  CHECK(std::string{rt.backend()} == "io_uring");
  CHECK(rt.stats().backend_fallback.empty());
}

TEST_CASE("on Asio, descriptor numbers reused by new sockets are served as the new sockets") {
  // Each worker keeps an Asio socket per descriptor number it has served; a closed socket's
  // number comes back for the next one, and a stale registration would leave its reads waiting
  // for readiness that never comes (the hang guard) or reading from the wrong socket.
  const hang_guard guard{"descriptor reuse on Asio", 120s};
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .backend = corio::io_backend::asio}};
    const int rounds = static_cast<int>(corio_test::scaled(200));
    const reuse_result r = rt.block_on(reuse_descriptor_numbers(rounds));
    CHECK(r.rounds_ok == rounds);
    // The same few numbers served all the connections: the case this test is about.
    CHECK(r.numbers.size() < static_cast<std::size_t>(rounds));
  }
}

namespace {
corio::task<int> one() { co_return 1; }
corio::task<int> sum_on_workers() {
  auto a = corio::spawn(one());
  auto b = corio::spawn(one());
  const int x = co_await a;
  const int y = co_await b;
  co_return x + y + 1;
}
}  // namespace

TEST_CASE("an io_uring runtime names its optional ring features, and each knob turns its feature off") {
  const auto features_with = [](const char* knob) {
    std::optional<corio_test::scoped_env> env;
    if (knob != nullptr) env.emplace(knob, "1");
    corio::runtime rt{{.workers = 2}};
    // Some I/O and cross-worker work, so that a ring without the feature is really used.
    CHECK(rt.block_on(sum_on_workers()) == 3);
    return rt.stats();
  };
  const corio::runtime_stats plain = features_with(nullptr);
  if (plain.backend != "io_uring") return;  // Asio (CORIO_BACKEND=asio, or no io_uring): nothing to name
  struct knob {
    const char* variable;
    const char* feature;
  };
  for (const knob k : {knob{"CORIO_URING_NO_MULTISHOT", "multishot_accept"}, knob{"CORIO_URING_NO_MSG_RING", "msg_ring"},
                       knob{"CORIO_URING_NO_REGISTERED_RING", "registered_ring"}}) {
    CAPTURE(k.variable);
    const corio::runtime_stats off = features_with(k.variable);
    CHECK(off.backend_features.find(k.feature) == std::string::npos);
    // This machine's kernel (6.18) has every one of them; an older kernel may lack some.
    if (plain.backend_features.find(k.feature) == std::string::npos) MESSAGE("the kernel lacks ", k.feature);
  }
  std::uint64_t enters = 0;
  for (const auto& w : plain.workers) enters += w.uring_enters;
  CHECK(enters > 0);
}

TEST_CASE("sqpoll_idle gives each ring a kernel poller that carries echo and HTTP; the manual clock ignores it") {
  corio_test::hang_guard guard{"sqpoll", 120s};
  for (unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .sqpoll_idle = std::chrono::milliseconds{5}}};
    if (rt.stats().backend != "io_uring") return;  // Asio has no such option
    for (int round = 0; round < 3; ++round) CHECK(rt.block_on(http_round_trip()).find("200 OK") != std::string::npos);
    const std::string features = rt.stats().backend_features;
    CHECK(features.find("sqpoll") != std::string::npos);  // granted, or "sqpoll_refused(...)"
  }
  {
    corio_test::scoped_env env{"CORIO_SQPOLL_IDLE_MS", "5"};
    corio::runtime rt{{.workers = 2}};
    if (rt.stats().backend == "io_uring") CHECK(rt.stats().backend_features.find("sqpoll") != std::string::npos);
  }
  {
    corio_test::scoped_env env{"CORIO_SQPOLL_IDLE_MS", "5ms"};
    CHECK_THROWS_AS(corio::runtime({.workers = 1}), std::invalid_argument);
  }
  corio::runtime manual{{.workers = 2, .clock = corio::manual_clock, .sqpoll_idle = std::chrono::milliseconds{5}}};
  CHECK(manual.stats().backend_features.find("sqpoll") == std::string::npos);
}

TEST_SUITE_END();
