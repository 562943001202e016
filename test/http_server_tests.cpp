// Suite "samples": the http_hello connection handler, end to end over loopback on corio.
#include <corio/corio.hpp>
#include <corio/testing.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "http/http_server.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_samples::http::server_limits;

namespace {

constexpr std::string_view ok_response =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";

corio::task<void> accept_n(tcp_listener* l, int n) {
  for (int i = 0; i < n; ++i) corio::spawn(corio_samples::http::serve_connection(co_await l->accept())).detach();
}

/// Sends `pieces` one write at a time (each a separate segment: TCP_NODELAY), then half-closes,
/// and returns everything the server sent until it closed.
corio::task<std::string> exchange(endpoint server, std::vector<std::string> pieces) {
  tcp_stream s = co_await tcp_stream::connect(server);
  s.set_nodelay(true);
  for (const auto& p : pieces) {
    co_await s.write_all(p);
    co_await corio::yield();
  }
  s.shutdown(corio::net::shutdown_type::send);
  std::string got;
  std::array<char, 4096> buf{};
  for (int i = 0; i < 100'000; ++i) {  // bounded
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    got.append(buf.data(), n);
  }
  co_return got;
}

corio::task<std::string> run_exchange(std::vector<std::string> pieces) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(accept_n(&l, 1));
  std::string got = co_await exchange(l.local_endpoint(), std::move(pieces));
  co_await server;
  co_return got;
}

std::string repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

constexpr std::string_view get_root = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

// The timeout tests: the sample's defaults, spelled out (a 10 s head, 60 s of keep-alive idle).
// They run on the manual clock with one worker, which takes in every completion before it parks
// and lets the clock jump. With several workers the clock may jump while a worker already counted
// idle is still reaping a completion (a read that a peer's bytes or close ended): with the jump to
// the next timer repeated, the runtime time at which that worker sees the completion has no bound,
// and a test of timeouts over sockets cannot say which came first.
server_limits timed_limits() {
  server_limits limits;
  limits.header_timeout = 10s;
  limits.keepalive_timeout = 60s;
  return limits;
}

corio::task<void> serve_n(tcp_listener* l, int n, server_limits limits) {
  for (int i = 0; i < n; ++i) {
    tcp_stream s = co_await l->accept();
    corio::spawn(corio_samples::http::serve_connection(std::move(s), limits)).detach();
  }
}

/// Reads until the server closes the connection (end of stream, or an error such as a reset) or
/// until `limit` of runtime time has passed; appends what it read to `got` (when not null).
/// True when the server closed it.
corio::task<bool> closed_within(tcp_stream* s, corio::clock::duration limit, std::string* got) {
  const corio::clock::time_point until = corio::now() + limit;
  std::array<char, 4096> buf{};
  for (int i = 0; i < 100'000; ++i) {  // bounded
    std::optional<std::size_t> n;
    try {
      n = co_await corio::try_deadline(until, s->read_some(buf));
    } catch (const std::system_error&) {
      co_return true;  // reset
    }
    if (!n) co_return false;  // still open at the limit
    if (*n == 0) co_return true;
    if (got != nullptr) got->append(buf.data(), *n);
  }
  co_return false;
}

/// Reads until `size` bytes came, the server closed the connection, or 1000 s passed.
corio::task<std::string> read_n(tcp_stream* s, std::size_t size) {
  const corio::clock::time_point until = corio::now() + 1000s;
  std::string got;
  std::array<char, 65536> buf{};
  while (got.size() < size) {
    std::optional<std::size_t> n;
    try {
      const std::size_t want = std::min(buf.size(), size - got.size());
      n = co_await corio::try_deadline(until, s->read_some(std::span<char>{buf}.first(want)));
    } catch (const std::system_error&) {
      break;
    }
    if (!n || *n == 0) break;
    got.append(buf.data(), *n);
  }
  co_return got;
}

/// Sends `bytes` one write (one segment: TCP_NODELAY) at a time, `gap` apart.
corio::task<void> send_slowly(tcp_stream* s, std::string bytes, corio::clock::duration gap) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i != 0) co_await corio::sleep_for(gap);
    co_await s->write_all(std::string_view{bytes}.substr(i, 1));
  }
}

