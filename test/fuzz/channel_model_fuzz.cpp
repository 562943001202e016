// libFuzzer target: a small program of channel operations, selects, closes and cancellations,
// decoded from the fuzzer's bytes and run on a corio runtime with a manual clock, checked
// against a model of what channels promise. Built and run by tools/fuzz.sh (ASan + UBSan), seeds
// in test/fuzz/corpus/channel_model/.
//
// Input (bytes missing at the end read as 0):
//   byte 0: bit 0: workers - 1 (1 or 2); bits 1-2: channels - 1 (1..3, 3 read as 2);
//           bits 3-4: tasks - 1 (1..4); bits 5-6: cooperation budget, one of 128, 1, 2, 5
//   byte 1: capacities: 2 bits per channel, 0..3 (0: rendezvous)
//   byte 2: the runtime's seed (select's random choices)
//   then instructions, at most 48, of 2 bytes (a select: 3), byte A then its arguments:
//     A bits 5-7 = who: a task below the task count runs the op, anyone else is the driver;
//     A bits 0-4 = what.
//     Task ops (A % 12): 0 send, 1 recv, 2 try_send, 3 try_recv, 4 send_for, 5 recv_for,
//       6 select, 7 close, 8 sleep_for, 9 yield, 10 timeout(send), 11 timeout(recv);
//       byte B: bits 0-1 channel, bits 2-3 duration (0, 1, 2, 5 ms).
//       A select: B bits 2-3 duration of after(), bits 4-5 channel cases - 1 (1..3, 3 read as 3),
//       bits 6-7 extra case (0 none, 1 after(d), 2 default_case(), 3 none); byte C: bits
//       2i..2i+1 case i's channel, and bit i of ((C >> 6) | (B & 1) << 2) set: case i sends.
//     Driver steps (A % 4): 0 cancel task B % tasks (join_handle::cancel), 1 sleep_for(duration
//       of B), 2 yield (B % 4 + 1 times), 3 close channel B % channels.
// Each task runs its ops in order (at most 24) and ends at the first operation_cancelled; the
// driver spawns the tasks, runs its steps, waits until nothing can move (a 1 h sleep on the manual
// clock), closes every channel, joins every task (under a 1 h try_timeout) and drains what is
// left in the channels.
//
// Checked (a failure aborts, printing the decoded program): every value whose send reported
// delivered is received exactly once, by a task or from what is left at the end, on the channel
// it was sent to, and no other value is received; the values of one sender arrive in the order
// sent at each receiver, and those left at the end come after those received; a send that did
// not deliver hands its value back (try_send, send_for, a select's losing or closed send case)
// with the status it should have; a timed operation never times out early; once a task saw a
// channel closed and drained, it receives nothing more from it and nothing is left in it at the
// end, and a task that closed a channel sends nothing more on it; no channel holds more than its capacity;
// every task ends once every channel is closed; no value is destroyed twice or left alive.
//
// Runs are bounded: at most 48 instructions, durations of a few ms on the manual clock (time
// jumps to the next timer whenever every worker is idle), so a hang is a bug (libFuzzer's
// -timeout reports it).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <corio/corio.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using corio::channel_status;

