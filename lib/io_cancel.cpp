// lib/io_cancel.cpp - cancellation of I/O operations (see io_operation in
// corio/detail/io_operation.hpp and cancel_inbox in reactor.hpp).
//
// The protocol, per request r in flight on worker W's reactor:
//   canceller (any thread, while r's task is suspended; stop_state keeps the canceller's memory
//   alive until the call returns): lock W's inbox; old = fetch_or(queued | requested); link r
//   only if !(old & finished); unlock; wake W.
//   W, reaping r for good: old = fetch_or(finished); if (old & queued) lock and unlink r; then
//   schedule r's task. W, in poll()/wait(): take the list (clearing queued) and cancel each
//   request in its ring or io_context; each is still in flight since only W finishes requests.
// Whichever of the two fetch_or comes first decides: a request is never in the list once its
// task may run again.
#include <fmt/format.h>

#include <stdexcept>

#include "corio/detail/io_operation.hpp"
#include "corio/errors.hpp"
#include "runtime_impl.hpp"

namespace corio::detail {

namespace {
/// io_canceller::cancel: hand the request to its owner.
void cancel_io(stop_canceller& sc) noexcept {
  io_request& r = *static_cast<io_canceller&>(sc).request;
  r.cancel_owner->push(r);
}
}  // namespace

void cancel_inbox::push(io_request& r) noexcept {
  bool linked = false;
  {
    std::lock_guard lock{mutex_};
    const std::uint8_t old = r.cancel_flags.fetch_or(io_request::cancel_queued | io_request::cancel_requested,
                                                     std::memory_order_acq_rel);
    if ((old & (io_request::cancel_finished | io_request::cancel_queued)) == 0) {
      r.cancel_prev = nullptr;
      r.cancel_next = head_;
      if (head_ != nullptr) head_->cancel_prev = &r;
      head_ = &r;
      pending_.store(true, std::memory_order_seq_cst);
      linked = true;
    }
  }
  // The reactor (and its worker) outlives the request: frames are destroyed (their io_operation
  // disarming, which waits for this call) before any reactor is.
  if (!linked) return;
  if (waker_.wake != nullptr) waker_.wake(waker_.context);
  else owner_.wake();
}

void cancel_inbox::take(std::vector<io_request*>& out) {
  std::lock_guard lock{mutex_};
  for (io_request* r = head_; r != nullptr;) {
    io_request* next = r->cancel_next;
    r->cancel_flags.fetch_and(static_cast<std::uint8_t>(~io_request::cancel_queued), std::memory_order_acq_rel);
    r->cancel_prev = r->cancel_next = nullptr;
    out.push_back(r);
    ++outstanding_;
    r = next;
  }
  head_ = nullptr;
  pending_.store(false, std::memory_order_relaxed);
}

void cancel_inbox::unlink(io_request& r) noexcept {
  std::lock_guard lock{mutex_};
  if (r.cancel_prev != nullptr) r.cancel_prev->cancel_next = r.cancel_next;
  else if (head_ == &r) head_ = r.cancel_next;
  if (r.cancel_next != nullptr) r.cancel_next->cancel_prev = r.cancel_prev;
  r.cancel_prev = r.cancel_next = nullptr;
}

bool io_operation::submit_cancellable(stop_state& s) {
  worker* w = current_worker();
  if (w == nullptr) throw std::logic_error("corio: corio I/O outside a task on a runtime");
  stop_ = &s;
  canceller_.cancel = &cancel_io;
  canceller_.request = &request_;
  request_.cancel_owner = &w->reactor_->cancels();
  if (!s.arm(canceller_)) {
    // Stop came first: do not wait at all (the task resumes at once and sees ECANCELED).
    request_.cancel_owner = nullptr;
    request_.result = -ECANCELED;
    return false;
  }
  armed_ = true;
  try {
    submit_io(request_);  // the owner's reactor: nothing reaches the kernel before this thread polls
  } catch (...) {
    request_.cancel_owner->finished(request_);
    armed_ = false;
    s.disarm(canceller_);
    throw;
  }
  return true;
}

bool io_operation::link_deadline(io_deadline& d, std::chrono::steady_clock::time_point deadline) noexcept {
  worker* w = current_worker();
  if (w == nullptr || w->runtime().manual_ || !w->reactor_->links_timeouts()) return false;
  switch (request_.opcode) {
    case io_opcode::accept:
    case io_opcode::connect:
    case io_opcode::recv:
    case io_opcode::send:
    case io_opcode::recvmsg:
    case io_opcode::sendmsg:
    case io_opcode::poll:
      break;
    default:
      return false;  // files and eventfd reads: the wheel's timer, as before
  }
  // A deadline that never comes gets no timeout at all (the wheel inserts no timer for it either);
  // one before the clock's epoch cannot be said as a timespec (timeout() handles a deadline that
  // passed already without waiting).
  if (deadline >= w->runtime().end_of_time() || deadline.time_since_epoch().count() < 0) return false;
  const std::int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  d.tv_sec = ns / 1'000'000'000;
  d.tv_nsec = ns % 1'000'000'000;
  d.fired = false;
  request_.deadline = &d;
  return true;
}

std::ptrdiff_t io_operation::cancelled() {
  if (stop_ != nullptr) stop_->observe();  // this task's children are cancelled with it
  if (ec_ == nullptr) throw operation_cancelled(what_, stop_);
  *ec_ = std::make_error_code(std::errc::operation_canceled);
  return -1;
}

}  // namespace corio::detail
