// Suite "faults": chosen I/O operations fail (lib/fault_injection.hpp; built only with the meson
// option fault_injection, which tools/test.sh turns on for the asan build). Each test runs a small
// server and client over 127.0.0.1, once on the reactor the runtime picks and once on Asio
// (`meson test --setup asio`), makes operations fail the way a kernel can, and checks that the
// tasks see what the API promises, that nothing else breaks, and that afterwards the process's
// open descriptors and the runtime's live tasks are back to where they were.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <corio/corio.hpp>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "fault_injection.hpp"
#include "http/http_server.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_test::hang_guard;
using corio_test::open_descriptors;
namespace fault = corio::detail::fault;

namespace {

/// No rule is armed while it lives, nor after it: a failed check must not leave rules behind.
struct rules_cleared {
  rules_cleared() { fault::clear(); }
  ~rules_cleared() { fault::clear(); }
  rules_cleared(const rules_cleared&) = delete;
  rules_cleared& operator=(const rules_cleared&) = delete;
};

/// The process's open descriptors and the runtime's live tasks when it was made; check() says
/// whether both are back there (live tasks may take a moment: a finished task leaves the count
/// when its worker settles it, so check() waits a bounded while for that).
class baseline {
 public:
  explicit baseline(corio::runtime& rt)
      : rt_(rt), descriptors_(open_descriptors()), tasks_(rt.stats().live_tasks) {}
  void check() const {
    for (int i = 0; i < 10'000 && rt_.stats().live_tasks != tasks_; ++i) std::this_thread::sleep_for(1ms);
    CHECK(rt_.stats().live_tasks == tasks_);
    // No descriptor leaked. Twice in CI's ASan run (in "io_uring refused at every set-up", 9 == 11,
    // at two different commits) the count was two *below* the baseline, which is not a leak and
    // whose cause is not found yet (the closing note of 2026-12-05 says so): wait a bounded while
    // for the count to settle, then accept no more than the baseline, and say when it is lower.
    std::size_t now = open_descriptors();
    for (int i = 0; i < 1'000 && now != descriptors_; ++i) {
      std::this_thread::sleep_for(1ms);
      now = open_descriptors();
    }
    CHECK(now <= descriptors_);
    if (now < descriptors_) MESSAGE("descriptors below the baseline: ", now, " < ", descriptors_);
  }

 private:
  corio::runtime& rt_;
  std::size_t descriptors_;
  std::uint64_t tasks_;
};

std::vector<std::byte> random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 gen{seed};
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(gen() & 0xff);
  return out;
}

const char* site_name(fault::site s) {
  switch (s) {
    case fault::site::accept:
      return "accept";
    case fault::site::connect:
      return "connect";
    case fault::site::recv:
      return "recv";
    case fault::site::send:
      return "send";
    case fault::site::read:
      return "read";
    case fault::site::uring_setup:
      return "uring_setup";
  }
  return "?";
}

// --- an error in the middle of a stream ----------------------------------------------------------

struct echo_result {
  std::error_code error;  ///< what the server's throwing forms threw; empty when nothing
  int rule = 0;           ///< the id of the rule armed on the server's stream
};

/// Accepts one connection, arms `*r` on its descriptor, and echoes with the throwing forms until
/// the peer closes or an operation throws (recorded in `*out`). The stream closes as it returns.
corio::task<void> echo_until_error(tcp_listener* l, const fault::rule* r, echo_result* out) {
  tcp_stream s = co_await l->accept();
  fault::rule on_this = *r;
  on_this.fd = s.native_handle();
  out->rule = fault::arm(on_this);
  std::array<std::byte, 256> buf{};
  try {
    for (int i = 0; i < 1000; ++i) {  // bounded
      const std::size_t n = co_await s.read_some(buf);
      if (n == 0) co_return;
      co_await s.write_all({buf.data(), n});
    }
  } catch (const std::system_error& e) {
    out->error = e.code();
  }
}

/// Sends `rounds` messages one at a time, each once the previous one came back whole, with the
/// error_code forms; returns how many came back before an error or the end of the stream.
corio::task<int> echo_rounds(endpoint server, int rounds) {
  tcp_stream s = co_await tcp_stream::connect(server);
  int done = 0;
  for (int i = 0; i < rounds; ++i) {
    const std::string message = "message " + std::to_string(i);
    std::error_code ec;
    co_await s.write_all(message, ec);
    if (ec) co_return done;
    std::string got;
    std::array<char, 256> buf{};
    while (got.size() < message.size()) {
      const std::size_t n = co_await s.read_some(buf, ec);
      if (ec || n == 0) co_return done;
      got.append(buf.data(), n);
    }
    if (got != message) co_return done;
    ++done;
  }
  co_return done;
}

corio::task<int> echo_with_fault(const fault::rule* r, echo_result* out, int rounds) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(echo_until_error(&l, r, out));
  const int done = co_await echo_rounds(l.local_endpoint(), rounds);
  co_await server;
  co_return done;
}

