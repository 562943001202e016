// lib/fault_injection.hpp - making chosen I/O operations fail, for tests (meson option
// `fault_injection`, which defines CORIO_FAULT_INJECTION for the library and the tests).
//
// Declared always, defined only in a library built with the option (lib/fault_injection.cpp):
// a program that calls these functions against a library built without it does not link, and
// the reactors, which consult the registry only under `#if CORIO_FAULT_INJECTION`, carry no
// trace of it in a normal build.
//
// The seam is the submission: each reactor's submit() asks on_submit() about every request
// (io_uring and Asio alike, so both reactors get the same faults), and
//  - an injected error completes the request with -error without starting the operation: the
//    kernel did nothing (an accept leaves the connection in the backlog, a recv leaves the bytes
//    in the socket, a send sends nothing), as when the kernel itself fails the call. The
//    completion is delivered by the reactor's next poll(), through finish_request like any other,
//    never inside submit();
//  - an injected short transfer clamps the length the kernel or Asio is given for that one
//    submission (the request keeps its own length), so a recv cannot lose bytes the kernel
//    delivered and a send sends a prefix: the honest way to make a short read or write.
// Rewriting results at completion instead would drop bytes a recv already received.
//
// Design: the failpoints of FreeBSD's fail(9) and of TiKV's fail-rs ("the next N", "every Kth"),
// kept to the few sites a socket runtime has.
#pragma once

#include <cstddef>
#include <cstdint>

#include "corio/detail/io_operation.hpp"

namespace corio::detail::fault {

/// Where a fault can be injected: one kind of I/O operation (io_opcode) or io_uring's set-up.
enum class site : std::uint8_t {
  accept,       ///< tcp_listener::accept
  connect,      ///< tcp_stream::connect
  recv,         ///< tcp_stream::read_some
  send,         ///< each send of tcp_stream::write_all (a write made of several sends has several)
  read,         ///< a read of a descriptor that is not a socket (corio::signal's eventfd)
  poll,         ///< a readiness wait (io_opcode::poll: corio::wait_readable, wait_writable)
  message,      ///< a recvmsg or sendmsg (datagrams, vectored writes); errors only
  file,         ///< a file operation (read_at, write_at, fsync, openat, statx, close, splice); errors only
  uring_setup,  ///< each io_uring ring set-up: the runtime's probe, then one per worker
};

/// A rule: which operations fault and how. Of the operations at `where` (on descriptor `fd`, or
/// on any when it is -1), the first `skip` pass untouched; after them every `every`-th one faults,
/// `times` times in all (`forever`: no end). A fault is `error` when it is non-zero (the operation
/// completes with -error, or the ring set-up is refused with it); otherwise `max_bytes`: the
/// operation (recv, send, read) moves at most that many bytes, at least 1.
struct rule {
  site where = site::recv;
  int error = 0;              ///< an errno value (ECONNRESET, EMFILE, ...); 0: a short transfer
  std::size_t max_bytes = 0;  ///< bytes, for a short transfer (error 0)
  int fd = -1;                ///< only operations on this descriptor; -1: any
  std::uint64_t skip = 0;     ///< matching operations let through before the first fault
  std::uint64_t every = 1;    ///< 1: each one after `skip`; k: one in k
  std::uint64_t times = 1;    ///< faults in all before the rule is spent
};

/// `times` without end.
inline constexpr std::uint64_t forever = UINT64_MAX;

/// Arms `r` and returns its id (> 0). Throws std::invalid_argument for a rule that cannot fault:
/// a negative error, `every` 0, neither an error nor `max_bytes`, or `max_bytes` where nothing
/// is transferred (accept, connect, uring_setup). Thread-safe: rules may be armed while the
/// runtime runs; an operation already submitted is not affected.
int arm(const rule& r);

/// Removes rule `id` (nothing when it is not armed). Thread-safe.
void disarm(int id) noexcept;

/// Removes every rule. Thread-safe.
void clear() noexcept;

/// How many faults rule `id` injected so far (also after it is spent; 0 when unknown).
[[nodiscard]] std::uint64_t injected(int id) noexcept;

/// How many times an io_uring reactor found its completion queue overflowed
/// (IORING_SQ_CQ_OVERFLOW: completions waiting in the kernel for room) when it reaped. For the
/// tiny-ring tests, which must show that overflow happened and that nothing was lost.
[[nodiscard]] std::uint64_t cq_overflows() noexcept;

// --- what the reactors call (only under CORIO_FAULT_INJECTION) ----------------------------------

/// What the rules decide for one submission of `r`: `error` non-zero to complete it with
/// -error without starting it; otherwise `length` is the byte count to hand the kernel (r.length,
/// or less for a short transfer). Owner thread of the reactor; takes the registry's mutex only
/// while some rule is armed.
struct decision {
  int error = 0;
  std::size_t length = 0;
};
[[nodiscard]] decision on_submit(const io_request& r) noexcept;

/// The errno an io_uring set-up must be refused with, or 0. Any thread.
[[nodiscard]] int on_uring_setup() noexcept;

/// Counts one overflowed completion queue seen (see cq_overflows()).
void note_cq_overflow() noexcept;

}  // namespace corio::detail::fault
