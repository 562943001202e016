// Suite "net": corio::net::resolve (c-ares on the reactor and getaddrinfo on the blocking pool), connect
// by name with Happy Eyeballs, bind by name. Names come only from localhost, /etc/hosts and a DNS
// server in this file on 127.0.0.1: nothing is asked of the machine's resolver or the outside.
#include <doctest/doctest.h>
#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <corio/cancel.hpp>
#include <corio/event.hpp>
#include <corio/net/resolve.hpp>
#include <corio/net/tcp_listener.hpp>
#include <corio/net/tcp_stream.hpp>
#include <corio/runtime.hpp>
#include <corio/spawn.hpp>
#include <corio/time.hpp>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "net/resolve_internal.hpp"
#include "raw_sockets.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::address_family;
using corio::net::endpoint;
using corio::net::resolve_error;
using corio::net::resolve_options;
using corio::net::resolver_backend;

namespace {

/// A DNS server for tests: UDP on 127.0.0.1, port chosen by the kernel, on a thread of its own.
/// Names (lower case, no trailing dot): `a` maps to A records; "nosuch.test" is NXDOMAIN,
/// "fail.test" SERVFAIL, "slow.test" is answered (127.0.0.9) after `slow_delay`, "silent.test"
/// never. AAAA queries get an empty NOERROR answer unless `aaaa` has the name.
class dns_server {
 public:
  std::map<std::string, std::vector<std::string>> a{{"one.test", {"127.0.0.1"}},
                                                    {"two.test", {"127.0.0.2", "127.0.0.3"}}};
  std::map<std::string, std::vector<std::string>> aaaa{{"six.test", {"::1"}}};
  std::chrono::milliseconds slow_delay{150};
  std::atomic<int> silent_queries{0};
  corio::event silent_seen;  // set from the server thread (event::set is thread-safe)

  dns_server() {
    fd_ = raw::open_udp();
    REQUIRE(fd_ >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    raw::length_t len = sizeof sa;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    port_ = ntohs(sa.sin_port);
  }
  dns_server(const dns_server&) = delete;
  dns_server& operator=(const dns_server&) = delete;
  ~dns_server() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    raw::close(fd_);
  }
  void start() {
    thread_ = std::thread([this] { loop(); });
  }
  std::string address() const { return fmt::format("127.0.0.1:{}", port_); }
  resolve_options options(resolver_backend backend = resolver_backend::cares) const {
    resolve_options o;
    o.resolver.servers = {address()};
    o.resolver.timeout = 2000ms;
    o.resolver.tries = 1;
    o.resolver.backend = backend;
    return o;
  }

 private:
  struct delayed {
    std::chrono::steady_clock::time_point due;
    std::vector<unsigned char> packet;
    sockaddr_in to;
  };

