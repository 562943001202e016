// Per-thread recycling allocator for coroutine frames (see corio/detail/frame_allocator.hpp).
#include "corio/detail/frame_allocator.hpp"

#include <cstdint>
#include <new>

namespace corio::detail {

thread_local constinit frame_cache tls_frame_cache{};

namespace {

constexpr std::size_t max_cached_bytes = 1u << 20;  // per class and thread

// Frames a cache keeps per class: max_cached_bytes of them.
constexpr auto limits = [] {
  struct table {
    std::uint32_t v[frame_class_count];
  } t{};
  for (std::size_t c = 0; c < frame_class_count; ++c) {
    t.v[c] = static_cast<std::uint32_t>(max_cached_bytes / ((c + 1) * frame_granule));
  }
  return t;
}();

thread_local bool cache_dead = false;

struct cache_reaper {
  ~cache_reaper() {
    frame_cache& cache = tls_frame_cache;
    cache.live = false;  // frames freed later on this thread go straight to operator delete
    cache_dead = true;
    for (std::size_t c = 0; c < frame_class_count; ++c) {
      while (frame_cache::block* b = cache.heads[c]) {
        cache.heads[c] = b->next;
        ::operator delete(static_cast<void*>(b));
      }
      cache.counts[c] = 0;
    }
  }
};

void register_reaper() {
  if (cache_dead) return;
  thread_local cache_reaper reaper;
  (void)reaper;
  tls_frame_cache.live = true;
}

}  // namespace

void* frame_allocate_slow(std::size_t bytes) {
  if (bytes == 0) bytes = 1;
  const std::size_t c = (bytes - 1) / frame_granule;
  if (c >= frame_class_count) return ::operator new(bytes);
  if (!tls_frame_cache.live) register_reaper();
  return ::operator new((c + 1) * frame_granule);
}

void frame_deallocate(void* frame, std::size_t bytes) noexcept {
  const std::size_t c = (bytes - 1) / frame_granule;  // 0 wraps round: operator delete
  frame_cache& cache = tls_frame_cache;
  if (c < frame_class_count && cache.live && cache.counts[c] < limits.v[c]) [[likely]] {
    auto* b = static_cast<frame_cache::block*>(frame);
    b->next = cache.heads[c];
    cache.heads[c] = b;
    ++cache.counts[c];
    return;
  }
  ::operator delete(frame);
}

}  // namespace corio::detail
