// samples/resp/resp_server.hpp - the connection handler, the expiry sweeper and the accept loop of
// samples/resp_kv: a Redis-protocol key-value server on corio.
#pragma once

#include <corio/corio.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "http/http_server.hpp"  // classify_accept_error
#include "resp/resp_commands.hpp"
#include "resp/resp_parser.hpp"

namespace corio_samples::resp {

/// The receive buffer a connection starts with (and shrinks back to after a large command), bytes.
inline constexpr std::size_t initial_buffer_bytes = 16 * 1024;
/// Answers are written once per read's batch of commands, or as soon as they reach this many
/// bytes (so a long pipeline of large answers is not all held at once), bytes.
inline constexpr std::size_t flush_bytes = 64 * 1024;
/// After a protocol error or QUIT: how long, and how many bytes at most, the connection still
/// reads and drops the client's input after sending its answers and its FIN, so that closing with
/// unread input does not reset the connection and destroy the answers (nginx's lingering close).
inline constexpr std::chrono::seconds linger_time{1};
inline constexpr std::size_t linger_bytes = 64 * 1024;
/// How often the sweeper removes expired keys (Redis's hz 10).
inline constexpr std::chrono::milliseconds sweep_period{100};

/// The runtime's time in milliseconds (monotonic; manual time under corio::manual_clock): the
/// clock of the keyspace's expiry.
inline std::int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(corio::now().time_since_epoch()).count();
}

namespace detail {

/// One connection's receive buffer: bytes [start, end) are received and not yet parsed. Grows
/// (doubling, up to a bound) only while one command does not fit; never zero-filled.
class receive_buffer {
 public:
  /// An empty buffer of `size` bytes (uninitialized). Throws std::bad_alloc.
  explicit receive_buffer(std::size_t size) : data_(new char[size]), size_(size) {}

  /// The bytes received and not consumed yet.
  [[nodiscard]] std::string_view pending() const noexcept { return {data_.get() + start_, end_ - start_}; }
  /// Where the next read goes: the free bytes after the pending ones (empty when full).
  [[nodiscard]] std::span<char> space() noexcept { return {data_.get() + end_, size_ - end_}; }
  /// The buffer's size in bytes.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Records that a read put `n` bytes into space().
  void received(std::size_t n) noexcept { end_ += n; }
  /// Drops the first `n` pending bytes (a parsed command); an emptied buffer starts over at 0.
  void consume(std::size_t n) noexcept {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }

  /// Makes room to read into when the buffer is full: moves the pending bytes to the front, or,
  /// when they fill it all, grows it to max(twice, `needed`) bytes, at most `cap`. False when it
  /// is full at `cap` already. Throws std::bad_alloc.
  bool make_room(std::size_t needed, std::size_t cap) {
    if (end_ < size_) return true;
    if (start_ > 0) {
      std::memmove(data_.get(), data_.get() + start_, end_ - start_);
      end_ -= start_;
      start_ = 0;
      return true;
    }
    if (size_ >= cap) return false;
    resize(std::min(cap, std::max(size_ * 2, needed)));
    return true;
  }

  /// Back to `size` bytes when it is larger and holds nothing (after a large command).
  void shrink_if_empty(std::size_t size) {
    if (size_ > size && start_ == end_) {
      data_.reset();  // first, so that the two blocks are never held at once
      data_.reset(new char[size]);
      size_ = size;
    }
  }

 private:
  void resize(std::size_t size) {
    std::unique_ptr<char[]> bigger(new char[size]);
    std::memcpy(bigger.get(), data_.get(), end_);
    data_ = std::move(bigger);
    size_ = size;
  }

  std::unique_ptr<char[]> data_;
  std::size_t size_;
  std::size_t start_ = 0;
  std::size_t end_ = 0;
};

}  // namespace detail

