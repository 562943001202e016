// corio/detail/splice.hpp - detail::splice_copy, the kernel fast path of corio::copy between two
// descriptors (defined in lib/fs.cpp), declared apart so that corio/io.hpp can use it without
// including all of corio/fs.hpp.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstdint>
#include <limits>
#include <system_error>

#include "corio/task.hpp"

namespace corio::detail {

/// Copies from descriptor `in` to descriptor `out` with splice(2) until `in` ends (a read of 0)
/// or `limit` bytes were moved; yields the bytes moved. The bytes never enter user memory: when
/// neither end is a pipe they go through a pipe made for this copy (in -> pipe -> out, at most
/// 64 KiB per step), when one end is a pipe directly. Both descriptors are read and written at
/// their file positions (offset -1) and are neither closed nor made non-blocking. Each splice is
/// one IORING_OP_SPLICE on io_uring; a kernel without it, or a pair splice(2) refuses (EINVAL:
/// a file opened with O_APPEND or O_DIRECT, an eventfd...), goes on with IORING_OP_READ and
/// WRITE through a 64 KiB buffer, without losing or repeating a byte. A non-blocking socket or
/// pipe end is waited for (POLL_ADD) before each splice from or into it.
///
/// Where it cannot run, it moves nothing and reports std::errc::not_supported (ENOTSUP) at
/// once, so that the caller (corio::copy) can take its stream loop instead: outside Linux
/// ("corio: splice is not supported on this platform"), and on the Asio reactor, whose file
/// operations block a thread (a splice from a socket would hold it until the peer sends).
///
/// Errors: into *ec when `ec` is not null (cleared on success; the yield is then the bytes moved
/// before the error), otherwise std::system_error; operation_cancelled when the task's stop is
/// requested (a splice waiting on a socket is interrupted). Called from a task on a corio worker.
/// Design: Linux splice(2) and io_uring_prep_splice(3), Go's io.Copy choosing splice for TCP
/// (net/splice_linux.go), Tokio's tokio::io::copy.
[[nodiscard]] CORIO_API task<std::uint64_t> splice_copy(
    int in, int out, std::uint64_t limit = std::numeric_limits<std::uint64_t>::max(),
    std::error_code* ec = nullptr);

/// True when splice_copy can run on the calling thread: Linux, on a worker whose reactor is
/// io_uring. False elsewhere (then splice_copy reports ENOTSUP without moving anything).
[[nodiscard]] CORIO_API bool splice_available() noexcept;

/// Bytes splice_copy moved with splice(2) since the program started (not those of its read and
/// write fallback): a counter for tests and diagnostics, to see that a copy took the fast path.
/// Relaxed atomic; any thread.
[[nodiscard]] CORIO_API std::uint64_t spliced_bytes() noexcept;

}  // namespace corio::detail
