// corio/net/tcp_stream.hpp - a connected TCP socket with awaitable reads and writes.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "corio/buffer_lease.hpp"
#include "corio/detail/file_descriptor.hpp"
#include "corio/detail/io_operation.hpp"
#include "corio/detail/recv_queue.hpp"
#include "corio/net/endpoint.hpp"
#include "corio/net/resolve.hpp"
#include "corio/task.hpp"

namespace corio::net {

class tcp_stream;

/// How tcp_stream::connect(host, ...) resolves and races its addresses (Happy Eyeballs). Value
/// type; pass it as you like (connect moves it into its coroutine, see resolve_options).
struct connect_options {
  /// RFC 8305's Connection Attempt Delay: the next address is tried this long after the previous
  /// attempt started, unless that attempt failed earlier (then at once). The RFC recommends
  /// 250 ms (its minimum 100 ms, maximum 2 s; corio takes any value, 0 and below start all
  /// attempts at once); Go's net.Dialer uses 300 ms (FallbackDelay).
  std::chrono::milliseconds attempt_delay{250};
  /// How the host is resolved (family, servers, resolver backend).
  resolve_options resolve{};
};

}  // namespace corio::net

namespace corio::detail {
/// The coroutines behind tcp_stream::connect(host, ...) (lib/net/tcp.cpp). `ec` null: throw.
CORIO_API task<net::tcp_stream> connect_host(std::string host, std::string service,
                                             net::connect_options options, std::error_code* ec);
CORIO_API task<net::tcp_stream> connect_any(std::vector<net::endpoint> addresses, std::string host,
                                            net::connect_options options, std::error_code* ec);
/// One buffer of a vectored send, laid out as POSIX's struct iovec (lib/net/tcp.cpp checks it),
/// so that this header needs no system header.
struct io_vector {
  void* base = nullptr;
  std::size_t length = 0;
};
}  // namespace corio::detail

namespace corio::net {

/// Awaiter of read_some on a stream socket (tcp_stream, unix_stream): the number of bytes read, 0
/// at end of stream. `what` starts the message of the std::system_error it throws.
///
/// On a tcp_stream that read_lease gave a multishot receive (`queue` non-null), it copies from the
/// bytes already received and queued, or parks until some arrive (detail::start_recv), so that
/// the bytes keep their order; otherwise it is one plain receive into `buffer`.
class CORIO_API read_some_operation : public detail::io_operation {
 public:
  /// Made by read_some() of tcp_stream and unix_stream; `ec` null: the throwing form.
  read_some_operation(const detail::file_descriptor& socket, std::span<std::byte> buffer, std::error_code* ec,
                      const char* what = "corio::net::tcp_stream::read_some",
                      detail::recv_queue* queue = nullptr) noexcept;
  read_some_operation(const read_some_operation&) = delete;
  read_some_operation& operator=(const read_some_operation&) = delete;
  /// A frame destroyed while parked on the queue (shutdown) leaves it; a chunk handed over and
  /// never read goes back.
  ~read_some_operation() {
    if (queue_ != nullptr) detail::abandon_recv(*queue_, state_);
  }

  /// Copies bytes the stream's multishot receive already queued (no suspension), parks on that
  /// queue, or submits one receive to the worker's reactor.
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    if (queue_ != nullptr) {
      state_ = detail::recv_state::parked;  // written before the task may be published
      const detail::recv_start how = detail::start_recv(*queue_, h, detail::binding_of(h), detail::stop_of(h));
      if (how == detail::recv_start::parked) return true;  // nothing of the frame is touched after this
      state_ = detail::recv_state::none;
      if (how == detail::recv_start::ready) {
        state_ = detail::recv_state::ready;
        return false;
      }
      queue_ = nullptr;  // the plain receive
      if (how == detail::recv_start::busy) {
        fail_early(EBUSY);
        return false;
      }
    }
    return io_operation::await_suspend(h);
  }
  /// For corio::timeout(): as io_operation::link_deadline, but false when the stream's multishot
  /// receive serves this worker (the read then parks on the queue, with no request of its own for
  /// a deadline to follow): the timeout then uses the wheel's timer.
  bool link_deadline(detail::io_deadline& d, std::chrono::steady_clock::time_point deadline) noexcept {
    if (queue_ != nullptr && detail::multishot_recv_here()) return false;
    return io_operation::link_deadline(d, deadline);
  }
  /// Returns the bytes read, 0 at end of stream. Throws std::system_error (ECONNRESET, ...) or
  /// operation_cancelled; in the error_code form, sets it and returns 0.
  std::size_t await_resume() {
    if (queue_ != nullptr && state_ != detail::recv_state::none) take_queued();
    auto n = finish();
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }

