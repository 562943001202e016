// samples/http_hello.cpp - an HTTP/1.1 keep-alive "Hello, World!" server on corio.
//
//   http_hello [--port N] [--workers N] [--bind ADDRESS] [--header-timeout SECONDS]
//              [--keepalive-timeout SECONDS] [--timing-histograms]
//
// Listens on 127.0.0.1:8080 by default (--port 0 picks a free port), prints
// "listening on ADDRESS:PORT" once ready, and serves every connection in its own task. When
// accept fails because the process is out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
// ENOMEM) it backs off for 10 ms and keeps serving the connections it has; an error that belongs
// to the connection being accepted (ECONNABORTED, EPROTO, ...) is skipped
// (samples/http/http_server.hpp: accept_loop). A client gets --header-timeout seconds (default
// 10) to send a request head, counted from the accept for its first request and from the head's
// first byte for the others (the same bound applies to each wait for more of a body, and to the
// lingering close), and a keep-alive connection may stay idle --keepalive-timeout seconds
// (default 60) between requests; past either, the connection is closed (nginx's
// client_header_timeout and keepalive_timeout). 0 means no limit. On SIGINT or SIGTERM it shuts
// down gracefully: it stops accepting, lets every connection finish the request it is answering
// (idle keep-alive connections close at once), and exits 0. `GET /metrics` answers with the
// runtime's metrics in the Prometheus text exposition format (corio::to_prometheus; README.md,
// "Metrics"), `GET /metrics.json` the same as JSON (corio::to_json); --timing-histograms adds the
// poll-time histograms (runtime_options::timing_histograms).
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>

#include "sample_args.hpp"
#include "http/http_server.hpp"

using corio_samples::parse_unsigned;
using corio_samples::http::server_limits;

namespace {

struct options {
  unsigned port = 8080;
  unsigned workers = 0;
  std::string bind = "127.0.0.1";
  server_limits limits;  // the timeouts from the command line, the rest as server_limits has it
  bool timing_histograms = false;
};

int usage() {
  fmt::print(stderr,
             "usage: http_hello [--port N] [--workers N] [--bind ADDRESS] [--header-timeout SECONDS]\n"
             "                  [--keepalive-timeout SECONDS] [--timing-histograms]\n"
             "  --header-timeout SECONDS     time a client has to send a request head, from the accept\n"
             "                               or the head's first byte (default 10; 0: no limit)\n"
             "  --keepalive-timeout SECONDS  idle time allowed between requests (default 60; 0: no limit)\n"
             "  --timing-histograms          poll-time histograms in GET /metrics\n"
             "  SECONDS is at most 31536000 (365 days).\n");
  return 2;
}

/// Parses a timeout in whole seconds (0: no limit, at most 365 days) into `out`; false on
/// anything else.
bool parse_seconds(std::string_view text, corio::clock::duration& out) {
  unsigned seconds = 0;
  if (!parse_unsigned(text, seconds) || std::chrono::seconds{seconds} > corio_samples::http::max_timeout) {
    return false;
  }
  out = std::chrono::seconds{seconds};
  return true;
}

corio::task<int> wait_for_signal() { co_return co_await corio::signal({SIGINT, SIGTERM}); }

/// SIGQUIT prints the task dump to stderr (every task, what it waits for, its async stack), as a
/// Go program prints its goroutines; the server goes on. (Windows has no SIGQUIT: no dump there.)
corio::task<void> dump_on_sigquit(const corio::runtime* rt) {
#if defined(SIGQUIT)
  for (;;) {
    const int signal = co_await corio::signal({SIGQUIT});
    (void)signal;
    const std::string dump = rt->dump_tasks();
    fmt::print(stderr, "http_hello: SIGQUIT: task dump\n{}", dump);
    std::fflush(stderr);
  }
#else
  (void)rt;
  co_return;
#endif
}

corio::task<int> serve(std::string address, server_limits limits, const corio::runtime* rt) {
  auto dumper = corio::spawn(dump_on_sigquit(rt), "SIGQUIT task dump");
  auto listener = corio::net::tcp_listener::bind(address);
  fmt::print("listening on {}\n", listener.local_endpoint().to_string());
  std::fflush(stdout);
  corio::task_group connections;
  // The first of the two to end wins; when_any cancels the other and waits for it.
  corio_samples::http::accept_report report;
  auto first = co_await corio::when_any(wait_for_signal(),
                                        corio_samples::http::accept_loop(&listener, &connections, &report, limits));
  int status = 0;
  if (first.index() == 0) {
    fmt::print(stderr, "http_hello: signal {}: no new connections; finishing the requests in flight\n",
               std::get<0>(first));
  } else {
    status = std::get<1>(first);
  }
  listener = corio::net::tcp_listener{};  // closed: new connections are refused
  connections.cancel();                   // each connection ends at its next read
  co_await connections.join();
  dumper.cancel();
  try {
    co_await dumper;
  } catch (const corio::operation_cancelled&) {
    // The dump loop ends when cancelled.
  }
  fmt::print(stderr, "http_hello: stopped\n");
  co_return status;
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
    } else if (arg == "--header-timeout" && has_value) {
      if (!parse_seconds(argv[++i], opt.limits.header_timeout)) return usage();
    } else if (arg == "--keepalive-timeout" && has_value) {
      if (!parse_seconds(argv[++i], opt.limits.keepalive_timeout)) return usage();
    } else if (arg == "--timing-histograms") {
      opt.timing_histograms = true;
    } else {
      return usage();
    }
  }
  const std::string address =
      opt.bind.find(':') != std::string::npos ? fmt::format("[{}]:{}", opt.bind, opt.port)
                                              : fmt::format("{}:{}", opt.bind, opt.port);
  try {
    corio::runtime rt{{.workers = opt.workers, .timing_histograms = opt.timing_histograms}};
    // GET /metrics and /metrics.json: the runtime's metrics (request_framer.hpp).
    opt.limits.metrics_context = &rt;
    opt.limits.metrics_text = [](const void* context, bool json) {
      const corio::runtime_metrics m = static_cast<const corio::runtime*>(context)->metrics();
      return json ? corio::to_json(m) : corio::to_prometheus(m);
    };
    const corio::runtime_stats stats = rt.stats();
    fmt::print(stderr, "http_hello: {} workers on {} ({}){}{}\n", rt.workers(), stats.backend, stats.backend_features,
               stats.backend_fallback.empty() ? "" : "; fallback: ", stats.backend_fallback);
    return rt.block_on(serve(address, opt.limits, &rt));
  } catch (const std::exception& e) {
    fmt::print(stderr, "http_hello: {}\n", e.what());
    return 1;
  }
}
