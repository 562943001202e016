// corio/fs.hpp - files: open, read, write, size, sync and close through the worker's reactor.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include "corio/detail/file_descriptor.hpp"
#include "corio/detail/io_operation.hpp"
#include "corio/detail/splice.hpp"  // detail::splice_copy, which corio::copy uses
#include "corio/task.hpp"
#include "corio/yield.hpp"  // detail::coop_spend, detail::yield_next

namespace corio::fs {

class file;

/// How fs::file::open opens a file: a set of bits combined with `|`. At least one of `read` and
/// `write` must be set (`append` implies `write`). `create` makes the file when it is missing
/// (with the mode given to open), `truncate` empties it (needs `write`), `exclusive` (with
/// `create`) fails with EEXIST when it exists, `append` makes every write go to the end whatever
/// the offset asked for (O_APPEND: write_at's offset is ignored, as pwrite(2) does on Linux).
/// The descriptor is always close-on-exec. Design: Rust's std::fs::OpenOptions, Go's os.O_* flags.
enum class open_flags : unsigned {
  none = 0,       ///< no bits: valid only combined with read, write or append
  read = 1,        ///< O_RDONLY (with write: O_RDWR)
  write = 2,       ///< O_WRONLY (with read: O_RDWR)
  append = 4,      ///< O_APPEND (implies write)
  create = 8,      ///< O_CREAT
  truncate = 16,   ///< O_TRUNC
  exclusive = 32,  ///< O_EXCL (with create)
};
/// The union of two sets of open_flags.
constexpr open_flags operator|(open_flags a, open_flags b) noexcept {
  return static_cast<open_flags>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
/// The intersection of two sets of open_flags.
constexpr open_flags operator&(open_flags a, open_flags b) noexcept {
  return static_cast<open_flags>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
/// True when `flags` holds every bit of `bit`.
constexpr bool has(open_flags flags, open_flags bit) noexcept { return (flags & bit) == bit; }

/// The open(2) flags open_flags stands for, O_CLOEXEC included. Throws std::invalid_argument for
/// a set without read or write, or with truncate but no write. Thread-safe.
[[nodiscard]] CORIO_API int native_open_flags(open_flags flags);

/// The largest byte count one read or write asks the kernel for (Linux's MAX_RW_COUNT): a larger
/// buffer is read or written in part (read_some/write_some semantics; write_all loops).
inline constexpr std::size_t max_transfer = 0x7ffff000;

/// Base of the file awaiters: an I/O operation whose errors name the file's path. Not for users.
class CORIO_API file_operation : public corio::detail::io_operation {
 protected:
  /// `verb` ("read", "write", ...) and `path` (owned by the file, or by the derived awaiter)
  /// make the message of a thrown error: "corio: read /tmp/x: Input/output error".
  file_operation(std::error_code* ec, const char* what, const char* verb, const std::string* path) noexcept
      : io_operation(ec, what), verb_(verb), path_(path) {}
  /// finish(), with the path in the message of a thrown std::system_error (operation_cancelled
  /// as finish() throws it).
  std::ptrdiff_t finish_named() {
    if (ec_ != nullptr || request_.result >= 0) return finish();
    return finish_error();
  }

 private:
  std::ptrdiff_t finish_error();  // lib/fs.cpp
  const char* verb_;
  const std::string* path_;
};

/// Awaiter of fs::file::open: yields the open file (a closed one after an error reported through
/// the error_code form). Holds the path's bytes until the openat completes (io_uring may read
/// them after the submission returned).
class CORIO_API open_operation : public file_operation {
 public:
  /// Made by file::open(); `ec` null: the throwing form.
  open_operation(const std::filesystem::path& path, int flags, unsigned mode, std::error_code* ec);
  /// Returns the open file. Throws std::system_error naming the path (or operation_cancelled); in
  /// the error_code form, sets it and returns a closed file.
  file await_resume();

 private:
  std::string path_;
};

/// Awaiter of a single read or write (read_at, write_at, read, write, read_some, write_some):
/// yields the bytes transferred; 0 for a read at end of file, for an empty buffer, or after an
/// error reported through the error_code form.
class CORIO_API transfer_operation : public file_operation {
 public:
  /// Made by the read and write members of fs::file: `length` bytes at `buffer`, at `offset` (-1:
  /// the file position); `ec` null: the throwing form.
  transfer_operation(const file& f, bool write, std::byte* buffer, std::size_t length, std::int64_t offset,
                     std::error_code* ec) noexcept;
  /// A read of a regular file first tries preadv2(RWF_NOWAIT) on the calling thread: data in
  /// the page cache is read at once and the task goes on without suspending, or, once its
  /// cooperation budget is spent (see detail::coop_spend), with the read done and the task
  /// requeued behind the runnable ones, as a channel operation does; anything that would block
  /// (EAGAIN: not cached) goes to the reactor. Nothing is tried when the task's stop was
  /// requested (the operation then ends cancelled as usual).
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) {
    if (nowait_) {
      switch (try_now(corio::detail::stop_of(h))) {
        case now::done:
          return h;
        case now::done_yield:
          return corio::detail::transfer(corio::detail::yield_next(h));  // h published: touch nothing
        case now::not_done:
          break;
      }
    }
    if (io_operation::await_suspend(h)) return std::noop_coroutine();  // h published: touch nothing
    return h;
  }
  /// Returns the bytes transferred (0 at end of file). Throws std::system_error naming the path
  /// (or operation_cancelled); in the error_code form, sets it and returns 0.
  std::size_t await_resume() {
    const auto n = finish_named();
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }

 private:
  /// try_now's outcome: not done (go to the reactor), done, or done with the budget spent.
  enum class now { not_done, done, done_yield };
  now try_now(corio::detail::stop_state* stop) noexcept;  // lib/fs.cpp
  bool nowait_ = false;  ///< a read of a file that takes RWF_NOWAIT (see file::nowait_reads_)
};

/// Awaiter of fs::file::write_all and write_all_at: yields the bytes written, all of `data`
/// unless an error was reported through the error_code form (then the count before the error).
/// Short writes are resubmitted by the reactor without resuming the task.
class CORIO_API write_all_operation : public file_operation {
 public:
  /// Made by file::write_all and write_all_at (`offset` -1: the file position); `ec` null: the
  /// throwing form.
  write_all_operation(const file& f, std::span<const std::byte> data, std::int64_t offset,
                      std::error_code* ec) noexcept;
  /// True when there is nothing to write, or the constructor already failed: no suspension.
  bool await_ready() const noexcept { return request_.result < 0 || request_.length == 0; }
  /// Returns the bytes written: all of them, or, in the error_code form, those before the error.
  /// Throws std::system_error naming the path, or operation_cancelled.
  std::size_t await_resume() {
    finish_named();
    return request_.transferred;
  }

 private:
  static bool on_complete(corio::detail::io_request& request, int result) noexcept;
};

/// Awaiter of fs::file::size: the size in bytes (STATX_SIZE; fstat where there is no statx).
class CORIO_API size_operation : public file_operation {
 public:
  /// Made by file::size(); `ec` null: the throwing form.
  size_operation(const file& f, std::error_code* ec) noexcept;
  /// True when the size is known at once (no statx here) or the constructor failed.
  bool await_ready() const noexcept { return request_.result < 0 || ready_; }
  /// Returns the size in bytes. Throws std::system_error naming the path; in the error_code form,
  /// sets it and returns 0.
  std::uint64_t await_resume();

 private:
  alignas(8) unsigned char statx_[256];  ///< a struct statx (checked in lib/fs.cpp)
  std::uint64_t size_ = 0;
  bool ready_ = false;  ///< answered synchronously (no statx on this platform)
};

/// Awaiter of fs::file::sync and datasync.
class CORIO_API sync_operation : public file_operation {
 public:
  /// Made by file::sync() (`data_only` false: fsync) and datasync() (true: fdatasync).
  sync_operation(const file& f, bool data_only, std::error_code* ec) noexcept;
  /// Returns once the data is on the device. Throws std::system_error naming the path.
  void await_resume() { finish_named(); }
};

/// Awaiter of fs::file::close: not cancellable (a close always happens; see file::close).
class CORIO_API close_operation : public file_operation {
 public:
  /// Made by file::close(), which hands over its descriptor `fd`; `path` for the messages.
  close_operation(int fd, std::string path, std::error_code* ec) noexcept;
  close_operation(const close_operation&) = delete;
  close_operation& operator=(const close_operation&) = delete;
  /// An awaiter never awaited closes its descriptor synchronously (the file let go of it).
  ~close_operation();
  /// True when there is no descriptor to close: nothing to wait for.
  bool await_ready() const noexcept { return request_.fd < 0; }
  /// Submits without arming the task's stop: the descriptor is closed whatever happens.
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    request_.waiter = h;
    request_.bound = corio::detail::binding_of(h);
    submitted_ = true;  // before the request is published: nothing touches the frame after
    try {
      corio::detail::submit_io(request_);
    } catch (...) {
      submitted_ = false;  // refused: the destructor closes the descriptor
      throw;
    }
    return true;
  }
  /// Returns once the descriptor is closed. Throws std::system_error naming the path when close(2)
  /// reported an error (the descriptor is closed all the same).
  void await_resume();

 private:
  std::string path_;
  bool submitted_ = false;
};

/// An open file: reads and writes at an offset or at the file position, size, sync, close, all
/// as awaitables run by the worker's reactor (io_uring: IORING_OP_OPENAT, READ, WRITE, FSYNC,
/// STATX, CLOSE; Asio: the blocking system call, see below). Design: Go's os.File (ReadAt,
/// WriteAt, Read and Write at the kernel's file position, Stat, Sync, Close) and Tokio's
/// tokio::fs::File (which runs each call with spawn_blocking); the operations are those of
/// io_uring_prep_openat(3), io_uring_prep_read(3), io_uring_prep_statx(3).
///
/// read() and write() use the kernel's file position (offset -1: read(2) and write(2)), which
/// the descriptor shares with every duplicate of it; read_at() and write_at() leave it alone
/// (pread(2), pwrite(2)). read_some and write_some are read and write under the names of the
/// stream concept (corio/io.hpp), so read_exact, write_all, buffered_reader and copy take a file.
///
/// Errors: every operation throws std::system_error with the errno (io_error_category()) and a
/// message naming the path ("corio: read /tmp/x: Input/output error"), or, in its form taking a
/// trailing `std::error_code&`, reports it there (cleared on success). An operation on a closed
/// or moved-from file fails with EBADF. Cancellation (detail::io_operation): a stop requested
/// before the operation starts ends it with operation_cancelled and nothing happens; io_uring
/// runs file operations to completion once started (regular files are not interruptible), so
/// a stop that comes later usually finds the operation done and its result is returned.
///
/// Under the Asio reactor each operation is the blocking system call, run as a job on the
/// runtime's blocking pool (lib/asio_reactor.cpp), as tokio::fs does, so a slow disk never stalls
/// a worker.
///
/// Thread-safety: the operations only read the descriptor, so many tasks may read_at and
/// write_at one file at once (the order of concurrent read()/write() calls at the file position
/// is unspecified). Moving, closing or destroying the file while an operation on it is in flight
/// is not allowed. Buffers must stay alive until the co_await returns.
class CORIO_API file {
 public:
  /// A closed file.
  file() noexcept = default;
  /// Takes over `other`'s descriptor; `other` is left closed.
  file(file&& other) noexcept = default;
  /// Closes the file held (synchronously, if owned), then takes `other`'s.
  file& operator=(file&& other) noexcept;
  /// Closes the descriptor synchronously (close(2)) when the file is still open and owns it;
  /// a close error is ignored there (use close() to see it).
  ~file();

