// samples/http/http_parser.hpp - incremental HTTP/1.x message-head parser for the http samples.
//
// Small, header-only, allocation-free, incremental parser for HTTP/1.x message heads
// (request line or status line plus header fields, up to and including the empty line).
//
// Used by the `http_hello` sample server (`parse_request`) and the `http_load` load generator
// (`parse_response`). Depends on the C++20 standard library only.
//
// Model: the caller owns a receive buffer and calls a parse function on the bytes received so
// far. `incomplete` means "read more and call again with the longer buffer" (the parse is
// stateless and restarts from the beginning; its cost is one `memchr` pass over at most
// `max_head_bytes` bytes plus one pass over the head once it is complete). Any other status is
// final: feeding more bytes after the same prefix never changes it.
//
// Strictness (RFC 9110 / RFC 9112), chosen to keep the parser small and safe:
//  - Lines must end in CRLF. A bare LF anywhere in the head is `bad_request` (detected as soon
//    as it is received, even before the head is complete); a bare CR is `bad_request`.
//  - Obsolete line folding (a field line starting with SP or HTAB) is `bad_request`.
//  - `Transfer-Encoding` is not supported: its presence is `bad_request`, so a message body
//    is always delimited by `Content-Length` (requests without it have no body).
//  - Only `HTTP/1.0` and `HTTP/1.1` are accepted (case-sensitive, as the RFC requires).
//  - The parser does not check `Host` (presence or uniqueness) and does not interpret
//    `Expect`, `Upgrade` or any other field besides `Content-Length`, `Transfer-Encoding` and
//    `Connection`.
//
// Thread-safety: every function here is a pure function of its arguments with no shared or
// static mutable state; concurrent calls on distinct outputs are safe. The `std::string_view`
// members of a parsed head point into the caller's buffer and are valid only as long as it.
#pragma once

#include <array>
#include <cstddef>
#include <limits>
#include <string_view>

namespace corio_samples::http {

/// Result of a parse call.
enum class parse_status {
  /// A whole head was parsed; the output structure has been filled in.
  complete,
  /// The head is not complete yet: receive more bytes and parse the longer buffer again.
  /// The output structure is left unchanged.
  incomplete,
  /// The bytes received are not a valid (or not a supported) HTTP/1.x head. Final: the
  /// connection cannot be resynchronized; a server should answer 400 and close. The output
  /// structure is left unchanged.
  bad_request,
  /// No end of head within `max_head_bytes` bytes. Final; a server should answer 431
  /// (Request Header Fields Too Large) and close. The output structure is left unchanged.
  too_large,
};

/// Name of a status ("complete", "incomplete", "bad_request", "too_large"), for logs and test
/// output. Returns "unknown" for a value outside the enumeration. Pure function.
[[nodiscard]] constexpr std::string_view to_string(parse_status s) noexcept {
  switch (s) {
    case parse_status::complete:
      return "complete";
    case parse_status::incomplete:
      return "incomplete";
    case parse_status::bad_request:
      return "bad_request";
    case parse_status::too_large:
      return "too_large";
  }
  return "unknown";
}

/// Default limit, in bytes, on the size of a head (including its final CRLFCRLF).
inline constexpr std::size_t default_max_head_bytes = 8192;

/// A parsed request head. The views point into the buffer passed to `parse_request`.
struct request_head {
  /// Request method, e.g. "GET" (a non-empty RFC 9110 token, case preserved).
  std::string_view method{};
  /// Request target exactly as sent, e.g. "/index.html?x=1", "*", or an absolute URI
  /// (non-empty, visible US-ASCII only; not decoded or normalized).
  std::string_view target{};
  /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
  int version_minor = 1;
  /// Whether the client asked to keep the connection open after the response:
  /// HTTP/1.1: true unless a `Connection` field lists `close`;
  /// HTTP/1.0: false unless a `Connection` field lists `keep-alive` (and none lists `close`).
  /// Tokens are matched case-insensitively; several `Connection` fields are combined.
  bool keep_alive = true;
  /// Number of body bytes, in bytes, that follow the head (0 without `Content-Length`).
  /// May be as large as SIZE_MAX: check it against your own limit before using it.
  std::size_t content_length = 0;
  /// Size of the head in bytes, from the start of the buffer through the final CRLFCRLF
  /// (including any empty lines skipped before the request line). The body, if any, starts
  /// at `buf[head_bytes]`; the next pipelined request at `head_bytes + content_length`.
  std::size_t head_bytes = 0;
};

/// A parsed response head (for the load generator).
struct response_head {
  /// Status code, 100..599.
  int status = 0;
  /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
  int version_minor = 1;
  /// Value of `Content-Length`, in bytes (0 when `has_content_length` is false).
  std::size_t content_length = 0;
  /// Whether a `Content-Length` field was present. When it is absent, the body is empty for
  /// 1xx, 204 and 304 responses and for responses to HEAD, and otherwise extends until the
  /// server closes the connection (the parser does not apply these rules: the caller must).
  bool has_content_length = false;
  /// Whether the server intends to keep the connection open, by the same rules as
  /// `request_head::keep_alive` (HTTP/1.1 default true, HTTP/1.0 default false).
  bool keep_alive = true;
  /// Size of the head in bytes, through the final CRLFCRLF; the body starts at
  /// `buf[head_bytes]`.
  std::size_t head_bytes = 0;
};

namespace detail {

/// Lookup table for `is_tchar`, indexed by unsigned byte value.
inline constexpr std::array<bool, 256> tchar_table = [] {
  std::array<bool, 256> t{};
  constexpr std::string_view tchars =
      "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (const char c : tchars) {
    t[static_cast<unsigned char>(c)] = true;
  }
  return t;
}();

/// True for an RFC 9110 `tchar` (the characters of a token). Pure function.
[[nodiscard]] constexpr bool is_tchar(char c) noexcept {
  return tchar_table[static_cast<unsigned char>(c)];
}

/// True for optional whitespace (SP or HTAB). Pure function.
[[nodiscard]] constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

/// True for a byte allowed in a field value or reason phrase: HTAB, SP, VCHAR or obs-text
/// (0x80..0xFF); false for other control characters (including CR, LF, NUL) and DEL.
[[nodiscard]] constexpr bool is_field_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7F);
}