  void loop() {
    std::vector<delayed> later;
    while (!stop_) {
      const bool readable = raw::readable_within_10ms(fd_);
      const auto t = std::chrono::steady_clock::now();
      for (auto it = later.begin(); it != later.end();) {
        if (it->due <= t) {
          send(it->packet, it->to);
          it = later.erase(it);
        } else {
          ++it;
        }
      }
      if (!readable) continue;
      std::array<unsigned char, 512> buf{};
      sockaddr_in from{};
      raw::length_t len = sizeof from;
      const long n = ::recvfrom(fd_, reinterpret_cast<char*>(buf.data()), static_cast<int>(buf.size()), 0,
                                reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      answer(std::vector<unsigned char>(buf.begin(), buf.begin() + n), from, later);
    }
  }

  void send(const std::vector<unsigned char>& packet, const sockaddr_in& to) {
    (void)::sendto(fd_, reinterpret_cast<const char*>(packet.data()), static_cast<int>(packet.size()), 0,
                   reinterpret_cast<const sockaddr*>(&to), sizeof to);
  }

  void answer(std::vector<unsigned char> q, const sockaddr_in& from, std::vector<delayed>& later) {
    // The question: labels from offset 12, then type and class.
    std::string name;
    std::size_t i = 12;
    while (i < q.size() && q[i] != 0) {
      const std::size_t l = q[i];
      if (i + 1 + l > q.size()) return;
      if (!name.empty()) name += '.';
      for (std::size_t k = 0; k < l; ++k) name += static_cast<char>(std::tolower(q[i + 1 + k]));
      i += 1 + l;
    }
    if (i + 5 > q.size()) return;
    const std::size_t question_end = i + 5;
    const int type = (q[i + 1] << 8) | q[i + 2];
    std::vector<unsigned char> r(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(question_end));
    r[2] = 0x81;  // QR, RD
    r[3] = 0x80;  // RA, rcode 0
    r[6] = r[7] = r[8] = r[9] = r[10] = r[11] = 0;
    if (name == "silent.test") {
      ++silent_queries;
      silent_seen.set();
      return;
    }
    if (name == "nosuch.test") {
      r[3] |= 3;  // NXDOMAIN
      send(r, from);
      return;
    }
    if (name == "fail.test") {
      r[3] |= 2;  // SERVFAIL
      send(r, from);
      return;
    }
    std::vector<std::string> addresses;
    if (name == "slow.test" && type == 1) addresses = {"127.0.0.9"};
    if (type == 1 && a.count(name) != 0) addresses = a[name];
    if (type == 28 && aaaa.count(name) != 0) addresses = aaaa[name];
    for (const auto& text : addresses) {
      unsigned char raw[16];
      const bool v6 = type == 28;
      REQUIRE(::inet_pton(v6 ? AF_INET6 : AF_INET, text.c_str(), raw) == 1);
      const unsigned char rr[] = {0xC0, 0x0C, 0, static_cast<unsigned char>(type),       0, 1, 0, 0,
                                  0,    60,   0, static_cast<unsigned char>(v6 ? 16 : 4)};
      r.insert(r.end(), std::begin(rr), std::end(rr));
      r.insert(r.end(), raw, raw + (v6 ? 16 : 4));
      ++r[7];  // ANCOUNT
    }
    if (name == "slow.test") {
      later.push_back({std::chrono::steady_clock::now() + slow_delay, std::move(r), from});
      return;
    }
    send(r, from);
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<std::string> texts(const std::vector<endpoint>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.to_string());
  return out;
}

corio::task<std::vector<endpoint>> resolve_with(std::string host, std::string service, resolve_options o) {
  co_return co_await corio::net::resolve(host, service, std::move(o));
}

struct outcome {
  std::vector<std::string> endpoints;
  std::error_code code;
  std::string what;
};

corio::task<outcome> resolve_outcome(std::string host, std::string service, resolve_options o) {
  outcome r;
  try {
    r.endpoints = texts(co_await corio::net::resolve(host, service, std::move(o)));
  } catch (const std::system_error& e) {
    r.code = e.code();
    r.what = e.what();
  }
  co_return r;
}

std::vector<resolver_backend> backends() {
  std::vector<resolver_backend> v{resolver_backend::getaddrinfo};
  if (corio::net::has_cares()) v.push_back(resolver_backend::cares);
  return v;
}

const char* backend_name(resolver_backend b) {
  return b == resolver_backend::cares ? "c-ares" : "getaddrinfo";
}

/// A name of /etc/hosts other than localhost, with its first IPv4 address; empty when none.
std::pair<std::string, std::string> hosts_file_name() {
  std::ifstream in("/etc/hosts");
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string address;
    std::string name;
    if (!(words >> address) || address.find(':') != std::string::npos) continue;
    while (words >> name) {
      if (name.find("localhost") == std::string::npos) return {name, address};
    }
  }
  return {};
}

/// Holds getaddrinfo calls in flight (corio::detail::set_getaddrinfo_hook): each call counts
/// itself and waits until release(). One at a time per process (the hook is global).
struct held_getaddrinfo {
  static inline std::mutex m;
  static inline std::condition_variable cv;
  static inline int calls = 0;  // getaddrinfo calls that reached the hook
  static inline bool released = false;

  held_getaddrinfo() {
    std::lock_guard lock{m};
    calls = 0;
    released = false;
    corio::detail::set_getaddrinfo_hook([] {
      std::unique_lock lock{m};
      ++calls;
      cv.notify_all();
      cv.wait(lock, [] { return released; });
    });
  }
  ~held_getaddrinfo() {
    release();
    corio::detail::set_getaddrinfo_hook(nullptr);
  }
  held_getaddrinfo(const held_getaddrinfo&) = delete;
  held_getaddrinfo& operator=(const held_getaddrinfo&) = delete;

