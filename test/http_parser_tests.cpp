// Tests for samples/http/http_parser.hpp (the HTTP/1.x head parser of the http samples).

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "http/http_parser.hpp"

namespace http = corio_samples::http;
using http::parse_status;
using namespace std::literals;

template <>
struct doctest::StringMaker<parse_status> {
  static doctest::String convert(parse_status s) {
    const std::string_view name = http::to_string(s);
    return doctest::String(name.data(), static_cast<doctest::String::size_type>(name.size()));
  }
};

namespace {

/// A copy of some bytes in a heap block of exactly their size, so that AddressSanitizer
/// reports any read past the end (a std::string may have spare capacity after its data).
class exact_buffer {
 public:
  explicit exact_buffer(std::string_view bytes)
      : data_(std::make_unique<char[]>(bytes.size())), size_(bytes.size()) {
    std::copy(bytes.begin(), bytes.end(), data_.get());
  }
  [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_;
};

/// Printable form of raw bytes for failure messages: CR, LF, TAB escaped, others as \xNN.
std::string escape(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string r;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r') {
      r += "\\r";
    } else if (c == '\n') {
      r += "\\n";
    } else if (c == '\t') {
      r += "\\t";
    } else if (c == '\\') {
      r += "\\\\";
    } else if (u < 0x20 || u >= 0x7F) {
      r += "\\x";
      r += hex[u >> 4];
      r += hex[u & 0xF];
    } else {
      r += c;
    }
  }
  return r;
}

bool same(const http::request_head& a, const http::request_head& b) {
  // Views are compared by address too: both must point at the same bytes of the buffer.
  return a.method.data() == b.method.data() && a.method == b.method &&
         a.target.data() == b.target.data() && a.target == b.target &&
         a.version_minor == b.version_minor && a.keep_alive == b.keep_alive &&
         a.content_length == b.content_length && a.head_bytes == b.head_bytes;
}

bool same(const http::response_head& a, const http::response_head& b) {
  return a.status == b.status && a.version_minor == b.version_minor &&
         a.content_length == b.content_length && a.has_content_length == b.has_content_length &&
         a.keep_alive == b.keep_alive && a.head_bytes == b.head_bytes;
}

parse_status request_status(std::string_view buf, std::size_t max = http::default_max_head_bytes) {
  http::request_head h{};
  return http::parse_request(buf, h, max);
}

parse_status response_status(std::string_view buf, std::size_t max = http::default_max_head_bytes) {
  http::response_head h{};
  return http::parse_response(buf, h, max);
}

/// A request head with one field padded so that the whole head is exactly `size` bytes.
std::string request_of_size(std::size_t size) {
  const std::string prefix = "GET / HTTP/1.1\r\nX-Pad: ";
  const std::string suffix = "\r\n\r\n";
  REQUIRE(size >= prefix.size() + suffix.size() + 1);
  return prefix + std::string(size - prefix.size() - suffix.size(), 'p') + suffix;
}

struct bad_case {
  std::string input;
  const char* why;
};

}  // namespace

TEST_SUITE_BEGIN("samples");

TEST_CASE("a simple GET request is parsed into method, target, version and head size") {
  const std::string_view buf = "GET /hello?name=world HTTP/1.1\r\nHost: localhost\r\n\r\n";
  http::request_head h{};
  REQUIRE(http::parse_request(buf, h) == parse_status::complete);
  CHECK(h.method == "GET");
  CHECK(h.target == "/hello?name=world");
  CHECK(h.version_minor == 1);
  CHECK(h.keep_alive);
  CHECK(h.content_length == 0);
  CHECK(h.head_bytes == buf.size());
  // The views point into the caller's buffer.
  CHECK(h.method.data() == buf.data());
  CHECK(h.target.data() == buf.data() + 4);
}

TEST_CASE("methods and targets of any valid form are accepted as they are sent") {
  struct good_case {
    std::string_view input;
    std::string_view method;
    std::string_view target;
  };
  const good_case cases[] = {
      {"OPTIONS * HTTP/1.1\r\n\r\n"sv, "OPTIONS"sv, "*"sv},
      {"CONNECT example.com:443 HTTP/1.1\r\n\r\n"sv, "CONNECT"sv, "example.com:443"sv},
      {"GET http://example.com/a?b#c HTTP/1.1\r\n\r\n"sv, "GET"sv, "http://example.com/a?b#c"sv},
      {"get /lower-case-method HTTP/1.1\r\n\r\n"sv, "get"sv, "/lower-case-method"sv},
      {"X-!#$%&'*+-.^_`|~09az /%20~ HTTP/1.0\r\n\r\n"sv, "X-!#$%&'*+-.^_`|~09az"sv, "/%20~"sv},
      {"PURGE /a HTTP/1.1\r\nX-Empty:\r\nX-Tab:\tv\t\r\nX-Obs: caf\xc3\xa9\r\n\r\n"sv, "PURGE"sv,
       "/a"sv},
  };
  for (const auto& c : cases) {
    INFO("input: " << escape(c.input));
    http::request_head h{};
    REQUIRE(http::parse_request(c.input, h) == parse_status::complete);
    CHECK(h.method == c.method);
    CHECK(h.target == c.target);
    CHECK(h.head_bytes == c.input.size());
  }
}

