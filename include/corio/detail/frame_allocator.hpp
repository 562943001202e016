// corio/detail/frame_allocator.hpp - where coroutine frames come from.
//
// Every thread keeps one LIFO free list of frames per 64-byte size class (frame_cache). A frame
// always goes back to the free lists of the thread that allocated it, its *home*, so that a
// producer thread whose tasks finish on other workers still recycles its own frames instead of
// calling `malloc` forever while the other threads' caches fill up:
//
//  - Each block starts with a 16-byte header (frame_block_header) naming its home (a frame_home)
//    and its size class; the coroutine frame follows the header, so it keeps the 16-byte alignment
//    of `::operator new`, and the header sits next to the frame's first bytes, which the frame's
//    destroy function has just read (the resume/destroy pointers and the promise): reading the
//    home on the free path costs no extra cache miss, where a tag at the block's end could.
//  - A free on the home thread pushes the frame on the thread's list: one thread-local load, one
//    header load and compare, a push.
//  - A free on another thread appends the frame to a short pending chain for its home, kept in the
//    freeing thread's cache (a few chains, one per recently seen home); a full chain (32 frames)
//    is pushed onto the home's lock-free "returned" stack with a single compare-and-swap, as are
//    the chains left when the thread calls frame_flush_remote() (before it parks) or exits.
//  - The home takes its whole returned stack with one atomic exchange when a free list it
//    allocates from is empty, sorts the frames into their class lists, and calls `::operator new`
//    only if the list is still empty.
//  - A frame_home outlives its thread: at thread exit the thread closes it (frames returned later
//    go to `::operator delete`) and puts it in a global pool, from which a later thread reuses it.
//
// The ideas come from mimalloc's thread-delayed free lists (a page's cross-thread frees go to an
// atomic list its owner collects in bulk), tcmalloc's transfer caches (objects move between
// threads in batches, one synchronization per batch), and Go's per-P mcache and stack caches.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "corio/detail/assert.hpp"

// AddressSanitizer cannot see a frame freed into corio's cache: the block is not returned to
// malloc. Under ASan a cached frame is therefore poisoned (frame_poison), so that a use after the
// coroutine was destroyed is reported as it would be with malloc.
#if defined(__SANITIZE_ADDRESS__)
#define CORIO_FRAME_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_FRAME_ASAN 1
#endif
#endif
#if defined(CORIO_FRAME_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace corio::detail {

inline constexpr std::size_t frame_granule = 64;      ///< bytes per size class step (a cache line)
inline constexpr std::size_t frame_class_count = 64;  ///< classes cover blocks up to 4 KiB

/// Bytes in front of every cached frame: its home and its size class (see frame_block_header in
/// lib/frame_allocator.cpp). A multiple of the alignment of `::operator new`, so frames keep it.
inline constexpr std::size_t frame_header_bytes = 16;
static_assert(frame_header_bytes % __STDCPP_DEFAULT_NEW_ALIGNMENT__ == 0);

/// The largest frame, in bytes, that the size classes cache (4096 - 16); larger frames come from
/// `::operator new` directly.
inline constexpr std::size_t frame_max_cached_bytes = frame_class_count * frame_granule - frame_header_bytes;

/// Frames a thread keeps per remote home before pushing them to it in one compare-and-swap.
inline constexpr std::uint32_t frame_remote_batch = 32;
/// Remote homes a thread batches frames for at once (a direct-mapped table indexed by home number).
inline constexpr std::size_t frame_remote_slots = 8;

/// The size class of a frame of `bytes` bytes (at most frame_max_cached_bytes): the block holding
/// it, header included, is (class + 1) * 64 bytes. Constant-folded where the frame size is known.
constexpr std::size_t frame_size_class(std::size_t bytes) noexcept {
  return (bytes + frame_header_bytes - 1) / frame_granule;
}

/// The per-thread owner of frames, defined in lib/frame_allocator.cpp: the lock-free stack of
/// frames other threads returned. Heap allocated and never freed, so that a frame can name it
/// after its thread has exited; reused by a later thread. Not for direct use.
struct frame_home;

/// A thread's cache of free frames: one LIFO free list per size class, plus the frames it freed
/// for other homes and has not returned yet. Constant-initialized and trivially destructible, so
/// that reaching it from an inline function costs one thread-pointer relative load and no guard;
/// lib/frame_allocator.cpp registers a separate thread-exit hook that returns pending frames,
/// closes the home and frees the lists. Only the owning thread touches it. Not for direct use.
struct frame_cache {
  /// A free frame (the address after its header); its first 8 bytes link the list it is on.
  struct block {
    block* next;
  };
  /// Frames freed on this thread for one other home, not yet pushed to it: a chain head..tail.
  struct remote_batch {
    frame_home* home;  ///< null: the slot is empty
    block* head;
    block* tail;
    std::uint32_t count;  ///< frames on the chain, at most frame_remote_batch
  };

