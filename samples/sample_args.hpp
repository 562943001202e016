// samples/sample_args.hpp - command-line helpers shared by the samples.
#pragma once

#include <charconv>
#include <string_view>

namespace corio_samples {

/// Parses all of `text` as a decimal unsigned number into `out`; false (and `out` unspecified) on
/// anything else, including an empty string or trailing characters.
inline bool parse_unsigned(std::string_view text, unsigned& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

/// The command line of a server sample that takes `--port P [--workers N]` and nothing else (chat,
/// resp_kv): `port` (required, 0..65535; 0 picks a free port) and `workers` (0 when absent: the
/// runtime's default). False, the outputs unspecified, on a missing port, an unknown argument, a
/// missing value or a value that is not a number in range.
inline bool parse_port_workers(int argc, char** argv, unsigned& port, unsigned& workers) {
  bool has_port = false;
  workers = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--port" && has_value) {
      if (!parse_unsigned(argv[++i], port) || port > 65535) return false;
      has_port = true;
    } else if (arg == "--workers" && has_value) {
      if (!parse_unsigned(argv[++i], workers)) return false;
    } else {
      return false;
    }
  }
  return has_port;
}

}  // namespace corio_samples