namespace {

// --- the program --------------------------------------------------------------------------------

enum class op_kind : std::uint8_t {
  send,
  recv,
  try_send,
  try_recv,
  send_for,
  recv_for,
  select,
  close,
  sleep,
  yield,
  timeout_send,
  timeout_recv,
};
constexpr std::size_t op_kinds = 12;
constexpr std::array<const char*, op_kinds> op_names{
    "send",   "recv",  "try_send", "try_recv", "send_for",      "recv_for",
    "select", "close", "sleep",    "yield",    "timeout(send)", "timeout(recv)"};

struct case_spec {
  std::uint8_t ch = 0;
  bool send = false;
};

struct op {
  op_kind kind = op_kind::yield;
  std::uint8_t ch = 0;
  corio::clock::duration d{};
  std::uint8_t ncases = 0;
  std::array<case_spec, 3> cases{};
  std::uint8_t extra = 0;  ///< select: 0 none, 1 after(d), 2 default_case()
};

enum class step_kind : std::uint8_t { cancel, sleep, yield, close };

struct driver_step {
  step_kind kind = step_kind::yield;
  std::uint8_t arg = 0;  ///< cancel: the task; yield: how many; close: the channel
  corio::clock::duration d{};
};

struct program {
  unsigned workers = 1;
  unsigned budget = 128;
  std::uint64_t seed = 1;
  std::vector<std::size_t> caps;
  std::vector<std::vector<op>> tasks;
  std::vector<driver_step> driver;
};

constexpr std::size_t max_instructions = 48;
constexpr std::size_t max_ops_per_task = 24;
constexpr std::array<corio::clock::duration, 4> durations{0ms, 1ms, 2ms, 5ms};

program decode(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 0;
  const auto next = [&]() -> std::uint8_t { return pos < size ? data[pos++] : 0; };
  program p;
  const std::uint8_t b0 = next();
  p.workers = 1 + (b0 & 1u);
  const std::size_t nch = std::min<std::size_t>(1 + ((b0 >> 1) & 3u), 3);
  const std::size_t ntasks = 1 + ((b0 >> 3) & 3u);
  p.budget = std::array<unsigned, 4>{128, 1, 2, 5}[(b0 >> 5) & 3u];
  const std::uint8_t b1 = next();
  for (std::size_t c = 0; c < nch; ++c) p.caps.push_back((b1 >> (2 * c)) & 3u);
  p.seed = std::uint64_t{next()} + 1;  // 0 would pick a random seed
  p.tasks.resize(ntasks);
  for (std::size_t i = 0; i < max_instructions && pos < size; ++i) {
    const std::uint8_t a = next();
    const std::size_t who = a >> 5;
    const std::uint8_t b = next();
    if (who < ntasks) {
      op o;
      o.kind = static_cast<op_kind>((a & 31u) % op_kinds);
      o.ch = static_cast<std::uint8_t>((b & 3u) % nch);
      o.d = durations[(b >> 2) & 3u];
      if (o.kind == op_kind::select) {
        const std::uint8_t c = next();
        o.ncases = static_cast<std::uint8_t>(std::min(1 + ((b >> 4) & 3u), 3u));
        o.extra = static_cast<std::uint8_t>(((b >> 6) & 3u) % 3);
        const unsigned sends = (c >> 6) | ((b & 1u) << 2);
        for (std::size_t j = 0; j < o.ncases; ++j) {
          o.cases[j].ch = static_cast<std::uint8_t>(((c >> (2 * j)) & 3u) % nch);
          o.cases[j].send = ((sends >> j) & 1u) != 0;
        }
      }
      if (p.tasks[who].size() < max_ops_per_task) p.tasks[who].push_back(o);
    } else {
      driver_step s;
      s.kind = static_cast<step_kind>(a & 3u);
      switch (s.kind) {
        case step_kind::cancel:
          s.arg = static_cast<std::uint8_t>(b % ntasks);
          break;
        case step_kind::sleep:
          s.d = durations[b & 3u];
          break;
        case step_kind::yield:
          s.arg = static_cast<std::uint8_t>(b % 4 + 1);
          break;
        case step_kind::close:
          s.arg = static_cast<std::uint8_t>(b % nch);
          break;
      }
      p.driver.push_back(s);
    }
  }
  return p;
}

std::string describe(const program& p) {
  std::string s = "workers " + std::to_string(p.workers) + ", budget " + std::to_string(p.budget) +
                  ", seed " + std::to_string(p.seed) + ", capacities";
  for (const std::size_t c : p.caps) s += " " + std::to_string(c);
  s += "\n";
  const auto ms = [](corio::clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + "ms";
  };
  for (std::size_t t = 0; t < p.tasks.size(); ++t) {
    s += "  task " + std::to_string(t) + ":";
    for (std::size_t k = 0; k < p.tasks[t].size(); ++k) {
      const op& o = p.tasks[t][k];
      s += " [" + std::to_string(k) + "] " + op_names[static_cast<std::size_t>(o.kind)];
      if (o.kind == op_kind::select) {
        s += "(";
        for (std::size_t j = 0; j < o.ncases; ++j) {
          s += (j != 0 ? ", " : "") + std::string(o.cases[j].send ? "send " : "recv ") +
               std::to_string(o.cases[j].ch);
        }
        if (o.extra == 1) s += ", after " + ms(o.d);
        if (o.extra == 2) s += ", default";
        s += ")";
      } else if (o.kind == op_kind::sleep) {
        s += " " + ms(o.d);
      } else if (o.kind != op_kind::yield) {
        s += " ch " + std::to_string(o.ch);
        if (o.kind == op_kind::send_for || o.kind == op_kind::recv_for || o.kind == op_kind::timeout_send ||
            o.kind == op_kind::timeout_recv) {
          s += " " + ms(o.d);
        }
      }
    }
    s += "\n";
  }
  s += "  driver:";
  for (const driver_step& d : p.driver) {
    switch (d.kind) {
      case step_kind::cancel:
        s += " cancel " + std::to_string(d.arg);
        break;
      case step_kind::sleep:
        s += " sleep " + ms(d.d);
        break;
      case step_kind::yield:
        s += " yield x" + std::to_string(d.arg);
        break;
      case step_kind::close:
        s += " close " + std::to_string(d.arg);
        break;
    }
    s += ";";
  }
  return s + "\n";
}

const program* current_program = nullptr;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "channel_model_fuzz: %s\n", what.c_str());
  if (current_program != nullptr) std::fprintf(stderr, "program:\n%s", describe(*current_program).c_str());
  std::abort();
}

