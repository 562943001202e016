// lib/net/socket_api.hpp - the handful of socket calls corio makes itself (set-up, options,
// names, close), on POSIX and on Winsock. Private to the library. Data never moves through here:
// that is the reactors' job.
//
// corio keeps sockets as `int` descriptors everywhere. On Windows a SOCKET is a UINT_PTR handle;
// Winsock hands out small values in practice, and corio converts with a range check where it
// takes one. Error numbers: POSIX errno values on every platform; Winsock's WSA* codes are
// translated to them (socket_error()), so that std::errc comparisons hold on Windows too.
#pragma once

#include <system_error>

#if defined(_WIN32)
#include <winsock2.h>
#include <ws2tcpip.h>
#include <cerrno>
#else
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace corio::detail {

#if defined(_WIN32)
using socket_family_t = ADDRESS_FAMILY;
using socket_length_t = int;
/// Winsock sockets are not inherited by child processes unless asked for.
inline constexpr int socket_cloexec = 0;

inline constexpr int shut_read = SD_RECEIVE, shut_write = SD_SEND, shut_both = SD_BOTH;

/// A Winsock error as the POSIX errno value corio reports (EIO for the rest).
inline int errno_from_wsa(int wsa) noexcept {
  switch (wsa) {
    case WSAEINTR: return EINTR;
    case WSAEBADF: case WSAENOTSOCK: return EBADF;
    case WSAEACCES: return EACCES;
    case WSAEFAULT: return EFAULT;
    case WSAEINVAL: return EINVAL;
    case WSAEMFILE: return EMFILE;
    case WSAEWOULDBLOCK: return EWOULDBLOCK;
    case WSAEINPROGRESS: return EINPROGRESS;
    case WSAEALREADY: return EALREADY;
    case WSAEMSGSIZE: return EMSGSIZE;
    case WSAEAFNOSUPPORT: case WSAEPFNOSUPPORT: return EAFNOSUPPORT;
    case WSAEADDRINUSE: return EADDRINUSE;
    case WSAEADDRNOTAVAIL: return EADDRNOTAVAIL;
    case WSAENETDOWN: return ENETDOWN;
    case WSAENETUNREACH: return ENETUNREACH;
    case WSAECONNABORTED: return ECONNABORTED;
    case WSAECONNRESET: return ECONNRESET;
    case WSAENOBUFS: return ENOBUFS;
    case WSAEISCONN: return EISCONN;
    case WSAENOTCONN: return ENOTCONN;
    case WSAESHUTDOWN: return EPIPE;
    case WSAETIMEDOUT: return ETIMEDOUT;
    case WSAECONNREFUSED: return ECONNREFUSED;
    case WSAEHOSTUNREACH: return EHOSTUNREACH;
    case WSA_OPERATION_ABORTED: return ECANCELED;
    default: return EIO;
  }
}

/// The errno value of the socket call that just failed on this thread.
inline int socket_error() noexcept { return errno_from_wsa(::WSAGetLastError()); }

/// The category of corio's socket error numbers: the generic (errno) one on Windows, where the
/// system category means Win32 error codes.
inline const std::error_category& socket_category() noexcept { return std::generic_category(); }

/// Winsock needs WSAStartup once per process before any socket call. Thread-safe, idempotent.
inline void init_sockets() noexcept {
  static const bool started = [] {
    WSADATA data{};
    return ::WSAStartup(MAKEWORD(2, 2), &data) == 0;
  }();
  (void)started;
}

/// Closes socket `fd` through the process's socket service, whose Asio object for it (if any)
/// must close it rather than outlive it (lib/asio_socket_service.cpp).
/// Returns 0 or the errno value. Any thread; blocks until the service has closed it.
int close_registered_socket(int fd) noexcept;

inline int close_socket(int fd) noexcept { return close_registered_socket(fd); }

/// Windows, which has no msghdr: what io_request::address points to for io_opcode::recvmsg and
/// sendmsg, one buffer and the peer's address. The Asio reactor does recvfrom() or sendto() with
/// it on the non-blocking socket; a datagram longer than the buffer (WSAEMSGSIZE) completes with
/// the buffer's size and `truncated` set, as MSG_TRUNC does on POSIX.
struct socket_message {
  void* buffer = nullptr;
  std::size_t length = 0;      ///< bytes
  sockaddr* name = nullptr;    ///< recv: where the sender goes; send: the destination; none: null
  int name_length = 0;         ///< bytes: recv in/out, send in
  bool truncated = false;      ///< recv: set when the datagram was cut
};

/// socket(2) as an int descriptor, or -1 with the error in socket_error().
inline int open_socket(int family, int type, int protocol) noexcept {
  init_sockets();
  const SOCKET s = ::socket(family, type, protocol);
  if (s == INVALID_SOCKET) return -1;
  if (s > static_cast<SOCKET>(0x7fffffff)) {
    ::closesocket(s);
    ::WSASetLastError(WSAEMFILE);
    return -1;
  }
  return static_cast<int>(s);
}
#else
using socket_family_t = sa_family_t;
using socket_length_t = socklen_t;
inline constexpr int socket_cloexec = SOCK_CLOEXEC;
inline constexpr int shut_read = SHUT_RD, shut_write = SHUT_WR, shut_both = SHUT_RDWR;

inline int socket_error() noexcept { return errno; }
inline const std::error_category& socket_category() noexcept { return std::system_category(); }
inline void init_sockets() noexcept {}
inline int close_socket(int fd) noexcept { return ::close(fd) == 0 ? 0 : errno; }
inline int open_socket(int family, int type, int protocol) noexcept { return ::socket(family, type, protocol); }
#endif

/// setsockopt(2) with an int value; 0 or the errno value.
inline int set_int_option(int fd, int level, int name, int value) noexcept {
  return ::setsockopt(fd, level, name, reinterpret_cast<const char*>(&value), sizeof value) == 0 ? 0
                                                                                               : socket_error();
}

[[noreturn]] inline void throw_socket_error(int error, const char* what) {
  throw std::system_error(error, socket_category(), what);
}

}  // namespace corio::detail