  block* heads[frame_class_count];           ///< free frames of this thread's home, per class
  std::uint32_t counts[frame_class_count];   ///< frames on heads[c]
  frame_home* home;                          ///< this thread's home; null before the first
                                             ///< allocation and after thread exit
  remote_batch pending[frame_remote_slots];  ///< per remote home (by home number mod slots)
  std::uint32_t pending_mask;                ///< bit i: pending[i] holds frames
  std::uint8_t state;                        ///< 0 new, 1 exit hook registered, 2 exited
};
static_assert(std::is_trivially_destructible_v<frame_cache>);

/// The calling thread's frame cache (defined in lib/frame_allocator.cpp). On x86-64 Linux its
/// symbol has a fixed assembler name so that this_thread_frame_cache() can address it from
/// inline assembly.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
extern CORIO_API thread_local constinit frame_cache tls_frame_cache __asm__("corio_tls_frame_cache");
#else
extern thread_local constinit frame_cache tls_frame_cache;
#endif

/// The calling thread's frame cache, read afresh at every call: never an address the compiler
/// computed on another thread. Clang may keep a thread-local's address in a coroutine frame across
/// a suspension point (llvm #47179, #49257, #63022, open in clang 16): a coroutine that creates
/// tasks in a loop (the child's ramp, and so frame_allocate, inlined into its body), suspends, and
/// resumes on another worker would otherwise push and pop the first thread's free lists (TSan
/// caught it in test "joining tasks still queued on the joiner's worker..."). On x86-64 Linux the
/// address is one `asm volatile` pair of instructions the compiler can neither cache nor hoist
/// (the initial-exec sequence: the variable's offset from the GOT, plus %fs:0); elsewhere it is an
/// out-of-line call. Not for direct use.
#if CORIO_TLS_ASM
inline frame_cache& this_thread_frame_cache() noexcept {
  frame_cache* cache;
  __asm__ volatile(
      "movq corio_tls_frame_cache@gottpoff(%%rip), %0\n\t"
      "addq %%fs:0, %0"
      : "=r"(cache));
  return *cache;
}
#else
CORIO_API frame_cache& this_thread_frame_cache() noexcept;
#define CORIO_FRAME_CACHE_OUT_OF_LINE 1
#endif

/// Under AddressSanitizer, marks a cached frame of class `size_class` as unaddressable but for the
/// link word at its start (the cache's own), and as addressable again when it is handed out; no
/// code otherwise. Thread-safe (it touches only the frame's shadow).
inline void frame_poison([[maybe_unused]] void* frame, [[maybe_unused]] std::size_t size_class) noexcept {
#if defined(CORIO_FRAME_ASAN)
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(frame) + sizeof(frame_cache::block),
                            (size_class + 1) * frame_granule - frame_header_bytes - sizeof(frame_cache::block));
#endif
}
inline void frame_unpoison([[maybe_unused]] void* frame, [[maybe_unused]] std::size_t size_class) noexcept {
#if defined(CORIO_FRAME_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(frame, (size_class + 1) * frame_granule - frame_header_bytes);
#endif
}

/// frame_allocate() when the thread's free list for the class is empty, the size is over
/// frame_max_cached_bytes, or the thread has no home yet: collects the frames other threads
/// returned to this thread's home, and calls `::operator new` when that is not enough.
/// Throws std::bad_alloc when memory is exhausted. Uses only the calling thread's cache and the
/// home's atomic stack: thread-safe.
CORIO_API void* frame_allocate_slow(std::size_t bytes);

