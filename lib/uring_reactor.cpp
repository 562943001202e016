// lib/uring_reactor.cpp - the io_uring reactor (see uring_reactor.hpp).
#include "uring_reactor.hpp"

#include "corio/detail/accept_queue.hpp"
#include "corio/detail/recv_queue.hpp"
#include "corio/time.hpp"
#include "reactor_factory.hpp"
#include "uring_buffers.hpp"
#if CORIO_FAULT_INJECTION
#include "fault_injection.hpp"
#endif

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <string_view>
#include <cstring>
#include <system_error>
#include <type_traits>

namespace corio::detail {
namespace {

static_assert(sizeof(socklen_t) == sizeof(std::uint32_t), "io_request stores socklen_t as uint32_t");

// user_data values that are not io_request addresses (those are at least 8-aligned and non-null).
constexpr std::uint64_t tag_ignore = 0;  // cancellation requests: their own result is not needed
constexpr std::uint64_t tag_wake = 1;    // the eventfd read that carries wake()
// A wake another worker's ring posted into this one (IORING_OP_MSG_RING). The sender's own
// completion comes only when the message failed (IOSQE_CQE_SKIP_SUCCESS), tagged with the target
// reactor's address | tag_msg_wake: the sender then wakes the target through its eventfd.
constexpr std::uint64_t tag_msg_wake = 2;
// The IORING_OP_LINK_TIMEOUT linked behind a request with a deadline (io_request::deadline). Its
// CQE (-ETIME when it fired, -ECANCELED or -EALREADY when the request ended first) may come before
// or after the request's own, so it names no request: only the count of fired ones is taken.
constexpr std::uint64_t tag_link_timeout = 3;
constexpr std::uint64_t tag_last = tag_link_timeout;  // user_data above it: an io_request
constexpr std::uint64_t tag_bits = 7;  // io_request and reactor addresses are 8-aligned

// io_deadline is handed to the kernel as its struct __kernel_timespec, an absolute time on
// CLOCK_MONOTONIC (IORING_TIMEOUT_ABS without BOOTTIME or REALTIME), which is steady_clock's.
static_assert(sizeof(__kernel_timespec) == 16 && alignof(io_deadline) >= alignof(__kernel_timespec));
static_assert(offsetof(io_deadline, tv_sec) == offsetof(__kernel_timespec, tv_sec) &&
              sizeof(io_deadline::tv_sec) == sizeof(__kernel_timespec::tv_sec));
static_assert(offsetof(io_deadline, tv_nsec) == offsetof(__kernel_timespec, tv_nsec) &&
              sizeof(io_deadline::tv_nsec) == sizeof(__kernel_timespec::tv_nsec));
static_assert(std::is_same_v<corio::clock, std::chrono::steady_clock>,
              "linked timeouts assume corio::clock is steady_clock (CLOCK_MONOTONIC on Linux)");

/// True when environment variable `name` is "1" (the internal knobs that force a fallback).
bool knob_set(const char* name) noexcept {
  const char* env = std::getenv(name);
  return env != nullptr && std::strcmp(env, "1") == 0;
}

// One prepare function per io_opcode, indexed by it: the reactor never switches on the kind.
using prepare_fn = void (*)(io_uring_sqe*, io_request&) noexcept;

void prepare_accept(io_uring_sqe* sqe, io_request& r) noexcept {
  if ((r.flags & accept_multishot) != 0) {  // a listener's accept_queue: no address (one per shot)
    io_uring_prep_multishot_accept(sqe, r.fd, nullptr, nullptr, SOCK_CLOEXEC);
    return;
  }
  io_uring_prep_accept(sqe, r.fd, static_cast<sockaddr*>(r.address),
                       reinterpret_cast<socklen_t*>(&r.address_length), SOCK_CLOEXEC);
}
void prepare_connect(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_connect(sqe, r.fd, static_cast<const sockaddr*>(r.address), r.address_length);
}
void prepare_recv(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_recv(sqe, r.fd, r.buffer, r.length, static_cast<int>(r.flags));
}
void prepare_send(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_send(sqe, r.fd, r.buffer, r.length, static_cast<int>(r.flags | MSG_NOSIGNAL));
}

void prepare_read(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_read(sqe, r.fd, r.buffer, static_cast<unsigned>(r.length), 0);
}
void prepare_poll(io_uring_sqe* sqe, io_request& r) noexcept { io_uring_prep_poll_add(sqe, r.fd, r.flags); }
void prepare_recvmsg(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_recvmsg(sqe, r.fd, static_cast<msghdr*>(r.address), r.flags);
}
void prepare_sendmsg(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_sendmsg(sqe, r.fd, static_cast<const msghdr*>(r.address), r.flags | MSG_NOSIGNAL);
}
void prepare_read_at(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_read(sqe, r.fd, r.buffer, static_cast<unsigned>(r.length), static_cast<__u64>(r.offset));
}
void prepare_write_at(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_write(sqe, r.fd, r.buffer, static_cast<unsigned>(r.length), static_cast<__u64>(r.offset));
}
void prepare_fsync(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_fsync(sqe, r.fd, (r.flags & fsync_datasync) != 0 ? IORING_FSYNC_DATASYNC : 0);
}
void prepare_openat(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_openat(sqe, r.fd, static_cast<const char*>(r.address), static_cast<int>(r.flags),
                       static_cast<mode_t>(r.length));
}
void prepare_statx(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_statx(sqe, r.fd, static_cast<const char*>(r.address), static_cast<int>(r.flags),
                      static_cast<unsigned>(r.length), static_cast<struct statx*>(r.buffer));
}
void prepare_close(io_uring_sqe* sqe, io_request& r) noexcept { io_uring_prep_close(sqe, r.fd); }
void prepare_splice(io_uring_sqe* sqe, io_request& r) noexcept {
  io_uring_prep_splice(sqe, r.fd, r.offset, static_cast<int>(r.address_length), -1,
                       static_cast<unsigned>(r.length), r.flags);
}

// Indexed by io_opcode: the order of the enumeration (checked below).
constexpr std::array<prepare_fn, io_opcode_count> prepare_table{
    prepare_accept, prepare_connect, prepare_recv,    prepare_send,    prepare_read,
    prepare_poll,   prepare_recvmsg, prepare_sendmsg, prepare_read_at, prepare_write_at,
    prepare_fsync,  prepare_openat,  prepare_statx,   prepare_close,   prepare_splice};
// The io_uring opcode behind each io_opcode, in the same order: the probe at setup records which
// ones this kernel has; a request of a missing one fails with EOPNOTSUPP instead of reaching it.
constexpr std::array<int, io_opcode_count> uring_opcode_of{
    IORING_OP_ACCEPT,   IORING_OP_CONNECT, IORING_OP_RECV,    IORING_OP_SEND,  IORING_OP_READ,
    IORING_OP_POLL_ADD, IORING_OP_RECVMSG, IORING_OP_SENDMSG, IORING_OP_READ,  IORING_OP_WRITE,
    IORING_OP_FSYNC,    IORING_OP_OPENAT,  IORING_OP_STATX,   IORING_OP_CLOSE, IORING_OP_SPLICE};
static_assert(static_cast<std::size_t>(io_opcode::accept) == 0);
static_assert(static_cast<std::size_t>(io_opcode::connect) == 1);
static_assert(static_cast<std::size_t>(io_opcode::recv) == 2);
static_assert(static_cast<std::size_t>(io_opcode::send) == 3);
static_assert(static_cast<std::size_t>(io_opcode::read) == 4);
static_assert(static_cast<std::size_t>(io_opcode::poll) == 5);
static_assert(static_cast<std::size_t>(io_opcode::recvmsg) == 6);
static_assert(static_cast<std::size_t>(io_opcode::sendmsg) == 7);
static_assert(static_cast<std::size_t>(io_opcode::read_at) == 8);
static_assert(static_cast<std::size_t>(io_opcode::write_at) == 9);
static_assert(static_cast<std::size_t>(io_opcode::fsync) == 10);
static_assert(static_cast<std::size_t>(io_opcode::openat) == 11);
static_assert(static_cast<std::size_t>(io_opcode::statx) == 12);
static_assert(static_cast<std::size_t>(io_opcode::close) == 13);
static_assert(static_cast<std::size_t>(io_opcode::splice) == 14);

[[noreturn]] void throw_errno(int error, const char* what) {
  throw std::system_error(error, std::system_category(), what);
}

// The opcodes this reactor needs, with the kernel release that brought them, for the message.
struct required_op {
  int opcode;
  const char* name;
};
constexpr std::array<required_op, 6> required_ops{{
    {IORING_OP_ACCEPT, "ACCEPT"},
    {IORING_OP_CONNECT, "CONNECT"},
    {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},
    {IORING_OP_READ, "READ"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
}};

std::atomic<int> setup_failure_for_testing{0};

}  // namespace

void set_uring_setup_failure(int error) noexcept {
  setup_failure_for_testing.store(error, std::memory_order_seq_cst);
}

uring_reactor::uring_reactor(unsigned entries, completion_sink sink, std::chrono::milliseconds sqpoll_idle,
                             std::size_t send_zc_threshold)
    : sink_(sink) {
  if (const int error = setup_failure_for_testing.load(std::memory_order_seq_cst); error != 0) {
    throw_errno(error, "corio: io_uring_queue_init_params failed (io_uring unavailable?)");
  }
#if CORIO_FAULT_INJECTION
  if (const int error = fault::on_uring_setup(); error != 0) {
    throw_errno(error, "corio: io_uring_queue_init_params failed (io_uring unavailable?)");
  }
#endif
  entries = std::clamp(entries, 8u, 32768u);
  struct attempt {
    unsigned flags;
    const char* name;
  };
  // Newest first; each older kernel rejects the flags it does not know with EINVAL.
  const std::array<attempt, 3> attempts{{
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
       "single_issuer,defer_taskrun"},
      {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL, "coop_taskrun"},
      {0, "plain"},
  }};
  int rc = -EINVAL;
  if (sqpoll_idle > std::chrono::milliseconds::zero()) {
    // SQPOLL (runtime_options::sqpoll_idle): a kernel thread polls this ring's submission queue,
    // so submitting needs no system call while it is awake. It excludes DEFER_TASKRUN (the
    // kernel refuses the pair); COOP_TASKRUN is kept where the kernel has it. Any refusal
    // (EPERM before Linux 5.11 without CAP_SYS_NICE, EINVAL) falls back to the rings below.
    const unsigned idle_ms = static_cast<unsigned>(std::min<std::int64_t>(sqpoll_idle.count(), 60'000));
    const std::array<attempt, 2> sq_attempts{{
        {IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
         "sqpoll,single_issuer,coop_taskrun"},
        {IORING_SETUP_SQPOLL, "sqpoll"},
    }};
    for (const attempt& a : sq_attempts) {
      io_uring_params params{};
      params.flags = a.flags | IORING_SETUP_CQSIZE;
      params.cq_entries = entries * 2;
      params.sq_thread_idle = idle_ms;
      rc = io_uring_queue_init_params(entries, &ring_, &params);
      if (rc == 0) {
        features_ = a.name;
        sqpoll_ = true;
        if ((params.features & IORING_FEAT_NODROP) == 0) features_ += ",cq_may_drop";
        break;
      }
    }
    if (rc != 0) sqpoll_refused_ = -rc;
  }
  for (const attempt& a : attempts) {
    if (sqpoll_) break;
    io_uring_params params{};
    params.flags = a.flags | IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 2;
    rc = io_uring_queue_init_params(entries, &ring_, &params);
    if (rc == 0) {
      features_ = a.name;
      defer_taskrun_ = (a.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      if ((params.features & IORING_FEAT_NODROP) == 0) features_ += ",cq_may_drop";
      if (sqpoll_refused_ != 0) features_ += fmt::format(",sqpoll_refused({})", std::strerror(sqpoll_refused_));
      break;
    }
    if (rc != -EINVAL) break;  // ENOSYS, EPERM, ENOMEM: no flag combination will help
  }
  if (rc != 0) throw_errno(-rc, "corio: io_uring_queue_init_params failed (io_uring unavailable?)");

  supported_.set();  // no probe (before Linux 5.6): assume every opcode; the kernel says EINVAL
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
    for (const required_op& op : required_ops) {
      if (io_uring_opcode_supported(probe, op.opcode) == 0) {
        io_uring_free_probe(probe);
        io_uring_queue_exit(&ring_);
        throw std::system_error(EOPNOTSUPP, std::system_category(),
                                fmt::format("corio: this kernel's io_uring lacks IORING_OP_{}", op.name));
      }
    }
    for (std::size_t i = 0; i < io_opcode_count; ++i) {
      supported_[i] = io_uring_opcode_supported(probe, uring_opcode_of[i]) != 0;
    }
    // IORING_ACCEPT_MULTISHOT has no opcode of its own: it came in Linux 5.19 with
    // IORING_OP_SOCKET, which the probe does report.
    multishot_accept_ = io_uring_opcode_supported(probe, IORING_OP_SOCKET) != 0;
    msg_ring_ = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
    link_timeout_ = io_uring_opcode_supported(probe, IORING_OP_LINK_TIMEOUT) != 0;
    if (io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0) {
      send_zc_threshold_ = send_zc_threshold;
      // IORING_RECV_MULTISHOT has no opcode of its own either: it came in Linux 6.0 with SEND_ZC.
      multishot_recv_ = true;
    }
    io_uring_free_probe(probe);
  }

  // CORIO_URING_NO_BUFRING=1 turns the provided buffer ring off: lease reads use heap buffers.
  if (knob_set("CORIO_URING_NO_BUFRING")) buffer_state_ = buffer_ring_state::off;
  // A registered ring descriptor (Linux 5.18): each io_uring_enter skips the fget/fput of the
  // ring's file. Per thread: this one, the ring's only issuer; drain() unregisters it here too,
  // so that the destructor (on the runtime's thread) has nothing to unregister.
  if (!knob_set("CORIO_URING_NO_REGISTERED_RING") && io_uring_register_ring_fd(&ring_) == 1) {
    registered_ring_ = true;
    features_ += ",registered_ring";
  }
  // The plain one-shot accept and the eventfd wake, forced (for tests and comparisons): read once
  // per ring.
  if (knob_set("CORIO_URING_NO_MULTISHOT")) multishot_accept_ = false;
  if (knob_set("CORIO_URING_NO_MSG_RING")) msg_ring_ = false;
  if (knob_set("CORIO_URING_NO_MULTISHOT_RECV") || buffer_state_ == buffer_ring_state::off) multishot_recv_ = false;
  if (multishot_accept_) features_ += ",multishot_accept";
  if (multishot_recv_) features_ += ",multishot_recv";
  if (msg_ring_) features_ += ",msg_ring";
  // Timeouts on the worker's wheel only (for tests and comparisons): read once per ring.
  // Opt-in: measured slower than the wheel's timer when the deadline does not fire (0.88-0.91x
  // round trips in benchmarks/programs/link_timeout_bench.cpp; benchmarks/RESULTS.md).
  if (!knob_set("CORIO_URING_LINK_TIMEOUT")) link_timeout_ = false;
  if (link_timeout_) features_ += ",link_timeout";
  // Plain sends forced (for tests and comparisons), whatever the threshold: read once per ring.
  if (knob_set("CORIO_URING_NO_SEND_ZC")) send_zc_threshold_ = 0;
  if (send_zc_threshold_ != 0) features_ += ",send_zc";

  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const int error = errno;
    io_uring_queue_exit(&ring_);
    throw_errno(error, "corio: eventfd for the reactor's wake-ups");
  }
  arm_wake_read();
}

uring_reactor::~uring_reactor() {
  io_uring_queue_exit(&ring_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  // After the ring is gone: leases still held keep the buffer memory until they are released.
  if (provided_buffers* b = buffers_.load(std::memory_order_relaxed)) b->detach();
}

bool uring_reactor::provides_buffers() noexcept {
  if (buffer_state_ == buffer_ring_state::untried) {
    provided_buffers* b = provided_buffers::create(ring_, 0, current_buffer_ring_config());
    buffers_.store(b, std::memory_order_release);
    buffer_state_ = b != nullptr ? buffer_ring_state::on : buffer_ring_state::off;
  }
  return buffer_state_ == buffer_ring_state::on;
}

provided_buffer_stats uring_reactor::buffer_stats() const noexcept {
  provided_buffer_stats s;
  s.fallbacks = buffer_fallbacks_.load(std::memory_order_relaxed);
  if (const provided_buffers* b = buffers_.load(std::memory_order_acquire)) {
    s.buffers = b->buffers();
    s.in_use = b->in_use();
    s.enobufs = b->enobufs();
    s.grows = b->grows();
  }
  return s;
}

io_uring_sqe* uring_reactor::get_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // Submission queue full: push it to the kernel and take a fresh entry.
    counters_->enters.add();
    const int rc = io_uring_submit(&ring_);
    if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) throw_errno(-rc, "corio: io_uring_submit");
    unsubmitted_ = 0;
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) throw_errno(EBUSY, "corio: io_uring submission queue full");
  }
  ++unsubmitted_;
  return sqe;
}

