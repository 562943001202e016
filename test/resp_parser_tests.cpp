// Suite "samples": the RESP sample (samples/resp_kv): its parser (samples/resp/resp_parser.hpp),
// its keyspace and commands (samples/resp/resp_commands.hpp), and its connection handler over
// loopback (samples/resp/resp_server.hpp).
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <corio/corio.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "resp/resp_commands.hpp"
#include "resp/resp_parser.hpp"
#include "resp/resp_server.hpp"
#include "test_support.hpp"

namespace resp = corio_samples::resp;
using resp::parse_status;
using namespace std::literals;

namespace {

/// Every command of `stream` parsed as the server does (each complete command consumed, the rest
/// kept): the arguments of each, as strings; `error` set to the parser's message on an error, and
/// `rest` to the bytes of an unfinished command at the end. Fed `step` bytes at a time (0: all at
/// once), each time from a fresh heap copy of the pending bytes, so that resuming after the buffer
/// moved is exercised and ASan sees any read past the end.
struct parsed {
  std::vector<std::vector<std::string>> commands;
  std::string error;
  std::size_t rest = 0;
};

parsed parse_all(std::string_view stream, std::size_t step = 0, resp::parse_limits limits = {}) {
  parsed p;
  resp::command_parser parser{limits};
  std::string pending;
  std::size_t fed = 0;
  // Each round feeds at least one byte or ends: bounded by the stream's size.
  for (std::size_t round = 0; round <= stream.size() + 1; ++round) {
    const std::size_t n = step == 0 ? stream.size() - fed : std::min(step, stream.size() - fed);
    pending.append(stream.substr(fed, n));
    fed += n;
    for (;;) {
      auto copy = std::make_unique<char[]>(pending.size() + 1);
      std::copy(pending.begin(), pending.end(), copy.get());
      const parse_status st = parser.parse({copy.get(), pending.size()});
      if (st == parse_status::error) {
        p.error = parser.error();
        return p;
      }
      if (st == parse_status::incomplete) {
        CHECK(parser.needed() > pending.size());
        break;
      }
      std::vector<std::string> args;
      for (const std::string_view a : parser.args()) {
        CHECK(a.data() >= copy.get());
        CHECK(a.data() + a.size() <= copy.get() + pending.size());
        args.emplace_back(a);
      }
      p.commands.push_back(std::move(args));
      REQUIRE(parser.consumed() > 0);
      REQUIRE(parser.consumed() <= pending.size());
      pending.erase(0, parser.consumed());
    }
    if (fed == stream.size()) break;
  }
  p.rest = pending.size();
  return p;
}

using args_list = std::vector<std::vector<std::string>>;

/// Runs the inline command `line` (split on spaces) on `ks` at `now_ms`: its RESP answer.
std::string run(resp::keyspace& ks, std::string_view line, std::int64_t now_ms = 1000) {
  resp::command_parser parser;
  const std::string input = std::string{line} + "\r\n";
  REQUIRE(parser.parse(input) == parse_status::complete);
  std::string out;
  (void)resp::execute(ks, parser.args(), now_ms, out);
  return out;
}

}  // namespace

TEST_SUITE_BEGIN("samples");

TEST_CASE("a RESP array of bulk strings is parsed into its arguments, views into the buffer") {
  const std::string_view buf = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
  resp::command_parser parser;
  REQUIRE(parser.parse(buf) == parse_status::complete);
  REQUIRE(parser.args().size() == 3);
  CHECK(parser.args()[0] == "SET");
  CHECK(parser.args()[1] == "key");
  CHECK(parser.args()[2] == "va\r\nl");  // bulk strings are binary-safe
  CHECK(parser.args()[0].data() == buf.data() + 8);
  CHECK(parser.consumed() == buf.size());
}

TEST_CASE("pipelined commands, RESP and inline mixed, come out one by one in order") {
  const std::string stream =
      "*1\r\n$4\r\nPING\r\nSET a  1\r\nGET\ta\n\r\n*0\r\n*-1\r\n*2\r\n$0\r\n\r\n$1\r\nx\r\nDEL a";
  const args_list want{{"PING"}, {"SET", "a", "1"}, {"GET", "a"}, {}, {}, {}, {"", "x"}};
  const parsed whole = parse_all(stream);
  CHECK(whole.error.empty());
  CHECK(whole.commands == want);
  CHECK(whole.rest == "DEL a"sv.size());  // an inline line waits for its line end
}