// --- short reads and writes ----------------------------------------------------------------------

struct short_result {
  std::vector<std::byte> echoed;
  std::size_t largest_read = 0;  ///< the most one read_some returned on the server
  std::size_t server_reads = 0;
};

/// Echoes with rules making the server's reads at most `server_read` bytes and its sends at most
/// `server_send`, until the peer closes.
corio::task<void> short_echo_server(tcp_listener* l, std::size_t server_read, std::size_t server_send,
                                    short_result* out) {
  tcp_stream s = co_await l->accept();
  fault::rule reads{
      .where = fault::site::recv, .max_bytes = server_read, .fd = s.native_handle(), .times = fault::forever};
  fault::rule sends{
      .where = fault::site::send, .max_bytes = server_send, .fd = s.native_handle(), .times = fault::forever};
  fault::arm(reads);
  fault::arm(sends);
  std::array<std::byte, 4096> buf{};
  for (int i = 0; i < 1'000'000; ++i) {  // bounded
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) co_return;
    out->largest_read = std::max(out->largest_read, n);
    ++out->server_reads;
    const std::size_t written = co_await s.write_all({buf.data(), n});
    CHECK(written == n);
  }
}

/// Writes `data` (its own sends cut to `client_send` bytes) while reading the echo back (its reads
/// cut to `client_read`), then half-closes and reads the rest.
corio::task<void> short_echo_reader(tcp_stream* s, std::size_t expected, std::vector<std::byte>* out) {
  std::array<std::byte, 4096> buf{};
  while (out->size() < expected) {
    const std::size_t n = co_await s->read_some(buf);
    if (n == 0) break;
    out->insert(out->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

corio::task<void> short_echo(const std::vector<std::byte>* data, std::size_t client_send,
                             std::size_t client_read, std::size_t server_read, std::size_t server_send,
                             short_result* out) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(short_echo_server(&l, server_read, server_send, out));
  tcp_stream s = co_await tcp_stream::connect(l.local_endpoint());
  fault::rule sends{
      .where = fault::site::send, .max_bytes = client_send, .fd = s.native_handle(), .times = fault::forever};
  fault::rule reads{
      .where = fault::site::recv, .max_bytes = client_read, .fd = s.native_handle(), .times = fault::forever};
  fault::arm(sends);
  fault::arm(reads);
  // The reader runs beside the writer, so that neither side's buffers fill while the other waits.
  auto reader = corio::spawn(short_echo_reader(&s, data->size(), &out->echoed));
  const std::size_t written = co_await s.write_all({data->data(), data->size()});
  CHECK(written == data->size());
  co_await reader;
  s.shutdown(corio::net::shutdown_type::send);
  co_await server;
}

// --- write_all: short sends, then an error -------------------------------------------------------

/// A client whose sends are cut to 1000 bytes and whose fifth send fails with EPIPE writes 64 KiB
/// with the error_code form; returns its error and count, and what the server received.
corio::task<std::pair<std::error_code, std::size_t>> write_all_broken_after_short_sends(
    std::vector<std::byte>* got) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_stream client = co_await tcp_stream::connect(l.local_endpoint());
  tcp_stream server = co_await l.accept();
  const fault::rule cut{
      .where = fault::site::send, .max_bytes = 1000, .fd = client.native_handle(), .times = fault::forever};
  const fault::rule broken{
      .where = fault::site::send, .error = EPIPE, .fd = client.native_handle(), .skip = 4};
  fault::arm(cut);
  fault::arm(broken);
  const std::vector<std::byte> data(64 * 1024, std::byte{'x'});
  std::error_code ec;
  const std::size_t sent = co_await client.write_all({data.data(), data.size()}, ec);
  client.close();
  std::array<std::byte, 4096> buf{};
  for (int i = 0; i < 10'000; ++i) {  // bounded
    const std::size_t n = co_await server.read_some(buf);
    if (n == 0) break;
    got->insert(got->end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
  }
  co_return std::pair{ec, sent};
}

// --- EINTR and EAGAIN ----------------------------------------------------------------------------

/// Accepts one connection and echoes it with the throwing forms until the peer closes; returns
/// the error it threw, if any.
corio::task<std::error_code> echo_server(tcp_listener* l) {
  try {
    tcp_stream s = co_await l->accept();
    std::array<std::byte, 256> buf{};
    for (int i = 0; i < 100'000; ++i) {  // bounded
      const std::size_t n = co_await s.read_some(buf);
      if (n == 0) co_return std::error_code{};
      co_await s.write_all({buf.data(), n});
    }
  } catch (const std::system_error& e) {
    co_return e.code();
  }
  co_return std::error_code{};
}

/// One echo server and `rounds` round trips to it; the server's error, and the rounds that came
/// back whole.
corio::task<std::pair<std::error_code, int>> echo_session(int rounds) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(echo_server(&l));
  const int done = co_await echo_rounds(l.local_endpoint(), rounds);
  const std::error_code error = co_await server;
  co_return std::pair{error, done};
}

corio::task<std::error_code> connect_error(endpoint server) {
  std::error_code ec;
  tcp_stream s = co_await tcp_stream::connect(server, ec);
  CHECK(s.is_open() == !ec);
  co_return ec;
}

corio::task<int> wait_for_signal(int number) { co_return co_await corio::signal({number}); }
corio::task<int> join_int(corio::join_handle<int> h) { co_return co_await h; }

// --- the http_hello sample -------------------------------------------------------------------

constexpr std::string_view hello_closed =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    "Hello, World!";

/// One request on a new connection, with the error_code forms; true when the whole answer came.
corio::task<bool> http_get(endpoint server) {
  std::error_code ec;
  tcp_stream s = co_await tcp_stream::connect(server, ec);
  if (ec) co_return false;
  co_await s.write_all(std::string_view{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"}, ec);
  if (ec) co_return false;
  std::string got;
  std::array<char, 1024> buf{};
  for (int i = 0; i < 10'000; ++i) {  // bounded
    const std::size_t n = co_await s.read_some(buf, ec);
    if (ec || n == 0) break;
    got.append(buf.data(), n);
  }
  co_return got == hello_closed;
}

struct hello_clients {
  int with_faults = 0;  ///< requests answered while the rules were armed
  int after = 0;        ///< requests answered once every rule was cleared
};

/// `with_faults` requests one after the other, then, when `after` is not 0, clears every rule and
/// makes `after` more.
corio::task<hello_clients> http_requests(endpoint server, int with_faults, int after) {
  hello_clients answered;
  for (int i = 0; i < with_faults; ++i) {
    const bool ok = co_await http_get(server);
    answered.with_faults += ok ? 1 : 0;
  }
  if (after != 0) fault::clear();
  for (int i = 0; i < after; ++i) {
    const bool ok = co_await http_get(server);
    answered.after += ok ? 1 : 0;
  }
  co_return answered;
}

struct hello_outcome {
  bool loop_ended_first = false;  ///< the accept loop ended before the clients did: a failure
  int loop_status = -1;           ///< what it returned then
  hello_clients answered;
};

/// http_hello's accept loop against the clients of http_requests: the first to end wins (when_any
/// cancels the other); then the connections are cancelled and joined, as http_hello does.
corio::task<hello_outcome> run_http_hello(int with_faults, int after,
                                          corio_samples::http::accept_report* report) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  corio::task_group connections;
  auto first = co_await corio::when_any(corio_samples::http::accept_loop(&l, &connections, report),
                                        http_requests(l.local_endpoint(), with_faults, after));
  hello_outcome out;
  if (first.index() == 0) {
    out.loop_ended_first = true;
    out.loop_status = std::get<0>(first);
  } else {
    out.answered = std::get<1>(first);
  }
  connections.cancel();
  co_await connections.join();
  co_return out;
}

// --- a tiny completion queue ---------------------------------------------------------------------

/// Echoes one stream until the peer closes.
corio::task<void> echo_stream(tcp_stream s) {
  std::array<std::byte, 4096> buf{};
  for (int i = 0; i < 1'000'000; ++i) {  // bounded
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) co_return;
    co_await s.write_all({buf.data(), n});
  }
}

corio::task<void> accept_echo(tcp_listener* l, int connections, corio::task_group* group) {
  for (int i = 0; i < connections; ++i) group->spawn(echo_stream(co_await l->accept()));
}

/// `rounds` round trips of `size` bytes, each different; counts the ones that came back exact.
corio::task<void> echo_client(endpoint server, int rounds, std::size_t size, std::uint64_t seed, int* exact) {
  tcp_stream s = co_await tcp_stream::connect(server);
  std::vector<std::byte> back(size);
  for (int r = 0; r < rounds; ++r) {
    const std::vector<std::byte> message = random_bytes(size, seed + static_cast<std::uint64_t>(r));
    co_await s.write_all({message.data(), message.size()});
    std::size_t got = 0;
    while (got < size) {
      const std::size_t n = co_await s.read_some(std::span{back}.subspan(got));
      if (n == 0) co_return;
      got += n;
    }
    if (back == message) ++*exact;
  }
}

/// `connections` clients at once, each with `rounds` round trips; the exact round trips in all.
corio::task<int> echo_load(int connections, int rounds, std::size_t size, std::uint64_t seed) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  corio::task_group servers;
  corio::task_group clients;
  std::vector<int> exact(static_cast<std::size_t>(connections), 0);
  servers.spawn(accept_echo(&l, connections, &servers));
  for (int c = 0; c < connections; ++c) {
    clients.spawn(echo_client(l.local_endpoint(), rounds, size, seed + 1000 * static_cast<std::uint64_t>(c),
                              &exact[static_cast<std::size_t>(c)]));
  }
  co_await clients.join();
  co_await servers.join();
  int total = 0;
  for (const int e : exact) total += e;
  co_return total;
}

