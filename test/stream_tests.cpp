// Suite "io": the stream layer of corio/io.hpp (read_exact, write_all, vectored writes,
// buffered_reader, buffered_writer, copy) over in-memory streams whose short reads, short writes,
// ends and errors are scripted, and over connected TCP streams on 127.0.0.1.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <corio/corio.hpp>
#include <corio/io.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span{s.data(), s.size()});
}
std::span<std::byte> bytes_of(std::string& s) {
  return std::as_writable_bytes(std::span{s.data(), s.size()});
}

/// An in-memory stream for deterministic edge cases. Reads serve `input`, at most `max_read` bytes
/// per read_some; at `read_fail_at` (a byte offset) one read fails with ECONNRESET, after which the
/// stream goes on. Writes append to `output`, at most `max_write` bytes per write_some; once
/// `write_fail_at` bytes were written one write fails with EPIPE, after which the stream goes on.
/// Every operation yields once first, so the callers really suspend.
struct memory_stream {
  std::string input;
  std::size_t max_read = std::numeric_limits<std::size_t>::max();
  std::optional<std::size_t> read_fail_at;
  std::string output;
  std::size_t max_write = std::numeric_limits<std::size_t>::max();
  std::optional<std::size_t> write_fail_at;
  std::size_t pos = 0;
  int reads = 0;
  int writes = 0;

  corio::task<std::size_t> read_some(std::span<std::byte> b) { return read_impl(b, nullptr); }
  corio::task<std::size_t> read_some(std::span<std::byte> b, std::error_code& ec) {
    return read_impl(b, &ec);
  }
  corio::task<std::size_t> write_some(std::span<const std::byte> d) { return write_impl(d, nullptr); }
  corio::task<std::size_t> write_some(std::span<const std::byte> d, std::error_code& ec) {
    return write_impl(d, &ec);
  }

 private:
  corio::task<std::size_t> read_impl(std::span<std::byte> b, std::error_code* ec) {
    co_await corio::yield();
    ++reads;
    if (read_fail_at && pos >= *read_fail_at) {
      read_fail_at.reset();
      const std::error_code code{ECONNRESET, std::system_category()};
      if (ec == nullptr) throw std::system_error(code, "memory_stream::read_some");
      *ec = code;
      co_return 0;
    }
    std::size_t n = std::min({b.size(), max_read, input.size() - pos});
    if (read_fail_at) n = std::min(n, *read_fail_at - pos);
    std::memcpy(b.data(), input.data() + pos, n);
    pos += n;
    if (ec != nullptr) ec->clear();
    co_return n;
  }
  corio::task<std::size_t> write_impl(std::span<const std::byte> d, std::error_code* ec) {
    co_await corio::yield();
    ++writes;
    if (write_fail_at && output.size() >= *write_fail_at) {
      write_fail_at.reset();
      const std::error_code code{EPIPE, std::system_category()};
      if (ec == nullptr) throw std::system_error(code, "memory_stream::write_some");
      *ec = code;
      co_return 0;
    }
    std::size_t n = std::min(d.size(), max_write);
    if (write_fail_at) n = std::min(n, *write_fail_at - output.size());
    output.append(reinterpret_cast<const char*>(d.data()), n);
    if (ec != nullptr) ec->clear();
    co_return n;
  }
};

static_assert(corio::readable_stream<memory_stream> && corio::writable_stream<memory_stream>);
static_assert(corio::readable_stream<tcp_stream> && corio::writable_stream<tcp_stream>);
static_assert(corio::native_stream<tcp_stream> && !corio::native_stream<memory_stream>);
static_assert(corio::readable_stream<corio::buffered_reader<tcp_stream&>>);
static_assert(corio::readable_stream<corio::buffered_reader<memory_stream>>);
static_assert(corio::writable_stream<corio::buffered_writer<tcp_stream&>>);
static_assert(!corio::native_stream<corio::buffered_reader<tcp_stream&>>);

memory_stream reading(std::string input, std::size_t max_read = std::numeric_limits<std::size_t>::max()) {
  memory_stream m;
  m.input = std::move(input);
  m.max_read = max_read;
  return m;
}

template <class T>
T run_on(corio::task<T> t, unsigned workers = 1) {
  corio::runtime rt{{.workers = workers}};
  return rt.block_on(std::move(t));
}

// --- read_exact ------------------------------------------------------------------------------