TEST_CASE("a command cut at every byte parses exactly as it does whole") {
  const std::string stream =
      "*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$2\r\nab\r\nINCR "
      "counter\r\n*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n";
  const parsed whole = parse_all(stream);
  REQUIRE(whole.error.empty());
  REQUIRE(whole.commands.size() == 3);
  for (std::size_t step = 1; step <= 7; ++step) {
    CAPTURE(step);
    const parsed cut = parse_all(stream, step);
    CHECK(cut.error.empty());
    CHECK(cut.commands == whole.commands);
    CHECK(cut.rest == 0);
  }
}

TEST_CASE("protocol violations are errors with Redis's wording, and the parser stays failed") {
  struct bad_case {
    std::string_view input;
    std::string_view error;
  };
  const bad_case cases[] = {
      {"*x\r\n"sv, "invalid multibulk length"sv},
      {"*1\n"sv, "invalid multibulk length"sv},
      {"*2000000\r\n"sv, "invalid multibulk length"sv},
      {"*99999999999999999999\r\n"sv, "invalid multibulk length"sv},
      {"*1\r\n+PING\r\n"sv, "expected '$'"sv},
      {"*1\r\n$-1\r\n"sv, "invalid bulk length"sv},
      {"*1\r\n$\r\n"sv, "invalid bulk length"sv},
      {"*1\r\n$3x\r\n"sv, "invalid bulk length"sv},
      {"*1\r\n$16777217\r\n"sv, "invalid bulk length"sv},
      {"*1\r\n$4\r\nPINGxx"sv, "expected CRLF after a bulk string"sv},
  };
  for (const bad_case& c : cases) {
    CAPTURE(c.input);
    resp::command_parser parser;
    REQUIRE(parser.parse(c.input) == parse_status::error);
    CHECK(parser.error() == c.error);
    CHECK(parser.parse("PING\r\n") == parse_status::error);
    // Cut into single bytes, the same error comes (never a different verdict on a prefix).
    CHECK(parse_all(c.input, 1).error == c.error);
  }
}

TEST_CASE("header lines, inline lines, bulk strings and commands are bounded in size") {
  resp::parse_limits limits;
  limits.max_bulk_bytes = 100;
  limits.max_args = 4;
  limits.max_inline_bytes = 32;
  limits.max_command_bytes = 200;
  // A header line that never ends is refused once it cannot be a number any more.
  CHECK(parse_all("*" + std::string(100, '1'), 0, limits).error == "invalid multibulk length");
  CHECK(parse_all("*1\r\n$" + std::string(100, '1'), 0, limits).error == "invalid bulk length");
  CHECK(parse_all("*5\r\n", 0, limits).error == "invalid multibulk length");
  CHECK(parse_all("*4\r\n", 0, limits).error.empty());
  CHECK(parse_all("*1\r\n$101\r\n", 0, limits).error == "invalid bulk length");
  CHECK(parse_all("*1\r\n$100\r\n", 0, limits).error.empty());
  CHECK(parse_all("*2\r\n$100\r\n" + std::string(100, 'v') + "\r\n$100\r\n", 0, limits).error ==
        "command too large");
  CHECK(parse_all(std::string(40, 'a'), 0, limits).error == "too big inline request");
  CHECK(parse_all(std::string(31, 'a'), 1, limits).error.empty());
  CHECK(parse_all("a b c d e\r\n", 0, limits).error == "too many arguments in an inline request");
  // While a command is incomplete, the parser never asks for more than the command limit and a
  // header line.
  resp::command_parser parser{limits};
  const std::string partial = "*2\r\n$100\r\n" + std::string(50, 'v');
  REQUIRE(parser.parse(partial) == parse_status::incomplete);
  CHECK(parser.needed() == 4 + 6 + 102);
  CHECK(parser.needed() <= parser.max_needed());
  CHECK(parser.max_needed() == 200 + resp::max_header_bytes + 3);
}