/// Waits for bytes that never come; counts itself when its read ends cancelled.
corio::task<void> idle_reader(tcp_stream s, std::atomic<int>* cancelled) {
  std::array<std::byte, 16> buf{};
  try {
    (void)co_await s.read_some(buf);
  } catch (const corio::operation_cancelled&) {
    cancelled->fetch_add(1);
  }
}

/// `n` connections whose server side waits in a read, all of them at once; then cancels them
/// together (n reads and n cancellations in flight, 2n completions at once), and, when `leave`
/// is not null, opens `n` more whose reads are left in flight for the runtime's shutdown, with the
/// client ends handed to `*leave`.
corio::task<void> many_reads(int n, std::atomic<int>* cancelled, std::vector<tcp_stream>* leave) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  std::vector<tcp_stream> clients;
  corio::task_group readers;
  for (int i = 0; i < n; ++i) {
    clients.push_back(co_await tcp_stream::connect(l.local_endpoint()));
    readers.spawn(idle_reader(co_await l.accept(), cancelled));
  }
  for (int i = 0; i < 10; ++i) co_await corio::yield();  // the reads reach the reactors
  readers.cancel();
  co_await readers.join();
  if (leave == nullptr) co_return;
  for (int i = 0; i < n; ++i) {
    leave->push_back(co_await tcp_stream::connect(l.local_endpoint()));
    corio::spawn(idle_reader(co_await l.accept(), cancelled)).detach();
  }
}

