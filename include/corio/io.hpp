// corio/io.hpp - streams: the readable and writable stream concepts, read_exact and write_all over
// any stream (vectored writes too), buffered_reader, buffered_writer and copy.
//
// Design: Go's io.Reader/io.Writer, io.ReadFull, io.Copy and bufio.Reader/bufio.Writer; Tokio's
// AsyncRead/AsyncWrite, AsyncReadExt::read_exact, AsyncWriteExt::write_all, AsyncBufReadExt,
// BufReader/BufWriter and tokio::io::copy.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "corio/detail/io_operation.hpp"
#include "corio/detail/splice.hpp"
#include "corio/errors.hpp"
#include "corio/task.hpp"

namespace corio {

// --- errors ----------------------------------------------------------------------------------

/// Errors of corio's stream layer that have no errno of their own (category stream_category(),
/// name "corio.stream"). Errors of the underlying streams keep their errno (io_error_category()).
enum class stream_errc {
  /// The stream ended before the bytes asked for arrived: read_exact, buffered_reader::read_exact
  /// (Go's io.ErrUnexpectedEOF, Rust's ErrorKind::UnexpectedEof). The message says how many bytes
  /// of how many were read.
  unexpected_eof = 1,
  /// A write_some accepted 0 bytes of non-empty data, so write_all cannot make progress (Rust's
  /// ErrorKind::WriteZero, Go's io.ErrShortWrite).
  write_zero = 2,
};

namespace detail {
class stream_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "corio.stream"; }
  std::string message(int value) const override {
    switch (static_cast<stream_errc>(value)) {
      case stream_errc::unexpected_eof:
        return "unexpected end of stream";
      case stream_errc::write_zero:
        return "the stream accepted no bytes";
    }
    return "unknown corio.stream error";
  }
};
}  // namespace detail

/// The category of stream_errc. One instance per program.
CORIO_API inline const std::error_category& stream_category() noexcept {
  static const detail::stream_category_impl category;
  return category;
}

/// Makes `std::error_code ec = stream_errc::unexpected_eof` and `ec == stream_errc::...` work.
inline std::error_code make_error_code(stream_errc e) noexcept {
  return {static_cast<int>(e), stream_category()};
}

}  // namespace corio

// Not corio's API: std's trait, which Doxygen cannot place; hidden from the reference.
/// \cond
template <>
struct std::is_error_code_enum<corio::stream_errc> : std::true_type {};
/// \endcond

namespace corio {

// --- concepts --------------------------------------------------------------------------------

/// True when `co_await a` (inside a corio task) yields something convertible to T.
template <class A, class T>
concept awaitable_of = requires(A&& a) {
  { detail::promise_base::get_awaiter(std::forward<A>(a)).await_resume() } -> std::convertible_to<T>;
};

/// A stream bytes are read from: `co_await s.read_some(buffer)` reads at least one byte once some
/// are available and yields the count, or 0 at end of stream (or for an empty buffer); it throws
/// std::system_error on error (corio::operation_cancelled when cancelled). The form taking a
/// trailing `std::error_code&` does not throw: it reports the error there (clearing it on
/// success) and yields the bytes read, 0 on error. tcp_stream, buffered_reader and the other
/// streams of issue 18 (unix_stream, fs::file) model it. Go's io.Reader, Tokio's AsyncRead.
template <class S>
concept readable_stream = requires(S& s, std::span<std::byte> buffer, std::error_code& ec) {
  { s.read_some(buffer) } -> awaitable_of<std::size_t>;
  { s.read_some(buffer, ec) } -> awaitable_of<std::size_t>;
};

/// A stream bytes are written to: `co_await s.write_some(data)` writes at least one byte of
/// non-empty data and yields the count (a short write is allowed); errors as for
/// readable_stream. tcp_stream and buffered_writer model it. Go's io.Writer (which forbids short
/// writes without an error: here write_all loops), Tokio's AsyncWrite::poll_write.
template <class S>
concept writable_stream = requires(S& s, std::span<const std::byte> data, std::error_code& ec) {
  { s.write_some(data) } -> awaitable_of<std::size_t>;
  { s.write_some(data, ec) } -> awaitable_of<std::size_t>;
};

/// A stream over one descriptor: `s.native_handle()` yields it (an int, -1 when closed). copy()
/// checks it on both ends to choose a kernel fast path (splice). Buffered streams do not model
/// it: bytes in their buffers would be skipped.
template <class S>
concept native_stream = requires(const S& s) {
  { s.native_handle() } -> std::convertible_to<int>;
};

/// One buffer of a vectored write (the C++ spelling of struct iovec).
using const_buffer = std::span<const std::byte>;

namespace detail {

/// A stream with its own write_all (tcp_stream: the short sends are resubmitted by the reactor,
/// without resuming the task); the free write_all uses it.
template <class S>
concept has_write_all = requires(S& s, std::span<const std::byte> data, std::error_code& ec) {
  { s.write_all(data) } -> awaitable_of<std::size_t>;
  { s.write_all(data, ec) } -> awaitable_of<std::size_t>;
};

/// A stream with its own vectored write_all (tcp_stream, unix_stream: one sendmsg per attempt).
template <class S>
concept has_vectored_write_all = requires(S& s, std::span<const const_buffer> buffers, std::error_code& ec) {
  { s.write_all(buffers) } -> awaitable_of<std::size_t>;
  { s.write_all(buffers, ec) } -> awaitable_of<std::size_t>;
};

/// Reports `code`: into *ec when given, otherwise by throwing std::system_error(code, what).
inline void report(std::error_code* ec, std::error_code code, const std::string& what) {
  if (ec == nullptr) throw std::system_error(code, what);
  *ec = code;
}

inline std::string eof_message(const char* what, std::size_t got, std::size_t wanted) {
  return std::string(what) + ": end of stream after " + std::to_string(got) + " of " +
         std::to_string(wanted) + " bytes";
}

/// One read_some, throwing (ec null) or into *ec.
template <class S>
task<std::size_t> read_some_of(S* s, std::span<std::byte> buffer, std::error_code* ec) {
  if (ec == nullptr) co_return co_await s->read_some(buffer);
  co_return co_await s->read_some(buffer, *ec);
}

/// One write_some, throwing (ec null) or into *ec.
template <class S>
task<std::size_t> write_some_of(S* s, std::span<const std::byte> data, std::error_code* ec) {
  if (ec == nullptr) co_return co_await s->write_some(data);
  co_return co_await s->write_some(data, *ec);
}

template <class S>
task<std::size_t> read_exact_loop(S* s, std::span<std::byte> buffer, std::error_code* ec, const char* what) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    const std::size_t n = co_await read_some_of(s, buffer.subspan(done), ec);
    if (ec != nullptr && *ec) co_return done;
    if (n == 0) {
      report(ec, make_error_code(stream_errc::unexpected_eof), eof_message(what, done, buffer.size()));
      co_return done;
    }
    done += n;
  }
  if (ec != nullptr) ec->clear();
  co_return done;
}

