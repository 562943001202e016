// samples/resp_kv.cpp - a Redis-protocol (RESP2) key-value server on corio.
//
//   resp_kv --port P [--workers N]
//
// Listens on 127.0.0.1:P (P 0 picks a free port), prints "listening on 127.0.0.1:PORT" once ready,
// and answers redis-cli, redis-benchmark and any Redis client that sticks to these commands: PING,
// ECHO, SET (EX, PX, NX, XX), GET, DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, EXPIRE, TTL, PTTL, MGET,
// MSET, DBSIZE, FLUSHALL, QUIT, CONFIG GET (save, appendonly) and COMMAND (empty). Commands come as
// RESP arrays or inline lines (`printf 'SET a 1\r\n' | nc`); pipelined commands are all answered,
// in order, in one write. Values are strings kept in memory only (no persistence), in a map of 64
// shards with a lock each; expired keys are removed when read and by a sweep every 100 ms.
//
// Limits (samples/resp/resp_parser.hpp, parse_limits): a bulk string (argument) is at most 16 MiB, a
// command at most 1 Mi arguments and 64 MiB, an inline line at most 64 KiB; past one of them, or on
// bytes that are not RESP, the client gets "-ERR Protocol error: ..." and the connection closes.
// A wrong command or wrong arguments get Redis's "-ERR ..." answer and the connection goes on.
//
// SIGINT or SIGTERM stops accepting, lets every connection finish answering what it has read, closes
// them, and exits 0.
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "resp/resp_server.hpp"
#include "connection_failure.hpp"
#include "sample_args.hpp"

namespace resp = corio_samples::resp;

namespace {

int usage() {
  fmt::print(stderr, "usage: resp_kv --port P [--workers N]\n");
  return 2;
}

corio::task<int> wait_for_signal() { co_return co_await corio::signal({SIGINT, SIGTERM}); }

/// The supervising group's callback: a connection failed; the others go on. (guarded_connection
/// catches everything, so this is a backstop.)
void report_failure(std::exception_ptr e) { corio_samples::report_connection_failure("resp_kv", e); }

corio::task<int> serve(unsigned port) {
  resp::keyspace ks;
  const resp::parse_limits limits;
  auto listener = corio::net::tcp_listener::bind(fmt::format("127.0.0.1:{}", port));
  fmt::print("listening on {}\n", listener.local_endpoint().to_string());
  std::fflush(stdout);
  corio::task_group connections{corio::task_group::policy::supervise, report_failure};
  // The first to end wins (the sweeper never does); when_any cancels the others and waits.
  auto first = co_await corio::when_any(
      wait_for_signal(), resp::accept_loop(&listener, &connections, &ks, limits), resp::sweep_loop(&ks));
  int status = 0;
  if (first.index() == 0) {
    fmt::print(stderr, "resp_kv: signal {}: stopping\n", std::get<0>(first));
  } else if (first.index() == 1) {
    status = std::get<1>(first);
  }
  listener = corio::net::tcp_listener{};  // closed: new connections are refused
  connections.cancel();                   // each connection ends at its next read
  co_await connections.join();
  fmt::print(stderr, "resp_kv: stopped\n");
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned port = 0;
  unsigned workers = 0;
  if (!corio_samples::parse_port_workers(argc, argv, port, workers)) return usage();
  try {
    corio::runtime rt{{.workers = workers}};
    const corio::runtime_stats stats = rt.stats();
    fmt::print(stderr, "resp_kv: {} workers on {}\n", rt.workers(), stats.backend);
    return rt.block_on(serve(port));
  } catch (const std::exception& e) {
    fmt::print(stderr, "resp_kv: {}\n", e.what());
    return 1;
  }
}
