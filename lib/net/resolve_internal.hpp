// lib/net/resolve_internal.hpp - what tcp.cpp and the tests share of lib/net/resolve.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "corio/net/resolve.hpp"

namespace corio::detail {

using net::address_family;
using net::endpoint;
using net::resolve_options;

/// The outcome of a lookup: endpoints, or a code (resolve_category or a system errno) and an
/// optional text from the resolver for the message.
struct lookup_result {
  std::vector<endpoint> endpoints;
  std::error_code code;
  std::string detail;
};

/// Resolves `host` for `port` without throwing resolver errors (cancellation still throws).
task<lookup_result> lookup(std::string host, std::uint16_t port, resolve_options options);

/// As lookup(), on the calling thread: numeric and localhost names at once, others through a
/// blocking getaddrinfo (tcp_listener::bind, which is synchronous).
lookup_result lookup_blocking(std::string host, std::uint16_t port, address_family family);

/// Numeric addresses and localhost names, answered without any query; nullopt for other names.
std::optional<std::vector<endpoint>> resolve_locally(std::string_view host, std::uint16_t port,
                                                     address_family family);

/// The text a resolve error's std::system_error carries before ": <code message>":
/// "corio: resolve HOST" (and the resolver's own text when it has one).
std::string describe(std::string_view host, const lookup_result& r);

/// Tests only: a function the pool thread of a getaddrinfo resolve (and lookup_blocking) calls
/// before getaddrinfo (null: none), to hold a call in flight while a test cancels it. Thread-safe.
/// Exported (CORIO_API) for the test suite, which links a shared corio too.
CORIO_API void set_getaddrinfo_hook(void (*hook)()) noexcept;

}  // namespace corio::detail
