// samples/connection_failure.hpp - what the samples' supervising connection groups report.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <string_view>

namespace corio_samples {

/// A supervising task_group's on_failure for a server sample: prints "<sample>: connection
/// failed: <what>" (or without the what, for an exception not derived from std::exception) on
/// stderr; the other connections go on. Never throws (fmt's own failures aside). Any thread.
inline void report_connection_failure(std::string_view sample, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    fmt::print(stderr, "{}: connection failed: {}\n", sample, x.what());
  } catch (...) {
    fmt::print(stderr, "{}: connection failed\n", sample);
  }
}

}  // namespace corio_samples