void uring_reactor::arm_wake_read() {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_buffer_, sizeof wake_buffer_, 0);
  io_uring_sqe_set_data64(sqe, tag_wake);
  wake_armed_ = true;
}

void uring_reactor::submit(io_request& request) {
  if (!supported_[static_cast<std::size_t>(request.opcode)]) [[unlikely]] {
    // An optional opcode this kernel lacks (OPENAT and STATX came in 5.6, SPLICE in 5.7): the
    // next poll() completes the request with EOPNOTSUPP, as a completion.
    early_.emplace_back(&request, -EOPNOTSUPP);
    in_flight_.link(request);
    return;
  }
#if CORIO_FAULT_INJECTION
  const fault::decision fault = fault::on_submit(request);
  if (fault.error != 0) {  // nothing reaches the kernel; the next poll() completes it with -error
    early_.emplace_back(&request, -fault.error);
    in_flight_.link(request);
    return;
  }
#endif
  // A request with a deadline goes out as two entries, itself with IOSQE_IO_LINK and then its
  // link timeout, which must reach the kernel in the same submission (a link timeout submitted
  // alone is refused, and the request would wait without its deadline): room for both first.
  const bool linked = request.deadline != nullptr && link_timeout_;
  if (linked && io_uring_sq_space_left(&ring_) < 2) {
    counters_->enters.add();
    const int rc = io_uring_submit(&ring_);
    if (rc < 0 && rc != -EBUSY && rc != -EAGAIN) throw_errno(-rc, "corio: io_uring_submit");
    unsubmitted_ = 0;
    if (io_uring_sq_space_left(&ring_) < 2) throw_errno(EBUSY, "corio: io_uring submission queue full");
  }
  io_uring_sqe* sqe = get_sqe();
  if (request.opcode == io_opcode::send && send_zc_threshold_ != 0 && request.length >= send_zc_threshold_ &&
      request.zc != io_request::zc_refused) {
    // Zero copy: the kernel pins the caller's pages; complete_send_zc waits for its notification.
    io_uring_prep_send_zc(sqe, request.fd, request.buffer, request.length,
                          static_cast<int>(request.flags | MSG_NOSIGNAL), 0);
    request.zc = io_request::zc_sent;
    counters_->send_zc.add();
  } else {
    prepare_table[static_cast<std::size_t>(request.opcode)](sqe, request);
  }
  if (request.provided == io_request::provided_select) {
    buffers_.load(std::memory_order_relaxed)->prepare(sqe);
  } else if (request.provided == io_request::recv_multishot) {
    // A stream's recv_queue: one receive that stays armed, each completion in a ring buffer.
    buffers_.load(std::memory_order_relaxed)->prepare(sqe);
    sqe->ioprio |= IORING_RECV_MULTISHOT;
    counters_->multishot_recv_arms.add();
  }
#if CORIO_FAULT_INJECTION
  // A short transfer: the kernel is given fewer bytes (recv, send and read keep their length in
  // sqe->len); the request keeps its own length.
  if (fault.length < request.length) sqe->len = static_cast<unsigned>(fault.length);
#endif
  io_uring_sqe_set_data(sqe, &request);
  if (linked) {
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe* timeout = get_sqe();  // cannot flush: room for two was made above
    io_uring_prep_link_timeout(timeout, reinterpret_cast<__kernel_timespec*>(request.deadline), IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(timeout, tag_link_timeout);
    counters_->linked_timeouts.add();
  }
  in_flight_.link(request);
  if (request.opcode == io_opcode::accept && (request.flags & accept_multishot) != 0) counters_->multishot_arms.add();
}

std::size_t uring_reactor::deliver_early() noexcept {
  if (early_.empty()) return 0;
  // Completing may resubmit, and a resubmission may be failed again: that one waits for the next
  // poll(), as a kernel completion would.
  early_batch_.swap(early_);
  for (const auto& [r, result] : early_batch_) complete(reinterpret_cast<std::uintptr_t>(r), result);
  const std::size_t n = early_batch_.size();
  early_batch_.clear();
  return n;
}

void uring_reactor::complete(std::uint64_t user_data, int result, std::uint32_t flags) noexcept {
  if (user_data == tag_ignore) return;
  if (user_data == tag_wake) {
    wake_armed_ = false;
    woken_ = true;                    // a wait() in progress must return even though no request finished
    if (!draining_) arm_wake_read();  // the eventfd is re-armed for the next wake()
    return;
  }
  if (user_data == tag_msg_wake) {
    woken_ = true;
    return;
  }
  if (user_data == tag_link_timeout) {
    if (result == -ETIME) counters_->linked_timeouts_fired.add();
    return;
  }
  if ((user_data & tag_bits) == tag_msg_wake) [[unlikely]] {
    // A MSG_RING this ring sent failed: the target gets its wake through the eventfd instead.
    reinterpret_cast<uring_reactor*>(static_cast<std::uintptr_t>(user_data & ~tag_bits))->wake();
    return;
  }
  auto& r = *reinterpret_cast<io_request*>(static_cast<std::uintptr_t>(user_data));
  if (r.opcode == io_opcode::accept && (r.flags & accept_multishot) != 0) [[unlikely]] {
    complete_multishot_accept(r, result, flags);
    return;
  }
  if (r.provided >= io_request::recv_multishot) {
    complete_multishot_recv(r, result, flags);
    return;
  }
  if (r.zc == io_request::zc_sent || r.zc == io_request::zc_result_in) [[unlikely]] {
    complete_send_zc(r, result, flags);
    return;
  }
  in_flight_.unlink(r);
  if (r.provided == io_request::provided_select) {
    provided_buffers* b = buffers_.load(std::memory_order_relaxed);
    if ((flags & IORING_CQE_F_BUFFER) != 0) {
      b->take(r, result, static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT));
    } else if (result == -ENOBUFS && !draining_ && !r.cancel_was_requested() && b->replenish()) {
      // The ring ran dry and has buffers again (returned ones, or it grew): the bytes are still
      // in the socket, so the same receive is tried again. If it cannot be, the lease read falls
      // back to a heap buffer (its on_complete hook).
      try {
        submit(r);
        return;
      } catch (...) {
      }
    }
  }
  finish_request(r, result, draining_, sink_, cancels_);
}

