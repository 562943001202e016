// Suite "core": the coroutine frame allocator (corio/detail/frame_allocator.hpp) - frames go back
// to the thread that allocated them, in batches; nothing is lost, duplicated or leaked (ASan/LSan),
// including when a frame's thread has exited. No test depends on timing: threads meet at latches
// and joins.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <corio/detail/frame_allocator.hpp>
#include <cstdint>
#include <cstring>
#include <deque>

#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>
#include <vector>

#include "test_support.hpp"

using corio::detail::frame_allocate;
using corio::detail::frame_deallocate;
using corio::detail::frame_flush_remote;
using corio_test::scaled;

namespace {

std::vector<void*> allocate_n(std::size_t n, std::size_t bytes) {
  std::vector<void*> frames(n);
  for (auto& f : frames) {
    f = frame_allocate(bytes);
    std::memset(f, 0xab, bytes);
  }
  return frames;
}

void free_all(const std::vector<void*>& frames, std::size_t bytes) {
  for (void* f : frames) frame_deallocate(f, bytes);
}

std::set<void*> as_set(const std::vector<void*>& v) { return {v.begin(), v.end()}; }

/// The set of frames `reallocated` is exactly the set `freed`, with no address twice.
void check_same_frames(const std::vector<void*>& freed, const std::vector<void*>& reallocated) {
  const auto a = as_set(freed);
  const auto b = as_set(reallocated);
  CHECK(a.size() == freed.size());
  CHECK(b.size() == reallocated.size());
  CHECK(a == b);
}

// Two size classes: 200 bytes (a 256-byte block) and 1000 bytes (a 1024-byte block). 100 frames:
// three full batches of 32 and a partial one.
constexpr std::size_t small_frame = 200;
constexpr std::size_t large_frame = 1000;
constexpr std::size_t frame_count = 100;

}  // namespace

TEST_SUITE_BEGIN("core");

TEST_CASE("frames are 16-byte aligned and hold every byte asked for, in every class and beyond") {
  std::vector<std::pair<void*, std::size_t>> frames;
  for (std::size_t bytes = 1; bytes <= corio::detail::frame_max_cached_bytes + 200; bytes += 7) {
    void* f = frame_allocate(bytes);
    CHECK(reinterpret_cast<std::uintptr_t>(f) % 16 == 0);
    std::memset(f, static_cast<int>(bytes & 0xff), bytes);
    frames.emplace_back(f, bytes);
  }
  // Every byte is intact once all frames exist: no frame overlaps another or its neighbour's header.
  bool intact = true;
  for (auto [f, bytes] : frames) {
    const auto* p = static_cast<const unsigned char*>(f);
    intact = intact && std::all_of(p, p + bytes, [&](unsigned char c) { return c == (bytes & 0xff); });
  }
  CHECK(intact);
  for (auto [f, bytes] : frames) frame_deallocate(f, bytes);
  CHECK(corio::detail::frame_size_class(corio::detail::frame_max_cached_bytes) ==
        corio::detail::frame_class_count - 1);
}

TEST_CASE("frames freed on another thread go back to their home thread after a flush") {
  frame_flush_remote();  // nothing this thread freed earlier may reach the homes below
  std::vector<void*> small_first, large_first, small_again, large_again;
  std::thread home([&] {
    small_first = allocate_n(frame_count, small_frame);
    large_first = allocate_n(frame_count / 2, large_frame);
    corio_test::thread_latch flushed{1};
    corio_test::thread_latch reallocated{1};
    std::thread other([&] {
      free_all(small_first, small_frame);
      free_all(large_first, large_frame);
      frame_flush_remote();
      frame_flush_remote();  // nothing left: a no-op
      flushed.count_down();
      reallocated.wait();  // alive until the home has its frames back: only the flush returned them
    });
    flushed.wait();
    // The free lists are empty, so these come from the returned frames, not ::operator new.
    small_again = allocate_n(frame_count, small_frame);
    large_again = allocate_n(frame_count / 2, large_frame);
    reallocated.count_down();
    other.join();
    free_all(small_again, small_frame);
    free_all(large_again, large_frame);
  });
  home.join();
  check_same_frames(small_first, small_again);
  check_same_frames(large_first, large_again);
}

TEST_CASE("a thread's exit returns the frames it freed for other threads") {
  frame_flush_remote();
  std::vector<void*> first, again;
  std::thread home([&] {
    first = allocate_n(frame_count, small_frame);
    std::thread other([&] { free_all(first, small_frame); });  // exits without flushing
    other.join();
    again = allocate_n(frame_count, small_frame);
    free_all(again, small_frame);
  });
  home.join();
  check_same_frames(first, again);
}

TEST_CASE("one thread returning frames of several homes gives each home exactly its own") {
  frame_flush_remote();
  constexpr std::size_t homes = 11;  // more homes than batch slots: slots are shared and evicted
  std::vector<std::vector<void*>> first(homes), again(homes);
  corio_test::thread_latch allocated{homes};
  corio_test::thread_latch freed{1};
  std::vector<std::thread> threads;
  for (std::size_t h = 0; h < homes; ++h) {
    threads.emplace_back([&, h] {
      first[h] = allocate_n(frame_count, small_frame);
      allocated.count_down();
      freed.wait();
      again[h] = allocate_n(frame_count, small_frame);
      free_all(again[h], small_frame);
    });
  }
  allocated.wait();
  // Interleaved: the home changes at every free.
  for (std::size_t i = 0; i < frame_count; ++i) {
    for (std::size_t h = 0; h < homes; ++h) frame_deallocate(first[h][i], small_frame);
  }
  frame_flush_remote();
  freed.count_down();
  for (auto& t : threads) t.join();
  for (std::size_t h = 0; h < homes; ++h) check_same_frames(first[h], again[h]);
}