TEST_CASE("a header cut short gets the verdict the whole header gets, however small the limits") {
  // Found by test/fuzz/resp_fuzz.cpp: a "$" header waiting for its CR was refused as "command too
  // large" under a small max_command_bytes, while the same bytes in one piece were an invalid
  // bulk length.
  resp::parse_limits limits;
  limits.max_bulk_bytes = 0;
  limits.max_args = 1;
  limits.max_inline_bytes = 2;
  limits.max_command_bytes = 0;
  const std::string input = "*1\r\n$4\rx";
  CHECK(parse_all(input, 0, limits).error == "invalid bulk length");
  for (std::size_t step = 1; step <= 3; ++step) {
    CAPTURE(step);
    CHECK(parse_all(input, step, limits).error == "invalid bulk length");
  }
}

TEST_CASE("integers are parsed as Redis's string2ll does") {
  std::int64_t v = 0;
  CHECK((resp::parse_integer("0", v) && v == 0));
  CHECK((resp::parse_integer("-42", v) && v == -42));
  CHECK((resp::parse_integer("9223372036854775807", v) && v == INT64_MAX));
  CHECK((resp::parse_integer("-9223372036854775808", v) && v == INT64_MIN));
  for (const std::string_view bad : {""sv, "-"sv, "+1"sv, " 1"sv, "1 "sv, "007"sv, "-0"sv, "1.5"sv,
                                     "9223372036854775808"sv, "123456789012345678901"sv}) {
    CAPTURE(bad);
    CHECK_FALSE(resp::parse_integer(bad, v));
  }
}

