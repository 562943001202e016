// corio/net/resolve.hpp - names to endpoints: co_await corio::net::resolve(host, service).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "corio/net/endpoint.hpp"
#include "corio/task.hpp"

namespace corio::net {

/// Why a name could not be resolved: the codes of resolve_category(), in the std::system_error a
/// failed resolve() throws (or the error_code its non-throwing form reports). Both resolvers map
/// their own codes onto these (c-ares's ARES_E*, getaddrinfo's EAI_*), so a program checks one set
/// whichever resolver ran. Operating-system errors (EMFILE, ...) keep the system category, and a
/// cancelled resolve throws corio::operation_cancelled as every corio operation does.
enum class resolve_error {
  host_not_found = 1,  ///< the name does not exist (NXDOMAIN; ARES_ENOTFOUND, EAI_NONAME)
  no_data = 2,  ///< the name exists but has no address of the family asked for (ARES_ENODATA, EAI_NODATA)
  server_failure =
      3,  ///< a DNS server failed or refused to answer (SERVFAIL, REFUSED, a bad answer; EAI_AGAIN, EAI_FAIL)
  timeout = 4,            ///< no server answered within resolver_options::timeout x tries (ARES_ETIMEOUT)
  no_servers = 5,         ///< no DNS server could be contacted at all (ARES_ECONNREFUSED, none configured)
  bad_name = 6,           ///< the host is not a valid name (empty, too long, bad characters; ARES_EBADNAME)
  service_not_found = 7,  ///< the service is neither a port number (0-65535) nor a known name (EAI_SERVICE)
  bad_server = 8,         ///< resolver_options::servers holds an entry that is not a numeric address[:port]
  not_supported = 9,      ///< the options ask for what this resolver cannot do (servers without c-ares)
  other = 10,             ///< anything else the resolver reported (its text is in the exception's message)
};

/// The error category of resolve_error ("corio.resolve"). Thread-safe; a single static object.
CORIO_API const std::error_category& resolve_category() noexcept;

/// Makes `e` an error_code of resolve_category(), so `ec == resolve_error::host_not_found` works.
inline std::error_code make_error_code(resolve_error e) noexcept {
  return {static_cast<int>(e), resolve_category()};
}

/// Which address families resolve() returns.
enum class address_family {
  any,  ///< IPv4 and IPv6 (A and AAAA queries)
  v4,   ///< IPv4 only (A)
  v6,   ///< IPv6 only (AAAA)
};

/// Which implementation resolves names.
enum class resolver_backend {
  /// c-ares on corio's reactor when corio was built with it (CORIO_HAS_CARES), unless the
  /// environment variable CORIO_RESOLVER=getaddrinfo asks for the other; getaddrinfo otherwise.
  automatic,
  /// c-ares (https://c-ares.org), driven by the worker's reactor: its sockets are waited on with
  /// corio::wait_readable / wait_writable, its deadlines with a corio timer. Cancellation destroys
  /// the query at once. std::system_error(resolve_error::not_supported) when corio was built
  /// without c-ares.
  cares,
  /// The system's getaddrinfo(3) (glibc: nsswitch, /etc/hosts, resolv.conf, NSS modules) on the
  /// runtime's blocking pool (corio/blocking.hpp: at most runtime_options::max_blocking_threads
  /// calls at once, the others queued, as Tokio's lookup_host). A cancelled resolve returns at
  /// once: a call still queued never runs; one that started cannot be interrupted, so it runs to
  /// its end on its pool thread and its result is dropped (the runtime's shutdown waits for it).
  getaddrinfo,
};

/// How the resolver finds its answers (the c-ares resolver; the getaddrinfo one has its system's
/// configuration and accepts only the defaults here). Value type. Design: Go's net.Resolver (with a
/// custom Dial for other servers), Tokio/hickory's ResolverConfig and ResolverOpts, c-ares's
/// ares_init_options and ares_set_servers_ports_csv.
struct resolver_options {
  /// DNS servers to ask instead of /etc/resolv.conf's, in order: numeric "1.2.3.4", "1.2.3.4:5353",
  /// "[::1]:53" (port 53 when none is given). Empty: the system's configuration. Search domains
  /// are not applied when servers are given (names are asked as they are written).
  std::vector<std::string> servers{};
  /// How long one query waits for a server's answer before it tries again (the next server, or
  /// the same one), in milliseconds; 0: c-ares's default (5000 ms in c-ares 1.18). c-ares counts
  /// it in real time, also under corio's manual clock.
  std::chrono::milliseconds timeout{0};
  /// How many times each server is tried; 0: c-ares's default (4). The whole resolve fails with
  /// resolve_error::timeout after about servers x tries x timeout.
  int tries = 0;
  /// Whether /etc/hosts is read before DNS is asked (c-ares's "fb" lookups; "b" when false).
  bool hosts_file = true;
  /// Which implementation to use.
  resolver_backend backend = resolver_backend::automatic;
};

/// What resolve() asks for. Value type. Pass it as a named variable or directly, as you like:
/// resolve() is an ordinary function that moves it into the coroutine, so g++ 12's bug with
/// aggregates built inside a co_await expression (README, Compiler notes) does not reach it.
struct resolve_options {
  /// Which address families to return (default: both, IPv6 and IPv4).
  address_family family = address_family::any;
  /// How to resolve: the implementation, DNS servers, timeout, tries (see resolver_options).
  resolver_options resolver{};
};

}  // namespace corio::net

