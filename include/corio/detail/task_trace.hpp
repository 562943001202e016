// corio/detail/task_trace.hpp - what a task's frames record for the task dump and the stall
// report: where each coroutine is suspended (the file:line of its co_await) and what it waits for.
//
// Every co_await in a corio task goes through promise_base::await_transform, which also takes the
// std::source_location of the co_await expression (a default argument, evaluated where the
// compiler calls await_transform: the co_await itself). When the task suspends there, stop_aware
// (task.hpp) writes into the suspending coroutine's promise, with relaxed stores and before the
// awaiter's own await_suspend publishes the task to a waker: the location, a pointer to the static
// wait_info of the awaiter's type, and a word the awaiter gives about its object (a channel's
// address, a descriptor, a deadline, the task it awaits). Awaiting another task records that task's
// promise as the object: the chain from a spawned task's frame down to the innermost suspended
// coroutine is the task's async stack, which the dump walks from the root (Go's goroutine dump is the
// model for what is printed; the recording idea is P2074's and folly's async stack traces).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <atomic>
#include <bit>
#include <cstdint>
#include <source_location>
#include <type_traits>

namespace corio::detail {

/// What a suspended coroutine waits for; each awaiter type names its kind with
/// `static constexpr wait_kind corio_wait = wait_kind::...;` and, when it has an object to name, a
/// `std::uintptr_t corio_wait_object() const noexcept` (the meaning of the word is the kind's).
enum class wait_kind : std::uint8_t {
  other,         ///< an awaiter that names no kind: the dump prints its type
  child,         ///< awaits another task inline (object: that task's promise_base*)
  join,          ///< awaits a spawned task's join_handle (object: the task's promise_base*)
  when_all,      ///< awaits a when_all (object: the awaiter's fork_group*, whose children the dump lists)
  channel_recv,  ///< receives on a channel (object: the channel's shared state)
  channel_send,  ///< sends on a channel (object: the channel's shared state)
  select,        ///< a select over several channels (object: the number of cases)
  io,            ///< an I/O operation (object: io_opcode << 32 | descriptor)
  sleep,         ///< sleeps until a deadline (object: the deadline in ns of corio::clock's epoch)
  yield,         ///< yielded: queued to run again (no object)
  mutex,         ///< a corio::mutex or shared_mutex (object: its address)
  semaphore,     ///< a corio::semaphore (object: its address)
  condition,     ///< a condition_variable, event, latch or wait_group (object: its address)
  signal,        ///< a corio::signal_set wait (no object)
  blocking,      ///< a job on the blocking pool (no object)
  finished,      ///< a when_all child that has finished, its parent not resumed yet (no object)
};

/// Per awaiter type: its kind and its type's name (as the compiler spells a function's signature:
/// the dump cuts the name out). Static data: the promise keeps a pointer to it.
struct wait_info {
  wait_kind kind;
  const char* signature;  ///< __PRETTY_FUNCTION__ of awaiter_signature<A>, or null
};

template <class A>
constexpr const char* awaiter_signature() noexcept {
#if defined(__GNUC__) || defined(__clang__)
  return __PRETTY_FUNCTION__;
#else
  return nullptr;
#endif
}

template <class A>
constexpr wait_kind wait_kind_of() noexcept {
  if constexpr (requires { std::remove_cvref_t<A>::corio_wait; }) {
    return std::remove_cvref_t<A>::corio_wait;
  } else {
    return wait_kind::other;
  }
}

/// The wait_info of awaiter type `A` (one object per type).
template <class A>
inline constexpr wait_info wait_info_of{wait_kind_of<A>(), awaiter_signature<std::remove_cvref_t<A>>()};

/// The record a when_all child leaves when it finishes (finish_grouped, lib/spawn.cpp).
inline constexpr wait_info finished_wait_info{wait_kind::finished, nullptr};

/// True when awaiter type `A` names an object word (corio_wait_object).
template <class A>
concept has_wait_object = requires(const std::remove_cvref_t<A>& a) { a.corio_wait_object(); };

/// The object word of awaiter `a` (0 when its type names none).
template <class A>
std::uintptr_t wait_object_of(const A& a) noexcept {
  if constexpr (requires { a.corio_wait_object(); }) {
    return a.corio_wait_object();
  } else {
    (void)a;
    return 0;
  }
}

/// A std::source_location as one word, when the standard library keeps it as one pointer (GCC's
/// libstdc++ and LLVM's libc++ do); 0 elsewhere (the dump then prints no file:line).
inline constexpr bool source_location_is_word =
    sizeof(std::source_location) == sizeof(std::uintptr_t) && std::is_trivially_copyable_v<std::source_location>;
inline std::uintptr_t location_word(const std::source_location& l) noexcept {
  if constexpr (source_location_is_word) {
    return std::bit_cast<std::uintptr_t>(l);
  } else {
    (void)l;
    return 0;
  }
}

/// The ms of the coarse clock (below) for the times the dump shows: a task's spawn and the start of
/// its wait. Written by the workers when they park and wake and by the stall watchdog on each look
/// (so to within stall_threshold/2 under load); 0 until a runtime first wrote it. Any thread.
extern CORIO_API std::atomic<std::uint32_t> coarse_ms;
/// Sets coarse_ms from the steady clock (ms since the first call in the process). Any thread.
CORIO_API void update_coarse_ms() noexcept;

/// Frames to be freed while a task dump or a stall report reads frames are kept until it ends
/// (promise_base::operator delete; see docs/internals.md, "The task dump"). Non-zero while one reads.
extern CORIO_API std::atomic<std::uint32_t> frame_free_deferred;
/// Keeps `frame` of `bytes` bytes until the dump that is reading frames ends (then frees it).
CORIO_API void defer_frame_free(void* frame, std::size_t bytes) noexcept;

/// The tag every corio task's promise carries (the low half of promise_base::trace_word_), so
/// that the stall report can tell a task's frame from another coroutine's before it reads more
/// of it.
inline constexpr std::uint32_t task_trace_tag = 0x636f7269;  // "cori"

}  // namespace corio::detail
