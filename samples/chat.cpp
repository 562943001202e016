// samples/chat.cpp - a line-based chat server on corio.
//
//   chat --port P [--workers N]
//
// Listens on 127.0.0.1:P (P 0 picks a free port) and prints "listening on 127.0.0.1:PORT" once
// ready. Clients connect over TCP (`nc 127.0.0.1 PORT`) and type lines; every line goes to every
// other client as "name: line". A client is called user<N> (N counts connections from 1) until it
// sends "/nick NAME" (NAME: 1 to 32 printable characters, no spaces). The others see
// "* NAME joined", "* NAME left" and "* OLD is now known as NEW"; the client itself gets a welcome
// line and an error line for a bad name. A line longer than 4 KiB ends that client's connection
// with an error line. SIGINT or SIGTERM stops accepting, tells every client
// "* server shutting down", closes the connections (waiting at most 2 s for slow readers) and
// exits 0.
//
// Design (llam's chat server shape, Go's "share memory by communicating" for the outboxes):
// - Each connection is one task in a task_group with the supervise policy, and runs two tasks of
//   its own: a reader (parses the client's lines and broadcasts them) and a writer (sends the
//   client's outbox to its socket). Supervise, not fail-fast: one client resetting its
//   connection is that client's failure, reported on stderr, and must not cancel everyone else.
// - Every client has a bounded outbox, a corio::channel<std::string> of 256 lines. The
//   broadcaster fills it with try_send, which never waits: a client that stops reading fills
//   its socket buffers, then its outbox, and from then on its lines are dropped and counted
//   instead of queued. So one slow client neither slows the sender (nor the other clients)
//   nor makes the server's memory grow without bound; when it drains its outbox it gets one
//   "* N lines dropped" line in the place where the lines went missing.
// - The registry of clients is shared by the readers of every worker. A corio::mutex guards it
//   (a task that waits for it parks; no worker thread blocks), and every try_send into an
//   outbox happens under it, so all clients see the lines in the same order and a drop count
//   is exact (see client::dropped). Nothing under the lock waits for a client: it only
//   try_sends.
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "connection_failure.hpp"
#include "sample_args.hpp"


namespace {

/// Lines an outbox holds before further lines to that client are dropped.
constexpr std::size_t outbox_capacity = 256;
/// The longest line a client may send, in bytes with its newline (buffered_reader's max_size).
constexpr std::size_t max_line_bytes = 4096;
/// How many bytes the writer sends at once at most, coalescing queued lines.
constexpr std::size_t write_batch_bytes = 16 * 1024;
/// How long a shutdown waits for the writers to deliver what is queued before it cancels them.
constexpr auto shutdown_grace = std::chrono::seconds{2};
/// After a line that was too long: how long the reader still reads (and drops) the client's
/// input, waiting for it to close, so that the socket is not closed with unread input (which
/// sends a reset, and the client could lose the error line). At most linger_bytes are read.
constexpr auto linger_time = std::chrono::seconds{2};
constexpr std::size_t linger_bytes = 1024 * 1024;

int usage() {
  fmt::print(stderr, "usage: chat --port P [--workers N]\n");
  return 2;
}

/// One connected client, shared by its connection, reader and writer tasks and the registry.
struct client {
  client() : outbox(outbox_capacity) {}

  /// Set by chat_server::enter before the reader and writer start; then only read.
  std::uint64_t id = 0;
  /// The client's name: set by enter, then owned by the reader task (which formats the client's
  /// lines), and read by the connection task after the reader ended.
  std::string name;
  /// Lines for this client, filled with try_send under the registry lock, drained by the writer.
  /// Closed (under the lock) when the connection ends: by the reader at end of input or after a
  /// line that was too long, by the server when it shuts down.
  corio::channel<std::string> outbox;
  /// Lines dropped because the outbox was full and not yet reported to the client. Changed only
  /// under the registry lock: a broadcaster that finds room again first queues "* N lines
  /// dropped" and resets it; the writer, when it finds the outbox empty (under the lock), takes
  /// it and writes the notice itself. Either way the notice lands exactly where the lines went
  /// missing. Atomic only so that the writer may peek at it without the lock.
  std::atomic<std::uint64_t> dropped{0};
  /// Under the registry lock, set when the outbox is closed: the line the writer sends last,
  /// and whether the reader goes on by itself (true: it lingers after a line that was too long;
  /// false: the writer cancels it once done).
  std::string farewell;
  bool linger = false;
};

/// Whether `name` is acceptable for /nick: 1 to 32 printable ASCII characters, none a space.
bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (const char ch : name) {
    if (ch < 0x21 || ch > 0x7e) return false;
  }
  return true;
}