void check(bool ok, const char* what, std::size_t task = ~std::size_t{0}, std::size_t k = 0) {
  if (ok) return;
  std::string m = what;
  if (task != ~std::size_t{0}) m += " (task " + std::to_string(task) + ", op " + std::to_string(k) + ")";
  fail(m);
}

// --- values -------------------------------------------------------------------------------------

/// A move-only value with an identity: a moved-from token has id 0. `live` counts the tokens with
/// an identity, so that a value destroyed twice or never shows.
struct token {
  static inline std::atomic<long> live{0};
  std::uint32_t id = 0;

  explicit token(std::uint32_t i) noexcept : id(i) {
    if (id != 0) live.fetch_add(1, std::memory_order_relaxed);
  }
  token(token&& o) noexcept : id(std::exchange(o.id, 0)) {}
  token& operator=(token&& o) noexcept {
    if (this != &o) {
      if (id != 0) live.fetch_sub(1, std::memory_order_relaxed);
      id = std::exchange(o.id, 0);
    }
    return *this;
  }
  token(const token&) = delete;
  token& operator=(const token&) = delete;
  ~token() {
    if (id != 0) live.fetch_sub(1, std::memory_order_relaxed);
  }
};

/// The value task `t` sends in its op `k`, select case `j`: unique, and increasing in (k, j) for
/// one sender, whose number is id >> 8.
std::uint32_t value_id(std::size_t t, std::size_t k, std::size_t j) {
  return static_cast<std::uint32_t>(((t + 1) << 8) | (k << 2) | j);
}

using chan = corio::channel<token>;

/// What one task saw, written by that task only (read by the driver after joining it).
struct task_record {
  std::vector<std::pair<std::size_t, std::uint32_t>> delivered;  ///< (channel, id) sends that delivered
  std::vector<std::pair<std::size_t, std::uint32_t>> received;   ///< (channel, id), in order
  std::array<bool, 3> saw_closed{};  ///< a receive on the channel reported closed (and drained)
  std::array<bool, 3> closed_it{};   ///< this task closed the channel
  bool ended = false;
};

struct world {
  const program* prog = nullptr;
  std::vector<chan> chans;
  std::vector<task_record> records;
};

// --- the tasks ----------------------------------------------------------------------------------

struct op_context {
  world* w;
  std::size_t t;
  std::size_t k;
  const op* o;
  std::array<std::optional<token>, 3> values{};  ///< a select's send-case values
};

void after_op(op_context* x) {
  for (std::size_t c = 0; c < x->w->chans.size(); ++c) {
    check(x->w->chans[c].size() <= x->w->prog->caps[c], "a channel holds more than its capacity", x->t, x->k);
  }
}

void got_value(op_context* x, std::size_t c, std::optional<token>& v) {
  task_record& r = x->w->records[x->t];
  if (v) {
    check(v->id != 0, "received a moved-from value", x->t, x->k);
    check(!r.saw_closed[c], "received a value after seeing the channel closed and drained", x->t, x->k);
    r.received.emplace_back(c, v->id);
    v.reset();
  } else {
    check(x->w->chans[c].closed(), "a receive reported closed on an open channel", x->t, x->k);
    r.saw_closed[c] = true;
  }
}

void sent(op_context* x, std::size_t c, std::uint32_t id) {
  task_record& r = x->w->records[x->t];
  check(!r.closed_it[c], "a send delivered on a channel this task closed", x->t, x->k);
  r.delivered.emplace_back(c, id);
}