TEST_CASE("a request split at every byte boundary parses the same as when whole") {
  const std::string_view messages[] = {
      "GET / HTTP/1.1\r\n\r\n"sv,
      "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
      "Connection: keep-alive\r\n\r\n"sv,
      "POST /submit HTTP/1.0\r\nContent-Length: 11\r\nConnection: Keep-Alive\r\n\r\n"
      "hello world"sv,
      "\r\n\r\nGET /after-empty-lines HTTP/1.1\r\nConnection: close\r\n\r\n"sv,
  };
  for (const std::string_view msg : messages) {
    INFO("message: " << escape(msg));
    http::request_head whole{};
    REQUIRE(http::parse_request(msg, whole) == parse_status::complete);
    for (std::size_t n = 0; n <= msg.size(); ++n) {
      INFO("prefix length: " << n);
      const exact_buffer prefix(msg.substr(0, n));
      http::request_head h{};
      const parse_status st = http::parse_request(prefix.view(), h);
      if (n < whole.head_bytes) {
        CHECK(st == parse_status::incomplete);
      } else {
        REQUIRE(st == parse_status::complete);
        CHECK(h.method == whole.method);
        CHECK(h.target == whole.target);
        CHECK(h.version_minor == whole.version_minor);
        CHECK(h.keep_alive == whole.keep_alive);
        CHECK(h.content_length == whole.content_length);
        CHECK(h.head_bytes == whole.head_bytes);
      }
    }
  }
}

TEST_CASE("pipelined requests are parsed one after another by skipping each head and body") {
  const std::string_view buf =
      "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  const std::string_view targets[] = {"/one", "/two", "/three"};
  const std::string_view methods[] = {"GET", "POST", "GET"};
  const bool keep_alive[] = {true, true, false};

  std::size_t offset = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("request " << i);
    http::request_head h{};
    REQUIRE(http::parse_request(buf.substr(offset), h) == parse_status::complete);
    CHECK(h.method == methods[i]);
    CHECK(h.target == targets[i]);
    CHECK(h.keep_alive == keep_alive[i]);
    if (i == 1) {
      CHECK(h.content_length == 5);
      CHECK(buf.substr(offset + h.head_bytes, h.content_length) == "hello");
    }
    offset += h.head_bytes + h.content_length;
  }
  CHECK(offset == buf.size());
  CHECK(request_status(buf.substr(offset)) == parse_status::incomplete);
}

TEST_CASE("empty lines before the request line are skipped and counted in head_bytes") {
  // RFC 9112 section 2.2: some clients send a stray CRLF after a request body.
  const std::string_view buf = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  http::request_head h{};
  REQUIRE(http::parse_request(buf, h) == parse_status::complete);
  CHECK(h.target == "/");
  CHECK(h.head_bytes == buf.size());

  CHECK(request_status("\r\n"sv) == parse_status::incomplete);
  CHECK(request_status("\r\n\r\n"sv) == parse_status::incomplete);
  CHECK(request_status("\r\n\r"sv) == parse_status::incomplete);
  CHECK(request_status("\r\n\n"sv) == parse_status::bad_request);
  // Empty lines count toward the limit.
  std::string many_empty;
  for (int i = 0; i < 4096; ++i) {
    many_empty += "\r\n";
  }
  CHECK(request_status(many_empty) == parse_status::too_large);
  CHECK(request_status(many_empty.substr(2)) == parse_status::incomplete);
}