/// Allocates `bytes` bytes for a coroutine frame, aligned like `::operator new` (16 bytes), from
/// the calling thread's recycling cache: size classes of 64-byte steps up to 4 KiB blocks, each a
/// LIFO free list, so that spawning and finishing tasks in a steady state never reaches `malloc`,
/// even when they finish on other threads (frames go back to their home, see the file comment).
/// Frames over frame_max_cached_bytes (4080 bytes) come from `::operator new`. Throws std::bad_alloc when
/// memory is exhausted. Thread-safe: every thread has its own cache. Must be paired with frame_deallocate()
/// with the same `bytes`, on any thread.
///
/// Inline (as is frame_deallocate). A frame is allocated in its
/// coroutine's ramp, but the ramp may be inlined into a calling coroutine's body, where clang can
/// reuse a thread-local address across the caller's suspension points (llvm #47179): the cache is
/// therefore reached through this_thread_frame_cache(), never through a plain TLS access.
/// Idea: the size-class thread caches of tcmalloc, and Go's per-P stack cache.
inline void* frame_allocate(std::size_t bytes) {
  if (bytes <= frame_max_cached_bytes) [[likely]] {
    const std::size_t c = frame_size_class(bytes);
    frame_cache& cache = this_thread_frame_cache();
    if (frame_cache::block* b = cache.heads[c]) [[likely]] {
      cache.heads[c] = b->next;
      --cache.counts[c];
      frame_unpoison(b, c);
      return b;
    }
  }
  return frame_allocate_slow(bytes);
}

/// The 16 bytes in front of every cached frame, written once when the block is created and never
/// changed (a frame of the class never reaches them). The free path reads the home from here to
/// tell a local free from a remote one; the home reads the class to sort returned frames.
struct frame_block_header {
  frame_home* home;
  std::uint32_t size_class;
  std::uint32_t home_slot;  ///< home->number % frame_remote_slots, kept here so that a remote
                            ///< free need not read the home's (contended) cache line
};
static_assert(sizeof(frame_block_header) == frame_header_bytes);

/// The most bytes of free frames a thread keeps per size class (1 MiB), and so the most frames.
inline constexpr std::size_t frame_max_cached_bytes_per_class = std::size_t{1} << 20;
inline constexpr auto frame_class_limits = [] {
  struct table {
    std::uint32_t v[frame_class_count];
  } t{};
  for (std::size_t c = 0; c < frame_class_count; ++c) {
    t.v[c] = static_cast<std::uint32_t>(frame_max_cached_bytes_per_class / ((c + 1) * frame_granule));
  }
  return t;
}();

/// frame_deallocate() for a frame of another home, of a full class list, or over
/// frame_max_cached_bytes. Out of line, so that the local free path saves no registers.
CORIO_API void frame_deallocate_slow(void* frame, std::size_t bytes) noexcept;

/// Frees a frame of `bytes` bytes (the size given to frame_allocate; debug builds check it when
/// the free leaves the local path) on any thread. On the frame's home thread it joins the
/// thread's free list for its class (at most
/// 1 MiB per class and thread; the excess goes to `::operator delete`). On another thread it joins
/// that thread's pending batch for the frame's home and reaches the home when the batch is full
/// (frame_remote_batch frames), when another home takes the batch slot, when the freeing thread
/// calls frame_flush_remote(), or when it exits; a frame whose home's thread has exited goes to
/// `::operator delete` (or to the thread that took the home over). Never throws. Thread-safe.
/// Idea: mimalloc's thread-delayed free lists, tcmalloc's transfer caches.
///
/// Inline, like frame_allocate (and for the same reason reached through this_thread_frame_cache()):
/// the local free is a header load and compare, a count check and a push.
inline void frame_deallocate(void* frame, std::size_t bytes) noexcept {
  if (bytes <= frame_max_cached_bytes) [[likely]] {
    const std::size_t c = frame_size_class(bytes);
    auto* f = static_cast<frame_cache::block*>(frame);
    const auto* h = reinterpret_cast<const frame_block_header*>(static_cast<const char*>(frame) - frame_header_bytes);
    CORIO_ASSERT(h->size_class == c, "frame-size-matches");
    frame_cache& cache = this_thread_frame_cache();
    if (h->home == cache.home && cache.counts[c] < frame_class_limits.v[c]) [[likely]] {
      f->next = cache.heads[c];
      cache.heads[c] = f;
      ++cache.counts[c];
      frame_poison(f, c);
      return;
    }
  }
  frame_deallocate_slow(frame, bytes);
}

/// Pushes the frames the calling thread freed for other threads' homes and still holds in its
/// pending batches back to those homes (one compare-and-swap per home), so that they do not stay
/// out of use while this thread sleeps: at most frame_remote_slots * frame_remote_batch frames
/// wait otherwise. A worker should call it before it parks (a thread that waits forever would
/// strand them until it exits); thread exit does it by itself. Cheap when nothing is pending (a
/// call, one thread-local load and a test). Never throws; affects only the calling thread's batches.
/// Idea: mimalloc's delayed frees and tcmalloc's transfer-cache flushes.
CORIO_API void frame_flush_remote() noexcept;

}  // namespace corio::detail
