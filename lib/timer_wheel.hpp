// lib/timer_wheel.hpp - a hierarchical timing wheel (Varghese and Lauck, "Hashed and hierarchical
// timing wheels", SOSP 1987; the shape of Tokio's time driver). Header-only, allocation-free,
// intrusive, and independent of the rest of corio.
//
// Time is an abstract tick count (std::uint64_t). Converting clock time to ticks is the caller's
// job; to never fire early, round a deadline UP to the next tick and the current time DOWN.
//
// Layout: 6 levels of 64 slots. Slot s of level l covers 64^l ticks, so level l as a whole covers
// 64^(l+1) ticks and the six levels cover 64^6 = 2^36 ticks. Each level has a 64-bit occupancy
// bitmap (bit s set iff slot s is non-empty). An entry with deadline d, inserted when the wheel's
// time is `now` (d > now), goes to the level of the highest bit in which d and now differ,
// divided by 6:
//     level = (bit_width((now ^ d) | 63) - 1) / 6,   slot = (d >> 6*level) & 63.
// So a level-l entry is in the same 64^(l+1)-tick block as `now` but in a later 64^l-tick block:
// level 0 slots hold exactly one tick each; every entry of level l is due later than every entry
// of level l-1. A deadline whose level would be 6 or more (it is in a later 2^36-tick block than
// `now`) goes to an unsorted overflow list, together with a lower bound of its minimum deadline.
// A deadline <= now goes to the "due" list and fires at the start of the next advance.
//
// advance(t) repeatedly takes the earliest expiration: the first occupied slot at or after the
// current position of the lowest non-empty level (one masked count-trailing-zeros per level),
// or, when all six levels are empty, the start of the 2^36-tick block of the overflow list's
// lower bound. If that tick is <= t, the wheel's time jumps there and the slot (or list) is
// emptied: entries whose deadline is that tick fire, the others are re-inserted relative to the
// new time and so move down a level (a "cascade"; overflow entries still out of range go back to
// the overflow list). An entry cascades at most 5 times, and empty stretches are skipped in
// O(levels) per occupied slot, so a gap of 2^40 ticks with a few timers costs a few dozen steps.
// next_deadline() is the tick of that earliest expiration: exact for level 0, the slot's start
// (<= every deadline in it) for higher levels, and the tracked lower bound for the overflow list.
//
// Lists: each slot, the overflow list, the due list and a "processing" list are intrusive doubly
// linked lists; timer_entry::slot_index names the list an entry is on (or not_inserted), which is
// what makes cancel O(1) and a no-op for an entry that is not inserted.
//
// Thread-safety: none. A wheel and its entries belong to one owner thread.
#pragma once

#include "corio/detail/timer_entry.hpp"

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

namespace corio::detail {

// timer_entry is in corio/detail/timer_entry.hpp: timers live in task frames, so awaiters in
// public headers embed it.


/// A hierarchical timing wheel of timer_entry (see the top of this file for the design).
/// Not thread-safe: every member is to be called from the one thread that owns the wheel.
/// Destroying the wheel leaves any entries still inserted marked inserted; drain() first if they
/// outlive it.
class timer_wheel {
 public:
  /// Bits of the tick per level: each level has 2^level_bits = 64 slots.
  static constexpr unsigned level_bits = 6;
  /// Slots per level.
  static constexpr std::uint32_t slots_per_level = 1u << level_bits;
  /// Number of levels.
  static constexpr std::uint32_t levels = 6;
  /// Ticks covered by the levels: 64^6 = 2^36. Deadlines further away go to the overflow list.
  static constexpr std::uint64_t range_ticks = std::uint64_t{1} << (level_bits * levels);

  /// An empty wheel whose time (now()) is `start_tick` ticks. O(1). Not copyable or movable
  /// (inserted entries are linked to it).
  explicit timer_wheel(std::uint64_t start_tick = 0) noexcept : now_(start_tick) {}
  timer_wheel(const timer_wheel&) = delete;
  timer_wheel& operator=(const timer_wheel&) = delete;

  /// Inserts `e` to fire at e.deadline_tick (ticks, absolute). O(1), never allocates.
  /// A deadline <= now() is due: the entry fires at the start of the next advance(), even one to
  /// the same tick. Inserting an entry that is already inserted in this wheel moves it (cancel,
  /// then insert); it must not be inserted in another wheel. May be called from on_fire. Owner
  /// thread only.
  void insert(timer_entry& e) noexcept {
    if (e.inserted()) cancel(e);
    place(e);
    ++size_;
  }

  /// Removes `e` so that it does not fire. O(1). A no-op when `e` is not inserted (never
  /// inserted, already fired, cancelled or drained). `e` must not be inserted in another wheel.
  /// May be called from on_fire, for any entry. Owner thread only.
  void cancel(timer_entry& e) noexcept {
    if (!e.inserted()) return;
    unlink(e);
    --size_;
  }