/// How a connection ended: closed by the server (or not, within the client's limit), and when, in
/// runtime time since a moment the test picks.
struct ending {
  bool closed = false;
  corio::clock::duration after{};
};

corio::task<tcp_stream> connect_to(endpoint server) {
  tcp_stream s = co_await tcp_stream::connect(server);
  s.set_nodelay(true);
  co_return s;
}

/// A new connection that sends `bytes` (perhaps none) and then nothing more; waits at most 30 s
/// (well before the keep-alive timeout) for the server to close it. `after` counts from the
/// connect.
corio::task<ending> first_request_stops(std::string bytes) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  const corio::clock::time_point start = corio::now();
  tcp_stream s = co_await connect_to(l.local_endpoint());
  if (!bytes.empty()) co_await s.write_all(bytes);
  ending e;
  e.closed = co_await closed_within(&s, 30s, nullptr);
  e.after = corio::now() - start;
  co_await server;
  co_return e;
}

/// One request answered, `idle` of silence, then half a head (at once, or a byte a second for
/// 40 s): the head's deadline counts from its first byte.
corio::task<ending> half_a_head_after(corio::clock::duration idle, bool trickle) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  co_await s.write_all(get_root);
  const std::string first = co_await read_n(&s, ok_response.size());
  CHECK(first == ok_response);
  co_await corio::sleep_for(idle);
  const corio::clock::time_point start = corio::now();
  ending e;
  if (trickle) {
    // A head that never ends, a byte a second: every read gets a byte long before any per-read
    // timeout, so only a deadline for the whole head stops it. The wait between bytes watches
    // for the close.
    const std::string head = "GET / HTTP/1.1\r\nX-Slow: " + std::string(40, 'a');
    std::error_code ec;
    for (std::size_t i = 0; i < 40 && !e.closed; ++i) {
      co_await s.write_all(std::string_view{head}.substr(i, 1), ec);
      e.closed = static_cast<bool>(ec);  // refused: the server closed it
      if (!e.closed) e.closed = co_await closed_within(&s, 1s, nullptr);
    }
  } else {
    co_await s.write_all("GET / HTTP/1.1\r\nHos");
    e.closed = co_await closed_within(&s, 25s, nullptr);  // the keep-alive deadline is 60 s after the answer
  }
  e.after = corio::now() - start;
  co_await server;
  co_return e;
}

/// Requests `count` answers, `gap` apart, on one connection, then waits (at most 100 s) for the
/// server to close it; `after` counts from the last request.
corio::task<ending> keep_alive_then_idle(int count, corio::clock::duration gap) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  corio::clock::time_point last{};
  for (int i = 0; i < count; ++i) {
    if (i != 0) co_await corio::sleep_for(gap);
    last = corio::now();
    co_await s.write_all(get_root);
    const std::string got = co_await read_n(&s, ok_response.size());
    CHECK(got == ok_response);
  }
  ending e;
  e.closed = co_await closed_within(&s, 100s, nullptr);
  e.after = corio::now() - last;
  co_await server;
  co_return e;
}

/// A head sent a byte every 300 ms (8.1 s in all) as the first request, then again after 30 s of
/// keep-alive idle: both answered.
corio::task<std::string> slow_heads() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  co_await send_slowly(&s, std::string{get_root}, 300ms);
  std::string got = co_await read_n(&s, ok_response.size());
  co_await corio::sleep_for(30s);
  co_await send_slowly(&s, std::string{get_root}, 300ms);
  got += co_await read_n(&s, ok_response.size());
  co_await server;
  co_return got;
}

corio::task<void> write_all_of(tcp_stream* s, std::string data) { co_await s->write_all(data); }

corio::task<std::string> read_later(tcp_stream* s, corio::clock::duration pause, std::size_t size) {
  co_await corio::sleep_for(pause);
  co_return co_await read_n(s, size);
}

/// `count` pipelined requests whose answers (far more than the socket buffers hold) the client
/// starts reading only after `pause`: the server's write waits all that time.
corio::task<std::string> answers_read_late(int count, corio::clock::duration pause) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  auto both = co_await corio::when_all(write_all_of(&s, repeat(get_root, count)),
                                       read_later(&s, pause, ok_response.size() * count));
  co_await server;
  co_return std::move(std::get<1>(both));
}

