// libFuzzer target: the request parser of samples/resp_kv (samples/resp/resp_parser.hpp) and its
// commands (samples/resp/resp_commands.hpp), fed arbitrary bytes cut into arbitrary reads. Built and
// run by tools/fuzz.sh (ASan + UBSan), seeds in test/fuzz/corpus/resp/.
//
// Input: one control byte, then `cuts` bytes of read sizes, then the payload (the bytes a client
// sends on one connection):
//   byte 0, bits 0-1: the limits, one of the server's (parse_limits{}) or three small sets (so that
//           every bound is reached by short inputs);
//           bits 4-7: cuts, 0..15;
//   then `cuts` bytes, each a read size minus one (1..256 bytes; the rest comes in one piece).
// A seed is "\x00" followed by the request bytes (no cuts, the server's limits).
//
// What it checks (a failure aborts with a message naming it):
//   - the parser never reads outside the bytes it is given (each call gets a heap copy of exactly
//     the pending bytes, in a new block, so ASan sees any overread and any use of an old buffer);
//     a complete command's arguments are inside the buffer, at most max_args of them, each at most
//     max_bulk_bytes (an inline one: max_inline_bytes); consumed() is within the buffer; after incomplete,
//     needed() is more than the buffer holds and within the limits;
//   - the commands, the error and the unparsed rest are the same whether the payload comes whole or
//     cut into the reads above (resuming is exact);
//   - each command written back as a RESP array parses back to the same arguments;
//   - executing the commands on a keyspace (at a clock that moves by the command's index) appends
//     exactly one well-formed RESP2 answer per command, and nothing throws.
#include <algorithm>
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

#include "resp/resp_commands.hpp"
#include "resp/resp_parser.hpp"

namespace resp = corio_samples::resp;
using resp::parse_status;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "resp_fuzz: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

struct outcome {
  std::vector<std::vector<std::string>> commands;
  std::string error;
  std::size_t rest = 0;
  bool failed = false;
};

/// Parses `payload` delivered in reads of the given sizes (then the rest in one piece), as the
/// server does: each complete command consumed, an incomplete one kept for the next read.
outcome parse_stream(std::string_view payload, const resp::parse_limits& limits,
                     const std::vector<std::size_t>& reads) {
  outcome o;
  resp::command_parser parser{limits};
  const std::size_t need_bound = parser.max_needed();
  std::string pending;
  std::size_t pos = 0;
  std::size_t next = 0;
  // Each round delivers at least one byte, or ends.
  for (std::size_t round = 0; round <= payload.size(); ++round) {
    std::size_t n = payload.size() - pos;
    if (next < reads.size()) n = std::min(n, reads[next++]);
    pending.append(payload.substr(pos, n));
    pos += n;
    // Each complete command consumes at least one byte: bounded by the pending bytes.
    const std::size_t max_commands = pending.size() + 1;
    for (std::size_t k = 0; k <= max_commands; ++k) {
      std::unique_ptr<char[]> copy(new char[pending.empty() ? 1 : pending.size()]);
      if (!pending.empty()) std::memcpy(copy.get(), pending.data(), pending.size());
      const std::string_view buf{copy.get(), pending.size()};
      const parse_status st = parser.parse(buf);
      if (st == parse_status::error) {
        check(!parser.error().empty(), "an error without a message");
        o.error = parser.error();
        o.failed = true;
        return o;
      }
      if (st == parse_status::incomplete) {
        check(parser.needed() > buf.size(), "incomplete, yet needed() is already there");
        check(parser.needed() <= need_bound, "needed() beyond the limits");
        break;
      }
      check(st == parse_status::complete, "status out of range");
      check(parser.consumed() > 0 && parser.consumed() <= buf.size(), "consumed() outside the buffer");
      check(parser.args().size() <= limits.max_args, "more arguments than max_args");
      std::vector<std::string> args;
      for (const std::string_view a : parser.args()) {
        check(a.data() >= buf.data() && a.data() + a.size() <= buf.data() + parser.consumed(),
              "an argument outside the command");
        // A bulk string is bounded by max_bulk_bytes, an inline argument by its line.
        check(a.size() <= std::max(limits.max_bulk_bytes, limits.max_inline_bytes),
              "an argument past the limits");
        args.emplace_back(a);
      }
      o.commands.push_back(std::move(args));
      pending.erase(0, parser.consumed());
    }
    if (pos == payload.size()) break;
  }
  o.rest = pending.size();
  return o;
}

