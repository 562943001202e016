// lib/net/resolve.cpp - corio::net::resolve: numeric addresses and localhost answered here, other
// names by c-ares on the worker's reactor (CORIO_HAS_CARES) or by getaddrinfo on the blocking pool.
#include "corio/net/resolve.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "../blocking_pool.hpp"
#include "corio/cancel.hpp"
#include "corio/errors.hpp"
#include "corio/event.hpp"
#include "corio/wait_fd.hpp"
#include "resolve_internal.hpp"
#include "socket_api.hpp"

#if !defined(_WIN32)
#include <netdb.h>
#endif

#if defined(CORIO_HAS_CARES)
#include <ares.h>
#include <sys/epoll.h>
#include <unistd.h>
#endif

namespace corio::detail {

using net::address_family;
using net::endpoint;
using net::resolve_error;
using net::resolve_options;
using net::resolver_backend;
using net::resolver_options;

namespace {

class resolve_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "corio.resolve"; }
  std::string message(int code) const override {
    switch (static_cast<resolve_error>(code)) {
      case resolve_error::host_not_found:
        return "host not found (NXDOMAIN)";
      case resolve_error::no_data:
        return "the name has no address of the requested family";
      case resolve_error::server_failure:
        return "the DNS server failed or refused to answer";
      case resolve_error::timeout:
        return "no DNS server answered in time";
      case resolve_error::no_servers:
        return "no DNS server could be contacted";
      case resolve_error::bad_name:
        return "not a valid host name";
      case resolve_error::service_not_found:
        return "unknown service (not a port number or a service name)";
      case resolve_error::bad_server:
        return "a DNS server in resolver_options::servers is not address[:port]";
      case resolve_error::not_supported:
        return "not supported by this resolver";
      case resolve_error::other:
        return "name resolution failed";
    }
    return "unknown resolve error";
  }
};

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

/// RFC 6761 section 6.3: "localhost" and names under it are the loopback, never asked of DNS.
bool is_localhost(std::string_view host) noexcept {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (iequals(host, "localhost")) return true;
  constexpr std::string_view suffix = ".localhost";
  return host.size() > suffix.size() && iequals(host.substr(host.size() - suffix.size()), suffix);
}

std::string numeric_text(std::string_view address, std::uint16_t port, bool v6) {
  return v6 ? fmt::format("[{}]:{}", address, port) : fmt::format("{}:{}", address, port);
}

void add_unique(std::vector<endpoint>& out, const endpoint& e) {
  if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
}

bool family_wanted(address_family f, const endpoint& e) noexcept {
  return f == address_family::any || (f == address_family::v4 && e.is_v4()) ||
         (f == address_family::v6 && e.is_v6());
}

/// The backend a resolve uses, the environment read once per call (CORIO_RESOLVER).
resolver_backend choose_backend(resolver_backend asked) noexcept {
  if (asked != resolver_backend::automatic) return asked;
#if defined(CORIO_HAS_CARES)
  if (const char* env = std::getenv("CORIO_RESOLVER");
      env != nullptr && std::string_view{env} == "getaddrinfo") {
    return resolver_backend::getaddrinfo;
  }
  return resolver_backend::cares;
#else
  return resolver_backend::getaddrinfo;
#endif
}

// --- getaddrinfo on the blocking pool ---------------------------------------------------------
//
// The call cannot be interrupted, and a cancelled resolve must not wait for it, so the job does
// not live in the task's frame as spawn_blocking's does: a heap state shared by the waiter and the
// job (two references) holds the inputs, the result and an event the job sets. A cancelled waiter
// leaves at once through blocking_pool::abandon: a job still queued is removed and never runs; a
// running one finishes alone, touching only the state (its event has no waiter then, so set()
// wakes nobody), and the last reference frees it. The pool waits for running jobs at shutdown
// before the runtime goes away, so a job never outlives the runtime whose gate its wake uses.

struct gai_call {
  std::string host;
  std::string port;
  int family = 0;
  int status = 0;        // getaddrinfo's return value
  int system_error = 0;  // errno for EAI_SYSTEM
  std::vector<endpoint> out;
};

std::atomic<void (*)()> gai_hook{nullptr};

