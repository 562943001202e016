// lib/fs.cpp - corio::fs::file (corio/fs.hpp) and detail::splice_copy: each file operation is one
// request through the worker's reactor (io_uring: OPENAT, READ, WRITE, FSYNC, STATX, CLOSE,
// SPLICE; Asio: the blocking call, see perform_blocking_io).
#include "corio/fs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "corio/errors.hpp"
#include "corio/wait_fd.hpp"
#include "corio/yield.hpp"
#include "runtime_impl.hpp"
#include "worker.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#endif

namespace corio::fs {

namespace {

constexpr const char* closed_name = "(closed file)";

const std::string& name_of(const std::string* path) {
  static const std::string closed{closed_name};
  return path == nullptr || path->empty() ? closed : *path;
}

/// The request's offset for an offset argument: -1 (the file position) or non-negative; any
/// other value fails the operation with EINVAL.
bool valid_offset(std::int64_t offset) noexcept { return offset >= -1; }

}  // namespace

int native_open_flags(open_flags flags) {
#if defined(_WIN32)
  (void)flags;
  throw std::system_error(ENOTSUP, corio::detail::io_error_category(),
                          "corio: files are not supported on this platform");
#else
  const bool append = has(flags, open_flags::append);
  const bool write = has(flags, open_flags::write) || append;
  const bool read = has(flags, open_flags::read);
  if (!read && !write) throw std::invalid_argument("corio::fs::file::open: flags need read, write or append");
  if (has(flags, open_flags::truncate) && !write) {
    throw std::invalid_argument("corio::fs::file::open: truncate needs write");
  }
  int native = read && write ? O_RDWR : write ? O_WRONLY : O_RDONLY;
  if (append) native |= O_APPEND;
  if (has(flags, open_flags::create)) native |= O_CREAT;
  if (has(flags, open_flags::truncate)) native |= O_TRUNC;
  if (has(flags, open_flags::exclusive)) native |= O_EXCL;
  return native | O_CLOEXEC;
#endif
}

// --- operations ------------------------------------------------------------------------------

std::ptrdiff_t file_operation::finish_error() {
  try {
    return finish();
  } catch (const operation_cancelled&) {
    throw;
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), fmt::format("corio: {} {}", verb_, name_of(path_)));
  }
}

open_operation::open_operation(const std::filesystem::path& path, int flags, unsigned mode, std::error_code* ec)
    : file_operation(ec, "corio::fs::file::open", "open", &path_), path_(path.string()) {
  request_.opcode = corio::detail::io_opcode::openat;
#if defined(_WIN32)
  (void)flags;
  (void)mode;
  fail_early(ENOTSUP);
#else
  request_.fd = AT_FDCWD;
  request_.address = path_.data();  // the awaiter does not move: io_uring may read it late
  request_.flags = static_cast<unsigned>(flags | O_CLOEXEC);
  request_.length = mode;
  if (path_.empty()) fail_early(ENOENT);  // as open("") does
  else if (path_.find('\0') != std::string::npos) fail_early(EINVAL);
#endif
}

file open_operation::await_resume() {
  const auto fd = finish_named();
  if (fd < 0) return file{};
  file f{static_cast<int>(fd), std::move(path_), true};
#if defined(__linux__) && defined(RWF_NOWAIT)
  struct stat st {};
  f.nowait_reads_ = (request_.flags & O_DIRECT) == 0 && ::fstat(f.fd_.get(), &st) == 0 && S_ISREG(st.st_mode);
#endif
  return f;
}

transfer_operation::transfer_operation(const file& f, bool write, std::byte* buffer, std::size_t length,
                                       std::int64_t offset, std::error_code* ec) noexcept
    : file_operation(ec, write ? "corio::fs::file::write" : "corio::fs::file::read", write ? "write" : "read",
                     &f.path_) {
  request_.opcode = write ? corio::detail::io_opcode::write_at : corio::detail::io_opcode::read_at;
  request_.fd = f.fd_.get();
  request_.generation = f.fd_.generation();
  request_.buffer = buffer;
  request_.length = std::min(length, max_transfer);
  request_.offset = offset;
  nowait_ = !write && f.nowait_reads_;
  if (request_.fd < 0) fail_early(EBADF);
  else if (!valid_offset(offset)) fail_early(EINVAL);
}