  static int count() {
    std::lock_guard lock{m};
    return calls;
  }
  static bool is_released() {
    std::lock_guard lock{m};
    return released;
  }
  static void release() {
    {
      std::lock_guard lock{m};
      released = true;
    }
    cv.notify_all();
  }
};

/// Spawns a getaddrinfo resolve of `host` and waits (bounded) until `rt`'s pool shows `queued`
/// jobs waiting and `calls` getaddrinfo calls held; returns its handle.
corio::task<corio::join_handle<std::vector<endpoint>>> start_held_resolve(corio::runtime* rt,
                                                                          std::string host,
                                                                          std::uint64_t queued, int calls) {
  resolve_options o;
  o.resolver.backend = resolver_backend::getaddrinfo;
  o.family = address_family::v4;
  auto h = corio::spawn(resolve_with(std::move(host), "80", std::move(o)));
  for (int i = 0; i < 10000; ++i) {
    if (held_getaddrinfo::count() == calls && rt->stats().blocking.queued == queued) break;
    co_await corio::sleep_for(1ms);
  }
  co_return h;
}

}  // namespace

TEST_SUITE("net") {
  TEST_CASE("resolve answers localhost and numeric addresses with both resolvers, for each family") {
    corio_test::hang_guard guard{"resolve localhost", std::chrono::seconds(120)};
    corio::runtime rt{{.workers = 1}};
    for (auto backend : backends()) {
      CAPTURE(backend_name(backend));
      resolve_options o;
      o.resolver.backend = backend;
      CHECK(texts(rt.block_on(resolve_with("localhost", "80", o))) ==
            std::vector<std::string>{"127.0.0.1:80", "[::1]:80"});
      o.family = address_family::v6;
      CHECK(texts(rt.block_on(resolve_with("LocalHost.", "http", o))) ==
            std::vector<std::string>{"[::1]:80"});
      o.family = address_family::v4;
      CHECK(texts(rt.block_on(resolve_with("db.localhost", "443", o))) ==
            std::vector<std::string>{"127.0.0.1:443"});
      o.family = address_family::any;
      CHECK(texts(rt.block_on(resolve_with("10.1.2.3", "https", o))) ==
            std::vector<std::string>{"10.1.2.3:443"});
      CHECK(texts(rt.block_on(resolve_with("fe80::1%1", "0", o))).size() == 1);
      o.family = address_family::v6;
      auto r = rt.block_on(resolve_outcome("127.0.0.1", "80", o));
      CHECK(r.code == resolve_error::no_data);
    }
  }

  TEST_CASE("resolve rejects an unknown service and a malformed name, naming the host") {
    corio_test::hang_guard guard{"resolve bad input", std::chrono::seconds(120)};
    corio::runtime rt{{.workers = 1}};
    for (auto backend : backends()) {
      resolve_options o;
      o.resolver.backend = backend;
      auto r = rt.block_on(resolve_outcome("localhost", "no-such-service-xyz", o));
      CHECK(r.code == resolve_error::service_not_found);
      CHECK(r.what.find("localhost") != std::string::npos);
      r = rt.block_on(resolve_outcome("localhost", "65536", o));
      CHECK(r.code == resolve_error::service_not_found);
      r = rt.block_on(resolve_outcome("", "80", o));
      CHECK(r.code == resolve_error::bad_name);
      r = rt.block_on(resolve_outcome("a b", "80", o));
      CHECK(r.code == resolve_error::bad_name);
    }
  }

  TEST_CASE("resolve finds a name of /etc/hosts with both resolvers") {
    corio_test::hang_guard guard{"resolve hosts file", std::chrono::seconds(120)};
    const auto [name, address] = hosts_file_name();
    if (name.empty()) {
      MESSAGE("no name besides localhost in /etc/hosts: nothing to check");
      return;
    }
    corio::runtime rt{{.workers = 2}};
    for (auto backend : backends()) {
      CAPTURE(backend_name(backend));
      resolve_options o;
      o.family = address_family::v4;
      o.resolver.backend = backend;
      const auto got = texts(rt.block_on(resolve_with(name, "8080", o)));
      REQUIRE(!got.empty());
      CHECK(got.front() == address + ":8080");
    }
  }

  TEST_CASE("resolve through a DNS server: addresses, NXDOMAIN, SERVFAIL, no data, a slow answer") {
    if (!corio::net::has_cares()) return;
    corio_test::hang_guard guard{"resolve test server", std::chrono::seconds(120)};
    dns_server server;
    server.start();
    for (unsigned workers : {1u, 2u, 4u}) {
      corio::runtime rt{{.workers = workers}};
      auto o = server.options();
      CHECK(texts(rt.block_on(resolve_with("one.test", "80", o))) ==
            std::vector<std::string>{"127.0.0.1:80"});
      CHECK(texts(rt.block_on(resolve_with("TWO.test.", "81", o))) ==
            std::vector<std::string>{"127.0.0.2:81", "127.0.0.3:81"});
      CHECK(texts(rt.block_on(resolve_with("six.test", "82", o))) == std::vector<std::string>{"[::1]:82"});
      CHECK(texts(rt.block_on(resolve_with("slow.test", "83", o))) ==
            std::vector<std::string>{"127.0.0.9:83"});
      auto r = rt.block_on(resolve_outcome("nosuch.test", "80", o));
      CHECK(r.code == resolve_error::host_not_found);
      CHECK(r.what == "corio: resolve nosuch.test: host not found (NXDOMAIN)");
      r = rt.block_on(resolve_outcome("fail.test", "80", o));
      // c-ares 1.18 reports the SERVFAIL of its only server as "could not contact DNS servers".
      CHECK((r.code == resolve_error::server_failure || r.code == resolve_error::no_servers));
      CHECK(r.what.find("fail.test") != std::string::npos);
      o.family = address_family::v6;
      r = rt.block_on(resolve_outcome("one.test", "80", o));
      CHECK(r.code == resolve_error::no_data);
    }
  }

  TEST_CASE("many resolves at once on several workers each get their own answer") {
    if (!corio::net::has_cares()) return;
    corio_test::hang_guard guard{"concurrent resolves", std::chrono::seconds(120)};
    dns_server server;
    server.start();
    corio::runtime rt{{.workers = 4}};
    const std::size_t n = corio_test::scaled(64);
    std::vector<corio::join_handle<outcome>> handles;
    rt.block_on([](std::size_t count, const dns_server* s,
                   std::vector<corio::join_handle<outcome>>* hs) -> corio::task<void> {
      for (std::size_t i = 0; i < count; ++i) {
        const char* name = i % 3 == 0 ? "one.test" : i % 3 == 1 ? "nosuch.test" : "two.test";
        hs->push_back(corio::spawn(resolve_outcome(name, std::to_string(i), s->options())));
      }
      co_return;
    }(n, &server, &handles));
    for (std::size_t i = 0; i < n; ++i) {
      const auto r = rt.block_on(
          [](corio::join_handle<outcome>* h) -> corio::task<outcome> { co_return co_await *h; }(&handles[i]));
      CAPTURE(i);
      CAPTURE(r.what);
      if (i % 3 == 0) CHECK(r.endpoints == std::vector<std::string>{fmt::format("127.0.0.1:{}", i)});
      if (i % 3 == 1) CHECK(r.code == resolve_error::host_not_found);
      if (i % 3 == 2) CHECK(r.endpoints.size() == 2);
    }
  }

  TEST_CASE(
      "a resolve against a server that never answers times out by its options, by corio::timeout, and by "
      "cancel") {
    if (!corio::net::has_cares()) return;
    corio_test::hang_guard guard{"silent server", std::chrono::seconds(120)};
    dns_server server;
    server.start();
    corio::runtime rt{{.workers = 2}};
    // The resolver's own limit: 1 try of 100 ms.
    auto o = server.options();
    o.resolver.timeout = 100ms;
    auto r = rt.block_on(resolve_outcome("silent.test", "80", o));
    CHECK(r.code == resolve_error::timeout);
    CHECK(r.what.find("silent.test") != std::string::npos);
    // corio::try_timeout around a resolve whose own limit is a minute.
    o.resolver.timeout = 60000ms;
    const bool timed_out = rt.block_on([](resolve_options opts) -> corio::task<bool> {
      auto v = co_await corio::try_timeout(50ms, resolve_with("silent.test", "80", std::move(opts)));
      co_return !v.has_value();
    }(o));
    CHECK(timed_out);
    // join_handle::cancel once the server saw the query: the resolve ends at once.
    server.silent_seen.reset();
    const auto elapsed =
        rt.block_on([](resolve_options opts, dns_server* s) -> corio::task<std::chrono::nanoseconds> {
          auto h = corio::spawn(resolve_with("silent.test", "80", std::move(opts)));
          co_await s->silent_seen.wait();
          const auto t0 = std::chrono::steady_clock::now();
          h.cancel();
          bool cancelled = false;
          try {
            co_await h;
          } catch (const corio::operation_cancelled&) {
            cancelled = true;
          }
          const auto t = std::chrono::steady_clock::now() - t0;
          CHECK(cancelled);
          co_return t;
        }(o, &server));
    MESSAGE("a cancelled resolve returned " << std::chrono::duration<double, std::micro>(elapsed).count()
                                            << " us after the cancel");
    CHECK(elapsed < 1s);  // a minute otherwise; the figure above is what matters (bar: 10 ms)
    CHECK(server.silent_queries.load() >= 3);
  }

  TEST_CASE("a cancelled getaddrinfo resolve returns at once and its call is abandoned") {
    corio_test::hang_guard guard{"abandoned getaddrinfo", std::chrono::seconds(120)};
    const auto [name, address] = hosts_file_name();
    if (name.empty()) {
      MESSAGE("no name besides localhost in /etc/hosts: nothing to check");
      return;
    }
    static std::mutex m;
    static std::condition_variable cv;
    static bool entered = false;
    static bool release = false;
    entered = release = false;
    corio::detail::set_getaddrinfo_hook([] {
      std::unique_lock lock{m};
      entered = true;
      cv.notify_all();
      cv.wait(lock, [] { return release; });
    });
    corio::runtime rt{{.workers = 2}};
    resolve_options o;
    o.resolver.backend = resolver_backend::getaddrinfo;
    const bool cancelled = rt.block_on([](std::string host, resolve_options opts) -> corio::task<bool> {
      auto h = corio::spawn(resolve_with(host, "80", std::move(opts)));
      for (int i = 0; i < 10000; ++i) {  // until the call is held on its thread
        {
          std::lock_guard lock{m};
          if (entered) break;
        }
        co_await corio::sleep_for(1ms);
      }
      h.cancel();
      try {
        co_await h;
      } catch (const corio::operation_cancelled&) {
        co_return true;
      }
      co_return false;
    }(name, o));
    CHECK(cancelled);
    {
      std::lock_guard lock{m};
      release = true;
    }
    cv.notify_all();
    corio::detail::set_getaddrinfo_hook(nullptr);
    // The abandoned call finishes on its thread; a new resolve works.
    o.family = address_family::v4;
    CHECK(texts(rt.block_on(resolve_with(name, "80", o))).front() == address + ":80");
  }

  TEST_CASE(
      "a getaddrinfo resolve cancelled while its call runs returns at once, and the runtime shuts down "
      "cleanly with that call still held") {
    corio_test::hang_guard guard{"abandoned getaddrinfo at shutdown", std::chrono::seconds(120)};
    const auto [name, address] = hosts_file_name();
    if (name.empty()) {
      MESSAGE("no name besides localhost in /etc/hosts: nothing to check");
      return;
    }
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      held_getaddrinfo held;
      // One pool thread: the first resolve holds it, the second waits in the queue and is still
      // waiting when the runtime shuts down (its job dropped, its frame destroyed).
      auto rt = std::make_unique<corio::runtime>(
          corio::runtime_options{.workers = workers, .max_blocking_threads = 1});
      std::atomic<int> stage{0};  // 1: the first resolve was cancelled; 2: it was not
      auto main_task =
          rt->spawn([](corio::runtime* r, std::string host, std::atomic<int>* st) -> corio::task<void> {
            auto first = co_await start_held_resolve(r, host, 0, 1);
            auto second = co_await start_held_resolve(r, host, 1, 1);
            first.cancel();
            int result = 2;
            try {
              (void)co_await first;
            } catch (const corio::operation_cancelled&) {
              result = 1;
            }
            st->store(result);
            auto never = co_await second;  // the runtime shuts down first
            (void)never;
          }(rt.get(), name, &stage));
      for (int i = 0; i < 1000000 && stage.load() == 0; ++i) std::this_thread::sleep_for(100us);
      // The first resolve ended with operation_cancelled while its call is still held.
      CHECK(stage.load() == 1);
      CHECK_FALSE(held_getaddrinfo::is_released());
      CHECK(rt->stats().live_tasks == 2);  // this task and the queued resolve
      CHECK(rt->stats().blocking.queued == 1);
      // Shutdown without grace waits for the held call (the pool waits for running jobs), which is
      // released from another thread once the shutdown has begun. The queued job is dropped when
      // the pool shuts down before the release (the pause makes that the likely order); otherwise
      // the freed pool thread runs it first. Either way nothing leaks (ASan) and nothing touches
      // a destroyed frame or runtime.
      std::atomic<bool> shutting_down{false};
      std::thread releaser{[&shutting_down] {
        for (int i = 0; i < 1000000 && !shutting_down.load(); ++i) std::this_thread::sleep_for(10us);
        std::this_thread::sleep_for(20ms);
        held_getaddrinfo::release();
      }};
      shutting_down.store(true);
      CHECK(rt->shutdown(0ns) == 2);  // this task and the queued resolve, never finished
      releaser.join();
      const int calls = held_getaddrinfo::count();
      CHECK((calls == 1 || calls == 2));
      if (calls == 2) MESSAGE("the queued resolve ran before the pool shut down");
      rt.reset();
    }
  }