void run_getaddrinfo(gai_call& c) noexcept {
  if (auto* hook = gai_hook.load(std::memory_order_acquire)) hook();
  addrinfo hints{};
  hints.ai_family = c.family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  c.status = ::getaddrinfo(c.host.c_str(), c.port.c_str(), &hints, &res);
#if defined(EAI_SYSTEM)
  if (c.status == EAI_SYSTEM) c.system_error = errno;
#endif
  if (c.status == 0) {
    try {
      for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
        if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
          add_unique(c.out, endpoint::from_native(a->ai_addr, a->ai_addrlen));
      }
    } catch (...) {
      c.status = EAI_MEMORY;
    }
    ::freeaddrinfo(res);
  }
}

/// A getaddrinfo call on the blocking pool, shared by the waiting task and the job.
struct gai_job final : blocking_job {
  gai_call call;
  corio::event done;               ///< set by the job once `call` holds the result
  std::atomic<int> references{2};  ///< the waiter's and the job's

  gai_job() noexcept { run = &run_job; }

  static void release(gai_job* j) noexcept {
    if (j->references.fetch_sub(1, std::memory_order_acq_rel) == 1) delete j;
  }
  static void run_job(blocking_job& self) noexcept {
    auto& j = static_cast<gai_job&>(self);
    run_getaddrinfo(j.call);
    j.done.set();  // wakes the task if it still waits: the result is read after the wait
    release(&j);   // the last touch: the waiter may have left already
  }
};

/// The waiter's reference, in the task's frame: leaving (done, cancelled, or the frame destroyed
/// at shutdown) abandons the job and releases the job's reference too when it never runs.
struct gai_leave {
  blocking_pool* pool;
  void operator()(gai_job* j) const noexcept {
    if (!pool->abandon(*j)) gai_job::release(j);
    gai_job::release(j);
  }
};

std::error_code gai_code(int status, [[maybe_unused]] int system_error) {  // unused without EAI_SYSTEM (Windows)
  switch (status) {
    case EAI_NONAME:
      return resolve_error::host_not_found;
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    case EAI_NODATA:
      return resolve_error::no_data;
#endif
#if defined(EAI_ADDRFAMILY)
    case EAI_ADDRFAMILY:
      return resolve_error::no_data;
#endif
    case EAI_AGAIN:
    case EAI_FAIL:
      return resolve_error::server_failure;
    case EAI_SERVICE:
      return resolve_error::service_not_found;
    case EAI_FAMILY:
      return resolve_error::not_supported;
    case EAI_MEMORY:
      return std::make_error_code(std::errc::not_enough_memory);
#if defined(EAI_SYSTEM)
    case EAI_SYSTEM:
      return {system_error != 0 ? system_error : EIO, io_error_category()};
#endif
    default:
      return resolve_error::other;
  }
}

task<lookup_result> lookup_getaddrinfo(std::string host, std::uint16_t port, address_family family) {
  blocking_pool& pool = current_blocking_pool("corio::net::resolve: called outside a task on a runtime");
  std::unique_ptr<gai_job, gai_leave> job{new gai_job, gai_leave{&pool}};
  job->call.host = std::move(host);
  job->call.port = std::to_string(port);
  job->call.family = family == address_family::v4   ? AF_INET
                     : family == address_family::v6 ? AF_INET6
                                                    : AF_UNSPEC;
  lookup_result r;
  try {
    (void)pool.submit(*job);              // fresh, so never refused
  } catch (const std::system_error& e) {  // no thread could be started
    r.code = e.code();
    co_return r;
  }
  co_await job->done.wait();  // cancellable: the job keeps its reference and finishes alone
  const gai_call& c = job->call;
  if (c.status != 0) {
    r.code = gai_code(c.status, c.system_error);
    if (r.code == resolve_error::other) r.detail = ::gai_strerror(c.status);
    co_return r;
  }
  r.endpoints = std::move(job->call.out);
  if (r.endpoints.empty()) r.code = resolve_error::no_data;
  co_return r;
}

// --- c-ares on the worker's reactor ----------------------------------------------------------
//
// One channel per resolve, its sockets in an epoll set of its own (the socket-state callback adds
// and removes them), so that one corio::wait_readable on the epoll descriptor waits for all of
// them in either direction; the channel's next deadline (ares_timeout) bounds the wait with a
// corio timer. Cancelling the task ends the wait, and the frame's cleanup destroys the channel
// (its sockets closed, its queries ended) before the awaiting operation returns.

#if defined(CORIO_HAS_CARES)

std::once_flag cares_init_once;
int cares_init_status = ARES_SUCCESS;

