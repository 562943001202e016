// samples/resp/resp_parser.hpp - the request parser of samples/resp_kv: RESP2 commands (arrays of
// bulk strings, what redis-cli and redis-benchmark send) and inline commands (a line of words, what
// a person types into `nc`), parsed incrementally from a connection's receive buffer.
//
// The parser keeps no copy of the bytes: a complete command's arguments are views into the caller's
// buffer. It is resumable: called again on the same command with more bytes appended, it goes on
// where it stopped (it keeps offsets, not pointers, so the buffer may move or be compacted between
// calls as long as the command's first byte stays first), so a command that arrives one byte at a
// time costs linear time. Every size it accepts is bounded (parse_limits), so no input makes its
// owner buffer or allocate without bound. Depends on the C++20 standard library only; the fuzz target
// test/fuzz/resp_fuzz.cpp and test/resp_parser_tests.cpp drive it directly.
//
// The grammar and the error messages follow Redis's networking.c (processMultibulkBuffer,
// processInlineBuffer): a command starting with '*' is "*N\r\n" then N times "$LEN\r\nBYTES\r\n";
// anything else is an inline command, one line ended by "\n" (a "\r" before it is dropped), split on
// spaces and tabs. Two differences, both stricter or simpler: the CRLF after a bulk string's bytes
// is checked (Redis skips two bytes unseen), and inline commands have no quoting ("a b" is two
// arguments, the quotes included).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace corio_samples::resp {

/// The bounds the parser enforces; a command past one of them is a protocol error (the server
/// answers "-ERR Protocol error: ..." and closes the connection). Sizes in bytes.
struct parse_limits {
  /// The longest bulk string (one argument). Redis's proto-max-bulk-len is 512 MiB; the sample
  /// keeps every value in memory per connection while it arrives, so it allows 16 MiB.
  std::size_t max_bulk_bytes = std::size_t{16} << 20;
  /// The most arguments in one command (Redis allows 1024 * 1024 as well).
  std::size_t max_args = std::size_t{1} << 20;
  /// The longest inline command line, with its line end (Redis's PROTO_INLINE_MAX_SIZE, 64 KiB).
  std::size_t max_inline_bytes = std::size_t{64} << 10;
  /// The most bytes one command may span in the receive buffer, headers included: what bounds the
  /// buffer a connection grows (Redis's client-query-buffer-limit is 1 GiB; here 64 MiB).
  std::size_t max_command_bytes = std::size_t{64} << 20;
};

/// The longest "*N" or "$N" header line without its CRLF: a sign, 19 digits, room to spare.
inline constexpr std::size_t max_header_bytes = 32;

/// What parse() found at the start of the buffer.
enum class parse_status {
  complete,    ///< a whole command: args() and consumed() describe it
  incomplete,  ///< more bytes are needed; call again with them appended (needed() says how many)
  error,       ///< a protocol violation: error() says which; the connection should close
};

/// Incremental parser of one connection's commands; see the top of this file. Not thread-safe (one
/// connection, one task). Allocates only to grow its argument tables (each argument costs 32 bytes
/// while its command is parsed, so at most 32 * max_args bytes); throws std::bad_alloc.
class command_parser {
 public:
  /// A parser enforcing `limits`, before its first command.
  explicit command_parser(parse_limits limits = {}) noexcept : limits_(limits) {}

  /// Parses the command at the start of `buf` (bytes not yet consumed). Returns complete (args()
  /// holds its arguments, views into `buf` valid while `buf`'s bytes stay where they are; an empty
  /// args() is an empty command, such as an empty inline line or "*0\r\n", which gets no answer;
  /// consumed() is its length), incomplete (call again with `buf` extended by more bytes of the
  /// same connection), or error (error() says why; the parser must not be used again).
  parse_status parse(std::string_view buf) {
    if (failed_) return parse_status::error;
    if (!started_) begin();
    return multibulk_ ? parse_multibulk(buf) : parse_inline(buf);
  }

