// samples/http/http_server.hpp - the connection handler and the accept loop of samples/http_hello,
// shared with the sample's tests: an HTTP/1.1 keep-alive "Hello, World!" server on corio.
#pragma once

#include <corio/corio.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <system_error>

#include "http/request_framer.hpp"

namespace corio_samples::http {

namespace detail {

/// `t` when it is a timeout (0 < t <= max_timeout), else zero: no timeout.
inline corio::clock::duration effective_timeout(corio::clock::duration t) noexcept {
  return t > corio::clock::duration::zero() && t <= max_timeout ? t : corio::clock::duration::zero();
}

}  // namespace detail

/// The lingering close of a connection whose last answer asked to close (as nginx does): sends
/// our FIN, then reads and drops what the client is still sending (bounded to 1 MiB, and to
/// `until` when it is not clock::time_point::max(), as nginx's lingering_time), so that closing
/// with unread data does not turn into a reset that destroys the answer before the client reads
/// it. A coroutine of its own, so that its read's frame exists only while a connection lingers.
inline corio::task<void> linger_close(corio::net::tcp_stream* stream, corio::clock::time_point until) {
  std::error_code ec;
  stream->shutdown(corio::net::shutdown_type::send, ec);
  for (std::size_t drained = 0; !ec && drained < (1u << 20);) {
    auto r = co_await corio::try_deadline(until, stream->read_lease(ec));
    if (!r || r->empty()) break;
    drained += r->size();
  }
}

/// Serves one connection until the peer closes it, an I/O error occurs, a request asks to close,
/// or a request is malformed (400), too large (431) or carries too large a body (413); the
/// connection is closed after those answers. Pipelined requests (several in one read) are all
/// answered, in order, in one write; a request split across reads is answered once complete.
/// `GET /` and `HEAD /` get 200 "Hello, World!", `/metrics` and `/metrics.json` what
/// `limits.metrics_text` makes when it is set, any other target 404, a body is read and ignored.
/// Never throws: I/O errors end the connection quietly (a reset peer is normal for a server).
/// Cancelling the task (a graceful shutdown) ends it at its next read: a request already read is
/// still answered in full (the write is shielded), an idle connection closes at once. A head not
/// complete within `limits.header_timeout`, a body that stops coming for as long, or an idle
/// keep-alive connection after `limits.keepalive_timeout`, ends the connection the same way (see
/// server_limits); each read is one corio::try_deadline (clock::time_point::max() when no limit
/// applies: no timer), which reads the clock only when the read waits. One read site, one write
/// site: each co_await of a coroutine keeps its own awaiter in the frame, and the frame is what an
/// idle connection costs.
inline corio::task<void> serve_connection(corio::net::tcp_stream stream, server_limits limits = {}) {
  using clock = corio::clock;
  std::error_code ec;
  stream.set_nodelay(true, ec);
  // The framing (request_framer.hpp) keeps only a split request's tail; the bytes come in buffer
  // leases (on io_uring from the worker's provided buffer ring, picked when data arrives), so a
  // connection waiting for its next request holds no read buffer.
  request_framer framer{limits};
  const clock::duration header_timeout = detail::effective_timeout(limits.header_timeout);
  const clock::duration keepalive_timeout = detail::effective_timeout(limits.keepalive_timeout);
  // The deadline of the head being read (the first request's counts from the accept).
  clock::time_point head_deadline = clock::time_point::max();
  if (header_timeout != clock::duration::zero()) head_deadline = corio::now() + header_timeout;
  for (;;) {
    // More of a head waits until its deadline; more of a body, for the header timeout; the next
    // request, for the keep-alive timeout. An expired timeout cancels the read: the connection
    // closes unanswered, as after a graceful shutdown's cancellation (operation_canceled in `ec`).
    clock::time_point deadline = clock::time_point::max();
    if (framer.awaiting_head()) {
      deadline = head_deadline;
    } else {
      const clock::duration wait_limit = framer.in_body() ? header_timeout : keepalive_timeout;
      if (wait_limit != clock::duration::zero()) deadline = corio::now() + wait_limit;
    }
    auto r = co_await corio::try_deadline(deadline, stream.read_lease(ec));
    if (!r || ec || r->empty()) co_return;
    // The response lives only until it is written: nothing is kept across the wait for the next
    // request.
    std::string out;
    const bool close_after = framer.on_data(r->chars(), out);
    r->release();  // back to its ring before the write waits
    if (!out.empty()) {
      // Shielded: a request read is answered in full even when the task is being cancelled (a
      // graceful shutdown); the next read then sees the stop and the connection closes.
      (void)co_await corio::shield(stream.write_all(out, ec));
      if (ec) co_return;
    }
    if (close_after) {
      clock::time_point linger_until = clock::time_point::max();
      if (header_timeout != clock::duration::zero()) linger_until = corio::now() + header_timeout;
      co_await linger_close(&stream, linger_until);
      co_return;
    }
    // A new partial head (after a completed request or body, or after an idle wait) gets its
    // deadline from now: its first byte, or the end of the response just written.
    if (framer.new_head_started() && header_timeout != clock::duration::zero()) {
      head_deadline = corio::now() + header_timeout;
    }
  }
}

/// Serves one connection (serve_connection) as a task of the server's connection group: an
/// exception (bad_alloc and the like) ends this connection, never the server (a task_group
/// cancels every other child when one fails).
inline corio::task<void> guarded_connection(corio::net::tcp_stream s, server_limits limits) {
  try {
    co_await serve_connection(std::move(s), limits);
  } catch (...) {
  }
}

/// What the accept loop does after accept() failed with `ec`.
enum class accept_action {
  retry,     ///< accept again at once: the error belonged to one connection (ECONNABORTED, ...)
  back_off,  ///< sleep, then accept again: the process or the kernel is out of a resource
  stop,      ///< the listener itself is broken (EBADF, EINVAL, ...): the loop ends
};

/// Classifies an accept() error, as Go's net/http server (temporary errors) and accept(2) advise:
/// out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) backs off; an error of the
/// connection being accepted (ECONNABORTED; the pending network errors Linux's accept passes on,
/// EPROTO, ENETDOWN, EHOSTUNREACH...; EPERM from a firewall rule; ECONNRESET, ETIMEDOUT) retries;
/// anything else stops.
inline accept_action classify_accept_error(std::error_code ec) noexcept {
  using std::errc;
  for (const errc e : {errc::too_many_files_open, errc::too_many_files_open_in_system, errc::no_buffer_space,
                       errc::not_enough_memory}) {
    if (ec == e) return accept_action::back_off;
  }
  for (const errc e : {errc::connection_aborted, errc::interrupted, errc::resource_unavailable_try_again,
                       errc::protocol_error, errc::no_protocol_option, errc::host_unreachable,
                       errc::operation_not_supported, errc::network_down, errc::network_unreachable,
                       errc::operation_not_permitted, errc::connection_reset, errc::timed_out}) {
    if (ec == e) return accept_action::retry;
  }
#if defined(EHOSTDOWN)
  if (ec.value() == EHOSTDOWN) return accept_action::retry;
#endif
#if defined(ENONET)
  if (ec.value() == ENONET) return accept_action::retry;
#endif
  return accept_action::stop;
}

/// What an accept loop did, for its owner (and the tests).
struct accept_report {
  std::uint64_t accepted = 0;    ///< connections handed to the group
  std::uint64_t retried = 0;     ///< errors after which it accepted again at once
  std::uint64_t backed_off = 0;  ///< errors after which it slept first
  bool print = true;             ///< say so on stderr: at most one line a second while backing off
};

/// How long the accept loop sleeps after an error that backs off.
inline constexpr std::chrono::milliseconds accept_back_off{10};

/// Accepts connections on `*listener` and spawns guarded_connection for each in `*connections`
/// (served with `limits`),
/// until it is cancelled (returns 0) or accept fails with an error that stops it (returns 1,
/// printed on stderr when report->print). Errors are classified by classify_accept_error: a
/// retry accepts again at once, a back-off sleeps accept_back_off first, while the connections
/// already accepted go on being served; when descriptors are free again, the connections that
/// waited in the backlog are accepted. Cancelled during a back-off, it throws
/// corio::operation_cancelled.
inline corio::task<int> accept_loop(corio::net::tcp_listener* listener, corio::task_group* connections,
                                    accept_report* report, server_limits limits = {}) {
  auto last_line = corio::now() - std::chrono::seconds(1);
  for (;;) {
    std::error_code ec;
    corio::net::tcp_stream s = co_await listener->accept(ec);
    if (!ec) {
      ++report->accepted;
      connections->spawn(guarded_connection(std::move(s), limits), "http connection");
      continue;
    }
    if (ec == std::errc::operation_canceled) co_return 0;  // shutting down
    const accept_action action = classify_accept_error(ec);
    if (action == accept_action::retry) {
      ++report->retried;
      continue;
    }
    if (action == accept_action::stop) {
      if (report->print) fmt::print(stderr, "http_hello: accept failed: {}\n", ec.message());
      co_return 1;
    }
    ++report->backed_off;
    if (report->print && corio::now() - last_line >= std::chrono::seconds(1)) {
      fmt::print(stderr, "http_hello: accept: {}; backing off\n", ec.message());
      last_line = corio::now();
    }
    co_await corio::sleep_for(accept_back_off);
  }
}

}  // namespace corio_samples::http
