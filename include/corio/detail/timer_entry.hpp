// corio/detail/timer_entry.hpp - the intrusive node of a worker's timer wheel (lib/timer_wheel.hpp).
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <cstdint>

namespace corio::detail {

/// A timer, owned by the caller (typically inside a suspended coroutine's frame); the wheel only
/// links it into its lists and never allocates. Set deadline_tick (and context) before insert.
/// Must not be moved, copied over or destroyed while inserted: cancel it first. 40 bytes.
struct timer_entry {
  /// slot_index of an entry that is on no list (never inserted, fired, cancelled or drained).
  static constexpr std::uint32_t not_inserted = 0xffff'ffffu;

  /// Absolute tick at or after which the entry fires. Read by the wheel; change it only while
  /// the entry is not inserted.
  std::uint64_t deadline_tick = 0;
  /// List links; owned by the wheel while inserted (null otherwise).
  timer_entry* prev = nullptr;
  timer_entry* next = nullptr;
  /// The list the entry is on: level * 64 + slot for a wheel slot (0..383), or one of the wheel's
  /// overflow / due / processing lists (384..386), or not_inserted. Owned by the wheel.
  std::uint32_t slot_index = not_inserted;
  /// Caller data (e.g. a coroutine handle's address); the wheel never reads or writes it.
  void* context = nullptr;

  /// True while the entry is on one of a wheel's lists (inserted, not yet fired or cancelled).
  [[nodiscard]] bool inserted() const noexcept { return slot_index != not_inserted; }
};

static_assert(sizeof(timer_entry) <= 48);

}  // namespace corio::detail
