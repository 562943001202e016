// corio/detail/frame_allocator.hpp - where coroutine frames come from.
#pragma once

#include <cstddef>

namespace corio::detail {

/// Allocates `bytes` for a coroutine frame from the calling thread's recycling cache: size classes
/// of 64 bytes up to 4 KiB, each a LIFO free list, so that spawning and finishing tasks in a steady
/// state never reaches `malloc`. Larger frames go to `::operator new`. Throws std::bad_alloc when
/// memory is exhausted. Thread-safe: every thread has its own cache, reached through this
/// out-of-line call (never a cached thread-local address: llvm #47179).
/// Idea: the size-class thread caches of tcmalloc, and Go's per-P stack cache.
void* frame_allocate(std::size_t bytes);

/// Returns a frame of `bytes` (the size given to frame_allocate) to the calling thread's cache. A
/// frame may be freed on another thread than the one that allocated it; it then joins the freeing
/// thread's cache. Each cache holds at most 1 MiB per size class; the excess and everything left at
/// thread exit go back to `::operator delete`. Never throws.
void frame_deallocate(void* frame, std::size_t bytes) noexcept;

}  // namespace corio::detail
