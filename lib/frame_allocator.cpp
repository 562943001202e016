// Per-thread recycling allocator for coroutine frames (see corio/detail/frame_allocator.hpp).
#include "corio/detail/frame_allocator.hpp"

#include <cstdint>
#include <new>

namespace corio::detail {
namespace {

constexpr std::size_t granule = 64;                 // bytes per size-class step (a cache line)
constexpr std::size_t class_count = 64;             // classes cover frames up to 4 KiB
constexpr std::size_t max_cached_bytes = 1u << 20;  // per class and thread

struct free_block {
  free_block* next;
};

struct thread_cache {
  free_block* heads[class_count];
  std::uint32_t counts[class_count];
};

// Trivially destructible, so reaching it costs no guard; the destructor below is registered by a
// second thread-local that exists only once the cache is first used.
thread_local thread_cache cache{};
thread_local bool cache_dead = false;

struct cache_reaper {
  ~cache_reaper() {
    for (std::size_t c = 0; c < class_count; ++c) {
      while (free_block* b = cache.heads[c]) {
        cache.heads[c] = b->next;
        ::operator delete(static_cast<void*>(b));
      }
      cache.counts[c] = 0;
    }
    cache_dead = true;  // frames freed later on this thread go straight to operator delete
  }
};
thread_local cache_reaper* reaper_registered = nullptr;

void register_reaper() {
  thread_local cache_reaper reaper;
  reaper_registered = &reaper;
}

constexpr std::size_t class_of(std::size_t bytes) noexcept { return (bytes - 1) / granule; }

}  // namespace

void* frame_allocate(std::size_t bytes) {
  if (bytes == 0) bytes = 1;
  const std::size_t c = class_of(bytes);
  if (c >= class_count) return ::operator new(bytes);
  if (free_block* b = cache.heads[c]) {
    cache.heads[c] = b->next;
    --cache.counts[c];
    return b;
  }
  if (reaper_registered == nullptr && !cache_dead) register_reaper();
  return ::operator new((c + 1) * granule);
}

void frame_deallocate(void* frame, std::size_t bytes) noexcept {
  if (bytes == 0) bytes = 1;
  const std::size_t c = class_of(bytes);
  if (c >= class_count || cache_dead || reaper_registered == nullptr) {
    ::operator delete(frame);
    return;
  }
  if (static_cast<std::size_t>(cache.counts[c]) * (c + 1) * granule >= max_cached_bytes) {
    ::operator delete(frame);
    return;
  }
  auto* b = static_cast<free_block*>(frame);
  b->next = cache.heads[c];
  cache.heads[c] = b;
  ++cache.counts[c];
}

}  // namespace corio::detail