// --- io_uring refused ----------------------------------------------------------------------------

/// Echo between a server task bound to worker `server_on`, accepting on `*l`, and a client bound
/// to `client_on`: their I/O goes through those two workers' reactors. The rounds that came back
/// whole.
corio::task<int> echo_between(tcp_listener* l, unsigned server_on, unsigned client_on, int rounds) {
  auto server = corio::spawn_on(server_on, echo_server(l));
  auto client = corio::spawn_on(client_on, echo_rounds(l->local_endpoint(), rounds));
  const int done = co_await client;
  const std::error_code error = co_await server;
  CHECK(!error);
  co_return done;
}

// --- what an injected error leaves behind --------------------------------------------------------

struct untouched_result {
  std::error_code accept_error;  ///< the first accept's
  bool same_peer = false;        ///< the second accept got the connection the first left waiting
  std::error_code read_error;    ///< the first read's
  std::string read_after;        ///< what the next reads got
};

corio::task<untouched_result> injected_errors_leave_the_kernel_alone() {
  untouched_result out;
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_stream client = co_await tcp_stream::connect(l.local_endpoint());
  const int refused = fault::arm({.where = fault::site::accept, .error = EMFILE});
  tcp_stream server = co_await l.accept(out.accept_error);
  CHECK(fault::injected(refused) == 1);
  CHECK(!server.is_open());
  server = co_await l.accept();
  out.same_peer = server.remote_endpoint().to_string() == client.local_endpoint().to_string();
  co_await client.write_all(std::string_view{"hello"});
  fault::arm({.where = fault::site::recv, .error = ECONNRESET, .fd = server.native_handle()});
  std::array<char, 16> buf{};
  (void)co_await server.read_some(buf, out.read_error);
  client.close();
  for (int i = 0; i < 100; ++i) {  // bounded
    const std::size_t n = co_await server.read_some(buf);
    if (n == 0) break;
    out.read_after.append(buf.data(), n);
  }
  co_return out;
}

}  // namespace