TEST_CASE("frames outliving their thread can be freed later, before and after the home is reused") {
  frame_flush_remote();
  std::vector<void*> held;
  std::thread([&] { held = allocate_n(2 * frame_count, small_frame); }).join();
  // The home's thread has exited: these go back to ::operator delete (ASan: no leak, no reuse).
  for (std::size_t i = 0; i < frame_count; ++i) frame_deallocate(held[i], small_frame);
  frame_flush_remote();

  // A new thread (possibly reusing the exited thread's home) runs while the rest are freed here.
  corio_test::thread_latch started{1};
  corio_test::thread_latch freed{1};
  bool distinct = false;
  std::thread later([&] {
    auto mine = allocate_n(frame_count, small_frame);
    started.count_down();
    freed.wait();
    auto more = allocate_n(2 * frame_count, small_frame);
    std::vector<void*> all = mine;
    all.insert(all.end(), more.begin(), more.end());
    distinct = as_set(all).size() == all.size();
    free_all(all, small_frame);
  });
  started.wait();
  for (std::size_t i = frame_count; i < held.size(); ++i) frame_deallocate(held[i], small_frame);
  frame_flush_remote();
  freed.count_down();
  later.join();
  CHECK(distinct);
}

TEST_CASE("frames too large for the size classes may also be freed on another thread") {
  const std::size_t sizes[] = {corio::detail::frame_max_cached_bytes + 1, 10'000, 100'000};
  std::vector<void*> frames;
  for (std::size_t s : sizes) {
    frames.push_back(frame_allocate(s));
    std::memset(frames.back(), 1, s);
  }
  std::thread([&] {
    for (std::size_t i = 0; i < frames.size(); ++i) frame_deallocate(frames[i], sizes[i]);
  }).join();
}

TEST_CASE("threads freeing each other's frames never see one frame twice and lose none") {
  constexpr std::size_t threads = 4;
  const std::size_t per_thread = scaled(100'000);
  const std::uint64_t seed = corio_test::test_seed();

  struct message {
    void* frame;
    std::size_t bytes;
    unsigned char fill;
  };
  struct mailbox {
    std::mutex mutex;
    std::deque<message> queue;
  };
  std::vector<mailbox> boxes(threads);

  std::mutex live_mutex;
  std::unordered_set<void*> live;
  std::atomic<std::size_t> duplicates{0}, corrupted{0}, unknown{0}, allocated{0}, freed{0};
  std::atomic<std::size_t> producers_done{0};

  auto release = [&](const message& m) {
    const auto* p = static_cast<const unsigned char*>(m.frame);
    if (!std::all_of(p, p + m.bytes, [&](unsigned char c) { return c == m.fill; })) ++corrupted;
    {
      std::lock_guard<std::mutex> lock{live_mutex};
      if (live.erase(m.frame) != 1) ++unknown;
    }
    frame_deallocate(m.frame, m.bytes);
    ++freed;
  };

  auto run = [&](std::size_t me) {
    std::mt19937_64 random{seed + me};
    std::vector<message> own;  // frames this thread keeps a while and frees itself
    auto drain = [&](std::size_t limit) {
      std::size_t n = 0;
      while (n < limit) {
        message m;
        {
          std::lock_guard<std::mutex> lock{boxes[me].mutex};
          if (boxes[me].queue.empty()) break;
          m = boxes[me].queue.front();
          boxes[me].queue.pop_front();
        }
        release(m);
        ++n;
      }
      return n;
    };
    for (std::size_t k = 0; k < per_thread; ++k) {
      const std::uint64_t r = random();
      // Mostly small frames (a few classes), some up to the largest class, a few over it.
      std::size_t bytes = 16 + r % 300;
      if (r % 16 == 0) bytes = 1 + (r >> 8) % (corio::detail::frame_max_cached_bytes + 500);
      const message m{frame_allocate(bytes), bytes, static_cast<unsigned char>(r >> 40)};
      std::memset(m.frame, m.fill, bytes);
      {
        std::lock_guard<std::mutex> lock{live_mutex};
        if (!live.insert(m.frame).second) ++duplicates;
      }
      ++allocated;
      const std::size_t target = (me + 1 + (r >> 20) % (threads - 1)) % threads;  // another thread
      bool sent = false;
      if ((r >> 30) % 4 != 0) {
        std::lock_guard<std::mutex> lock{boxes[target].mutex};
        if (boxes[target].queue.size() < 512) {
          boxes[target].queue.push_back(m);
          sent = true;
        }
      }
      if (!sent) own.push_back(m);
      if (own.size() > 64 || (r >> 50) % 8 == 0) {
        while (!own.empty() && own.size() > (r >> 56) % 16) {
          release(own.back());
          own.pop_back();
        }
      }
      drain(4);
      if ((r >> 60) == 0) frame_flush_remote();  // sometimes, as a parking worker does
    }
    for (const auto& m : own) release(m);
    ++producers_done;
    // Keep taking frames until every producer is done and the mailbox is empty; then exit, which
    // returns this thread's pending batches (some homes' threads have already exited).
    while (true) {
      const bool all_done = producers_done.load() == threads;
      if (drain(64) == 0 && all_done) break;
      std::this_thread::yield();
    }
  };

  std::vector<std::thread> pool;
  for (std::size_t i = 0; i < threads; ++i) pool.emplace_back(run, i);
  for (auto& t : pool) t.join();

  CHECK(duplicates.load() == 0);
  CHECK(corrupted.load() == 0);
  CHECK(unknown.load() == 0);
  CHECK(allocated.load() == threads * per_thread);
  CHECK(freed.load() == allocated.load());
  CHECK(live.empty());
}

TEST_SUITE_END();
