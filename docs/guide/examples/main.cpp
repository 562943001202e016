// The getting-started program: a runtime, spawn, a channel and a TCP echo server with its client.
#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include <corio/corio.hpp>

// Echoes what one client sends until the client closes its side.
corio::task<void> echo(corio::net::tcp_stream s) {
  std::array<std::byte, 4096> buf;
  for (;;) {
    const std::size_t n = co_await s.read_some(buf);  // 0: the peer closed; throws std::system_error
    if (n == 0) co_return;
    co_await s.write_all(std::span<const std::byte>{buf.data(), n});
  }
}

// Accepts connections for ever, one task each; cancelled when the runtime shuts down.
corio::task<void> serve(corio::net::tcp_listener listener) {
  for (;;) {
    corio::net::tcp_stream s = co_await listener.accept();
    corio::spawn(echo(std::move(s))).detach();
  }
}

// Sends 1..n into the channel, then closes it.
corio::task<void> produce(corio::channel<int> ch, int n) {
  for (int i = 1; i <= n; ++i) co_await ch.send(i);
  ch.close();
}

corio::task<int> amain() {
  // A channel between two tasks: the receiver gets std::nullopt once it is closed and drained.
  corio::channel<int> numbers{4};
  corio::join_handle<void> producer = corio::spawn(produce(numbers, 10));
  int sum = 0;
  while (std::optional<int> v = co_await numbers.recv()) sum += *v;
  co_await producer;
  std::printf("sum of 1..10 through a channel: %d\n", sum);

  // A TCP echo server on a port the kernel picks, and a client of it.
  auto listener = corio::net::tcp_listener::bind("127.0.0.1:0");
  const corio::net::endpoint address = listener.local_endpoint();
  corio::spawn(serve(std::move(listener))).detach();

  corio::net::tcp_stream client = co_await corio::net::tcp_stream::connect(address);
  co_await client.write_all(std::string_view{"hello, corio"});
  std::array<char, 64> buf;
  std::string answer;
  while (answer.size() < 12) {
    const std::size_t n = co_await client.read_some(std::span<char>{buf});
    if (n == 0) break;
    answer.append(buf.data(), n);
  }
  std::printf("echo from %s: %s\n", address.to_string().c_str(), answer.c_str());
  co_return sum == 55 && answer == "hello, corio" ? 0 : 1;
}

int main() { return corio::run(amain()); }  // one worker per hardware thread; returns amain's value