  /// Moves the wheel's time forward to `now_tick` (ticks; a value below now() counts as now())
  /// and calls `on_fire(timer_entry&)` once for each entry that is due: first the entries that
  /// were due when inserted (deadline <= now() at insert), in insertion order, then every entry
  /// with deadline_tick <= now_tick in nondecreasing deadline_tick order (same tick: any order).
  /// So the order is nondecreasing in max(deadline_tick, now() at insert). Returns how many fired.
  ///
  /// Each entry is unlinked (not inserted) before on_fire sees it. on_fire may insert and cancel
  /// any entries, including the one it was given, but must not call advance() or drain().
  /// During on_fire, now() is the tick being processed: the entry's deadline_tick for an entry
  /// that waited in the wheel, the previous now() for one that was due when inserted. An entry
  /// inserted from on_fire with a deadline later than that now() and <= now_tick fires in this
  /// same advance (in order); one with a deadline <= now() is due and fires at the next advance,
  /// so a callback that re-inserts without moving the deadline forward cannot livelock.
  ///
  /// If on_fire throws, the exception propagates; the entry counts as fired and the wheel stays
  /// consistent: entries not yet fired fire at the next advance. now() is then somewhere between
  /// its old value and now_tick.
  ///
  /// Complexity: O(fired + cascades + levels * occupied slots passed), independent of
  /// now_tick - now(): empty slots and levels are skipped with the occupancy bitmaps. An entry
  /// cascades (moves down a level) at most 5 times; an overflow pass, at most one per 2^36-tick
  /// block that holds an overflow deadline, walks the whole overflow list. Owner thread only.
  template <class F>
  std::size_t advance(std::uint64_t now_tick, F&& on_fire) {
    // Leftovers of an advance whose on_fire threw, then what became due on insert.
    std::size_t fired = run_list(processing_list, on_fire);
    if (heads_[due_list] != nullptr) {
      move_list(due_list, processing_list);  // reverses the LIFO due list: insertion order
      fired += run_list(processing_list, on_fire);
    }
    if (now_tick < now_) now_tick = now_;
    for (;;) {
      const expiration x = next_expiration();
      if (x.list == no_list || x.tick > now_tick) break;
      now_ = x.tick;
      if (x.list == overflow_list) {
        move_list(overflow_list, processing_list);  // an on_fire may cancel any of them meanwhile
        fired += run_list(processing_list, on_fire);
      } else {
        fired += run_list(x.list, on_fire);
      }
    }
    now_ = now_tick;
    return fired;
  }

  /// The earliest tick at which something may fire, or nullopt when the wheel is empty. Never
  /// later than the earliest deadline_tick of any inserted entry, so waiting until it never
  /// oversleeps; it may be earlier: for an entry on level l > 0 it is the start of the entry's
  /// slot (a multiple of 64^l), and for the overflow list a lower bound of its minimum. Advancing
  /// to it may then fire nothing (only cascade); ask again afterwards. Returns now() when some
  /// entry is due (inserted with a deadline <= now()); otherwise, outside on_fire, the result is
  /// > now(). O(levels). Owner thread only.
  [[nodiscard]] std::optional<std::uint64_t> next_deadline() const noexcept {
    if (heads_[due_list] != nullptr || heads_[processing_list] != nullptr) return now_;
    const expiration x = next_expiration();
    if (x.list == no_list) return std::nullopt;
    return x.list == overflow_list ? overflow_min_ : x.tick;
  }

  /// Unlinks every inserted entry without firing it and calls `on_remove(timer_entry&)` for each
  /// (after unlinking it), in no particular order; now() does not change. Returns how many.
  /// Entries that on_remove inserts stay inserted. O(size + number of lists (387)). For shutdown:
  /// entries must not outlive their wheel while inserted. Owner thread only.
  template <class F>
  std::size_t drain(F&& on_remove) {
    std::size_t n = 0;
    for (std::uint32_t list = 0; list < list_count; ++list) {
      while (timer_entry* e = heads_[list]) {
        unlink(*e);
        --size_;
        ++n;
        on_remove(*e);
      }
    }
    return n;
  }

  /// Number of inserted entries. O(1). Owner thread only.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// True when no entry is inserted. O(1). Owner thread only.
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// The wheel's time in ticks: the last advance()'s now_tick (or the start tick); during
  /// on_fire, the tick being processed (see advance). O(1). Owner thread only.
  [[nodiscard]] std::uint64_t now() const noexcept { return now_; }

