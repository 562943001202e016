// lib/asio_reactor.cpp - the Asio reactor (see asio_reactor.hpp): the reactor's entry points and how
// each operation starts. Its state is in asio_reactor_state.hpp; Windows' socket service in
// asio_socket_service.cpp.
#include "asio_reactor_state.hpp"

#if CORIO_FAULT_INJECTION
#include "fault_injection.hpp"
#endif

#if !defined(_WIN32)
#include <poll.h>
#include <sys/socket.h>
#endif
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <system_error>

namespace corio::detail {
using namespace asio_impl;

namespace {

/// The address family of a socket, for the generic protocol Asio assigns it with.
int socket_family(int fd, int& error) noexcept {
#if defined(_WIN32)
  // Not getsockname(): Winsock fails it with WSAEINVAL on a socket that is not bound yet, which a
  // socket about to connect is (every connect failed with EINVAL). The protocol information
  // names the family of any socket.
  WSAPROTOCOL_INFOW info{};
  int length = sizeof info;
  if (::getsockopt(static_cast<SOCKET>(fd), SOL_SOCKET, SO_PROTOCOL_INFOW, reinterpret_cast<char*>(&info),
                   &length) != 0) {
    error = socket_error();
    return -1;
  }
  error = 0;
  return info.iAddressFamily;
#else
  sockaddr_storage address{};
  socket_length_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    error = socket_error();
    return -1;
  }
  error = 0;
  return address.ss_family;
#endif
}

}  // namespace

void asio_reactor::state::finish(io_request& r, int result) noexcept {
#if defined(_WIN32)
  if (!service) in_flight.unlink(r);  // (the socket service's requests are in their worker's list)
#else
  in_flight.unlink(r);
#endif
  // A readiness wait on a descriptor corio does not own (generation 0, corio::wait_readable)
  // keeps its registration only while it waits: the owner may close the descriptor and open
  // another under the same number at any time, which the table could not tell apart.
  if (r.opcode == io_opcode::poll && r.generation == 0 && r.fd >= 0 &&
      static_cast<std::size_t>(r.fd) < table.size()) {
    table_entry& e = table[static_cast<std::size_t>(r.fd)];
    if (e.foreign_waits != 0 && --e.foreign_waits == 0) release(e);
  }
  if (r.reactor_data != nullptr) {
    // Back to the pool (a resubmission in on_complete takes one again). Never throws: the pool
    // holds every signal ever handed out, so its capacity suffices.
    signal_pool.emplace_back(static_cast<asio::cancellation_signal*>(std::exchange(r.reactor_data, nullptr)));
    --signals_out;
  }
#if defined(_WIN32)
  if (service) {
    hand_back(r, result);
    return;
  }
#endif
  if (finish_request(r, result, draining, sink, *cancels)) ++finished;
}

void asio_reactor::state::submit_cancels() noexcept {
  cancel_batch.clear();
  try {
    cancels->take(cancel_batch);
  } catch (...) {
    return;
  }
  for (io_request* r : cancel_batch) {
    if (is_file_operation(r->opcode)) {
      cancel_file_operation(*r);
      continue;
    }
#if defined(_WIN32)
    cancel_forwarded(*r, false);  // the socket service runs it
    continue;
#endif
    // A request between two Asio operations (an accept about to retry, a completion posted)
    // has nothing to cancel now: its next step sees cancel_requested, or it completes.
    if (r->reactor_data != nullptr) {
      static_cast<asio::cancellation_signal*>(r->reactor_data)->emit(asio::cancellation_type::terminal);
    }
  }
}

void asio_reactor::state::release(table_entry& e) noexcept {
  // release(), not close(): the descriptor belongs to a corio socket (or is already closed, and
  // its number may belong to another socket by now).
  asio::error_code socket_kept, listener_kept;
  if (e.socket) (void)e.socket->release(socket_kept);
  if (e.listener) (void)e.listener->release(listener_kept);
#if defined(_WIN32)
  // Under Wine release() fails (no FileReplaceCompletionInformation) and the object keeps the
  // number, which destroying it would close, whichever socket has it by now: keep such an object
  // instead (only the socket service's table has entries on Windows, and its io_context is never
  // destroyed). Only a socket closed behind corio's back (a released descriptor) gets here.
  if (socket_kept) (void)e.socket.release();
  if (listener_kept) (void)e.listener.release();
#endif
  e.socket.reset();
  e.listener.reset();
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
  if (e.file) (void)e.file->release();
  e.file.reset();
#endif
  e.generation = 0;
  e.foreign_waits = 0;
}