TEST_SUITE_BEGIN("faults");

TEST_CASE("a rule that cannot fault is refused") {
  const rules_cleared cleared;
  CHECK_THROWS_AS(fault::arm({.where = fault::site::recv}), std::invalid_argument);
  CHECK_THROWS_AS(fault::arm({.where = fault::site::recv, .error = -1}), std::invalid_argument);
  CHECK_THROWS_AS(fault::arm({.where = fault::site::recv, .error = EIO, .every = 0}), std::invalid_argument);
  CHECK_THROWS_AS(fault::arm({.where = fault::site::accept, .max_bytes = 1}), std::invalid_argument);
  CHECK_THROWS_AS(fault::arm({.where = fault::site::uring_setup, .max_bytes = 1}), std::invalid_argument);
  const int id = fault::arm({.where = fault::site::send, .max_bytes = 1});
  CHECK(id > 0);
  CHECK(fault::injected(id) == 0);
}

TEST_CASE(
    "an injected error leaves the kernel alone: an accept's connection stays in the backlog, a recv's bytes "
    "in the socket") {
  const rules_cleared cleared;
  const hang_guard guard{"injected errors leave the kernel alone", 120s};
  corio::runtime rt{{.workers = 2}};
  const baseline before{rt};
  const untouched_result out = rt.block_on(injected_errors_leave_the_kernel_alone());
  CHECK(out.accept_error == std::errc::too_many_files_open);
  CHECK(out.same_peer);
  CHECK(out.read_error == std::errc::connection_reset);
  CHECK(out.read_after == "hello");
  before.check();
}

TEST_CASE(
    "ECONNRESET, EPIPE or ENOBUFS in the middle of a stream reaches the task as std::system_error, and the "
    "socket is closed") {
  const rules_cleared cleared;
  const hang_guard guard{"errors in the middle of a stream", 300s};
  for (const unsigned workers : {1u, 2u, 4u}) {
    corio::runtime rt{{.workers = workers}};
    const baseline before{rt};
    for (const fault::site where : {fault::site::recv, fault::site::send}) {
      for (const int error : {ECONNRESET, EPIPE, ENOBUFS}) {
        CAPTURE(workers);
        CAPTURE(site_name(where));
        CAPTURE(error);
        // The server's fourth read (or send) fails: three rounds came back whole.
        const fault::rule r{.where = where, .error = error, .skip = 3};
        echo_result server;
        const int rounds = rt.block_on(echo_with_fault(&r, &server, 10));
        CHECK(rounds == 3);
        CHECK(server.error == std::error_code{error, std::system_category()});
        CHECK(fault::injected(server.rule) == 1);
        fault::clear();
      }
    }
    before.check();
  }
}

TEST_CASE(
    "a write_all failing after short sends reports, in its error_code form, exactly the bytes that went "
    "out") {
  const rules_cleared cleared;
  const hang_guard guard{"write_all failing after short sends", 120s};
  corio::runtime rt{{.workers = 2}};
  const baseline before{rt};
  // Sends cut to 1000 bytes; the fifth send fails with EPIPE: 4000 bytes went out.
  std::vector<std::byte> got;
  const auto [ec, sent] = rt.block_on(write_all_broken_after_short_sends(&got));
  CHECK(ec == std::errc::broken_pipe);
  CHECK(sent == 4000);
  CHECK(got.size() == 4000);
  before.check();
}