 private:
  /// The queue path's result: copies the chunk handed over (and more queued bytes) into the buffer.
  void take_queued() noexcept;
  detail::recv_queue* queue_;  ///< the stream's multishot receive (null: the plain receive)
  detail::recv_state state_ = detail::recv_state::none;
};

/// Awaiter of read_lease on a stream socket (tcp_stream): a buffer_lease holding the bytes one
/// receive got (at least one), or an empty lease at end of stream. `what` starts the message of
/// the std::system_error it throws.
///
/// On an io_uring worker with a provided buffer ring, the receive is submitted with
/// IOSQE_BUFFER_SELECT: no buffer is attached while it waits, the kernel picks one of the
/// worker's ring when data arrives, and the lease hands that buffer over without a copy (up to
/// the ring's buffer size, 16 KiB by default, per read). When the ring ran dry (ENOBUFS) the
/// worker puts back the buffers released elsewhere or grows the ring (doubling, up to its
/// bound) and the receive is tried again; when the ring stays empty at its bound, the receive is
/// tried again into a heap buffer of heap_buffer_bytes: no byte is ever dropped (the bytes wait in
/// the socket meanwhile). Without a ring (the Asio reactor, CORIO_URING_NO_BUFRING=1, a kernel
/// before 5.19) it reads into a heap buffer of heap_buffer_bytes allocated when the operation is
/// awaited and owned by the lease: on those paths a waiting read holds that buffer.
///
/// Cancellation and errors as read_some_operation; an allocation failure is ENOMEM. A buffer the
/// task never took (its frame destroyed while the read was done) goes back to its ring.
class CORIO_API read_lease_operation : public detail::io_operation {
 public:
  /// Bytes of the heap buffer a read uses where no ring buffer is available.
  static constexpr std::size_t heap_buffer_bytes = 16384;

  /// `queue`: the stream's multishot receive state, made on first use where the worker has
  /// multishot receive (null: never, as for a unix_stream).
  read_lease_operation(const detail::file_descriptor& socket, std::error_code* ec,
                       const char* what = "corio::net::tcp_stream::read_lease",
                       detail::recv_queue_handle* queue = nullptr) noexcept;
  read_lease_operation(const read_lease_operation&) = delete;
  read_lease_operation& operator=(const read_lease_operation&) = delete;
  ~read_lease_operation();

  /// Takes a queued chunk or parks on the stream's multishot receive where there is one;
  /// otherwise picks the buffer's source (the worker's ring, or a heap buffer) and submits; false
  /// (resume at once with the chunk, ENOMEM, or cancelled) when it does not wait.
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    if (handle_ != nullptr) {
      queue_ = handle_->get_or_make(request_.fd, request_.generation);
      if (queue_ != nullptr) {
        state_ = detail::recv_state::parked;  // written before the task may be published
        const detail::recv_start how = detail::start_recv(*queue_, h, detail::binding_of(h), detail::stop_of(h));
        if (how == detail::recv_start::parked) return true;  // nothing of the frame is touched after this
        state_ = detail::recv_state::none;
        if (how == detail::recv_start::ready) {
          state_ = detail::recv_state::ready;
          return false;
        }
        queue_ = nullptr;
        if (how == detail::recv_start::busy) {
          fail_early(EBUSY);
          return false;
        }
      }
    }
    if (!prepare()) return false;  // the plain receive
    return io_operation::await_suspend(h);
  }
  /// For corio::timeout(): as io_operation::link_deadline, but false when the stream gets (or
  /// has) a multishot receive on this worker: the read then parks on its queue and the timeout
  /// uses the wheel's timer.
  bool link_deadline(detail::io_deadline& d, std::chrono::steady_clock::time_point deadline) noexcept {
    if (handle_ != nullptr && detail::multishot_recv_here()) return false;
    return io_operation::link_deadline(d, deadline);
  }
  /// The lease; empty at end of stream (and after an error reported in the error_code form).
  buffer_lease await_resume();

 private:
  bool prepare() noexcept;
  static bool on_complete(detail::io_request& request, int result) noexcept;
  std::byte* heap_ = nullptr;  ///< the heap buffer of a read without a ring buffer
  detail::recv_queue_handle* handle_;  ///< the stream's (null: the plain receive)
  detail::recv_queue* queue_ = nullptr;  ///< the queue serving this read (null: the plain receive)
  detail::recv_state state_ = detail::recv_state::none;
};