TEST_CASE("a head larger than the limit is too_large and one exactly at the limit is complete") {
  constexpr std::size_t max = 256;
  const std::string exact = request_of_size(max);
  http::request_head h{};
  REQUIRE(http::parse_request(exact, h, max) == parse_status::complete);
  CHECK(h.head_bytes == max);
  CHECK(request_status(exact, max - 1) == parse_status::too_large);

  // Without an end of head: incomplete below the limit, too_large from the limit on.
  const std::string endless = "GET / HTTP/1.1\r\nX-Pad: " + std::string(1000, 'p');
  CHECK(request_status(std::string_view(endless).substr(0, max - 1), max) ==
        parse_status::incomplete);
  CHECK(request_status(std::string_view(endless).substr(0, max), max) == parse_status::too_large);
  CHECK(request_status(endless, max) == parse_status::too_large);

  // The default limit is 8192 bytes.
  CHECK(request_status(request_of_size(8192)) == parse_status::complete);
  CHECK(request_status(request_of_size(8193)) == parse_status::too_large);
  CHECK(request_status(std::string(8191, 'A')) == parse_status::incomplete);
  CHECK(request_status(std::string(8192, 'A')) == parse_status::too_large);

  // The limit applies to the head only, not to a body or pipelined requests after it.
  const std::string with_body =
      "POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b');
  REQUIRE(http::parse_request(with_body, h, max) == parse_status::complete);
  CHECK(h.content_length == 100000);

  CHECK(request_status(""sv, 0) == parse_status::too_large);
  CHECK(request_status("GET / HTTP/1.1\r\n\r\n"sv, 0) == parse_status::too_large);
  CHECK(response_status(std::string(300, 'A'), max) == parse_status::too_large);
  CHECK(response_status(std::string(200, 'A'), max) == parse_status::incomplete);
}