TEST_CASE(
    "short reads and writes: read_some returns fewer bytes, write_all still writes everything, byte for "
    "byte") {
  const rules_cleared cleared;
  const hang_guard guard{"short reads and writes", 300s};
  const std::uint64_t seed = corio_test::test_seed();
  const std::vector<std::byte> data = random_bytes(16 * 1024, seed);
  for (const unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    const baseline before{rt};
    short_result out;
    rt.block_on(short_echo(&data, 5, 11, 7, 3, &out));
    CHECK(out.echoed == data);
    CHECK(out.largest_read <= 7);
    CHECK(out.server_reads >= data.size() / 7);
    fault::clear();
    before.check();
  }
}

TEST_CASE(
    "EINTR and EAGAIN on accept, recv and send are retried: the tasks never see them, and every byte "
    "arrives") {
  const rules_cleared cleared;
  const hang_guard guard{"EINTR and EAGAIN retried", 300s};
  for (const unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    const baseline before{rt};
    // On every socket: the first accepts fail, and every second recv and send, every third with
    // EAGAIN (one in six both: EINTR wins).
    std::vector<int> ids;
    ids.push_back(fault::arm({.where = fault::site::accept, .error = EINTR, .times = 2}));
    ids.push_back(fault::arm({.where = fault::site::accept, .error = EAGAIN, .times = 1}));
    for (const fault::site where : {fault::site::recv, fault::site::send}) {
      ids.push_back(fault::arm({.where = where, .error = EINTR, .every = 2, .times = fault::forever}));
      ids.push_back(fault::arm({.where = where, .error = EAGAIN, .every = 3, .times = fault::forever}));
    }
    const auto [error, rounds] = rt.block_on(echo_session(50));
    CHECK(!error);
    CHECK(rounds == 50);
    for (const int id : ids) CHECK(fault::injected(id) > 0);
    fault::clear();
    before.check();
  }
}

