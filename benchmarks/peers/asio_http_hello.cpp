// asio_http_hello: the same-run peer server for corio's samples/http_hello.
//
// The project's benchmark rules say a corio figure is only reported next to a peer measured in
// the same run, on the same machine, under the same load. For the HTTP "hello world" sample that
// peer is this program: standalone Asio with C++20 coroutines, doing the same work as corio's
// http_hello, so benchmarks/http_compare.sh can put the two side by side.
//
// What it does (kept deliberately identical to the corio sample's contract):
//   * ONE asio::io_context, run by --threads N threads (default 2); every connection is a
//     coroutine on that context, so any thread may resume any connection.
//   * listens on 127.0.0.1 --port N (default 8081; 0 picks a free port), TCP_NODELAY on every
//     accepted socket, and prints exactly one line "listening on 127.0.0.1:PORT" (flushed) once
//     the listening socket is ready.
//   * HTTP/1.1 keep-alive: every complete request head (ending in "\r\n\r\n"; bodies are not
//     expected) is answered with a fixed 13-byte "Hello, World!" response. Pipelined requests
//     that arrive in one read are all answered in ONE write; a head split across reads is
//     reassembled in a 4 KiB read buffer that is compacted after every batch (and grows once,
//     to 8 KiB, only for an unusually large head).
//   * a head larger than 8 KiB, or a request line that does not start with a method token and
//     contain " HTTP/1.", gets "400 Bad Request" (after the responses for the requests that came
//     before it in the same batch) and the connection is closed.
//   * SIGINT / SIGTERM (asio::signal_set) stop the io_context; all threads return and the
//     program exits with status 0.
//
// Errors on the hot path are reported through asio::as_tuple(asio::use_awaitable), so a peer
// closing its connection costs an error_code, not an exception.
//
// Build (what benchmarks/peers/meson.build does, by hand):
//   g++ -std=c++20 -O2 -DASIO_STANDALONE -Wall -Wextra -Wpedantic
//       benchmarks/peers/asio_http_hello.cpp -o asio_http_hello -pthread

// Asio before 1.24 (Debian 12 ships 1.22.1) only recognises clang's old coroutines TS
// (__cpp_coroutines + <experimental/coroutine>), so with clang++ >= 14 and C++20 it silently
// compiles out asio::awaitable/co_spawn. Tell it that co_await is there; newer Asio detects this
// itself and skips its own check when the macro is already defined.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(ASIO_HAS_CO_AWAIT)
#if __has_include(<coroutine>)
#define ASIO_HAS_CO_AWAIT 1
#endif
#endif

#include <asio.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

// as_tuple left asio::experimental in Asio 1.24; Debian 12 ships 1.22, WrapDB has 1.30.
#if ASIO_VERSION >= 102400
namespace as_tuple_ns = asio;
#else
#include <asio/experimental/as_tuple.hpp>
namespace as_tuple_ns = asio::experimental;
#endif