  TEST_CASE("a getaddrinfo resolve cancelled while queued behind a busy pool never calls getaddrinfo") {
    corio_test::hang_guard guard{"queued getaddrinfo cancelled", std::chrono::seconds(120)};
    const auto [name, address] = hosts_file_name();
    if (name.empty()) {
      MESSAGE("no name besides localhost in /etc/hosts: nothing to check");
      return;
    }
    for (unsigned workers : {1u, 2u, 4u}) {
      CAPTURE(workers);
      held_getaddrinfo held;
      corio::runtime rt{{.workers = workers, .max_blocking_threads = 1}};
      const auto outcome = rt.block_on(
          [](corio::runtime* r, std::string host) -> corio::task<std::pair<bool, std::vector<std::string>>> {
            auto first = co_await start_held_resolve(r, host, 0, 1);
            auto second = co_await start_held_resolve(r, host, 1, 1);
            second.cancel();
            bool cancelled = false;
            try {
              (void)co_await second;
            } catch (const corio::operation_cancelled&) {
              cancelled = true;
            }
            const bool still_held = !held_getaddrinfo::is_released();
            held_getaddrinfo::release();
            auto got = co_await first;  // the held call ends and its result arrives
            co_return std::pair{cancelled && still_held, texts(got)};
          }(&rt, name));
      CHECK(outcome.first);
      REQUIRE(!outcome.second.empty());
      CHECK(outcome.second.front() == address + ":80");
      CHECK(held_getaddrinfo::count() == 1);  // the cancelled resolve never reached getaddrinfo
      CHECK(rt.stats().blocking.queued == 0);
      CHECK(rt.stats().blocking.jobs_run == 1);
    }
  }