/// The registry of connected clients and everything that goes through it. Thread-safe: every
/// member takes `lock`.
class chat_server {
 public:
  /// Names and registers `c` and announces it; false (nothing registered) once the server is
  /// shutting down.
  corio::task<bool> enter(std::shared_ptr<client> c) {
    auto guard = co_await lock.scoped_lock();
    if (shutting_down_) co_return false;
    c->id = ++last_id_;
    c->name = fmt::format("user{}", c->id);
    clients_.push_back(c);
    deliver_locked(*c, fmt::format("* welcome, you are {}\n", c->name));
    broadcast_locked(c->id, fmt::format("* {} joined\n", c->name));
    co_return true;
  }

  /// Unregisters `c` (named `name`) and tells the others it left.
  corio::task<void> leave(std::shared_ptr<client> c, std::string name) {
    auto guard = co_await lock.scoped_lock();
    std::erase(clients_, c);
    broadcast_locked(c->id, fmt::format("* {} left\n", name));
  }

  /// Queues `line` (with its newline) for every client but the one numbered `from`.
  corio::task<void> broadcast(std::uint64_t from, std::string line) {
    auto guard = co_await lock.scoped_lock();
    broadcast_locked(from, line);
  }

  /// Queues `line` for `c` alone.
  corio::task<void> tell(client* c, std::string line) {
    auto guard = co_await lock.scoped_lock();
    deliver_locked(*c, line);
  }

  /// Ends `c`'s connection: its writer sends what is queued, then `farewell`, then closes its
  /// side (see client::farewell for `linger`). Nothing if it was ended already.
  corio::task<void> end(client* c, std::string farewell, bool linger) {
    auto guard = co_await lock.scoped_lock();
    end_locked(*c, std::move(farewell), linger);
  }

  /// Ends every connection with "* server shutting down"; enter() refuses clients from now on.
  corio::task<void> shut_down() {
    auto guard = co_await lock.scoped_lock();
    shutting_down_ = true;
    for (const auto& c : clients_) end_locked(*c, "* server shutting down\n", false);
  }

  /// For the writer: under the lock, the drop count to report now if `c`'s outbox is empty
  /// (then no line can be queued before the notice), else 0.
  corio::task<std::uint64_t> take_dropped_if_drained(client* c) {
    auto guard = co_await lock.scoped_lock();
    co_return c->outbox.size() == 0 ? c->dropped.exchange(0) : 0;
  }

  /// For the writer, once the outbox is closed and drained: the farewell line and linger flag.
  corio::task<std::pair<std::string, bool>> farewell(client* c) {
    auto guard = co_await lock.scoped_lock();
    co_return std::pair{c->farewell, c->linger};
  }

  /// Guards clients_, shutting_down_, last_id_, and each client's dropped, farewell and linger.
  corio::mutex lock;

 private:
  void broadcast_locked(std::uint64_t from, const std::string& line) {
    for (const auto& c : clients_) {
      if (c->id != from) deliver_locked(*c, line);
    }
  }

  /// try_send, never waiting: a full outbox counts the line as dropped (see client::dropped); a
  /// closed one (a connection ending) ignores it.
  static void deliver_locked(client& c, const std::string& line) {
    if (c.outbox.closed()) return;
    if (const std::uint64_t n = c.dropped.load(std::memory_order_relaxed); n != 0) {
      if (!c.outbox.try_send(fmt::format("* {} lines dropped\n", n))) {
        c.dropped.store(n + 1, std::memory_order_relaxed);
        return;
      }
      c.dropped.store(0, std::memory_order_relaxed);
    }
    if (!c.outbox.try_send(line)) c.dropped.fetch_add(1, std::memory_order_relaxed);
  }