namespace {

using asio::ip::tcp;

// Completion token: co_await yields std::tuple<error_code, results...> instead of throwing.
constexpr auto nothrow_awaitable = as_tuple_ns::as_tuple(asio::use_awaitable);

constexpr std::string_view kOkResponse =
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
constexpr std::string_view kBadRequestResponse =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
constexpr std::string_view kHeadEnd = "\r\n\r\n";

constexpr std::size_t kReadBufferSize = 4 * 1024;  // normal read buffer
constexpr std::size_t kMaxHeadSize = 8 * 1024;     // larger heads are rejected with 400

// RFC 9110 "tchar": the characters a method token may contain.
constexpr bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// `head` is one complete request head, including its terminating "\r\n\r\n". The request line
// must be "TOKEN SP ..." and contain " HTTP/1." (e.g. "GET / HTTP/1.1").
bool request_line_ok(std::string_view head) {
  const std::string_view line = head.substr(0, head.find("\r\n"));
  std::size_t i = 0;
  while (i < line.size() && is_tchar(line[i])) ++i;
  if (i == 0 || i >= line.size() || line[i] != ' ') return false;
  return line.find(" HTTP/1.", i) != std::string_view::npos;
}

// One connection: read, answer every complete request in the buffer with one write, repeat.
asio::awaitable<void> session(tcp::socket sock) {
  std::error_code ignored;
  sock.set_option(tcp::no_delay(true), ignored);

  std::vector<char> buf(kReadBufferSize);
  std::size_t begin = 0;  // first unconsumed byte
  std::size_t end = 0;    // one past the last byte read
  std::size_t scan = 0;   // bytes before this index hold no head terminator for the request at `begin`
  std::string out;        // responses of one batch, written at once
  out.reserve(kReadBufferSize);

  for (;;) {
    if (end == buf.size()) {
      // Full, and the request at `begin` (which compaction moved to 0) is incomplete: allow a
      // head up to kMaxHeadSize, then give up on it.
      if (buf.size() >= kMaxHeadSize) {
        co_await asio::async_write(sock, asio::buffer(kBadRequestResponse), nothrow_awaitable);
        break;
      }
      buf.resize(kMaxHeadSize);
    }

    auto [rec, n] = co_await sock.async_read_some(
        asio::buffer(buf.data() + end, buf.size() - end), nothrow_awaitable);
    if (rec) break;  // EOF, reset, or shutdown: nothing more to answer
    end += n;

    // Answer every complete request head now in [begin, end).
    bool bad = false;
    out.clear();
    for (;;) {
      const std::string_view pending(buf.data() + begin, end - begin);
      const std::size_t from = scan > begin + 3 ? scan - begin - 3 : 0;  // terminator may straddle reads
      const std::size_t pos = pending.find(kHeadEnd, from);
      if (pos == std::string_view::npos) {
        scan = end;
        if (pending.size() >= kMaxHeadSize) bad = true;  // > 8 KiB without a terminator
        break;
      }
      const std::size_t head_len = pos + kHeadEnd.size();
      if (head_len > kMaxHeadSize || !request_line_ok(pending.substr(0, head_len))) {
        bad = true;
        break;
      }
      out.append(kOkResponse);
      begin += head_len;
      scan = begin;
    }
    if (bad) out.append(kBadRequestResponse);

    if (!out.empty()) {
      auto [wec, written] = co_await asio::async_write(sock, asio::buffer(out), nothrow_awaitable);
      static_cast<void>(written);
      if (wec) break;
    }
    if (bad) break;

    // Compact: move the incomplete tail (if any) to the front of the buffer.
    if (begin == end) {
      begin = end = scan = 0;
      if (buf.size() > kReadBufferSize) {  // a big head is done; go back to the normal size
        buf.resize(kReadBufferSize);
        buf.shrink_to_fit();
      }
    } else if (begin > 0) {
      std::memmove(buf.data(), buf.data() + begin, end - begin);
      end -= begin;
      scan -= begin;
      begin = 0;
    }
  }

  // Half-close first so the client sees everything written (e.g. the 400) before the close.
  sock.shutdown(tcp::socket::shutdown_send, ignored);
  sock.close(ignored);
}

// Accept loop: one session coroutine per connection, all on the same io_context.
asio::awaitable<void> listener(tcp::acceptor acceptor) {
  const auto executor = co_await asio::this_coro::executor;
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(nothrow_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: back off briefly instead of spinning.
      std::fprintf(stderr, "asio_http_hello: accept: %s\n", ec.message().c_str());
      asio::steady_timer backoff(executor, std::chrono::milliseconds(10));
      co_await backoff.async_wait(nothrow_awaitable);
      continue;
    }
    asio::co_spawn(executor, session(std::move(sock)), asio::detached);
  }
}

bool parse_uint(std::string_view text, unsigned max, unsigned& value) {
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || v > max) return false;
  value = v;
  return true;
}

void usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--port N] [--threads N]\n", argv0);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned port = 8081;
  unsigned threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    std::string_view value;
    std::string_view name = arg;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if ((arg == "--port" || arg == "--threads") && i + 1 < argc) {
      value = argv[++i];
    }
    if (name == "--help" || name == "-h") {
      usage(argv[0]);
      return 0;
    }
    bool ok = false;
    if (name == "--port") ok = parse_uint(value, 65535, port);
    else if (name == "--threads") ok = parse_uint(value, 1024, threads) && threads > 0;
    if (!ok) {
      std::fprintf(stderr, "asio_http_hello: bad argument '%.*s' (value '%.*s')\n",
                   static_cast<int>(name.size()), name.data(), static_cast<int>(value.size()),
                   value.data());
      usage(argv[0]);
      return 2;
    }
  }

  try {
    asio::io_context ioc(static_cast<int>(threads));  // concurrency hint

    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&ioc](const std::error_code&, int) { ioc.stop(); });

    tcp::acceptor acceptor(ioc);
    const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"),
                                 static_cast<unsigned short>(port));
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    const unsigned bound_port = acceptor.local_endpoint().port();

    asio::co_spawn(ioc, listener(std::move(acceptor)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::fprintf(stderr, "asio_http_hello: listener failed: %s\n", x.what());
      }
    });

    std::printf("listening on 127.0.0.1:%u\n", bound_port);
    std::fflush(stdout);

    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& th : pool) th.join();
  } catch (const std::exception& x) {
    std::fprintf(stderr, "asio_http_hello: %s\n", x.what());
    return 1;
  }
  return 0;
}