TEST_CASE("SET, GET, DEL, EXISTS, MSET, MGET and DBSIZE answer as Redis does") {
  resp::keyspace ks;
  CHECK(run(ks, "PING") == "+PONG\r\n");
  CHECK(run(ks, "ping hello") == "$5\r\nhello\r\n");
  CHECK(run(ks, "ECHO x") == "$1\r\nx\r\n");
  CHECK(run(ks, "GET a") == "$-1\r\n");
  CHECK(run(ks, "SET a 1") == "+OK\r\n");
  CHECK(run(ks, "get a") == "$1\r\n1\r\n");
  CHECK(run(ks, "SET a 1 NX") == "$-1\r\n");
  CHECK(run(ks, "SET b 2 XX") == "$-1\r\n");
  CHECK(run(ks, "SET a 3 XX") == "+OK\r\n");
  CHECK(run(ks, "SET b 2 NX") == "+OK\r\n");
  CHECK(run(ks, "SET a 1 NX XX") == "-ERR syntax error\r\n");
  CHECK(run(ks, "SET a 1 EX 1 PX 1") == "-ERR syntax error\r\n");
  CHECK(run(ks, "SET a 1 EX") == "-ERR syntax error\r\n");
  CHECK(run(ks, "SET a 1 EX x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run(ks, "SET a 1 EX 0") == "-ERR invalid expire time in 'set' command\r\n");
  CHECK(run(ks, "SET a 1 PX 9223372036854775807") == "-ERR invalid expire time in 'set' command\r\n");
  CHECK(run(ks, "MSET c 3 d 4") == "+OK\r\n");
  CHECK(run(ks, "MSET c 3 d") == "-ERR wrong number of arguments for 'mset' command\r\n");
  CHECK(run(ks, "MGET a b nope d") == "*4\r\n$1\r\n3\r\n$1\r\n2\r\n$-1\r\n$1\r\n4\r\n");
  CHECK(run(ks, "EXISTS a a nope") == ":2\r\n");
  CHECK(run(ks, "DBSIZE") == ":4\r\n");
  CHECK(run(ks, "DEL a nope c") == ":2\r\n");
  CHECK(run(ks, "DBSIZE") == ":2\r\n");
  CHECK(run(ks, "FLUSHALL") == "+OK\r\n");
  CHECK(run(ks, "DBSIZE") == ":0\r\n");
  CHECK(run(ks, "GET") == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(run(ks, "NOPE a\rb") == "-ERR unknown command 'NOPE', with args beginning with: 'a b' \r\n");
  CHECK(run(ks, "CONFIG GET save") == "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
  CHECK(run(ks, "CONFIG GET maxmemory") == "*0\r\n");
  CHECK(run(ks, "COMMAND DOCS") == "*0\r\n");
}

TEST_CASE("INCR, DECR and INCRBY count in 64 bits, refuse non-integers and overflow, keep the TTL") {
  resp::keyspace ks;
  CHECK(run(ks, "INCR n") == ":1\r\n");
  CHECK(run(ks, "INCRBY n 41") == ":42\r\n");
  CHECK(run(ks, "DECR n") == ":41\r\n");
  CHECK(run(ks, "DECRBY n -1") == ":42\r\n");
  CHECK(run(ks, "INCRBY n x") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run(ks, "SET s abc") == "+OK\r\n");
  CHECK(run(ks, "INCR s") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run(ks, "SET m 9223372036854775807") == "+OK\r\n");
  CHECK(run(ks, "INCR m") == "-ERR increment or decrement would overflow\r\n");
  CHECK(run(ks, "DECRBY m -9223372036854775808") == "-ERR value is not an integer or out of range\r\n");
  CHECK(run(ks, "GET m") == "$19\r\n9223372036854775807\r\n");
  CHECK(run(ks, "EXPIRE n 10", 1000) == ":1\r\n");
  CHECK(run(ks, "INCR n", 2000) == ":43\r\n");
  CHECK(run(ks, "TTL n", 2000) == ":9\r\n");
}

TEST_CASE("keys expire at their time: EX, PX, EXPIRE, TTL and PTTL on a given clock") {
  resp::keyspace ks;
  CHECK(run(ks, "SET a 1 EX 10", 1000) == "+OK\r\n");
  CHECK(run(ks, "SET b 1 PX 1500", 1000) == "+OK\r\n");
  CHECK(run(ks, "SET c 1", 1000) == "+OK\r\n");
  CHECK(run(ks, "TTL a", 1000) == ":10\r\n");
  CHECK(run(ks, "TTL a", 1600) == ":9\r\n");  // 9.4 s left: rounded
  CHECK(run(ks, "PTTL b", 1000) == ":1500\r\n");
  CHECK(run(ks, "TTL c", 1000) == ":-1\r\n");
  CHECK(run(ks, "TTL nope", 1000) == ":-2\r\n");
  CHECK(run(ks, "GET b", 2499) == "$1\r\n1\r\n");
  CHECK(run(ks, "GET b", 2500) == "$-1\r\n");
  CHECK(run(ks, "EXISTS b", 2500) == ":0\r\n");
  CHECK(run(ks, "EXPIRE c 5", 2000) == ":1\r\n");
  CHECK(run(ks, "EXPIRE nope 5", 2000) == ":0\r\n");
  CHECK(run(ks, "PTTL c", 3000) == ":4000\r\n");
  CHECK(run(ks, "SET c 2", 3000) == "+OK\r\n");  // SET clears the expiry
  CHECK(run(ks, "TTL c", 3000) == ":-1\r\n");
  CHECK(run(ks, "EXPIRE c -1", 3000) == ":1\r\n");  // a past time removes the key
  CHECK(run(ks, "GET c", 3000) == "$-1\r\n");
  CHECK(run(ks, "EXPIRE a 9223372036854775807", 3000) == "-ERR invalid expire time in 'expire' command\r\n");
  CHECK(run(ks, "SET a 1 NX EX 1", 11000) == "+OK\r\n");  // a expired: NX sets it again
  CHECK(run(ks, "INCR b", 11000) == ":1\r\n");            // an expired key counts from 0
}

TEST_CASE("the sweep removes expired keys nobody reads, and only those") {
  resp::keyspace ks;
  constexpr int keys = 500;
  for (int i = 0; i < keys; ++i) {
    const std::string expiry = i % 2 == 0 ? " PX 100" : "";
    REQUIRE(run(ks, "SET k" + std::to_string(i) + " v" + expiry, 1000) == "+OK\r\n");
  }
  CHECK(ks.size() == keys);
  CHECK(ks.sweep_expired(1050) == 0);
  std::size_t removed = 0;
  // Every bucket is visited within bucket_count / 32 sweeps; 100 sweeps are plenty for 500 keys.
  for (int round = 0; round < 100 && removed < keys / 2; ++round) removed += ks.sweep_expired(1100);
  CHECK(removed == keys / 2);
  CHECK(ks.size() == keys / 2);
  CHECK(run(ks, "GET k1", 5000) == "$1\r\nv\r\n");
  CHECK(run(ks, "GET k0", 5000) == "$-1\r\n");
}

TEST_CASE("QUIT answers OK and asks to close the connection") {
  resp::keyspace ks;
  resp::command_parser parser;
  REQUIRE(parser.parse("QUIT\r\n") == parse_status::complete);
  std::string out;
  CHECK(resp::execute(ks, parser.args(), 1, out) == resp::after_command::close);
  CHECK(out == "+OK\r\n");
}

TEST_CASE("INCR from many threads at once counts every increment exactly once") {
  for (const int threads : {1, 2, 4}) {
    CAPTURE(threads);
    resp::keyspace ks;
    constexpr int per_thread = 2000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&ks, t] {
        const std::array<std::string_view, 2> incr{"INCR", "shared"};
        const std::string own = "own" + std::to_string(t);
        const std::array<std::string_view, 3> set{"SET", own, "x"};
        std::string out;
        for (int i = 0; i < per_thread; ++i) {
          (void)resp::execute(ks, incr, 1, out);
          (void)resp::execute(ks, set, 1, out);
          out.clear();
        }
      });
    }
    for (auto& th : pool) th.join();
    CHECK(run(ks, "GET shared", 1) == "$" + std::to_string(std::to_string(threads * per_thread).size()) +
                                          "\r\n" + std::to_string(threads * per_thread) + "\r\n");
    CHECK(ks.size() == static_cast<std::size_t>(threads) + 1);
  }
}

namespace {

corio::task<void> serve_one(corio::net::tcp_listener* l, resp::keyspace* ks, resp::parse_limits limits) {
  auto s = co_await l->accept();
  co_await resp::serve_connection(std::move(s), ks, limits);
}

/// Sends `pieces` one write at a time, then half-closes, and returns all the server sent until it
/// closed the connection.
corio::task<std::string> exchange(std::vector<std::string> pieces, resp::keyspace* ks,
                                  resp::parse_limits limits) {
  auto l = corio::net::tcp_listener::bind("127.0.0.1:0");
  auto server = corio::spawn(serve_one(&l, ks, limits));
  corio::net::tcp_stream s = co_await corio::net::tcp_stream::connect(l.local_endpoint());
  s.set_nodelay(true);
  for (const auto& p : pieces) {
    co_await s.write_all(p);
    co_await corio::yield();
  }
  s.shutdown(corio::net::shutdown_type::send);
  std::string got;
  std::array<char, 4096> buf{};
  for (int i = 0; i < 100'000; ++i) {  // bounded
    const std::size_t n = co_await s.read_some(buf);
    if (n == 0) break;
    got.append(buf.data(), n);
  }
  co_await server;
  co_return got;
}

}  // namespace

TEST_CASE(
    "a connection answers pipelined commands cut anywhere, in order, and closes after a protocol error") {
  corio_test::hang_guard guard{"resp connection", 120s};
  for (const unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    corio::runtime rt{{.workers = workers}};
    resp::keyspace ks;
    std::string stream;
    std::string want;
    for (int i = 0; i < 200; ++i) {
      stream += "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(std::to_string(i).size()) + "\r\n" +
                std::to_string(i) + "\r\nINCR k\r\n";
      want += "+OK\r\n:" + std::to_string(i + 1) + "\r\n";
    }
    // Cut into pieces of 1..13 bytes.
    std::vector<std::string> pieces;
    for (std::size_t at = 0, k = 0; at < stream.size(); ++k) {
      const std::size_t n = 1 + k % 13;
      pieces.push_back(stream.substr(at, n));
      at += n;
    }
    pieces.push_back("GET k\r\n*1\r\n$x\r\nGET k\r\n");
    want += "$3\r\n200\r\n-ERR Protocol error: invalid bulk length\r\n";
    CHECK(rt.block_on(exchange(pieces, &ks, {})) == want);
  }
}

TEST_CASE("a connection grows its buffer for a large value, up to the limit, and QUIT closes it") {
  corio_test::hang_guard guard{"resp connection", 120s};
  corio::runtime rt{{.workers = 2}};
  resp::keyspace ks;
  resp::parse_limits limits;
  limits.max_bulk_bytes = 1 << 20;
  limits.max_command_bytes = 2 << 20;
  const std::string value(1 << 20, 'v');
  const std::string set =
      "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  const std::string answer = "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  CHECK(rt.block_on(exchange({set, "GET big\r\nQUIT\r\nGET big\r\n"}, &ks, limits)) ==
        "+OK\r\n" + answer + "+OK\r\n");
  CHECK(rt.block_on(exchange({"*1\r\n$1048577\r\n"}, &ks, limits)) ==
        "-ERR Protocol error: invalid bulk length\r\n");
}

TEST_SUITE_END();