table_entry* asio_reactor::state::entry_for(const io_request& r, int& error) {
  error = 0;
  if (r.fd < 0) {
    error = EBADF;
    return nullptr;
  }
  const auto index = static_cast<std::size_t>(r.fd);
  if (index >= table.size()) table.resize(std::max(index + 1, table.size() * 2));
  table_entry& e = table[index];
  // A readiness wait, recvmsg or sendmsg takes whatever this worker registered for the
  // descriptor (each can wait for readiness); the other kinds need their own Asio object.
#if defined(_WIN32)
  const bool any_kind = r.opcode == io_opcode::poll;  // (recvmsg and sendmsg: see want_listener)
#else
  const bool any_kind =
      r.opcode == io_opcode::poll || r.opcode == io_opcode::recvmsg || r.opcode == io_opcode::sendmsg;
#endif
  if (any_kind && r.generation != 0 && e.generation == r.generation &&
      (e.socket || e.listener || has_file(e))) {
    return &e;
  }
  // Otherwise a readiness wait registers the descriptor as a file (any descriptor can be
  // polled; on Windows only sockets exist to wait for), recvmsg and sendmsg as a socket.
#if defined(_WIN32)
  // (Datagram sockets too: their readiness must be waited for with select(), see `acceptor`.)
  const bool want_listener =
      r.opcode == io_opcode::accept || r.opcode == io_opcode::recvmsg || r.opcode == io_opcode::sendmsg;
#else
  const bool want_listener = r.opcode == io_opcode::accept;
#endif
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
  const bool want_file = r.opcode == io_opcode::read || r.opcode == io_opcode::poll;
#else
  const bool want_file = r.opcode == io_opcode::read;
#endif
  if (e.generation == r.generation && (want_listener ? e.listener != nullptr
                                       : want_file   ? has_file(e)
                                                     : e.socket != nullptr)) {
    return &e;
  }
  release(e);
  asio::error_code ec;
  if (want_file) {
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
    e.file = std::make_unique<stream_descriptor>(context);
    e.file->assign(r.fd, ec);
#else
    error = ENOTSUP;
    return nullptr;
#endif
  } else {
    const int family = socket_family(r.fd, error);
    if (family < 0) return nullptr;
    if (want_listener) {
      e.listener = std::make_unique<acceptor>(context);
      e.listener->assign(acceptor::protocol_type{family, 0}, r.fd, ec);
      // accept4() below must see EAGAIN rather than block the worker.
      if (!ec) e.listener->non_blocking(true, ec);
    } else {
      e.socket = std::make_unique<stream_socket>(context);
      e.socket->assign(protocol{family, 0}, r.fd, ec);
    }
  }
  if (ec) {
    release(e);
    const int result = to_result(ec, 0);
    error = result < 0 ? -result : EIO;
    return nullptr;
  }
  e.generation = r.generation;
  return &e;
}

void asio_reactor::state::poll_ready(table_entry& e, io_request& r) {
  const bool write = (r.flags & POLLIN) == 0;
  if (r.generation == 0) ++e.foreign_waits;  // released by finish() once the last one ends
  wait_ready(e, r, write, [this, &r, write] { finish(r, write ? POLLOUT : POLLIN); });
}

#if !defined(_WIN32)
void asio_reactor::state::transfer_message(io_request& r) {
  if (r.opcode == io_opcode::sendmsg) {
    react(r, true, [&r] {
#if defined(MSG_NOSIGNAL)
      const int flags = static_cast<int>(r.flags) | MSG_DONTWAIT | MSG_NOSIGNAL;
#else
      const int flags = static_cast<int>(r.flags) | MSG_DONTWAIT;
#endif
      return static_cast<long>(::sendmsg(r.fd, static_cast<const msghdr*>(r.address), flags));
    });
  } else {
    react(r, false, [&r] {
      return static_cast<long>(
          ::recvmsg(r.fd, static_cast<msghdr*>(r.address), static_cast<int>(r.flags) | MSG_DONTWAIT));
    });
  }
}
#endif

#if !defined(_WIN32)
void asio_reactor::state::accept(acceptor&, io_request& r) {
  react(r, false, [&r] {
    auto length = static_cast<socklen_t>(r.address_length);
    const int fd = ::accept4(r.fd, static_cast<sockaddr*>(r.address), &length, SOCK_CLOEXEC);
    if (fd >= 0) r.address_length = length;
    return static_cast<long>(fd);
  });
}
#endif