TEST_CASE("EINTR on the read under corio::signal is retried: the wait still returns the signal") {
  const rules_cleared cleared;
  const hang_guard guard{"signal read retried", 120s};
  corio::runtime rt{{.workers = 2}};
  const baseline before{rt};
  const int id = fault::arm({.where = fault::site::read, .error = EINTR, .times = 3});
  auto waiting = rt.spawn(wait_for_signal(SIGUSR1));
  // The wait is registered before its first read: a signal from now on reaches it.
  for (int i = 0; i < 60'000 && fault::injected(id) == 0; ++i) std::this_thread::sleep_for(1ms);
  REQUIRE(fault::injected(id) > 0);
  REQUIRE(::raise(SIGUSR1) == 0);
  CHECK(rt.block_on(join_int(std::move(waiting))) == SIGUSR1);
  CHECK(fault::injected(id) == 3);
  before.check();
}

TEST_CASE("EINTR and EAGAIN on connect are reported (a connect is not restarted), and its socket is closed") {
  const rules_cleared cleared;
  const hang_guard guard{"connect reports EINTR and EAGAIN", 120s};
  corio::runtime rt{{.workers = 2}};
  const baseline before{rt};
  auto l = tcp_listener::bind("127.0.0.1:0");
  for (const int error : {EINTR, EAGAIN}) {
    CAPTURE(error);
    const int id = fault::arm({.where = fault::site::connect, .error = error});
    CHECK(rt.block_on(connect_error(l.local_endpoint())) == std::error_code{error, std::system_category()});
    CHECK(fault::injected(id) == 1);
  }
  // And the next connect, with no rule left to fire, works.
  CHECK(!rt.block_on(connect_error(l.local_endpoint())));
  l.close();
  fault::clear();
  before.check();
}

TEST_CASE(
    "http_hello backs off when accept runs out of descriptors or memory, skips an aborted connection, and "
    "serves every client") {
  const rules_cleared cleared;
  const hang_guard guard{"http_hello through accept errors", 300s};
  for (const unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const baseline before{rt};
    // Accepts 1, 3, 5, ... fail, one error each: the loop accepts again after each, so every
    // other accept it makes fails until the rules are spent.
    std::vector<int> ids;
    const std::array errors{EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, EPROTO};
    for (std::size_t i = 0; i < errors.size(); ++i) {
      ids.push_back(fault::arm({.where = fault::site::accept, .error = errors[i], .skip = 2 * i}));
    }
    corio_samples::http::accept_report report{.print = false};
    const hello_outcome out = rt.block_on(run_http_hello(20, 0, &report));
    CHECK_FALSE(out.loop_ended_first);
    CHECK(out.loop_status == -1);
    CHECK(out.answered.with_faults == 20);
    CHECK(report.accepted == 20);
    CHECK(report.backed_off == 4);
    CHECK(report.retried == 2);
    for (const int id : ids) CHECK(fault::injected(id) == 1);
    before.check();
  }
}

TEST_CASE(
    "http_hello answers every client with reads of 3 bytes, writes of 5, and EINTR and EAGAIN everywhere") {
  const rules_cleared cleared;
  const hang_guard guard{"http_hello through short transfers, EINTR and EAGAIN", 300s};
  for (const unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const baseline before{rt};
    // On the server's and the clients' streams alike.
    fault::arm({.where = fault::site::recv, .max_bytes = 3, .times = fault::forever});
    fault::arm({.where = fault::site::send, .max_bytes = 5, .times = fault::forever});
    for (const fault::site where : {fault::site::accept, fault::site::recv, fault::site::send}) {
      fault::arm({.where = where, .error = EINTR, .every = 3, .times = fault::forever});
      fault::arm({.where = where, .error = EAGAIN, .skip = 1, .every = 4, .times = fault::forever});
    }
    corio_samples::http::accept_report report{.print = false};
    const hello_outcome out = rt.block_on(run_http_hello(20, 0, &report));
    CHECK_FALSE(out.loop_ended_first);
    CHECK(out.answered.with_faults == 20);
    CHECK(report.accepted == 20);
    CHECK(report.retried == 0);  // EINTR and EAGAIN never reach the loop
    fault::clear();
    before.check();
  }
}

TEST_CASE(
    "http_hello's connections end quietly on ECONNRESET, EPIPE and ENOBUFS mid-stream, and the server keeps "
    "serving") {
  const rules_cleared cleared;
  const hang_guard guard{"http_hello through errors mid-stream", 300s};
  for (const unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    const baseline before{rt};
    // On the server's and the clients' streams alike.
    fault::arm(
        {.where = fault::site::recv, .error = ECONNRESET, .skip = 1, .every = 5, .times = fault::forever});
    fault::arm({.where = fault::site::send, .error = EPIPE, .every = 4, .times = fault::forever});
    fault::arm(
        {.where = fault::site::send, .error = ENOBUFS, .skip = 2, .every = 7, .times = fault::forever});
    corio_samples::http::accept_report report{.print = false};
    const hello_outcome out = rt.block_on(run_http_hello(30, 5, &report));
    CHECK_FALSE(out.loop_ended_first);
    CHECK(out.answered.with_faults < 30);  // the faults cost some requests...
    CHECK(out.answered.after == 5);        // ...and once they stop, every request is answered
    CHECK(report.accepted == 35);
    before.check();
  }
}

TEST_CASE("a tiny completion queue under load: completions overflow it, and none is lost") {
  const rules_cleared cleared;
  const hang_guard guard{"a tiny completion queue under load", 300s};
  const std::uint64_t seed = corio_test::test_seed();
  constexpr int connections = 64;
  constexpr int rounds = 10;
  for (const unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    // The smallest ring there is: 8 submission entries, 16 completion entries (runtime_options).
    corio::runtime rt{{.workers = workers, .ring_entries = 1}};
    const baseline before{rt};
    const std::uint64_t overflows = fault::cq_overflows();
    CHECK(rt.block_on(echo_load(connections, rounds, 1024, seed)) == connections * rounds);
    if (std::string{rt.backend()} == "io_uring") CHECK(fault::cq_overflows() > overflows);
    const std::string seen = fmt::format("{}, {} workers: {} overflowed completion queues seen", rt.backend(),
                                         workers, fault::cq_overflows() - overflows);
    MESSAGE(seen);
    before.check();
  }
}

TEST_CASE(
    "a tiny completion queue: many reads cancelled at once, and many left for the shutdown, are all reaped") {
  const rules_cleared cleared;
  const hang_guard guard{"a tiny completion queue cancelling and draining", 300s};
  constexpr int n = 64;
  for (const unsigned workers : {1u, 2u}) {
    CAPTURE(workers);
    const std::size_t descriptors = open_descriptors();
    std::vector<tcp_stream> clients;
    std::atomic<int> cancelled{0};
    {
      corio::runtime rt{{.workers = workers, .ring_entries = 1}};
      const baseline before{rt};
      rt.block_on(many_reads(n, &cancelled, nullptr));
      CHECK(cancelled.load() == n);
      before.check();
      rt.block_on(many_reads(n, &cancelled, &clients));
      // The runtime's destructor cancels the n reads still in flight and reaps every one before
      // it frees their frames (ASan would see a completion written into a freed frame).
    }
    CHECK(cancelled.load() >= 2 * n);
    clients.clear();
    CHECK(open_descriptors() == descriptors);
  }
}

TEST_CASE(
    "io_uring refused at every set-up: the runtime falls back to Asio, says why, and survives the faults") {
  const rules_cleared cleared;
  const corio_test::scoped_env automatic{"CORIO_BACKEND", nullptr};
  const hang_guard guard{"io_uring refused", 300s};
  const std::size_t descriptors = open_descriptors();
  {
    const int refused =
        fault::arm({.where = fault::site::uring_setup, .error = EPERM, .times = fault::forever});
    corio::runtime rt{{.workers = 2}};
    CHECK(fault::injected(refused) == 1);  // the probe: the workers then go straight to Asio
    CHECK(std::string{rt.backend()} == "asio");
    const corio::runtime_stats stats = rt.stats();
    CHECK(stats.backend == "asio");
    CHECK(stats.backend_fallback.find("io_uring") != std::string::npos);
    CHECK(stats.backend_fallback.find(std::system_category().message(EPERM)) != std::string::npos);
    const baseline before{rt};
    // An error in the middle of a stream, and short reads and writes, on the fallback.
    const fault::rule reset{.where = fault::site::recv, .error = ECONNRESET, .skip = 3};
    echo_result server;
    CHECK(rt.block_on(echo_with_fault(&reset, &server, 10)) == 3);
    CHECK(server.error == std::errc::connection_reset);
    const std::vector<std::byte> data = random_bytes(4096, 7);
    short_result out;
    rt.block_on(short_echo(&data, 5, 11, 7, 3, &out));
    CHECK(out.echoed == data);
    fault::clear();
    before.check();
  }
  CHECK(open_descriptors() == descriptors);
}

TEST_CASE(
    "io_uring refused for one worker only (ENOMEM after the probe): that worker runs Asio, and the two "
    "reactors serve each other") {
  const rules_cleared cleared;
  const corio_test::scoped_env automatic{"CORIO_BACKEND", nullptr};
  const hang_guard guard{"io_uring refused for one worker", 300s};
  const std::size_t descriptors = open_descriptors();
  {
    // The probe and the first worker to set up get their ring; the second worker does not.
    const int refused = fault::arm({.where = fault::site::uring_setup, .error = ENOMEM, .skip = 2});
    corio::runtime rt{{.workers = 2}};
    const corio::runtime_stats stats = rt.stats();
    if (fault::injected(refused) == 0) {
      // Built without io_uring, or the kernel refused it already at the probe: nothing mixed.
      MESSAGE("io_uring unavailable here: " << stats.backend_fallback);
    } else {
      CHECK(std::string{rt.backend()} == "io_uring+asio");
      CHECK((stats.backend == "io_uring+asio" || stats.backend == "asio+io_uring"));
      CHECK(stats.backend_fallback.find(std::system_category().message(ENOMEM)) != std::string::npos);
    }
    const baseline before{rt};
    // One listener, accepted on by both reactors in turn.
    auto l = tcp_listener::bind("127.0.0.1:0");
    for (int turn = 0; turn < 4; ++turn) {
      const unsigned server_on = static_cast<unsigned>(turn % 2);
      CHECK(rt.block_on(echo_between(&l, server_on, 1 - server_on, 20)) == 20);
    }
    l.close();
    CHECK(rt.block_on(echo_load(16, 5, 1024, 11)) == 16 * 5);
    before.check();
  }
  CHECK(open_descriptors() == descriptors);
}

TEST_SUITE_END();
