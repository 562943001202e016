// lib/stop_state.cpp - the out-of-line half of a task's stop state (corio/detail/stop_state.hpp):
// requesting stop, passing it to children, and the forwarders of timeout() scopes and when_all.
#include "runtime_impl.hpp"

#include <thread>

#include "corio/when_all.hpp"

namespace corio::detail {

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
// Referenced only by name from inline asm (stop_state.hpp): `used` and, for GCC, which has it,
// `externally_visible` keep link-time optimization from dropping or renaming it (an LTO build
// failed to link without).
#if defined(__clang__)
#define CORIO_EXTERNALLY_VISIBLE
#else
#define CORIO_EXTERNALLY_VISIBLE gnu::externally_visible
#endif
// A shared corio leaves it in the dynamic TLS model (corio/detail/config.hpp, CORIO_TLS_ASM).
#if CORIO_TLS_ASM
[[gnu::tls_model("initial-exec"), gnu::used, CORIO_EXTERNALLY_VISIBLE]] thread_local constinit stop_state*
    tls_current_stop = nullptr;
#else
[[gnu::used, CORIO_EXTERNALLY_VISIBLE]] thread_local constinit stop_state* tls_current_stop = nullptr;
#endif
#undef CORIO_EXTERNALLY_VISIBLE
#else
namespace {
thread_local constinit stop_state* tls_current_stop = nullptr;
}
#endif
#if !CORIO_TLS_ASM
stop_state* current_stop() noexcept { return tls_current_stop; }
void set_current_stop(stop_state* s) noexcept { tls_current_stop = s; }
#endif

bool stop_state::request_stop() noexcept {
  std::uintptr_t old = word_.load(std::memory_order_relaxed);
  std::uintptr_t desired;
  do {
    if ((old & requested_bit) != 0) return false;
    desired = requested_bit | (old != 0 ? busy_bit : 0);
  } while (!word_.compare_exchange_weak(old, desired, std::memory_order_acq_rel, std::memory_order_relaxed));
  if (old != 0) {
    auto* c = reinterpret_cast<stop_canceller*>(old);
    c->cancel(*c);
    // The last touch: once busy is clear, the task may disarm and free both `c` and this state.
    word_.fetch_and(~busy_bit, std::memory_order_release);
  }
  return true;
}

void stop_state::wait_not_busy() noexcept {
  for (unsigned spins = 0; (word_.load(std::memory_order_acquire) & busy_bit) != 0; ++spins) {
    if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();  // the canceller's thread was preempted
    }
  }
}

void stop_state::stop_late_child(stop_state& child) noexcept { child.request_stop(); }

void stop_state::propagate() noexcept {
  flush();
  for (stop_state* c = first_child_; c != nullptr; c = c->next_sibling_) {
    if (!c->detached()) c->request_stop();
  }
}

void stop_state::splice_children_into(stop_state& to) noexcept {
  flush();
  while (stop_state* c = first_child_) {
    unlink_child(*c);
    to.link_child(*c);
  }
}

void stop_state::release_children() noexcept {
  flush();
  while (stop_state* c = first_child_) {
    unlink_child(*c);
    promise_base& child = *c->task_;
    const std::uint32_t old = child.spawn_.state.fetch_and(~state_parented, std::memory_order_acq_rel);
    if ((old & state_alive) == state_parented) destroy_spawned(child);
  }
}

void forward_to_children(stop_canceller& c) noexcept {
  for (promise_base* p = static_cast<children_forwarder&>(c).last; p != nullptr; p = p->spawn_.prev) {
    p->spawn_.stop.request_stop();
  }
}

void forward_stop(stop_canceller& c) noexcept { static_cast<scope_forwarder&>(c).scope->request_stop(); }

}  // namespace corio::detail