transfer_operation::now transfer_operation::try_now(corio::detail::stop_state* stop) noexcept {
#if defined(__linux__) && defined(RWF_NOWAIT)
  if (stop != nullptr && stop->stop_requested()) return now::not_done;  // the reactor path cancels it
  iovec v{request_.buffer, request_.length};
  const ssize_t n = ::preadv2(request_.fd, &v, 1, static_cast<off_t>(request_.offset), RWF_NOWAIT);
  if (n < 0) return now::not_done;  // EAGAIN (not in the page cache) and any error: the reactor decides
  request_.result = static_cast<int>(n);
  // Out of budget: the read is done, and the task yields (a requeue, not an io_uring round trip).
  return corio::detail::coop_spend() ? now::done : now::done_yield;
#else
  (void)stop;
  return now::not_done;
#endif
}

write_all_operation::write_all_operation(const file& f, std::span<const std::byte> data, std::int64_t offset,
                                         std::error_code* ec) noexcept
    : file_operation(ec, "corio::fs::file::write_all", "write", &f.path_) {
  request_.opcode = corio::detail::io_opcode::write_at;
  request_.fd = f.fd_.get();
  request_.generation = f.fd_.generation();
  request_.buffer = const_cast<std::byte*>(data.data());  // only read by write
  // address: one past the data (the hook computes what is left from it).
  request_.address = const_cast<std::byte*>(data.data() + data.size());
  request_.length = std::min(data.size(), max_transfer);
  request_.offset = offset;
  request_.on_complete = &write_all_operation::on_complete;
  if (request_.fd < 0) fail_early(EBADF);
  else if (!valid_offset(offset)) fail_early(EINVAL);
}

bool write_all_operation::on_complete(corio::detail::io_request& r, int result) noexcept {
  if (result < 0) {  // finish_request retried EINTR and EAGAIN already
    r.result = result;
    return true;
  }
  if (result == 0) {  // nothing taken for a non-empty write: no progress is possible
    r.result = -EIO;
    return true;
  }
  const auto n = static_cast<std::size_t>(result);
  r.transferred += n;
  r.buffer = static_cast<std::byte*>(r.buffer) + n;
  if (r.offset >= 0) r.offset += static_cast<std::int64_t>(n);
  const auto left = static_cast<std::size_t>(static_cast<std::byte*>(r.address) - static_cast<std::byte*>(r.buffer));
  if (left == 0) {
    r.result = 0;
    return true;
  }
  if (r.cancel_was_requested()) {  // cancelled between two writes: the file holds a prefix
    r.result = -ECANCELED;
    return true;
  }
  r.length = std::min(left, max_transfer);
  try {
    corio::detail::submit_io(r);  // a short write: the rest goes before the task resumes
  } catch (const std::system_error& e) {
    r.result = -e.code().value();
    return true;
  }
  return false;
}

size_operation::size_operation(const file& f, std::error_code* ec) noexcept
    : file_operation(ec, "corio::fs::file::size", "stat", &f.path_) {
  request_.opcode = corio::detail::io_opcode::statx;
  request_.fd = f.fd_.get();
  request_.generation = f.fd_.generation();
  if (request_.fd < 0) {
    fail_early(EBADF);
    return;
  }
#if defined(__linux__) && defined(STATX_SIZE)
  static_assert(sizeof(struct statx) <= sizeof statx_, "size_operation::statx_ holds a struct statx");
  request_.address = const_cast<char*>("");
  request_.flags = AT_EMPTY_PATH;
  request_.length = STATX_SIZE;
  request_.buffer = statx_;
#elif !defined(_WIN32)
  struct stat st {};
  if (::fstat(request_.fd, &st) != 0) {
    fail_early(errno);
    return;
  }
  size_ = static_cast<std::uint64_t>(st.st_size);
  ready_ = true;
#else
  fail_early(ENOTSUP);
#endif
}

