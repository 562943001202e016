// Suite "net", UDP part: corio::net::udp_socket on loopback (127.0.0.1 and ::1), on either
// reactor (the suite also runs with CORIO_BACKEND=asio).
#include <doctest/doctest.h>
#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include <array>
#include <corio/corio.hpp>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::udp_receive_result;
using corio::net::udp_socket;
using corio_test::hang_guard;

namespace {

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span{s.data(), s.size()});
}

std::string text_of(std::span<const std::byte> b) {
  return std::string{reinterpret_cast<const char*>(b.data()), b.size()};
}

/// Echoes `count` datagrams, each back to its sender.
corio::task<void> echo_datagrams(udp_socket* s, int count) {
  std::array<std::byte, 2048> buf{};
  for (int i = 0; i < count; ++i) {
    const udp_receive_result r = co_await s->recv_from(buf);
    (void)co_await s->send_to({buf.data(), r.size}, r.sender);
  }
}

/// Sends `count` numbered datagrams from a fresh socket and waits for each reply (ping-pong, so
/// nothing is lost on loopback); returns how many came back intact from the server.
corio::task<int> ping_pong_client(endpoint server, std::string local, int id, int count) {
  udp_socket s = udp_socket::bind(local);
  std::array<std::byte, 2048> buf{};
  int good = 0;
  for (int i = 0; i < count; ++i) {
    const std::string msg = "client " + std::to_string(id) + " datagram " + std::to_string(i);
    const std::size_t sent = co_await s.send_to(bytes_of(msg), server);
    const udp_receive_result r = co_await s.recv_from(buf);
    good += (sent == msg.size() && r.sender == server && !r.truncated && text_of({buf.data(), r.size}) == msg)
                ? 1
                : 0;
  }
  co_return good;
}

corio::task<int> round_trips(std::string local, int clients, int per_client) {
  udp_socket server = udp_socket::bind(local);
  const endpoint ep = server.local_endpoint();
  auto echo = corio::spawn(echo_datagrams(&server, clients * per_client));
  std::vector<corio::join_handle<int>> hs;
  for (int i = 0; i < clients; ++i) hs.push_back(corio::spawn(ping_pong_client(ep, local, i, per_client)));
  int good = 0;
  for (auto& h : hs) good += co_await h;
  co_await echo;
  co_return good;
}

bool has_ipv6_loopback() {
  try {
    (void)udp_socket::bind("[::1]:0");
    return true;
  } catch (const std::system_error&) {
    return false;
  }
}

struct connected_outcome {
  std::string a_got;
  std::string b_got;
  endpoint a_peer;
};

corio::task<connected_outcome> connected_exchange() {
  udp_socket a = udp_socket::bind("127.0.0.1:0");
  udp_socket b = udp_socket::bind("127.0.0.1:0");
  a.connect(b.local_endpoint());
  b.connect(a.local_endpoint());
  connected_outcome out;
  out.a_peer = a.remote_endpoint();
  std::array<std::byte, 64> buf{};
  (void)co_await a.send(std::string_view{"from a"});
  const std::size_t n = co_await b.recv(buf);
  out.b_got = text_of({buf.data(), n});
  (void)co_await b.send(std::string_view{"from b"});
  const std::size_t m = co_await a.recv(buf);
  out.a_got = text_of({buf.data(), m});
  co_return out;
}

struct refused_outcome {
  std::error_code thrown;
  std::string message;
  std::error_code returned;
};

/// A connected socket to a port nobody listens on: the send goes out, the ICMP port unreachable
/// comes back, and the next receive reports ECONNREFUSED.
corio::task<refused_outcome> refused(endpoint closed) {
  refused_outcome out;
  udp_socket s = udp_socket::bind("127.0.0.1:0");
  s.connect(closed);
  std::array<std::byte, 64> buf{};
  (void)co_await s.send(std::string_view{"anyone?"});
  try {
    (void)co_await s.recv(buf);
  } catch (const std::system_error& e) {
    out.thrown = e.code();
    out.message = e.what();
  }
  std::error_code ec;
  (void)co_await s.send(std::string_view{"anyone now?"}, ec);
  if (!ec) {
    const std::size_t n = co_await s.recv(buf, ec);
    CHECK(n == 0);
  }
  out.returned = ec;
  co_return out;
}

struct truncation_outcome {
  udp_receive_result first;
  std::string first_bytes;
  udp_receive_result second;
  udp_receive_result empty;
};