  /// Opens `path` (relative paths from the working directory) with `flags`; a file created gets
  /// `mode` (bits, 0644 by default, less the umask). `co_await` yields the file. Throws
  /// std::system_error naming the path: ENOENT for a missing file without create, EEXIST with
  /// create | exclusive on an existing one, EACCES, EISDIR, ...; std::invalid_argument for
  /// flags without read or write. io_uring: IORING_OP_OPENAT; the path is copied into the
  /// awaiter, so a temporary path may be passed.
  [[nodiscard]] static open_operation open(const std::filesystem::path& path, open_flags flags = open_flags::read,
                                           unsigned mode = 0644);
  /// As open(path, flags, mode), reporting an error in `ec` and yielding a closed file.
  [[nodiscard]] static open_operation open(const std::filesystem::path& path, open_flags flags, std::error_code& ec,
                                           unsigned mode = 0644);
  /// Opens `path` with raw open(2) `native_flags` (O_RDONLY, O_DIRECT, ...; O_CLOEXEC is added)
  /// and `mode`; otherwise as open(path, flags, mode).
  [[nodiscard]] static open_operation open(const std::filesystem::path& path, int native_flags, unsigned mode = 0644);
  /// As open(path, native_flags, mode), reporting an error in `ec` and yielding a closed file.
  [[nodiscard]] static open_operation open(const std::filesystem::path& path, int native_flags, std::error_code& ec,
                                           unsigned mode = 0644);

