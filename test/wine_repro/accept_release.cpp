// A plain Asio program (no corio) showing the Wine 8 limit that corio's Asio reactor meets on
// Windows: basic_socket::release() hands a socket that an io_context registered with its I/O
// completion port back to the caller by calling NtSetInformationFile with
// FileReplaceCompletionInformation (class 61, Windows 8.1 and later). Wine 8.0 does not implement
// that class ("fixme:file:NtSetInformationFile Unsupported class (61)"), so release() fails with
// operation_not_supported, and the socket object keeps the handle and closes it when destroyed.
// corio registers each socket with a worker's io_context by number and must give it back when
// corio closes it and Winsock reuses the number: under Wine the reactor's old object then closes
// the new socket of the same number. Exit status: 0 when release() works (Windows), 1 when it
// does not (Wine). Built and run by tools/cross-windows.sh.
#include <asio.hpp>
#include <cstdio>

int main() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  asio::ip::tcp::socket client{io};
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket peer{io};
  acceptor.accept(peer);
  asio::error_code ec;
  const auto handle = peer.release(ec);  // AcceptEx'd socket, registered with io's completion port
  std::printf("release() of an accepted socket: %s (%d)\n", ec ? ec.message().c_str() : "released", ec.value());
  if (!ec) ::closesocket(handle);
  return ec ? 1 : 0;
}
