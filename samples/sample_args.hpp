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

}  // namespace corio_samples