  static void end_locked(client& c, std::string farewell, bool linger) {
    if (c.outbox.closed()) return;
    c.farewell = std::move(farewell);
    c.linger = linger;
    c.outbox.close();
  }

  std::vector<std::shared_ptr<client>> clients_;
  bool shutting_down_ = false;
  std::uint64_t last_id_ = 0;
};

/// Reads and drops what `s` still receives until the peer closes, an error, or `limit` bytes.
corio::task<void> discard_input(corio::net::tcp_stream* s, std::size_t limit) {
  std::vector<std::byte> sink(4096);
  std::size_t total = 0;
  while (total < limit) {
    std::error_code ec;
    const std::size_t n = co_await s->read_some(sink, ec);
    if (n == 0) co_return;  // end of stream or an error: either way nothing more to wait for
    total += n;
  }
}

/// Handles one line from `c`: a /nick command, or text for everyone else.
corio::task<void> handle_line(std::string line, client* c, chat_server* server) {
  const std::string_view text = line;
  if (text == "/nick" || text.starts_with("/nick ")) {
    const std::string_view name = text.size() > 6 ? text.substr(6) : std::string_view{};
    if (!valid_name(name)) {
      co_await server->tell(c, "* error: a name is 1 to 32 printable characters without spaces\n");
      co_return;
    }
    std::string old = std::exchange(c->name, std::string{name});
    co_await server->broadcast(c->id, fmt::format("* {} is now known as {}\n", old, c->name));
    co_await server->tell(c, fmt::format("* you are now {}\n", c->name));
    co_return;
  }
  if (text.empty()) co_return;  // nothing to say
  co_await server->broadcast(c->id, fmt::format("{}: {}\n", c->name, text));
}

/// The reader task: the client's lines, until end of input (the connection ends once the writer
/// has sent what is queued) or a line that is too long (an error line, then the connection
/// ends). A read error (a reset) is thrown: the connection's task_group cancels the writer.
corio::task<void> read_lines(corio::net::tcp_stream* s, std::shared_ptr<client> c, chat_server* server) {
  corio::buffered_reader<corio::net::tcp_stream&> in{
      *s, corio::buffered_reader_options{.buffer_size = max_line_bytes, .max_size = max_line_bytes}};
  for (;;) {
    std::optional<std::string> line;
    bool too_long = false;
    try {
      line = co_await in.read_line();
    } catch (const std::system_error& e) {
      if (e.code() != std::errc::message_size) throw;  // a reset, or cancellation
      too_long = true;
    }
    if (too_long) {
      co_await server->end(
          c.get(), fmt::format("* error: line too long (limit {} bytes); closing\n", max_line_bytes), true);
      [[maybe_unused]] const bool closed =
          co_await corio::try_timeout(linger_time, discard_input(s, linger_bytes));
      co_return;
    }
    if (!line) {
      co_await server->end(c.get(), "", false);
      co_return;
    }
    co_await handle_line(std::move(*line), c.get(), server);
  }
}

/// The writer task: sends the outbox to the socket (queued lines coalesced into one write), the
/// drop notices (see client::dropped), and at the end the farewell line; then shuts down the
/// sending side and, unless the reader lingers, cancels the reader through `pair`. A write error
/// is thrown: the connection's task_group cancels the reader.
corio::task<void> write_lines(corio::net::tcp_stream* s, std::shared_ptr<client> c, chat_server* server,
                              corio::task_group* pair) {
  std::string batch;
  for (;;) {
    bool closed = false;
    while (batch.size() < write_batch_bytes) {
      auto r = c->outbox.try_recv();
      if (r.status != corio::channel_status::delivered) {
        closed = r.status == corio::channel_status::closed;
        break;
      }
      batch += *r.value;
    }
    if (!batch.empty()) {
      co_await corio::write_all(*s, std::string_view{batch});
      batch.clear();
      continue;
    }
    if (closed) break;
    // Under the lock, never by a peek at `dropped`: a broadcaster's failed try_send and its
    // count are two steps, both under the lock, and a peek between them (from another worker)
    // would park this writer on an empty outbox with a drop still to report.
    const std::uint64_t n = co_await server->take_dropped_if_drained(c.get());
    if (n != 0) {
      batch = fmt::format("* {} lines dropped\n", n);
      continue;
    }
    auto line = co_await c->outbox.recv();
    if (!line) break;
    batch = std::move(*line);
  }
  auto [last, linger] = co_await server->farewell(c.get());
  if (!last.empty()) co_await corio::write_all(*s, std::string_view{last});
  std::error_code ignored;
  s->shutdown(corio::net::shutdown_type::send, ignored);  // the client reads end of stream now
  if (!linger) pair->cancel();
}