  /// The arguments of the command parse() just completed (the command name first).
  [[nodiscard]] std::span<const std::string_view> args() const noexcept { return views_; }
  /// The bytes the completed command took at the start of the buffer.
  [[nodiscard]] std::size_t consumed() const noexcept { return consumed_; }
  /// After incomplete: how many bytes the buffer must hold at least (from the command's first
  /// byte) before parse() can progress; never more than max_needed().
  [[nodiscard]] std::size_t needed() const noexcept { return needed_; }
  /// The most bytes one command can make its owner buffer: max_command_bytes plus a header line
  /// (max_header_bytes and CRLF), or max_inline_bytes, whichever is larger.
  [[nodiscard]] std::size_t max_needed() const noexcept {
    return std::max(limits_.max_command_bytes + max_header_bytes + 3, limits_.max_inline_bytes);
  }
  /// After error: what was wrong, for "-ERR Protocol error: ..." (Redis's wording).
  [[nodiscard]] std::string_view error() const noexcept { return error_; }
  /// Whether part of a command has been parsed and the rest is awaited.
  [[nodiscard]] bool in_command() const noexcept { return started_; }
  /// The limits this parser enforces.
  [[nodiscard]] const parse_limits& limits() const noexcept { return limits_; }

 private:
  struct arg_ref {
    std::size_t offset;
    std::size_t length;
  };

  /// Starts a new command: forgets the previous one's tables (keeping their memory unless a huge
  /// command grew them, so that one such command does not pin its tables for the connection's life).
  void begin() {
    constexpr std::size_t keep = 1024;
    if (refs_.capacity() > keep) {
      std::vector<arg_ref>{}.swap(refs_);
      std::vector<std::string_view>{}.swap(views_);
    }
    refs_.clear();
    views_.clear();
    started_ = true;
    pos_ = 0;
    expected_ = -1;
    bulk_len_ = -1;
    consumed_ = 0;
    needed_ = 1;
    multibulk_ = false;
    decided_ = false;
  }

  parse_status fail(const char* what) {
    failed_ = true;
    started_ = false;
    error_ = what;
    return parse_status::error;
  }

  parse_status incomplete(std::size_t needed) {
    needed_ = needed;
    return parse_status::incomplete;
  }

  parse_status finish(std::string_view buf) {
    views_.reserve(refs_.size());
    for (const arg_ref& r : refs_) views_.emplace_back(buf.data() + r.offset, r.length);
    consumed_ = pos_;
    started_ = false;
    return parse_status::complete;
  }

  /// Parses the decimal number in `text` (an optional '-' then 1 to 19 digits); false otherwise.
  static bool parse_number(std::string_view text, std::int64_t& out) noexcept {
    bool negative = false;
    if (!text.empty() && text.front() == '-') {
      negative = true;
      text.remove_prefix(1);
    }
    if (text.empty() || text.size() > 18) return false;  // 18 digits cannot overflow
    std::int64_t v = 0;
    for (const char c : text) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = negative ? -v : v;
    return true;
  }

  /// Reads the header line ("*N" or "$N") whose marker is at buf[at]: sets `value` and returns the
  /// offset after its CRLF, or header_incomplete (needed_ set), or header_bad for a line that is
  /// not an optional '-' and digits ended by CRLF, or that has no CR within max_header_bytes.
  static constexpr std::size_t header_incomplete = 0;
  static constexpr std::size_t header_bad = static_cast<std::size_t>(-1);
  std::size_t header(std::string_view buf, std::size_t at, std::int64_t& value) {
    const std::size_t window = std::min(buf.size(), at + 1 + max_header_bytes + 1);
    std::size_t cr_at = at + 1;
    while (cr_at < window && buf[cr_at] != '\r') {
      const char c = buf[cr_at];
      if ((c < '0' || c > '9') && c != '-') return header_bad;  // refused at once, not at the bound
      ++cr_at;
    }
    if (cr_at == window) {
      if (cr_at - at - 1 > max_header_bytes) return header_bad;  // no line end in sight
      needed_ = window + 1;
      return header_incomplete;
    }
    if (cr_at + 1 >= buf.size()) {
      needed_ = cr_at + 2;
      return header_incomplete;
    }
    if (buf[cr_at + 1] != '\n') return header_bad;
    if (!parse_number(buf.substr(at + 1, cr_at - at - 1), value)) return header_bad;
    return cr_at + 2;
  }

