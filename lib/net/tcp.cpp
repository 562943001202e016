// lib/net/tcp.cpp - TCP listener and stream: socket set-up is synchronous, data moves through the
// worker's reactor.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <system_error>

#if !defined(_WIN32)
#include <sys/uio.h>
#endif

#include "corio/cancel.hpp"
#include "corio/channel.hpp"
#include "corio/detail/file_descriptor.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/select.hpp"
#include "corio/spawn.hpp"
#include "corio/time.hpp"
#include "resolve_internal.hpp"
#include "socket_api.hpp"
#include "socket_common.hpp"

namespace corio {

namespace detail {
std::uint64_t next_descriptor_generation() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

int file_descriptor::reset(int fd) noexcept {
  int error = 0;
  if (fd_ >= 0) error = close_socket(fd_);
  fd_ = fd;
  generation_ = fd >= 0 ? next_descriptor_generation() : 0;
  return error;
}
}  // namespace detail

namespace net {
namespace {

using detail::socket_category;

[[noreturn]] void throw_errno(int error, const char* what) { detail::throw_socket_error(error, what); }

using detail_socket::throw_closed;

using detail_socket::socket_name;

/// Fills in a recv or send of `length` bytes at `buffer` on `socket`; false when the socket is
/// closed (the caller then fails the operation with EBADF). A send only reads the buffer.
bool prepare_transfer(detail::io_request& r, const detail::file_descriptor& socket, detail::io_opcode opcode,
                      const std::byte* buffer, std::size_t length) noexcept {
  r.opcode = opcode;
  r.fd = socket.get();
  r.generation = socket.generation();
  r.buffer = const_cast<std::byte*>(buffer);
  r.length = length;
  return r.fd >= 0;
}

}  // namespace

// --- operations ------------------------------------------------------------------------------

read_some_operation::read_some_operation(const detail::file_descriptor& socket, std::span<std::byte> buffer,
                                         std::error_code* ec, const char* what, detail::recv_queue* queue) noexcept
    : io_operation(ec, what), queue_(queue) {
  if (!prepare_transfer(request_, socket, detail::io_opcode::recv, buffer.data(), buffer.size())) fail_early(EBADF);
  if (buffer.empty() || request_.result < 0) queue_ = nullptr;  // the plain path completes it (0, or EBADF)
}

void read_some_operation::take_queued() noexcept {
  detail::stop_state* stop = nullptr;
  detail::recv_chunk c = detail::finish_recv(*queue_, std::exchange(state_, detail::recv_state::none), &stop);
  set_cancel_stop(stop);
  if (c.result <= 0) {  // the end of the stream, an error, a cancellation
    request_.result = c.result;
    return;
  }
  auto* out = static_cast<std::byte*>(request_.buffer);
  const std::size_t n = std::min(request_.length, c.unread());
  std::memcpy(out, c.data + c.offset, n);
  c.offset += static_cast<std::uint32_t>(n);
  if (c.unread() != 0) detail::unread_chunk(*queue_, c);  // the rest is the next read's
  else detail::release_chunk(c);
  // More bytes may be queued behind it: take them too, as a receive takes all the socket has.
  const std::size_t total = n < request_.length ? detail::copy_queued(*queue_, out, request_.length, n) : n;
  request_.result = static_cast<int>(std::min<std::size_t>(total, INT32_MAX));
}

write_some_operation::write_some_operation(const detail::file_descriptor& socket, std::span<const std::byte> data,
                                           std::error_code* ec, const char* what) noexcept
    : io_operation(ec, what) {
  if (!prepare_transfer(request_, socket, detail::io_opcode::send, data.data(), data.size())) fail_early(EBADF);
}

write_all_operation::write_all_operation(const detail::file_descriptor& socket, std::span<const std::byte> data,
                                         std::error_code* ec, const char* what) noexcept
    : io_operation(ec, what) {
  request_.on_complete = &write_all_operation::on_complete;
  if (!prepare_transfer(request_, socket, detail::io_opcode::send, data.data(), data.size())) fail_early(EBADF);
}

bool write_all_operation::on_complete(detail::io_request& r, int result) noexcept {
  if (result < 0) {  // finish_request retried EINTR and EAGAIN already
    r.result = result;
    return true;
  }
  if (result == 0) {  // a stream socket that accepts nothing: treat as a broken pipe
    r.result = -EPIPE;
    return true;
  }
  if (result > 0) {
    const auto n = static_cast<std::size_t>(result);
    r.transferred += n;
    r.buffer = static_cast<std::byte*>(r.buffer) + n;
    r.length -= n;
  }
  if (r.length == 0) {
    r.result = 0;
    return true;
  }
  if (r.cancel_was_requested()) {
    // Cancelled between two sends: stop here. The bytes sent so far stay in r.transferred (the
    // error_code form returns the count with operation_canceled; the throwing form throws).
    r.result = -ECANCELED;
    return true;
  }
  try {
    detail::submit_io(r);  // a short send: the rest goes out before the task resumes
  } catch (const std::system_error& e) {
    r.result = -e.code().value();
    return true;
  }
  return false;
}

// --- vectored writes ---------------------------------------------------------------------------

#if !defined(_WIN32)
static_assert(sizeof(detail::io_vector) == sizeof(iovec) && alignof(detail::io_vector) == alignof(iovec));
static_assert(offsetof(detail::io_vector, base) == offsetof(iovec, iov_base) &&
              offsetof(detail::io_vector, length) == offsetof(iovec, iov_len));
static_assert(sizeof(msghdr) <= 64 && alignof(msghdr) <= 8, "write_vectored_operation::header_ is too small");
#if defined(IOV_MAX)
static_assert(write_vectored_operation::max_vectors <= IOV_MAX);
#endif
#endif

write_vectored_operation::write_vectored_operation(const detail::file_descriptor& socket,
                                                   std::span<const std::span<const std::byte>> buffers,
                                                   std::error_code* ec, const char* what) noexcept
    : io_operation(ec, what), buffers_(buffers) {
  request_.on_complete = &write_vectored_operation::on_complete;
  request_.fd = socket.get();
  request_.generation = socket.generation();
#if defined(_WIN32)
  request_.opcode = detail::io_opcode::send;
  request_.address = this;  // unused by a send: how on_complete finds the awaiter
#else
  request_.opcode = detail::io_opcode::sendmsg;
  request_.buffer = this;  // unused by a sendmsg: how on_complete finds the awaiter
  new (header_.data()) msghdr{};
#endif
  std::size_t non_empty = 0;
  for (const auto& b : buffers_) {
    if (!b.empty() && ++non_empty == max_vectors) break;
  }
  if (non_empty <= inline_vectors) {
    vectors_ = inline_.data();
    capacity_ = inline_vectors;
  } else {
    heap_.reset(new (std::nothrow) detail::io_vector[non_empty]);
    if (!heap_) {
      fail_early(ENOMEM);
      return;
    }
    vectors_ = heap_.get();
    capacity_ = non_empty;
  }
  if (request_.fd < 0) {
    fail_early(EBADF);
    return;
  }
  if (load()) aim();
}

write_vectored_operation& write_vectored_operation::owner_of(detail::io_request& r) noexcept {
#if defined(_WIN32)
  return *static_cast<write_vectored_operation*>(r.address);
#else
  return *static_cast<write_vectored_operation*>(r.buffer);
#endif
}

bool write_vectored_operation::load() noexcept {
  first_ = 0;
  loaded_ = 0;
  while (next_ < buffers_.size() && loaded_ < capacity_) {
    const auto& b = buffers_[next_++];
    if (b.empty()) continue;
    vectors_[loaded_++] = detail::io_vector{const_cast<std::byte*>(b.data()), b.size()};
  }
  return loaded_ > 0;
}

void write_vectored_operation::advance(std::size_t n) noexcept {
  while (n > 0 && first_ < loaded_) {
    detail::io_vector& v = vectors_[first_];
    if (n < v.length) {
      v.base = static_cast<std::byte*>(v.base) + n;
      v.length -= n;
      return;
    }
    n -= v.length;
    ++first_;
  }
}

void write_vectored_operation::aim() noexcept {
#if defined(_WIN32)
  request_.buffer = vectors_[first_].base;
  request_.length = vectors_[first_].length;
#else
  auto* header = std::launder(reinterpret_cast<msghdr*>(header_.data()));
  header->msg_iov = reinterpret_cast<iovec*>(vectors_ + first_);
  header->msg_iovlen = static_cast<decltype(header->msg_iovlen)>(loaded_ - first_);
  request_.address = header;
#endif
}

bool write_vectored_operation::on_complete(detail::io_request& r, int result) noexcept {
  if (result < 0) {  // finish_request retried EINTR and EAGAIN already
    r.result = result;
    return true;
  }
  if (result == 0) {  // every iovec loaded is non-empty: a stream socket that takes nothing
    r.result = -EPIPE;
    return true;
  }
  write_vectored_operation& op = owner_of(r);
  const auto n = static_cast<std::size_t>(result);
  r.transferred += n;
  op.advance(n);
  if (op.first_ == op.loaded_ && !op.load()) {
    r.result = 0;
    return true;
  }
  if (r.cancel_was_requested()) {
    // Cancelled between two sends, as write_all_operation: the prefix sent stays in r.transferred.
    r.result = -ECANCELED;
    return true;
  }
  op.aim();
  try {
    detail::submit_io(r);  // a short send, or the next batch of buffers
  } catch (const std::system_error& e) {
    r.result = -e.code().value();
    return true;
  }
  return false;
}

connect_operation::connect_operation(const endpoint& remote, const endpoint* local, std::error_code* ec) noexcept
    : io_operation(ec, "corio::net::tcp_stream::connect"), remote_(remote) {
  request_.opcode = detail::io_opcode::connect;
  if (!remote_.is_v4() && !remote_.is_v6()) {
    fail_early(EAFNOSUPPORT);
    return;
  }
  const bool bind_local = local != nullptr && local->size() != 0;  // an unspecified endpoint binds nothing
  if (bind_local && local->is_v4() != remote_.is_v4()) {
    fail_early(EAFNOSUPPORT);
    return;
  }
  const int fd = detail::open_socket(remote_.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | detail::socket_cloexec,
                                     IPPROTO_TCP);
  if (fd < 0) {
    fail_early(detail::socket_error());
    return;
  }
  socket_ = detail::file_descriptor{fd};
  if (bind_local) {
#if defined(IP_BIND_ADDRESS_NO_PORT)
    // Port 0: let connect() pick the port for the whole 4-tuple, not bind() for the address alone.
    if (local->port() == 0) (void)detail::set_int_option(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
#endif
    if (::bind(fd, static_cast<const sockaddr*>(local->data()), static_cast<detail::socket_length_t>(local->size())) !=
        0) {
      fail_early(detail::socket_error());
      socket_.reset();
      return;
    }
  }
  request_.fd = fd;
  request_.generation = socket_.generation();
  request_.address = remote_.data();
  request_.address_length = remote_.size();
}

tcp_stream connect_operation::await_resume() {
  if (finish() < 0) return tcp_stream{};
  return tcp_stream{std::move(socket_)};
}

accept_operation::accept_operation(const detail::file_descriptor& socket, detail::accept_queue* queue,
                                   std::error_code* ec) noexcept
    : io_operation(ec, "corio::net::tcp_listener::accept"), queue_(queue) {
  const int fd = socket.get();
  request_.opcode = detail::io_opcode::accept;
  request_.fd = fd;
  request_.generation = socket.generation();
  request_.address = peer_.data();
  request_.address_length = endpoint::capacity();
  if (fd < 0) fail_early(EBADF);
}

tcp_stream accept_operation::await_resume() {
  if (wait_.queue != nullptr) {  // parked on the queue: woken with a descriptor, an error, or cancelled
    set_cancel_stop(wait_.park.stop);
    request_.result = detail::settle_accept(wait_);
  } else if (served_) {
    set_cancel_stop(wait_.park.stop);
    request_.result = wait_.result;
  }
  const auto fd = finish();
  if (fd < 0) return tcp_stream{};
  return tcp_stream{detail::file_descriptor{static_cast<int>(fd)}};
}

// --- tcp_stream ------------------------------------------------------------------------------

const detail::file_descriptor& tcp_stream::checked() const {
  if (!socket_.valid()) throw_closed("corio::net::tcp_stream");
  return socket_;
}

void tcp_stream::shutdown(shutdown_type how) {
  std::error_code ec;
  shutdown(how, ec);
  if (ec) throw std::system_error(ec, "corio::net::tcp_stream::shutdown");
}

void tcp_stream::shutdown(shutdown_type how, std::error_code& ec) noexcept {
  detail_socket::shutdown_socket(socket_, how, ec);
}

void tcp_stream::set_nodelay(bool on) {
  std::error_code ec;
  set_nodelay(on, ec);
  if (ec) throw std::system_error(ec, "corio::net::tcp_stream::set_nodelay");
}

void tcp_stream::set_nodelay(bool on, std::error_code& ec) noexcept {
  ec.clear();
  if (!socket_.valid()) {
    ec.assign(EBADF, socket_category());
    return;
  }
  if (const int error = detail::set_int_option(socket_.get(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0)) {
    ec.assign(error, socket_category());
  }
}

endpoint tcp_stream::local_endpoint() const {
  return socket_name(socket_.get(), false, "corio::net::tcp_stream::local_endpoint");
}

endpoint tcp_stream::remote_endpoint() const {
  return socket_name(socket_.get(), true, "corio::net::tcp_stream::remote_endpoint");
}

// --- tcp_listener ----------------------------------------------------------------------------

tcp_listener tcp_listener::bind(std::string_view local, int backlog) {
  if (auto e = endpoint::try_parse(local)) return bind(*e, backlog);
  std::string_view host;
  std::string_view service;
  if (!detail::split_host_port(local, host, service)) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            fmt::format("corio::net::tcp_listener::bind: expected host:port, got \"{}\"", local));
  }
  return bind(host, service, backlog);
}

tcp_listener tcp_listener::bind(std::string_view host, std::string_view service, int backlog) {
  std::uint16_t port = 0;
  if (!detail::service_port(service, port)) {
    throw std::system_error(resolve_error::service_not_found, fmt::format("corio: resolve {}:{}", host, service));
  }
  detail::lookup_result r = detail::lookup_blocking(std::string{host}, port, address_family::any);
  if (r.code) throw std::system_error(r.code, detail::describe(host, r));
  return bind(r.endpoints.front(), backlog);
}

}  // namespace net

// --- connect by name: Happy Eyeballs (RFC 8305) ----------------------------------------------

namespace detail {

using net::connect_options;
using net::endpoint;
using net::resolve_error;
using net::tcp_stream;

namespace {

/// What one connection attempt reports to the race: its index, and its stream or its error.
struct attempt_outcome {
  std::size_t index = 0;
  tcp_stream stream;
  std::error_code error;
};

task<void> run_attempt(endpoint remote, std::size_t index, channel<attempt_outcome> results) {
  std::error_code ec;
  tcp_stream s = co_await tcp_stream::connect(remote, ec);
  attempt_outcome outcome;
  outcome.index = index;
  outcome.stream = std::move(s);
  outcome.error = ec;
  (void)results.try_send(std::move(outcome));  // room for every attempt: never blocks, never fails
}

/// RFC 8305 section 4: the families in turn, IPv6 first when there is any, each in its own order.
std::vector<endpoint> interleave(const std::vector<endpoint>& addresses) {
  std::vector<endpoint> v6;
  std::vector<endpoint> v4;
  for (const auto& e : addresses) (e.is_v6() ? v6 : v4).push_back(e);
  std::vector<endpoint> out;
  out.reserve(addresses.size());
  for (std::size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
    if (i < v6.size()) out.push_back(v6[i]);
    if (i < v4.size()) out.push_back(v4[i]);
  }
  return out;
}

std::string failure_text(const std::string& host, const std::vector<endpoint>& order,
                         const std::vector<std::error_code>& errors) {
  std::string tried;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (!errors[i]) continue;
    if (!tried.empty()) tried += ", ";
    tried += fmt::format("{}: {}", order[i].to_string(), errors[i].message());
  }
  if (host.empty()) return fmt::format("corio: connect failed (tried {})", tried);
  return fmt::format("corio: connect to {} failed (tried {})", host, tried);
}

}  // namespace

task<tcp_stream> connect_any(std::vector<endpoint> addresses, std::string host, connect_options options,
                             std::error_code* ec) {
  if (addresses.empty()) {
    const auto code = std::make_error_code(std::errc::invalid_argument);
    if (ec == nullptr) throw std::system_error(code, fmt::format("corio: connect to {}: no addresses", host));
    *ec = code;
    co_return tcp_stream{};
  }
  const std::vector<endpoint> order = interleave(addresses);
  const std::size_t n = order.size();
  channel<attempt_outcome> results{n};
  std::vector<join_handle<void>> running;
  running.reserve(n);
  std::vector<std::error_code> errors(n);
  std::optional<tcp_stream> winner;
  std::exception_ptr failure;
  std::size_t finished = 0;
  const clock::duration delay = to_clock_duration(options.attempt_delay);
  clock::time_point last_start{};
  try {
    // Bounded: each round starts an attempt or takes one outcome, n of each at most.
    while (!winner && finished < n) {
      const std::size_t started = running.size();
      const bool may_start = started < n;
      if (may_start && (finished == started || now() >= deadline_after(last_start, delay))) {
        last_start = now();
        running.push_back(spawn(run_attempt(order[started], started, results)));
        continue;
      }
      std::optional<attempt_outcome> got;
      if (may_start) {
        auto r = co_await select(results.recv_case(), after(deadline_after(last_start, delay) - now()));
        if (r.index() != 0) continue;  // the delay passed: the next attempt starts
        got = std::move(std::get<0>(r));
      } else {
        got = co_await results.recv();
      }
      ++finished;
      if (!got->error) {
        winner = std::move(got->stream);
      } else {
        errors[got->index] = got->error;
      }
    }
  } catch (...) {
    failure = std::current_exception();  // cancelled (or spawn refused): the attempts end first
  }
  // The losers (and, after a failure, every attempt) are cancelled and awaited, out of reach of
  // this task's own cancellation, so that no attempt outlives the call.
  for (auto& h : running) h.cancel();
  for (auto& h : running) {
    try {
      co_await shield(h);
    } catch (...) {
    }
  }
  if (failure) std::rethrow_exception(failure);
  if (winner) {
    if (ec != nullptr) ec->clear();
    co_return std::move(*winner);  // streams of attempts that also connected close with `results`
  }
  std::error_code first;
  for (const auto& e : errors) {
    if (e) {
      first = e;
      break;
    }
  }
  if (ec == nullptr) throw std::system_error(first, failure_text(host, order, errors));
  *ec = first;
  co_return tcp_stream{};
}

task<tcp_stream> connect_host(std::string host, std::string service, connect_options options, std::error_code* ec) {
  std::uint16_t port = 0;
  lookup_result r;
  if (!service_port(service, port)) {
    r.code = resolve_error::service_not_found;
  } else {
    r = co_await lookup(host, port, options.resolve);
  }
  if (r.code) {
    if (ec == nullptr) throw std::system_error(r.code, describe(host, r));
    *ec = r.code;
    co_return tcp_stream{};
  }
  const bool v6_literal = host.find(':') != std::string::npos;
  std::string label = v6_literal ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
  co_return co_await connect_any(std::move(r.endpoints), std::move(label), std::move(options), ec);
}

}  // namespace detail

