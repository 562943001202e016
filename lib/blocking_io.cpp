// lib/blocking_io.cpp - the file operations of the reactor seam as plain system calls, for
// reactors that have no asynchronous form of them (see perform_blocking_io in reactor.hpp).
#include <cerrno>

#include "reactor.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace corio::detail {

int perform_blocking_io(io_request& r) noexcept {
#if defined(_WIN32)
  (void)r;
  return -ENOTSUP;  // corio's file operations are POSIX only for now
#else
  for (;;) {
    long rc = -1;
    switch (r.opcode) {
      case io_opcode::read_at:
        rc = r.offset < 0 ? ::read(r.fd, r.buffer, r.length)
                          : ::pread(r.fd, r.buffer, r.length, static_cast<off_t>(r.offset));
        break;
      case io_opcode::write_at:
        rc = r.offset < 0 ? ::write(r.fd, r.buffer, r.length)
                          : ::pwrite(r.fd, r.buffer, r.length, static_cast<off_t>(r.offset));
        break;
      case io_opcode::fsync:
#if defined(__APPLE__)
        rc = ::fsync(r.fd);
#else
        rc = (r.flags & fsync_datasync) != 0 ? ::fdatasync(r.fd) : ::fsync(r.fd);
#endif
        break;
      case io_opcode::openat:
        rc = ::openat(r.fd, static_cast<const char*>(r.address), static_cast<int>(r.flags),
                      static_cast<mode_t>(r.length));
        break;
      case io_opcode::statx:
#if defined(__linux__) && defined(STATX_BASIC_STATS)
        rc = ::statx(r.fd, static_cast<const char*>(r.address), static_cast<int>(r.flags),
                     static_cast<unsigned>(r.length), static_cast<struct statx*>(r.buffer));
        break;
#else
        return -ENOTSUP;
#endif
      case io_opcode::close:
        // Never retried: on Linux the descriptor is gone even when close() reports EINTR.
        return ::close(r.fd) == 0 ? 0 : -errno;
      case io_opcode::splice:
#if defined(__linux__)
      {
        loff_t offset = r.offset;
        rc = ::splice(r.fd, r.offset < 0 ? nullptr : &offset, static_cast<int>(r.address_length), nullptr,
                      r.length, r.flags);
        break;
      }
#else
        return -ENOTSUP;
#endif
      default:
        return -EINVAL;  // not a file operation
    }
    if (rc >= 0) return static_cast<int>(rc);
    if (errno != EINTR) return -errno;
  }
#endif
}

}  // namespace corio::detail
