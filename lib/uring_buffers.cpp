// lib/uring_buffers.cpp - a worker's provided buffer ring (see uring_buffers.hpp).
#include "uring_buffers.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <new>

#include "corio/detail/assert.hpp"

namespace corio::detail {
namespace {

/// The ring whose reactor runs on this thread (set when the ring is set up, cleared when the
/// worker leaves): a release here may put the buffer straight back. Read only in this file's
/// out-of-line functions, never cached across a suspension (llvm #47179).
thread_local provided_buffers* owned_here = nullptr;

std::size_t page_round(std::size_t bytes) noexcept {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

void* map_anonymous(std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

provided_buffers* provided_buffers::create(io_uring& ring, std::uint16_t group,
                                           const buffer_ring_config& config) noexcept {
  auto* self = new (std::nothrow) provided_buffers();
  if (self == nullptr) return nullptr;
  self->entries_ = std::bit_ceil(std::clamp(config.max_buffers, 1u, 32768u));
  self->mask_ = static_cast<unsigned>(io_uring_buf_ring_mask(self->entries_));
  self->group_ = group;
  self->buffer_bytes_ = std::clamp<std::size_t>(config.buffer_bytes, 1, std::size_t{1} << 20);
  self->ring_bytes_ = page_round(self->entries_ * sizeof(io_uring_buf));
  void* memory = map_anonymous(self->ring_bytes_);
  if (memory == nullptr) {
    delete self;
    return nullptr;
  }
  self->ring_ = static_cast<io_uring_buf_ring*>(memory);
  io_uring_buf_ring_init(self->ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(memory);
  reg.ring_entries = self->entries_;
  reg.bgid = group;
  // Before Linux 5.19 this fails (EINVAL): the caller reads into its own buffers instead.
  if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) {
    delete self;
    return nullptr;
  }
  try {
    self->address_.reserve(self->entries_);
    self->chunks_.reserve(16);
    self->returned_.reserve(64);
  } catch (...) {
    (void)io_uring_unregister_buf_ring(&ring, group);
    delete self;
    return nullptr;
  }
  if (!self->grow(std::clamp(config.initial_buffers, 1u, self->entries_))) {
    (void)io_uring_unregister_buf_ring(&ring, group);
    delete self;
    return nullptr;
  }
  owned_here = self;
  return self;
}

provided_buffers::~provided_buffers() {
  for (const chunk& c : chunks_) ::munmap(c.base, c.bytes);
  if (ring_ != nullptr) ::munmap(ring_, ring_bytes_);
}

void provided_buffers::prepare(io_uring_sqe* sqe) const noexcept {
  // addr null, len 0: the kernel reads up to the picked buffer's size (len, when set, bounds it).
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = group_;
}

bool provided_buffers::grow(unsigned count) noexcept {
  const auto have = static_cast<unsigned>(address_.size());
  count = std::min(count, entries_ - have);
  if (count == 0) return false;
  const std::size_t bytes = page_round(count * buffer_bytes_);
  void* memory = map_anonymous(bytes);
  if (memory == nullptr) return false;
  chunks_.push_back({memory, bytes});  // reserved: 16 doublings reach 32768 from 1
  auto* base = static_cast<std::byte*>(memory);
  for (unsigned i = 0; i < count; ++i) {
    std::byte* buffer = base + i * buffer_bytes_;
    address_.push_back(buffer);  // reserved to entries_
    io_uring_buf_ring_add(ring_, buffer, static_cast<unsigned>(buffer_bytes_), static_cast<unsigned short>(have + i),
                          static_cast<int>(mask_), static_cast<int>(i));
  }
  io_uring_buf_ring_advance(ring_, static_cast<int>(count));
  available_ += count;
  total_.store(address_.size(), std::memory_order_relaxed);
  return true;
}

void provided_buffers::recycle(std::uint16_t id) noexcept {
  CORIO_ASSERT(id < address_.size(), "buffer-returns-to-its-ring");
  io_uring_buf_ring_add(ring_, address_[id], static_cast<unsigned>(buffer_bytes_), id, static_cast<int>(mask_), 0);
  io_uring_buf_ring_advance(ring_, 1);
  ++available_;
}

std::byte* provided_buffers::lend(std::uint16_t id, int result) noexcept {
  CORIO_ASSERT(owned_here == this && available_ > 0, "buffer-returns-to-its-ring");
  --available_;
  if (result <= 0) {  // an error or the end of the stream: nothing to hand out
    recycle(id);
    return nullptr;
  }
  in_use_.fetch_add(1, std::memory_order_relaxed);
  refs_.fetch_add(1, std::memory_order_relaxed);
  return address_[id];
}

void provided_buffers::take(io_request& r, int result, std::uint16_t id) noexcept {
  std::byte* data = lend(id, result);
  if (data == nullptr) return;
  r.buffer = data;
  r.buffer_id = id;
  r.provided = io_request::provided_held;
  r.reactor_data = this;
}

bool provided_buffers::replenish() noexcept {
  enobufs_.fetch_add(1, std::memory_order_relaxed);
  drain_returns();
  if (available_ == 0 && grow(static_cast<unsigned>(address_.size()))) {
    grows_.fetch_add(1, std::memory_order_relaxed);
  }
  return available_ > 0;
}

void provided_buffers::drain_returns_slow() noexcept {
  // Swap under the lock, put back outside it: a buffer is reused as soon as the ring's tail moves.
  std::vector<std::uint16_t> ids;
  {
    std::lock_guard lock{mutex_};
    ids.swap(returned_);
    has_returns_.store(false, std::memory_order_relaxed);
  }
  for (const std::uint16_t id : ids) recycle(id);
  std::lock_guard lock{mutex_};
  if (returned_.empty()) {
    ids.clear();
    returned_.swap(ids);  // keep the capacity: no allocation for the next returns
  }
}

void provided_buffers::release(provided_buffers* self, std::uint16_t id) noexcept {
  self->in_use_.fetch_sub(1, std::memory_order_relaxed);
  if (owned_here == self) {
    self->recycle(id);
  } else {
    std::lock_guard lock{self->mutex_};
    if (!self->detached_) {
      try {
        self->returned_.push_back(id);
        self->has_returns_.store(true, std::memory_order_release);
      } catch (...) {
        // Out of memory for the queue: the buffer stays out of the ring (one buffer fewer).
      }
    }
  }
  self->unref();
}

void provided_buffers::detach() noexcept {
  {
    std::lock_guard lock{mutex_};
    detached_ = true;
  }
  unref();
}

void provided_buffers::leave_owner_thread() noexcept {
  if (owned_here == this) owned_here = nullptr;
}

void provided_buffers::unref() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

}  // namespace corio::detail