std::uint64_t size_operation::await_resume() {
  if (ready_) {
    finish_named();
    return size_;
  }
  if (finish_named() < 0) return 0;
#if defined(__linux__) && defined(STATX_SIZE)
  struct statx st;
  std::memcpy(&st, statx_, sizeof st);
  return st.stx_size;
#else
  return size_;
#endif
}

sync_operation::sync_operation(const file& f, bool data_only, std::error_code* ec) noexcept
    : file_operation(ec, data_only ? "corio::fs::file::datasync" : "corio::fs::file::sync",
                     data_only ? "fdatasync" : "fsync", &f.path_) {
  request_.opcode = corio::detail::io_opcode::fsync;
  request_.fd = f.fd_.get();
  request_.generation = f.fd_.generation();
  request_.flags = data_only ? corio::detail::fsync_datasync : 0;
  if (request_.fd < 0) fail_early(EBADF);
}

close_operation::close_operation(int fd, std::string path, std::error_code* ec) noexcept
    : file_operation(ec, "corio::fs::file::close", "close", &path_), path_(std::move(path)) {
  request_.opcode = corio::detail::io_opcode::close;
  request_.fd = fd;
}

close_operation::~close_operation() {
#if !defined(_WIN32)
  if (!submitted_ && request_.fd >= 0) (void)::close(request_.fd);
#endif
}

void close_operation::await_resume() {
  if (request_.fd < 0) {  // nothing to close: a closed file, or a borrowed one
    if (ec_ != nullptr) ec_->clear();
    return;
  }
  finish_named();
}

// --- file ------------------------------------------------------------------------------------

file::file(int fd, std::string path, bool owned) noexcept : fd_(fd), path_(std::move(path)), owned_(owned) {}

file& file::operator=(file&& other) noexcept {
  if (this != &other) {
    release_descriptor();
    fd_ = std::move(other.fd_);
    path_ = std::move(other.path_);
    owned_ = other.owned_;
    nowait_reads_ = other.nowait_reads_;
  }
  return *this;
}

file::~file() { release_descriptor(); }

void file::release_descriptor() noexcept {
  if (owned_) (void)fd_.reset();  // close(2); an error is lost here (close() reports it)
  else (void)fd_.release();
}

open_operation file::open(const std::filesystem::path& path, open_flags flags, unsigned mode) {
  return open_operation{path, native_open_flags(flags), mode, nullptr};
}

open_operation file::open(const std::filesystem::path& path, open_flags flags, std::error_code& ec, unsigned mode) {
  return open_operation{path, native_open_flags(flags), mode, &ec};
}

open_operation file::open(const std::filesystem::path& path, int native_flags, unsigned mode) {
  return open_operation{path, native_flags, mode, nullptr};
}

open_operation file::open(const std::filesystem::path& path, int native_flags, std::error_code& ec, unsigned mode) {
  return open_operation{path, native_flags, mode, &ec};
}

file file::adopt(int fd, std::string name) {
  if (name.empty()) name = fmt::format("descriptor {}", fd);
  return file{fd, std::move(name), true};
}

file file::borrow(int fd, std::string name) {
  if (name.empty()) name = fmt::format("descriptor {}", fd);
  return file{fd, std::move(name), false};
}

close_operation file::close() noexcept {
  const int fd = owned_ ? fd_.release() : (fd_.release(), -1);
  return close_operation{fd, std::move(path_), nullptr};
}

close_operation file::close(std::error_code& ec) noexcept {
  const int fd = owned_ ? fd_.release() : (fd_.release(), -1);
  return close_operation{fd, std::move(path_), &ec};
}

// --- read_file, write_file -------------------------------------------------------------------

