// Networking and files: a line-based TCP server with buffered_reader, a client that resolves
// "localhost", UDP datagrams, a Unix socket pair, and files (write_file, read_file, copy).
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <unistd.h>

#include <corio/corio.hpp>

using namespace std::chrono_literals;

// Answers each line with its length; a line longer than 1 KiB ends the connection (EMSGSIZE).
corio::task<void> serve_lines(corio::net::tcp_stream s) {
  corio::buffered_reader reader{std::move(s), {.max_size = 1024}};  // owns the stream
  corio::buffered_writer writer{reader.stream()};                     // borrows it
  for (;;) {
    std::optional<std::string> line = co_await reader.read_line();  // without its "\n" or "\r\n"
    if (!line) co_return;                                             // end of stream
    co_await writer.write(std::to_string(line->size()) + "\n");
    co_await writer.flush();
  }
}

corio::task<void> accept_loop(corio::net::tcp_listener listener) {
  corio::task_group connections;  // cancelled (with its children) when this task is
  for (;;) {
    corio::net::tcp_stream s = co_await listener.accept();
    connections.spawn(serve_lines(std::move(s)), "line connection");
  }
}

corio::task<bool> tcp_demo() {
  auto listener = corio::net::tcp_listener::bind("localhost:0");  // 127.0.0.1, a free port
  const std::uint16_t port = listener.local_endpoint().port();
  corio::join_handle<void> server = corio::spawn(accept_loop(std::move(listener)));

  // connect(host, port) resolves the name and races the addresses (Happy Eyeballs).
  corio::net::tcp_stream client = co_await corio::net::tcp_stream::connect("localhost", port);
  co_await client.write_all(std::string_view{"hello\nhi\n"});
  corio::buffered_reader answers{client};  // borrows the client
  std::optional<std::string> a = co_await answers.read_line();
  std::optional<std::string> b = co_await answers.read_line();
  server.cancel();
  try {
    co_await server;
  } catch (const corio::operation_cancelled&) {
  }
  co_return a == "5" && b == "2";
}

corio::task<bool> udp_demo() {
  auto server = corio::net::udp_socket::bind("127.0.0.1:0");
  auto client = corio::net::udp_socket::bind("127.0.0.1:0");
  co_await client.send_to(std::string_view{"ping"}, server.local_endpoint());
  std::array<std::byte, 1500> buf;
  corio::net::udp_receive_result r = co_await server.recv_from(buf);  // size, sender, truncated
  co_await server.send_to(std::span<const std::byte>{buf.data(), r.size}, r.sender);
  const corio::net::udp_receive_result back = co_await client.recv_from(buf);
  co_return back.size == 4 && !back.truncated && back.sender == server.local_endpoint();
}

corio::task<bool> unix_demo() {
  auto [left, right] = corio::net::unix_stream::pair();  // socketpair(2)
  co_await left.write_all(std::string_view{"over a unix socket"});
  left.shutdown();
  std::string got;
  std::array<char, 8> buf;
  for (;;) {
    const std::size_t n = co_await right.read_some(std::span<char>{buf});
    if (n == 0) break;
    got.append(buf.data(), n);
  }
  co_return got == "over a unix socket";
}

corio::task<bool> files_demo() {
  const std::filesystem::path dir = std::filesystem::temp_directory_path();
  const std::filesystem::path a = dir / ("corio-guide-a-" + std::to_string(::getpid()));
  const std::filesystem::path b = dir / ("corio-guide-b-" + std::to_string(::getpid()));
  co_await corio::fs::write_file(a, "line one\nline two\n");
  {
    using corio::fs::open_flags;
    corio::fs::file from = co_await corio::fs::file::open(a);
    corio::fs::file to = co_await corio::fs::file::open(b, open_flags::write | open_flags::create | open_flags::truncate);
    const std::uint64_t copied = co_await corio::copy(from, to);  // splice(2) on io_uring
    co_await to.close();
    if (copied != 18) co_return false;
  }
  const std::string text = co_await corio::fs::read_file(b);
  std::filesystem::remove(a);
  std::filesystem::remove(b);
  co_return text == "line one\nline two\n";
}

corio::task<int> amain() {
  // Names: numeric addresses and localhost are answered without a query.
  std::vector<corio::net::endpoint> local = co_await corio::net::resolve("localhost", "8080");
  const bool tcp = co_await tcp_demo();
  const bool udp = co_await udp_demo();
  const bool unix_socket = co_await unix_demo();
  const bool files = co_await files_demo();
  std::printf("localhost is %s; tcp %d, udp %d, unix %d, files %d\n", local.front().to_string().c_str(), tcp, udp,
              unix_socket, files);
  co_return tcp && udp && unix_socket && files && !local.empty() ? 0 : 1;
}

int main() { return corio::run(amain()); }