corio::task<std::string> read_exact_of(memory_stream* m, std::size_t n) {
  std::string out(n, '\0');
  const std::size_t got = co_await corio::read_exact(*m, bytes_of(out));
  CHECK(got == n);
  co_return out;
}

struct short_read {
  std::string what;
  std::error_code thrown;
  std::error_code reported;
  std::size_t got = 0;
};

corio::task<short_read> read_exact_short(memory_stream* m, memory_stream* m2, std::size_t n) {
  short_read r;
  std::string out(n, '\0');
  try {
    (void)co_await corio::read_exact(*m, bytes_of(out));
  } catch (const std::system_error& e) {
    r.what = e.what();
    r.thrown = e.code();
  }
  r.got = co_await corio::read_exact(*m2, bytes_of(out), r.reported);
  co_return r;
}

TEST_CASE("read_exact fills the buffer from a stream that yields one byte per read") {
  corio_test::hang_guard guard{"read_exact one byte at a time", 120s};
  memory_stream m = reading("hello, world", 1);
  CHECK(run_on(read_exact_of(&m, 12)) == "hello, world");
  CHECK(m.reads == 12);
  memory_stream whole = reading("abcdef");
  CHECK(run_on(read_exact_of(&whole, 4)) == "abcd");
  CHECK(whole.pos == 4);
  memory_stream none = reading("");
  CHECK(run_on(read_exact_of(&none, 0)).empty());
  CHECK(none.reads == 0);
}

TEST_CASE("read_exact at end of stream fails with unexpected_eof saying how many bytes came") {
  corio_test::hang_guard guard{"read_exact short", 120s};
  memory_stream a = reading("abc", 2);
  memory_stream b = reading("abc", 2);
  const short_read r = run_on(read_exact_short(&a, &b, 10));
  CHECK(r.thrown == corio::stream_errc::unexpected_eof);
  CHECK(r.what.find("end of stream after 3 of 10 bytes") != std::string::npos);
  CHECK(r.reported == corio::stream_errc::unexpected_eof);
  CHECK(r.got == 3);
}

TEST_CASE("read_exact passes the stream's error on, thrown or as an error_code with the count") {
  corio_test::hang_guard guard{"read_exact error", 120s};
  memory_stream a = reading("abcdef", 1);
  a.read_fail_at = 4;
  memory_stream b = reading("abcdef", 1);
  b.read_fail_at = 4;
  const short_read r = run_on(read_exact_short(&a, &b, 6));
  CHECK(r.thrown == std::errc::connection_reset);
  CHECK(r.reported == std::errc::connection_reset);
  CHECK(r.got == 4);
}

// --- write_all -------------------------------------------------------------------------------

corio::task<std::size_t> write_all_to(memory_stream* m, std::string data, std::error_code* ec) {
  if (ec == nullptr) co_return co_await corio::write_all(*m, bytes_of(std::string_view{data}));
  co_return co_await corio::write_all(*m, bytes_of(std::string_view{data}), *ec);
}

TEST_CASE("write_all loops a stream that accepts one byte per write") {
  corio_test::hang_guard guard{"write_all one byte at a time", 120s};
  memory_stream m;
  m.max_write = 1;
  CHECK(run_on(write_all_to(&m, "short writes", nullptr)) == 12);
  CHECK(m.output == "short writes");
  CHECK(m.writes == 12);
}

TEST_CASE("write_all reports an error after a prefix, with the count in the error_code form") {
  corio_test::hang_guard guard{"write_all error", 120s};
  memory_stream m;
  m.max_write = 3;
  m.write_fail_at = 5;
  std::error_code ec;
  CHECK(run_on(write_all_to(&m, "0123456789", &ec)) == 5);
  CHECK(ec == std::errc::broken_pipe);
  CHECK(m.output == "01234");
  memory_stream t;
  t.write_fail_at = 2;
  CHECK_THROWS_AS(run_on(write_all_to(&t, "0123456789", nullptr)), std::system_error);
  CHECK(t.output == "01");
}

corio::task<std::size_t> vectored_to_memory(memory_stream* m) {
  const std::string a = "alpha ", b, c = "gamma";
  std::array<corio::const_buffer, 3> parts{bytes_of(a), bytes_of(b), bytes_of(c)};
  std::size_t n = co_await corio::write_all(*m, std::span<const corio::const_buffer>{parts});
  const corio::const_buffer bar = bytes_of(std::string_view{"|"});
  n += co_await corio::write_all(*m, bar, bytes_of(c));
  co_return n;
}

