// libFuzzer target: the HTTP/1.x head parser of the samples (samples/http/http_parser.hpp) and
// the http_hello server's request framing (samples/http/request_framer.hpp), fed arbitrary bytes
// cut into arbitrary reads. Built and run by tools/fuzz.sh (ASan + UBSan), seeds in
// test/fuzz/corpus/http_request/.
//
// Input: one control byte, then `cuts` bytes of read sizes, then the payload (the bytes a client
// sends on one connection):
//   byte 0, bits 0-1: max_head_bytes, one of 8192 (the server's), 16, 64, 512;
//           bits 2-3: max_body_bytes, one of 1 MiB (the server's), 0, 5, 100;
//           bits 4-7: cuts, 0..15;
//   then `cuts` bytes, each a read size minus one (1..256 bytes; the rest comes in reads as large
//   as the receive buffer allows).
// A seed is "\x00" followed by the request bytes (no cuts, the server's limits).
//
// What it checks (a failure aborts with a message naming it):
//   - the parser never reads outside the payload (the payload is copied to a heap block of its
//     exact size, so ASan sees any overread), and a complete head has sane fields: method a
//     token, target visible ASCII, both inside the head in request-line order, version 0 or 1,
//     head_bytes within the buffer and the limit and ending in CRLFCRLF, the head alone parses
//     the same and one byte less is incomplete, no Content-Length field means 0; incomplete and
//     too_large agree with the limit; the same for responses (status 100..599);
//   - a verdict is the same on every prefix that has one (cut at each read boundary);
//   - the server's framing answers the payload delivered in one piece, and cut into the reads
//     above, exactly as a whole-buffer model does (each pipelined request in order, bodies
//     skipped, 400 / 431 / 413 and close where due); its receive buffer never fills up while the
//     connection is open; and what it answers parses back as a sequence of responses.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_parser.hpp"
#include "http/request_framer.hpp"

namespace http = corio_samples::http;
using http::parse_status;

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "http_request_fuzz: %s%s%.*s\n", what, detail.empty() ? "" : ": ",
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

