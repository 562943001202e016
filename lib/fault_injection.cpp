// lib/fault_injection.cpp - the fault registry (see fault_injection.hpp). Compiled only when the
// meson option `fault_injection` is on.
#include "fault_injection.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace corio::detail::fault {
namespace {

struct armed_rule {
  int id = 0;
  rule r;
  std::uint64_t seen = 0;   ///< matching operations so far
  std::uint64_t fired = 0;  ///< faults injected so far

  /// Counts one matching operation; true when it is to fault.
  bool take() noexcept {
    ++seen;
    if (seen <= r.skip || fired >= r.times) return false;
    if ((seen - r.skip - 1) % r.every != 0) return false;
    ++fired;
    return true;
  }
};

struct registry {
  std::mutex mutex;
  std::vector<armed_rule> rules;  ///< armed and spent ones (a spent rule still answers injected())
  int next_id = 1;
  std::atomic<int> armed{0};  ///< rules in `rules`: 0 lets every consultation return at once
  std::atomic<std::uint64_t> cq_overflows{0};
};

/// Never destroyed: workers of a runtime that outlives main's locals may still consult it.
registry& the_registry() noexcept {
  static auto* r = new registry;
  return *r;
}

site site_of(io_opcode op) noexcept {
  switch (op) {
    case io_opcode::accept:
      return site::accept;
    case io_opcode::connect:
      return site::connect;
    case io_opcode::recv:
      return site::recv;
    case io_opcode::send:
      return site::send;
    case io_opcode::read:
      return site::read;
    case io_opcode::poll:
      return site::poll;
    case io_opcode::recvmsg:
    case io_opcode::sendmsg:
      return site::message;
    default:
      return site::file;  // is_file_operation
  }
}

bool transfers_bytes(site s) noexcept { return s == site::recv || s == site::send || s == site::read; }

}  // namespace

int arm(const rule& r) {
  if (r.error < 0) throw std::invalid_argument("corio::detail::fault::arm: a negative errno value");
  if (r.every == 0) throw std::invalid_argument("corio::detail::fault::arm: every must be at least 1");
  if (r.error == 0 && r.max_bytes == 0) {
    throw std::invalid_argument("corio::detail::fault::arm: a rule needs an error or max_bytes");
  }
  if (r.error == 0 && !transfers_bytes(r.where)) {
    throw std::invalid_argument("corio::detail::fault::arm: max_bytes where no bytes are transferred");
  }
  registry& g = the_registry();
  std::lock_guard lock{g.mutex};
  const int id = g.next_id++;
  g.rules.push_back(armed_rule{id, r});
  g.armed.store(static_cast<int>(g.rules.size()), std::memory_order_release);
  return id;
}

void disarm(int id) noexcept {
  registry& g = the_registry();
  std::lock_guard lock{g.mutex};
  std::erase_if(g.rules, [id](const armed_rule& a) { return a.id == id; });
  g.armed.store(static_cast<int>(g.rules.size()), std::memory_order_release);
}

void clear() noexcept {
  registry& g = the_registry();
  std::lock_guard lock{g.mutex};
  g.rules.clear();
  g.armed.store(0, std::memory_order_release);
}

std::uint64_t injected(int id) noexcept {
  registry& g = the_registry();
  std::lock_guard lock{g.mutex};
  for (const armed_rule& a : g.rules) {
    if (a.id == id) return a.fired;
  }
  return 0;
}

std::uint64_t cq_overflows() noexcept { return the_registry().cq_overflows.load(std::memory_order_relaxed); }

void note_cq_overflow() noexcept { the_registry().cq_overflows.fetch_add(1, std::memory_order_relaxed); }

decision on_submit(const io_request& r) noexcept {
  decision d{0, r.length};
  registry& g = the_registry();
  if (g.armed.load(std::memory_order_acquire) == 0) return d;
  // A listener's multishot accept is not one accept: each accept served by it asks on its own
  // (lib/net/accept_queue.cpp:start_accept).
  if (r.opcode == io_opcode::accept && (r.flags & accept_multishot) != 0) return d;
  // Nor is a stream's multishot receive (or its heap fallback) one read: each read of the stream
  // asks on its own (lib/net/recv_queue.cpp:start_recv).
  if (r.opcode == io_opcode::recv && r.provided >= io_request::recv_multishot) return d;
  const site s = site_of(r.opcode);
  std::lock_guard lock{g.mutex};
  // Every matching rule counts the operation, so that each rule's skip and every hold on their
  // own; the first error wins over any short transfer.
  for (armed_rule& a : g.rules) {
    if (a.r.where != s || (a.r.fd >= 0 && a.r.fd != r.fd) || !a.take()) continue;
    if (a.r.error != 0) {
      if (d.error == 0) d.error = a.r.error;
    } else {
      d.length = std::min(d.length, a.r.max_bytes);
    }
  }
  return d;
}

int on_uring_setup() noexcept {
  registry& g = the_registry();
  if (g.armed.load(std::memory_order_acquire) == 0) return 0;
  std::lock_guard lock{g.mutex};
  int error = 0;
  for (armed_rule& a : g.rules) {
    if (a.r.where == site::uring_setup && a.take() && error == 0) error = a.r.error;
  }
  return error;
}

}  // namespace corio::detail::fault