TEST_CASE("a vectored write_all to any stream writes the buffers in order") {
  corio_test::hang_guard guard{"vectored write_all to memory", 120s};
  memory_stream m;
  m.max_write = 2;
  CHECK(run_on(vectored_to_memory(&m)) == 17);
  CHECK(m.output == "alpha gamma|gamma");
}

// --- buffered_reader -------------------------------------------------------------------------

corio::task<std::vector<std::string>> all_lines(memory_stream m, corio::buffered_reader_options o) {
  corio::buffered_reader reader{std::move(m), o};
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i) {
    std::optional<std::string> line = co_await reader.read_line();
    if (!line) break;
    lines.push_back(*line);
  }
  co_return lines;
}

TEST_CASE("read_line strips \\n and \\r\\n and yields a last line without a newline, then nothing") {
  corio_test::hang_guard guard{"read_line", 120s};
  const std::string text = "one\ntwo\r\n\nthree\r\r\nlast";
  const std::vector<std::string> expected{"one", "two", "", "three\r", "last"};
  for (std::size_t max_read : {std::size_t{1}, std::size_t{3}, std::size_t{1000}}) {
    for (std::size_t buffer_size : {std::size_t{1}, std::size_t{4}, std::size_t{64}}) {
      CAPTURE(max_read);
      CAPTURE(buffer_size);
      CHECK(run_on(all_lines(reading(text, max_read), {.buffer_size = buffer_size, .max_size = 64})) ==
            expected);
    }
  }
  CHECK(run_on(all_lines(reading("a\n"), {})) == std::vector<std::string>{"a"});
  CHECK(run_on(all_lines(reading(""), {})).empty());
}

corio::task<std::vector<std::string>> until_all(memory_stream m, std::string delimiter) {
  corio::buffered_reader reader{std::move(m), {.buffer_size = 2, .max_size = 32}};
  std::vector<std::string> parts;
  for (int i = 0; i < 100; ++i) {
    std::string part = co_await reader.read_until(delimiter);
    if (part.empty()) break;
    parts.push_back(std::move(part));
  }
  co_return parts;
}

TEST_CASE("read_until finds a delimiter of several bytes split across reads and keeps it") {
  corio_test::hang_guard guard{"read_until", 120s};
  const std::vector<std::string> expected{"GET / HTTP/1.1\r\n\r\n", "body\r\n\r\n", "tail\r\n"};
  CHECK(run_on(until_all(reading("GET / HTTP/1.1\r\n\r\nbody\r\n\r\ntail\r\n", 1), "\r\n\r\n")) == expected);
}

struct limit_outcome {
  std::error_code thrown;
  std::string what;
  std::error_code reported;
  std::size_t buffered_after = 0;
  std::string at_limit;
  std::optional<std::string> after_skip;
};

corio::task<limit_outcome> over_the_limit(memory_stream m) {
  corio::buffered_reader reader{std::move(m), {.buffer_size = 4, .max_size = 16}};
  limit_outcome r;
  // A line of exactly max_size bytes with its newline fits.
  std::optional<std::string> fits = co_await reader.read_line();
  r.at_limit = fits.value_or("<none>");
  try {
    (void)co_await reader.read_line();
  } catch (const std::system_error& e) {
    r.thrown = e.code();
    r.what = e.what();
  }
  std::optional<std::string> again = co_await reader.read_line(r.reported);
  CHECK_FALSE(again);
  r.buffered_after = reader.buffered().size();
  reader.consume(16);  // skip what was over the limit, then read on
  std::string rest = co_await reader.read_until('\n');
  CHECK(rest == "xxxx\n");
  r.after_skip = co_await reader.read_line();
  co_return r;
}

TEST_CASE("read_line over the size limit ends with EMSGSIZE naming the limit and consumes nothing") {
  corio_test::hang_guard guard{"read_line limit", 120s};
  const limit_outcome r =
      run_on(over_the_limit(reading(std::string(15, 'a') + "\n" + std::string(20, 'x') + "\nok\n", 3)));
  CHECK(r.at_limit == std::string(15, 'a'));
  CHECK(r.thrown == std::errc::message_size);
  CHECK(r.what.find("limit of 16 bytes") != std::string::npos);
  CHECK(r.reported == std::errc::message_size);
  CHECK(r.buffered_after == 16);
  CHECK(r.after_skip == std::optional<std::string>{"ok"});
}