  /// A file that owns descriptor `fd` (closes it in close() or the destructor). `name` goes in
  /// error messages in place of a path ("descriptor N" when empty). Takes no system call.
  [[nodiscard]] static file adopt(int fd, std::string name = {});
  /// A file over descriptor `fd` that it never closes: close() and the destructor forget it.
  /// For the standard streams: `fs::file::borrow(1, "standard output")`.
  [[nodiscard]] static file borrow(int fd, std::string name = {});

  /// Reads up to buffer.size() bytes (at most max_transfer) at byte `offset` (pread(2); -1: at
  /// the file position, as read()); yields the count, 0 at end of file. A negative offset other
  /// than -1 fails with EINVAL.
  [[nodiscard]] transfer_operation read_at(std::span<std::byte> buffer, std::int64_t offset) const noexcept {
    return {*this, false, buffer.data(), buffer.size(), offset, nullptr};
  }
  /// As read_at(buffer, offset), reporting an error in `ec` (yielding 0).
  [[nodiscard]] transfer_operation read_at(std::span<std::byte> buffer, std::int64_t offset,
                                           std::error_code& ec) const noexcept {
    return {*this, false, buffer.data(), buffer.size(), offset, &ec};
  }
  /// Writes up to data.size() bytes (at most max_transfer) at byte `offset` (pwrite(2); -1: at
  /// the file position); yields the count, which may be short (write_all_at loops).
  [[nodiscard]] transfer_operation write_at(std::span<const std::byte> data, std::int64_t offset) const noexcept {
    return {*this, true, const_cast<std::byte*>(data.data()), data.size(), offset, nullptr};
  }
  /// As write_at(data, offset), reporting an error in `ec` (yielding 0).
  [[nodiscard]] transfer_operation write_at(std::span<const std::byte> data, std::int64_t offset,
                                            std::error_code& ec) const noexcept {
    return {*this, true, const_cast<std::byte*>(data.data()), data.size(), offset, &ec};
  }