template <class S>
task<std::size_t> write_all_loop(S* s, std::span<const std::byte> data, std::error_code* ec) {
  std::size_t done = 0;
  while (done < data.size()) {
    const std::size_t n = co_await write_some_of(s, data.subspan(done), ec);
    if (ec != nullptr && *ec) co_return done;
    if (n == 0) {
      report(ec, make_error_code(stream_errc::write_zero),
             "corio::write_all: the stream accepted 0 bytes after " + std::to_string(done) + " of " +
                 std::to_string(data.size()));
      co_return done;
    }
    done += n;
  }
  if (ec != nullptr) ec->clear();
  co_return done;
}

/// write_all on any writable stream: the stream's own write_all when it has one, else the loop.
template <class S>
task<std::size_t> write_all_of(S* s, std::span<const std::byte> data, std::error_code* ec) {
  if constexpr (has_write_all<S>) {
    if (ec == nullptr) co_return co_await s->write_all(data);
    co_return co_await s->write_all(data, *ec);
  } else {
    co_return co_await write_all_loop(s, data, ec);
  }
}

template <class S>
task<std::size_t> write_all_vectored(S* s, std::vector<const_buffer> buffers, std::error_code* ec) {
  std::size_t done = 0;
  for (const_buffer b : buffers) {
    const std::size_t n = co_await write_all_of(s, b, ec);
    done += n;
    if (ec != nullptr && *ec) co_return done;
  }
  if (ec != nullptr) ec->clear();
  co_return done;
}

template <class S>
task<std::size_t> write_all_vectored_member(S* s, std::vector<const_buffer> buffers, std::error_code* ec) {
  const std::span<const const_buffer> view{buffers};
  if (ec == nullptr) co_return co_await s->write_all(view);
  co_return co_await s->write_all(view, *ec);
}

/// Where a buffered_reader or buffered_writer keeps its stream: the stream itself when `Stream`
/// is a stream type (owned), a pointer to it when `Stream` is a reference (borrowed).
template <class Stream>
class stream_slot {
 public:
  using stream_type = std::remove_reference_t<Stream>;
  static constexpr bool owns = !std::is_reference_v<Stream>;
  /// What the constructor takes: `S&` to borrow, `S&&` to own.
  using argument = std::conditional_t<owns, stream_type&&, stream_type&>;

  explicit stream_slot(argument s) : storage_(take(s)) {}
  stream_slot(stream_slot&&) = default;
  stream_slot& operator=(stream_slot&&) = default;
  stream_type& get() noexcept {
    if constexpr (owns)
      return storage_;
    else
      return *storage_;
  }

 private:
  static decltype(auto) take(stream_type& s) noexcept {
    if constexpr (owns)
      return std::move(s);
    else
      return &s;
  }
  std::conditional_t<owns, stream_type, stream_type*> storage_;
};

}  // namespace detail

// --- read_exact, write_all -------------------------------------------------------------------