/// Awaiter of write_some on a stream socket (tcp_stream, unix_stream): the number of bytes one send accepted
/// (at least one for non-empty data; 0 for empty data). Cancelled while the send is in flight, it
/// either sent nothing (operation_cancelled, or std::errc::operation_canceled in the error_code
/// form) or returns the count sent. `what` starts the message of the std::system_error it throws.
class CORIO_API write_some_operation : public detail::io_operation {
 public:
  /// Made by write_some() of tcp_stream and unix_stream; `ec` null: the throwing form.
  write_some_operation(const detail::file_descriptor& socket, std::span<const std::byte> data, std::error_code* ec,
                       const char* what = "corio::net::tcp_stream::write_some") noexcept;
  /// Returns the bytes sent. Throws std::system_error (EPIPE, ECONNRESET, ...) or
  /// operation_cancelled; in the error_code form, sets it and returns 0.
  std::size_t await_resume() {
    auto n = finish();
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }
};

/// Awaiter of write_all on a stream socket (tcp_stream, unix_stream): the number of bytes written, which is all of them unless an
/// error was reported through the error_code form. Cancelled (see detail::io_operation) while a
/// send is in flight, the send is cancelled; cancelled between two sends, no further send starts.
/// Either way, once any byte went out the stream holds a prefix of `data`: the throwing form
/// throws operation_cancelled, the error_code form reports std::errc::operation_canceled and
/// returns the count sent. A send that completed is never undone.
class CORIO_API write_all_operation : public detail::io_operation {
 public:
  /// Made by write_all() of tcp_stream and unix_stream; `ec` null: the throwing form.
  write_all_operation(const detail::file_descriptor& socket, std::span<const std::byte> data, std::error_code* ec,
                      const char* what = "corio::net::tcp_stream::write_all") noexcept;
  /// True for empty data or an early failure: nothing to wait for.
  bool await_ready() const noexcept { return request_.result < 0 || request_.length == 0; }
  /// Returns the bytes written (all of them, or in the error_code form those sent before the
  /// error). Throws std::system_error or operation_cancelled.
  std::size_t await_resume() {
    finish();
    return request_.transferred;
  }

 private:
  static bool on_complete(detail::io_request& request, int result) noexcept;
};

/// Awaiter of the vectored write_all on a stream socket (tcp_stream, unix_stream): writes every
/// buffer of `buffers`, in order, as if concatenated; yields the byte count, which is the total
/// unless an error was reported through the error_code form (then the bytes sent before it, a
/// prefix of the concatenation).
///
/// Each attempt is one sendmsg (io_uring IORING_OP_SENDMSG; Asio: sendmsg with MSG_DONTWAIT once
/// the socket is writable) of up to max_vectors buffers, MSG_NOSIGNAL. After a short send the
/// reactor advances through the buffers and resubmits the rest itself, without resuming the
/// task, until every byte is sent, an error, or a cancellation: the rules of write_all_operation
/// (a cancelled write leaves a prefix; the throwing form throws operation_cancelled, the
/// error_code form reports std::errc::operation_canceled with the count). Empty buffers are
/// skipped; no buffer or only empty ones complete at once with 0 and no system call. More than
/// max_vectors non-empty buffers are sent in several sendmsg calls. On Windows, where the
/// reactor has no sendmsg for streams, each buffer is one send (or several, after short sends).
///
/// The awaiter holds the iovec array (inline for a few buffers, allocated once for more: an
/// allocation failure is ENOMEM) and the msghdr. The span of buffers and their bytes must stay
/// alive until the co_await returns; the free corio::write_all(stream, buffers) copies the span
/// for you. Not copyable or movable (the request points into it). Design: writev(2)/sendmsg(2),
/// Go's net.Buffers.WriteTo (one writev per call), Tokio's AsyncWrite::poll_write_vectored.
class CORIO_API write_vectored_operation : public detail::io_operation {
 public:
  /// Buffers per sendmsg: IOV_MAX on Linux (and the BSDs), the most one call accepts.
  static constexpr std::size_t max_vectors = 1024;
  /// Buffers kept inside the awaiter; more are allocated.
  static constexpr std::size_t inline_vectors = 8;