void uring_reactor::complete_multishot_accept(io_request& r, int result, unsigned cqe_flags) noexcept {
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    // The request ended: off the in-flight list and out of the cancel inbox (a cancel coming
    // later does nothing) before the queue may arm it again.
    in_flight_.unlink(r);
    cancels_.finished(r);
  }
  if (result >= 0) counters_->multishot_accepts.add();
  multishot_accept_completed(r, result, more, draining_);
}

void uring_reactor::complete_multishot_recv(io_request& r, int result, unsigned cqe_flags) noexcept {
  const bool more = (cqe_flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    // The request ended: off the in-flight list and out of the cancel inbox (a cancel coming
    // later does nothing) before the queue may arm it again.
    in_flight_.unlink(r);
    cancels_.finished(r);
  }
  recv_chunk chunk{.result = result};
  bool refilled = false;
  if (r.provided == io_request::recv_multishot) {
    provided_buffers* b = buffers_.load(std::memory_order_relaxed);
    if ((cqe_flags & IORING_CQE_F_BUFFER) != 0) {
      const auto id = static_cast<std::uint16_t>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
      if (std::byte* data = b->lend(id, result)) {
        chunk.ring = b;
        chunk.data = data;
        chunk.id = id;
        counters_->multishot_recvs.add();
      }
    } else if (result == -ENOBUFS && !draining_) {
      refilled = b->replenish();  // puts back returned buffers, or grows the ring
    }
  }
  multishot_recv_completed(r, chunk, more, draining_, refilled);
}

