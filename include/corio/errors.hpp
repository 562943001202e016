// corio/errors.hpp - the exceptions corio throws beyond std::system_error.
#pragma once

#include <cerrno>
#include <system_error>

namespace corio {

/// Thrown when an operation was cancelled before it took effect (the task's stop was requested:
/// join_handle::cancel, a task_group or when_any cancelling siblings, runtime shutdown); its code
/// is `std::errc::operation_canceled` (ECANCELED), so code that catches std::system_error sees it
/// as such. Also thrown by awaiting the join_handle of a task the runtime destroyed at shutdown.
class operation_cancelled : public std::system_error {
 public:
  explicit operation_cancelled(const char* what = "corio: operation cancelled")
      : std::system_error(std::make_error_code(std::errc::operation_canceled), what) {}
};

/// Thrown by corio::timeout and corio::deadline when the time ran out before the awaited
/// operation took effect. An operation_cancelled (so `catch (operation_cancelled&)` sees both):
/// code() is ECANCELED as for every cancellation, timeout_code() is ETIMEDOUT.
class timed_out : public operation_cancelled {
 public:
  explicit timed_out(const char* what = "corio: timed out") : operation_cancelled(what) {}
  /// ETIMEDOUT, where the base reports ECANCELED.
  [[nodiscard]] std::error_code timeout_code() const noexcept { return std::make_error_code(std::errc::timed_out); }
};

}  // namespace corio