namespace corio::detail {
/// The coroutine behind every resolve(); `ec` null: throw. Defined in lib/net/resolve.cpp.
CORIO_API task<std::vector<net::endpoint>> resolve_impl(std::string host, std::string service,
                                                        net::resolve_options options, std::error_code* ec);
/// Resolves `service` to a port on the calling thread: a decimal number 0-65535, or a name from
/// the services database (getservbyname_r, tcp; "http" and "https" are known without it). Returns
/// false when it is neither. Defined in lib/net/resolve.cpp.
CORIO_API bool service_port(std::string_view service, std::uint16_t& port) noexcept;
/// Splits "host:port", "[v6]:port" into host and port text; false when there is no ":port".
CORIO_API bool split_host_port(std::string_view text, std::string_view& host,
                               std::string_view& port) noexcept;
}  // namespace corio::detail

namespace corio::net {

/// Resolves `host` (a DNS name, a name in /etc/hosts, "localhost", or a numeric IPv4 or IPv6
/// address, with an optional "%scope" for IPv6) and `service` (a port number "8080" or a service
/// name "http") into the endpoints to try, in the resolver's order, without duplicates. `co_await`
/// it in a task on a corio runtime; the worker never blocks.
///
/// Numeric addresses and "localhost" (and names ending in ".localhost", RFC 6761 section 6.3:
/// 127.0.0.1 and ::1, never asked of DNS) are answered without any query, by either backend.
/// Other names go to the resolver backend (resolver_options::backend): c-ares driven by corio's
/// reactor when corio was built with it, else getaddrinfo on the runtime's blocking pool.
///
/// Errors: std::system_error whose message names the host ("corio: resolve nosuch.test: host not
/// found (NXDOMAIN)") and whose code is a resolve_error of resolve_category() (host_not_found,
/// no_data, server_failure, timeout, ...), or a system errno (EMFILE). Cancellation: the task's
/// stop (join_handle::cancel, corio::timeout, try_timeout, a task_group) ends the resolve at once
/// with operation_cancelled (timed_out for a timeout): c-ares's queries are destroyed, a
/// getaddrinfo call is abandoned (one still queued never runs; one that started finishes on its
/// pool thread, its result dropped).
///
/// Thread-safety: any number of resolves may run at once, on any workers; each has its own c-ares
/// channel (so /etc/resolv.conf and /etc/hosts are read per call: a changed file is seen at once,
/// at the cost of a few file reads per resolve). Design: Tokio's lookup_host, Go's
/// net.Resolver.LookupIPAddr / LookupPort, c-ares's ares_getaddrinfo.
[[nodiscard("co_await it")]] inline task<std::vector<endpoint>> resolve(std::string_view host,
                                                                        std::string_view service) {
  return detail::resolve_impl(std::string{host}, std::string{service}, resolve_options{}, nullptr);
}
/// As resolve(host, service), with a family and resolver options.
[[nodiscard("co_await it")]] inline task<std::vector<endpoint>> resolve(std::string_view host,
                                                                        std::string_view service,
                                                                        resolve_options options) {
  return detail::resolve_impl(std::string{host}, std::string{service}, std::move(options), nullptr);
}
/// As resolve(host, service, options), reporting a failure in `ec` (cleared on success) and
/// yielding an empty vector instead of throwing; cancellation still throws operation_cancelled.
/// `ec` must outlive the co_await.
[[nodiscard("co_await it")]] inline task<std::vector<endpoint>> resolve(std::string_view host,
                                                                        std::string_view service,
                                                                        resolve_options options,
                                                                        std::error_code& ec) {
  return detail::resolve_impl(std::string{host}, std::string{service}, std::move(options), &ec);
}

/// True when this corio was built with c-ares (CORIO_HAS_CARES), so resolver_backend::automatic
/// uses it and resolver_options::servers work.
CORIO_API bool has_cares() noexcept;

}  // namespace corio::net

// Not corio's API: std's trait, which Doxygen cannot place; hidden from the reference.
/// \cond
template <>
struct std::is_error_code_enum<corio::net::resolve_error> : std::true_type {};
/// \endcond
