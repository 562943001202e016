// corio/task_local.hpp - values bound to a task for a scope, that follow it across workers.
#pragma once

// clang-format off: first of all, the C++20 check (one clear error) and CORIO_API.
#include "corio/detail/config.hpp"
// clang-format on

#include <stdexcept>
#include <type_traits>
#include <utility>

#include "corio/task.hpp"

namespace corio {

namespace detail {

/// One binding of a task_local: lives in the frame of the scope that made it, keyed by the stop
/// state that scope runs under (`owner`). Defined and looked up in lib/task_local.cpp.
struct task_local_binding {
  const void* key = nullptr;            ///< the task_local object
  const void* value = nullptr;          ///< the bound value (a T in the scope's frame)
  stop_state* owner = nullptr;          ///< the stop state of the task running the scope
  task_local_binding* outer = nullptr;  ///< the binding it shadows on the same owner, if any
};

/// Binds `b` (key and value set) to the calling task's current stop state. Throws
/// std::logic_error outside a task of a runtime. Thread running the task only.
CORIO_API void bind_task_local(task_local_binding& b);
/// Ends the binding `b` (bind_task_local succeeded). Never throws.
CORIO_API void unbind_task_local(task_local_binding& b) noexcept;
/// The value bound to `key` in the calling task (its innermost scope, then the task awaiting a
/// when_all or when_any it is a child of, and so on up), or null.
CORIO_API const void* find_task_local(const void* key) noexcept;

}  // namespace detail

/// A value bound to a task for a scope: `static corio::task_local<std::string> request_id;`, then
/// `co_await request_id.scope("r-42", handle(req));` runs `handle(req)` with `request_id.get()`
/// giving "r-42" in it, in every task it awaits (co_await), inside timeout()s, and in the
/// children of when_all / when_any it awaits (they cannot outlive the scope), but not in tasks it
/// spawns (spawn(), task_group, runtime::spawn: they may outlive the scope; bind again with
/// `spawn(request_id.scope(request_id.get(), child()))` where a child should see it). Tokio's
/// task_local! and LocalKey::scope; Java's ScopedValue; not a thread_local: the binding follows
/// the task when it moves to another worker (it is keyed by the task's stop state, not by the
/// thread), and costs nothing to tasks that do not use one (no field in the task header, nothing
/// at spawn).
///
/// Scopes nest: an inner scope of the same task_local shadows the outer one until it ends. The
/// value lives in the scope's frame, destroyed when the scope ends; a reference from get() is
/// valid until then. Values may be read by several when_all children at once, on different
/// workers: get() gives const access, so T must allow concurrent const reads (any type without
/// `mutable` state does).
///
/// Not visible inside shield(op): a shielded operation runs with no stop state (get() throws
/// there, try_get() returns null); read the value before the shield.
///
/// Cost: scope() takes and releases a lock of a global table (sharded by task) once at each end;
/// get() takes one per level it looks at (the innermost first). For values read a few times per
/// request (a request id, a tracing span), not in an inner loop: copy it into a local there.
///
/// Thread-safety: a task_local object may be shared by any number of tasks and threads; each
/// task sees its own binding. The object must outlive every scope using it (a static, usually).
template <class T>
class task_local {
 public:
  static_assert(!std::is_reference_v<T>, "corio::task_local<T>: T must be an object type");

  constexpr task_local() noexcept = default;
  task_local(const task_local&) = delete;
  task_local& operator=(const task_local&) = delete;

  /// A task that runs `body` with `value` bound to this task_local (moved into the returned
  /// task's frame) and gives `body`'s result or exception. co_await it in a task, or spawn it
  /// (then the spawned task has the binding). Throws std::invalid_argument for an empty `body`;
  /// awaiting it outside a task of a runtime throws std::logic_error.
  template <class U>
  [[nodiscard("co_await the scope; the body runs only then")]] task<U> scope(T value, task<U> body) const {
    if (!body.valid()) throw std::invalid_argument("corio::task_local::scope: empty task");
    return scope_impl<U>(this, std::move(value), std::move(body));
  }

  /// The value bound in the calling task (its innermost scope). Throws std::logic_error when
  /// nothing is bound (outside any scope of this task_local, in a spawned task that did not bind
  /// it, inside shield(), or on a thread that is not running a task).
  [[nodiscard]] const T& get() const {
    const T* v = try_get();
    if (v == nullptr) {
      throw std::logic_error(
          "corio::task_local::get: no value is bound in this task (see task_local::scope)");
    }
    return *v;
  }

  /// The value bound in the calling task, or null when nothing is (see get()). Never throws.
  [[nodiscard]] const T* try_get() const noexcept {
    return static_cast<const T*>(detail::find_task_local(this));
  }

 private:
  // Parameters by value or pointer (GCC 12 and coroutine references, see README).
  template <class U>
  static task<U> scope_impl(const task_local* self, T value, task<U> body) {
    detail::task_local_binding binding;
    binding.key = self;
    binding.value = &value;
    detail::bind_task_local(binding);
    struct unbind_on_exit {
      detail::task_local_binding* b;
      ~unbind_on_exit() { detail::unbind_task_local(*b); }
    } guard{&binding};
    if constexpr (std::is_void_v<U>) {
      co_await std::move(body);
    } else {
      co_return co_await std::move(body);
    }
  }
};

}  // namespace corio