/// A POST whose 12-byte body comes a byte every `gap` after its head, then a GET; the server
/// answers the POST once its head is in. Returns everything the server sent until it closed
/// (after the GET, the client half-closes) or 200 s passed.
corio::task<std::string> slow_body(corio::clock::duration gap) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  co_await s.write_all("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
  co_await corio::sleep_for(gap);
  co_await send_slowly(&s, "hello, body!", gap);
  co_await s.write_all(get_root);
  s.shutdown(corio::net::shutdown_type::send);
  std::string got;
  co_await closed_within(&s, 200s, &got);
  co_await server;
  co_return got;
}

/// A POST whose body stops after 3 of its 100 bytes; waits at most 30 s for the server to close.
/// `after` counts from the last byte sent.
corio::task<ending> body_stops() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  co_await s.write_all("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
  const corio::clock::time_point start = corio::now();
  ending e;
  std::string got;
  e.closed = co_await closed_within(&s, 30s, &got);
  e.after = corio::now() - start;
  CHECK(got == ok_response);  // answered once the head was in
  co_await server;
  co_return e;
}

struct linger_result {
  std::string got;                  // what the server sent before its half-close
  std::size_t while_held = 0;       // open descriptors once the answer came
  std::size_t after = 0;            // ... once they dropped, or after 30 s
  corio::clock::duration waited{};  // how long that took
};

/// A `Connection: close` request: the server answers and half-closes, then drains what the client
/// still sends. The client reads to the end and keeps its side open: the server must still let go.
corio::task<linger_result> close_answer_then_hold() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, 1, timed_limits()));
  tcp_stream s = co_await connect_to(l.local_endpoint());
  co_await s.write_all("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
  linger_result r;
  co_await closed_within(&s, 1000s, &r.got);
  co_await server;
  r.while_held = corio_test::open_descriptors();  // the listener and both sides
  const corio::clock::time_point start = corio::now();
  for (int i = 0; i < 30 && corio_test::open_descriptors() == r.while_held; ++i) {
    co_await corio::sleep_for(1s);
  }
  r.after = corio_test::open_descriptors();
  r.waited = corio::now() - start;
  co_return r;
}

struct crowd_result {
  int slow_closed = 0;                   // slow connections the server closed
  int answered = 0;                      // answers the well-behaved client got
  std::size_t descriptors_left = 0;      // open descriptors once the server let go, ...
  std::size_t descriptors_expected = 0;  // ... and what they should be
};

/// A client that sends nothing (`half` false) or half a head, then waits (at most 30 s) for the
/// server to close; returns its stream, still open on this side, or an empty one when the server
/// did not close.
corio::task<tcp_stream> slow_client(endpoint server, bool half) {
  tcp_stream s = co_await connect_to(server);
  if (half) co_await s.write_all("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a");
  const bool closed = co_await closed_within(&s, 30s, nullptr);
  if (!closed) s.close();
  co_return s;
}

struct steady_result {
  int answered = 0;
  tcp_stream stream;  // still open on the client's side
};

/// A well-behaved client: `count` requests, 5 s apart, on one keep-alive connection, which it
/// keeps open afterwards.
corio::task<steady_result> steady_client(endpoint server, int count) {
  steady_result r;
  r.stream = co_await connect_to(server);
  for (int i = 0; i < count; ++i) {
    co_await r.stream.write_all(get_root);
    const std::string got = co_await read_n(&r.stream, ok_response.size());
    if (got == ok_response) ++r.answered;
    co_await corio::sleep_for(5s);
  }
  co_return r;
}