/// True if every byte of `s` satisfies `is_field_char`. Branch-free over the bytes, so that
/// compilers can vectorize it (field values are most of a head's bytes). Pure function.
[[nodiscard]] constexpr bool all_field_chars(std::string_view s) noexcept {
  unsigned bad = 0;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    bad |= static_cast<unsigned>(u < 0x20 && u != '\t') | static_cast<unsigned>(u == 0x7F);
  }
  return bad == 0;
}

/// True for a byte allowed in a request target: visible US-ASCII (0x21..0x7E).
[[nodiscard]] constexpr bool is_target_char(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7F;
}

/// True for a non-empty token. Pure function.
[[nodiscard]] constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) {
    return false;
  }
  for (const char c : s) {
    if (!is_tchar(c)) {
      return false;
    }
  }
  return true;
}

/// ASCII case-insensitive equality; `lower` must be lowercase. Pure function.
[[nodiscard]] constexpr bool iequals(std::string_view s, std::string_view lower) noexcept {
  if (s.size() != lower.size()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != lower[i]) {
      return false;
    }
  }
  return true;
}

/// `s` without leading and trailing SP/HTAB. Pure function.
[[nodiscard]] constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_ows(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

/// Minor version of an exact "HTTP/1.0" or "HTTP/1.1", or -1 for anything else.
[[nodiscard]] constexpr int parse_version(std::string_view v) noexcept {
  if (v.size() == 8 && v.substr(0, 7) == "HTTP/1." && (v[7] == '0' || v[7] == '1')) {
    return v[7] - '0';
  }
  return -1;
}

/// Outcome of `find_head_end`: a status and, when `complete`, the head size in bytes.
struct head_end {
  /// complete, incomplete, bad_request (bare LF) or too_large.
  parse_status status;
  /// Offset one past the final CRLFCRLF, when `status == complete`; 0 otherwise.
  std::size_t end;
};

/// Finds the end of the head that starts at `buf[start]` (a non-empty line) within the first
/// `max_head_bytes` bytes of `buf`, checking that every LF is preceded by CR.
[[nodiscard]] constexpr head_end find_head_end(std::string_view buf, std::size_t start,
                                               std::size_t max_head_bytes) noexcept {
  const std::string_view window{buf.data(),
                                buf.size() < max_head_bytes ? buf.size() : max_head_bytes};
  for (std::size_t pos = start; pos < window.size();) {
    const std::size_t lf = window.find('\n', pos);
    if (lf == std::string_view::npos) {
      break;
    }
    if (lf == start || window[lf - 1] != '\r') {
      return {parse_status::bad_request, 0};  // bare LF
    }
    if (lf >= start + 3 && window[lf - 2] == '\n') {
      return {parse_status::complete, lf + 1};  // "\r\n\r\n" ends at lf
    }
    pos = lf + 1;
  }
  return {buf.size() >= max_head_bytes ? parse_status::too_large : parse_status::incomplete, 0};
}

/// What the field lines of a head say about framing and persistence.
struct field_summary {
  /// Value of Content-Length, in bytes (0 if absent).
  std::size_t content_length = 0;
  /// Whether Content-Length was present.
  bool has_content_length = false;
  /// Whether a Connection field lists `close`.
  bool close = false;
  /// Whether a Connection field lists `keep-alive`.
  bool keep_alive = false;
};

/// Parses a Content-Length value (1*DIGIT, already trimmed) into `out`; false if it is not
/// all digits, is empty, or overflows `std::size_t`.
[[nodiscard]] constexpr bool parse_content_length(std::string_view v, std::size_t& out) noexcept {
  if (v.empty()) {
    return false;
  }
  std::size_t n = 0;
  for (const char c : v) {
    if (c < '0' || c > '9') {
      return false;
    }
    const auto d = static_cast<std::size_t>(c - '0');
    if (n > (std::numeric_limits<std::size_t>::max() - d) / 10) {
      return false;
    }
    n = n * 10 + d;
  }
  out = n;
  return true;
}

/// Parses the field lines in `block` (each terminated by CRLF; every LF is known to be
/// preceded by CR) into `out`. Returns false for a malformed or unsupported field.
[[nodiscard]] constexpr bool parse_fields(std::string_view block, field_summary& out) noexcept {
  while (!block.empty()) {
    const std::size_t lf = block.find('\n');
    if (lf == std::string_view::npos || lf == 0) {
      return false;  // cannot happen for a block cut by find_head_end; defensive
    }
    const std::string_view line = block.substr(0, lf - 1);
    block.remove_prefix(lf + 1);

    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return false;
    }
    const std::string_view name = line.substr(0, colon);
    if (!is_token(name)) {
      return false;  // empty, whitespace before the colon, obs-fold, control chars...
    }
    const std::string_view raw_value = line.substr(colon + 1);
    if (!all_field_chars(raw_value)) {
      return false;  // bare CR, NUL, other controls, DEL
    }
    const std::string_view value = trim_ows(raw_value);

    if (iequals(name, "content-length")) {
      std::size_t n = 0;
      if (!parse_content_length(value, n)) {
        return false;
      }
      if (out.has_content_length && out.content_length != n) {
        return false;
      }
      out.content_length = n;
      out.has_content_length = true;
    } else if (iequals(name, "transfer-encoding")) {
      return false;  // unsupported: see the file comment
    } else if (iequals(name, "connection")) {
      std::string_view rest = value;
      while (true) {
        const std::size_t comma = rest.find(',');
        const std::string_view option = trim_ows(rest.substr(0, comma));
        if (iequals(option, "close")) {
          out.close = true;
        } else if (iequals(option, "keep-alive")) {
          out.keep_alive = true;
        }
        if (comma == std::string_view::npos) {
          break;
        }
        rest.remove_prefix(comma + 1);
      }
    }
  }
  return true;
}

