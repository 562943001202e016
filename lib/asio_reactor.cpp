// lib/asio_reactor.cpp - the Asio reactor (see asio_reactor.hpp). The only file of corio that
// includes Asio.
#include "asio_reactor.hpp"

#include <asio/basic_datagram_socket.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/basic_stream_socket.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/buffer.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/generic/datagram_protocol.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
#include <asio/posix/basic_stream_descriptor.hpp>
#endif

#include "blocking_pool.hpp"
#include "net/socket_api.hpp"
#if CORIO_FAULT_INJECTION
#include "fault_injection.hpp"
#endif

#include <atomic>
#if defined(_WIN32)
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#endif
#if !defined(_WIN32)
#include <poll.h>
#include <sys/socket.h>
#endif
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <system_error>
#include <vector>

namespace corio::detail {
namespace {

using protocol = asio::generic::stream_protocol;
using stream_socket = asio::basic_stream_socket<protocol, asio::io_context::executor_type>;
#if defined(_WIN32)
/// The Asio object a listener is registered as on Windows, where accept is a non-blocking accept()
/// after a readiness wait (state::accept): a datagram socket object, because Asio's IOCP service
/// waits for a stream-oriented socket's readability with a zero-byte overlapped WSARecv, which a
/// listening socket never completes (under Wine it stays pending; Windows fails it with
/// WSAENOTCONN), and for any other socket with select() on its reactor thread, which reports a
/// listener readable when a connection is waiting. Asio takes the type from the protocol object
/// and never checks it against the socket's.
using acceptor = asio::basic_datagram_socket<asio::generic::datagram_protocol, asio::io_context::executor_type>;
#else
using acceptor = asio::basic_socket_acceptor<protocol, asio::io_context::executor_type>;
#endif
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
using stream_descriptor = asio::posix::basic_stream_descriptor<asio::io_context::executor_type>;
#endif

/// What this worker registered with Asio for one descriptor number.
struct table_entry {
  std::uint64_t generation = 0;
  std::unique_ptr<stream_socket> socket;  ///< for connect, recv, send
  std::unique_ptr<acceptor> listener;     ///< for accept
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
  std::unique_ptr<stream_descriptor> file;  ///< for read (a descriptor that is not a socket)
#endif
  /// Readiness waits in flight on a descriptor corio does not own (generation 0): the entry is
  /// released when the last one ends, since its owner may close it at any time.
  unsigned foreign_waits = 0;
};

/// An Asio completion as corio's reactors report it: a byte count or descriptor, 0 at end of
/// stream, -errno on failure (-ECANCELED for a cancelled operation).
int to_result(const asio::error_code& ec, std::size_t n) noexcept {
  if (!ec) return static_cast<int>(n);
  if (ec == asio::error::eof) return 0;
  if (ec == asio::error::operation_aborted) return -ECANCELED;
#if defined(_WIN32)
  if (ec.category() == asio::system_category()) return -errno_from_wsa(ec.value());
#else
  if (ec.category() == asio::system_category() && ec.value() > 0) return -ec.value();
#endif
  return -EIO;
}

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

struct asio_reactor::state {
  explicit state(completion_sink s) : sink(s) {}

  completion_sink sink;
  asio::io_context context{1};  // driven by one thread; posts from others stay thread-safe
  asio::executor_work_guard<asio::io_context::executor_type> guard{context.get_executor()};
  /// Never opened: constructing it makes Asio set up its reactor (epoll and interrupter
  /// descriptors) now rather than at the first registration, which may come when descriptors
  /// have run out and must not fail for that reason.
  stream_socket reactor_starter{context};
  std::vector<table_entry> table;  // by descriptor number
  std::atomic<bool> wake_pending{false};
  bool woken = false;  ///< the wake handler ran since the last wait() began
  bool draining = false;
  std::size_t finished = 0;         ///< requests finished since the count was last reset
  in_flight_list in_flight;         // for cancellation at drain()
  cancel_inbox* cancels = nullptr;  ///< the reactor's (set by its constructor)
  /// Cancellation signals of cancellable requests in flight (io_request::reactor_data) come from
  /// this pool and go back to it when the request finishes: steady state allocates nothing, and
  /// a signal's handler memory is reused by the next operation bound to it.
  std::vector<std::unique_ptr<asio::cancellation_signal>> signal_pool;
  std::vector<io_request*> cancel_batch;  ///< reused by submit_cancels()

