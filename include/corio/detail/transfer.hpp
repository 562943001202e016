// corio/detail/transfer.hpp - symmetric transfer, with a trampoline where the compiler needs one.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>

/// CORIO_TRAMPOLINE: 1 when this file's awaiters hand the next coroutine to the trampoline, 0 when
/// they return it for symmetric transfer (see transfer() below). Decided per translation unit
/// from what the compiler predefines, so nothing has to match the library: g++ without
/// optimization (no `__OPTIMIZE__`: -O0) and g++ with AddressSanitizer or ThreadSanitizer at any
/// level do not make symmetric transfer a tail call; optimized g++ and clang at every level do.
/// g++ predefines the same macros at -O1, -Og and -O2, so a file built with g++ -O1 or -Og
/// defines CORIO_TRAMPOLINE=1 itself to keep a long loop of synchronous awaits flat (corio's
/// Meson build does it for its dependents). Defining it either way is always safe: it never has
/// to match the library or other files.
#ifndef CORIO_TRAMPOLINE
#if defined(__GNUC__) && !defined(__clang__) && \
    (!defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__))
#define CORIO_TRAMPOLINE 1
#else
#define CORIO_TRAMPOLINE 0
#endif
#endif

namespace corio::detail {

/// Hands `next` to the code that resumed the current coroutine, to be resumed after it returns.
/// Used by transfer() in trampoline mode. Not thread-safe: per thread, and at most one handle may
/// be pending at a time (`one-transfer-pending`, docs/internals.md). Out of line, in
/// lib/worker.cpp, so that every file and the library share one slot per thread whatever mode each
/// was built in, and because clang caches thread-local addresses across suspension points
/// (llvm #47179, #49257, #63022): thread-locals are only ever reached through a call.
CORIO_API void trampoline_push(std::coroutine_handle<> next) noexcept;

/// What a corio awaitable whose task just parked (published itself to whoever wakes it) resumes
/// next by symmetric transfer: the next task of the calling worker's local queues, so that a
/// parked task does not cost a trip through the worker loop, or std::noop_coroutine() (back to
/// the loop: maintenance due, nothing local, or not on a worker). Touches nothing of the parked
/// task. Thread-safe (works on the calling thread's worker only). Defined in lib/worker.cpp.
CORIO_API std::coroutine_handle<> next_after_park() noexcept;

/// What an `await_suspend` returns to continue with `next` without growing the stack.
///
/// Normally this is symmetric transfer (P0913): `await_suspend` returns `next` and the compiler
/// emits a tail call. GCC does not emit that tail call without optimization, nor under ASan or
/// TSan (libcoro #273/#277; confirmed for g++ 12.2): a loop of a million synchronously completing
/// `co_await`s then overflows the stack. In trampoline mode (CORIO_TRAMPOLINE above) `next` is
/// parked in a thread-local slot and control returns to whoever resumed the coroutine: that is
/// always the library's worker loop (lib/worker.cpp: resume), which resumes the slot's handle
/// until it is empty, whatever mode the library itself was built in. Flat stack at every
/// optimization level, a few ns dearer.
///
/// The two forms mean the same (continue with `next`) and differ only in stack depth, so an inline
/// awaiter that the linker takes from a file built in the other mode stays correct.
inline std::coroutine_handle<> transfer(std::coroutine_handle<> next) noexcept {
#if CORIO_TRAMPOLINE
  trampoline_push(next);
  return std::noop_coroutine();
#else
  return next;
#endif
}

}  // namespace corio::detail