  TEST_CASE("resolver_options with a server that is not an address fail with bad_server") {
    if (!corio::net::has_cares()) return;
    corio_test::hang_guard guard{"bad server", std::chrono::seconds(120)};
    corio::runtime rt{{.workers = 1}};
    resolve_options o;
    o.resolver.servers = {"dns.example"};
    o.resolver.backend = resolver_backend::cares;
    CHECK(rt.block_on(resolve_outcome("one.test", "80", o)).code == resolve_error::bad_server);
    o.resolver.backend = resolver_backend::getaddrinfo;
    o.resolver.servers = {"127.0.0.1"};
    CHECK(rt.block_on(resolve_outcome("one.test", "80", o)).code == resolve_error::not_supported);
  }

  TEST_CASE("connect by name reaches a listener on 127.0.0.1 after localhost's ::1 is refused") {
    corio_test::hang_guard guard{"connect localhost", std::chrono::seconds(120)};
    for (unsigned workers : {1u, 2u}) {
      corio::runtime rt{{.workers = workers}};
      auto listener = corio::net::tcp_listener::bind("127.0.0.1:0");
      const auto port = listener.local_endpoint().port();
      const auto peer =
          rt.block_on([](corio::net::tcp_listener* l, std::uint16_t p) -> corio::task<std::string> {
            auto s = co_await corio::net::tcp_stream::connect("localhost", p);
            auto server_side = co_await l->accept();
            (void)server_side;
            co_return s.remote_endpoint().to_string();
          }(&listener, port));
      CHECK(peer == fmt::format("127.0.0.1:{}", port));
      const auto peer2 = rt.block_on([](std::uint16_t p) -> corio::task<std::string> {
        auto s = co_await corio::net::tcp_stream::connect(fmt::format("localhost:{}", p));
        co_return s.remote_endpoint().to_string();
      }(port));
      CHECK(peer2 == fmt::format("127.0.0.1:{}", port));
    }
  }

