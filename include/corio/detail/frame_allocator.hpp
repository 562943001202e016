// corio/detail/frame_allocator.hpp - where coroutine frames come from.
#pragma once

#include <cstddef>
#include <cstdint>

namespace corio::detail {

inline constexpr std::size_t frame_granule = 64;      ///< bytes per size class step (a cache line)
inline constexpr std::size_t frame_class_count = 64;  ///< classes cover frames up to 4 KiB

/// A thread's cache of free frames: one LIFO free list per size class. Constant-initialized and
/// trivially destructible, so that reaching it from an inline function costs one thread-pointer
/// relative load and no guard; its contents are freed at thread exit by lib/frame_allocator.cpp.
/// Not for direct use.
struct frame_cache {
  struct block {
    block* next;
  };
  block* heads[frame_class_count];
  std::uint32_t counts[frame_class_count];
  bool live;  ///< the thread-exit hook is registered and has not run yet
};

/// The calling thread's frame cache (defined in lib/frame_allocator.cpp).
extern thread_local constinit frame_cache tls_frame_cache;

/// frame_allocate() when the thread's free list for the class is empty, the size is over 4 KiB,
/// or the cache is not set up yet. Throws std::bad_alloc when memory is exhausted.
void* frame_allocate_slow(std::size_t bytes);

/// Allocates `bytes` for a coroutine frame from the calling thread's recycling cache: size classes
/// of 64 bytes up to 4 KiB, each a LIFO free list, so that spawning and finishing tasks in a steady
/// state never reaches `malloc`. Larger frames go to `::operator new`. Throws std::bad_alloc when
/// memory is exhausted. Thread-safe: every thread has its own cache.
///
/// Inline, and the only inline use of a thread-local in corio: a coroutine allocates its frame in
/// its ramp, before its first suspension, so the thread-local address clang computes there can
/// never be reused on another thread after a resumption (llvm #47179); the free path, which runs
/// in the frame's destroy function, stays out of line.
/// Idea: the size-class thread caches of tcmalloc, and Go's per-P stack cache.
inline void* frame_allocate(std::size_t bytes) {
  const std::size_t c = (bytes - 1) / frame_granule;  // 0 wraps round to a huge class: the slow path
  if (c < frame_class_count) [[likely]] {
    frame_cache& cache = tls_frame_cache;
    if (frame_cache::block* b = cache.heads[c]) [[likely]] {
      cache.heads[c] = b->next;
      --cache.counts[c];
      return b;
    }
  }
  return frame_allocate_slow(bytes);
}

/// Returns a frame of `bytes` (the size given to frame_allocate) to the calling thread's cache. A
/// frame may be freed on another thread than the one that allocated it; it then joins the freeing
/// thread's cache. Each cache holds at most 1 MiB per size class; the excess and everything left at
/// thread exit go back to `::operator delete`. Never throws.
void frame_deallocate(void* frame, std::size_t bytes) noexcept;

}  // namespace corio::detail