void not_sent(op_context* x, std::size_t c, channel_status s, const std::optional<token>& back,
              std::uint32_t id) {
  check(back.has_value() && back->id == id, "an undelivered value did not come back", x->t, x->k);
  if (s == channel_status::closed)
    check(x->w->chans[c].closed(), "a send reported closed on an open channel", x->t, x->k);
}

/// What try_send or send_for reported: delivered (the value gone), or `failure` or closed with the
/// value handed back.
void send_outcome(op_context* x, std::size_t c, std::uint32_t id, const corio::send_result<token>& r,
                  channel_status failure) {
  if (r.status == channel_status::delivered) {
    check(!r.value, "a send delivered and handed the value back", x->t, x->k);
    sent(x, c, id);
  } else {
    check(r.status == failure || r.status == channel_status::closed, "a send reported a status it cannot",
          x->t, x->k);
    not_sent(x, c, r.status, r.value, id);
  }
}

// The select: the cases are built into a parameter pack at compile time from the op's spec.
template <class R>
void select_result(op_context* x, std::size_t i, R& r, std::size_t* winner) {
  *winner = i;
  if constexpr (std::is_same_v<R, std::optional<token>>) {
    got_value(x, x->o->cases[i].ch, r);
  } else if constexpr (std::is_same_v<R, channel_status>) {
    const std::size_t c = x->o->cases[i].ch;
    const std::uint32_t id = value_id(x->t, x->k, i);
    if (r == channel_status::delivered) {
      check(x->values[i]->id == 0, "a winning send case did not move its value", x->t, x->k);
      sent(x, c, id);
    } else {
      check(r == channel_status::closed, "a send case reported neither delivered nor closed", x->t, x->k);
      not_sent(x, c, r, x->values[i], id);
    }
  } else if constexpr (std::is_same_v<R, corio::timed_out_t>) {
    check(x->o->extra == 1, "an after() case fired in a select without one", x->t, x->k);
  } else {
    check(x->o->extra == 2, "a default case fired in a select without one", x->t, x->k);
  }
}

template <class Result, std::size_t... I>
std::size_t dispatch_result(op_context* x, Result& r, std::index_sequence<I...>) {
  std::size_t winner = ~std::size_t{0};
  ((r.index() == I ? select_result(x, I, std::get<I>(r), &winner) : void()), ...);
  return winner;
}

void check_losers(op_context* x, std::size_t winner) {
  for (std::size_t j = 0; j < x->o->ncases; ++j) {
    if (j == winner || !x->o->cases[j].send) continue;
    check(x->values[j] && x->values[j]->id == value_id(x->t, x->k, j), "a losing send case lost its value",
          x->t, x->k);
  }
}

template <class... Cases>
corio::task<void> run_select(op_context* x, Cases... cases) {
  const auto start = corio::now();
  try {
    auto r = co_await corio::select(cases...);
    const std::size_t winner = dispatch_result(x, r, std::index_sequence_for<Cases...>{});
    if (winner == x->o->ncases && x->o->extra == 1) {
      check(corio::now() - start >= x->o->d, "a select's after() fired early", x->t, x->k);
    }
    check_losers(x, winner);
  } catch (const corio::operation_cancelled&) {
    check_losers(x, ~std::size_t{0});  // a cancelled select took effect in no case
    throw;
  }
}

template <class... Cases>
corio::task<void> build_select(op_context* x, std::size_t i, Cases... acc) {
  if constexpr (sizeof...(Cases) < 3) {
    if (i < x->o->ncases) {
      chan& c = x->w->chans[x->o->cases[i].ch];
      if (x->o->cases[i].send) {
        x->values[i].emplace(value_id(x->t, x->k, i));
        return build_select(x, i + 1, acc..., c.send_case(*x->values[i]));
      }
      return build_select(x, i + 1, acc..., c.recv_case());
    }
  }
  if constexpr (sizeof...(Cases) == 0) {
    fail("a select without cases");
  } else {
    if (x->o->extra == 1) return run_select(x, acc..., corio::after(x->o->d));
    if (x->o->extra == 2) return run_select(x, acc..., corio::default_case());
    return run_select(x, acc...);
  }
}