TEST_CASE("malformed requests are rejected as bad_request") {
  const std::string too_big = std::to_string(std::numeric_limits<std::size_t>::max()) + "0";
  const std::vector<bad_case> cases = {
      // Request line: method.
      {" / HTTP/1.1\r\n\r\n", "empty method"},
      {"G(T / HTTP/1.1\r\n\r\n", "'(' is a delimiter, not a tchar"},
      {"GET@ / HTTP/1.1\r\n\r\n", "'@' is not a tchar"},
      {"G\xc3\x89T / HTTP/1.1\r\n\r\n", "non-ASCII byte in the method"},
      {"GE\x01T / HTTP/1.1\r\n\r\n", "control character in the method"},
      {"GET\t/ HTTP/1.1\r\n\r\n", "HTAB instead of SP after the method"},
      {" GET / HTTP/1.1\r\n\r\n", "leading space"},
      // Request line: spaces.
      {"GET  / HTTP/1.1\r\n\r\n", "two spaces after the method"},
      {"GET /  HTTP/1.1\r\n\r\n", "two spaces before the version"},
      {"GET / HTTP/1.1 \r\n\r\n", "trailing space"},
      {"GET /HTTP/1.1\r\n\r\n", "missing space before the version"},
      {"GET / HTTP/1.1 extra\r\n\r\n", "extra word after the version"},
      {"GET /a b HTTP/1.1\r\n\r\n", "space in the target"},
      {"GET /\r\n\r\n", "no version (HTTP/0.9 style)"},
      {"GET\r\n\r\n", "method only"},
      {"GET / \r\n\r\n", "empty version"},
      // Request line: target.
      {"GET /a\x01z HTTP/1.1\r\n\r\n", "control character in the target"},
      {"GET /a\x7fz HTTP/1.1\r\n\r\n", "DEL in the target"},
      {"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "non-ASCII bytes in the target"},
      {"GET /a\tb HTTP/1.1\r\n\r\n", "HTAB in the target"},
      {std::string("GET /\0 HTTP/1.1\r\n\r\n", 19), "NUL in the target"},
      // Request line: version.
      {"GET / HTTP/2.0\r\n\r\n", "HTTP/2.0 is not HTTP/1.x"},
      {"GET / HTTP/1.2\r\n\r\n", "HTTP/1.2 is not supported"},
      {"GET / HTTP/0.9\r\n\r\n", "HTTP/0.9 is not supported"},
      {"GET / http/1.1\r\n\r\n", "the version is case-sensitive"},
      {"GET / HTTP/1.10\r\n\r\n", "two-digit minor version"},
      {"GET / HTTP/1\r\n\r\n", "no minor version"},
      {"GET / HTTP/01.1\r\n\r\n", "leading zero in the major version"},
      {"GET / HTTP/1.1x\r\n\r\n", "junk after the version"},
      {"GET / HTTP/1.1\r\r\n\r\n", "bare CR at the end of the request line"},
      {"GET / HTTP/1.1\rHost: a\r\n\r\n", "bare CR as a line ending"},
      {"\r\r\n\r\n", "a line holding only a CR"},
      // Line endings.
      {"GET / HTTP/1.1\nHost: a\r\n\r\n", "bare LF after the request line"},
      {"GET / HTTP/1.1\r\nHost: a\n\r\n", "bare LF after a field line"},
      {"GET / HTTP/1.1\r\nHost: a\r\n\n\r\n\r\n", "bare LF as the empty line"},
      // Field lines.
      {"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", "field line without a colon"},
      {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "space before the colon"},
      {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", "HTAB before the colon"},
      {"GET / HTTP/1.1\r\n: a\r\n\r\n", "empty field name"},
      {"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", "space inside the field name"},
      {"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", "'(' in the field name"},
      {"GET / HTTP/1.1\r\nH\xc3\xb6st: a\r\n\r\n", "non-ASCII byte in the field name"},
      {"GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n", "obsolete line folding (SP)"},
      {"GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded: x\r\n\r\n", "obsolete line folding (HTAB)"},
      {"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", "bare CR in a field value"},
      {std::string("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 28), "NUL in a field value"},
      {"GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", "DEL in a field value"},
      {"GET / HTTP/1.1\r\nX-A: a\x1b[0m\r\n\r\n", "escape character in a field value"},
      // Content-Length.
      {"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "Content-Length not a number"},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "negative Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", "signed Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", "hexadecimal Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", "space inside Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", "list-valued Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 1.5\r\n\r\n", "fractional Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", "empty Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: " + too_big + "\r\n\r\n",
       "Content-Length overflows size_t"},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
       "two Content-Length fields with different values"},
      {"POST / HTTP/1.1\r\ncontent-length: 5\r\nCONTENT-LENGTH: 6\r\n\r\n",
       "two Content-Length fields with different values, names in other cases"},
      // Transfer-Encoding (unsupported).
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked body is unsupported"},
      {"POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n",
       "any Transfer-Encoding is unsupported"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n", "even an empty Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       "Content-Length together with Transfer-Encoding (request smuggling)"},
  };
  for (const auto& c : cases) {
    INFO("why: " << c.why);
    INFO("input: " << escape(c.input));
    const exact_buffer buf(c.input);
    CHECK(request_status(buf.view()) == parse_status::bad_request);
    // Appending more bytes (a body, another request) never changes the verdict.
    CHECK(request_status(c.input + "GET / HTTP/1.1\r\n\r\n") == parse_status::bad_request);
  }
}

TEST_CASE("a bare LF is rejected as soon as it arrives, before the head is complete") {
  CHECK(request_status("\n"sv) == parse_status::bad_request);
  CHECK(request_status("GET / HTTP/1.0\n"sv) == parse_status::bad_request);
  CHECK(request_status("GET / HTTP/1.0\n\n"sv) == parse_status::bad_request);
  CHECK(request_status("GET / HTTP/1.1\r\nHost: a\n"sv) == parse_status::bad_request);
  CHECK(request_status("GET / HTTP/1.1\r\nHost: a\r"sv) == parse_status::incomplete);
  CHECK(response_status("HTTP/1.1 200 OK\n"sv) == parse_status::bad_request);
}

TEST_CASE("keep-alive follows the HTTP/1.0 and HTTP/1.1 defaults and the Connection options") {
  struct keep_alive_case {
    std::string_view input;
    bool keep_alive;
    const char* why;
  };
  const keep_alive_case cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", true, "HTTP/1.1 is persistent by default"},
      {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, "close"},
      {"GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n", false, "options are case-insensitive"},
      {"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n", false, "names are case-insensitive"},
      {"GET / HTTP/1.1\r\nConnection:close\r\n\r\n", false, "no whitespace needed"},
      {"GET / HTTP/1.1\r\nConnection: \t close \t\r\n\r\n", false, "whitespace is trimmed"},
      {"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true, "keep-alive in 1.1"},
      {"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", false, "close in a list"},
      {"GET / HTTP/1.1\r\nConnection: upgrade,Close ,te\r\n\r\n", false, "close mid-list"},
      {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true, "closed is not close"},
      {"GET / HTTP/1.1\r\nConnection: close-ish\r\n\r\n", true, "close-ish is not close"},
      {"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false,
       "several Connection fields combine; close wins"},
      {"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n", true, "another field name"},
      {"GET / HTTP/1.1\r\nX-Note: Connection: close\r\n\r\n", true, "inside another value"},
      {"GET / HTTP/1.0\r\n\r\n", false, "HTTP/1.0 closes by default"},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, "keep-alive in 1.0"},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true, "Keep-Alive, mixed case"},
      {"GET / HTTP/1.0\r\nConnection: foo, keep-alive\r\n\r\n", true, "keep-alive in a list"},
      {"GET / HTTP/1.0\r\nConnection: ,, keep-alive ,,\r\n\r\n", true, "empty list elements"},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, "close wins"},
      {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", false, "close in 1.0"},
      {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false,
       "the Keep-Alive field alone is not the keep-alive connection option"},
      {"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n", false, "keep-alives is not it"},
  };
  for (const auto& c : cases) {
    INFO("why: " << c.why);
    INFO("input: " << escape(c.input));
    http::request_head h{};
    REQUIRE(http::parse_request(c.input, h) == parse_status::complete);
    CHECK(h.keep_alive == c.keep_alive);
  }
}

TEST_CASE("Content-Length gives the number of body bytes that follow the head") {
  struct length_case {
    std::string input;
    std::size_t content_length;
    const char* why;
  };
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  const std::vector<length_case> cases = {
      {"GET / HTTP/1.1\r\n\r\n", 0, "no Content-Length, no body"},
      {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0, "zero"},
      {"POST / HTTP/1.1\r\nContent-Length: 13\r\n\r\n", 13, "plain"},
      {"POST / HTTP/1.1\r\ncontent-length: 13\r\n\r\n", 13, "name case-insensitive"},
      {"POST / HTTP/1.1\r\nContent-Length:13\r\n\r\n", 13, "no whitespace"},
      {"POST / HTTP/1.1\r\nContent-Length: \t 42 \t\r\n\r\n", 42, "whitespace trimmed"},
      {"POST / HTTP/1.1\r\nContent-Length: 0042\r\n\r\n", 42, "leading zeros"},
      {"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n", 7,
       "repeated with the same value"},
      {"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 007\r\n\r\n", 7,
       "repeated with the same numeric value"},
      {"POST / HTTP/1.1\r\nContent-Length: " + std::to_string(max) + "\r\n\r\n", max,
       "the largest size_t (the server must apply its own limit)"},
  };
  for (const auto& c : cases) {
    INFO("why: " << c.why);
    INFO("input: " << escape(c.input));
    http::request_head h{};
    REQUIRE(http::parse_request(c.input, h) == parse_status::complete);
    CHECK(h.content_length == c.content_length);
    CHECK(h.head_bytes == c.input.size());
  }

  if constexpr (sizeof(std::size_t) == 8) {
    CHECK(request_status("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n"sv) ==
          parse_status::bad_request);
    CHECK(request_status("POST / HTTP/1.1\r\nContent-Length: 18446744073709551620\r\n\r\n"sv) ==
          parse_status::bad_request);
  }

  // The body is not part of the head and need not have arrived yet.
  const std::string_view buf = "PUT /f HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel";
  http::request_head h{};
  REQUIRE(http::parse_request(buf, h) == parse_status::complete);
  CHECK(h.content_length == 5);
  CHECK(buf.substr(h.head_bytes) == "hel");
}

TEST_CASE("the output is left unchanged unless the parse is complete") {
  const std::string_view sentinel_text = "sentinel";
  const http::request_head req_sentinel{sentinel_text, sentinel_text, 7, false, 123, 456};
  const std::string_view inputs[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n"sv,          // incomplete
      "GET / HTTP/9.9\r\nHost: a\r\n\r\n"sv,      // bad_request
      "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaa"sv,  // too_large with max 20
  };
  for (const std::string_view in : inputs) {
    INFO("input: " << escape(in));
    http::request_head h = req_sentinel;
    CHECK(http::parse_request(in, h, 20) != parse_status::complete);
    CHECK(same(h, req_sentinel));
  }

  const http::response_head resp_sentinel{999, 7, 123, true, false, 456};
  http::response_head r = resp_sentinel;
  CHECK(http::parse_response("HTTP/1.1 200 OK\r\n"sv, r) == parse_status::incomplete);
  CHECK(same(r, resp_sentinel));
  CHECK(http::parse_response("HTTP/1.1 20 OK\r\n\r\n"sv, r) == parse_status::bad_request);
  CHECK(same(r, resp_sentinel));
}

TEST_CASE("a response with a Content-Length is parsed and its body located") {
  const std::string_view buf = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
  http::response_head h{};
  REQUIRE(http::parse_response(buf, h) == parse_status::complete);
  CHECK(h.status == 200);
  CHECK(h.version_minor == 1);
  CHECK(h.has_content_length);
  CHECK(h.content_length == 13);
  CHECK(h.keep_alive);
  CHECK(h.head_bytes == buf.size() - 13);
  CHECK(buf.substr(h.head_bytes, h.content_length) == "Hello, World!");
}

TEST_CASE("a response split at every byte boundary parses the same as when whole") {
  const std::string_view msg =
      "HTTP/1.1 200 OK\r\nServer: corio\r\nContent-Length: 13\r\n\r\nHello, World!";
  http::response_head whole{};
  REQUIRE(http::parse_response(msg, whole) == parse_status::complete);
  for (std::size_t n = 0; n <= msg.size(); ++n) {
    INFO("prefix length: " << n);
    const exact_buffer prefix(msg.substr(0, n));
    http::response_head h{};
    const parse_status st = http::parse_response(prefix.view(), h);
    if (n < whole.head_bytes) {
      CHECK(st == parse_status::incomplete);
    } else {
      REQUIRE(st == parse_status::complete);
      CHECK(same(h, whole));
    }
  }
}

TEST_CASE("response status lines, versions and persistence are interpreted") {
  struct response_case {
    std::string_view input;
    int status;
    int version_minor;
    bool has_content_length;
    std::size_t content_length;
    bool keep_alive;
    const char* why;
  };
  const response_case cases[] = {
      {"HTTP/1.1 204 No Content\r\n\r\n", 204, 1, false, 0, true, "no Content-Length"},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404, 1, true, 0, true,
       "reason with a space"},
      {"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", 200, 1, true, 2, true,
       "no reason and no space before it"},
      {"HTTP/1.1 200 \r\n\r\n", 200, 1, false, 0, true, "empty reason"},
      {"HTTP/1.1 200 D\xc3\xa9j\xc3\xa0 vu\t!\r\n\r\n", 200, 1, false, 0, true,
       "obs-text and HTAB in the reason"},
      {"HTTP/1.1 100 Continue\r\n\r\n", 100, 1, false, 0, true, "lowest status"},
      {"HTTP/1.1 599 Whatever\r\n\r\n", 599, 1, false, 0, true, "highest status"},
      {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 200, 1, true, 1, false,
       "close"},
      {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 200, 0, true, 1, false,
       "HTTP/1.0 closes by default"},
      {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 200, 0, true, 1,
       true, "HTTP/1.0 with keep-alive"},
  };
  for (const auto& c : cases) {
    INFO("why: " << c.why);
    INFO("input: " << escape(c.input));
    http::response_head h{};
    REQUIRE(http::parse_response(c.input, h) == parse_status::complete);
    CHECK(h.status == c.status);
    CHECK(h.version_minor == c.version_minor);
    CHECK(h.has_content_length == c.has_content_length);
    CHECK(h.content_length == c.content_length);
    CHECK(h.keep_alive == c.keep_alive);
    CHECK(h.head_bytes == c.input.size());
  }
}

