// samples/echo.cpp - an echo server over TCP, UDP or a Unix socket, on corio.
//
//   echo --tcp PORT | --udp PORT | --unix PATH  [--workers N]
//
// TCP and UDP listen on 127.0.0.1 (PORT 0 picks a free port); --unix binds a socket file at
// PATH (which must not exist; the server removes it when it stops). Prints "listening on
// ADDRESS" once ready (127.0.0.1:PORT, or the path). TCP and Unix: every connection is echoed
// byte for byte in its own task, the tasks in one corio::task_group. UDP: each datagram (up to
// 65535 bytes) is sent back to its sender. On SIGINT or SIGTERM it stops accepting, cancels the
// connections, removes the socket file, and exits 0.
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "sample_args.hpp"

using corio_samples::parse_unsigned;

namespace {

enum class mode { none, tcp, udp, unix_socket };

int usage() {
  fmt::print(stderr, "usage: echo --tcp PORT | --udp PORT | --unix PATH [--workers N]\n");
  return 2;
}

corio::task<int> wait_for_signal() { co_return co_await corio::signal({SIGINT, SIGTERM}); }

/// Echoes what `s` reads until the peer closes (or the task is cancelled).
template <class Stream>
corio::task<void> echo_stream(Stream s) {
  std::array<std::byte, 16384> buf{};
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) co_return;
    co_await s.write_all({buf.data(), n});
  }
}

/// Accepts until cancelled, each connection in its own task of `connections`.
template <class Listener>
corio::task<int> accept_loop(Listener* listener, corio::task_group* connections) {
  for (;;) {
    std::error_code ec;
    auto s = co_await listener->accept(ec);
    if (ec == std::errc::operation_canceled) co_return 0;
    if (ec) {
      fmt::print(stderr, "echo: accept: {}\n", ec.message());
      co_await corio::sleep_for(std::chrono::milliseconds{10});  // out of descriptors: back off
      continue;
    }
    connections->spawn(echo_stream(std::move(s)));
  }
}

/// Sends every datagram back to its sender, until cancelled.
corio::task<int> datagram_loop(corio::net::udp_socket* socket) {
  std::vector<std::byte> buf(65535);
  for (;;) {
    std::error_code ec;
    const corio::net::udp_receive_result r = co_await socket->recv_from(buf, ec);
    if (ec == std::errc::operation_canceled) co_return 0;
    if (ec) continue;  // an ICMP error from an earlier reply; nothing to do with this datagram
    (void)co_await socket->send_to({buf.data(), r.size}, r.sender, ec);
    if (ec == std::errc::operation_canceled) co_return 0;
  }
}

/// Runs `loop` until it ends or a signal comes; then cancels and joins the connections.
corio::task<int> until_signal(corio::task<int> loop, corio::task_group* connections) {
  auto first = co_await corio::when_any(wait_for_signal(), std::move(loop));
  int status = 0;
  if (first.index() == 0) {
    fmt::print(stderr, "echo: signal {}: stopping\n", std::get<0>(first));
  } else {
    status = std::get<1>(first);
  }
  connections->cancel();
  co_await connections->join();
  co_return status;
}

corio::task<int> serve(mode m, unsigned port, std::string path) {
  corio::task_group connections;
  int status = 0;
  const std::string local = fmt::format("127.0.0.1:{}", port);
  if (m == mode::tcp) {
    auto listener = corio::net::tcp_listener::bind(local);
    fmt::print("listening on {}\n", listener.local_endpoint().to_string());
    std::fflush(stdout);
    status = co_await until_signal(accept_loop(&listener, &connections), &connections);
  } else if (m == mode::udp) {
    auto socket = corio::net::udp_socket::bind(local);
    fmt::print("listening on {}\n", socket.local_endpoint().to_string());
    std::fflush(stdout);
    status = co_await until_signal(datagram_loop(&socket), &connections);
  } else {
    const corio::net::unix_endpoint where{path};
    auto listener = corio::net::unix_listener::bind(where);
    fmt::print("listening on {}\n", where.to_string());
    std::fflush(stdout);
    status = co_await until_signal(accept_loop(&listener, &connections), &connections);
    listener.close();
    std::error_code ignored;
    std::filesystem::remove(path, ignored);  // ours: the listener leaves its file behind
  }
  fmt::print(stderr, "echo: stopped\n");
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  mode m = mode::none;
  unsigned port = 0;
  unsigned workers = 0;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if ((arg == "--tcp" || arg == "--udp") && has_value && m == mode::none) {
      m = arg == "--tcp" ? mode::tcp : mode::udp;
      if (!parse_unsigned(argv[++i], port) || port > 65535) return usage();
    } else if (arg == "--unix" && has_value && m == mode::none) {
      m = mode::unix_socket;
      path = argv[++i];
    } else if (arg == "--workers" && has_value) {
      if (!parse_unsigned(argv[++i], workers)) return usage();
    } else {
      return usage();
    }
  }
  if (m == mode::none) return usage();
  try {
    corio::runtime rt{{.workers = workers}};
    return rt.block_on(serve(m, port, path));
  } catch (const std::exception& e) {
    fmt::print(stderr, "echo: {}\n", e.what());
    return 1;
  }
}