  /// Reads at the file position and advances it (read(2)); yields the count, 0 at end of file.
  [[nodiscard]] transfer_operation read(std::span<std::byte> buffer) const noexcept { return read_at(buffer, -1); }
  /// As read(buffer), reporting an error in `ec`.
  [[nodiscard]] transfer_operation read(std::span<std::byte> buffer, std::error_code& ec) const noexcept {
    return read_at(buffer, -1, ec);
  }
  /// Writes at the file position (at the end with append) and advances it (write(2)); yields
  /// the count, which may be short.
  [[nodiscard]] transfer_operation write(std::span<const std::byte> data) const noexcept {
    return write_at(data, -1);
  }
  /// As write(data), reporting an error in `ec`.
  [[nodiscard]] transfer_operation write(std::span<const std::byte> data, std::error_code& ec) const noexcept {
    return write_at(data, -1, ec);
  }
  /// read(buffer) under the stream concept's name (corio/io.hpp).
  [[nodiscard]] transfer_operation read_some(std::span<std::byte> buffer) const noexcept { return read(buffer); }
  /// read(buffer, ec) under the stream concept's name.
  [[nodiscard]] transfer_operation read_some(std::span<std::byte> buffer, std::error_code& ec) const noexcept {
    return read(buffer, ec);
  }
  /// write(data) under the stream concept's name.
  [[nodiscard]] transfer_operation write_some(std::span<const std::byte> data) const noexcept { return write(data); }
  /// write(data, ec) under the stream concept's name.
  [[nodiscard]] transfer_operation write_some(std::span<const std::byte> data, std::error_code& ec) const noexcept {
    return write(data, ec);
  }

