// Per-thread recycling allocator for coroutine frames (see corio/detail/frame_allocator.hpp for the
// design). This file holds the slow paths: block creation, the remote free batches, collecting the
// frames other threads returned, and the thread-exit hook that closes a thread's home.
//
// A cached block, (class + 1) * 64 bytes from ::operator new:
//
//   [0, 16)               frame_block_header: home, size class, home's batch slot (set once)
//   [16, (class+1) * 64)  the frame; while the frame is free its first 8 bytes link it on a list
//
// Lists hold frame addresses (block + 16), so the inline allocation path pops them as before.
#include "corio/detail/frame_allocator.hpp"

#include <atomic>
#include <cassert>
#include <cstdint>
#include <mutex>
#include <new>

#if defined(_WIN32) && defined(__GNUC__) && !defined(__clang__)
// mingw-w64 GCC (emulated TLS, winpthreads): a thread's thread_local storage is freed by
// emutls's thread-exit destructor, and thread_local objects are destroyed by libstdc++'s, each a
// pthread key destructor, which winpthreads runs in the order the keys were created. emutls
// creates its key at the first thread_local access, normally before libstdc++ creates its own at
// the first thread_local with a destructor, so destructors then run on freed storage (GCC PR
// 80816): this file's cache_reaper saw an empty cache and lost a thread's frames, and doctest's
// thread_local stream crashed worker threads at exit. Registering one (empty) thread-exit
// destructor before any thread_local is touched creates libstdc++'s key first, so that every
// thread_local destructor of the process runs while its storage is still there.
extern "C" int __cxa_thread_atexit(void (*destructor)(void*), void* object, void* dso_handle) noexcept;

namespace {
void nothing_at_thread_exit(void*) noexcept {}
[[gnu::constructor(101)]] void create_thread_exit_key_before_emutls() noexcept {
  (void)__cxa_thread_atexit(&nothing_at_thread_exit, nullptr, nullptr);
}
}  // namespace
#endif

