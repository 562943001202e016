// Suite "samples": the http_hello connection handler, end to end over loopback on corio.
#include <corio/corio.hpp>
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_server.hpp"
#include "test_support.hpp"

using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;

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

}  // namespace

TEST_SUITE_BEGIN("samples");

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

TEST_SUITE_END();