/// Persistence by RFC 9112 section 9.3 rules, from the version and the Connection options.
[[nodiscard]] constexpr bool keep_alive_for(int version_minor, const field_summary& f) noexcept {
  if (f.close) {
    return false;
  }
  return version_minor >= 1 || f.keep_alive;
}

}  // namespace detail

/// Parses the request head at the start of `buf` (the bytes received so far).
///
/// Empty lines (CRLF) before the request line are skipped, as RFC 9112 section 2.2 recommends;
/// they count toward `head_bytes` and `max_head_bytes`.
///
/// @param buf             received bytes; may hold a partial head, or a head followed by a body
///                        and further pipelined requests (only the first head is parsed).
/// @param out             receives the parsed head on `complete`; unchanged otherwise. Its views
///                        point into `buf`.
/// @param max_head_bytes  limit in bytes on the head size, final CRLFCRLF included.
/// @return `complete`; `incomplete` if `buf` is shorter than `max_head_bytes` and does not yet
///         hold a whole head; `too_large` if the first `max_head_bytes` bytes hold no head end;
///         `bad_request` for a malformed head (bad method token, missing or extra spaces in the
///         request line, empty target or target with bytes outside 0x21..0x7E, version other
///         than HTTP/1.0 or HTTP/1.1, bare CR or LF, field line without a colon or with a
///         non-token name or whitespace before the colon, control characters in a field value,
///         Content-Length not all digits / overflowing / repeated with a different value,
///         any Transfer-Encoding).
/// Pure function (no shared state; safe to call concurrently from any thread); never throws,
/// never allocates, reads only `buf[0, min(buf.size(), max_head_bytes))`.
[[nodiscard]] constexpr parse_status parse_request(
    std::string_view buf, request_head& out,
    std::size_t max_head_bytes = default_max_head_bytes) noexcept {
  const std::size_t limit = buf.size() < max_head_bytes ? buf.size() : max_head_bytes;
  std::size_t start = 0;
  while (start + 1 < limit && buf[start] == '\r' && buf[start + 1] == '\n') {
    start += 2;
  }
  const detail::head_end he = detail::find_head_end(buf, start, max_head_bytes);
  if (he.status != parse_status::complete) {
    return he.status;
  }

  // Request line: method SP request-target SP HTTP-version.
  const std::string_view head = buf.substr(start, he.end - start);
  const std::size_t line_end = head.find('\n') - 1;  // the CR; the line is non-empty
  const std::string_view line = head.substr(0, line_end);

  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    return parse_status::bad_request;
  }
  const std::string_view method = line.substr(0, sp1);
  if (!detail::is_token(method)) {
    return parse_status::bad_request;
  }
  const std::size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return parse_status::bad_request;
  }
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.empty()) {
    return parse_status::bad_request;
  }
  for (const char c : target) {
    if (!detail::is_target_char(c)) {
      return parse_status::bad_request;
    }
  }
  const int minor = detail::parse_version(line.substr(sp2 + 1));
  if (minor < 0) {
    return parse_status::bad_request;
  }

  detail::field_summary fields{};
  if (!detail::parse_fields(head.substr(line_end + 2, head.size() - line_end - 4), fields)) {
    return parse_status::bad_request;
  }

  out.method = method;
  out.target = target;
  out.version_minor = minor;
  out.keep_alive = detail::keep_alive_for(minor, fields);
  out.content_length = fields.content_length;
  out.head_bytes = he.end;
  return parse_status::complete;
}

