// samples/http_hello.cpp - an HTTP/1.1 keep-alive "Hello, World!" server on corio.
//
//   http_hello [--port N] [--workers N] [--bind ADDRESS]
//
// Listens on 127.0.0.1:8080 by default (--port 0 picks a free port), prints
// "listening on ADDRESS:PORT" once ready, and serves every connection in its own task. When
// accept fails because the process is out of descriptors (EMFILE/ENFILE) it backs off for 10 ms
// and keeps serving the connections it has.
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "sample_args.hpp"
#include "http/http_server.hpp"

using namespace std::chrono_literals;
using corio_samples::parse_unsigned;

namespace {

struct options {
  unsigned port = 8080;
  unsigned workers = 0;
  std::string bind = "127.0.0.1";
};

int usage() {
  fmt::print(stderr, "usage: http_hello [--port N] [--workers N] [--bind ADDRESS]\n");
  return 2;
}

corio::task<int> serve(std::string address) {
  auto listener = corio::net::tcp_listener::bind(address);
  fmt::print("listening on {}\n", listener.local_endpoint().to_string());
  std::fflush(stdout);
  auto last_report = corio::clock::now() - 1s;
  for (;;) {
    std::error_code ec;
    corio::net::tcp_stream s = co_await listener.accept(ec);
    if (!ec) {
      corio::spawn(corio_samples::http::serve_connection(std::move(s))).detach();
      continue;
    }
    if (ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system) {
      if (corio::clock::now() - last_report >= 1s) {  // at most one line a second
        fmt::print(stderr, "http_hello: accept: {}; backing off\n", ec.message());
        last_report = corio::clock::now();
      }
      co_await corio::sleep_for(10ms);
      continue;
    }
    if (ec == std::errc::connection_aborted || ec == std::errc::interrupted) continue;
    fmt::print(stderr, "http_hello: accept failed: {}\n", ec.message());
    co_return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value) {
      if (!parse_unsigned(argv[++i], opt.port) || opt.port > 65535) return usage();
    } else if (arg == "--workers" && has_value) {
      if (!parse_unsigned(argv[++i], opt.workers)) return usage();
    } else if (arg == "--bind" && has_value) {
      opt.bind = argv[++i];
    } else {
      return usage();
    }
  }
  const std::string address =
      opt.bind.find(':') != std::string::npos ? fmt::format("[{}]:{}", opt.bind, opt.port)
                                              : fmt::format("{}:{}", opt.bind, opt.port);
  try {
    corio::runtime rt{{.workers = opt.workers}};
    const corio::runtime_stats stats = rt.stats();
    fmt::print(stderr, "http_hello: {} workers on {} ({}){}{}\n", rt.workers(), stats.backend, stats.backend_features,
               stats.backend_fallback.empty() ? "" : "; fallback: ", stats.backend_fallback);
    return rt.block_on(serve(address));
  } catch (const std::exception& e) {
    fmt::print(stderr, "http_hello: {}\n", e.what());
    return 1;
  }
}