namespace corio::detail {

thread_local constinit frame_cache tls_frame_cache{};

#if defined(CORIO_FRAME_CACHE_OUT_OF_LINE)
frame_cache& this_thread_frame_cache() noexcept { return tls_frame_cache; }
#endif

/// A thread's identity as the owner of frames (see the header). `returned` is a Treiber stack of
/// frames (linked through frame_cache::block::next) that other threads gave back: any thread
/// pushes a whole chain with one compare-and-swap (release), only the owner takes it, all at once,
/// with one exchange (acquire), so there is no ABA problem. It holds `closed` while no thread owns
/// the home; a chain pushed then goes to ::operator delete. Homes are never freed: a frame may name
/// its home long after the home's thread exited. One cache line each, so that threads returning
/// frames to one home do not disturb another's. Thread-safe as described.
struct frame_home {
  alignas(frame_granule) std::atomic<frame_cache::block*> returned;
  std::uint32_t number;   ///< order of creation; number % frame_remote_slots picks a batch slot
  frame_home* next_free;  ///< link in the pool of unowned homes (under the pool's mutex)
};

namespace {

using block = frame_cache::block;

frame_block_header* header_of(block* frame) noexcept {
  return std::launder(
      reinterpret_cast<frame_block_header*>(reinterpret_cast<char*>(frame) - frame_header_bytes));
}

/// Frees a cached frame's whole block.
void delete_frame(block* frame) noexcept {
  frame_unpoison(frame, header_of(frame)->size_class);
  ::operator delete(static_cast<void*>(header_of(frame)));
}

/// The value of frame_home::returned while the home has no thread.
constinit block closed_marker{nullptr};
constexpr block* closed = &closed_marker;

/// The home of the blocks a thread allocates after its exit hook ran (in a later thread_local's
/// destructor, say): permanently closed, so that they go to ::operator delete when freed.
constinit frame_home orphan_home{{closed}, 0, nullptr};

enum : std::uint8_t { state_new = 0, state_live = 1, state_exited = 2 };

// --- homes --------------------------------------------------------------------------------------

/// Homes whose threads exited, waiting for a new thread. Created on first use and never destroyed,
/// so that threads exiting during or after static destruction can still use it.
struct home_pool {
  std::mutex mutex;
  frame_home* free = nullptr;
  std::uint32_t created = 0;
};

home_pool& pool() {
  static home_pool* const p = new home_pool;
  return *p;
}

/// A home for the calling thread: an unowned one from the pool, reopened, or a new one. Throws
/// std::bad_alloc.
frame_home* acquire_home() {
  home_pool& p = pool();
  std::uint32_t number = 0;
  {
    std::lock_guard<std::mutex> lock{p.mutex};
    if (frame_home* h = p.free) {
      p.free = h->next_free;
      h->next_free = nullptr;
      h->returned.store(nullptr, std::memory_order_release);  // was `closed`: reopen
      return h;
    }
    number = p.created++;
  }
  return new frame_home{{nullptr}, number, nullptr};
}

/// Puts a closed home back in the pool.
void release_home(frame_home* h) noexcept {
  home_pool& p = pool();
  std::lock_guard<std::mutex> lock{p.mutex};
  h->next_free = p.free;
  p.free = h;
}

/// Gives the chain head..tail (linked through next) back to `home` with one compare-and-swap, or
/// to ::operator delete when the home is closed.
void return_chain(frame_home* home, block* head, block* tail) noexcept {
  block* old = home->returned.load(std::memory_order_relaxed);
  do {
    if (old == closed) {
      for (block* f = head;;) {
        block* next = f->next;
        delete_frame(f);
        if (f == tail) break;
        f = next;
      }
      return;
    }
    tail->next = old;
  } while (
      !home->returned.compare_exchange_weak(old, head, std::memory_order_release, std::memory_order_relaxed));
}

/// Moves every frame other threads returned to the calling thread's home onto its free lists
/// (frames over a class's cap go to ::operator delete). False when there were none.
bool collect_returned(frame_cache& cache) noexcept {
  std::atomic<block*>& returned = cache.home->returned;
  if (returned.load(std::memory_order_relaxed) == nullptr) return false;
  block* f = returned.exchange(nullptr, std::memory_order_acquire);
  while (f != nullptr) {
    block* next = f->next;
    const std::uint32_t c = header_of(f)->size_class;
    if (cache.counts[c] < frame_class_limits.v[c]) {
      f->next = cache.heads[c];
      cache.heads[c] = f;
      ++cache.counts[c];
    } else {
      delete_frame(f);
    }
    f = next;
  }
  return true;
}

// --- remote batches -----------------------------------------------------------------------------

void flush_slot(frame_cache& cache, std::size_t i) noexcept {
  frame_cache::remote_batch& s = cache.pending[i];
  return_chain(s.home, s.head, s.tail);
  s = {};
  cache.pending_mask &= ~(std::uint32_t{1} << i);
}

void flush_all(frame_cache& cache) noexcept {
  while (cache.pending_mask != 0)
    flush_slot(cache, static_cast<std::size_t>(__builtin_ctz(cache.pending_mask)));
}

// --- thread exit --------------------------------------------------------------------------------

/// Runs at thread exit: returns the pending batches, closes the home (frames returned to it later
/// go to ::operator delete), frees every cached frame, and pools the home for a later thread.
struct cache_reaper {
  cache_reaper() = default;
  cache_reaper(const cache_reaper&) = delete;
  cache_reaper& operator=(const cache_reaper&) = delete;
  ~cache_reaper() {
    frame_cache& cache = tls_frame_cache;
    cache.state = state_exited;  // from now on: no batching, orphan blocks
    flush_all(cache);
    frame_home* home = cache.home;
    if (home == nullptr) return;
    cache.home = nullptr;  // this thread's own frames freed later are remote frees now
    for (block* f = home->returned.exchange(closed, std::memory_order_acquire); f != nullptr;) {
      block* next = f->next;
      delete_frame(f);
      f = next;
    }
    for (std::size_t c = 0; c < frame_class_count; ++c) {
      while (block* f = cache.heads[c]) {
        cache.heads[c] = f->next;
        delete_frame(f);
      }
      cache.counts[c] = 0;
    }
    release_home(home);
  }
};

/// Registers the thread-exit hook if needed. False once it has run (the thread is exiting).
bool ensure_exit_hook(frame_cache& cache) noexcept {
  if (cache.state == state_new) {
    thread_local cache_reaper reaper;  // never throws: glibc aborts if it cannot register
    (void)reaper;
    cache.state = state_live;
  }
  return cache.state == state_live;
}


}  // namespace

void* frame_allocate_slow(std::size_t bytes) {
  if (bytes > frame_max_cached_bytes) return ::operator new(bytes);
  const std::size_t c = frame_size_class(bytes);
  frame_cache& cache = tls_frame_cache;
  frame_home* home = cache.home;
  if (home == nullptr) {
    if (ensure_exit_hook(cache)) {
      home = cache.home = acquire_home();
    } else {
      home = &orphan_home;  // the thread is exiting
    }
  } else if (cache.heads[c] == nullptr && collect_returned(cache)) {
    if (block* f = cache.heads[c]) {
      cache.heads[c] = f->next;
      --cache.counts[c];
      frame_unpoison(f, c);
      return f;
    }
  }
  void* raw = ::operator new((c + 1) * frame_granule);
  ::new (raw) frame_block_header{home, static_cast<std::uint32_t>(c),
                                 static_cast<std::uint32_t>(home->number % frame_remote_slots)};
  return static_cast<char*>(raw) + frame_header_bytes;
}

void frame_deallocate_slow(void* frame, std::size_t bytes) noexcept {
  if (bytes > frame_max_cached_bytes) {
    ::operator delete(frame);
    return;
  }
  auto* f = static_cast<block*>(frame);
  const frame_block_header* h = header_of(f);
  assert(h->size_class == frame_size_class(bytes) && "frame_deallocate: size differs from frame_allocate's");
  frame_cache& cache = tls_frame_cache;
  frame_home* owner = h->home;
  if (owner == cache.home || owner == &orphan_home) {  // the class list is full, or no home
    delete_frame(f);
    return;
  }
  frame_poison(f, h->size_class);  // waits for its home from here on
  if (!ensure_exit_hook(cache)) {  // exiting: nobody would flush a batch
    return_chain(owner, f, f);
    return;
  }
  const std::size_t i = h->home_slot;
  frame_cache::remote_batch& s = cache.pending[i];
  if (s.home != owner) {
    if (s.home != nullptr) flush_slot(cache, i);  // direct-mapped: the slot's previous home
    s.home = owner;
    s.tail = f;
    cache.pending_mask |= std::uint32_t{1} << i;
  }
  f->next = s.head;
  s.head = f;
  if (++s.count == frame_remote_batch) flush_slot(cache, i);
}

void frame_flush_remote() noexcept {
  frame_cache& cache = tls_frame_cache;
  if (cache.pending_mask != 0) flush_all(cache);
}

}  // namespace corio::detail