corio::task<truncation_outcome> truncation() {
  udp_socket a = udp_socket::bind("127.0.0.1:0");
  udp_socket b = udp_socket::bind("127.0.0.1:0");
  const std::string big(1000, 'x');
  std::string pattern = big;
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>('a' + i % 26);
  (void)co_await a.send_to(bytes_of(pattern), b.local_endpoint());
  (void)co_await a.send_to(std::string_view{"short"}, b.local_endpoint());
  (void)co_await a.send_to(std::span<const std::byte>{}, b.local_endpoint());
  truncation_outcome out;
  std::array<std::byte, 100> buf{};
  out.first = co_await b.recv_from(buf);
  out.first_bytes = text_of({buf.data(), out.first.size});
  out.second = co_await b.recv_from(buf);
  out.empty = co_await b.recv_from(buf);
  CHECK(out.first_bytes == pattern.substr(0, 100));
  co_return out;
}

corio::task<void> recv_forever(udp_socket* s, int* outcome) {
  std::array<std::byte, 64> buf{};
  try {
    (void)co_await s->recv_from(buf);
    *outcome = 2;
  } catch (const corio::operation_cancelled&) {
    *outcome = 1;
  }
}

std::uint64_t submitted(const corio::runtime& rt) {
  return corio_test::worker_sum(rt, &corio::worker_stats::io_submitted);
}

corio::task<std::string> cancelled_then_used(corio::runtime* rt, udp_socket* s, int* outcome) {
  const std::uint64_t base = submitted(*rt);
  auto h = corio::spawn(recv_forever(s, outcome));
  for (int i = 0; i < 100000 && submitted(*rt) == base; ++i) co_await corio::yield();
  h.cancel();
  co_await h;
  // The socket still works: a datagram sent now arrives.
  udp_socket other = udp_socket::bind("127.0.0.1:0");
  (void)co_await other.send_to(std::string_view{"still here"}, s->local_endpoint());
  std::array<std::byte, 64> buf{};
  const udp_receive_result r = co_await s->recv_from(buf);
  co_return text_of({buf.data(), r.size});
}

