// samples/http/request_framer.hpp - what the http_hello server does with the bytes a connection
// receives, without the I/O: its receive buffer, request framing (pipelining, requests split
// across reads, bodies skipped) and the responses it answers with.
//
// serve_connection (http_server.hpp) hands each read (a buffer lease's bytes) to `on_data()`; the
// fuzz target test/fuzz/http_request_fuzz.cpp drives the same code with arbitrary bytes cut into
// arbitrary reads. Depends on the C++20 standard library only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "http/http_parser.hpp"

namespace corio_samples::http {

/// The one response body of the sample, and its length in bytes.
inline constexpr std::string_view hello_body = "Hello, World!";

/// Timeouts longer than this (365 days) mean no timeout, as zero does: a deadline that far never
/// matters, and staying below it keeps every deadline clear of the clock's range.
inline constexpr std::chrono::nanoseconds max_timeout = std::chrono::hours{24 * 365};

/// Limits of one connection: sizes in bytes, timeouts in nanoseconds (corio's clock; a duration of
/// zero or less, or above max_timeout, means no timeout). Only reads from the client are bounded
/// in time: a response being written is never cut, however slowly the client reads it.
struct server_limits {
  std::size_t max_head_bytes = 8192;     ///< larger heads get 431 and the connection closes
  std::size_t max_body_bytes = 1 << 20;  ///< larger bodies get 413 and the connection closes
  /// How long a client may take to send a request head; the connection closes, unanswered, when
  /// the head is not complete in time. Counted from the accept for the first request (so it also
  /// bounds a connection that sends nothing), and for the others from the head's first byte, or
  /// from the end of the previous response for a head that was already partly read by then
  /// (pipelined). It also bounds each wait for more of a request body, and the lingering close
  /// after a `Connection: close` answer or an error (from the half-close). nginx's
  /// client_header_timeout (which nginx also counts from the accept for the first request),
  /// client_body_timeout and lingering_time.
  std::chrono::nanoseconds header_timeout = std::chrono::seconds{10};
  /// How long a keep-alive connection may stay idle between the end of a response and the first
  /// byte of the next request; the connection then closes. nginx's keepalive_timeout.
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds{60};
  /// Makes the body of the answer to `GET /metrics` (and `HEAD /metrics`), served as
  /// `Content-Type: text/plain; version=0.0.4` (Prometheus' text exposition format), and, with
  /// `json` true, of `GET /metrics.json`, served as `application/json`: called with
  /// `metrics_context` on the connection's task, for each such request. http_hello passes its
  /// runtime's corio::to_prometheus(rt.metrics()) and corio::to_json(rt.metrics()). Null (the
  /// default): both are a 404 like any target but "/". May throw std::bad_alloc (the connection
  /// then ends, as on_data() says).
  std::string (*metrics_text)(const void* context, bool json) = nullptr;
  const void* metrics_context = nullptr;  ///< what metrics_text is called with
};

/// The responses that end a connection (each says `Connection: close`).
inline constexpr std::string_view bad_request_response =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
inline constexpr std::string_view head_too_large_response =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
inline constexpr std::string_view body_too_large_response =
    "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Appends the answer to one parsed request to `out`: 200 "Hello, World!" for target "/" (no
/// body for HEAD), 404 for any other target, with `Connection: close` when the request did not
/// keep the connection alive and `Connection: keep-alive` for a kept-alive HTTP/1.0 request.
/// Throws std::bad_alloc.
inline void append_response(std::string& out, const request_head& req) {
  const bool found = req.target == "/";
  out += found ? "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
               : "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n";
  if (!req.keep_alive) {
    out += "Connection: close\r\n";
  } else if (req.version_minor == 0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  if (found && req.method != "HEAD") out += hello_body;
}

/// Appends the answer to a `/metrics` or `/metrics.json` request to `out`: 200 with `body`,
/// `Content-Type: text/plain; version=0.0.4` (Prometheus) or `application/json` (`json`), no body
/// for HEAD, and the connection headers of append_response. Throws std::bad_alloc.
inline void append_metrics_response(std::string& out, const request_head& req, std::string_view body, bool json) {
  out += json ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
              : "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  if (!req.keep_alive) {
    out += "Connection: close\r\n";
  } else if (req.version_minor == 0) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
  if (req.method != "HEAD") out += body;
}

/// One connection's request framing, without a receive buffer of its own: the owner passes the
/// bytes of each read to `on_data()` (where they were read is the owner's: a buffer lease), which
/// answers every complete request, in order, and copies only the tail of an incomplete one into a
/// small heap string for the next read: so the responses to a byte stream are the same however it
/// is cut into reads, and a connection between requests holds no buffer. A request is answered as
/// soon as its head is complete; its body (Content-Length bytes) is dropped as it comes. Not
/// thread-safe: one connection, one task.
class request_framer {
 public:
  /// Heads are limited to the smaller of this (bytes) and `server_limits::max_head_bytes`.
  static constexpr std::size_t buffer_bytes = 16384;

