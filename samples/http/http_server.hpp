// samples/http/http_server.hpp - the connection handler of samples/http_hello, shared with the
// sample's tests: an HTTP/1.1 keep-alive "Hello, World!" server on corio.
#pragma once

#include <corio/corio.hpp>

#include <array>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "http/http_parser.hpp"

namespace corio_samples::http {

/// The one response body of the sample, and its length in bytes.
inline constexpr std::string_view hello_body = "Hello, World!";

/// Limits of one connection, in bytes.
struct server_limits {
  std::size_t max_head_bytes = 8192;     ///< larger heads get 431 and the connection closes
  std::size_t max_body_bytes = 1 << 20;  ///< larger bodies get 413 and the connection closes
};

namespace detail {

inline void append_response(std::string& out, int version_minor, bool keep_alive, bool head_only,
                            std::string_view target) {
  const bool found = target == "/";
  out += found ? "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
               : "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n";
  if (!keep_alive) out += "Connection: close\r\n";
  else if (version_minor == 0) out += "Connection: keep-alive\r\n";
  out += "\r\n";
  if (found && !head_only) out += hello_body;
}

}  // namespace detail

/// Serves one connection until the peer closes it, an I/O error occurs, a request asks to close,
/// or a request is malformed (400), too large (431) or carries too large a body (413); the
/// connection is closed after those answers. Pipelined requests (several in one read) are all
/// answered, in order, in one write; a request split across reads is answered once complete.
/// `GET /` and `HEAD /` get 200 "Hello, World!", any other target 404, a body is read and ignored.
/// Never throws: I/O errors end the connection quietly (a reset peer is normal for a server).
/// Cancelling the task (a graceful shutdown) ends it at its next read: a request already read is
/// still answered in full (the write is shielded), an idle connection closes at once.
inline corio::task<void> serve_connection(corio::net::tcp_stream stream, server_limits limits = {}) {
  std::error_code ec;
  stream.set_nodelay(true, ec);
  std::array<char, 16384> in{};
  const std::size_t head_limit = std::min(limits.max_head_bytes, in.size());
  std::size_t have = 0;        // bytes in `in`
  std::size_t skip_body = 0;   // body bytes still to discard
  std::string out;
  out.reserve(4096);
  for (;;) {
    const std::size_t n = co_await stream.read_some(std::span<char>{in}.subspan(have), ec);
    if (ec || n == 0) co_return;
    have += n;
    std::size_t offset = 0;
    bool close_after = false;
    out.clear();
    while (offset < have) {
      if (skip_body != 0) {
        const std::size_t k = std::min(skip_body, have - offset);
        skip_body -= k;
        offset += k;
        continue;
      }
      request_head req;
      const parse_status st = parse_request({in.data() + offset, have - offset}, req, head_limit);
      if (st == parse_status::incomplete) break;
      if (st == parse_status::bad_request) {
        out += "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        close_after = true;
        break;
      }
      if (st == parse_status::too_large) {
        out += "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        close_after = true;
        break;
      }
      if (req.content_length > limits.max_body_bytes) {
        out += "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        close_after = true;
        break;
      }
      offset += req.head_bytes;
      skip_body = req.content_length;
      detail::append_response(out, req.version_minor, req.keep_alive, req.method == "HEAD", req.target);
      if (!req.keep_alive) {
        close_after = true;
        break;
      }
    }
    if (!out.empty()) {
      // Shielded: a request read is answered in full even when the task is being cancelled (a
      // graceful shutdown); the next read then sees the stop and the connection closes.
      (void)co_await corio::shield(stream.write_all(out, ec));
      if (ec) co_return;
    }
    if (close_after) {
      // Lingering close (as nginx does): send our FIN, then read and drop what the client is
      // still sending (bounded to 1 MiB), so that closing with unread data does not turn into a
      // reset that destroys the answer before the client reads it.
      stream.shutdown(corio::net::shutdown_type::send, ec);
      for (std::size_t drained = 0; !ec && drained < (1u << 20);) {
        const std::size_t k = co_await stream.read_some(std::span<char>{in}, ec);
        if (k == 0) break;
        drained += k;
      }
      co_return;
    }
    // Keep the unparsed tail at the front of the buffer.
    if (offset != 0) {
      std::memmove(in.data(), in.data() + offset, have - offset);
      have -= offset;
    }
  }
}

}  // namespace corio_samples::http
