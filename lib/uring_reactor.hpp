// lib/uring_reactor.hpp - the io_uring reactor: one ring per worker.
#pragma once

#include <liburing.h>

#include <atomic>
#include <bitset>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reactor.hpp"

namespace corio::detail {

class provided_buffers;  // lib/uring_buffers.hpp

/// A reactor over one io_uring ring, created on (and used only from) its worker's thread.
///
/// Setup tries IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1: completions are produced
/// only when this thread asks, no inter-processor interrupts), then COOP_TASKRUN (5.19), then no
/// flags, and records which one took. Wakes from other threads are writes to an eventfd that the
/// ring always has a read armed on (io_uring_prep_read), so a wake is never lost: one that comes
/// before the wait makes the wait return at once. Each io_opcode maps to one prepare function
/// (see the table in uring_reactor.cpp); the completion loop is the same for all of them.
/// Cancellation from other threads arrives through cancels() (see cancel_inbox) and becomes one
/// IORING_OP_ASYNC_CANCEL per request at the next poll() or wait() (io_uring_prep_cancel(3)).
/// Reference: io_uring(7), io_uring_setup(2), io_uring_enter(2), liburing 2.3.
class uring_reactor final : public reactor {
 public:
  /// Creates the ring with `entries` submission entries. Throws std::system_error with the errno
  /// of io_uring_queue_init_params (ENOSYS: no io_uring; EPERM: disabled by sysctl or seccomp;
  /// ENOMEM: locked-memory limit) or of a missing required opcode (EOPNOTSUPP).
  /// With `sqpoll_idle` > 0 the ring is set up with IORING_SETUP_SQPOLL and that idle time
  /// (ms, at most 60,000) before its kernel poller sleeps; a kernel that refuses falls back to
  /// the rings without it, and features() says `sqpoll_refused(<error>)`.
  /// With `send_zc_threshold` > 0 (bytes) a send of at least that many bytes goes out as
  /// IORING_OP_SEND_ZC when the probe finds it (Linux 6.0) and CORIO_URING_NO_SEND_ZC=1 was not
  /// set; features() then says `send_zc`. See complete_send_zc for its two completions.
  uring_reactor(unsigned entries, completion_sink sink,
                std::chrono::milliseconds sqpoll_idle = std::chrono::milliseconds::zero(),
                std::size_t send_zc_threshold = 0);
  ~uring_reactor() override;
  uring_reactor(const uring_reactor&) = delete;
  uring_reactor& operator=(const uring_reactor&) = delete;

  void submit(io_request& request) override;
  std::size_t poll() override;
  std::size_t wait(std::optional<std::chrono::nanoseconds> timeout) override;
  void wake() noexcept override;
  bool wake_peer(reactor& target) noexcept override;
  void drain() noexcept override;
  [[nodiscard]] std::size_t in_flight() const noexcept override { return in_flight_.size(); }
  [[nodiscard]] const char* name() const noexcept override { return "io_uring"; }
  [[nodiscard]] std::string features() const override { return features_; }
  bool provides_buffers() noexcept override;
  [[nodiscard]] provided_buffer_stats buffer_stats() const noexcept override;
  [[nodiscard]] std::uint64_t cq_overflows() const noexcept override {
    return ring_.cq.koverflow != nullptr ? IO_URING_READ_ONCE(*ring_.cq.koverflow) : 0;
  }
  void note_buffer_fallback() noexcept override { buffer_fallbacks_.fetch_add(1, std::memory_order_relaxed); }
  [[nodiscard]] bool multishot_accept() const noexcept override { return multishot_accept_; }
  [[nodiscard]] bool multishot_recv() noexcept override { return multishot_recv_ && provides_buffers(); }
  [[nodiscard]] bool links_timeouts() const noexcept override { return link_timeout_; }