  /// Made by the vectored write_all() of tcp_stream and unix_stream; `ec` null: the throwing form.
  write_vectored_operation(const detail::file_descriptor& socket, std::span<const std::span<const std::byte>> buffers,
                           std::error_code* ec, const char* what = "corio::net::tcp_stream::write_all") noexcept;
  write_vectored_operation(const write_vectored_operation&) = delete;
  write_vectored_operation& operator=(const write_vectored_operation&) = delete;

  /// Ready at once after an early failure, or when there is nothing to send.
  bool await_ready() const noexcept { return request_.result < 0 || loaded_ == 0; }
  /// Returns the bytes written: the total, or in the error_code form a prefix sent before the
  /// error. Throws std::system_error or operation_cancelled.
  std::size_t await_resume() {
    finish();
    return request_.transferred;
  }

 private:
  static bool on_complete(detail::io_request& request, int result) noexcept;
  static write_vectored_operation& owner_of(detail::io_request& request) noexcept;
  /// Fills the iovec array from buffers_[next_...], skipping empty buffers; false when none is left.
  bool load() noexcept;
  /// Moves past `n` bytes sent from vectors_[first_...].
  void advance(std::size_t n) noexcept;
  /// Points the request at the unsent part: the msghdr over vectors_[first_, loaded_) (Windows:
  /// a send of vectors_[first_]).
  void aim() noexcept;

  std::span<const std::span<const std::byte>> buffers_;
  std::size_t next_ = 0;      ///< the first buffer not loaded into the iovec array yet
  std::size_t first_ = 0;     ///< the first iovec with bytes left to send
  std::size_t loaded_ = 0;    ///< iovecs loaded for the current batch
  std::size_t capacity_ = 0;  ///< the iovec array's size
  detail::io_vector* vectors_ = nullptr;
  std::unique_ptr<detail::io_vector[]> heap_;
  std::array<detail::io_vector, inline_vectors> inline_{};
  alignas(8) std::array<std::byte, 64> header_{};  ///< a struct msghdr (lib/net/tcp.cpp checks it fits)
};

/// Awaiter of tcp_stream::connect: the connected stream (empty after an error in the error_code
/// form). The socket is opened (and bound, when a local endpoint is given) in the constructor; an
/// error there is reported when the awaiter is awaited.
class CORIO_API connect_operation : public detail::io_operation {
 public:
  /// `local` null or unspecified: no bind, the kernel picks the source address and port.
  connect_operation(const endpoint& remote, const endpoint* local, std::error_code* ec) noexcept;
  /// Returns the connected stream. Throws std::system_error (ECONNREFUSED, ETIMEDOUT, ...) or
  /// operation_cancelled; in the error_code form, sets it and returns an empty stream.
  tcp_stream await_resume();

 private:
  endpoint remote_;
  detail::file_descriptor socket_;
};

/// Which directions shutdown() closes (shutdown(2)'s SHUT_RD, SHUT_WR, SHUT_RDWR).
enum class shutdown_type { receive, send, both };

/// A connected TCP socket. Move-only; the descriptor is closed exactly once, by close() or the
/// destructor. Every operation has a throwing form (std::system_error carrying the errno) and a
/// form taking `std::error_code&` for paths that must not throw; that form clears the code on
/// success. Operations on a closed or moved-from stream throw std::system_error(EBADF) (the
/// error_code forms report EBADF).
///
/// EINTR and EAGAIN never reach a read or a write: the operation is tried again (as Asio's
/// reactor operations and Go's netpoller do), so an error a read or write reports is final for
/// that call. A connect reports them (see connect()).
///
/// One task may read while another writes on the same stream; two concurrent reads (or two
/// concurrent writes) are not supported. Writes never raise SIGPIPE: a peer that reset the
/// connection is an EPIPE or ECONNRESET error. Reads and writes are awaitables that must be
/// `co_await`ed inside a task on a runtime; each is one io_uring operation (IORING_OP_RECV,
/// IORING_OP_SEND with MSG_NOSIGNAL), the data stays in the caller's buffer until it completes.
/// Buffers must stay alive until the co_await returns (they do, when they live in the task).
class CORIO_API tcp_stream {
 public:
  /// A closed stream (connect() or an accept makes an open one).
  tcp_stream() noexcept = default;
  /// Adopts a connected stream socket.
  explicit tcp_stream(detail::file_descriptor socket) noexcept : socket_(std::move(socket)) {}
  /// Takes over the other stream's socket; the other is left closed.
  tcp_stream(tcp_stream&&) noexcept = default;
  /// Closes this stream first (see close()), then takes `other`'s socket.
  tcp_stream& operator=(tcp_stream&& other) noexcept {
    if (this != &other) {
      close();
      socket_ = std::move(other.socket_);
      recv_ = std::move(other.recv_);
    }
    return *this;
  }
  ~tcp_stream() = default;