struct cares_query {
  ares_channel channel = nullptr;
  int epfd = -1;
  int epoll_error = 0;  // an epoll_ctl that failed in the socket-state callback
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<endpoint> out;

  cares_query() = default;
  cares_query(const cares_query&) = delete;
  cares_query& operator=(const cares_query&) = delete;
  ~cares_query() {
    if (channel != nullptr) ares_destroy(channel);  // ends the query: on_addrinfo with ARES_EDESTRUCTION
    if (epfd >= 0) ::close(epfd);
  }
};

void on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
  auto* q = static_cast<cares_query*>(data);
  if (readable == 0 && writable == 0) {
    (void)::epoll_ctl(q->epfd, EPOLL_CTL_DEL, fd, nullptr);
    return;
  }
  epoll_event ev{};
  ev.events = (readable != 0 ? EPOLLIN : 0u) | (writable != 0 ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (::epoll_ctl(q->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return;
  if (errno == ENOENT && ::epoll_ctl(q->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) return;
  q->epoll_error = errno;
}

void on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* res) {
  auto* q = static_cast<cares_query*>(arg);
  q->done = true;
  q->status = status;
  if (res == nullptr) return;
  try {
    for (ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
      if (n->ai_family == AF_INET || n->ai_family == AF_INET6)
        add_unique(q->out, endpoint::from_native(n->ai_addr, n->ai_addrlen));
    }
  } catch (...) {
    q->status = ARES_ENOMEM;
  }
  ares_freeaddrinfo(res);
}

std::error_code cares_code(int status) {
  switch (status) {
    case ARES_ENOTFOUND:
      return resolve_error::host_not_found;
    case ARES_ENODATA:
      return resolve_error::no_data;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_EFORMERR:
    case ARES_ENOTIMP:
    case ARES_EBADRESP:
      return resolve_error::server_failure;
    case ARES_ETIMEOUT:
      return resolve_error::timeout;
    case ARES_ECONNREFUSED:
      return resolve_error::no_servers;
    case ARES_EBADNAME:
      return resolve_error::bad_name;
    case ARES_ESERVICE:
      return resolve_error::service_not_found;
    case ARES_EBADFAMILY:
      return resolve_error::not_supported;
    case ARES_ENOMEM:
      return std::make_error_code(std::errc::not_enough_memory);
    default:
      return resolve_error::other;
  }
}

/// Builds the servers list for ares_set_servers_ports_csv; false on an entry that is not numeric.
bool servers_csv(const std::vector<std::string>& servers, std::string& csv) {
  for (const auto& s : servers) {
    std::optional<endpoint> e = endpoint::try_parse(s);
    if (!e) e = endpoint::try_parse(s.find(':') != std::string::npos ? fmt::format("[{}]:53", s) : s + ":53");
    if (!e) return false;
    if (!csv.empty()) csv += ',';
    csv += e->to_string();
  }
  return true;
}

/// Sets up `q`'s channel; an error code (and maybe a detail) when it cannot.
std::error_code open_channel(cares_query& q, const resolver_options& o, std::string& detail) {
  std::call_once(cares_init_once, [] { cares_init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (cares_init_status != ARES_SUCCESS) {
    detail = ares_strerror(cares_init_status);
    return resolve_error::other;
  }
  std::string csv;
  if (!servers_csv(o.servers, csv)) return resolve_error::bad_server;
  q.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (q.epfd < 0) return {errno, io_error_category()};
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
  opts.sock_state_cb = &on_socket_state;
  opts.sock_state_cb_data = &q;
  char lookups_fb[] = "fb";
  char lookups_b[] = "b";
  opts.lookups = o.hosts_file ? lookups_fb : lookups_b;
  if (o.timeout.count() > 0) {
    mask |= ARES_OPT_TIMEOUTMS;
    opts.timeout = static_cast<int>(std::min<std::chrono::milliseconds::rep>(o.timeout.count(), 1 << 30));
  }
  if (o.tries > 0) {
    mask |= ARES_OPT_TRIES;
    opts.tries = o.tries;
  }
  if (!o.servers.empty()) {
    mask |= ARES_OPT_FLAGS;
    opts.flags = ARES_FLAG_NOSEARCH;  // names as written: no search domains from resolv.conf
  }
  const int rc = ares_init_options(&q.channel, &opts, mask);
  if (rc != ARES_SUCCESS) {
    q.channel = nullptr;
    detail = ares_strerror(rc);
    return cares_code(rc);
  }
  if (!csv.empty()) {
    const int set = ares_set_servers_ports_csv(q.channel, csv.c_str());
    if (set != ARES_SUCCESS) return resolve_error::bad_server;
  }
  return {};
}

task<lookup_result> lookup_cares(std::string host, std::uint16_t port, address_family family,
                                 resolver_options options) {
  lookup_result r;
  auto q = std::make_unique<cares_query>();
  r.code = open_channel(*q, options, r.detail);
  if (r.code) co_return r;
  ares_addrinfo_hints hints{};
  hints.ai_family = family == address_family::v4   ? AF_INET
                    : family == address_family::v6 ? AF_INET6
                                                   : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  // No service: c-ares 1.18 refuses port "0" (ARES_ESERVICE); the port is set on the results.
  ares_getaddrinfo(q->channel, host.c_str(), nullptr, &hints, &on_addrinfo, q.get());
  // Bounded: each round either handles readiness or a deadline c-ares set; c-ares ends the query
  // after its tries, and the task's stop ends the wait.
  while (!q->done) {
    if (q->epoll_error != 0) {
      r.code = {q->epoll_error, io_error_category()};
      co_return r;  // destroys the channel
    }
    timeval tv{};
    const timeval* next = ares_timeout(q->channel, nullptr, &tv);
    const auto wait = next != nullptr
                          ? std::chrono::seconds{next->tv_sec} + std::chrono::microseconds{next->tv_usec}
                          : std::chrono::microseconds{std::chrono::hours{1}};
    auto ready = co_await corio::try_timeout(wait, corio::wait_readable(q->epfd));
    (void)ready;
    epoll_event events[8];
    const int n = ::epoll_wait(q->epfd, events, 8, 0);
    if (n <= 0) {
      ares_process_fd(q->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // the deadline: retries, timeouts
      continue;
    }
    for (int i = 0; i < n && !q->done; ++i) {
      const int fd = events[i].data.fd;
      const bool rd = (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0;
      const bool wr = (events[i].events & EPOLLOUT) != 0;
      ares_process_fd(q->channel, rd ? fd : ARES_SOCKET_BAD, wr ? fd : ARES_SOCKET_BAD);
    }
  }
  if (q->status != ARES_SUCCESS) {
    r.code = cares_code(q->status);
    if (r.code == resolve_error::other) r.detail = ares_strerror(q->status);
    co_return r;
  }
  r.endpoints = std::move(q->out);
  for (auto& e : r.endpoints) {
    const std::uint16_t net_port = htons(port);
    if (e.is_v4()) std::memcpy(static_cast<char*>(e.data()) + offsetof(sockaddr_in, sin_port), &net_port, 2);
    if (e.is_v6())
      std::memcpy(static_cast<char*>(e.data()) + offsetof(sockaddr_in6, sin6_port), &net_port, 2);
  }
  if (r.endpoints.empty()) r.code = resolve_error::no_data;
  co_return r;
}

#endif  // CORIO_HAS_CARES

}  // namespace
}  // namespace corio::detail

namespace corio::net {

const std::error_category& resolve_category() noexcept {
  static const detail::resolve_category_impl category;
  return category;
}

bool has_cares() noexcept {
#if defined(CORIO_HAS_CARES)
  return true;
#else
  return false;
#endif
}

}  // namespace corio::net

namespace corio::detail {

void set_getaddrinfo_hook(void (*hook)()) noexcept { gai_hook.store(hook, std::memory_order_release); }

bool service_port(std::string_view service, std::uint16_t& port) noexcept {
  if (service.empty()) return false;
  if (std::all_of(service.begin(), service.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    unsigned value = 0;
    const auto [p, ec] = std::from_chars(service.data(), service.data() + service.size(), value);
    if (ec != std::errc{} || p != service.data() + service.size() || value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
  }
  if (service.size() > 64) return false;
#if !defined(_WIN32)
  const std::string name{service};
  servent entry{};
  servent* found = nullptr;
  char buffer[1024];
  if (::getservbyname_r(name.c_str(), "tcp", &entry, buffer, sizeof buffer, &found) == 0 &&
      found != nullptr) {
    port = ntohs(static_cast<std::uint16_t>(found->s_port));
    return true;
  }
#endif
  // A system without a services database still knows these (Go's net does the same).
  if (iequals(service, "http")) {
    port = 80;
    return true;
  }
  if (iequals(service, "https")) {
    port = 443;
    return true;
  }
  return false;
}

bool split_host_port(std::string_view text, std::string_view& host, std::string_view& port) noexcept {
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    return true;
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || text.find(':') != colon) return false;  // none, or a bare IPv6
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  return true;
}

std::optional<std::vector<endpoint>> resolve_locally(std::string_view host, std::uint16_t port,
                                                     address_family family) {
  std::vector<endpoint> out;
  if (is_localhost(host)) {
    for (const auto& e : {endpoint::parse(numeric_text("127.0.0.1", port, false)),
                          endpoint::parse(numeric_text("::1", port, true))}) {
      if (family_wanted(family, e)) out.push_back(e);
    }
    return out;
  }
  if (host.find('[') != std::string_view::npos || host.find(']') != std::string_view::npos)
    return std::nullopt;
  const bool v6 = host.find(':') != std::string_view::npos;
  if (auto e = endpoint::try_parse(numeric_text(host, port, v6))) {
    if (family_wanted(family, *e)) out.push_back(*e);
    return out;
  }
  return std::nullopt;
}

std::error_code check_name(std::string_view host) noexcept {
  if (host.empty() || host.size() > 253 + 1) return resolve_error::bad_name;
  for (char c : host) {
    if (c == '\0' || std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '\\')
      return resolve_error::bad_name;
  }
  return {};
}

task<lookup_result> lookup(std::string host, std::uint16_t port, resolve_options options) {
  lookup_result r;
  if (auto local = resolve_locally(host, port, options.family)) {
    r.endpoints = std::move(*local);
    if (r.endpoints.empty()) r.code = resolve_error::no_data;
    co_return r;
  }
  r.code = check_name(host);
  if (r.code) co_return r;
  const resolver_backend backend = choose_backend(options.resolver.backend);
  if (backend == resolver_backend::getaddrinfo) {
    if (!options.resolver.servers.empty()) {
      r.code = resolve_error::not_supported;
      r.detail = "resolver_options::servers needs the c-ares resolver";
      co_return r;
    }
    co_return co_await lookup_getaddrinfo(std::move(host), port, options.family);
  }
#if defined(CORIO_HAS_CARES)
  co_return co_await lookup_cares(std::move(host), port, options.family, std::move(options.resolver));
#else
  r.code = resolve_error::not_supported;
  r.detail = "corio was built without c-ares";
  co_return r;
#endif
}

lookup_result lookup_blocking(std::string host, std::uint16_t port, address_family family) {
  lookup_result r;
  if (auto local = resolve_locally(host, port, family)) {
    r.endpoints = std::move(*local);
    if (r.endpoints.empty()) r.code = resolve_error::no_data;
    return r;
  }
  r.code = check_name(host);
  if (r.code) return r;
  gai_call c;
  c.host = std::move(host);
  c.port = std::to_string(port);
  c.family = family == address_family::v4 ? AF_INET : family == address_family::v6 ? AF_INET6 : AF_UNSPEC;
  run_getaddrinfo(c);
  if (c.status != 0) {
    r.code = gai_code(c.status, c.system_error);
    if (r.code == resolve_error::other) r.detail = ::gai_strerror(c.status);
  } else if (c.out.empty()) {
    r.code = resolve_error::no_data;
  } else {
    r.endpoints = std::move(c.out);
  }
  return r;
}

std::string describe(std::string_view host, const lookup_result& r) {
  if (r.detail.empty()) return fmt::format("corio: resolve {}", host);
  return fmt::format("corio: resolve {}: {}", host, r.detail);
}

task<std::vector<endpoint>> resolve_impl(std::string host, std::string service, resolve_options options,
                                         std::error_code* ec) {
  lookup_result r;
  std::uint16_t port = 0;
  if (!service_port(service, port)) {
    r.code = resolve_error::service_not_found;
    r.detail = service;
  } else {
    r = co_await lookup(host, port, std::move(options));
  }
  if (r.code) {
    if (ec == nullptr) throw std::system_error(r.code, describe(host, r));
    *ec = r.code;
    co_return std::vector<endpoint>{};
  }
  if (ec != nullptr) ec->clear();
  co_return std::move(r.endpoints);
}

}  // namespace corio::detail