/// `slow` clients that send nothing or half a head, and one that sends `requests` requests 5 s
/// apart meanwhile. Every client keeps its own side open; the server must let go of all of its
/// sides: the slow ones at the header timeout, the steady one at the keep-alive timeout.
corio::task<crowd_result> slow_crowd(int slow, int requests) {
  crowd_result r;
  const std::size_t base = corio_test::open_descriptors();
  auto l = tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_n(&l, slow + 1, timed_limits()));
  auto steady = corio::spawn(steady_client(l.local_endpoint(), requests));
  std::vector<corio::task<tcp_stream>> clients;
  for (int i = 0; i < slow; ++i) clients.push_back(slow_client(l.local_endpoint(), i % 2 == 1));
  std::vector<tcp_stream> ended = co_await corio::when_all(std::move(clients));
  for (const auto& s : ended) r.slow_closed += s.native_handle() >= 0 ? 1 : 0;
  steady_result st = co_await steady;
  r.answered = st.answered;
  co_await server;
  // The listener and the clients' sides are left; the server's sides close as they time out
  // (bounded: 300 s of runtime time, far beyond both timeouts).
  r.descriptors_expected = base + 1 + static_cast<std::size_t>(r.slow_closed) + 1;
  for (int i = 0; i < 300 && corio_test::open_descriptors() != r.descriptors_expected; ++i) {
    co_await corio::sleep_for(1s);
  }
  r.descriptors_left = corio_test::open_descriptors();
  co_return r;
}

}  // namespace

TEST_SUITE_BEGIN("samples");

TEST_CASE("the request framer keeps no bytes between requests, only the tail of a split one") {
  corio_samples::http::request_framer framer;
  std::string out;
  const std::string_view get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  CHECK_FALSE(framer.on_data(get, out));
  CHECK(framer.kept_bytes() == 0);
  CHECK(out.find("Hello, World!") != std::string::npos);
  out.clear();
  // Two requests and the start of a third in one read: the third's start is kept, copied.
  std::string reads = std::string{get} + std::string{get} + "GET / HT";
  CHECK_FALSE(framer.on_data(reads, out));
  CHECK(framer.kept_bytes() == 8);
  reads.assign(reads.size(), 'z');  // the read buffer goes back to its ring and is reused
  CHECK_FALSE(framer.on_data("TP/1.1\r\nHost: x\r\n\r\n", out));
  CHECK(framer.kept_bytes() == 0);
  std::size_t answers = 0;
  for (std::size_t at = out.find("200 OK"); at != std::string::npos; at = out.find("200 OK", at + 1)) ++answers;
  CHECK(answers == 3);
}

TEST_CASE("http_hello answers one GET with Hello, World!") {
  corio::runtime rt{{.workers = 2}};
  CHECK(rt.block_on(run_exchange({std::string{get_root}})) == ok_response);
}

TEST_CASE("http_hello answers every pipelined request, in order") {
  corio::runtime rt{{.workers = 2}};
  CHECK(rt.block_on(run_exchange({repeat(get_root, 50)})) == repeat(ok_response, 50));
}

TEST_CASE("http_hello answers a request split across many reads once it is complete") {
  corio::runtime rt{{.workers = 2}};
  std::vector<std::string> bytes;
  const std::string req = repeat(get_root, 2);
  for (char c : req) bytes.emplace_back(1, c);
  CHECK(rt.block_on(run_exchange(bytes)) == repeat(ok_response, 2));
}