/// Reads exactly `buffer.size()` bytes from `stream` (as many read_some calls as needed); yields
/// buffer.size(). Throws std::system_error: stream_errc::unexpected_eof when the stream ends first
/// (message "corio::read_exact: end of stream after N of M bytes"; the N bytes are in the buffer),
/// or the stream's error (operation_cancelled when cancelled). An empty buffer reads nothing.
/// Over a buffered_reader the buffered bytes come first. `stream` and `buffer` must outlive the
/// co_await. Go's io.ReadFull, Tokio's AsyncReadExt::read_exact.
template <readable_stream S>
[[nodiscard]] task<std::size_t> read_exact(S& stream, std::span<std::byte> buffer) {
  return detail::read_exact_loop(&stream, buffer, nullptr, "corio::read_exact");
}

/// As read_exact(stream, buffer), reporting the error in `ec` (cleared on success) instead of
/// throwing; yields the bytes read before the error.
template <readable_stream S>
[[nodiscard]] task<std::size_t> read_exact(S& stream, std::span<std::byte> buffer, std::error_code& ec) {
  return detail::read_exact_loop(&stream, buffer, &ec, "corio::read_exact");
}

/// Writes all of `data` to `stream`; yields data.size(). Uses the stream's own write_all when it
/// has one (tcp_stream's resubmits short sends inside the reactor), otherwise loops write_some.
/// Throws std::system_error: the stream's error (operation_cancelled when cancelled; the stream
/// then holds a prefix of `data`), or stream_errc::write_zero when write_some accepts nothing.
/// `stream` and `data` must outlive the co_await. Go's io.Writer contract, Tokio's
/// AsyncWriteExt::write_all.
template <writable_stream S>
[[nodiscard]] task<std::size_t> write_all(S& stream, std::span<const std::byte> data) {
  return detail::write_all_of(&stream, data, nullptr);
}

/// As write_all(stream, data), reporting the error in `ec` (cleared on success); yields the bytes
/// written before the error.
template <writable_stream S>
[[nodiscard]] task<std::size_t> write_all(S& stream, std::span<const std::byte> data, std::error_code& ec) {
  return detail::write_all_of(&stream, data, &ec);
}

/// Writes `text`'s bytes, as write_all(stream, data).
template <writable_stream S>
[[nodiscard]] task<std::size_t> write_all(S& stream, std::string_view text) {
  return detail::write_all_of(&stream, std::as_bytes(std::span{text.data(), text.size()}), nullptr);
}

/// Vectored write: writes every buffer of `buffers`, in order, as if concatenated; yields the
/// total byte count. On tcp_stream and unix_stream each attempt is one sendmsg of up to 1024 of
/// the buffers left (one syscall or io_uring SENDMSG instead of one per buffer; see
/// net::write_vectored_operation); on other streams each buffer is written in turn (a buffered_writer coalesces them). The span of buffers is copied, so only
/// the bytes must outlive the co_await. Errors as write_all(stream, data). Go's net.Buffers,
/// Tokio's write_vectored / write_all_buf.
template <writable_stream S>
[[nodiscard]] task<std::size_t> write_all(S& stream, std::span<const const_buffer> buffers) {
  std::vector<const_buffer> copy(buffers.begin(), buffers.end());
  if constexpr (detail::has_vectored_write_all<S>) {
    return detail::write_all_vectored_member(&stream, std::move(copy), nullptr);
  } else {
    return detail::write_all_vectored(&stream, std::move(copy), nullptr);
  }
}

/// As the vectored write_all, reporting the error in `ec` (cleared on success); yields the bytes
/// written before the error (a prefix of the concatenation).
template <writable_stream S>
[[nodiscard]] task<std::size_t> write_all(S& stream, std::span<const const_buffer> buffers,
                                          std::error_code& ec) {
  std::vector<const_buffer> copy(buffers.begin(), buffers.end());
  if constexpr (detail::has_vectored_write_all<S>) {
    return detail::write_all_vectored_member(&stream, std::move(copy), &ec);
  } else {
    return detail::write_all_vectored(&stream, std::move(copy), &ec);
  }
}

/// The vectored write_all with two or more buffers listed as arguments:
/// `co_await corio::write_all(s, head, body)` (each convertible to const_buffer). An
/// initializer-list form (`write_all(s, {head, body})`) is left out on purpose: g++ 12 rejects a
/// braced list inside a co_await expression ("array used as initializer").
template <writable_stream S, class... B>
requires(sizeof...(B) >= 2 && (std::convertible_to<const B&, const_buffer> && ...))
    [[nodiscard]] task<std::size_t> write_all(S& stream, const B&... buffers) {
  std::vector<const_buffer> list{const_buffer(buffers)...};
  if constexpr (detail::has_vectored_write_all<S>) {
    return detail::write_all_vectored_member(&stream, std::move(list), nullptr);
  } else {
    return detail::write_all_vectored(&stream, std::move(list), nullptr);
  }
}

// --- buffered_reader -------------------------------------------------------------------------