namespace net {

task<tcp_stream> tcp_stream::connect(std::string_view host_port, connect_options options) {
  std::string_view host;
  std::string_view service;
  if (!detail::split_host_port(host_port, host, service)) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            fmt::format("corio: connect: expected host:port, got \"{}\"", host_port));
  }
  return detail::connect_host(std::string{host}, std::string{service}, std::move(options), nullptr);
}

task<tcp_stream> tcp_stream::connect(std::string_view host_port, std::error_code& ec, connect_options options) {
  std::string_view host;
  std::string_view service;
  if (!detail::split_host_port(host_port, host, service)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return detail::connect_any({}, std::string{host_port}, std::move(options), &ec);
  }
  return detail::connect_host(std::string{host}, std::string{service}, std::move(options), &ec);
}

tcp_listener tcp_listener::bind(const endpoint& local, int backlog) {
  if (!local.is_v4() && !local.is_v6()) {
    throw std::system_error(EAFNOSUPPORT, socket_category(), "corio::net::tcp_listener::bind");
  }
  const int fd = detail::open_socket(local.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | detail::socket_cloexec,
                                     IPPROTO_TCP);
  if (fd < 0) throw_errno(detail::socket_error(), "corio::net::tcp_listener::bind: socket");
  tcp_listener l;
  l.socket_ = detail::file_descriptor{fd};
  l.queue_ = detail::accept_queue_handle{detail::make_accept_queue(fd, l.socket_.generation())};
#if !defined(_WIN32)  // on Windows SO_REUSEADDR lets another socket steal the port: not wanted
  (void)detail::set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1);
#endif
  if (local.is_v6()) (void)detail::set_int_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (::bind(fd, static_cast<const sockaddr*>(local.data()), static_cast<detail::socket_length_t>(local.size())) != 0) {
    const int error = detail::socket_error();
    throw std::system_error(error, socket_category(),
                            fmt::format("corio::net::tcp_listener::bind {}", local.to_string()));
  }
  if (::listen(fd, backlog) != 0) throw_errno(detail::socket_error(), "corio::net::tcp_listener::bind: listen");
  return l;
}

const detail::file_descriptor& tcp_listener::checked() const {
  if (!socket_.valid()) throw_closed("corio::net::tcp_listener");
  return socket_;
}

endpoint tcp_listener::local_endpoint() const {
  return socket_name(socket_.get(), false, "corio::net::tcp_listener::local_endpoint");
}

}  // namespace net
}  // namespace corio