TEST_CASE("http_hello answers malformed input with 400 and closes, after answering what came before") {
  corio::runtime rt{{.workers = 2}};
  const std::string got =
      rt.block_on(run_exchange({std::string{get_root} + "BAD REQUEST LINE\r\n\r\n" + std::string{get_root}}));
  CHECK(got == std::string{ok_response} +
                   "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST_CASE("http_hello answers an oversized head with 431 and closes") {
  corio::runtime rt{{.workers = 1}};
  const std::string huge = "GET / HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  const std::string got = rt.block_on(run_exchange({huge}));
  CHECK(got.rfind("HTTP/1.1 431 ", 0) == 0);
}

TEST_CASE("http_hello honours Connection: close and HTTP/1.0 keep-alive rules") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(run_exchange({"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + std::string{get_root}})) ==
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        "Hello, World!");
  CHECK(rt.block_on(run_exchange({"GET / HTTP/1.0\r\n\r\n"})) ==
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        "Hello, World!");
  CHECK(rt.block_on(run_exchange({"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"})) ==
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\n"
        "Hello, World!");
}

TEST_CASE("http_hello skips request bodies and answers 404 for other targets") {
  corio::runtime rt{{.workers = 1}};
  const std::string got = rt.block_on(run_exchange(
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", "lo" + std::string{"GET /nope HTTP/1.1\r\n\r\n"}}));
  CHECK(got == std::string{ok_response} + "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE(
    "http_hello closes a connection that sends nothing once the header timeout has passed since the accept") {
  corio_test::hang_guard guard{"a silent connection", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  const ending e = rt.block_on(first_request_stops(""));
  CHECK(e.closed);        // within 30 s: the first request is bounded by the header timeout
  CHECK(e.after >= 10s);  // never before it
}

TEST_CASE("http_hello closes a connection whose head stops half-way once the header timeout has passed") {
  corio_test::hang_guard guard{"half a head", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  SUBCASE("the first request: counted from the accept") {
    const ending e = rt.block_on(first_request_stops("GET / HTTP/1.1\r\nHos"));
    CHECK(e.closed);
    CHECK(e.after >= 10s);
  }
  SUBCASE("a later request: counted from the head's first byte, not from the previous answer") {
    const ending e = rt.block_on(half_a_head_after(30s, false));
    CHECK(e.closed);        // within 25 s of the first byte, before the keep-alive deadline
    CHECK(e.after >= 10s);  // not 10 s after the previous answer (that was 30 s before the byte)
  }
  SUBCASE("a head that keeps coming a byte a second is stopped 10 s after its first byte") {
    const ending e = rt.block_on(half_a_head_after(30s, true));
    CHECK(e.closed);  // within the 40 s it would take to send
    CHECK(e.after >= 10s);
  }
}

TEST_CASE("http_hello closes a keep-alive connection idle for the keep-alive timeout after its last answer") {
  corio_test::hang_guard guard{"keep-alive idle", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  // Three requests 50 s apart (each gap within the 60 s keep-alive timeout, their sum beyond it),
  // then silence.
  const ending e = rt.block_on(keep_alive_then_idle(3, 50s));
  CHECK(e.closed);        // within 100 s
  CHECK(e.after >= 60s);  // the keep-alive timeout, not the header timeout, counted from the last answer
}

CORIO_TEST_CASE("http_hello answers a head sent slowly that is complete within the header timeout") {
  const std::string got = co_await slow_heads();
  CHECK(got == repeat(ok_response, 2));
}

TEST_CASE("http_hello's timeouts never cut an answer the client is slow to read") {
  corio_test::hang_guard guard{"a slow reader", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  // 100,000 answers (7.8 MB, more than the socket buffers hold), read from 200 s on: longer than
  // both timeouts. Every answer arrives whole.
  const int count = 100'000;
  const std::string got = rt.block_on(answers_read_late(count, 200s));
  CHECK(got.size() == ok_response.size() * count);
  CHECK(got == repeat(ok_response, count));
}

TEST_CASE("http_hello closes a connection whose request body stops coming for the header timeout") {
  corio_test::hang_guard guard{"a body that stops", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  SUBCASE("a body that stops") {
    const ending e = rt.block_on(body_stops());
    CHECK(e.closed);        // within 30 s
    CHECK(e.after >= 10s);  // never before the header timeout
  }
  SUBCASE("a body that keeps coming, a byte every 5 s, is read to its end: the limit is per read") {
    // 60 s for the whole body, each wait 5 s.
    CHECK(rt.block_on(slow_body(5s)) == repeat(ok_response, 2));
  }
}

CORIO_TEST_CASE(
    "http_hello lets go of a connection whose client keeps it open after a Connection: close answer") {
  const linger_result r = co_await close_answer_then_hold();
  CHECK(r.got ==
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        "Hello, World!");
  CHECK(r.after + 1 == r.while_held);  // the server's side closed, within 30 s
  CHECK(r.waited >= 10s);              // after the header timeout, counted from the half-close
}

TEST_CASE(
    "http_hello keeps serving while it times out silent and half-sent connections, and frees their "
    "descriptors") {
  corio_test::hang_guard guard{"a crowd of slow clients", 120s};
  corio::runtime rt{{.workers = 1, .clock = corio::manual_clock}};
  const crowd_result r = rt.block_on(slow_crowd(40, 20));
  CHECK(r.slow_closed == 40);  // each within 30 s
  CHECK(r.answered == 20);     // one every 5 s, through the timeouts of the others
  CHECK(r.descriptors_left == r.descriptors_expected);
}

TEST_SUITE_END();
