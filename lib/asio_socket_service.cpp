// lib/asio_socket_service.cpp - Windows only: the process's socket service, which runs every socket
// operation of every worker (see asio_reactor_state.hpp, state::hand_back), and the socket calls
// Windows needs instead of Asio's own: accept() and UDP's recvfrom()/sendto() after a readiness wait.
#include "asio_reactor_state.hpp"

#if defined(_WIN32)

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace corio::detail {
using namespace asio_impl;

void asio_reactor::state::hand_back(io_request& r, int result) noexcept {
  const auto it = owners.find(&r);
  if (it == owners.end()) return;  // (never: every request started here has its owner)
  state* owner = it->second;
  owners.erase(it);
  try {
    asio::post(owner->context, [owner, &r, result] { owner->finish(r, result); });
  } catch (...) {
    std::fprintf(stderr, "corio: out of memory handing a socket completion back to its worker\n");
    std::abort();  // the waiting task would never be resumed
  }
}

void asio_reactor::state::accept(acceptor&, io_request& r) {
  react(r, false, [&r] {
    auto length = static_cast<socket_length_t>(r.address_length);
    const SOCKET s = ::accept(static_cast<SOCKET>(r.fd), static_cast<sockaddr*>(r.address), &length);
    if (s == INVALID_SOCKET) {
      errno = socket_error();
      return -1L;
    }
    if (s > static_cast<SOCKET>(0x7fffffff)) {  // corio keeps sockets as int descriptors
      ::closesocket(s);
      errno = EMFILE;
      return -1L;
    }
    r.address_length = static_cast<std::uint32_t>(length);
    return static_cast<long>(s);
  });
}

void asio_reactor::state::transfer_message(io_request& r) {
  auto* m = static_cast<socket_message*>(r.address);
  const auto length = static_cast<int>(std::min<std::size_t>(m->length, 0x7fffffff));
  if (r.opcode == io_opcode::sendmsg) {
    react(r, true, [&r, m, length] {
      const int n = ::sendto(static_cast<SOCKET>(r.fd), static_cast<const char*>(m->buffer), length,
                             static_cast<int>(r.flags), m->name, m->name == nullptr ? 0 : m->name_length);
      if (n == SOCKET_ERROR) {
        const int wsa = ::WSAGetLastError();
        errno = errno_from_wsa(wsa);
        if (m->name == nullptr && wsa != WSAEWOULDBLOCK) {
          // No destination and no peer is EDESTADDRREQ on POSIX; Windows says WSAENOTCONN (or
          // WSAEDESTADDRREQ) and Wine WSAEINVAL: ask whether the socket has a peer.
          sockaddr_storage peer{};
          int peer_length = sizeof peer;
          if (::getpeername(static_cast<SOCKET>(r.fd), reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0 &&
              ::WSAGetLastError() == WSAENOTCONN) {
            errno = EDESTADDRREQ;
          }
        }
        return -1L;
      }
      return static_cast<long>(n);
    });
  } else {
    react(r, false, [&r, m, length] {
      int name_length = m->name_length;
      const int n = ::recvfrom(static_cast<SOCKET>(r.fd), static_cast<char*>(m->buffer), length,
                               static_cast<int>(r.flags), m->name, m->name == nullptr ? nullptr : &name_length);
      if (n == SOCKET_ERROR) {
        const int wsa = ::WSAGetLastError();
        if (wsa != WSAEMSGSIZE) {
          // On a datagram socket WSAECONNRESET reports an ICMP port unreachable for an earlier
          // send (recvfrom's documentation), which POSIX reports as ECONNREFUSED.
          errno = wsa == WSAECONNRESET ? ECONNREFUSED : errno_from_wsa(wsa);
          return -1L;
        }
        m->truncated = true;  // the buffer holds the datagram's first `length` bytes
        m->name_length = name_length;
        return static_cast<long>(length);
      }
      m->truncated = false;
      m->name_length = name_length;
      return static_cast<long>(n);
    });
  }
}

namespace {

/// Windows: the process's socket service (see asio_reactor::state::hand_back): a state of its
/// own, driven by a detached thread for the life of the process. Created at the first socket
/// operation; never destroyed, so that the Asio objects in its table never close a socket corio
/// did not ask it to close.
struct socket_service {
  asio_reactor::state engine{completion_sink{nullptr, nullptr}};
  std::thread::id thread;
  static inline std::atomic<socket_service*> instance{nullptr};

  /// The service, started at the first call. Thread-safe. Throws std::system_error when its
  /// thread cannot be started (a later call tries again).
  static socket_service& get() {
    static socket_service* const service = [] {
      auto svc = std::make_unique<socket_service>();
      svc->engine.service = true;
      socket_service* p = svc.get();
      std::thread t([p] {
        for (;;) {
          try {
            p->engine.context.run();  // (the work guard keeps it running)
            return;
          } catch (const std::exception& e) {
            std::fprintf(stderr, "corio: the socket service's handler threw: %s\n", e.what());
          }
        }
      });
      p->thread = t.get_id();
      t.detach();
      instance.store(svc.release(), std::memory_order_release);
      return p;
    }();
    return *service;
  }
};

}  // namespace

void asio_reactor::state::forward(io_request& request, std::size_t length) {
  socket_service* svc = nullptr;
  try {
    svc = &socket_service::get();
  } catch (const std::system_error& e) {
    fail_later(request, e.code().category() == std::generic_category() && e.code().value() > 0 ? e.code().value()
                                                                                                : EAGAIN);
    return;
  }
  io_request* r = &request;
  state* owner = this;
  asio::post(svc->engine.context, [svc, r, owner, length] {
    state& engine = svc->engine;
    try {
      engine.owners.emplace(r, owner);
    } catch (...) {
      asio::post(owner->context, [owner, r] { owner->finish(*r, -ENOMEM); });
      return;
    }
    try {
      engine.start(*r, length);
    } catch (...) {
      engine.finish(*r, -ENOMEM);  // nothing was started (registration or handler memory)
    }
  });
}

void asio_reactor::state::cancel_forwarded(io_request& request, bool drain) noexcept {
  socket_service* svc = socket_service::instance.load(std::memory_order_acquire);
  if (svc == nullptr) return;
  io_request* r = &request;  // dereferenced by the service only while it still runs r
  try {
    asio::post(svc->engine.context, [svc, r, drain] {
      state& engine = svc->engine;
      if (engine.owners.find(r) == engine.owners.end()) return;  // completed already
      if (r->reactor_data != nullptr) {
        static_cast<asio::cancellation_signal*>(r->reactor_data)->emit(asio::cancellation_type::terminal);
      } else if (drain && r->fd >= 0 && static_cast<std::size_t>(r->fd) < engine.table.size()) {
        table_entry& e = engine.table[static_cast<std::size_t>(r->fd)];
        asio::error_code ignored;
        if (e.socket) e.socket->cancel(ignored);
        if (e.listener) e.listener->cancel(ignored);
      }
    });
  } catch (...) {
    // No memory for the handler: the operation runs to its end, as one that cannot be cancelled.
  }
}

int close_registered_socket(int fd) noexcept {
  socket_service* svc = socket_service::instance.load(std::memory_order_acquire);
  const auto close_here = [](socket_service* service, int number) noexcept {
    if (service != nullptr && number >= 0 && static_cast<std::size_t>(number) < service->engine.table.size()) {
      table_entry& e = service->engine.table[static_cast<std::size_t>(number)];
      if (e.socket || e.listener) {
        // The Asio object closes it: its operations end (operation_aborted), Asio forgets the
        // socket, and no object is left to close the number once Winsock reuses it.
        asio::error_code ec;
        if (e.socket) e.socket->close(ec);
        if (e.listener) e.listener->close(ec);
        e.socket.reset();
        e.listener.reset();
        e.generation = 0;
        e.foreign_waits = 0;
        return ec ? -to_result(ec, 0) : 0;
      }
    }
    return ::closesocket(static_cast<SOCKET>(number)) == 0 ? 0 : socket_error();
  };
  // Never registered anywhere (no service yet), or on the service's own thread: close it here.
  if (svc == nullptr || std::this_thread::get_id() == svc->thread) return close_here(svc, fd);
  struct closing {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    int error = 0;
  } c;
  try {
    asio::post(svc->engine.context, [svc, fd, &c, close_here] {
      const int error = close_here(svc, fd);
      std::lock_guard lock(c.mutex);
      c.error = error;
      c.done = true;
      c.done_cv.notify_one();
    });
  } catch (...) {
    return ::closesocket(static_cast<SOCKET>(fd)) == 0 ? 0 : socket_error();  // no memory for the handler
  }
  std::unique_lock lock(c.mutex);
  c.done_cv.wait(lock, [&c] { return c.done; });
  return c.error;
}

}  // namespace corio::detail

#endif  // _WIN32