/// One connection: registers the client, runs its reader and writer in a fail-fast task_group
/// (either one failing cancels the other), unregisters it. A failure is rethrown with the
/// client's name, for the supervising group of connections to report.
corio::task<void> connection(corio::net::tcp_stream s, chat_server* server) {
  auto c = std::make_shared<client>();
  const bool entered = co_await server->enter(c);
  if (!entered) {
    std::error_code ignored;
    const std::string_view bye = "* server shutting down\n";
    co_await corio::write_all(s, std::as_bytes(std::span{bye.data(), bye.size()}), ignored);
    co_return;
  }
  std::exception_ptr failure;
  bool cancelled = false;
  {
    corio::task_group pair;
    pair.spawn(read_lines(&s, c, server));
    pair.spawn(write_lines(&s, c, server, &pair));
    try {
      co_await pair.join();
    } catch (const corio::operation_cancelled&) {
      cancelled = true;  // the server gave up waiting for this client at shutdown
      failure = std::current_exception();
    } catch (...) {
      failure = std::current_exception();
    }
  }
  if (cancelled) std::rethrow_exception(failure);
  // The reader has ended, so its name is ours to read.
  co_await server->leave(c, c->name);
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}: {}", c->name, e.what()));
    }
  }
}

/// Accepts until cancelled, each connection a task of `connections`.
corio::task<int> accept_loop(corio::net::tcp_listener* listener, corio::task_group* connections,
                             chat_server* server) {
  for (;;) {
    std::error_code ec;
    auto s = co_await listener->accept(ec);
    if (ec == std::errc::operation_canceled) co_return 0;
    if (ec) {
      fmt::print(stderr, "chat: accept: {}\n", ec.message());
      co_await corio::sleep_for(std::chrono::milliseconds{10});  // out of descriptors: back off
      continue;
    }
    connections->spawn(connection(std::move(s), server));
  }
}

corio::task<int> wait_for_signal() { co_return co_await corio::signal({SIGINT, SIGTERM}); }

/// The supervising group's callback: a connection failed (a reset, say); the others go on.
void report_failure(std::exception_ptr e) { corio_samples::report_connection_failure("chat", e); }

corio::task<int> serve(unsigned port) {
  chat_server server;
  auto listener = corio::net::tcp_listener::bind(fmt::format("127.0.0.1:{}", port));
  fmt::print("listening on {}\n", listener.local_endpoint().to_string());
  std::fflush(stdout);
  corio::task_group connections{corio::task_group::policy::supervise, report_failure};
  // The first of the two to end wins; when_any cancels the other and waits for it.
  auto first = co_await corio::when_any(wait_for_signal(), accept_loop(&listener, &connections, &server));
  int status = 0;
  if (first.index() == 0) {
    fmt::print(stderr, "chat: signal {}: stopping\n", std::get<0>(first));
  } else {
    status = std::get<1>(first);
  }
  listener = corio::net::tcp_listener{};  // closed: new connections are refused
  co_await server.shut_down();            // every writer sends what is queued, then the farewell
  const bool finished = co_await corio::try_timeout(shutdown_grace, connections.join());
  if (!finished) fmt::print(stderr, "chat: clients still busy after {} s: closed\n", shutdown_grace.count());
  fmt::print(stderr, "chat: stopped\n");
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned port = 0;
  unsigned workers = 0;
  if (!corio_samples::parse_port_workers(argc, argv, port, workers)) return usage();
  try {
    corio::runtime rt{{.workers = workers}};
    return rt.block_on(serve(port));
  } catch (const std::exception& e) {
    fmt::print(stderr, "chat: {}\n", e.what());
    return 1;
  }
}
