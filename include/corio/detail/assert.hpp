// corio/detail/assert.hpp - CORIO_ASSERT: the runtime's invariants, checked where a fast path relies
// on them.
//
// docs/internals.md names every invariant a fast path of the runtime relies on ("worker-owner-only",
// "solo-claim-under-lock", ...). CORIO_ASSERT(condition, "name") checks one of them at a place that
// relies on it: when NDEBUG is not defined (debug and sanitizer builds, the ASan build in CI) a false
// condition prints the invariant's name, the condition and the place to stderr and aborts; with
// NDEBUG the condition is not evaluated and the macro costs nothing. It never adds a member to a
// type, so a program and the library may be built one with and one without NDEBUG and still work
// together (the failure function is always in the library). Like assert(3) and LLVM's assert with a
// message; the named invariant follows the Linux kernel's lockdep_assert_held() in spirit: the
// check names the rule it guards.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

namespace corio::detail {

/// Reports a broken invariant (its name from docs/internals.md, the condition that failed, the
/// file and line) on stderr and aborts. Never returns. Thread-safe. Defined in lib/assert.cpp; the
/// library always has it, whatever NDEBUG was when it was built.
[[noreturn]] CORIO_API void assertion_failed(const char* invariant, const char* condition, const char* file,
                                             int line) noexcept;

}  // namespace corio::detail

#if defined(NDEBUG)
/// Checks `condition` (the invariant `name` of docs/internals.md) when NDEBUG is not defined; see
/// the file comment. With NDEBUG: no code, and `condition` is not evaluated.
#define CORIO_ASSERT(condition, name) static_cast<void>(0)
#else
#define CORIO_ASSERT(condition, name)                                                               \
  ((condition) ? static_cast<void>(0)                                                                 \
               : ::corio::detail::assertion_failed(name, #condition, __FILE__, __LINE__))
#endif