/// Parses the response head at the start of `buf` (status line `HTTP/1.x NNN reason`).
///
/// The reason phrase may be empty, and the space before an empty reason may be omitted.
/// Empty lines before the status line are not skipped (`bad_request`).
///
/// @param buf             received bytes; may hold a partial head, or a head followed by a body.
/// @param out             receives the parsed head on `complete`; unchanged otherwise.
/// @param max_head_bytes  limit in bytes on the head size, final CRLFCRLF included.
/// @return `complete`; `incomplete` if `buf` is shorter than `max_head_bytes` and does not yet
///         hold a whole head; `too_large` if the first `max_head_bytes` bytes hold no head end;
///         `bad_request` for a malformed head (version other than HTTP/1.0 or HTTP/1.1, status
///         not three digits in 100..599, control characters in the reason phrase, and the same
///         field-line errors as `parse_request`, including any Transfer-Encoding).
/// Pure function (no shared state; safe to call concurrently from any thread); never throws,
/// never allocates, reads only `buf[0, min(buf.size(), max_head_bytes))`.
[[nodiscard]] constexpr parse_status parse_response(
    std::string_view buf, response_head& out,
    std::size_t max_head_bytes = default_max_head_bytes) noexcept {
  const detail::head_end he = detail::find_head_end(buf, 0, max_head_bytes);
  if (he.status != parse_status::complete) {
    return he.status;
  }

  // Status line: HTTP-version SP 3DIGIT [SP reason-phrase].
  const std::string_view head = buf.substr(0, he.end);
  const std::size_t line_end = head.find('\n') - 1;
  const std::string_view line = head.substr(0, line_end);
  if (line.size() < 12 || line[8] != ' ') {
    return parse_status::bad_request;
  }
  const int minor = detail::parse_version(line.substr(0, 8));
  if (minor < 0) {
    return parse_status::bad_request;
  }
  int status = 0;
  for (std::size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      return parse_status::bad_request;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) {
    return parse_status::bad_request;
  }
  if (line.size() > 12) {
    if (line[12] != ' ') {
      return parse_status::bad_request;
    }
    if (!detail::all_field_chars(line.substr(13))) {
      return parse_status::bad_request;
    }
  }

  detail::field_summary fields{};
  if (!detail::parse_fields(head.substr(line_end + 2, head.size() - line_end - 4), fields)) {
    return parse_status::bad_request;
  }

  out.status = status;
  out.version_minor = minor;
  out.content_length = fields.content_length;
  out.has_content_length = fields.has_content_length;
  out.keep_alive = detail::keep_alive_for(minor, fields);
  out.head_bytes = he.end;
  return parse_status::complete;
}

}  // namespace corio_samples::http
