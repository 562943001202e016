// corio/detail/transfer.hpp - symmetric transfer, with a trampoline where the compiler needs one.
#pragma once

#include <coroutine>

namespace corio::detail {

/// Hands `next` to the code that resumed the current coroutine, to be resumed after it returns.
/// Used only in trampoline mode (see transfer()). Not thread-safe: per thread, and at most one
/// handle may be pending at a time. Out of line on purpose: clang caches thread-local addresses
/// across suspension points (llvm #47179, #49257, #63022), so thread-locals are only ever
/// reached through a call.
void trampoline_push(std::coroutine_handle<> next) noexcept;

/// Takes the handle that trampoline_push() left for this thread, or a null handle.
std::coroutine_handle<> trampoline_take() noexcept;

/// What a corio awaitable whose task just parked (published itself to whoever wakes it) resumes
/// next by symmetric transfer: the next task of the calling worker's local queues, so that a
/// parked task does not cost a trip through the worker loop, or std::noop_coroutine() (back to
/// the loop: maintenance due, nothing local, or not on a worker). Touches nothing of the parked
/// task. Thread-safe (works on the calling thread's worker only). Defined in lib/worker.cpp.
std::coroutine_handle<> next_after_park() noexcept;

/// Resumes `h` and then every coroutine it transferred to through the trampoline, until the chain
/// suspends for real. Every place in corio that resumes a coroutine goes through here. Must be
/// called on the thread that will run the coroutine; never throws (coroutine bodies catch into
/// their promise).
inline void resume(std::coroutine_handle<> h) noexcept {
#if defined(CORIO_TRAMPOLINE) && CORIO_TRAMPOLINE
  while (h) {
    h.resume();
    h = trampoline_take();
  }
#else
  h.resume();  // symmetric transfer: nothing is ever left in the trampoline
#endif
}

/// What an `await_suspend` returns to continue with `next` without growing the stack.
///
/// Normally this is symmetric transfer (P0913): `await_suspend` returns `next` and the compiler
/// emits a tail call. GCC does not emit that tail call without optimization (libcoro #273/#277;
/// confirmed for g++ 12.2 at -O0 and -O1, with and without ASan): a loop of a million
/// synchronously completing `co_await`s then overflows the stack. With `CORIO_TRAMPOLINE` defined
/// (corio's Meson build defines it for g++ at optimization 0, 1 and g, and passes it to users
/// through the dependency), `next` is parked in a thread-local slot and control returns to the
/// resume() loop above, which resumes it: flat stack at every optimization level, a few ns dearer.
/// Both modes interoperate, because every resumer is the loop above.
inline std::coroutine_handle<> transfer(std::coroutine_handle<> next) noexcept {
#if defined(CORIO_TRAMPOLINE) && CORIO_TRAMPOLINE
  trampoline_push(next);
  return std::noop_coroutine();
#else
  return next;
#endif
}

}  // namespace corio::detail
