// corio/detail/sync_operation.hpp - the awaiter shape every task-parking sync primitive shares.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <coroutine>

#include "corio/detail/park.hpp"
#include "corio/detail/transfer.hpp"
#include "corio/task.hpp"

namespace corio::detail {

/// Base of the awaiters of mutex, shared_mutex, semaphore, event, latch, wait_group and
/// condition_variable: a park_state and one wait_node in the waiting task's frame. The derived
/// awaiter's await_suspend calls park_with(h, primitive-call), where the call takes the
/// primitive's spin lock, either completes the operation at once (returns true: the task goes
/// on without suspending) or queues the node and releases the lock (false: the task stays
/// parked until the primitive claims the node and wakes it). Single use; not movable.
class sync_operation {
 public:
  sync_operation() noexcept = default;
  sync_operation(const sync_operation&) = delete;
  sync_operation& operator=(const sync_operation&) = delete;
  /// A task destroyed while parked (the runtime's shutdown destroys suspended frames) takes its
  /// node off the primitive's queue, since the primitive may outlive the runtime, under the
  /// primitive's lock: a thread that is not a worker (an unlock, a release) may be claiming it.
  ~sync_operation() {
    if (parked_) {
      spin_guard g{*lock_};
      if (node_.linked) queue_->remove(node_);
    }
  }

 protected:
  /// Fills in the park state (throws std::logic_error off a worker, before anything is queued).
  /// `cancellable`: false for a wait that must not end by cancellation (a condition variable
  /// taking its mutex back).
  template <class Promise>
  void prepare(std::coroutine_handle<Promise> h, spin_lock& lock, wait_list& queue, std::int64_t amount = 1,
               bool cancellable = true) {
    lock_ = &lock;
    queue_ = &queue;
    prepare_park(park_, h, binding_of(h), &lock, cancellable ? stop_of(h) : nullptr);
    parked_ = true;  // until settle() (the node may be queued by the primitive call that follows)
    node_.owner = &park_;
    node_.case_index = 1;
    node_.amount = amount;
  }
  /// What await_suspend returns: `h` again when `acquired` (no suspension), else the next local
  /// task. Nothing of the frame is touched after the queueing call returned false.
  static std::coroutine_handle<> next(std::coroutine_handle<> h, bool acquired) noexcept {
    return transfer(acquired ? h : next_after_park());
  }
  /// The hand-off of a primitive whose queued waiters hold back nobody (settle's default).
  struct no_hand_off {
    void operator()(wait_node*& /*woken*/) const noexcept {}
  };

  /// The start of every await_resume: disarms the canceller, and throws operation_cancelled when
  /// the wait was cancelled (a task's cancellation or a timeout's; the operation had no effect:
  /// no lock taken, no unit consumed). A cancelled node still on the queue is taken off under the
  /// primitive's lock, and `hand_off(woken)` runs under that lock next: a primitive whose FIFO
  /// order lets a waiter hold back the ones behind it (a writer at the head of a shared_mutex, a
  /// large semaphore acquire) passes its hand-off, which claims every waiter that can now proceed
  /// onto the `woken` chain; they are woken after the unlock, before the throw
  /// (`queue-head-blocked`). A node that a peer took off already needs nothing: the peer's
  /// hand-off went past it (`peer-unlinks-first`).
  template <class HandOff = no_hand_off>
  void settle(const char* what, HandOff hand_off = {}) {
    parked_ = false;
    disarm_park(park_);
    if (park_.claim.load(std::memory_order_acquire) != park_state::cancelled) return;
    wait_node* woken = nullptr;
    {
      spin_guard g{*lock_};  // a peer may be taking the claimed node off right now
      if (node_.linked) {
        queue_->remove(node_);
        hand_off(woken);
      }
    }
    wake_chain(woken);
    throw_cancelled(park_, what);
  }

  park_state park_{};
  wait_node node_{};
  spin_lock* lock_ = nullptr;   ///< the primitive's lock and queue, for the destructor
  wait_list* queue_ = nullptr;
  bool parked_ = false;  ///< prepared (the node may be queued) and settle() has not run
};

}  // namespace corio::detail