/// A copy of some bytes in a heap block of exactly their size (ASan then reports any read past
/// the end, which a std::string's spare capacity would hide).
class exact_buffer {
 public:
  explicit exact_buffer(std::string_view bytes)
      : data_(new char[bytes.size() == 0 ? 1 : bytes.size()]), size_(bytes.size()) {
    if (size_ != 0) std::memcpy(data_.get(), bytes.data(), size_);
  }
  [[nodiscard]] std::string_view view() const noexcept { return {data_.get(), size_}; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_;
};

bool inside(std::string_view part, std::string_view buf, std::size_t end) {
  return part.data() >= buf.data() && part.data() + part.size() <= buf.data() + end;
}

bool has_field(std::string_view head, std::string_view lower_name) {
  std::string lower(head);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower.find(lower_name) != std::string::npos;
}

/// The sane-fields checks of a complete request head parsed from `buf`.
void check_request(std::string_view buf, const http::request_head& h, std::size_t max) {
  check(h.head_bytes >= 4 && h.head_bytes <= buf.size() && h.head_bytes <= max,
        "request head_bytes out of range");
  check(buf.substr(h.head_bytes - 4, 4) == "\r\n\r\n", "request head does not end in CRLFCRLF");
  check(inside(h.method, buf, h.head_bytes) && inside(h.target, buf, h.head_bytes),
        "method or target outside the head");
  check(!h.method.empty() && !h.target.empty(), "empty method or target");
  for (const char c : h.method) check(http::detail::is_tchar(c), "method is not a token");
  for (const char c : h.target)
    check(http::detail::is_target_char(c), "target has a byte outside 0x21..0x7e");
  check(h.version_minor == 0 || h.version_minor == 1, "version is not 1.0 or 1.1");
  // Request line: [CRLF...] method SP target SP HTTP/1.x CRLF.
  const auto skipped = static_cast<std::size_t>(h.method.data() - buf.data());
  check(skipped % 2 == 0, "odd number of bytes before the method");
  for (std::size_t i = 0; i < skipped; i += 2) check(buf.substr(i, 2) == "\r\n", "non-empty line skipped");
  check(h.target.data() == h.method.data() + h.method.size() + 1, "target does not follow the method");
  const std::size_t version_at = skipped + h.method.size() + 1 + h.target.size() + 1;
  check(buf.substr(version_at - 1, 1) == " " &&
            buf.substr(version_at, 8) == (h.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1") &&
            buf.substr(version_at + 8, 2) == "\r\n",
        "request line is not method SP target SP version CRLF");
  if (!has_field(buf.substr(0, h.head_bytes), "content-length")) {
    check(h.content_length == 0, "content_length without a Content-Length field");
  }
  if (h.version_minor == 0 && !has_field(buf.substr(0, h.head_bytes), "keep-alive")) {
    check(!h.keep_alive, "HTTP/1.0 kept alive without keep-alive");
  }
  if (h.version_minor == 1 && !has_field(buf.substr(0, h.head_bytes), "close")) {
    check(h.keep_alive, "HTTP/1.1 closed without close");
  }
}

void check_response(std::string_view buf, const http::response_head& h, std::size_t max) {
  check(h.head_bytes >= 4 && h.head_bytes <= buf.size() && h.head_bytes <= max,
        "response head_bytes out of range");
  check(buf.substr(h.head_bytes - 4, 4) == "\r\n\r\n", "response head does not end in CRLFCRLF");
  check(h.status >= 100 && h.status <= 599, "status outside 100..599");
  check(h.version_minor == 0 || h.version_minor == 1, "response version is not 1.0 or 1.1");
  check(h.has_content_length || h.content_length == 0, "content_length without has_content_length");
}

bool same_request(const http::request_head& a, std::string_view abuf, const http::request_head& b,
                  std::string_view bbuf) {
  return a.method.data() - abuf.data() == b.method.data() - bbuf.data() && a.method == b.method &&
         a.target.data() - abuf.data() == b.target.data() - bbuf.data() && a.target == b.target &&
         a.version_minor == b.version_minor && a.keep_alive == b.keep_alive &&
         a.content_length == b.content_length && a.head_bytes == b.head_bytes;
}

bool same_response(const http::response_head& a, const http::response_head& b) {
  return a.status == b.status && a.version_minor == b.version_minor && a.content_length == b.content_length &&
         a.has_content_length == b.has_content_length && a.keep_alive == b.keep_alive &&
         a.head_bytes == b.head_bytes;
}

/// Parser invariants of one buffer; `prefixes` are lengths at which to parse a prefix too.
void check_parser(std::string_view payload, std::size_t max, const std::vector<std::size_t>& prefixes) {
  const exact_buffer whole(payload);
  const std::string_view buf = whole.view();

  http::request_head req{};
  const parse_status rst = http::parse_request(buf, req, max);
  http::response_head rsp{};
  const parse_status sst = http::parse_response(buf, rsp, max);
  for (const parse_status st : {rst, sst}) {
    if (st == parse_status::incomplete) check(buf.size() < max, "incomplete at or over the limit");
    if (st == parse_status::too_large) check(buf.size() >= max, "too_large under the limit");
    check(st == parse_status::complete || st == parse_status::incomplete || st == parse_status::bad_request ||
              st == parse_status::too_large,
          "status out of range");
  }
  if (rst == parse_status::complete) {
    check_request(buf, req, max);
    const exact_buffer head(buf.substr(0, req.head_bytes));
    http::request_head again{};
    check(http::parse_request(head.view(), again, max) == parse_status::complete &&
              same_request(again, head.view(), req, buf),
          "the request head alone parses differently");
    const exact_buffer shorter(buf.substr(0, req.head_bytes - 1));
    check(http::parse_request(shorter.view(), again, max) == parse_status::incomplete,
          "the request head minus one byte is not incomplete");
  }
  if (sst == parse_status::complete) {
    check_response(buf, rsp, max);
    const exact_buffer head(buf.substr(0, rsp.head_bytes));
    http::response_head again{};
    check(
        http::parse_response(head.view(), again, max) == parse_status::complete && same_response(again, rsp),
        "the response head alone parses differently");
    const exact_buffer shorter(buf.substr(0, rsp.head_bytes - 1));
    check(http::parse_response(shorter.view(), again, max) == parse_status::incomplete,
          "the response head minus one byte is not incomplete");
  }
  // A final verdict on a prefix is the verdict on the whole, with the same fields.
  for (const std::size_t n : prefixes) {
    const exact_buffer prefix(buf.substr(0, n));
    http::request_head p{};
    const parse_status pst = http::parse_request(prefix.view(), p, max);
    if (pst != parse_status::incomplete) {
      check(pst == rst, "a request prefix has another verdict than the whole");
      if (pst == parse_status::complete) {
        check(same_request(p, prefix.view(), req, buf), "a request prefix parses differently");
      }
    }
    http::response_head q{};
    const parse_status qst = http::parse_response(prefix.view(), q, max);
    if (qst != parse_status::incomplete) {
      check(qst == sst, "a response prefix has another verdict than the whole");
      if (qst == parse_status::complete) check(same_response(q, rsp), "a response prefix parses differently");
    }
  }
}

struct answer {
  std::string out;
  bool closed = false;
  std::vector<bool> bodiless;  ///< the model's: per response, whether it answers a HEAD (no body)
};

/// What the server must answer to `payload` sent on one connection: each request parsed in turn
/// from the whole buffer.
answer model(std::string_view payload, const http::server_limits& limits) {
  const std::size_t head_limit = std::min(limits.max_head_bytes, http::request_framer::buffer_bytes);
  answer a;
  std::size_t offset = 0;
  while (offset < payload.size()) {
    http::request_head req{};
    const parse_status st = http::parse_request(payload.substr(offset), req, head_limit);
    if (st == parse_status::incomplete) break;
    if (st == parse_status::bad_request) {
      a.out += http::bad_request_response;
      a.closed = true;
      break;
    }
    if (st == parse_status::too_large) {
      a.out += http::head_too_large_response;
      a.closed = true;
      break;
    }
    if (req.content_length > limits.max_body_bytes) {
      a.out += http::body_too_large_response;
      a.closed = true;
      break;
    }
    http::append_response(a.out, req);
    a.bodiless.push_back(req.method == "HEAD");
    if (!req.keep_alive) {
      a.closed = true;
      break;
    }
    offset += req.head_bytes;
    if (req.content_length > payload.size() - offset) break;  // the body is still coming
    offset += req.content_length;
  }
  return a;
}

/// Feeds `payload` to a request_framer in reads of the given sizes (each at most a ring buffer's
/// 16 KiB), then in reads of 16 KiB.
answer serve(std::string_view payload, const http::server_limits& limits,
             const std::vector<std::size_t>& reads) {
  auto framer = std::make_unique<http::request_framer>(limits);
  answer a;
  std::size_t pos = 0;
  std::size_t next = 0;
  // Each read delivers at least one byte: at most payload.size() + 1 rounds.
  for (std::size_t round = 0; round <= payload.size() && pos < payload.size(); ++round) {
    std::size_t n = std::min(http::request_framer::buffer_bytes, payload.size() - pos);
    if (next < reads.size()) n = std::min(n, std::max<std::size_t>(reads[next++], 1));
    const std::string_view read = payload.substr(pos, n);
    pos += n;
    check(framer->kept_bytes() < http::request_framer::buffer_bytes, "the kept tail exceeds the head limit");
    if (framer->on_data(read, a.out)) {
      a.closed = true;
      break;
    }
  }
  return a;
}

/// The server's responses parse back as responses, one after another, each one of its statuses;
/// `bodiless[i]`: the i-th answers a HEAD request (its Content-Length is that of a GET).
void check_responses(std::string_view out, const std::vector<bool>& bodiless) {
  std::size_t offset = 0;
  for (std::size_t i = 0; i <= out.size() && offset < out.size(); ++i) {
    http::response_head h{};
    check(http::parse_response(out.substr(offset), h) == parse_status::complete, "a response does not parse");
    check(h.status == 200 || h.status == 404 || h.status == 400 || h.status == 413 || h.status == 431,
          "a response with an unexpected status");
    check(h.has_content_length, "a response without Content-Length");
    const std::size_t body = i < bodiless.size() && bodiless[i] ? 0 : h.content_length;
    check(body <= out.size() - offset - h.head_bytes, "a response body runs past the output");
    offset += h.head_bytes + body;
  }
  check(offset == out.size(), "the responses do not end where the output does");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr std::array<std::size_t, 4> head_limits{8192, 16, 64, 512};
  static constexpr std::array<std::size_t, 4> body_limits{1 << 20, 0, 5, 100};
  const http::server_limits limits{head_limits[data[0] & 3u], body_limits[(data[0] >> 2) & 3u]};
  const std::size_t cuts = std::min<std::size_t>(data[0] >> 4, size - 1);
  std::vector<std::size_t> reads;
  for (std::size_t i = 0; i < cuts; ++i) reads.push_back(std::size_t{data[1 + i]} + 1);
  const std::string_view payload{reinterpret_cast<const char*>(data) + 1 + cuts, size - 1 - cuts};

  std::vector<std::size_t> prefixes;
  std::size_t at = 0;
  for (const std::size_t r : reads) {
    at += r;
    if (at >= payload.size()) break;
    prefixes.push_back(at);
  }
  check_parser(payload, limits.max_head_bytes, prefixes);
  if (limits.max_head_bytes != http::default_max_head_bytes) {
    check_parser(payload, http::default_max_head_bytes, prefixes);
  }

  const answer expected = model(payload, limits);
  const answer whole = serve(payload, limits, {});
  const answer pieces = serve(payload, limits, reads);
  if (whole.out != expected.out || whole.closed != expected.closed) {
    fail("the server's answer to the whole payload differs from the model's", whole.out);
  }
  if (pieces.out != expected.out || pieces.closed != expected.closed) {
    fail("the server's answer to the payload in pieces differs from the model's", pieces.out);
  }
  check_responses(expected.out, expected.bodiless);
  return 0;
}