void uring_reactor::complete_send_zc(io_request& r, int result, std::uint32_t cqe_flags) noexcept {
  if ((cqe_flags & IORING_CQE_F_NOTIF) != 0) {
    result = r.result;  // the kernel is done with the buffer: the result that came first
    // Cancellable again, should write_all's hook send the rest: unless a cancel came meanwhile
    // (then `requested` is set, perhaps `queued` too without a link, and the hook stops; the
    // request stays finished for the inbox).
    std::uint8_t expected = io_request::cancel_finished;
    r.cancel_flags.compare_exchange_strong(expected, 0, std::memory_order_acq_rel);
  } else if ((cqe_flags & IORING_CQE_F_MORE) != 0) {
    // The result, before the notification: the buffer is still the kernel's, so the request stays
    // in flight (drain waits for it too) and the task does not run yet. Nothing is left to cancel:
    // it leaves the cancel inbox now, so that a cancelled send does not hold the manual clock
    // (cancel_inbox::outstanding) while the notification waits for the peer to read.
    r.result = result;
    r.zc = io_request::zc_result_in;
    cancels_.finished(r);
    return;
  }
  in_flight_.unlink(r);
  r.zc = 0;  // a write_all that resubmits the rest starts afresh
  if (result == -EOPNOTSUPP && !draining_ && !r.cancel_was_requested()) {
    // Not a socket that can send zero copy (a Unix stream): the same send, copied.
    r.zc = io_request::zc_refused;
    try {
      submit(r);
      return;
    } catch (...) {
    }
  }
  finish_request(r, result, draining_, sink_, cancels_);
}