struct peek_outcome {
  std::string peeked;
  std::string peeked_again;
  std::string read;
  std::string at_end;
  std::error_code too_much;
};

corio::task<peek_outcome> peek_then_read(memory_stream m) {
  corio::buffered_reader reader{std::move(m), {.buffer_size = 2, .max_size = 8}};
  peek_outcome r;
  std::span<const std::byte> p = co_await reader.peek(5);
  r.peeked.assign(reinterpret_cast<const char*>(p.data()), p.size());
  p = co_await reader.peek(3);
  r.peeked_again.assign(reinterpret_cast<const char*>(p.data()), p.size());
  std::string out(6, '\0');
  (void)co_await reader.read_exact(bytes_of(out));
  r.read = out;
  p = co_await reader.peek(8);  // only 3 bytes are left before the end
  r.at_end.assign(reinterpret_cast<const char*>(p.data()), p.size());
  p = co_await reader.peek(9, r.too_much);
  CHECK(p.empty());
  co_return r;
}

TEST_CASE("peek does not consume, is short only at end of stream, and refuses more than max_size") {
  corio_test::hang_guard guard{"peek", 120s};
  const peek_outcome r = run_on(peek_then_read(reading("abcdefghi", 1)));
  CHECK(r.peeked == "abcde");
  CHECK(r.peeked_again == "abc");
  CHECK(r.read == "abcdef");
  CHECK(r.at_end == "ghi");
  CHECK(r.too_much == std::errc::message_size);
}

struct eof_outcome {
  std::string first;
  std::string partial;
  std::string after;
  std::error_code eof;
};

corio::task<eof_outcome> reader_ends(memory_stream m) {
  corio::buffered_reader reader{std::move(m)};
  eof_outcome r;
  r.first = co_await reader.read_until('\n');
  r.partial = co_await reader.read_until('\n');  // end of stream in the middle of a line
  r.after = co_await reader.read_until('\n');
  std::array<std::byte, 4> buf{};
  (void)co_await reader.read_exact(buf, r.eof);
  co_return r;
}

TEST_CASE("read_until at end of stream yields the partial line, then empty strings") {
  corio_test::hang_guard guard{"read_until at end", 120s};
  const eof_outcome r = run_on(reader_ends(reading("line\npart", 2)));
  CHECK(r.first == "line\n");
  CHECK(r.partial == "part");
  CHECK(r.after.empty());
  CHECK(r.eof == corio::stream_errc::unexpected_eof);
}

struct error_outcome {
  std::error_code thrown;
  std::optional<std::string> line;
  std::optional<std::string> next;
};

corio::task<error_outcome> error_mid_line(memory_stream* m) {
  corio::buffered_reader reader{*m, {.buffer_size = 4}};
  error_outcome r;
  try {
    (void)co_await reader.read_line();
  } catch (const std::system_error& e) {
    r.thrown = e.code();
  }
  r.line = co_await reader.read_line();
  r.next = co_await reader.read_line();
  co_return r;
}

TEST_CASE("a read error in the middle of a line keeps the bytes read so far for the next call") {
  corio_test::hang_guard guard{"error mid line", 120s};
  memory_stream m = reading("hello world\nbye\n", 3);
  m.read_fail_at = 7;
  const error_outcome r = run_on(error_mid_line(&m));
  CHECK(r.thrown == std::errc::connection_reset);
  CHECK(r.line == std::optional<std::string>{"hello world"});
  CHECK(r.next == std::optional<std::string>{"bye"});
}

corio::task<std::string> small_and_large_reads(memory_stream* m) {
  corio::buffered_reader reader{*m, {.buffer_size = 4}};
  std::string got;
  std::array<std::byte, 2> small{};
  std::size_t n = co_await reader.read_some(small);
  got.append(reinterpret_cast<const char*>(small.data()), n);
  std::array<std::byte, 16> large{};
  n = co_await reader.read_some(large);  // the 2 bytes left in the buffer
  got.append(reinterpret_cast<const char*>(large.data()), n);
  n = co_await reader.read_some(large);  // nothing buffered, large: straight from the stream
  got.append(reinterpret_cast<const char*>(large.data()), n);
  co_return got;
}