  /// A request is done (result as to_result): the same steps as an io_uring completion.
  void finish(io_request& r, int result) noexcept {
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
      signal_pool.emplace_back(
          static_cast<asio::cancellation_signal*>(std::exchange(r.reactor_data, nullptr)));
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

#if defined(_WIN32)
  // --- Windows: the process's socket service --------------------------------------------------
  // A socket belongs to one I/O completion port for its whole life on Windows (giving it back
  // needs FileReplaceCompletionInformation, which Wine 8 lacks: test/wine_repro), while a corio
  // socket is used from any worker. So on Windows every socket operation runs on one state of its
  // own (`service`: one io_context, one socket table) driven by a thread of its own, as Go's
  // runtime keeps one completion port per process (runtime/netpoll_windows.go). A worker forwards
  // a request to it (forward), the service starts it as a worker's reactor would (start), and its
  // completion is handed back to the worker's io_context (hand_back), where finish() ends it as
  // any completion. Cancellation is forwarded the same way (cancel_forwarded). The service owns
  // the Asio object of each socket it served until corio closes that socket through it
  // (close_registered_socket), so that no object outlives its socket and closes a reused number.

  bool service = false;  ///< this state is the socket service's
  /// Service only: the worker state each request it is running came from (also: which requests
  /// are still running, so that a cancellation that comes after the completion does nothing).
  std::unordered_map<io_request*, state*> owners;

  /// Service: the request is done; the worker that forwarded it finishes it on its thread.
  void hand_back(io_request& r, int result) noexcept {
    const auto it = owners.find(&r);
    if (it == owners.end()) return;  // (never: every request started here has its owner)
    state* owner = it->second;
    owners.erase(it);
    try {
      asio::post(owner->context, [owner, &r, result] { owner->finish(r, result); });
    } catch (...) {
      std::fprintf(stderr, "corio: out of memory handing a socket completion back to its worker\n");
      std::abort();  // the waiting task would never be resumed
    }
  }
#endif
  /// Starts `request`'s Asio operation (its descriptor registered first), `length` bytes for a
  /// recv, send or read. On Windows on the socket service only.
  void start(io_request& request, std::size_t length);
#if defined(_WIN32)
  void forward(io_request& request, std::size_t length);
#endif
  void cancel_forwarded(io_request& request, bool drain) noexcept;

  /// The slot to bind r's Asio operation to: a pooled signal's when r is cancellable, an
  /// unconnected slot (per-operation cancellation off, nothing allocated) otherwise.
  asio::cancellation_slot slot_for(io_request& r) {
    if (r.cancel_owner == nullptr) return {};
    if (r.reactor_data == nullptr) {
      if (signal_pool.empty()) {
        auto fresh = std::make_unique<asio::cancellation_signal>();
        signal_pool.reserve(signal_pool.size() + 1 + signals_out);  // room to return every signal
        r.reactor_data = fresh.release();
      } else {
        r.reactor_data = signal_pool.back().release();
        signal_pool.pop_back();
      }
      ++signals_out;
    }
    return static_cast<asio::cancellation_signal*>(r.reactor_data)->slot();
  }
  std::size_t signals_out = 0;  ///< signals handed out and not yet returned

  /// Emits terminal cancellation for each request cancellers left in the inbox (on this thread,
  /// the io_context's: Asio's per-operation cancellation is not thread-safe).
  void submit_cancels() noexcept {
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

  /// Finishes `r` with -error from the io_context, as a completion (never inside submit()).
  void fail_later(io_request& r, int error) {
    asio::post(context, [this, &r, error] { finish(r, -error); });
  }

  static bool has_file([[maybe_unused]] const table_entry& e) noexcept {
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
    return e.file != nullptr;
#else
    return false;
#endif
  }

  static void release(table_entry& e) noexcept {
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

  /// The entry registered for r's descriptor, (re)registered when missing, stale or of the wrong
  /// kind; null with `error` set when the descriptor cannot be registered.
  table_entry* entry_for(const io_request& r, int& error) {
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

  /// Waits until r's descriptor is readable (`write` false) or writable, through whichever Asio
  /// object `e` holds, bound to r's cancellation slot, then calls `then` (or finishes r with the
  /// error, or cancelled while draining).
  template <class Then>
  void wait_ready(table_entry& e, io_request& r, bool write, Then then) {
    auto handler =
        asio::bind_cancellation_slot(slot_for(r), [this, &r, then](const asio::error_code& ec) mutable {
          if (ec || draining) {
            finish(r, ec ? to_result(ec, 0) : -ECANCELED);
            return;
          }
          then();
        });
    if (e.socket) {
      e.socket->async_wait(write ? stream_socket::wait_write : stream_socket::wait_read, std::move(handler));
    } else if (e.listener) {
      e.listener->async_wait(write ? acceptor::wait_write : acceptor::wait_read, std::move(handler));
    } else {
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
      e.file->async_wait(write ? stream_descriptor::wait_write : stream_descriptor::wait_read,
                         std::move(handler));
#endif
    }
  }

  /// io_opcode::poll: one readiness wait (POLLIN when flags ask for it, else POLLOUT); completes
  /// with the event that came.
  void poll_ready(table_entry& e, io_request& r) {
    const bool write = (r.flags & POLLIN) == 0;
    if (r.generation == 0) ++e.foreign_waits;  // released by finish() once the last one ends
    wait_ready(e, r, write, [this, &r, write] { finish(r, write ? POLLOUT : POLLIN); });
  }

  /// Runs `attempt` (a non-blocking system call: >= 0 on success, -1 with errno set) until it
  /// succeeds or fails with an error other than EAGAIN, and finishes r with that (posted, never
  /// inside submit()); on EAGAIN waits for readiness (`write`: writable) and tries again. Safe
  /// with Asio's edge-triggered epoll because one thread drives this io_context: readiness that
  /// comes after the EAGAIN is reported by a later epoll_wait, which only runs after the wait below
  /// is queued. Asio's own reactive operations work this way.
  template <class Attempt>
  void react(io_request& r, bool write, Attempt attempt) {
    for (;;) {
      const long n = attempt();
      if (n >= 0) {
        const int result = static_cast<int>(n);
        asio::post(context, [this, &r, result] { finish(r, result); });
        return;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail_later(r, errno);
        return;
      }
      break;
    }
    if (r.cancel_was_requested()) {  // cancelled between two waits: nothing was transferred
      fail_later(r, ECANCELED);
      return;
    }
    int error = 0;
    table_entry* e = entry_for(r, error);
    if (e == nullptr) {
      fail_later(r, error);
      return;
    }
    wait_ready(*e, r, write, [this, &r, write, attempt] { react(r, write, attempt); });
  }

#if !defined(_WIN32)
  /// recvmsg() or sendmsg() (io_opcode::recvmsg, sendmsg), reactively.
  void transfer_message(io_request& r) {
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

  /// accept4() reactively (the listener is non-blocking). Accepted descriptors are close-on-exec,
  /// as on io_uring (Asio's own accept does not set it).
  void accept(acceptor&, io_request& r) {
    react(r, false, [&r] {
      auto length = static_cast<socklen_t>(r.address_length);
      const int fd = ::accept4(r.fd, static_cast<sockaddr*>(r.address), &length, SOCK_CLOEXEC);
      if (fd >= 0) r.address_length = length;
      return static_cast<long>(fd);
    });
  }
#else
  /// Windows: recvfrom() or sendto() (io_opcode::recvmsg, sendmsg; r.address is a
  /// socket_message), reactively; the socket was made non-blocking when it was registered.
  void transfer_message(io_request& r) {
    auto* m = static_cast<socket_message*>(r.address);
    const auto length = static_cast<int>(std::min<std::size_t>(m->length, 0x7fffffff));
    if (r.opcode == io_opcode::sendmsg) {
      react(r, true, [&r, m, length] {
        const int n = ::sendto(static_cast<SOCKET>(r.fd), static_cast<const char*>(m->buffer), length,
                               static_cast<int>(r.flags), m->name, m->name == nullptr ? 0 : m->name_length);
        if (n == SOCKET_ERROR) {
          const int wsa = ::WSAGetLastError();
          errno = errno_from_wsa(wsa);
          if (m->name == nullptr && wsa != WSAEWOULDBLOCK) {
            // No destination and no peer is EDESTADDRREQ on POSIX; Windows says WSAENOTCONN (or
            // WSAEDESTADDRREQ) and Wine WSAEINVAL: ask whether the socket has a peer.
            sockaddr_storage peer{};
            int peer_length = sizeof peer;
            if (::getpeername(static_cast<SOCKET>(r.fd), reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0 &&
                ::WSAGetLastError() == WSAENOTCONN) {
              errno = EDESTADDRREQ;
            }
          }
          return -1L;
        }
        return static_cast<long>(n);
      });
    } else {
      react(r, false, [&r, m, length] {
        int name_length = m->name_length;
        const int n = ::recvfrom(static_cast<SOCKET>(r.fd), static_cast<char*>(m->buffer), length,
                                 static_cast<int>(r.flags), m->name, m->name == nullptr ? nullptr : &name_length);
        if (n == SOCKET_ERROR) {
          const int wsa = ::WSAGetLastError();
          if (wsa != WSAEMSGSIZE) {
            // On a datagram socket WSAECONNRESET reports an ICMP port unreachable for an earlier
            // send (recvfrom's documentation), which POSIX reports as ECONNREFUSED.
            errno = wsa == WSAECONNRESET ? ECONNREFUSED : errno_from_wsa(wsa);
            return -1L;
          }
          m->truncated = true;  // the buffer holds the datagram's first `length` bytes
          m->name_length = name_length;
          return static_cast<long>(length);
        }
        m->truncated = false;
        m->name_length = name_length;
        return static_cast<long>(n);
      });
    }
  }
#endif

  /// A file operation's job on the runtime's blocking pool; io_request::reactor_data points to it
  /// from submission until its completion is handled on this thread.
  struct file_job : blocking_job {
    asio_reactor::state* owner = nullptr;  // (blocking_job::state is a member name)
    io_request* request = nullptr;
  };
  std::vector<std::unique_ptr<file_job>> file_job_pool;  ///< reused jobs (steady state allocates nothing)
  blocking_pool* pool = nullptr;  ///< the runtime's, found at the first file operation
  std::size_t file_jobs_out = 0;  ///< submitted and not yet handled

  /// A file operation: the blocking system call (perform_blocking_io) on the runtime's blocking
  /// pool, as Tokio's tokio::fs does, so that a slow disk never stalls the worker; its completion
  /// is posted back to this io_context (thread-safe) and handled like any other.
  void file_operation(io_request& r) {
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

  /// The completion of a file job (result: perform_blocking_io's), or its cancellation before it
  /// ran (-ECANCELED). On this thread.
  void file_done(file_job& job, int result) noexcept {
    io_request& r = *job.request;
    r.reactor_data = nullptr;  // not a cancellation signal: finish() must not pool it
    --file_jobs_out;
    file_job_pool.emplace_back(&job);  // cannot throw: reserved in file_operation
    finish(r, result);
  }

  /// Cancels a file operation whose job has not started; one that runs completes as usual (a
  /// system call cannot be interrupted), as on io_uring.
  void cancel_file_operation(io_request& r) noexcept {
    auto* job = static_cast<file_job*>(r.reactor_data);
    if (job != nullptr && pool != nullptr && pool->try_cancel(*job)) file_done(*job, -ECANCELED);
  }

#if defined(_WIN32)
  /// Windows: accept() reactively, as accept4() on POSIX (the listener is non-blocking; Asio's
  /// readiness wait runs on its select reactor thread). Not Asio's async_accept (AcceptEx): the
  /// socket it accepts is tied to this worker's completion port and must be released to corio
  /// with NtSetInformationFile(FileReplaceCompletionInformation), which Wine 8 does not implement
  /// (every accept failed with EIO there: test/wine_repro/accept_release.cpp); a socket from
  /// accept() belongs to no completion port until a worker registers it, as a connected one does.
  void accept(acceptor&, io_request& r) {
    react(r, false, [&r] {
      auto length = static_cast<socket_length_t>(r.address_length);
      const SOCKET s = ::accept(static_cast<SOCKET>(r.fd), static_cast<sockaddr*>(r.address), &length);
      if (s == INVALID_SOCKET) {
        errno = socket_error();
        return -1L;
      }
      if (s > static_cast<SOCKET>(0x7fffffff)) {  // corio keeps sockets as int descriptors
        ::closesocket(s);
        errno = EMFILE;
        return -1L;
      }
      r.address_length = static_cast<std::uint32_t>(length);
      return static_cast<long>(s);
    });
  }
#endif
};

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

#if defined(_WIN32)
namespace {

/// Windows: the process's socket service (see asio_reactor::state::hand_back): a state of its
/// own, driven by a detached thread for the life of the process. Created at the first socket
/// operation; never destroyed, so that the Asio objects in its table never close a socket corio
/// did not ask it to close.
struct socket_service {
  asio_reactor::state engine{completion_sink{nullptr, nullptr}};
  std::thread::id thread;
  static inline std::atomic<socket_service*> instance{nullptr};

  /// The service, started at the first call. Thread-safe. Throws std::system_error when its
  /// thread cannot be started (a later call tries again).
  static socket_service& get() {
    static socket_service* const service = [] {
      auto svc = std::make_unique<socket_service>();
      svc->engine.service = true;
      socket_service* p = svc.get();
      std::thread t([p] {
        for (;;) {
          try {
            p->engine.context.run();  // (the work guard keeps it running)
            return;
          } catch (const std::exception& e) {
            std::fprintf(stderr, "corio: the socket service's handler threw: %s\n", e.what());
          }
        }
      });
      p->thread = t.get_id();
      t.detach();
      instance.store(svc.release(), std::memory_order_release);
      return p;
    }();
    return *service;
  }
};

}  // namespace

void asio_reactor::state::forward(io_request& request, std::size_t length) {
  socket_service* svc = nullptr;
  try {
    svc = &socket_service::get();
  } catch (const std::system_error& e) {
    fail_later(request, e.code().category() == std::generic_category() && e.code().value() > 0 ? e.code().value()
                                                                                                : EAGAIN);
    return;
  }
  io_request* r = &request;
  state* owner = this;
  asio::post(svc->engine.context, [svc, r, owner, length] {
    state& engine = svc->engine;
    try {
      engine.owners.emplace(r, owner);
    } catch (...) {
      asio::post(owner->context, [owner, r] { owner->finish(*r, -ENOMEM); });
      return;
    }
    try {
      engine.start(*r, length);
    } catch (...) {
      engine.finish(*r, -ENOMEM);  // nothing was started (registration or handler memory)
    }
  });
}

void asio_reactor::state::cancel_forwarded(io_request& request, bool drain) noexcept {
  socket_service* svc = socket_service::instance.load(std::memory_order_acquire);
  if (svc == nullptr) return;
  io_request* r = &request;  // dereferenced by the service only while it still runs r
  try {
    asio::post(svc->engine.context, [svc, r, drain] {
      state& engine = svc->engine;
      if (engine.owners.find(r) == engine.owners.end()) return;  // completed already
      if (r->reactor_data != nullptr) {
        static_cast<asio::cancellation_signal*>(r->reactor_data)->emit(asio::cancellation_type::terminal);
      } else if (drain && r->fd >= 0 && static_cast<std::size_t>(r->fd) < engine.table.size()) {
        table_entry& e = engine.table[static_cast<std::size_t>(r->fd)];
        asio::error_code ignored;
        if (e.socket) e.socket->cancel(ignored);
        if (e.listener) e.listener->cancel(ignored);
      }
    });
  } catch (...) {
    // No memory for the handler: the operation runs to its end, as one that cannot be cancelled.
  }
}

int close_registered_socket(int fd) noexcept {
  socket_service* svc = socket_service::instance.load(std::memory_order_acquire);
  const auto close_here = [](socket_service* service, int number) noexcept {
    if (service != nullptr && number >= 0 && static_cast<std::size_t>(number) < service->engine.table.size()) {
      table_entry& e = service->engine.table[static_cast<std::size_t>(number)];
      if (e.socket || e.listener) {
        // The Asio object closes it: its operations end (operation_aborted), Asio forgets the
        // socket, and no object is left to close the number once Winsock reuses it.
        asio::error_code ec;
        if (e.socket) e.socket->close(ec);
        if (e.listener) e.listener->close(ec);
        e.socket.reset();
        e.listener.reset();
        e.generation = 0;
        e.foreign_waits = 0;
        return ec ? -to_result(ec, 0) : 0;
      }
    }
    return ::closesocket(static_cast<SOCKET>(number)) == 0 ? 0 : socket_error();
  };
  // Never registered anywhere (no service yet), or on the service's own thread: close it here.
  if (svc == nullptr || std::this_thread::get_id() == svc->thread) return close_here(svc, fd);
  struct closing {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    int error = 0;
  } c;
  try {
    asio::post(svc->engine.context, [svc, fd, &c, close_here] {
      const int error = close_here(svc, fd);
      std::lock_guard lock(c.mutex);
      c.error = error;
      c.done = true;
      c.done_cv.notify_one();
    });
  } catch (...) {
    return ::closesocket(static_cast<SOCKET>(fd)) == 0 ? 0 : socket_error();  // no memory for the handler
  }
  std::unique_lock lock(c.mutex);
  c.done_cv.wait(lock, [&c] { return c.done; });
  return c.error;
}
#endif

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