  explicit request_framer(server_limits limits = {}) noexcept
      : limits_(limits), head_limit_(std::min(limits.max_head_bytes, buffer_bytes)) {}

  /// What the next read waits for, for the timeouts: a request head (the first request, or one
  /// begun and not complete), or a body's bytes; neither: the next request of an idle keep-alive
  /// connection.
  [[nodiscard]] bool awaiting_head() const noexcept { return head_begun_ && skip_body_ == 0; }
  [[nodiscard]] bool in_body() const noexcept { return skip_body_ != 0; }
  /// True when the last on_read() left the start of a new head (after a completed request or
  /// body, or after an idle wait): its deadline counts from now.
  [[nodiscard]] bool new_head_started() const noexcept { return new_head_; }

  /// Takes the bytes of one read (any size): appends to `out` the response to every request that
  /// is complete now, in order. Returns true when the connection must close once `out` is
  /// written: after a request that did not keep the connection alive, or after answering 400 (a
  /// malformed head), 431 (a head over the limit) or 413 (a body over the limit); the bytes after
  /// that point are not looked at, and on_data() must not be called again. Throws std::bad_alloc
  /// (from `out` or the kept tail).
  bool on_data(std::string_view data, std::string& out) {
    // Without a kept tail the requests are framed in place, in the caller's buffer; with one, the
    // new bytes join it first (a request split across reads).
    const bool had_tail = !tail_.empty();
    if (had_tail) tail_.append(data);
    const std::string_view in = had_tail ? std::string_view{tail_} : data;
    const std::size_t have = in.size();
    std::size_t offset = 0;
    while (offset < have) {
      if (skip_body_ != 0) {
        const std::size_t k = std::min(skip_body_, have - offset);
        skip_body_ -= k;
        offset += k;
        continue;
      }
      request_head req;
      const parse_status st = parse_request({in.data() + offset, have - offset}, req, head_limit_);
      if (st == parse_status::incomplete) break;
      if (st == parse_status::bad_request) {
        out += bad_request_response;
        return true;
      }
      if (st == parse_status::too_large) {
        out += head_too_large_response;
        return true;
      }
      if (req.content_length > limits_.max_body_bytes) {
        out += body_too_large_response;
        return true;
      }
      offset += req.head_bytes;
      skip_body_ = req.content_length;
      // One null test on the path of `GET /` (and of every other request) when no page is set.
      if (limits_.metrics_text != nullptr && (req.target == "/metrics" || req.target == "/metrics.json")) [[unlikely]] {
        const bool json = req.target.size() != 8;
        append_metrics_response(out, req, limits_.metrics_text(limits_.metrics_context, json), json);
      } else {
        append_response(out, req);
      }
      if (!req.keep_alive) return true;
    }
    // A partial head is left: a new one when this read completed a request or a body before it,
    // or when it came after an idle wait; otherwise the same head goes on.
    new_head_ = have != offset && (offset != 0 || !head_begun_);
    // Keep the unparsed tail (shorter than the head limit: parse_request said incomplete); with
    // none, give the string's memory back, so that an idle connection holds no buffer.
    if (had_tail) {
      tail_.erase(0, offset);
    } else {
      tail_.assign(in.substr(offset));
    }
    if (tail_.empty()) std::string{}.swap(tail_);
    head_begun_ = !tail_.empty();
    return false;
  }

  /// Bytes of an incomplete request kept from earlier reads (for tests).
  [[nodiscard]] std::size_t kept_bytes() const noexcept { return tail_.size(); }

 private:
  std::string tail_;  // the unparsed start of a request split across reads; empty between requests
  server_limits limits_;
  std::size_t head_limit_;
  std::size_t skip_body_ = 0;  // body bytes still to drop
  bool head_begun_ = true;     // a head is under way (the first request counts as one from the start)
  bool new_head_ = false;      // the last on_read() left the start of a new head
};

}  // namespace corio_samples::http
