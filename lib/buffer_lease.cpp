// lib/buffer_lease.cpp - reads that hand over their buffer: corio::buffer_lease and
// net::read_lease_operation (see corio/buffer_lease.hpp and corio/net/tcp_stream.hpp).
#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>
#include <utility>

#include "corio/buffer_lease.hpp"
#include "corio/net/tcp_stream.hpp"
#include "reactor.hpp"
#include "worker.hpp"
#if CORIO_HAS_URING
#include "uring_buffers.hpp"
#endif

namespace corio {

namespace detail {
void release_ring_buffer([[maybe_unused]] void* ring, [[maybe_unused]] std::uint16_t id) noexcept {
#if CORIO_HAS_URING
  provided_buffers::release(static_cast<provided_buffers*>(ring), id);
#endif
}
}  // namespace detail

namespace net {

read_lease_operation::read_lease_operation(const detail::file_descriptor& socket, std::error_code* ec,
                                           const char* what, detail::recv_queue_handle* queue) noexcept
    : io_operation(ec, what), handle_(queue) {
  request_.opcode = detail::io_opcode::recv;
  request_.fd = socket.get();
  request_.generation = socket.generation();
  request_.address = this;  // unused by a recv: how on_complete finds the operation
  request_.on_complete = &read_lease_operation::on_complete;
  if (request_.fd < 0) {
    fail_early(EBADF);
    handle_ = nullptr;
  }
}

read_lease_operation::~read_lease_operation() {
  // Parked on the stream's queue when the frame is destroyed (shutdown), or handed a chunk the
  // task never took: leave the queue, give the buffer back.
  if (queue_ != nullptr) detail::abandon_recv(*queue_, state_);
  // A ring buffer the task never took (its frame is destroyed after the read completed) goes home.
  if (request_.provided == detail::io_request::provided_held) {
    detail::release_ring_buffer(request_.reactor_data, request_.buffer_id);
  }
  delete[] heap_;
}

bool read_lease_operation::prepare() noexcept {
  detail::worker* w = detail::this_worker;
  if (w != nullptr && w->reactor_->provides_buffers()) {
    request_.provided = detail::io_request::provided_select;
    request_.buffer = nullptr;
    request_.length = 0;
    return true;
  }
  // No ring here (Asio, the ring turned off or refused): a heap buffer the lease will own. Off a
  // worker, submit_io reports the error as it does for every operation.
  heap_ = new (std::nothrow) std::byte[heap_buffer_bytes];
  if (heap_ == nullptr) {
    fail_early(ENOMEM);
    return false;
  }
  request_.buffer = heap_;
  request_.length = heap_buffer_bytes;
  return true;
}

bool read_lease_operation::on_complete(detail::io_request& r, int result) noexcept {
  if (result == -ENOBUFS && r.provided == detail::io_request::provided_select) {
    // The ring stayed empty at its bound (the reactor put back what it could and grew it first):
    // the same receive goes to a heap buffer instead, so the bytes waiting in the socket are read.
    if (r.cancel_was_requested()) {
      r.result = -ECANCELED;
      return true;
    }
    auto& op = *static_cast<read_lease_operation*>(r.address);
    op.heap_ = new (std::nothrow) std::byte[heap_buffer_bytes];
    if (op.heap_ == nullptr) {
      r.result = -ENOMEM;
      return true;
    }
    r.provided = 0;
    r.buffer = op.heap_;
    r.length = heap_buffer_bytes;
    if (detail::worker* w = detail::this_worker) w->reactor_->note_buffer_fallback();
    try {
      detail::submit_io(r);  // on the ring's own worker: completions run there
      return false;
    } catch (const std::system_error& e) {
      r.result = -e.code().value();
      return true;
    }
  }
  r.result = result;
  return true;
}

buffer_lease read_lease_operation::await_resume() {
  if (queue_ != nullptr && state_ != detail::recv_state::none) {  // served by the stream's multishot receive
    detail::stop_state* stop = nullptr;
    detail::recv_chunk c = detail::finish_recv(*queue_, std::exchange(state_, detail::recv_state::none), &stop);
    set_cancel_stop(stop);
    request_.result = c.result > 0 ? static_cast<int>(c.unread()) : c.result;
    if (finish() <= 0) return {};  // the end of the stream (or an error in the error_code form)
    if (c.ring != nullptr) return buffer_lease::from_ring(c.ring, c.id, c.data + c.offset, c.unread());
    // A heap chunk (the dry-ring fallback) is freed through its start: move a read_some's leftover down.
    if (c.offset != 0) std::memmove(c.data, c.data + c.offset, c.unread());
    return buffer_lease::from_heap(c.data, c.unread());
  }
  const std::ptrdiff_t n = finish();
  if (n <= 0) return {};
  const auto size = static_cast<std::size_t>(n);
  if (request_.provided == detail::io_request::provided_held) {
    request_.provided = 0;  // the lease owns it now
    return buffer_lease::from_ring(request_.reactor_data, request_.buffer_id, static_cast<std::byte*>(request_.buffer),
                                   size);
  }
  return buffer_lease::from_heap(std::exchange(heap_, nullptr), size);
}

}  // namespace net
}  // namespace corio
