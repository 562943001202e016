// corio/errors.hpp - the exceptions corio throws beyond std::system_error.
#pragma once

#include <cerrno>
#include <system_error>

namespace corio {

/// Thrown when an operation was cancelled before it took effect; its code is
/// `std::errc::operation_canceled` (ECANCELED), so code that catches std::system_error sees it as
/// such. In this release it is thrown by awaiting the join_handle of a task that the runtime
/// destroyed at shutdown; the cancellation layer uses it for every cancelled await.
class operation_cancelled : public std::system_error {
 public:
  explicit operation_cancelled(const char* what = "corio: operation cancelled")
      : std::system_error(std::make_error_code(std::errc::operation_canceled), what) {}
};

}  // namespace corio