  /// Connects to `remote`; `co_await` yields the stream. Throws std::system_error
  /// (ECONNREFUSED, ENETUNREACH, EMFILE, ...), EINTR and EAGAIN included: a connect attempt is
  /// not restarted on its socket (retry with a new connect). The socket it made is closed.
  [[nodiscard]] static connect_operation connect(const endpoint& remote) noexcept {
    return connect_operation{remote, nullptr, nullptr};
  }
  /// As connect(remote), reporting failure in `ec` and yielding an empty stream.
  [[nodiscard]] static connect_operation connect(const endpoint& remote, std::error_code& ec) noexcept {
    return connect_operation{remote, nullptr, &ec};
  }
  /// Connects to `remote` from `local`: the socket is bound to `local` (bind(2)) before it
  /// connects, so the connection leaves from that address, and from that port unless it is 0.
  /// With port 0 the kernel picks the port when it connects (IP_BIND_ADDRESS_NO_PORT on Linux),
  /// so the port range is shared per destination as with an unbound connect; binding several
  /// source addresses (127.0.0.2, 127.0.0.3, ...) multiplies the connections one client can open
  /// to one server. An unspecified `local` (default-constructed) binds nothing, as connect(remote)
  /// does. The bind is synchronous and the same on every reactor. Throws std::system_error:
  /// EAFNOSUPPORT when `local` is not of `remote`'s family, bind's EADDRINUSE or EADDRNOTAVAIL,
  /// and connect's errors. Go's net.Dialer.LocalAddr, Tokio's TcpSocket::bind before connect.
  [[nodiscard]] static connect_operation connect(const endpoint& remote, const endpoint& local) noexcept {
    return connect_operation{remote, &local, nullptr};
  }
  /// As connect(remote, local), reporting failure in `ec` and yielding an empty stream.
  [[nodiscard]] static connect_operation connect(const endpoint& remote, const endpoint& local,
                                                 std::error_code& ec) noexcept {
    return connect_operation{remote, &local, &ec};
  }