  parse_status parse_multibulk(std::string_view buf) {
    if (expected_ < 0) {
      if (buf.empty()) return incomplete(1);
      std::int64_t n = 0;
      const std::size_t next = header(buf, 0, n);
      if (next == header_incomplete) return parse_status::incomplete;
      if (next == header_bad) return fail("invalid multibulk length");
      if (n > static_cast<std::int64_t>(limits_.max_args)) return fail("invalid multibulk length");
      pos_ = next;
      if (n <= 0) return finish(buf);  // "*0" and "*-1": an empty command, as Redis has it
      expected_ = n;
      // Tables grow as arguments arrive, never ahead of them: a header alone costs nothing.
      refs_.reserve(static_cast<std::size_t>(std::min<std::int64_t>(n, 64)));
    }
    while (static_cast<std::int64_t>(refs_.size()) < expected_) {
      if (bulk_len_ < 0) {
        if (pos_ >= buf.size()) return incomplete(pos_ + 1);
        if (buf[pos_] != '$') return fail("expected '$'");
        std::int64_t n = 0;
        const std::size_t next = header(buf, pos_, n);
        // A header is complete or refused within max_header_bytes, so needed_ stays within
        // max_needed(); refusing it here would give a prefix another verdict than the whole.
        if (next == header_incomplete) return parse_status::incomplete;
        if (next == header_bad || n < 0 || static_cast<std::uint64_t>(n) > limits_.max_bulk_bytes) {
          return fail("invalid bulk length");
        }
        pos_ = next;
        bulk_len_ = n;
      }
      const std::size_t end = pos_ + static_cast<std::size_t>(bulk_len_) + 2;
      if (end > limits_.max_command_bytes) return fail("command too large");
      if (end > buf.size()) return incomplete(end);
      if (buf[end - 2] != '\r' || buf[end - 1] != '\n') return fail("expected CRLF after a bulk string");
      refs_.push_back({pos_, static_cast<std::size_t>(bulk_len_)});
      pos_ = end;
      bulk_len_ = -1;
    }
    return finish(buf);
  }

  parse_status parse_inline(std::string_view buf) {
    if (!decided_) {
      if (buf.empty()) return incomplete(1);
      decided_ = true;
      if (buf.front() == '*') {
        multibulk_ = true;
        return parse_multibulk(buf);
      }
    }
    // pos_ is how far a previous call searched for the line end.
    const std::size_t limit = std::min(buf.size(), limits_.max_inline_bytes);
    const void* nl = pos_ < limit ? std::memchr(buf.data() + pos_, '\n', limit - pos_) : nullptr;
    if (nl == nullptr) {
      if (buf.size() >= limits_.max_inline_bytes) return fail("too big inline request");
      pos_ = buf.size();
      return incomplete(buf.size() + 1);
    }
    const auto nl_at = static_cast<std::size_t>(static_cast<const char*>(nl) - buf.data());
    std::size_t line_end = nl_at;
    if (line_end > 0 && buf[line_end - 1] == '\r') --line_end;
    for (std::size_t i = 0; i < line_end;) {
      if (buf[i] == ' ' || buf[i] == '\t') {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < line_end && buf[j] != ' ' && buf[j] != '\t') ++j;
      if (refs_.size() >= limits_.max_args) return fail("too many arguments in an inline request");
      refs_.push_back({i, j - i});
      i = j;
    }
    pos_ = nl_at + 1;
    return finish(buf);
  }

  parse_limits limits_;
  std::vector<arg_ref> refs_;
  std::vector<std::string_view> views_;
  std::size_t pos_ = 0;         // next byte to parse (inline: how far the line end was searched)
  std::int64_t expected_ = -1;  // arguments the array announced; -1 before its header
  std::int64_t bulk_len_ = -1;  // length of the bulk string whose header was read; -1 before it
  std::size_t consumed_ = 0;
  std::size_t needed_ = 1;
  const char* error_ = "";
  bool started_ = false;
  bool decided_ = false;  // whether the first byte said multibulk or inline
  bool multibulk_ = false;
  bool failed_ = false;
};

}  // namespace corio_samples::resp
