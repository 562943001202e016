// test/raw_sockets.hpp - the plain socket calls tests make themselves (clients left in a
// listener's backlog, a free port, a fake DNS server), the same on POSIX and Winsock.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#else
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace raw {

#if defined(_WIN32)
using length_t = int;

/// Winsock needs WSAStartup before a test's first socket (corio's own sockets start it too).
inline void start() {
  static const bool started = [] {
    WSADATA data{};
    return ::WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  REQUIRE(started);
}
inline int open(int type) {
  start();
  return static_cast<int>(::socket(AF_INET, type, 0));
}
inline void close(int fd) { ::closesocket(static_cast<SOCKET>(fd)); }
inline long recv(int fd, void* buf, std::size_t n) {
  return ::recv(static_cast<SOCKET>(fd), static_cast<char*>(buf), static_cast<int>(n), 0);
}
inline bool readable_within_10ms(int fd) {
  WSAPOLLFD p{static_cast<SOCKET>(fd), POLLIN, 0};
  return ::WSAPoll(&p, 1, 10) > 0 && (p.revents & POLLIN) != 0;
}
#else
using length_t = socklen_t;
inline int open(int type) { return ::socket(AF_INET, type | SOCK_CLOEXEC, 0); }
inline void close(int fd) { ::close(fd); }
inline long recv(int fd, void* buf, std::size_t n) { return ::recv(fd, buf, n, 0); }
inline bool readable_within_10ms(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 10) > 0 && (p.revents & POLLIN) != 0;
}
#endif

/// An IPv4 TCP socket (close-on-exec on POSIX), or -1.
inline int open_tcp() { return open(SOCK_STREAM); }
/// An IPv4 UDP socket (close-on-exec on POSIX), or -1.
inline int open_udp() { return open(SOCK_DGRAM); }

}  // namespace raw