void uring_reactor::submit_cancels() noexcept {
  cancel_batch_.clear();
  try {
    cancels_.take(cancel_batch_);
  } catch (...) {
    return;  // out of memory for the batch: the requests stay queued for the next poll
  }
  for (io_request* r : cancel_batch_) {
    // By user_data (every kernel with ASYNC_CANCEL): the request's own completion, -ECANCELED or
    // its real result when it won the race, is reaped and delivered as usual.
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      unsubmitted_ = 0;
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) {  // cannot happen after a submit; keep the request cancellable anyway
        cancels_.push(*r);
        continue;
      }
    }
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(r), 0);
    io_uring_sqe_set_data64(sqe, tag_ignore);
    ++unsubmitted_;
  }
}

std::size_t uring_reactor::reap() {
  // Copy a batch out of the completion queue before handling it: handlers may submit.
  std::array<io_uring_cqe*, 64> cqes{};
  struct completion {
    std::uint64_t user_data;
    int result;
    std::uint32_t flags;
  };
  std::array<completion, 64> batch{};
  std::size_t finished = 0;
#if CORIO_FAULT_INJECTION
  if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0) fault::note_cq_overflow();
#endif
  for (;;) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes.data(), static_cast<unsigned>(cqes.size()));
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) batch[i] = {cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) {
      complete(batch[i].user_data, batch[i].result, batch[i].flags);
      finished += batch[i].user_data > tag_last ? 1 : 0;
    }
    if (n < cqes.size()) break;
  }
  return finished;
}