  TEST_CASE("connect by name to a closed port fails naming the host and every address tried") {
    corio_test::hang_guard guard{"connect refused", std::chrono::seconds(120)};
    corio::runtime rt{{.workers = 2}};
    std::uint16_t port = 0;
    {
      auto l = corio::net::tcp_listener::bind("127.0.0.1:0");
      port = l.local_endpoint().port();
    }
    const auto before = corio_test::open_descriptors();
    const auto r = rt.block_on([](std::uint16_t p) -> corio::task<std::pair<std::error_code, std::string>> {
      try {
        auto s = co_await corio::net::tcp_stream::connect("localhost", p);
      } catch (const std::system_error& e) {
        co_return std::pair{e.code(), std::string{e.what()}};
      }
      co_return std::pair{std::error_code{}, std::string{}};
    }(port));
    CHECK(r.first == std::errc::connection_refused);
    CHECK(r.second.find(fmt::format("localhost:{}", port)) != std::string::npos);
    CHECK(r.second.find(fmt::format("[::1]:{}", port)) != std::string::npos);
    CHECK(r.second.find(fmt::format("127.0.0.1:{}", port)) != std::string::npos);
    std::error_code ec;
    auto s = rt.block_on([](std::uint16_t p, std::error_code* e) -> corio::task<corio::net::tcp_stream> {
      co_return co_await corio::net::tcp_stream::connect("localhost", p, *e);
    }(port, &ec));
    CHECK(ec == std::errc::connection_refused);
    CHECK(!s.is_open());
    CHECK(corio_test::open_descriptors() == before);
    // An unknown service and text without a port.
    const auto bad = rt.block_on([](std::error_code* e) -> corio::task<bool> {
      auto s1 = co_await corio::net::tcp_stream::connect("localhost:no-such-service-xyz", *e);
      co_return !s1.is_open();
    }(&ec));
    CHECK(bad);
    CHECK(ec == resolve_error::service_not_found);
    rt.block_on([](std::error_code* e) -> corio::task<void> {
      auto s1 = co_await corio::net::tcp_stream::connect("localhost", *e);
      (void)s1;
    }(&ec));
    CHECK(ec == std::errc::invalid_argument);
  }

