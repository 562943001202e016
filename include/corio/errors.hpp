// corio/errors.hpp - the exceptions corio throws beyond std::system_error.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cerrno>
#include <system_error>

#include "corio/detail/stop_state.hpp"

namespace corio {

/// Thrown when an operation was cancelled before it took effect (the task's stop was requested:
/// join_handle::cancel, a task_group or when_any cancelling siblings, runtime shutdown); its code
/// is `std::errc::operation_canceled` (ECANCELED), so code that catches std::system_error sees it
/// as such. Also thrown by awaiting the join_handle of a task the runtime destroyed at shutdown.
///
/// It records which stop ended the operation (cancelled_by()): corio::timeout uses it to tell its
/// own deadline from an outcome of the awaited operation that happens to be a cancellation (a
/// joined task that ended cancelled, say), which it returns as it is.
class CORIO_API operation_cancelled : public std::system_error {
 public:
  /// Attributed to the stop state of the task running on the calling thread (none off a task).
  explicit operation_cancelled(const char* what = "corio: operation cancelled")
      : operation_cancelled(what, detail::current_stop()) {}
  /// Attributed to `cancelled_by`, the stop state whose stop ended the operation (null: unknown).
  operation_cancelled(const char* what, const void* cancelled_by)
      : std::system_error(std::make_error_code(std::errc::operation_canceled), what), cancelled_by_(cancelled_by) {}
  /// The address of the stop state (a task's, or a timeout's scope) whose stop this cancellation
  /// answered; null when unknown. An identity to compare, never to dereference.
  [[nodiscard]] const void* cancelled_by() const noexcept { return cancelled_by_; }
  /// Attributes the cancellation to `state` instead: what passes a stop on from one stop state to
  /// another (when_all's children, a timeout's scope) gives it back to the one that was stopped.
  void set_cancelled_by(const void* state) noexcept { cancelled_by_ = state; }

 private:
  const void* cancelled_by_;
};

/// Thrown by corio::timeout and corio::deadline when the time ran out before the awaited
/// operation took effect. An operation_cancelled (so `catch (operation_cancelled&)` sees both):
/// code() is ECANCELED as for every cancellation, timeout_code() is ETIMEDOUT.
class timed_out : public operation_cancelled {
 public:
  /// A timeout with the message `what`, attributed to no stop state.
  explicit timed_out(const char* what = "corio: timed out") : operation_cancelled(what) {}
  /// Attributed to `cancelled_by` (see operation_cancelled::cancelled_by).
  timed_out(const char* what, const void* cancelled_by) : operation_cancelled(what, cancelled_by) {}
  /// ETIMEDOUT, where the base reports ECANCELED.
  [[nodiscard]] std::error_code timeout_code() const noexcept { return std::make_error_code(std::errc::timed_out); }
};

}  // namespace corio