/// Sizes of a buffered_reader, in bytes.
struct buffered_reader_options {
  /// The buffer's size: how much one read of the underlying stream asks for (Go's and Tokio's
  /// default is 4 KiB and 8 KiB). Must be at least 1.
  std::size_t buffer_size = 8 * 1024;
  /// The most read_until, read_line and peek hold at once: the buffer grows up to this size for a
  /// long line and never beyond (a line longer than this ends with EMSGSIZE instead of using
  /// unbounded memory, Go's bufio.Scanner's MaxScanTokenSize). Must be at least 1; a buffer_size
  /// above it is lowered to it.
  std::size_t max_size = 64 * 1024;
};

/// A read buffer over a readable stream: reads the stream in chunks of buffer_size and serves
/// read_some, read_exact, read_until, read_line and peek from the buffer. Itself a
/// readable_stream (so read_exact, copy and another buffered_reader work over it).
///
/// `Stream` is either a stream type (the reader owns the stream: `buffered_reader
/// r{std::move(s)}` makes a buffered_reader<tcp_stream>) or a reference (it borrows it, and the
/// stream must outlive the reader: `buffered_reader r{s}` makes a buffered_reader<tcp_stream&>).
/// stream() reaches the stream either way, for instance to write to it.
///
/// Errors: every operation throws std::system_error (operation_cancelled when cancelled) or, in
/// its `std::error_code&` form, reports it there (cleared on success). An operation that fails
/// or is cancelled consumes nothing: the bytes it had read stay buffered, and the next call sees
/// them (a cancelled read_line loses no part of the line, the reader stays usable). End of
/// stream is not an error for read_some, read_until, read_line and peek (like Tokio's
/// AsyncBufReadExt; Go's bufio returns io.EOF with the data instead).
///
/// Not thread-safe: one task at a time calls the reader (a task may write to the underlying
/// stream meanwhile). The destructor does no I/O; buffered bytes are dropped with the reader.
/// Go's bufio.Reader, Tokio's BufReader with AsyncBufReadExt.
template <class Stream>
requires readable_stream<std::remove_reference_t<Stream>>
class buffered_reader {
 public:
  /// The stream type, without the reference.
  using stream_type = std::remove_reference_t<Stream>;
  /// True when the reader owns its stream.
  static constexpr bool owns_stream = !std::is_reference_v<Stream>;

  /// Borrows `stream` (an lvalue, `buffered_reader<S&>`) or takes it over (an rvalue,
  /// `buffered_reader<S>`). Throws std::invalid_argument when buffer_size or max_size is 0;
  /// std::bad_alloc when the buffer cannot be allocated.
  explicit buffered_reader(typename detail::stream_slot<Stream>::argument stream,
                           buffered_reader_options options = {})
      : stream_(static_cast<typename detail::stream_slot<Stream>::argument>(stream)),
        buffer_(checked_size(options)),
        max_size_(options.max_size) {}

  /// Moves the reader: its stream (or the reference to it) and its buffered bytes.
  buffered_reader(buffered_reader&&) noexcept = default;
  /// Move assignment: drops this reader's buffered bytes and takes the other's.
  buffered_reader& operator=(buffered_reader&&) noexcept = default;

  /// The underlying stream. Reading from it directly skips the buffered bytes.
  [[nodiscard]] stream_type& stream() noexcept { return stream_.get(); }

  /// The bytes read from the stream and not consumed yet; valid until the next call that reads
  /// or consumes. Tokio's BufReader::buffer.
  [[nodiscard]] std::span<const std::byte> buffered() const noexcept {
    return {buffer_.data() + begin_, end_ - begin_};
  }
  /// Drops the first `n` buffered bytes (all of them when n is larger). For instance after peek,
  /// or to skip a line that was over the limit. Tokio's AsyncBufRead::consume, Go's Discard.
  void consume(std::size_t n) noexcept { begin_ += std::min(n, end_ - begin_); }
  /// The configured max_size (bytes).
  [[nodiscard]] std::size_t max_size() const noexcept { return max_size_; }

  /// Reads at least one byte into `out` (buffered ones first; when nothing is buffered and `out`
  /// is at least as large as the buffer, straight from the stream into `out`); yields the count, 0
  /// at end of stream or for an empty `out`. Errors: see the class.
  [[nodiscard]] task<std::size_t> read_some(std::span<std::byte> out) { return read_some_impl(out, nullptr); }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  [[nodiscard]] task<std::size_t> read_some(std::span<std::byte> out, std::error_code& ec) {
    return read_some_impl(out, &ec);
  }

  /// Fills `out` completely; yields out.size(). At end of stream first: std::system_error with
  /// stream_errc::unexpected_eof ("... end of stream after N of M bytes"; the N bytes are in out
  /// and consumed). Go's io.ReadFull, Tokio's read_exact.
  [[nodiscard]] task<std::size_t> read_exact(std::span<std::byte> out) {
    return detail::read_exact_loop(this, out, nullptr, "corio::buffered_reader::read_exact");
  }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  /// Yields the bytes read before the error.
  [[nodiscard]] task<std::size_t> read_exact(std::span<std::byte> out, std::error_code& ec) {
    return detail::read_exact_loop(this, out, &ec, "corio::buffered_reader::read_exact");
  }