TEST_CASE("malformed responses are rejected as bad_request") {
  const std::vector<bad_case> cases = {
      {"HTTP/1.1 20 OK\r\n\r\n", "two-digit status"},
      {"HTTP/1.1 2000 OK\r\n\r\n", "four-digit status"},
      {"HTTP/1.1 099 Low\r\n\r\n", "status below 100"},
      {"HTTP/1.1 600 High\r\n\r\n", "status above 599"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", "non-digit in the status"},
      {"HTTP/1.1  200 OK\r\n\r\n", "two spaces before the status"},
      {"HTTP/1.1 200OK\r\n\r\n", "no space before the reason"},
      {"HTTP/1.1\t200 OK\r\n\r\n", "HTAB before the status"},
      {"HTTP/1.1\r\n\r\n", "no status"},
      {"HTTP/2 200 OK\r\n\r\n", "HTTP/2"},
      {"HTTP/1.2 200 OK\r\n\r\n", "HTTP/1.2"},
      {"http/1.1 200 OK\r\n\r\n", "lower-case version"},
      {"ICY 200 OK\r\n\r\n", "not HTTP"},
      {"HTTP/1.1 200 O\x01K\r\n\r\n", "control character in the reason"},
      {"HTTP/1.1 200 OK\rX\r\n\r\n", "bare CR in the reason"},
      {"\r\nHTTP/1.1 200 OK\r\n\r\n", "empty line before the status line"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked is unsupported"},
      {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
       "conflicting Content-Length"},
      {"HTTP/1.1 200 OK\r\nServer corio\r\n\r\n", "field line without a colon"},
      {"HTTP/1.1 200 OK\r\nServer : corio\r\n\r\n", "space before the colon"},
  };
  for (const auto& c : cases) {
    INFO("why: " << c.why);
    INFO("input: " << escape(c.input));
    const exact_buffer buf(c.input);
    CHECK(response_status(buf.view()) == parse_status::bad_request);
  }
}

TEST_CASE("pipelined responses are parsed one after another by skipping each head and body") {
  const std::string_view buf =
      "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!"
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  const int statuses[] = {200, 204, 200};
  std::size_t offset = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("response " << i);
    http::response_head h{};
    REQUIRE(http::parse_response(buf.substr(offset), h) == parse_status::complete);
    CHECK(h.status == statuses[i]);
    CHECK(h.keep_alive == (i != 2));
    offset += h.head_bytes + h.content_length;
  }
  CHECK(offset == buf.size());
}

TEST_CASE("the parser can run at compile time") {
  constexpr auto parsed = [] {
    http::request_head h{};
    const parse_status st =
        http::parse_request("GET /c HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", h);
    return st == parse_status::complete && h.target == "/c" && h.content_length == 3 &&
           !h.keep_alive && h.head_bytes == 38;
  }();
  static_assert(parsed);
  static_assert(http::to_string(parse_status::too_large) == "too_large");
  CHECK(parsed);
}

TEST_CASE("every status has a printable name") {
  CHECK(http::to_string(parse_status::complete) == "complete");
  CHECK(http::to_string(parse_status::incomplete) == "incomplete");
  CHECK(http::to_string(parse_status::bad_request) == "bad_request");
  CHECK(http::to_string(parse_status::too_large) == "too_large");
  CHECK(http::to_string(static_cast<parse_status>(42)) == "unknown");
}

namespace {

/// Deterministic random source (the same sequence with every standard library).
class rng_source {
 public:
  explicit rng_source(std::uint64_t seed) : engine_(seed) {}
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(engine_() % n); }
  bool chance(std::size_t one_in) { return below(one_in) == 0; }

 private:
  std::mt19937_64 engine_;
};

/// Random bytes built mostly from pieces of HTTP syntax, so that the parser gets past the
/// first checks often, with fully random bytes mixed in.
std::string random_garbage(rng_source& rng) {
  static constexpr std::string_view pieces[] = {
      "GET",
      "POST",
      " ",
      "/",
      "HTTP/1.1",
      "HTTP/1.0",
      "HTTP/1.",
      "\r\n",
      "\r",
      "\n",
      "\r\n\r\n",
      ":",
      ": ",
      ",",
      "\t",
      "200",
      "OK",
      "0",
      "18446744073709551615",
      "99999999999999999999",
      "Host",
      "close",
      "keep-alive",
      "Connection",
      "Content-Length",
      "Transfer-Encoding",
      "x",
      "\0"sv,
      "\x7f",
      "\xff",
  };
  constexpr std::size_t piece_count = sizeof(pieces) / sizeof(pieces[0]);
  std::string s;
  if (rng.chance(4)) {
    s = rng.chance(2) ? "GET / HTTP/1.1\r\n" : "HTTP/1.1 200 OK\r\n";
  }
  const std::size_t parts = rng.below(40);
  for (std::size_t i = 0; i < parts; ++i) {
    if (rng.chance(4)) {
      s += static_cast<char>(static_cast<unsigned char>(rng.below(256)));
    } else {
      s.append(pieces[rng.below(piece_count)]);
    }
  }
  return s;
}

/// A valid request or response with a few random byte edits (replace, insert, delete).
std::string random_mutation(rng_source& rng) {
  static constexpr std::string_view seeds[] = {
      "GET /index.html HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n",
      "POST /form HTTP/1.0\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbody",
      "\r\nGET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!",
      "HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\n",
  };
  static constexpr char interesting[] = {'\r', '\n', ' ', '\t', ':', ',', '0', '9', '\0', 'a'};
  std::string s(seeds[rng.below(sizeof(seeds) / sizeof(seeds[0]))]);
  const std::size_t edits = 1 + rng.below(3);
  for (std::size_t e = 0; e < edits; ++e) {
    const char c = rng.chance(2) ? interesting[rng.below(sizeof(interesting))]
                                 : static_cast<char>(static_cast<unsigned char>(rng.below(256)));
    const std::size_t at = rng.below(s.size() + 1);
    switch (rng.below(3)) {
      case 0:
        if (at < s.size()) {
          s[at] = c;
        }
        break;
      case 1:
        s.insert(at, 1, c);
        break;
      default:
        if (at < s.size()) {
          s.erase(at, 1);
        }
        break;
    }
  }
  return s;
}

bool within(std::string_view inner, std::string_view outer, std::size_t head_bytes) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + head_bytes;
}

