// Helpers shared by the test suites.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <string>
#include <string_view>

#if defined(_WIN32)
// Two kernel32 functions, declared here rather than through windows.h and its macros.
extern "C" __declspec(dllimport) void* __stdcall GetCurrentProcess();
extern "C" __declspec(dllimport) int __stdcall GetProcessHandleCount(void* process, unsigned long* count);
#endif
#if defined(__linux__)
#include <sys/prctl.h>
#include <unistd.h>
#endif

#ifndef CORIO_STRESS_SCALE
#define CORIO_STRESS_SCALE 100
#endif

namespace corio_test {

/// `full` scaled by the build's stress scale (percent; CI lowers it under sanitizers), at least 1.
/// CORIO_STRESS_SCALE in the environment overrides the build's value.
inline std::size_t scaled(std::size_t full) {
  long scale = CORIO_STRESS_SCALE;
  if (const char* env = std::getenv("CORIO_STRESS_SCALE")) scale = std::strtol(env, nullptr, 10);
  const auto n = full * static_cast<std::size_t>(scale > 0 ? scale : 1) / 100;
  return n == 0 ? 1 : n;
}

/// The seed for a randomized test: CORIO_TEST_SEED if set (to replay a failure), otherwise random.
/// Printed through doctest so that a failing run shows it.
inline std::uint64_t test_seed() {
  std::uint64_t seed = 0;
  if (const char* env = std::getenv("CORIO_TEST_SEED")) {
    seed = std::strtoull(env, nullptr, 10);
  } else {
    seed = std::random_device{}();
    seed = (seed << 32) ^ std::random_device{}();
  }
  MESSAGE("seed " << seed << " (replay with CORIO_TEST_SEED=" << seed << ")");
  return seed;
}

/// The sum over a runtime's workers of one per-worker counter of its stats(), e.g.
/// `worker_sum(rt, &corio::worker_stats::io_submitted)`.
template <class Runtime, class Field>
std::uint64_t worker_sum(const Runtime& rt, Field field) {
  std::uint64_t n = 0;
  for (const auto& w : rt.stats().workers) n += w.*field;
  return n;
}

/// Open descriptors of this process (entries of /proc/self/fd, minus the one used to list it); on
/// Windows its open handles (sockets included).
inline std::size_t open_descriptors() {
#if defined(_WIN32)
  unsigned long handles = 0;
  (void)::GetProcessHandleCount(::GetCurrentProcess(), &handles);
  return handles;
#else
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n - 1;
#endif
}

/// std::latch's count_down() and wait(), on a mutex and a condition variable, for tests that
/// coordinate plain threads: libstdc++ 12's std::latch (an atomic wait) never returned in a
/// mingw-w64 build run under Wine, while mutexes and condition variables work there.
class thread_latch {
 public:
  explicit thread_latch(std::ptrdiff_t count) : count_(count) {}
  void count_down(std::ptrdiff_t n = 1) {
    std::lock_guard lock{mutex_};
    count_ -= n;
    if (count_ <= 0) zero_.notify_all();
  }
  void wait() {
    std::unique_lock lock{mutex_};
    zero_.wait(lock, [this] { return count_ <= 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable zero_;
  std::ptrdiff_t count_;
};

/// A hang guard: aborts the process, naming `what`, if it is still alive after `limit`. For tests
/// whose failure mode is a wait that never ends (a lost wake-up, a lost readiness event); the
/// limit is generous, never part of what the test checks.
class hang_guard {
 public:
  hang_guard(std::string what, std::chrono::seconds limit)
      : thread_([this, what = std::move(what), limit] {
          std::unique_lock lock{mutex_};
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "hang guard: '%s' still running after %llds; aborting\n", what.c_str(),
                         static_cast<long long>(limit.count()));
            print_all_stacks();
            std::abort();
          }
        }) {}
  hang_guard(const hang_guard&) = delete;
  hang_guard& operator=(const hang_guard&) = delete;

  /// Prints every thread's stack of this process to stderr with gdb, when gdb is installed (Linux;
  /// bounded to 60 s), so that a hang in CI shows where each worker waits.
  static void print_all_stacks() {
#if defined(__linux__)
    if (std::system("command -v gdb >/dev/null 2>&1") != 0) {
      std::fprintf(stderr, "hang guard: no gdb, no stacks\n");
      return;
    }
    (void)::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);  // Yama: let the child attach to us
    const std::string cmd =
        fmt::format("timeout 60 gdb -q -batch -p {} -ex 'thread apply all bt 40' 1>&2 2>/dev/null", ::getpid());
    std::fflush(stderr);
    (void)std::system(cmd.c_str());
#endif
  }
  ~hang_guard() {
    {
      std::lock_guard lock{mutex_};
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

/// Sets an environment variable for the life of the object and restores the previous state.
class scoped_env {
 public:
  scoped_env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(name, value);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;
  ~scoped_env() { set(name_.c_str(), old_ ? old_->c_str() : nullptr); }

 private:
  static void set(const char* name, const char* value) {
#if defined(_WIN32)
    ::_putenv_s(name, value != nullptr ? value : "");  // an empty value removes the variable
#else
    if (value != nullptr) ::setenv(name, value, 1);
    else ::unsetenv(name);
#endif
  }

  std::string name_;
  std::optional<std::string> old_;
};

/// Counts live instances: each constructed object is destroyed exactly once (cppcoro's counted).
struct counted {
  static inline std::atomic<long> constructed{0};
  static inline std::atomic<long> destroyed{0};
  static void reset() {
    constructed = 0;
    destroyed = 0;
  }
  static long alive() { return constructed.load() - destroyed.load(); }

  int id = 0;
  explicit counted(int i = 0) : id(i) { ++constructed; }
  counted(const counted& o) : id(o.id) { ++constructed; }
  counted(counted&& o) noexcept : id(o.id) { ++constructed; }
  counted& operator=(const counted&) = default;
  counted& operator=(counted&&) noexcept = default;
  ~counted() { ++destroyed; }
};

/// An aggregate that owns heap memory and counts its lives, as user code sends through channels
/// and passes to coroutines. g++ 12.2 destroys the members of such an aggregate twice when it is
/// built inside a `co_await` expression (`co_await ch.send(parcel{...})`, GCC PR 101976, README):
/// the tests build it in a statement of its own or in a function, the forms the README gives.
struct parcel {
  int id = 0;
  std::string text;  ///< longer than the small-string buffer: on the heap, so ASan sees a double free
  counted mark;
};

/// A parcel built inside a function (not in the awaiting coroutine's expression).
inline parcel make_parcel(int id) { return parcel{id, std::string(40, static_cast<char>('a' + id % 26)), counted{id}}; }

/// A fresh directory under the system's temporary directory, removed with everything in it by the destructor.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
#if defined(_WIN32)
    std::random_device random;
    for (int attempt = 0; attempt < 100 && path.empty(); ++attempt) {
      auto candidate = std::filesystem::temp_directory_path() / fmt::format("corio_test_{:08x}", random());
      if (std::filesystem::create_directory(candidate)) path = candidate;
    }
    REQUIRE(!path.empty());
#else
    std::string pattern = (std::filesystem::temp_directory_path() / "corio_test_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
#endif
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  [[nodiscard]] std::string operator/(std::string_view name) const { return (path / name).string(); }
};

}  // namespace corio_test
