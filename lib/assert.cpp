// lib/assert.cpp - what a failed CORIO_ASSERT calls (corio/detail/assert.hpp). Compiled whatever
// NDEBUG is, so that a program built without NDEBUG links against a library built with it.
#include "corio/detail/assert.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace corio::detail {

void assertion_failed(const char* invariant, const char* condition, const char* file, int line) noexcept {
  fmt::print(stderr, "corio: invariant '{}' broken ({}:{}: {}); see docs/internals.md\n", invariant, file,
             line, condition);
  std::fflush(stderr);
  std::abort();
}

}  // namespace corio::detail