  /// Writes all of `data` at the file position, in as many writes as the kernel needs; yields
  /// the byte count. Cancelled between two writes, it stops there (the file holds a prefix).
  [[nodiscard]] write_all_operation write_all(std::span<const std::byte> data) const noexcept {
    return {*this, data, -1, nullptr};
  }
  /// As write_all(data), reporting an error in `ec`; yields the bytes written before it.
  [[nodiscard]] write_all_operation write_all(std::span<const std::byte> data, std::error_code& ec) const noexcept {
    return {*this, data, -1, &ec};
  }
  /// write_all of the characters of `data`.
  [[nodiscard]] write_all_operation write_all(std::string_view data) const noexcept {
    return write_all(std::as_bytes(std::span{data.data(), data.size()}));
  }
  /// write_all of the characters of `data`, reporting an error in `ec`.
  [[nodiscard]] write_all_operation write_all(std::string_view data, std::error_code& ec) const noexcept {
    return write_all(std::as_bytes(std::span{data.data(), data.size()}), ec);
  }
  /// Writes all of `data` from byte `offset` on (pwrite(2) in a loop; -1: at the file position,
  /// as write_all); yields the byte count. A negative offset other than -1 fails with EINVAL.
  [[nodiscard]] write_all_operation write_all_at(std::span<const std::byte> data, std::int64_t offset) const noexcept {
    return {*this, data, offset, nullptr};
  }
  /// As write_all_at(data, offset), reporting an error in `ec`.
  [[nodiscard]] write_all_operation write_all_at(std::span<const std::byte> data, std::int64_t offset,
                                                 std::error_code& ec) const noexcept {
    return {*this, data, offset, &ec};
  }

  /// The file's size in bytes, as the kernel has it now (io_uring: IORING_OP_STATX with
  /// STATX_SIZE; Asio: statx(2) on the worker, fstat(2) outside Linux).
  [[nodiscard]] size_operation size() const noexcept { return size_operation{*this, nullptr}; }
  /// As size(), reporting an error in `ec` (yielding 0).
  [[nodiscard]] size_operation size(std::error_code& ec) const noexcept { return size_operation{*this, &ec}; }

  /// Flushes the file's data and metadata to the device (fsync(2), IORING_OP_FSYNC).
  [[nodiscard]] sync_operation sync() const noexcept { return sync_operation{*this, false, nullptr}; }
  /// As sync(), reporting an error in `ec`.
  [[nodiscard]] sync_operation sync(std::error_code& ec) const noexcept { return sync_operation{*this, false, &ec}; }
  /// Flushes the data and the metadata needed to read it back, not timestamps (fdatasync(2)).
  [[nodiscard]] sync_operation datasync() const noexcept { return sync_operation{*this, true, nullptr}; }
  /// As datasync(), reporting an error in `ec`.
  [[nodiscard]] sync_operation datasync(std::error_code& ec) const noexcept {
    return sync_operation{*this, true, &ec};
  }

  /// Closes the file (io_uring: IORING_OP_CLOSE). The file is closed from the call on, whatever
  /// the outcome: a close error (EIO from a deferred write, say) is reported, the descriptor is
  /// released anyway (Linux frees it). Closing a closed file does nothing; a borrowed file is
  /// forgotten without a system call. Not cancellable (a close is never left undone). Must not
  /// be called while another operation on the file is in flight.
  [[nodiscard]] close_operation close() noexcept;
  /// As close(), reporting an error in `ec`.
  [[nodiscard]] close_operation close(std::error_code& ec) noexcept;

  /// True while the file holds a descriptor.
  [[nodiscard]] bool is_open() const noexcept { return fd_.valid(); }
  /// The descriptor, -1 when closed. Ownership stays with the file.
  [[nodiscard]] int native_handle() const noexcept { return fd_.get(); }
  /// The path the file was opened with (or the name given to adopt/borrow); empty after close()
  /// or a move.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  friend class open_operation;
  friend class transfer_operation;
  friend class write_all_operation;
  friend class size_operation;
  friend class sync_operation;
  file(int fd, std::string path, bool owned) noexcept;
  void release_descriptor() noexcept;

  corio::detail::file_descriptor fd_;
  std::string path_;
  bool owned_ = true;
  /// A regular file opened without O_DIRECT: reads try the page cache first (transfer_operation).
  bool nowait_reads_ = false;
};

/// Reads the whole file at `path` (open, size, reads until end of file, close); yields its
/// bytes. The size is only a first guess: a file that grows meanwhile is read to its end.
/// Throws std::system_error naming the path (ENOENT for a missing file). Go's os.ReadFile,
/// Tokio's tokio::fs::read.
[[nodiscard]] CORIO_API task<std::string> read_file(std::filesystem::path path);

/// Writes `data` to the file at `path`, created (mode 0644 less the umask) or truncated, then
/// closes it; yields nothing. `data` must stay alive until the co_await returns. Throws
/// std::system_error naming the path. Go's os.WriteFile, Tokio's tokio::fs::write.
[[nodiscard]] CORIO_API task<void> write_file(std::filesystem::path path, std::string_view data);

}  // namespace corio::fs
