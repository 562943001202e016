// samples/http_load.cpp - an HTTP/1.1 keep-alive load generator written with corio.
//
//   http_load [--port N] [--host ADDRESS] [--connections N] [--seconds S] [--workers N] [--path P]
//
// Opens N keep-alive connections to ADDRESS:PORT (default 127.0.0.1:8080, 64 connections,
// 5 seconds, 1 worker, like `wrk -t1 -c64 -d5s`), each sending one GET at a time for S seconds,
// and prints requests per second and the p50/p99/max latency in microseconds. Exits 1 when any
// connection failed, any answer was malformed, truncated or not 200. A connection the server
// closes between two answers (a graceful shutdown) is counted as closed, not as an error.
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_parser.hpp"
#include "sample_args.hpp"

using namespace std::chrono_literals;
using corio_samples::parse_unsigned;
namespace http = corio_samples::http;

namespace {

struct options {
  unsigned port = 8080;
  std::string host = "127.0.0.1";
  unsigned connections = 64;
  unsigned seconds = 5;
  unsigned workers = 1;
  std::string path = "/";
};

struct connection_result {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;      // connect or I/O failures, malformed or truncated answers
  std::uint64_t closed = 0;      // the server closed the connection between answers (a drain)
  std::uint64_t non_200 = 0;
  std::vector<std::uint32_t> latency_ns;  // one entry per request, capped at ~4.29 s
};

// Bounded in time (the deadline) and in count (max_requests per connection).
constexpr std::uint64_t max_requests = 100'000'000;

corio::task<void> drive(corio::net::endpoint server, corio::clock::time_point deadline, std::string request,
                        connection_result* out) {
  std::error_code ec;
  corio::net::tcp_stream s = co_await corio::net::tcp_stream::connect(server, ec);
  if (ec) {
    ++out->errors;
    co_return;
  }
  s.set_nodelay(true, ec);
  std::array<char, 16384> buf{};
  std::size_t have = 0;
  out->latency_ns.reserve(1 << 16);
  while (corio::clock::now() < deadline && out->requests < max_requests) {
    const auto start = corio::clock::now();
    (void)co_await s.write_all(request, ec);
    if (ec) {
      // The server closed the connection (a graceful shutdown closes idle keep-alive
      // connections): no answer was begun, so nothing was lost.
      ++(ec == std::errc::broken_pipe || ec == std::errc::connection_reset ? out->closed : out->errors);
      co_return;
    }
    http::response_head head;
    for (;;) {
      const auto st = http::parse_response({buf.data(), have}, head);
      if (st == http::parse_status::complete && have >= head.head_bytes + head.content_length) break;
      if (st == http::parse_status::bad_request || st == http::parse_status::too_large ||
          have == buf.size()) {
        ++out->errors;
        co_return;
      }
      const std::size_t n = co_await s.read_some(std::span<char>{buf}.subspan(have), ec);
      if (ec || n == 0) {
        // Closed before a byte of the answer: the request was not taken (a drain). Closed in the
        // middle of an answer: a truncated answer, an error.
        const bool clean = have == 0 && (n == 0 || ec == std::errc::connection_reset);
        ++(clean ? out->closed : out->errors);
        co_return;
      }
      have += n;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(corio::clock::now() - start);
    out->latency_ns.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(elapsed.count(), UINT32_MAX)));
    ++out->requests;
    if (head.status != 200) ++out->non_200;
    const std::size_t used = head.head_bytes + head.content_length;
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
}

corio::task<int> load(options opt) {
  const auto server = corio::net::endpoint::parse(
      opt.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", opt.host, opt.port)
                                              : fmt::format("{}:{}", opt.host, opt.port));
  const std::string request = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", opt.path, opt.host);
  std::vector<connection_result> results(opt.connections);
  std::vector<corio::join_handle<void>> tasks;
  const auto start = corio::clock::now();
  const auto deadline = start + std::chrono::seconds(opt.seconds);
  for (auto& r : results) tasks.push_back(corio::spawn(drive(server, deadline, request, &r)));
  for (auto& t : tasks) co_await t;
  const double elapsed = std::chrono::duration<double>(corio::clock::now() - start).count();

  std::uint64_t requests = 0, errors = 0, non_200 = 0, closed = 0;
  std::vector<std::uint32_t> all;
  for (auto& r : results) {
    requests += r.requests;
    errors += r.errors;
    closed += r.closed;
    non_200 += r.non_200;
    all.insert(all.end(), r.latency_ns.begin(), r.latency_ns.end());
  }
  auto percentile_us = [&all](double p) {
    if (all.empty()) return 0.0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(all.size() - 1));
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
    return all[k] / 1000.0;
  };
  const double p50 = percentile_us(0.50);
  const double p99 = percentile_us(0.99);
  const double max = all.empty() ? 0.0 : *std::max_element(all.begin(), all.end()) / 1000.0;
  fmt::print("http_load: {} connections to {} for {:.2f} s\n", opt.connections, server.to_string(), elapsed);
  fmt::print("requests: {}  errors: {}  non-200: {}  closed by the server: {}\n", requests, errors, non_200,
             closed);
  fmt::print("requests/s: {:.0f}\n", static_cast<double>(requests) / elapsed);
  fmt::print("latency us: p50 {:.1f}  p99 {:.1f}  max {:.1f}\n", p50, p99, max);
  co_return (errors == 0 && non_200 == 0 && requests > 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    bool ok = has_value;
    if (ok && arg == "--port") ok = parse_unsigned(argv[++i], opt.port) && opt.port <= 65535;
    else if (ok && arg == "--host") opt.host = argv[++i];
    else if (ok && arg == "--connections") ok = parse_unsigned(argv[++i], opt.connections) && opt.connections > 0;
    else if (ok && arg == "--seconds") ok = parse_unsigned(argv[++i], opt.seconds) && opt.seconds > 0;
    else if (ok && arg == "--workers") ok = parse_unsigned(argv[++i], opt.workers);
    else if (ok && arg == "--path") opt.path = argv[++i];
    else ok = false;
    if (!ok) {
      fmt::print(stderr,
                 "usage: http_load [--port N] [--host ADDRESS] [--connections N] [--seconds S] "
                 "[--workers N] [--path P]\n");
      return 2;
    }
  }
  try {
    return corio::run(load(opt), {.workers = opt.workers});
  } catch (const std::exception& e) {
    fmt::print(stderr, "http_load: {}\n", e.what());
    return 1;
  }
}