 private:
  io_uring_sqe* get_sqe();
  void arm_wake_read();
  std::size_t reap();
  void complete(std::uint64_t user_data, int result, std::uint32_t flags = 0) noexcept;
  /// A completion of a listener's multishot accept (io_request flag accept_multishot): it stays
  /// in flight while the kernel sets IORING_CQE_F_MORE; each one goes to its accept_queue.
  void complete_multishot_accept(io_request& r, int result, unsigned cqe_flags) noexcept;
  /// A completion of a stream's recv_queue request (io_request::recv_multishot or
  /// recv_queue_heap): it stays in flight while the kernel sets IORING_CQE_F_MORE; each one, with
  /// the ring buffer it filled, goes to multishot_recv_completed. A dry ring (ENOBUFS) is
  /// replenished first, as for a lease read.
  void complete_multishot_recv(io_request& r, int result, unsigned cqe_flags) noexcept;
  /// A completion of a send that went out as IORING_OP_SEND_ZC (io_request::zc). Its first CQE
  /// carries the result and, with IORING_CQE_F_MORE, announces a notification CQE
  /// (IORING_CQE_F_NOTIF) that comes once the kernel no longer reads the caller's buffer: the
  /// result waits in the request, which stays in flight (and cancellable: a cancel then finds
  /// nothing to cancel) until the notification, and only then is the request finished, as a plain
  /// send's completion with that result. A result without F_MORE finishes it at once. A socket that
  /// refuses zero copy (EOPNOTSUPP) gets the same request again as a plain send.
  void complete_send_zc(io_request& r, int result, std::uint32_t cqe_flags) noexcept;
  /// Issues an IORING_OP_ASYNC_CANCEL for each request cancellers left in cancels_.
  void submit_cancels() noexcept;
  /// Completes the requests submit() failed before they reached the kernel (an opcode the kernel
  /// lacks, or a fault injected by lib/fault_injection.hpp), as completions.
  std::size_t deliver_early() noexcept;
  std::vector<std::pair<io_request*, int>> early_;  ///< request, -errno: for the next poll()
  std::vector<std::pair<io_request*, int>> early_batch_;
  std::bitset<io_opcode_count> supported_;  ///< by io_opcode: the kernel has its io_uring opcode

  io_uring ring_{};
  completion_sink sink_;
  int wake_fd_ = -1;
  std::uint64_t wake_buffer_ = 0;
  bool wake_armed_ = false;
  bool woken_ = false;  ///< the wake read completed since the last wait() began
  bool draining_ = false;
  bool defer_taskrun_ = false;
  bool sqpoll_ = false;      ///< the ring has a kernel submission poller (IORING_SETUP_SQPOLL)
  int sqpoll_refused_ = 0;   ///< the errno of a refused SQPOLL set-up (0: not asked, or granted)
  bool multishot_accept_ = false;  ///< IORING_ACCEPT_MULTISHOT probed (5.19) and not disabled
  bool multishot_recv_ = false;    ///< IORING_RECV_MULTISHOT probed (6.0) and not disabled
  bool msg_ring_ = false;          ///< IORING_OP_MSG_RING probed (5.18) and not disabled
  bool link_timeout_ = false;      ///< IORING_OP_LINK_TIMEOUT probed (5.5) and not disabled
  bool registered_ring_ = false;   ///< io_uring_register_ring_fd took (5.18); until drain()
  /// Sends of at least this many bytes go out as SEND_ZC (0: never; also 0 when the kernel lacks
  /// IORING_OP_SEND_ZC or CORIO_URING_NO_SEND_ZC=1).
  std::size_t send_zc_threshold_ = 0;
  unsigned unsubmitted_ = 0;
  in_flight_list in_flight_;  // for cancellation at drain()
  std::vector<io_request*> cancel_batch_;  ///< reused by submit_cancels()
  std::string features_;

  // The provided buffer ring (lib/uring_buffers.hpp), set up by the first provides_buffers().
  enum class buffer_ring_state : std::uint8_t { untried, on, off };
  buffer_ring_state buffer_state_ = buffer_ring_state::untried;
  std::atomic<provided_buffers*> buffers_{nullptr};  ///< read by buffer_stats() on any thread
  std::atomic<std::uint64_t> buffer_fallbacks_{0};
};

}  // namespace corio::detail
