// test/stream_pair.hpp - a connected pair of TCP streams over 127.0.0.1, for the tests that need
// one socket to wait on and its peer to write (cancel_io_tests.cpp, linked_timeout_tests.cpp).
#pragma once

#include <corio/corio.hpp>

namespace corio_test {

/// Two ends of one loopback TCP connection.
struct stream_pair {
  corio::net::tcp_stream a;  ///< the connecting side
  corio::net::tcp_stream b;  ///< the accepted side
};

/// Accepts one connection on `l` (a task, so that it can be spawned beside the connect).
inline corio::task<corio::net::tcp_stream> accept_one(corio::net::tcp_listener* l) { co_return co_await l->accept(); }

/// Binds a listener on 127.0.0.1 (a free port), connects to it and accepts: the connected pair.
inline corio::task<stream_pair> connected_pair() {
  auto l = corio::net::tcp_listener::bind("127.0.0.1:0");
  auto acceptor = corio::spawn(accept_one(&l));
  stream_pair p;
  p.a = co_await corio::net::tcp_stream::connect(l.local_endpoint());
  p.b = co_await acceptor;
  co_return p;
}

}  // namespace corio_test