std::size_t uring_reactor::poll() {
  if (cancels_.pending()) [[unlikely]]
    submit_cancels();
  if (provided_buffers* b = buffers_.load(std::memory_order_relaxed)) b->drain_returns();
  std::size_t finished = deliver_early();
  // Nothing submitted and nothing in flight: only the wake read can complete, and wait() reaps
  // that one. Skip touching the rings at all (the common case of compute-only work).
  if (unsubmitted_ == 0 && in_flight_.size() == 0) return finished;
  // With DEFER_TASKRUN completions are posted only when this thread enters the kernel asking for
  // events; without it the kernel posts them on its own and only queued submissions need a call.
  if (sqpoll_) {
    // The kernel's poller takes the entries; io_uring_submit enters only to wake it when it slept
    // (IORING_SQ_NEED_WAKEUP), and completions appear in the ring without a call.
    if (unsubmitted_ != 0) {
      if ((IO_URING_READ_ONCE(*ring_.sq.kflags) & IORING_SQ_NEED_WAKEUP) != 0) counters_->enters.add();
      const int rc = io_uring_submit(&ring_);
      if (rc >= 0) unsubmitted_ = 0;
    }
  } else if (unsubmitted_ != 0 || defer_taskrun_) {
    counters_->enters.add();
    const int rc = io_uring_submit_and_get_events(&ring_);
    if (rc >= 0) unsubmitted_ = 0;
  }
  return finished + reap();
}