/// Serves one connection until the peer closes it, an I/O error, QUIT, or a protocol error
/// ("-ERR Protocol error: ..." is answered, then the connection closes). Every complete command of
/// a read is executed in order and their answers are sent in one write (pipelining); a command
/// split across reads is executed once complete. The receive buffer (initial_buffer_bytes, growing
/// up to the parser's max_needed() only for a command that needs it) and the output buffer are
/// reused for the connection's life, so small commands allocate nothing but what the keyspace
/// stores. Never throws: I/O errors end the connection quietly; std::bad_alloc ends it too. A
/// cancellation (graceful shutdown) ends it at its next read: answers already due are still sent
/// (the write is shielded).
inline corio::task<void> serve_connection(corio::net::tcp_stream stream, keyspace* ks, parse_limits limits) {
  std::error_code ec;
  stream.set_nodelay(true, ec);
  command_parser parser{limits};
  const std::size_t cap = std::max(parser.max_needed(), initial_buffer_bytes);
  detail::receive_buffer in{initial_buffer_bytes};
  std::string out;
  out.reserve(4096);
  bool closing = false;
  while (!closing) {
    if (!in.make_room(parser.needed(), cap)) {  // cannot happen: the parser stops at the limits first
      append_error(out, "ERR Protocol error: command too large");
      closing = true;
    } else {
      const std::size_t n = co_await stream.read_some(in.space(), ec);
      if (ec || n == 0) co_return;
      in.received(n);
      const std::int64_t now = now_ms();
      for (;;) {
        const parse_status st = parser.parse(in.pending());
        if (st == parse_status::incomplete) break;
        if (st == parse_status::error) {
          out += "-ERR Protocol error: ";
          out += parser.error();
          out += "\r\n";
          closing = true;
          break;
        }
        // The arguments are views into `in`, which stays put until the next parse.
        const std::span<const std::string_view> args = parser.args();
        const bool quit = !args.empty() && execute(*ks, args, now, out) == after_command::close;
        in.consume(parser.consumed());
        if (quit) {
          closing = true;
          break;
        }
        if (out.size() >= flush_bytes) {
          (void)co_await corio::shield(stream.write_all(out, ec));
          if (ec) co_return;
          out.clear();
        }
      }
    }
    if (!out.empty()) {
      // Shielded: commands read are answered even when the task is being cancelled (a graceful
      // shutdown); the next read then sees the stop and the connection closes.
      (void)co_await corio::shield(stream.write_all(out, ec));
      if (ec) co_return;
      out.clear();
    }
    if (!parser.in_command()) in.shrink_if_empty(initial_buffer_bytes);
    if (out.capacity() > 4 * flush_bytes) std::string{}.swap(out);
  }
  // Lingering close: our FIN first, then drop what the client still sends, bounded in bytes and
  // time, so that unread input does not turn the close into a reset that destroys the answers.
  stream.shutdown(corio::net::shutdown_type::send, ec);
  std::array<char, 4096> sink;
  for (std::size_t drained = 0; !ec && drained < linger_bytes;) {
    auto r = co_await corio::try_timeout(linger_time, stream.read_some(std::span<char>{sink}, ec));
    const std::size_t k = r.value_or(0);
    if (k == 0) break;
    drained += k;
  }
}

/// Serves one connection (serve_connection) as a task of the server's connection group: an
/// exception (std::bad_alloc and the like) ends this connection, never the server.
inline corio::task<void> guarded_connection(corio::net::tcp_stream s, keyspace* ks, parse_limits limits) {
  try {
    co_await serve_connection(std::move(s), ks, limits);
  } catch (...) {
  }
}

/// Removes expired keys every sweep_period until cancelled (then throws
/// corio::operation_cancelled); never returns otherwise. The lazy expiry of every read keeps the
/// answers right; this bounds the memory that keys nobody reads again hold.
inline corio::task<int> sweep_loop(keyspace* ks) {
  for (;;) {
    co_await corio::sleep_for(sweep_period);
    ks->sweep_expired(now_ms());
  }
}

/// Accepts connections on `*listener` and spawns guarded_connection for each in `*connections`,
/// until cancelled (returns 0) or accept fails with an error that stops it (returns 1, printed on
/// stderr). Errors are classified as samples/http_hello does (http::classify_accept_error): out of
/// descriptors or memory sleeps 10 ms and accepts again, an error of one connection retries at once.
inline corio::task<int> accept_loop(corio::net::tcp_listener* listener, corio::task_group* connections,
                                    keyspace* ks, parse_limits limits) {
  for (;;) {
    std::error_code ec;
    corio::net::tcp_stream s = co_await listener->accept(ec);
    if (!ec) {
      connections->spawn(guarded_connection(std::move(s), ks, limits));
      continue;
    }
    if (ec == std::errc::operation_canceled) co_return 0;  // shutting down
    const http::accept_action action = http::classify_accept_error(ec);
    if (action == http::accept_action::retry) continue;
    if (action == http::accept_action::stop) {
      fmt::print(stderr, "resp_kv: accept failed: {}\n", ec.message());
      co_return 1;
    }
    co_await corio::sleep_for(http::accept_back_off);
  }
}

}  // namespace corio_samples::resp
