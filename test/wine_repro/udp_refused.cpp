// A plain Asio program (no corio) showing a Wine 8 limit that corio's Asio reactor meets on
// Windows: a connected UDP socket whose datagram drew an ICMP port unreachable has an error
// pending (recv fails with WSAECONNRESET, recvfrom's documentation), and Windows' select()
// reports such a socket readable, so a readiness wait ends and the receive reports the error.
// Under Wine no error comes: select() never reports the socket, so Asio's async_wait(wait_read)
// never completes, and a non-blocking receive still says WSAEWOULDBLOCK (10035) after it, so a
// receive that waits for readiness waits forever.
// Exit status: 0 when the wait ends (Windows), 1 when it does not within 2 s (Wine). Built and run
// by tools/cross-windows.sh; the corio test it stands for is left out under Wine.
#include <asio.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

int main() {
  asio::io_context io;
  asio::ip::udp::endpoint closed;
  {
    asio::ip::udp::socket probe{io, {asio::ip::make_address("127.0.0.1"), 0}};
    closed = probe.local_endpoint();
  }  // nothing listens on that port now
  asio::ip::udp::socket s{io, {asio::ip::make_address("127.0.0.1"), 0}};
  s.connect(closed);
  s.send(asio::buffer("x", 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the ICMP error arrives
  bool woke = false;
  s.async_wait(asio::socket_base::wait_read, [&](const asio::error_code&) { woke = true; });
  io.run_for(std::chrono::seconds(2));
  s.non_blocking(true);
  char buf[8];
  asio::error_code ec;
  s.receive(asio::buffer(buf), 0, ec);
  std::printf("readiness wait after port unreachable: %s; receive: %s (%d)\n", woke ? "ended" : "never ended",
              ec.message().c_str(), ec.value());
  return woke ? 0 : 1;
}