  /// Reads up to and including the first occurrence of `delimiter` (one byte or more, not empty)
  /// and yields those bytes as a string, the delimiter included; they are consumed. At end of
  /// stream it yields what was left without a delimiter (the last line of a file that does not
  /// end with a newline), and an empty string once nothing is left: so an empty result means end
  /// of stream (Tokio's read_until; Go's ReadString returns the same bytes with io.EOF).
  /// When max_size bytes are buffered without the delimiter (counting the delimiter itself),
  /// throws std::system_error with std::errc::message_size (EMSGSIZE) and a message giving the
  /// limit; nothing is consumed (call consume() to skip, or close the stream). Throws
  /// std::invalid_argument for an empty delimiter.
  [[nodiscard]] task<std::string> read_until(std::string_view delimiter) {
    return read_until_impl(std::string{delimiter}, nullptr);
  }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  /// Yields an empty string on error.
  [[nodiscard]] task<std::string> read_until(std::string_view delimiter, std::error_code& ec) {
    return read_until_impl(std::string{delimiter}, &ec);
  }
  /// As read_until(std::string_view), with a one-byte delimiter.
  [[nodiscard]] task<std::string> read_until(char delimiter) {
    return read_until_impl(std::string(1, delimiter), nullptr);
  }
  /// As read_until(std::string_view, std::error_code&), with a one-byte delimiter.
  [[nodiscard]] task<std::string> read_until(char delimiter, std::error_code& ec) {
    return read_until_impl(std::string(1, delimiter), &ec);
  }

  /// Reads one line and yields it without its ending ("\n" or "\r\n"); std::nullopt at end of
  /// stream. A last line without a newline is yielded as it is. The limit of read_until applies
  /// (a line of max_size bytes or more, with its newline, throws EMSGSIZE). Tokio's
  /// Lines::next_line, Go's bufio.Scanner with ScanLines.
  [[nodiscard]] task<std::optional<std::string>> read_line() { return read_line_impl(nullptr); }
  /// As read_line(), reporting an error in `ec` and yielding std::nullopt.
  [[nodiscard]] task<std::optional<std::string>> read_line(std::error_code& ec) {
    return read_line_impl(&ec);
  }

  /// Reads until `n` bytes are buffered (or the stream ends) and yields a view of the first
  /// min(n, buffered) of them, without consuming them; the view is valid until the next call on
  /// the reader. Fewer than `n` bytes only at end of stream. Throws std::system_error with
  /// std::errc::message_size when n > max_size. Go's bufio.Reader.Peek.
  [[nodiscard]] task<std::span<const std::byte>> peek(std::size_t n) { return peek_impl(n, nullptr); }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  /// Yields an empty view on error.
  [[nodiscard]] task<std::span<const std::byte>> peek(std::size_t n, std::error_code& ec) {
    return peek_impl(n, &ec);
  }

 private:
  static std::size_t checked_size(const buffered_reader_options& o) {
    if (o.buffer_size == 0 || o.max_size == 0) {
      throw std::invalid_argument("corio::buffered_reader: buffer_size and max_size must be at least 1");
    }
    return std::min(o.buffer_size, o.max_size);
  }

  [[nodiscard]] std::size_t available() const noexcept { return end_ - begin_; }