corio::task<void> run_op(op_context* x) {
  const op& o = *x->o;
  chan& ch = x->w->chans[o.ch];
  const std::size_t c = o.ch;
  const std::uint32_t id = value_id(x->t, x->k, 0);
  const auto start = corio::now();
  switch (o.kind) {
    case op_kind::send:
      try {
        co_await ch.send(token{id});
        sent(x, c, id);
      } catch (const corio::channel_closed&) {
        check(ch.closed(), "send threw channel_closed on an open channel", x->t, x->k);
      }
      break;
    case op_kind::recv: {
      auto v = co_await ch.recv();
      got_value(x, c, v);
      break;
    }
    case op_kind::try_send: {
      const auto r = ch.try_send(token{id});
      send_outcome(x, c, id, r, channel_status::would_block);
      break;
    }
    case op_kind::try_recv: {
      auto r = ch.try_recv();
      check(r.status != channel_status::timed_out, "try_recv reported timed_out", x->t, x->k);
      check((r.status == channel_status::delivered) == r.value.has_value(),
            "try_recv's value and status disagree", x->t, x->k);
      if (r.status != channel_status::would_block) got_value(x, c, r.value);
      break;
    }
    case op_kind::send_for: {
      const auto r = co_await ch.send_for(token{id}, o.d);
      send_outcome(x, c, id, r, channel_status::timed_out);
      if (r.status == channel_status::timed_out) {
        check(corio::now() - start >= o.d, "send_for timed out early", x->t, x->k);
      }
      break;
    }
    case op_kind::recv_for: {
      auto r = co_await ch.recv_for(o.d);
      check(r.status != channel_status::would_block, "recv_for reported would_block", x->t, x->k);
      check((r.status == channel_status::delivered) == r.value.has_value(),
            "recv_for's value and status disagree", x->t, x->k);
      if (r.status == channel_status::timed_out) {
        check(corio::now() - start >= o.d, "recv_for timed out early", x->t, x->k);
      } else {
        got_value(x, c, r.value);
      }
      break;
    }
    case op_kind::select:
      co_await build_select(x, 0);
      break;
    case op_kind::close:
      ch.close();
      check(ch.closed(), "a closed channel says it is open", x->t, x->k);
      x->w->records[x->t].closed_it[c] = true;
      break;
    case op_kind::sleep:
      co_await corio::sleep_for(o.d);
      check(corio::now() - start >= o.d, "sleep_for woke early", x->t, x->k);
      break;
    case op_kind::yield:
      co_await corio::yield();
      break;
    case op_kind::timeout_send:
      try {
        const bool done = co_await corio::try_timeout(o.d, ch.send(token{id}));
        if (done) {
          sent(x, c, id);
        } else {
          check(corio::now() - start >= o.d, "timeout(send) timed out early", x->t, x->k);
        }
      } catch (const corio::channel_closed&) {
        check(ch.closed(), "send threw channel_closed on an open channel", x->t, x->k);
      }
      break;
    case op_kind::timeout_recv: {
      auto r = co_await corio::try_timeout(o.d, ch.recv());
      if (r) {
        got_value(x, c, *r);
      } else {
        check(corio::now() - start >= o.d, "timeout(recv) timed out early", x->t, x->k);
      }
      break;
    }
  }
  after_op(x);
}

corio::task<void> run_task(world* w, std::size_t t) {
  const std::vector<op>& ops = w->prog->tasks[t];
  for (std::size_t k = 0; k < ops.size(); ++k) {
    op_context x{w, t, k, &ops[k]};
    try {
      co_await run_op(&x);
    } catch (const corio::operation_cancelled&) {
      break;  // cancelled: the task ends (an operation that took effect returned normally)
    }
  }
  w->records[t].ended = true;
}

corio::task<void> driver(world* w) {
  const program& p = *w->prog;
  std::vector<corio::join_handle<void>> handles;
  for (std::size_t t = 0; t < p.tasks.size(); ++t) handles.push_back(corio::spawn(run_task(w, t)));
  for (const driver_step& s : p.driver) {
    switch (s.kind) {
      case step_kind::cancel:
        (void)handles[s.arg].cancel();
        break;
      case step_kind::sleep:
        co_await corio::sleep_for(s.d);
        break;
      case step_kind::yield:
        for (int i = 0; i < s.arg; ++i) co_await corio::yield();
        break;
      case step_kind::close:
        w->chans[s.arg].close();
        break;
    }
  }
  co_await corio::sleep_for(1h);  // until every task has ended or waits for good (manual clock)
  for (chan& c : w->chans) c.close();
  for (std::size_t t = 0; t < handles.size(); ++t) {
    const bool joined = co_await corio::try_timeout(1h, handles[t]);
    if (!joined) fail("task " + std::to_string(t) + " did not end after every channel was closed");
    check(w->records[t].ended, "a task ended without finishing its loop");
  }
}