/// Checks one RESP2 answer at `out[at...]` and returns the offset after it (depth-bounded).
std::size_t check_answer(std::string_view out, std::size_t at, int depth) {
  check(depth < 4, "answers nested too deep");
  check(at < out.size(), "an answer is missing");
  const std::size_t eol = out.find("\r\n", at);
  check(eol != std::string_view::npos, "an answer line without CRLF");
  const std::string_view line = out.substr(at + 1, eol - at - 1);
  check(line.find('\n') == std::string_view::npos && line.find('\r') == std::string_view::npos,
        "a CR or LF inside an answer line");
  std::int64_t n = 0;
  switch (out[at]) {
    case '+':
    case '-':
      return eol + 2;
    case ':':
      check(resp::parse_integer(line, n), "an integer answer that is not an integer");
      return eol + 2;
    case '$':
      check(resp::parse_integer(line, n) && n >= -1, "a bad bulk length in an answer");
      if (n == -1) return eol + 2;
      check(eol + 2 + static_cast<std::size_t>(n) + 2 <= out.size(), "a bulk answer runs past the output");
      check(out.substr(eol + 2 + static_cast<std::size_t>(n), 2) == "\r\n", "a bulk answer without CRLF");
      return eol + 2 + static_cast<std::size_t>(n) + 2;
    case '*': {
      check(resp::parse_integer(line, n) && n >= 0, "a bad array length in an answer");
      std::size_t p = eol + 2;
      for (std::int64_t i = 0; i < n; ++i) p = check_answer(out, p, depth + 1);
      return p;
    }
    default:
      fail("an answer of an unknown type");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  resp::parse_limits limits;
  switch (data[0] & 3u) {
    case 1:
      limits = {.max_bulk_bytes = 8, .max_args = 4, .max_inline_bytes = 16, .max_command_bytes = 40};
      break;
    case 2:
      limits = {.max_bulk_bytes = 0, .max_args = 1, .max_inline_bytes = 2, .max_command_bytes = 0};
      break;
    case 3:
      limits = {.max_bulk_bytes = 300, .max_args = 64, .max_inline_bytes = 100, .max_command_bytes = 1000};
      break;
    default:
      break;
  }
  const std::size_t cuts = std::min<std::size_t>(data[0] >> 4, size - 1);
  std::vector<std::size_t> reads;
  for (std::size_t i = 0; i < cuts; ++i) reads.push_back(std::size_t{data[1 + i]} + 1);
  const std::string_view payload{reinterpret_cast<const char*>(data) + 1 + cuts, size - 1 - cuts};

  const outcome whole = parse_stream(payload, limits, {});
  const outcome pieces = parse_stream(payload, limits, reads);
  check(whole.commands == pieces.commands, "the commands differ when the payload comes in pieces");
  check(whole.error == pieces.error && whole.failed == pieces.failed, "the error differs in pieces");
  check(whole.rest == pieces.rest, "the unparsed rest differs in pieces");

  // Written back as RESP arrays, the commands parse to the same arguments (with the server's limits,
  // which every command parsed under the smaller ones also meets).
  std::string again;
  std::size_t nonempty = 0;
  for (const auto& c : whole.commands) {
    if (c.empty()) continue;
    ++nonempty;
    again += "*" + std::to_string(c.size()) + "\r\n";
    for (const auto& a : c) again += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  const outcome reparsed = parse_stream(again, {}, {});
  check(!reparsed.failed && reparsed.rest == 0 && reparsed.commands.size() == nonempty,
        "the commands written back do not parse back");
  for (std::size_t i = 0, j = 0; i < whole.commands.size(); ++i) {
    if (whole.commands[i].empty()) continue;
    check(reparsed.commands[j++] == whole.commands[i], "a command written back parses differently");
  }

  // Executed, every command gets exactly one well-formed answer.
  resp::keyspace ks;
  std::string out;
  std::size_t executed = 0;
  std::int64_t now = 1;
  for (const auto& c : whole.commands) {
    if (c.empty()) continue;
    std::vector<std::string_view> args(c.begin(), c.end());
    now += 7;
    ++executed;
    if (resp::execute(ks, args, now, out) == resp::after_command::close) break;
    ks.sweep_expired(now, 4);
  }
  std::size_t at = 0;
  for (std::size_t i = 0; i < executed; ++i) at = check_answer(out, at, 0);
  check(at == out.size(), "more output than answers");
  return 0;
}
