// lib/asio_reactor_state.hpp - asio_reactor's state: the io_context, the socket table, and how
// each operation is started and finished. Private to lib/: included by asio_reactor.cpp and, on
// Windows, by asio_socket_service.cpp (the process's socket service, Windows' UDP and accept),
// the only translation units of corio that include Asio.
#pragma once

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

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#if defined(_WIN32)
#include <unordered_map>
#endif
#include <vector>

namespace corio::detail {

/// The Asio types and helpers the reactor's files share.
namespace asio_impl {

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

/// What a reactor registered with Asio for one descriptor number.
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
inline int to_result(const asio::error_code& ec, std::size_t n) noexcept {
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

}  // namespace asio_impl

struct asio_reactor::state {
  using protocol = asio_impl::protocol;
  using stream_socket = asio_impl::stream_socket;
  using acceptor = asio_impl::acceptor;
#if defined(ASIO_HAS_POSIX_STREAM_DESCRIPTOR)
  using stream_descriptor = asio_impl::stream_descriptor;
#endif
  using table_entry = asio_impl::table_entry;

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
  void finish(io_request& r, int result) noexcept;

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
  void hand_back(io_request& r, int result) noexcept;
  /// A worker: has the socket service start `request` (asio_socket_service.cpp).
  void forward(io_request& request, std::size_t length);
  /// A worker: has the socket service cancel `request` if it still runs it (`drain`: by
  /// cancelling every operation on its socket, for a request with no cancellation signal).
  void cancel_forwarded(io_request& request, bool drain) noexcept;
#endif
  /// Starts `request`'s Asio operation (its descriptor registered first), `length` bytes for a
  /// recv, send or read. On Windows on the socket service only.
  void start(io_request& request, std::size_t length);

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
  void submit_cancels() noexcept;

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

  /// Lets go of an entry's Asio objects without closing the descriptor (which belongs to a corio
  /// socket, or is closed already and its number perhaps reused).
  static void release(table_entry& e) noexcept;

  /// The entry registered for r's descriptor, (re)registered when missing, stale or of the wrong
  /// kind; null with `error` set when the descriptor cannot be registered.
  table_entry* entry_for(const io_request& r, int& error);

  /// Waits until r's descriptor is readable (`write` false) or writable, through whichever Asio
  /// object `e` holds, bound to r's cancellation slot, then calls `then` (or finishes r with the
  /// error, or cancelled while draining).
  template <class Then>
  void wait_ready(table_entry& e, io_request& r, bool write, Then then) {
    auto handler =
        asio::bind_cancellation_slot(slot_for(r), [this, &r, then](const asio::error_code& ec) mutable {
          if (ec || draining) {
            finish(r, ec ? asio_impl::to_result(ec, 0) : -ECANCELED);
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
  void poll_ready(table_entry& e, io_request& r);

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

  /// io_opcode::recvmsg and sendmsg, reactively: recvmsg() or sendmsg() on POSIX; on Windows
  /// recvfrom() or sendto() (r.address is a socket_message; the socket was made non-blocking when
  /// it was registered), in asio_socket_service.cpp.
  void transfer_message(io_request& r);

  /// io_opcode::accept, reactively (the listener is non-blocking): accept4() on POSIX, whose
  /// descriptors are close-on-exec as on io_uring (Asio's own accept does not set it). On Windows
  /// accept() (asio_socket_service.cpp), not Asio's async_accept (AcceptEx): the socket it accepts
  /// is tied to this worker's completion port and must be released to corio with
  /// NtSetInformationFile(FileReplaceCompletionInformation), which Wine 8 does not implement
  /// (every accept failed with EIO there: test/wine_repro/accept_release.cpp); a socket from
  /// accept() belongs to no completion port until a worker registers it, as a connected one does.
  void accept(acceptor&, io_request& r);

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
  void file_operation(io_request& r);

  /// The completion of a file job (result: perform_blocking_io's), or its cancellation before it
  /// ran (-ECANCELED). On this thread.
  void file_done(file_job& job, int result) noexcept;

  /// Cancels a file operation whose job has not started; one that runs completes as usual (a
  /// system call cannot be interrupted), as on io_uring.
  void cancel_file_operation(io_request& r) noexcept;

};

}  // namespace corio::detail