TEST_CASE("buffered_reader::read_some serves the buffer first and reads large buffers directly") {
  corio_test::hang_guard guard{"read_some", 120s};
  memory_stream m = reading("abcdefghijklmnopqrstuvwxyz");
  CHECK(run_on(small_and_large_reads(&m)) == "abcdefghijklmnopqrst");
  CHECK(m.reads == 2);
}

// --- buffered_writer -------------------------------------------------------------------------

struct writer_outcome {
  std::string before_flush;
  std::string after_flush;
  int writes_before_large = 0;
  int writes_after_large = 0;
  std::string final_output;
};

corio::task<writer_outcome> buffered_writes(memory_stream* m) {
  corio::buffered_writer writer{*m, {.buffer_size = 8}};
  writer_outcome r;
  for (int i = 0; i < 3; ++i) (void)co_await writer.write(std::string_view{"ab"});
  r.before_flush = m->output;
  co_await writer.flush();
  r.after_flush = m->output;
  r.writes_before_large = m->writes;
  const std::string large(20, 'L');
  (void)co_await writer.write(std::string_view{large});  // nothing buffered: one write, no copy
  r.writes_after_large = m->writes;
  (void)co_await writer.write(std::string_view{"12345"});
  (void)co_await writer.write(std::string_view{"6789"});  // fills the buffer: 8 bytes go out
  (void)co_await corio::write_all(writer, bytes_of(std::string_view{"!"}));
  co_await writer.flush();
  r.final_output = m->output;
  co_return r;
}

TEST_CASE("buffered_writer collects small writes, flushes when full or asked, writes large data directly") {
  corio_test::hang_guard guard{"buffered_writer", 120s};
  memory_stream m;
  const writer_outcome r = run_on(buffered_writes(&m));
  CHECK(r.before_flush.empty());
  CHECK(r.after_flush == "ababab");
  CHECK(r.writes_before_large == 1);
  CHECK(r.writes_after_large == 2);
  CHECK(r.final_output == "ababab" + std::string(20, 'L') + "123456789!");
}

corio::task<std::size_t> write_without_flush(memory_stream* m) {
  corio::buffered_writer writer{*m};
  co_return co_await writer.write(std::string_view{"lost"});
}

TEST_CASE("a buffered_writer dropped without flush does no I/O and loses its bytes") {
  corio_test::hang_guard guard{"no flush", 120s};
  memory_stream m;
  CHECK(run_on(write_without_flush(&m)) == 4);
  CHECK(m.output.empty());
  CHECK(m.writes == 0);
}

struct flush_error_outcome {
  std::error_code thrown;
  std::size_t buffered_after_error = 0;
  std::error_code second;
  std::string output;
};

corio::task<flush_error_outcome> flush_fails_once(memory_stream* m) {
  corio::buffered_writer writer{*m, {.buffer_size = 16}};
  flush_error_outcome r;
  (void)co_await writer.write(std::string_view{"0123456789"});
  try {
    co_await writer.flush();
  } catch (const std::system_error& e) {
    r.thrown = e.code();
  }
  r.buffered_after_error = writer.buffered();
  (void)co_await writer.write(std::string_view{"abc"});
  co_await writer.flush(r.second);
  r.output = m->output;
  co_return r;
}

TEST_CASE("a failed flush keeps the unwritten bytes in order and the next flush writes them") {
  corio_test::hang_guard guard{"flush error", 120s};
  memory_stream m;
  m.max_write = 3;
  m.write_fail_at = 6;
  const flush_error_outcome r = run_on(flush_fails_once(&m));
  CHECK(r.thrown == std::errc::broken_pipe);
  CHECK(r.buffered_after_error == 4);
  CHECK_FALSE(r.second);
  CHECK(r.output == "0123456789abc");
}

// --- copy ------------------------------------------------------------------------------------

corio::task<std::uint64_t> copy_memory(memory_stream* from, memory_stream* to, std::size_t buffer_size) {
  co_return co_await corio::copy(*from, *to, buffer_size);
}

corio::task<std::uint64_t> copy_into_buffered(memory_stream* from, memory_stream* to) {
  corio::buffered_writer writer{*to, {.buffer_size = 64}};
  co_return co_await corio::copy(*from, writer);
}