task<std::string> read_file(std::filesystem::path path) {
  file f = co_await file::open(path, open_flags::read);
  const std::uint64_t guess = co_await f.size();
  std::string out;
  // A size of 0 is common for /proc and /sys files that still have content: start with a page.
  out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(guess, max_transfer)) + 4096);
  std::size_t used = 0;
  for (;;) {
    if (used == out.size()) out.resize(out.size() * 2);
    auto room = std::as_writable_bytes(std::span{out.data() + used, out.size() - used});
    const std::size_t n = co_await f.read(room);
    if (n == 0) break;
    used += n;
  }
  out.resize(used);
  co_await f.close();
  co_return out;
}

task<void> write_file(std::filesystem::path path, std::string_view data) {
  file f = co_await file::open(path, open_flags::write | open_flags::create | open_flags::truncate);
  co_await f.write_all(data);
  co_await f.close();
}

}  // namespace corio::fs

namespace corio::detail {

namespace {
std::atomic<std::uint64_t> spliced_total{0};
}  // namespace

std::uint64_t spliced_bytes() noexcept { return spliced_total.load(std::memory_order_relaxed); }

bool splice_available() noexcept {
#if defined(__linux__)
  worker* w = current_worker();
  return w != nullptr && std::strcmp(w->reactor_->name(), "io_uring") == 0;
#else
  return false;
#endif
}

#if defined(__linux__)
namespace {

/// One splice, read or write on a raw descriptor (the steps of splice_copy), always in the
/// error_code form: splice_copy decides what an error means.
class step_operation : public io_operation {
 public:
  step_operation(io_opcode op, int fd, int out, void* buffer, std::size_t length, std::error_code* ec) noexcept
      : io_operation(ec, "corio::detail::splice_copy") {
    request_.opcode = op;
    request_.fd = fd;
    request_.buffer = buffer;
    request_.length = length;
    request_.offset = -1;
    request_.address_length = static_cast<std::uint32_t>(out);
    if (op == io_opcode::splice) request_.flags = SPLICE_F_MOVE;
  }
  std::size_t await_resume() {
    const auto n = finish();
    return n < 0 ? 0 : static_cast<std::size_t>(n);
  }
};

constexpr std::size_t chunk = 64 * 1024;

/// An error splice(2) or io_uring gives for a pair it cannot splice: the copy goes on with reads
/// and writes.
bool refused(std::error_code code) noexcept {
  const int v = code.value();
  return v == EINVAL || v == EOPNOTSUPP || v == ENOSYS;
}

bool non_blocking(int fd) noexcept {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

bool is_pipe(int fd) noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/// Reports `code` for the step `verb` of a copy from `in` to `out`: into *ec, or thrown
/// (operation_cancelled for a cancellation, whose stop the step observed already).
void report(std::error_code* ec, std::error_code code, const char* verb, int in, int out) {
  if (ec != nullptr) {
    *ec = code;
    return;
  }
  if (code == std::errc::operation_canceled) throw operation_cancelled("corio: splice cancelled");
  throw std::system_error(code, fmt::format("corio: splice from descriptor {} to descriptor {}: {}", in, out, verb));
}

/// Writes all of [data, data + n) to `out` with IORING_OP_WRITE (at its file position).
task<std::size_t> write_all_raw(int out, const std::byte* data, std::size_t n, bool wait_out, std::error_code* ec) {
  std::size_t done = 0;
  while (done < n) {
    if (wait_out) {
      co_await wait_writable(out, *ec);
      if (*ec) co_return done;
    }
    const std::size_t w = co_await step_operation{io_opcode::write_at, out, -1, const_cast<std::byte*>(data + done),
                                                  std::min(n - done, fs::max_transfer), ec};
    if (*ec) co_return done;
    if (w == 0) {
      *ec = std::error_code{EIO, io_error_category()};
      co_return done;
    }
    done += w;
  }
  co_return done;
}

}  // namespace
#endif

task<std::uint64_t> splice_copy(int in, int out, std::uint64_t limit, std::error_code* ec) {
  if (ec != nullptr) ec->clear();
#if !defined(__linux__)
  (void)in;
  (void)out;
  (void)limit;
  const std::error_code unsupported{ENOTSUP, io_error_category()};
  if (ec == nullptr) throw std::system_error(unsupported, "corio: splice is not supported on this platform");
  *ec = unsupported;
  co_return 0;
#else
  if (!splice_available()) {
    const std::error_code unsupported{ENOTSUP, io_error_category()};
    if (ec == nullptr) {
      throw std::system_error(unsupported,
                              "corio: splice is not used on the asio reactor (its file operations block a thread)");
    }
    *ec = unsupported;
    co_return 0;
  }
  if (in < 0 || out < 0) {
    report(ec, std::error_code{EBADF, io_error_category()}, "bad descriptor", in, out);
    co_return 0;
  }
  const bool wait_in = non_blocking(in);
  const bool wait_out = non_blocking(out);
  const bool direct = is_pipe(in) || is_pipe(out);
  int pipe_fds[2] = {-1, -1};
  if (!direct && ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    report(ec, std::error_code{errno, io_error_category()}, "pipe2", in, out);
    co_return 0;
  }
  file_descriptor pipe_read{pipe_fds[0]};
  file_descriptor pipe_write{pipe_fds[1]};
  std::error_code step;
  std::uint64_t total = 0;
  bool use_splice = true;
  std::vector<std::byte> buffer;  // the read/write fallback's
  while (total < limit) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(limit - total, chunk));
    if (wait_in) {
      co_await wait_readable(in, step);
      if (step) break;
    }
    if (!use_splice) {
      if (buffer.empty()) buffer.resize(chunk);
      const std::size_t n = co_await step_operation{io_opcode::read_at, in, -1, buffer.data(), want, &step};
      if (step || n == 0) break;
      const std::size_t written = co_await write_all_raw(out, buffer.data(), n, wait_out, &step);
      total += written;
      if (step) break;
      continue;
    }
    if (direct) {
      if (wait_out) {
        co_await wait_writable(out, step);
        if (step) break;
      }
      const std::size_t n = co_await step_operation{io_opcode::splice, in, out, nullptr, want, &step};
      if (step && refused(step)) {  // nothing moved: go on with reads and writes
        step.clear();
        use_splice = false;
        continue;
      }
      if (step || n == 0) break;
      total += n;
      spliced_total.fetch_add(n, std::memory_order_relaxed);
      continue;
    }
    // in -> pipe -> out: whatever enters the pipe leaves it before the next step.
    const std::size_t n =
        co_await step_operation{io_opcode::splice, in, pipe_write.get(), nullptr, want, &step};
    if (step && refused(step)) {  // nothing was taken from `in`
      step.clear();
      use_splice = false;
      continue;
    }
    if (step || n == 0) break;
    std::size_t left = n;
    while (left > 0) {
      if (wait_out) {
        co_await wait_writable(out, step);
        if (step) break;
      }
      const std::size_t m =
          co_await step_operation{io_opcode::splice, pipe_read.get(), out, nullptr, left, &step};
      if (step && refused(step)) {
        // `out` takes no splice (O_APPEND, say): empty the pipe with a read (its bytes are
        // there) and a write, then go on with reads and writes.
        step.clear();
        use_splice = false;
        if (buffer.empty()) buffer.resize(chunk);
        const ssize_t got = ::read(pipe_read.get(), buffer.data(), left);
        if (got < 0) {
          step = std::error_code{errno, io_error_category()};
          break;
        }
        const std::size_t written = co_await write_all_raw(out, buffer.data(), static_cast<std::size_t>(got),
                                                           wait_out, &step);
        total += written;
        left -= written;
        break;
      }
      if (step) break;
      if (m == 0) {  // a splice into `out` that took nothing: no progress is possible
        step = std::error_code{EIO, io_error_category()};
        break;
      }
      total += m;
      left -= m;
      spliced_total.fetch_add(m, std::memory_order_relaxed);
    }
    if (step) break;
  }
  if (step) report(ec, step, "transfer failed", in, out);
  co_return total;
#endif
}

}  // namespace corio::detail