/// Checks the invariants of one parse of `input` with limit `max`; returns "" when they hold,
/// otherwise a description of the first violation.
template <typename Head, typename Parse>
std::string check_invariants(std::string_view input, std::size_t max, Parse parse) {
  const exact_buffer whole(input);
  const std::string_view buf = whole.view();
  Head h{};
  const parse_status st = parse(buf, h, max);
  switch (st) {
    case parse_status::complete:
      if (h.head_bytes > buf.size() || h.head_bytes > max || h.head_bytes < 4) {
        return "complete with head_bytes " + std::to_string(h.head_bytes) + " for a buffer of " +
               std::to_string(buf.size());
      }
      if (buf.substr(h.head_bytes - 4, 4) != "\r\n\r\n") {
        return "complete, but the head does not end in CRLFCRLF";
      }
      if constexpr (std::is_same_v<Head, http::request_head>) {
        if (!within(h.method, buf, h.head_bytes) || !within(h.target, buf, h.head_bytes) ||
            h.method.empty() || h.target.empty()) {
          return "complete, but method or target do not point into the head";
        }
      }
      {
        // The head alone parses the same; one byte less is incomplete.
        const exact_buffer head_only(buf.substr(0, h.head_bytes));
        Head again{};
        if (parse(head_only.view(), again, max) != parse_status::complete) {
          return "the head alone does not parse as complete";
        }
        if constexpr (std::is_same_v<Head, http::request_head>) {
          if (again.method != h.method || again.target != h.target ||
              again.keep_alive != h.keep_alive || again.content_length != h.content_length ||
              again.head_bytes != h.head_bytes || again.version_minor != h.version_minor) {
            return "the head alone parses differently";
          }
        } else if (!same(again, h)) {
          return "the head alone parses differently";
        }
        const exact_buffer shorter(buf.substr(0, h.head_bytes - 1));
        if (parse(shorter.view(), again, max) != parse_status::incomplete) {
          return "the head minus its last byte is not incomplete";
        }
      }
      break;
    case parse_status::incomplete:
      if (buf.size() >= max) {
        return "incomplete although the buffer reached the limit";
      }
      break;
    case parse_status::too_large:
      if (buf.size() < max) {
        return "too_large below the limit";
      }
      break;
    case parse_status::bad_request:
      break;
    default:
      return "status out of range";
  }
  // Any final verdict on a prefix is the verdict on the whole buffer.
  for (std::size_t n : {buf.size() / 3, buf.size() / 2, buf.size() - (buf.size() != 0 ? 1 : 0)}) {
    const exact_buffer prefix(buf.substr(0, n));
    Head p{};
    const parse_status pst = parse(prefix.view(), p, max);
    if (pst != parse_status::incomplete && pst != st) {
      return "a prefix of " + std::to_string(n) + " bytes gave " +
             std::string(http::to_string(pst)) + " but the whole buffer " +
             std::string(http::to_string(st));
    }
  }
  return {};
}

}  // namespace