  /// Makes room for `need` unconsumed bytes (need <= max_size_, need > available()), so that a
  /// read can go after end_: moves the unconsumed bytes to the front, then grows the buffer
  /// (doubling, at most to max_size_) when it is still too small.
  void prepare_read(std::size_t need) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (buffer_.size() - begin_ >= need && end_ < buffer_.size()) return;
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buffer_.size() < need) buffer_.resize(std::min(std::max(need, buffer_.size() * 2), max_size_));
  }

  /// One read of the stream into the free space after end_ (prepare_read first).
  task<std::size_t> fill(std::error_code* ec) {
    const std::size_t n = co_await detail::read_some_of(&stream(), std::span{buffer_}.subspan(end_), ec);
    end_ += n;  // 0 on error or at end of stream
    co_return n;
  }

  task<std::size_t> read_some_impl(std::span<std::byte> out, std::error_code* ec) {
    if (out.empty()) {
      if (ec != nullptr) ec->clear();
      co_return 0;
    }
    if (available() == 0) {
      if (out.size() >= buffer_.size()) co_return co_await detail::read_some_of(&stream(), out, ec);
      prepare_read(1);
      const std::size_t n = co_await fill(ec);
      if (n == 0) co_return 0;  // end of stream, or the error in *ec
    } else if (ec != nullptr) {
      ec->clear();
    }
    const std::size_t k = std::min(out.size(), available());
    std::memcpy(out.data(), buffer_.data() + begin_, k);
    begin_ += k;
    co_return k;
  }

  std::string limit_message(const char* what) const {
    return std::string(what) + ": more than the limit of " + std::to_string(max_size_) +
           " bytes (buffered_reader_options::max_size) without the delimiter";
  }

  task<std::string> read_until_impl(std::string delimiter, std::error_code* ec) {
    if (delimiter.empty()) throw std::invalid_argument("corio::buffered_reader::read_until: empty delimiter");
    std::size_t scanned = 0;  // unconsumed bytes searched already without finding the delimiter
    for (;;) {
      const std::string_view view{reinterpret_cast<const char*>(buffer_.data() + begin_), available()};
      const std::string_view within = view.substr(0, max_size_);
      const std::size_t from = scanned >= delimiter.size() ? scanned - (delimiter.size() - 1) : 0;
      const std::size_t at = within.find(delimiter, from);
      if (at != std::string_view::npos) {
        std::string line{view.substr(0, at + delimiter.size())};
        begin_ += line.size();
        if (ec != nullptr) ec->clear();
        co_return line;
      }
      if (available() >= max_size_) {
        detail::report(ec, std::error_code{EMSGSIZE, detail::io_error_category()},
                       limit_message("corio::buffered_reader::read_until"));
        co_return std::string{};
      }
      scanned = within.size();
      prepare_read(available() + 1);
      const std::size_t n = co_await fill(ec);
      if (ec != nullptr && *ec) co_return std::string{};
      if (n == 0) {  // end of stream: what is left, without a delimiter (empty when nothing is)
        std::string rest{reinterpret_cast<const char*>(buffer_.data() + begin_), available()};
        begin_ = end_ = 0;
        co_return rest;
      }
    }
  }

  task<std::optional<std::string>> read_line_impl(std::error_code* ec) {
    std::string line = co_await read_until_impl(std::string(1, '\n'), ec);
    if (line.empty()) co_return std::nullopt;  // end of stream, or the error in *ec
    if (line.back() == '\n') {
      line.pop_back();
      if (!line.empty() && line.back() == '\r') line.pop_back();
    }
    co_return line;
  }

  task<std::span<const std::byte>> peek_impl(std::size_t n, std::error_code* ec) {
    if (n > max_size_) {
      detail::report(ec, std::error_code{EMSGSIZE, detail::io_error_category()},
                     "corio::buffered_reader::peek: " + std::to_string(n) +
                         " bytes is more than the limit of " + std::to_string(max_size_) +
                         " bytes (buffered_reader_options::max_size)");
      co_return std::span<const std::byte>{};
    }
    while (available() < n) {
      prepare_read(n);
      const std::size_t got = co_await fill(ec);
      if (ec != nullptr && *ec) co_return std::span<const std::byte>{};
      if (got == 0) break;
    }
    if (ec != nullptr) ec->clear();
    co_return std::span<const std::byte>{buffer_.data() + begin_, std::min(n, available())};
  }

  detail::stream_slot<Stream> stream_;
  std::vector<std::byte> buffer_;
  std::size_t max_size_;
  std::size_t begin_ = 0;  ///< the first unconsumed byte
  std::size_t end_ = 0;    ///< one past the last byte read
};

/// `buffered_reader r{s}` borrows an lvalue stream, `buffered_reader r{std::move(s)}` owns it.
template <class S>
buffered_reader(S&&) -> buffered_reader<S>;
/// The same, with options.
template <class S>
buffered_reader(S&&, buffered_reader_options) -> buffered_reader<S>;

// --- buffered_writer -------------------------------------------------------------------------

/// Size of a buffered_writer, in bytes.
struct buffered_writer_options {
  /// The buffer's size: writes are collected until this many bytes are buffered; a write at
  /// least this large with nothing buffered goes straight to the stream. Must be at least 1.
  std::size_t buffer_size = 8 * 1024;
};

/// A write buffer over a writable stream: write() collects small writes into one buffer and
/// writes it to the stream when it is full; flush() writes what is buffered. Itself a
/// writable_stream (write_some is write: it accepts all the data).
///
/// `Stream` is a stream type (owned) or a reference (borrowed), as for buffered_reader.
///
/// The destructor does no I/O: bytes still buffered are lost, so call flush() before dropping
/// the writer (Tokio's BufWriter does the same; Go's bufio.Writer never flushes by itself either).
/// Errors: std::system_error (operation_cancelled when cancelled) or, in the `std::error_code&`
/// forms, the code. Bytes a failed flush did not write stay buffered, in order, and the next
/// flush tries them again. Not thread-safe: one task at a time. Go's bufio.Writer, Tokio's
/// BufWriter.
template <class Stream>
requires writable_stream<std::remove_reference_t<Stream>>
class buffered_writer {
 public:
  /// The stream type, without the reference.
  using stream_type = std::remove_reference_t<Stream>;
  /// True when the writer owns its stream.
  static constexpr bool owns_stream = !std::is_reference_v<Stream>;

  /// Borrows `stream` (an lvalue, `buffered_writer<S&>`) or takes it over (an rvalue,
  /// `buffered_writer<S>`). Throws std::invalid_argument when buffer_size is 0.
  explicit buffered_writer(typename detail::stream_slot<Stream>::argument stream,
                           buffered_writer_options options = {})
      : stream_(static_cast<typename detail::stream_slot<Stream>::argument>(stream)),
        buffer_(checked_size(options)) {}