  /// Resolves `host` (a name, "localhost", a numeric address; see net::resolve) and connects to
  /// `port` on the first of its addresses that answers, racing them as RFC 8305 (Happy Eyeballs
  /// v2) says: the addresses are ordered by family in turn, IPv6 first when there is any (RFC
  /// 8305 section 4), one attempt starts, and the next starts options.attempt_delay (250 ms) after
  /// the previous one started, or at once when every attempt started so far has failed. The first
  /// connection wins; the attempts still running are cancelled and awaited before the stream is
  /// returned, so no socket leaks. Throws the resolver's std::system_error (resolve_error, naming
  /// the host) when the name does not resolve, or, when every attempt failed, a
  /// std::system_error carrying the first attempt's error whose message names the host and every
  /// address tried ("corio: connect to localhost:9 failed (tried [::1]:9: Connection refused,
  /// 127.0.0.1:9: Connection refused)"). Cancellation (the task's stop, corio::timeout) cancels
  /// the resolve or every attempt and throws operation_cancelled. Design: RFC 8305, Go's
  /// net.Dialer (DualStack, FallbackDelay), Tokio's TcpStream::connect over lookup_host.
  [[nodiscard("co_await it")]] static task<tcp_stream> connect(std::string_view host, std::uint16_t port,
                                                                connect_options options = {}) {
    return detail::connect_host(std::string{host}, std::to_string(port), std::move(options), nullptr);
  }
  /// As connect(host, port, options), reporting failure in `ec` (cleared on success) and yielding
  /// an empty stream; cancellation still throws. `ec` must outlive the co_await.
  [[nodiscard("co_await it")]] static task<tcp_stream> connect(std::string_view host, std::uint16_t port,
                                                                std::error_code& ec, connect_options options = {}) {
    return detail::connect_host(std::string{host}, std::to_string(port), std::move(options), &ec);
  }
  /// As connect(host, port), from "host:port" or "[v6]:port"; the port may be a service name
  /// ("example.com:http"). Text without a port fails with std::errc::invalid_argument.
  [[nodiscard("co_await it")]] static task<tcp_stream> connect(std::string_view host_port,
                                                                connect_options options = {});
  /// As connect(host_port, options), reporting failure in `ec`.
  [[nodiscard("co_await it")]] static task<tcp_stream> connect(std::string_view host_port, std::error_code& ec,
                                                                connect_options options = {});
  /// Happy Eyeballs over addresses already resolved (in the given order, reordered by family as
  /// above): what connect(host, port) does after its resolve. Empty `addresses` fails with
  /// std::errc::invalid_argument. Errors name the addresses tried.
  [[nodiscard("co_await it")]] static task<tcp_stream> connect(std::vector<endpoint> addresses,
                                                                connect_options options = {}) {
    return detail::connect_any(std::move(addresses), std::string{}, std::move(options), nullptr);
  }
  /// As connect(addresses, options), reporting failure in `ec`.
  [[nodiscard("co_await it")]] static task<tcp_stream> connect(std::vector<endpoint> addresses, std::error_code& ec,
                                                                connect_options options = {}) {
    return detail::connect_any(std::move(addresses), std::string{}, std::move(options), &ec);
  }

  /// Reads at least one byte into `buffer` once some are available; yields the count, or 0 at end
  /// of stream (the peer shut down its side) or for an empty buffer.
  [[nodiscard]] read_some_operation read_some(std::span<std::byte> buffer) {
    return read_some_operation{checked(), buffer, nullptr, "corio::net::tcp_stream::read_some", recv_.get()};
  }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  /// Yields 0 on error.
  [[nodiscard]] read_some_operation read_some(std::span<std::byte> buffer, std::error_code& ec) noexcept {
    return read_some_operation{socket_, buffer, &ec, "corio::net::tcp_stream::read_some", recv_.get()};
  }
  /// As read_some(std::span<std::byte>), into chars.
  [[nodiscard]] read_some_operation read_some(std::span<char> buffer) {
    return read_some(std::as_writable_bytes(buffer));
  }
  /// As read_some(std::span<std::byte>, std::error_code&), into chars.
  [[nodiscard]] read_some_operation read_some(std::span<char> buffer, std::error_code& ec) noexcept {
    return read_some(std::as_writable_bytes(buffer), ec);
  }

  /// Reads at least one byte once some are available and hands over the buffer they were received
  /// in, without a copy: yields a buffer_lease (see read_lease_operation), empty at end of stream.
  /// On io_uring the buffer comes from the worker's provided buffer ring only when data arrives,
  /// so a connection waiting in read_lease holds no read buffer; release the lease (or let it go)
  /// once its bytes are used. read_some keeps reading into the caller's buffer. Throws
  /// std::system_error as read_some does.
  ///
  /// On io_uring (Linux 6.0+) the first read_lease gives the stream a multishot receive
  /// (IORING_RECV_MULTISHOT) armed on the worker's ring: the kernel keeps receiving into ring
  /// buffers as data arrives, with no submission per read; what arrives while no read waits is
  /// queued on the stream (up to 8 buffers, then the multishot stops and the socket's receive
  /// buffer holds the rest until the next read). read_some on such a stream reads the queued bytes
  /// first (copying them), so the order is kept. CORIO_URING_NO_MULTISHOT_RECV=1 when the runtime
  /// starts keeps one receive per read_lease. A cancelled read_lease leaves what arrives for it
  /// queued for the next read. See docs/internals.md, "Multishot receive".
  [[nodiscard]] read_lease_operation read_lease() {
    return read_lease_operation{checked(), nullptr, "corio::net::tcp_stream::read_lease", &recv_};
  }
  /// As read_lease(), reporting failure in `ec` (cleared on success) and yielding an empty lease.
  [[nodiscard]] read_lease_operation read_lease(std::error_code& ec) noexcept {
    return read_lease_operation{socket_, &ec, "corio::net::tcp_stream::read_lease", &recv_};
  }