TEST_CASE(
    "copy moves everything to end of stream through short reads and writes, and flushes a buffered writer") {
  corio_test::hang_guard guard{"copy memory", 120s};
  std::string text;
  for (int i = 0; i < 500; ++i) text += std::to_string(i) + ",";
  memory_stream from = reading(text, 7);
  memory_stream to;
  to.max_write = 5;
  CHECK(run_on(copy_memory(&from, &to, 16)) == text.size());
  CHECK(to.output == text);
  memory_stream from2 = reading(text, 100);
  memory_stream to2;
  CHECK(run_on(copy_into_buffered(&from2, &to2)) == text.size());
  CHECK(to2.output == text);
  memory_stream from3 = reading(text);
  memory_stream to3;
  CHECK_THROWS_AS(run_on(copy_memory(&from3, &to3, 0)), std::invalid_argument);
}

// --- over TCP --------------------------------------------------------------------------------

struct tcp_pair {
  tcp_stream client;
  tcp_stream server;
};

corio::task<tcp_pair> connected_pair() {
  auto l = tcp_listener::bind("127.0.0.1:0");
  tcp_pair p;
  p.client = co_await tcp_stream::connect(l.local_endpoint());
  p.server = co_await l.accept();
  co_return p;
}

std::uint64_t fnv1a(std::uint64_t h, std::span<const std::byte> data) {
  for (std::byte b : data) h = (h ^ static_cast<std::uint64_t>(b)) * 1099511628211ull;
  return h;
}

std::byte pattern_at(std::size_t i) { return static_cast<std::byte>((i * 131 + (i >> 11)) & 0xff); }

corio::task<std::uint64_t> send_pattern(tcp_stream* s, std::size_t bytes) {
  std::vector<std::byte> chunk(50000);
  std::uint64_t h = 1469598103934665603ull;
  std::size_t sent = 0;
  while (sent < bytes) {
    const std::size_t n = std::min(chunk.size(), bytes - sent);
    for (std::size_t i = 0; i < n; ++i) chunk[i] = pattern_at(sent + i);
    h = fnv1a(h, {chunk.data(), n});
    // Alternate the member write_all, the free one and write_some loops.
    std::size_t done = 0;
    if ((sent / chunk.size()) % 2 == 0) {
      done = co_await corio::write_all(*s, std::span<const std::byte>{chunk.data(), n});
    } else {
      while (done < n)
        done += co_await s->write_some(std::span<const std::byte>{chunk.data() + done, n - done});
    }
    sent += done;
  }
  s->shutdown(corio::net::shutdown_type::send);
  co_return h;
}

struct hashed {
  std::uint64_t bytes = 0;
  std::uint64_t hash = 0;
};

corio::task<hashed> receive_hashed(tcp_stream* s) {
  hashed r{0, 1469598103934665603ull};
  std::vector<std::byte> buf(30000);
  for (;;) {
    const std::size_t n = co_await s->read_some(buf);
    if (n == 0) break;
    r.hash = fnv1a(r.hash, {buf.data(), n});
    r.bytes += n;
  }
  co_return r;
}

corio::task<std::uint64_t> echo_by_copy(tcp_stream* s, std::size_t buffer_size) {
  const std::uint64_t n = co_await corio::copy(*s, *s, buffer_size);
  s->shutdown(corio::net::shutdown_type::send);
  co_return n;
}

struct copy_outcome {
  std::uint64_t sent_hash = 0;
  std::uint64_t copied = 0;
  hashed received;
};

corio::task<copy_outcome> copy_through_tcp(std::size_t bytes, std::size_t buffer_size) {
  tcp_pair p = co_await connected_pair();
  auto echo = corio::spawn(echo_by_copy(&p.server, buffer_size));
  auto sender = corio::spawn(send_pattern(&p.client, bytes));
  copy_outcome r;
  r.received = co_await receive_hashed(&p.client);
  r.sent_hash = co_await sender;
  r.copied = co_await echo;
  co_return r;
}

TEST_CASE("copy echoes a few MiB through TCP byte for byte") {
  corio_test::hang_guard guard{"copy through tcp", 120s};
  const std::size_t bytes = 4 * 1024 * 1024 + 123;
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    const copy_outcome r = run_on(copy_through_tcp(bytes, workers == 1 ? 4096 : 65536), workers);
    CHECK(r.copied == bytes);
    CHECK(r.received.bytes == bytes);
    CHECK(r.received.hash == r.sent_hash);
  }
}

