// lib/task_local.cpp - the bindings of corio::task_local, keyed by the stop state of the task.
//
// A binding lives in the frame of the scope that made it and is found through a global table
// from the stop state the scope runs under to its innermost binding (a list through `outer`). The
// key is the task's stop state, not the thread, so a binding follows its task from worker to
// worker, and a task that binds nothing pays nothing. The table is sharded by the stop state's
// address so that tasks on different workers rarely share a lock.
#include "corio/task_local.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "corio/detail/park.hpp"
#include "corio/when_all.hpp"

namespace corio::detail {

namespace {

struct shard {
  spin_lock lock;
  std::unordered_map<const stop_state*, task_local_binding*> heads;  ///< under lock
};

constexpr std::size_t shard_count = 64;

shard& shard_of(const stop_state* s) noexcept {
  static std::array<shard, shard_count> shards;
  const auto a = reinterpret_cast<std::uintptr_t>(s);
  return shards[(a >> 6 ^ a >> 12) % shard_count];
}

/// The stop state whose bindings a task running under `s` also sees once its own have none for a
/// key: a timeout's scope sees the task's state (its parent), a when_all child the state of the
/// task awaiting the when_all (alive while the child runs). A spawned task sees nothing above it.
const stop_state* enclosing(const stop_state* s) noexcept {
  if (s->task_ == nullptr) return s->parent();  // a timeout's scope: the task it runs in
  const spawn_state& sp = s->task_->spawn_;
  if (sp.group != nullptr) return sp.group->parent_stop;  // a when_all child: its awaiter
  return nullptr;
}

}  // namespace

void bind_task_local(task_local_binding& b) {
  stop_state* s = current_stop();
  if (s == nullptr) {
    throw std::logic_error("corio::task_local::scope: not in a task on a runtime (or inside shield())");
  }
  b.owner = s;
  shard& sh = shard_of(s);
  spin_guard g{sh.lock};
  auto [it, inserted] = sh.heads.try_emplace(s, &b);
  if (!inserted) {
    b.outer = it->second;
    it->second = &b;
  }
}

void unbind_task_local(task_local_binding& b) noexcept {
  shard& sh = shard_of(b.owner);
  spin_guard g{sh.lock};
  auto it = sh.heads.find(b.owner);
  if (it == sh.heads.end()) return;
  // Scopes of one task end innermost first, so `b` is the head; a search keeps it right anyway.
  task_local_binding** link = &it->second;
  while (*link != nullptr && *link != &b) link = &(*link)->outer;
  if (*link == &b) *link = b.outer;
  if (it->second == nullptr) sh.heads.erase(it);
}

const void* find_task_local(const void* key) noexcept {
  for (const stop_state* s = current_stop(); s != nullptr; s = enclosing(s)) {
    shard& sh = shard_of(s);
    spin_guard g{sh.lock};
    auto it = sh.heads.find(s);
    if (it == sh.heads.end()) continue;
    for (const task_local_binding* b = it->second; b != nullptr; b = b->outer) {
      if (b->key == key) return b->value;
    }
  }
  return nullptr;
}

}  // namespace corio::detail