// --- the model ----------------------------------------------------------------------------------

void check_model(const world& w, const std::vector<std::vector<std::uint32_t>>& drained) {
  std::set<std::pair<std::size_t, std::uint32_t>> delivered;
  for (const task_record& r : w.records) {
    for (const auto& d : r.delivered) {
      if (!delivered.insert(d).second)
        fail("one value reported delivered twice: " + std::to_string(d.second));
    }
  }
  std::set<std::pair<std::size_t, std::uint32_t>> received;
  const auto take = [&](std::size_t c, std::uint32_t id, const char* by) {
    if (!received.emplace(c, id).second) {
      fail("value " + std::to_string(id) + " received twice (" + by + ") from channel " + std::to_string(c));
    }
    if (delivered.count({c, id}) == 0) {
      fail("value " + std::to_string(id) + " received (" + by + ") from channel " + std::to_string(c) +
           " but never reported delivered there");
    }
  };
  // Per receiver, per channel and sender: increasing ids; the leftovers after all received ones.
  std::map<std::pair<std::size_t, std::uint32_t>, std::uint32_t> last_received;  // (channel, sender) -> id
  for (const task_record& r : w.records) {
    std::map<std::pair<std::size_t, std::uint32_t>, std::uint32_t> last;
    for (const auto& [c, id] : r.received) {
      take(c, id, "by a task");
      auto& l = last[{c, id >> 8}];
      if (id <= l)
        fail("a task received value " + std::to_string(id) + " after " + std::to_string(l) +
             " from one sender");
      l = id;
      auto& g = last_received[{c, id >> 8}];
      g = std::max(g, id);
    }
  }
  for (std::size_t c = 0; c < drained.size(); ++c) {
    std::map<std::uint32_t, std::uint32_t> last;
    for (const std::uint32_t id : drained[c]) {
      take(c, id, "left in the channel");
      auto& l = last[id >> 8];
      if (id <= l)
        fail("value " + std::to_string(id) + " left in a channel behind a later one from its sender");
      l = id;
      const auto g = last_received.find({c, id >> 8});
      if (g != last_received.end() && g->second > id) {
        fail("value " + std::to_string(id) + " left in a channel though its sender's later " +
             std::to_string(g->second) + " was received");
      }
    }
  }
  for (const task_record& r : w.records) {
    for (std::size_t c = 0; c < drained.size(); ++c) {
      if (r.saw_closed[c] && !drained[c].empty()) {
        fail("channel " + std::to_string(c) +
             " held values at the end though a task saw it closed and drained");
      }
    }
  }
  for (const auto& d : delivered) {
    if (received.count(d) == 0) {
      fail("value " + std::to_string(d.second) + " reported delivered on channel " + std::to_string(d.first) +
           " was lost");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const program p = decode(data, size);
  current_program = &p;
  if (std::getenv("CHANNEL_MODEL_PRINT") != nullptr) std::fprintf(stderr, "%s", describe(p).c_str());
  {
    world w;
    w.prog = &p;
    for (const std::size_t cap : p.caps) w.chans.emplace_back(cap);
    w.records.resize(p.tasks.size());
    std::vector<std::vector<std::uint32_t>> drained(p.caps.size());
    try {
      corio::runtime rt{
          {.workers = p.workers, .budget = p.budget, .seed = p.seed, .clock = corio::manual_clock}};
      rt.block_on(driver(&w));
    } catch (const std::exception& e) {
      fail(std::string("exception out of the program: ") + e.what());
    }
    // Drain what is left: every channel is closed, so it gives its values, then closed.
    for (std::size_t c = 0; c < w.chans.size(); ++c) {
      for (std::size_t i = 0;; ++i) {
        check(i <= p.caps[c], "a closed channel gives more values than its capacity");
        auto r = w.chans[c].try_recv();
        if (r.status == channel_status::closed) break;
        check(r.status == channel_status::delivered && r.value, "a closed channel would block");
        drained[c].push_back(r.value->id);
      }
    }
    check_model(w, drained);
  }
  check(token::live.load() == 0, "a value was destroyed twice or left alive");
  current_program = nullptr;
  return 0;
}
