// test/consumers/main.cpp - the program test/consumers/run.sh builds against corio five ways (a Meson
// subproject, a [wrap-file] from `meson dist`, pkg-config static and shared, CMake find_package) and
// runs: a runtime of two workers, spawned tasks, a channel, and a TCP echo on 127.0.0.1 (a port the
// kernel picks) with a bounded exchange. Exits 0 when every byte came back and every count matches.
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include <corio/corio.hpp>

using namespace std::chrono_literals;

namespace {

constexpr int kMessages = 32;

// Echoes one connection until the peer closes its side; sends the byte count into `echoed`.
corio::task<void> echo(corio::net::tcp_stream s, corio::channel<std::size_t> echoed) {
  std::array<std::byte, 1024> buf;
  std::size_t total = 0;
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    co_await s.write_all(std::span<const std::byte>{buf.data(), n});
    total += n;
  }
  co_await echoed.send(total);
}

// Accepts one connection and echoes it.
corio::task<void> serve(corio::net::tcp_listener listener, corio::channel<std::size_t> echoed) {
  corio::net::tcp_stream s = co_await listener.accept();
  co_await echo(std::move(s), echoed);
}

// Sends kMessages messages of growing size, reads each one back, closes, and returns the bytes sent.
corio::task<std::size_t> exchange(corio::net::endpoint address) {
  corio::net::tcp_stream client = co_await corio::net::tcp_stream::connect(address);
  std::size_t sent = 0;
  for (int i = 0; i < kMessages; ++i) {
    const std::string message(static_cast<std::size_t>(i) + 1, static_cast<char>('a' + i % 26));
    co_await client.write_all(std::as_bytes(std::span{message}));
    std::string back(message.size(), '\0');
    co_await corio::read_exact(client, std::as_writable_bytes(std::span{back}));
    if (back != message) throw std::runtime_error("message " + std::to_string(i) + " came back changed");
    sent += message.size();
  }
  client.shutdown(corio::net::shutdown_type::send);  // the server sees the end of stream
  co_return sent;
}

corio::task<int> amain() {
  corio::channel<std::size_t> echoed{1};
  auto listener = corio::net::tcp_listener::bind("127.0.0.1:0");
  const corio::net::endpoint address = listener.local_endpoint();
  corio::join_handle<void> server = corio::spawn(serve(std::move(listener), echoed));
  const std::size_t sent = co_await corio::timeout(20s, exchange(address));
  const std::optional<std::size_t> got = co_await corio::timeout(20s, echoed.recv());
  co_await server;
  const std::size_t expected = kMessages * (kMessages + 1) / 2;
  std::printf("corio consumer: %zu bytes sent, %zu echoed, %zu expected\n", sent, got.value_or(0), expected);
  co_return sent == expected && got == expected ? 0 : 1;
}

}  // namespace

int main() {
  try {
    corio::runtime rt{{.workers = 2}};
    return rt.block_on(amain());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corio consumer: %s\n", e.what());
    return 1;
  }
}