std::size_t uring_reactor::wait(std::optional<std::chrono::nanoseconds> timeout) {
  // A wake reaped by this poll (a wake() that came before the wait) must end the wait too: the
  // wake-read completion is not a finished request, so the count alone would miss it and the
  // worker would sleep through its wake (found by test/sched_stress_tests.cpp).
  woken_ = false;
  if (std::size_t n = poll(); n != 0 || woken_) return n;
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{};
  __kernel_timespec* tsp = nullptr;
  if (timeout) {
    const auto ns = std::max<std::int64_t>(timeout->count(), 0);
    ts.tv_sec = ns / 1'000'000'000;
    ts.tv_nsec = ns % 1'000'000'000;
    tsp = &ts;
  }
  counters_->enters.add();
  const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
  if (rc >= 0) unsubmitted_ = 0;
  return reap();
}

void uring_reactor::wake() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is saturated: a wake is pending anyway.
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

bool uring_reactor::wake_peer(reactor& target) noexcept {
  if (!msg_ring_ || draining_ || std::strcmp(target.name(), "io_uring") != 0) return false;
  auto& peer = static_cast<uring_reactor&>(target);
  if (!peer.msg_ring_) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return false;
  io_uring_prep_msg_ring(sqe, peer.ring_.ring_fd, 0, tag_msg_wake, 0);
  io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(&peer) | tag_msg_wake);
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  // Sent now (with whatever else is queued), as an eventfd write would be: the wake cannot wait
  // for this worker's next poll.
  counters_->enters.add();
  const int rc = io_uring_submit(&ring_);
  if (rc < 0) return false;  // the entry stays queued and goes later: a spare wake, harmless
  unsubmitted_ = 0;
  counters_->msg_ring_wakes.add();
  return true;
}