  /// Moves the writer: its stream (or the reference to it) and its buffered bytes.
  buffered_writer(buffered_writer&&) noexcept = default;
  /// Move assignment: drops this writer's unflushed bytes (no I/O) and takes the other's.
  buffered_writer& operator=(buffered_writer&&) noexcept = default;

  /// The underlying stream. Writing to it directly overtakes the buffered bytes.
  [[nodiscard]] stream_type& stream() noexcept { return stream_.get(); }
  /// Bytes buffered and not yet written to the stream.
  [[nodiscard]] std::size_t buffered() const noexcept { return tail_ - head_; }
  /// The buffer's size (bytes).
  [[nodiscard]] std::size_t capacity() const noexcept { return buffer_.size(); }

  /// Accepts all of `data`: copies it into the buffer, writing the buffer to the stream each time
  /// it fills; data at least as large as the buffer, when nothing is buffered, is written
  /// straight to the stream. Yields data.size(). In the error_code form, yields the bytes
  /// accepted (buffered or written) before the error.
  [[nodiscard]] task<std::size_t> write(std::span<const std::byte> data) { return write_impl(data, nullptr); }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  [[nodiscard]] task<std::size_t> write(std::span<const std::byte> data, std::error_code& ec) {
    return write_impl(data, &ec);
  }
  /// As write(std::span<const std::byte>), for text.
  [[nodiscard]] task<std::size_t> write(std::string_view text) {
    return write_impl(std::as_bytes(std::span{text.data(), text.size()}), nullptr);
  }
  /// As write(std::span<const std::byte>, std::error_code&), for text.
  [[nodiscard]] task<std::size_t> write(std::string_view text, std::error_code& ec) {
    return write_impl(std::as_bytes(std::span{text.data(), text.size()}), &ec);
  }
  /// The writable_stream operation: the same as write().
  [[nodiscard]] task<std::size_t> write_some(std::span<const std::byte> data) {
    return write_impl(data, nullptr);
  }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  [[nodiscard]] task<std::size_t> write_some(std::span<const std::byte> data, std::error_code& ec) {
    return write_impl(data, &ec);
  }

  /// Writes every buffered byte to the stream. Bytes not written because of an error stay
  /// buffered. Go's Writer.Flush, Tokio's AsyncWriteExt::flush.
  [[nodiscard]] task<void> flush() { return flush_impl(nullptr); }
  /// As the form above, reporting failure in `ec` (cleared on success) instead of throwing.
  [[nodiscard]] task<void> flush(std::error_code& ec) { return flush_impl(&ec); }

 private:
  static std::size_t checked_size(const buffered_writer_options& o) {
    if (o.buffer_size == 0)
      throw std::invalid_argument("corio::buffered_writer: buffer_size must be at least 1");
    return o.buffer_size;
  }

  task<void> flush_impl(std::error_code* ec) {
    // One write_some at a time, moving head_ past each written prefix at once: whatever ends the
    // loop (an error, thrown as it came, operation_cancelled included), the buffer holds exactly
    // the bytes not written yet.
    while (head_ < tail_) {
      const std::size_t n = co_await detail::write_some_of(
          &stream(), std::span<const std::byte>{buffer_.data() + head_, tail_ - head_}, ec);
      if (ec != nullptr && *ec) co_return;
      if (n == 0) {
        detail::report(ec, make_error_code(stream_errc::write_zero),
                       "corio::buffered_writer::flush: the stream accepted 0 bytes");
        co_return;
      }
      head_ += n;
    }
    head_ = tail_ = 0;
    if (ec != nullptr) ec->clear();
  }

  task<std::size_t> write_impl(std::span<const std::byte> data, std::error_code* ec) {
    if (head_ > 0) {  // what a failed flush left: back to the front
      std::memmove(buffer_.data(), buffer_.data() + head_, tail_ - head_);
      tail_ -= head_;
      head_ = 0;
    }
    std::size_t done = 0;
    while (data.size() - done > buffer_.size() - tail_) {
      if (tail_ == 0) {  // large data, nothing buffered: straight to the stream
        const std::size_t n = co_await detail::write_all_of(&stream(), data.subspan(done), ec);
        co_return done + n;
      }
      const std::size_t k = buffer_.size() - tail_;
      std::memcpy(buffer_.data() + tail_, data.data() + done, k);
      tail_ += k;
      done += k;
      co_await flush_impl(ec);
      if (ec != nullptr && *ec) co_return done;
    }
    if (done < data.size()) std::memcpy(buffer_.data() + tail_, data.data() + done, data.size() - done);
    tail_ += data.size() - done;
    if (ec != nullptr) ec->clear();
    co_return data.size();
  }

  detail::stream_slot<Stream> stream_;
  std::vector<std::byte> buffer_;
  std::size_t head_ = 0;  ///< the first byte not written yet
  std::size_t tail_ = 0;  ///< one past the last byte buffered
};