  TEST_CASE("Happy Eyeballs starts the next address at once when an attempt is refused") {
    // Real clock, a delay of an hour: only the refusal can start the second attempt.
    corio_test::hang_guard guard{"happy eyeballs refused", std::chrono::seconds(120)};
    corio::runtime rt{{.workers = 2}};
    auto good = corio::net::tcp_listener::bind("127.0.0.1:0");
    std::uint16_t closed = 0;
    {
      auto l = corio::net::tcp_listener::bind("127.0.0.1:0");
      closed = l.local_endpoint().port();
    }
    std::vector<endpoint> addrs{endpoint::parse(fmt::format("127.0.0.1:{}", closed)), good.local_endpoint()};
    const auto peer = rt.block_on([](std::vector<endpoint> a) -> corio::task<std::string> {
      corio::net::connect_options o;
      o.attempt_delay = std::chrono::hours{1};
      auto s = co_await corio::try_timeout(60s, corio::net::tcp_stream::connect(std::move(a), std::move(o)));
      co_return s ? s->remote_endpoint().to_string() : std::string{"timed out"};
    }(addrs));
    CHECK(peer == good.local_endpoint().to_string());
  }

#if !defined(_WIN32)  // Linux drops SYNs to a full accept queue (Windows refuses them); the manual clock
  TEST_CASE(
      "Happy Eyeballs starts the next address after the attempt delay and cancels the hanging attempt") {
    // The first address is a listener whose accept queue is full (backlog 0, one connection
    // never accepted): the kernel drops its SYNs, so that connect hangs. Under the manual clock
    // time moves only to the attempt delay's timer, so the winner arrives exactly that late.
    corio_test::hang_guard guard{"happy eyeballs delay", std::chrono::seconds(120)};
    for (auto delay : {250ms, 2000ms}) {
      for (unsigned workers : {1u, 2u}) {
        CAPTURE(workers);
        corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
        auto full = corio::net::tcp_listener::bind("127.0.0.1:0", 0);
        const auto full_ep = full.local_endpoint();
        const int filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(::connect(filler, static_cast<const sockaddr*>(full_ep.data()), full_ep.size()) == 0);
        auto good = corio::net::tcp_listener::bind("127.0.0.1:0");
        const auto before = corio_test::open_descriptors();
        std::vector<endpoint> addrs{full_ep, good.local_endpoint()};
        const auto r = rt.block_on(
            [](std::vector<endpoint> a,
               std::chrono::milliseconds d) -> corio::task<std::pair<std::string, corio::clock::duration>> {
              corio::net::connect_options o;
              o.attempt_delay = d;
              const auto t0 = corio::now();
              auto s = co_await corio::net::tcp_stream::connect(std::move(a), std::move(o));
              co_return std::pair{s.remote_endpoint().to_string(), corio::now() - t0};
            }(addrs, delay));
        CHECK(r.first == good.local_endpoint().to_string());
        CHECK(r.second >= delay);
        CHECK(r.second < delay + 1ms);
        CHECK(corio_test::open_descriptors() == before);  // the hanging attempt's socket is closed
        ::close(filler);
      }
    }
  }
#endif