corio::task<int> closed_socket_errors() {
  udp_socket s = udp_socket::bind("127.0.0.1:0");
  const endpoint to = s.local_endpoint();
  udp_socket moved = std::move(s);
  int checks = 0;
  std::array<std::byte, 16> buf{};
  try {
    (void)co_await s.recv_from(buf);
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  try {
    (void)co_await s.send_to(std::string_view{"x"}, to);
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  std::error_code ec;
  const udp_receive_result r = co_await s.recv_from(buf, ec);
  checks += (r.size == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  const std::size_t n = co_await s.send(bytes_of("x"), ec);
  checks += (n == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  // An unspecified destination is refused before the kernel sees it.
  const std::size_t m = co_await moved.send_to(bytes_of("x"), endpoint{}, ec);
  checks += (m == 0 && ec == std::errc::address_family_not_supported) ? 1 : 0;
  // A send on an unconnected socket has no peer.
  try {
    (void)co_await moved.send(std::string_view{"x"});
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::destination_address_required ? 1 : 0;
  }
  co_return checks;
}

struct multicast_outcome {
  bool joined = false;
  std::string got;
  endpoint sender;
};

corio::task<multicast_outcome> multicast_on_loopback() {
  multicast_outcome out;
  udp_socket member = udp_socket::bind("0.0.0.0:0");
  try {
    member.join_multicast_v4("239.255.12.34", "127.0.0.1");
  } catch (const std::system_error& e) {
    MESSAGE("multicast join refused here (" << e.what() << "): only the options are checked");
    co_return out;
  }
  out.joined = true;
  udp_socket sender = udp_socket::bind("127.0.0.1:0");
  // Send through the loopback interface (the container's default route does not carry multicast).
  in_addr loopback{};
  ::inet_pton(AF_INET, "127.0.0.1", &loopback);
  REQUIRE(::setsockopt(sender.native_handle(), IPPROTO_IP, IP_MULTICAST_IF, reinterpret_cast<const char*>(&loopback),
                       sizeof loopback) == 0);
  sender.set_multicast_loop(true);
  const endpoint group = endpoint::parse("239.255.12.34:" + std::to_string(member.local_endpoint().port()));
  (void)co_await sender.send_to(std::string_view{"to the group"}, group);
  std::array<std::byte, 64> buf{};
  const udp_receive_result r = co_await member.recv_from(buf);
  out.got = text_of({buf.data(), r.size});
  out.sender = r.sender;
  member.leave_multicast_v4("239.255.12.34", "127.0.0.1");
  co_return out;
}

}  // namespace

TEST_SUITE_BEGIN("net");

TEST_CASE("UDP datagrams echo back to their senders on 127.0.0.1 and ::1, on 1, 2 and 4 workers") {
  hang_guard guard{"udp round trips", 120s};
  const bool v6 = has_ipv6_loopback();
  if (!v6) MESSAGE("no IPv6 loopback here: IPv4 only");
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    const int per_client = static_cast<int>(corio_test::scaled(200));
    CHECK(rt.block_on(round_trips("127.0.0.1:0", 8, per_client)) == 8 * per_client);
    if (v6) CHECK(rt.block_on(round_trips("[::1]:0", 8, per_client)) == 8 * per_client);
  }
}

TEST_CASE("a connected UDP socket sends to and receives from its peer only") {
  hang_guard guard{"udp connected", 60s};
  corio::runtime rt{{.workers = 2}};
  const connected_outcome out = rt.block_on(connected_exchange());
  CHECK(out.a_got == "from b");
  CHECK(out.b_got == "from a");
  CHECK(out.a_peer.is_v4());
}

TEST_CASE("a connected UDP socket to a closed port reports ECONNREFUSED naming the address, in both forms") {
  hang_guard guard{"udp refused", 60s};
  corio::runtime rt{{.workers = 2}};
  endpoint closed;
  {
    udp_socket probe = udp_socket::bind("127.0.0.1:0");
    closed = probe.local_endpoint();
  }  // closed: nothing listens on that port now
  const refused_outcome out = rt.block_on(refused(closed));
  CHECK(out.thrown == std::errc::connection_refused);
  CHECK(out.message.find(closed.to_string()) != std::string::npos);
  CHECK(out.message.find("udp_socket::recv") != std::string::npos);
  CHECK(out.returned == std::errc::connection_refused);
}

TEST_CASE("a datagram longer than the buffer is cut to it and reported truncated; empty datagrams arrive") {
  hang_guard guard{"udp truncation", 60s};
  corio::runtime rt{{.workers = 1}};
  const truncation_outcome out = rt.block_on(truncation());
  CHECK(out.first.size == 100);
  CHECK(out.first.truncated);
  CHECK(out.second.size == 5);
  CHECK_FALSE(out.second.truncated);
  CHECK(out.empty.size == 0);
  CHECK_FALSE(out.empty.truncated);
  CHECK(out.empty.sender.is_v4());
}

TEST_CASE("the broadcast and multicast options are set and read back; bad values are refused") {
  udp_socket s = udp_socket::bind("127.0.0.1:0");
  CHECK_FALSE(s.broadcast());
  s.set_broadcast(true);
  CHECK(s.broadcast());
  s.set_broadcast(false);
  CHECK_FALSE(s.broadcast());
  s.set_multicast_loop(false);
  CHECK_FALSE(s.multicast_loop());
  s.set_multicast_loop(true);
  CHECK(s.multicast_loop());
  s.set_multicast_ttl(7);
  CHECK(s.multicast_ttl() == 7);
  CHECK_THROWS_AS(s.set_multicast_ttl(256), std::system_error);
  try {
    s.join_multicast_v4("not-an-address");
    FAIL("join accepted a bad address");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::invalid_argument);
    CHECK(std::string{e.what()}.find("not-an-address") != std::string::npos);
  }
  if (has_ipv6_loopback()) {
    udp_socket v6 = udp_socket::bind("[::1]:0");
    v6.set_multicast_ttl(3);
    CHECK(v6.multicast_ttl() == 3);
    v6.set_multicast_loop(false);
    CHECK_FALSE(v6.multicast_loop());
    CHECK_THROWS_AS(v6.join_multicast_v6("239.1.1.1"), std::system_error);  // not an IPv6 address
  }
  udp_socket closed;
  CHECK_THROWS_AS(closed.set_broadcast(true), std::system_error);
  CHECK_THROWS_AS((void)closed.local_endpoint(), std::system_error);
}

TEST_CASE("a multicast group joined on the loopback interface receives what is sent to it") {
  hang_guard guard{"udp multicast", 60s};
  corio::runtime rt{{.workers = 2}};
  const multicast_outcome out = rt.block_on(multicast_on_loopback());
  if (out.joined) {
    CHECK(out.got == "to the group");
    CHECK(out.sender.address_string() == "127.0.0.1");
  }
}

TEST_CASE("a cancelled recv_from ends with operation_cancelled and the socket stays usable") {
  hang_guard guard{"udp cancelled recv", 60s};
  for (unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers, .clock = corio::manual_clock}};
    udp_socket s = udp_socket::bind("127.0.0.1:0");
    int outcome = 0;
    CHECK(rt.block_on(cancelled_then_used(&rt, &s, &outcome)) == "still here");
    CHECK(outcome == 1);
  }
}

TEST_CASE("UDP operations on a closed socket fail with EBADF; bad destinations are refused") {
  hang_guard guard{"udp closed", 60s};
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(closed_socket_errors()) == 6);
  CHECK_THROWS_AS((void)udp_socket::bind(endpoint{}), std::system_error);
  CHECK_THROWS_AS((void)udp_socket::bind("nonsense"), std::system_error);
  udp_socket a = udp_socket::bind("127.0.0.1:0");
  try {
    (void)udp_socket::bind(a.local_endpoint());
    FAIL("a second bind of the same port succeeded");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::address_in_use);
    CHECK(std::string{e.what()}.find(a.local_endpoint().to_string()) != std::string::npos);
  }
}

TEST_SUITE_END();