TEST_CASE("random garbage never reads out of bounds nor reports a head beyond the buffer") {
  constexpr std::uint64_t seed = 0x636f72696f2d6874;  // "corio-ht"
  constexpr int iterations = 20000;
  MESSAGE("random seed: " << seed << ", iterations: " << iterations);
  rng_source rng(seed);

  const auto request = [](std::string_view b, http::request_head& h, std::size_t max) {
    return http::parse_request(b, h, max);
  };
  const auto response = [](std::string_view b, http::response_head& h, std::size_t max) {
    return http::parse_response(b, h, max);
  };

  int failures = 0;
  int completes = 0;
  for (int i = 0; i < iterations && failures < 10; ++i) {
    const std::string input = rng.chance(2) ? random_garbage(rng) : random_mutation(rng);
    // Mostly the default limit; sometimes a small one to reach too_large.
    const std::size_t max =
        rng.chance(4) ? rng.below(input.size() + 2) : http::default_max_head_bytes;
    for (const bool as_request : {true, false}) {
      const std::string problem = as_request
                                      ? check_invariants<http::request_head>(input, max, request)
                                      : check_invariants<http::response_head>(input, max, response);
      if (!problem.empty()) {
        ++failures;
        FAIL_CHECK("iteration " << i << (as_request ? " (request)" : " (response)") << ", max "
                                << max << ": " << problem << "; input: " << escape(input));
      }
    }
    http::request_head rh{};
    http::response_head sh{};
    if (http::parse_request(input, rh) == parse_status::complete ||
        http::parse_response(input, sh) == parse_status::complete) {
      ++completes;
    }
  }
  CHECK(failures == 0);
  // The generators must reach the deep paths, not only the early rejections.
  CHECK(completes > iterations / 20);
  MESSAGE("inputs parsed as complete: " << completes);
}

TEST_SUITE_END();