  TEST_CASE("connect by name through the test DNS server tries each A record") {
    if (!corio::net::has_cares()) return;
    corio_test::hang_guard guard{"connect via dns", std::chrono::seconds(120)};
    dns_server server;
    auto good = corio::net::tcp_listener::bind("127.0.0.3:0");
    const auto port = good.local_endpoint().port();
    server.start();  // two.test: 127.0.0.2 (nothing listens on the port: refused), then 127.0.0.3
    corio::runtime rt{{.workers = 2}};
    const auto peer = rt.block_on([](std::uint16_t p, resolve_options ro) -> corio::task<std::string> {
      corio::net::connect_options o;
      o.resolve = std::move(ro);
      o.attempt_delay = std::chrono::hours{1};
      auto s = co_await corio::net::tcp_stream::connect("two.test", p, std::move(o));
      co_return s.remote_endpoint().to_string();
    }(port, server.options()));
    CHECK(peer == fmt::format("127.0.0.3:{}", port));
    const auto r = rt.block_on([](std::uint16_t p, resolve_options ro) -> corio::task<std::string> {
      corio::net::connect_options o;
      o.resolve = std::move(ro);
      try {
        auto s = co_await corio::net::tcp_stream::connect("nosuch.test", p, std::move(o));
      } catch (const std::system_error& e) {
        co_return e.what();
      }
      co_return "";
    }(port, server.options()));
    CHECK(r == "corio: resolve nosuch.test: host not found (NXDOMAIN)");
  }

  TEST_CASE(
      "tcp_listener binds names: localhost:0, localhost and a service apart, and rejects text without a "
      "port") {
    corio_test::hang_guard guard{"bind by name", std::chrono::seconds(120)};
    auto l = corio::net::tcp_listener::bind("localhost:0");
    CHECK(l.local_endpoint().address_string() == "127.0.0.1");
    CHECK(l.local_endpoint().port() != 0);
    auto l2 = corio::net::tcp_listener::bind("localhost", "0");
    CHECK(l2.local_endpoint().is_v4());
    auto l3 = corio::net::tcp_listener::bind("[::1]:0");
    CHECK(l3.local_endpoint().is_v6());
    CHECK_THROWS_AS(corio::net::tcp_listener::bind("localhost", 8080), std::system_error);
    try {
      (void)corio::net::tcp_listener::bind("localhost:nope-no-service");
      CHECK(false);
    } catch (const std::system_error& e) {
      CHECK(e.code() == resolve_error::service_not_found);
    }
  }
}