 private:
  static constexpr std::uint32_t wheel_slots = levels * slots_per_level;  // lists 0..383
  static constexpr std::uint32_t overflow_list = wheel_slots;             // beyond range_ticks
  static constexpr std::uint32_t due_list = wheel_slots + 1;              // deadline <= now at insert
  static constexpr std::uint32_t processing_list = wheel_slots + 2;       // being fired or re-placed
  static constexpr std::uint32_t list_count = wheel_slots + 3;
  static constexpr std::uint32_t no_list = timer_entry::not_inserted;
  static constexpr std::uint64_t no_tick = std::numeric_limits<std::uint64_t>::max();

  struct expiration {
    std::uint32_t list;  // a wheel slot, overflow_list, or no_list
    std::uint64_t tick;  // the tick at which it is processed
  };

  /// Puts `e` on the list its deadline belongs to relative to now_ (size_ unchanged).
  void place(timer_entry& e) noexcept {
    const std::uint64_t d = e.deadline_tick;
    if (d <= now_) {
      push(e, due_list);
      return;
    }
    const std::uint64_t masked = (now_ ^ d) | (slots_per_level - 1);
    const auto level = static_cast<std::uint32_t>(63 - std::countl_zero(masked)) / level_bits;
    if (level >= levels) {
      push(e, overflow_list);
      if (d < overflow_min_) overflow_min_ = d;
      return;
    }
    const auto slot = static_cast<std::uint32_t>(d >> (level * level_bits)) & (slots_per_level - 1);
    push(e, level * slots_per_level + slot);
    occupied_[level] |= std::uint64_t{1} << slot;
  }

  void push(timer_entry& e, std::uint32_t list) noexcept {
    timer_entry* head = heads_[list];
    e.prev = nullptr;
    e.next = head;
    if (head != nullptr) head->prev = &e;
    heads_[list] = &e;
    e.slot_index = list;
  }

  /// Takes `e` off its list (size_ unchanged); keeps the bitmaps and overflow_min_ up to date.
  void unlink(timer_entry& e) noexcept {
    const std::uint32_t list = e.slot_index;
    assert(list < list_count);
    if (e.next != nullptr) e.next->prev = e.prev;
    if (e.prev != nullptr) {
      e.prev->next = e.next;
    } else {
      heads_[list] = e.next;
      if (e.next == nullptr) {
        if (list < wheel_slots) {
          occupied_[list / slots_per_level] &= ~(std::uint64_t{1} << (list % slots_per_level));
        } else if (list == overflow_list) {
          overflow_min_ = no_tick;
        }
      }
    }
    e.prev = nullptr;
    e.next = nullptr;
    e.slot_index = timer_entry::not_inserted;
  }

  /// Moves every entry of list `from` to the front of list `to`, reversing their order. O(n).
  void move_list(std::uint32_t from, std::uint32_t to) noexcept {
    while (timer_entry* e = heads_[from]) {
      unlink(*e);
      push(*e, to);
    }
  }

  /// Empties `list` one entry at a time (so that on_fire may cancel the others): entries due at
  /// now_ fire, the others are placed again relative to now_, which never puts them back on
  /// `list` (a later deadline in the same slot would be on a lower level now).
  template <class F>
  std::size_t run_list(std::uint32_t list, F& on_fire) {
    std::size_t fired = 0;
    while (timer_entry* e = heads_[list]) {
      unlink(*e);
      if (e->deadline_tick <= now_) {
        --size_;
        ++fired;
        on_fire(*e);
      } else {
        place(*e);
        assert(e->slot_index != list);
      }
    }
    return fired;
  }

  /// The earliest list to process and its tick: the first occupied slot at or after the current
  /// position of the lowest non-empty level (lower levels always expire first), else the
  /// overflow list at the start of the 2^36-tick block holding its minimum. O(levels).
  [[nodiscard]] expiration next_expiration() const noexcept {
    for (std::uint32_t level = 0; level < levels; ++level) {
      const unsigned shift = level * level_bits;
      const auto position = static_cast<unsigned>(now_ >> shift) & (slots_per_level - 1);
      const std::uint64_t pending = occupied_[level] & (~std::uint64_t{0} << position);
      if (pending == 0) continue;
      const auto slot = static_cast<std::uint32_t>(std::countr_zero(pending));
      const std::uint64_t block = now_ & ~((std::uint64_t{1} << (shift + level_bits)) - 1);
      return {level * slots_per_level + slot, block + (std::uint64_t{slot} << shift)};
    }
    if (heads_[overflow_list] != nullptr) return {overflow_list, overflow_min_ & ~(range_ticks - 1)};
    return {no_list, no_tick};
  }

  std::uint64_t now_;
  std::uint64_t overflow_min_ = no_tick;  // <= every overflow deadline (exact until a cancel)
  std::size_t size_ = 0;
  std::array<std::uint64_t, levels> occupied_{};
  std::array<timer_entry*, list_count> heads_{};
};

}  // namespace corio::detail