void uring_reactor::drain() noexcept {
  draining_ = true;
  // Ask the kernel to cancel each request in flight (by its user_data: works on every kernel with
  // ASYNC_CANCEL, unlike IORING_ASYNC_CANCEL_ANY), and the wake read.
  auto cancel = [this](std::uint64_t user_data) noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) return;
    }
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, tag_ignore);
    ++unsubmitted_;
  };
  for (io_request* r = in_flight_.front(); r != nullptr; r = r->next)
    cancel(reinterpret_cast<std::uintptr_t>(r));
  if (wake_armed_) cancel(tag_wake);
  deliver_early();  // failed without reaching the kernel: nothing to wait for
  // Reap until every request is back. Cancellation of socket operations completes at once; the
  // bound only guards against a kernel that never answers (then the ring's teardown in the
  // destructor waits for the kernel instead).
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((in_flight_.size() != 0 || wake_armed_) && std::chrono::steady_clock::now() < give_up) {
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 100'000'000};
    io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    unsubmitted_ = 0;
    reap();
  }
  if (in_flight_.size() != 0) {
    fmt::print(stderr, "corio: {} io_uring requests did not complete after cancellation\n",
               in_flight_.size());
  }
  // The worker is leaving this thread: from now on every lease release goes through the return
  // queue, which nobody drains (the ring is about to go).
  if (provided_buffers* b = buffers_.load(std::memory_order_relaxed)) b->leave_owner_thread();
  if (registered_ring_) {  // on the thread that registered it (see the constructor)
    io_uring_unregister_ring_fd(&ring_);
    registered_ring_ = false;
  }
}

}  // namespace corio::detail