/// `buffered_writer w{s}` borrows an lvalue stream, `buffered_writer w{std::move(s)}` owns it.
template <class S>
buffered_writer(S&&) -> buffered_writer<S>;
/// The same, with options.
template <class S>
buffered_writer(S&&, buffered_writer_options) -> buffered_writer<S>;

// --- copy ------------------------------------------------------------------------------------

namespace detail {

/// copy's splice path, when both ends are descriptors and the reactor can splice (io_uring on
/// Linux): true when it ran (then *total holds the bytes moved and an error is reported already),
/// false when it could not start (no descriptor, Asio, not Linux): copy takes its loop instead.
template <class R, class W>
task<bool> copy_spliced(R* from, W* to, std::uint64_t* total, std::error_code* ec) {
  const int in = from->native_handle();
  const int out = to->native_handle();
  // A closed end takes the loop, which reports the stream's own error.
  if (in < 0 || out < 0 || !splice_available()) co_return false;
  std::error_code step;
  *total = co_await splice_copy(in, out, std::numeric_limits<std::uint64_t>::max(), &step);
  if (!step) co_return true;
  if (step == std::errc::not_supported && *total == 0) co_return false;
  if (ec != nullptr) {
    *ec = step;
  } else if (step == std::errc::operation_canceled) {
    throw operation_cancelled("corio::copy: cancelled");
  } else {
    throw std::system_error(step, "corio::copy: splice from descriptor " + std::to_string(in) +
                                      " to descriptor " + std::to_string(out));
  }
  co_return true;
}

template <class R, class W>
task<std::uint64_t> copy_loop(R* from, W* to, std::size_t buffer_size, std::error_code* ec) {
  if (buffer_size == 0) throw std::invalid_argument("corio::copy: buffer_size must be at least 1");
  std::uint64_t total = 0;
  bool spliced = false;
  if constexpr (native_stream<R> && native_stream<W>) {
    // Both ends are descriptors: splice(2) moves the bytes without copying them through user
    // memory (detail::splice_copy, io_uring only). Where it cannot run, nothing was moved and
    // the loop below does the copy.
    spliced = co_await copy_spliced(from, to, &total, ec);
    if (spliced && ec != nullptr && *ec) co_return total;
  }
  if (!spliced) {
    std::vector<std::byte> buffer(buffer_size);
    for (;;) {
      const std::size_t n = co_await read_some_of(from, std::span{buffer}, ec);
      if (ec != nullptr && *ec) co_return total;
      if (n == 0) break;
      const std::size_t written = co_await write_all_of(to, std::span<const std::byte>{buffer.data(), n}, ec);
      total += written;
      if (ec != nullptr && *ec) co_return total;
    }
  }
  if constexpr (requires(W & w, std::error_code & e) {
                  w.flush();
                  w.flush(e);
                }) {
    if (ec == nullptr) {
      co_await to->flush();
    } else {
      co_await to->flush(*ec);
      if (*ec) co_return total;
    }
  }
  if (ec != nullptr) ec->clear();
  co_return total;
}

}  // namespace detail

/// Copies everything `from` yields until its end of stream into `to`; yields the bytes copied.
/// One buffer of `buffer_size` bytes (default 64 KiB; 0 throws std::invalid_argument) is reused
/// for every read_some / write_all pair; a `to` with a flush() (buffered_writer) is flushed at
/// the end, as Tokio's copy does. When both ends are descriptors (native_stream on both sides:
/// tcp_stream, unix_stream, fs::file, in any pair) and the worker's reactor is io_uring, the copy
/// uses splice(2) through a pipe (detail::splice_copy) and the bytes never enter user memory
/// (buffer_size is then unused; a pair the kernel refuses to splice, such as a file opened with
/// O_APPEND, goes on with reads and writes); on the Asio reactor and outside Linux every pair
/// takes the loop. Either way the result is the same: the bytes copied, up to `from`'s end of
/// stream, with both descriptors read and written at their current positions. Throws the error
/// of either stream (operation_cancelled when cancelled: `to` then holds a prefix of what was
/// read; on the splice path the message names the two descriptors instead of the stream). `from` and `to` must outlive the co_await; they may be the same type or not. Go's
/// io.Copy, Tokio's tokio::io::copy.
template <readable_stream R, writable_stream W>
[[nodiscard]] task<std::uint64_t> copy(R& from, W& to, std::size_t buffer_size = 64 * 1024) {
  return detail::copy_loop(&from, &to, buffer_size, nullptr);
}

/// As copy(from, to, buffer_size), reporting an error of either stream in `ec` (cleared on
/// success); yields the bytes written to `to` before the error.
template <readable_stream R, writable_stream W>
[[nodiscard]] task<std::uint64_t> copy(R& from, W& to, std::error_code& ec,
                                       std::size_t buffer_size = 64 * 1024) {
  return detail::copy_loop(&from, &to, buffer_size, &ec);
}

}  // namespace corio