void asio_reactor::state::file_operation(io_request& r) {
  std::unique_ptr<file_job> job;
  if (file_job_pool.empty()) {
    job = std::make_unique<file_job>();
    job->owner = this;
    job->run = [](blocking_job& j) noexcept {
      auto& f = static_cast<file_job&>(j);
      const int result = perform_blocking_io(*f.request);
      // Never throws in practice (Asio recycles handler memory); noexcept would end the
      // process rather than lose the completion of a request whose task waits for it.
      asio::post(f.owner->context, [&f, result] { f.owner->file_done(f, result); });
    };
  } else {
    job = std::move(file_job_pool.back());
    file_job_pool.pop_back();
  }
  job->state = blocking_job::fresh;
  job->request = &r;
  try {
    if (pool == nullptr) pool = &current_blocking_pool("corio: a file operation on an Asio reactor");
    file_job_pool.reserve(file_job_pool.size() + file_jobs_out + 1);  // room to take every job back
    if (!pool->submit(*job)) throw std::logic_error("cancelled before submission");
  } catch (const std::system_error& e) {
    file_job_pool.push_back(std::move(job));
    fail_later(r, e.code().value() > 0 ? e.code().value() : EIO);
    return;
  } catch (...) {
    file_job_pool.push_back(std::move(job));
    fail_later(r, ECANCELED);  // the pool shut down, or no memory: the operation did not start
    return;
  }
  r.reactor_data = job.release();
  ++file_jobs_out;
}

void asio_reactor::state::file_done(file_job& job, int result) noexcept {
  io_request& r = *job.request;
  r.reactor_data = nullptr;  // not a cancellation signal: finish() must not pool it
  --file_jobs_out;
  file_job_pool.emplace_back(&job);  // cannot throw: reserved in file_operation
  finish(r, result);
}

void asio_reactor::state::cancel_file_operation(io_request& r) noexcept {
  auto* job = static_cast<file_job*>(r.reactor_data);
  if (job != nullptr && pool != nullptr && pool->try_cancel(*job)) file_done(*job, -ECANCELED);
}

asio_reactor::asio_reactor(completion_sink sink) {
  try {
    state_ = std::make_unique<state>(sink);
    state_->cancels = &cancels_;
  } catch (const std::system_error&) {
    throw;
  } catch (const std::exception& e) {
    throw std::system_error(ENOMEM, std::system_category(), e.what());
  }
}

asio_reactor::~asio_reactor() {
  state_->guard.reset();
  for (table_entry& e : state_->table) state::release(e);
}

void asio_reactor::submit(io_request& request) {
  state& s = *state_;
  s.in_flight.link(request);
  std::size_t length = request.length;  // bytes Asio is given for a recv, send or read
#if CORIO_FAULT_INJECTION
  const fault::decision fault = fault::on_submit(request);
  if (fault.error != 0) {  // nothing is started; completes with -error, as a completion
    s.fail_later(request, fault.error);
    return;
  }
  length = fault.length;  // a short transfer; the request keeps its own length
#endif
  if (is_file_operation(request.opcode)) {
    s.file_operation(request);  // no descriptor to register (openat has none yet)
    return;
  }
#if defined(_WIN32)
  s.forward(request, length);
#else
  s.start(request, length);
#endif
}

void asio_reactor::state::start(io_request& request, std::size_t length) {
  state& s = *this;
  int error = 0;
  table_entry* e = s.entry_for(request, error);
  if (e == nullptr) {
    s.fail_later(request, error);
    return;
  }
  io_request* r = &request;
  switch (request.opcode) {
    case io_opcode::accept:
      s.accept(*e->listener, request);
      break;
    case io_opcode::connect:
      e->socket->async_connect(
          protocol::endpoint{request.address, request.address_length},
          asio::bind_cancellation_slot(
              s.slot_for(request), [&s, r](const asio::error_code& ec) { s.finish(*r, to_result(ec, 0)); }));
      break;
    case io_opcode::recv:
#if !defined(_WIN32)
      // Not Asio's async_receive: Asio 1.22's epoll reactor stops trying reads speculatively after
      // a read that returned fewer bytes than asked ("exhausted"), end of stream included, and
      // waits for the next edge, which never comes after end of stream: a second read_some after
      // one that returned 0 hung. The reactive path always tries the recv first.
      s.react(request, false, [r, length] {
        return static_cast<long>(::recv(r->fd, r->buffer, length, static_cast<int>(r->flags) | MSG_DONTWAIT));
      });
#else
      e->socket->async_receive(
          asio::buffer(request.buffer, length), static_cast<asio::socket_base::message_flags>(request.flags),
          asio::bind_cancellation_slot(
              s.slot_for(request),
              [&s, r](const asio::error_code& ec, std::size_t n) { s.finish(*r, to_result(ec, n)); }));
#endif
      break;
    case io_opcode::send:
      // Asio adds MSG_NOSIGNAL on Linux; a short send completes with the bytes sent.
      e->socket->async_send(asio::buffer(static_cast<const void*>(request.buffer), length),
                            static_cast<asio::socket_base::message_flags>(request.flags),
                            asio::bind_cancellation_slot(s.slot_for(request),
                                                         [&s, r](const asio::error_code& ec, std::size_t n) {
                                                           s.finish(*r, to_result(ec, n));
                                                         }));
      break;
    case io_opcode::read:
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
      e->file->async_read_some(asio::buffer(request.buffer, length),
                               asio::bind_cancellation_slot(
                                   s.slot_for(request), [&s, r](const asio::error_code& ec, std::size_t n) {
                                     s.finish(*r, to_result(ec, n));
                                   }));
#endif
      break;
    case io_opcode::poll:
      s.poll_ready(*e, request);
      break;
    case io_opcode::recvmsg:
    case io_opcode::sendmsg:
      s.transfer_message(request);
      break;
    default:
      break;  // file operations: handled above
  }
}