corio::task<std::string> vectored_over_tcp(std::size_t parts) {
  tcp_pair p = co_await connected_pair();
  std::vector<std::string> texts;
  std::string expected;
  for (std::size_t i = 0; i < parts; ++i) {
    texts.push_back(std::string(i % 7 == 0 ? 0 : 1 + i * 37 % 5000, static_cast<char>('a' + i % 26)));
    expected += texts.back();
  }
  std::vector<corio::const_buffer> buffers;
  for (const std::string& t : texts) buffers.push_back(bytes_of(std::string_view{t}));
  auto receiver = corio::spawn(receive_hashed(&p.server));
  const std::size_t n = co_await corio::write_all(p.client, std::span<const corio::const_buffer>{buffers});
  CHECK(n == expected.size());
  const std::string tail = "-end";
  const corio::const_buffer bang = bytes_of(std::string_view{"!"});
  (void)co_await corio::write_all(p.client, bytes_of(std::string_view{tail}), bang);
  expected += "-end!";
  p.client.shutdown(corio::net::shutdown_type::send);
  const hashed got = co_await receiver;
  CHECK(got.bytes == expected.size());
  CHECK(got.hash == fnv1a(1469598103934665603ull, bytes_of(std::string_view{expected})));
  co_return std::string{};
}

TEST_CASE("a vectored write_all over TCP delivers every buffer in order") {
  corio_test::hang_guard guard{"vectored over tcp", 120s};
  for (std::size_t parts : {std::size_t{1}, std::size_t{3}, std::size_t{200}, std::size_t{2000}}) {
    CAPTURE(parts);
    (void)run_on(vectored_over_tcp(parts), 2);
  }
}

corio::task<std::uint64_t> line_echo_server(tcp_stream s) {
  corio::buffered_reader reader{std::move(s)};
  std::uint64_t lines = 0;
  for (int i = 0; i < 100000; ++i) {
    std::optional<std::string> line = co_await reader.read_line();
    if (!line) break;
    line->append("\n");
    (void)co_await reader.stream().write_all(std::string_view{*line});
    ++lines;
  }
  co_return lines;
}

corio::task<std::vector<std::string>> read_echoed(tcp_stream* s, int count) {
  corio::buffered_reader reader{*s, {.buffer_size = 16}};
  std::vector<std::string> lines;
  for (int i = 0; i < count; ++i) {
    std::optional<std::string> line = co_await reader.read_line();
    if (!line) break;
    lines.push_back(*line);
  }
  co_return lines;
}

corio::task<bool> line_echo(int count) {
  tcp_pair p = co_await connected_pair();
  auto server = corio::spawn(line_echo_server(std::move(p.server)));
  auto reader = corio::spawn(read_echoed(&p.client, count));
  corio::buffered_writer writer{p.client, {.buffer_size = 100}};
  std::vector<std::string> sent;
  for (int i = 0; i < count; ++i) {
    sent.push_back("line " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 50), '.'));
    (void)co_await writer.write(std::string_view{sent.back()});
    (void)co_await writer.write(std::string_view{i % 2 == 0 ? "\n" : "\r\n"});
  }
  co_await writer.flush();
  const std::vector<std::string> got = co_await reader;
  p.client.shutdown(corio::net::shutdown_type::send);
  const std::uint64_t lines = co_await server;
  co_return got == sent&& lines == static_cast<std::uint64_t>(count);
}

TEST_CASE("a line echo over TCP with buffered_reader and buffered_writer returns every line") {
  corio_test::hang_guard guard{"line echo", 120s};
  for (unsigned workers : {1u, 2u, 4u}) {
    CAPTURE(workers);
    CHECK(run_on(line_echo(static_cast<int>(corio_test::scaled(2000))), workers));
  }
}

corio::task<std::optional<std::string>> line_of(corio::buffered_reader<tcp_stream&>* reader) {
  co_return co_await reader->read_line();
}

struct cancel_outcome {
  bool cancelled = false;
  std::optional<std::string> line;
  std::optional<std::string> next;
};