  /// Writes some of `data` in one send (IORING_OP_SEND, MSG_NOSIGNAL); yields the count sent, at
  /// least 1 for non-empty data (a short write is normal when the socket's send buffer is
  /// nearly full), 0 for empty data. The stream concept's write (corio/io.hpp); write_all loops
  /// it for you. Go's net.Conn.Write for one syscall, Tokio's AsyncWrite::poll_write.
  [[nodiscard]] write_some_operation write_some(std::span<const std::byte> data) {
    return write_some_operation{checked(), data, nullptr};
  }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  /// Yields 0 on error.
  [[nodiscard]] write_some_operation write_some(std::span<const std::byte> data, std::error_code& ec) noexcept {
    return write_some_operation{socket_, data, &ec};
  }

  /// Writes all of `data`, in as many sends as the kernel needs; yields the byte count. In the
  /// error_code form the count tells how much was written before the error.
  [[nodiscard]] write_all_operation write_all(std::span<const std::byte> data) {
    return write_all_operation{checked(), data, nullptr};
  }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  /// Yields the bytes written before the error.
  [[nodiscard]] write_all_operation write_all(std::span<const std::byte> data, std::error_code& ec) noexcept {
    return write_all_operation{socket_, data, &ec};
  }
  /// As write_all(std::span<const std::byte>), for text.
  [[nodiscard]] write_all_operation write_all(std::string_view data) {
    return write_all(std::as_bytes(std::span{data.data(), data.size()}));
  }
  /// As write_all(std::span<const std::byte>, std::error_code&), for text.
  [[nodiscard]] write_all_operation write_all(std::string_view data, std::error_code& ec) noexcept {
    return write_all(std::as_bytes(std::span{data.data(), data.size()}), ec);
  }
  /// Vectored write: writes every buffer of `buffers`, in order, as if concatenated, in as few
  /// sendmsg calls as the kernel needs (one for up to 1024 buffers that fit in the socket's send
  /// buffer); yields the byte count. See write_vectored_operation. `buffers` and the bytes must
  /// outlive the co_await. corio::write_all(stream, buffers) uses it.
  [[nodiscard]] write_vectored_operation write_all(std::span<const std::span<const std::byte>> buffers) {
    return write_vectored_operation{checked(), buffers, nullptr};
  }
  /// As write_all(buffers), reporting failure in `ec` (cleared on success); yields the bytes
  /// written before the error.
  [[nodiscard]] write_vectored_operation write_all(std::span<const std::span<const std::byte>> buffers,
                                                   std::error_code& ec) noexcept {
    return write_vectored_operation{socket_, buffers, &ec};
  }

  /// Shuts down one or both directions (a FIN for `send`); does not close the descriptor.
  void shutdown(shutdown_type how = shutdown_type::both);
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  void shutdown(shutdown_type how, std::error_code& ec) noexcept;

  /// Closes the descriptor now (the destructor would otherwise). Idempotent: closing a closed stream
  /// does nothing. Must not be called while an operation on this stream is in flight. Bytes
  /// received by a multishot receive and not read yet are dropped; with one armed, the peer sees
  /// the close once the worker holding it has cancelled it (at its next poll).
  void close() noexcept {
    recv_.reset();
    socket_.reset();
  }

  /// Turns Nagle's algorithm off (`true`) or on (TCP_NODELAY).
  void set_nodelay(bool on);
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  void set_nodelay(bool on, std::error_code& ec) noexcept;

  /// The local and the peer's address. Throw std::system_error (EBADF on a closed stream).
  [[nodiscard]] endpoint local_endpoint() const;
  /// The peer's address (see local_endpoint()); ENOTCONN when not connected.
  [[nodiscard]] endpoint remote_endpoint() const;

  /// True until close() (or a move) closed the stream.
  [[nodiscard]] bool is_open() const noexcept { return socket_.valid(); }
  /// The descriptor, -1 when closed. Ownership stays with the stream.
  [[nodiscard]] int native_handle() const noexcept { return socket_.get(); }

 private:
  const detail::file_descriptor& checked() const;
  detail::file_descriptor socket_;
  detail::recv_queue_handle recv_;  ///< the multishot receive, once read_lease made one (after socket_: destroyed first)
};

}  // namespace corio::net