std::size_t asio_reactor::poll() {
  state& s = *state_;
  if (cancels_.pending()) [[unlikely]]
    s.submit_cancels();
  // Nothing in flight: only a wake can be pending, and wait() runs that. Skip Asio entirely (its
  // poll would make an epoll_wait system call), as the io_uring reactor skips its ring.
  if (s.in_flight.size() == 0) return 0;
  s.finished = 0;
  s.context.poll();
  return s.finished;
}

std::size_t asio_reactor::wait(std::optional<std::chrono::nanoseconds> timeout) {
  state& s = *state_;
  s.woken = false;
  s.finished = 0;
  if (cancels_.pending()) [[unlikely]]
    s.submit_cancels();
  s.context.poll();  // what is ready already, the wake handler included
  if (s.finished != 0 || s.woken) return s.finished;
  if (!timeout) {
    s.context.run_one();
  } else if (timeout->count() > 0) {
    s.context.run_one_for(*timeout);
  }
  s.context.poll();
  return s.finished;
}

void asio_reactor::wake() noexcept {
  state& s = *state_;
  // At most one wake handler pending: a storm of wakes posts once.
  if (s.wake_pending.exchange(true, std::memory_order_acq_rel)) return;
  try {
    asio::post(s.context, [&s] {
      s.wake_pending.store(false, std::memory_order_release);
      s.woken = true;
    });
  } catch (...) {
    // Out of memory for the handler: leave the flag clear so that the next wake tries again.
    s.wake_pending.store(false, std::memory_order_release);
  }
}

void asio_reactor::drain() noexcept {
  state& s = *state_;
  s.draining = true;
  try {
    for (io_request* r = s.in_flight.front(); r != nullptr;) {
      io_request* next = r->next;  // a file job cancelled here leaves the list at once
      if (is_file_operation(r->opcode)) s.cancel_file_operation(*r);
      r = next;
    }
    for (io_request* r = s.in_flight.front(); r != nullptr; r = r->next) {
      if (is_file_operation(r->opcode)) continue;
#if defined(_WIN32)
      s.cancel_forwarded(*r, true);
#else
      if (r->fd < 0 || static_cast<std::size_t>(r->fd) >= s.table.size()) continue;
      table_entry& e = s.table[static_cast<std::size_t>(r->fd)];
      asio::error_code ignored;
      if (e.socket) e.socket->cancel(ignored);
      if (e.listener) e.listener->cancel(ignored);
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
      if (e.file) e.file->cancel(ignored);
#endif
#endif
    }
    // Every cancelled operation completes with operation_aborted; bounded in case one does not.
    // File jobs that run are waited for without a bound: each writes into its task's frame and
    // posts to this io_context, so neither may go before it ends (a hung file system hangs the
    // shutdown, as it would hang a thread blocked in read(2)).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (s.in_flight.size() != 0 && (s.file_jobs_out != 0 || std::chrono::steady_clock::now() < give_up)) {
      s.context.run_one_for(std::chrono::milliseconds(100));
    }
    s.context.poll();
  } catch (...) {
  }
  if (s.in_flight.size() != 0) {
    std::fprintf(stderr, "corio: %zu Asio operations did not complete after cancellation\n",
                 s.in_flight.size());
  }
}

std::size_t asio_reactor::in_flight() const noexcept { return state_->in_flight.size(); }

std::string asio_reactor::features() const {
#if defined(ASIO_HAS_IOCP)
  return "iocp";
#elif defined(ASIO_HAS_EPOLL)
  return "epoll";
#elif defined(ASIO_HAS_KQUEUE)
  return "kqueue";
#else
  return "select";
#endif
}

}  // namespace corio::detail