corio::task<cancel_outcome> cancelled_read_line() {
  tcp_pair p = co_await connected_pair();
  corio::buffered_reader reader{p.server};
  (void)co_await p.client.write_all(std::string_view{"hel"});
  std::span<const std::byte> peeked = co_await reader.peek(3);  // "hel" is buffered
  CHECK(peeked.size() == 3);
  auto waiting = corio::spawn(line_of(&reader));
  for (int i = 0; i < 3; ++i) co_await corio::yield();  // let it reach its read
  waiting.cancel();
  cancel_outcome r;
  try {
    (void)co_await waiting;
  } catch (const corio::operation_cancelled&) {
    r.cancelled = true;
  }
  (void)co_await p.client.write_all(std::string_view{"lo\nworld\n"});
  r.line = co_await reader.read_line();
  r.next = co_await reader.read_line();
  co_return r;
}

TEST_CASE("a read_line cancelled while it waits on TCP throws operation_cancelled and loses no byte") {
  corio_test::hang_guard guard{"cancelled read_line", 120s};
  for (unsigned workers : {1u, 2u}) {
    for (int i = 0; i < 20; ++i) {
      const cancel_outcome r = run_on(cancelled_read_line(), workers);
      CHECK(r.cancelled);
      CHECK(r.line == std::optional<std::string>{"hello"});
      CHECK(r.next == std::optional<std::string>{"world"});
    }
  }
}

corio::task<int> write_some_forms() {
  tcp_pair p = co_await connected_pair();
  int checks = 0;
  const std::size_t n = co_await p.client.write_some(bytes_of(std::string_view{"ping"}));
  checks += n == 4 ? 1 : 0;
  std::string got(4, '\0');
  (void)co_await corio::read_exact(p.server, bytes_of(got));
  checks += got == "ping" ? 1 : 0;
  const std::size_t zero = co_await p.client.write_some(std::span<const std::byte>{});
  checks += zero == 0 ? 1 : 0;
  tcp_stream moved = std::move(p.client);
  std::error_code ec;
  const std::size_t none = co_await p.client.write_some(bytes_of(std::string_view{"x"}), ec);
  checks += (none == 0 && ec == std::errc::bad_file_descriptor) ? 1 : 0;
  try {
    (void)co_await p.client.write_some(bytes_of(std::string_view{"x"}));
  } catch (const std::system_error& e) {
    checks += e.code() == std::errc::bad_file_descriptor ? 1 : 0;
  }
  co_return checks;
}

TEST_CASE("tcp_stream::write_some sends once and reports EBADF on a moved-from stream") {
  corio_test::hang_guard guard{"write_some", 120s};
  CHECK(run_on(write_some_forms()) == 5);
}

// The README's example, as it is there.
corio::task<void> echo_lines(corio::net::tcp_stream s) {
  corio::buffered_reader reader{std::move(s), {.max_size = 4096}};  // owns the stream
  for (;;) {
    std::optional<std::string> line = co_await reader.read_line();  // throws EMSGSIZE past 4 KiB
    if (!line) co_return;                                           // end of stream
    line->append("\n");
    co_await reader.stream().write_all(std::string_view{*line});
  }
}

corio::task<std::string> readme_echo() {
  tcp_pair p = co_await connected_pair();
  auto server = corio::spawn(echo_lines(std::move(p.server)));
  // The last line ends with its newline: on the Asio reactor a second recv after end of stream
  // waits forever (Asio's epoll reactor stops trying speculatively after the read that saw the
  // end, and no new edge comes), which a last line without a newline would need here.
  (void)co_await p.client.write_all(std::string_view{"one\r\ntwo\nthree\n"});
  p.client.shutdown(corio::net::shutdown_type::send);
  std::string got(14, '\0');
  (void)co_await corio::read_exact(p.client, bytes_of(got));
  co_await server;
  co_return got;
}

TEST_CASE("the README's line echo answers each line with its newline") {
  corio_test::hang_guard guard{"readme echo", 120s};
  CHECK(run_on(readme_echo(), 2) == "one\ntwo\nthree\n");
}

TEST_CASE("buffered reader and writer options: a zero size is refused, a buffer above max_size is lowered") {
  memory_stream m;
  CHECK_THROWS_AS(corio::buffered_reader(m, {.buffer_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(corio::buffered_reader(m, {.max_size = 0}), std::invalid_argument);
  CHECK_THROWS_AS(corio::buffered_writer(m, {.buffer_size = 0}), std::invalid_argument);
  corio::buffered_reader small{m, {.buffer_size = 100, .max_size = 10}};
  CHECK(small.max_size() == 10);
}

}  // namespace
