// samples/resp/resp_commands.hpp - the key-value store of samples/resp_kv and the commands it
// answers, without the I/O: a sharded map of strings with expiry, and `execute()`, which appends a
// command's RESP2 answer to an output buffer.
//
// Time is passed in by the caller (milliseconds of a monotonic clock; the server uses corio::now()),
// so expiry is tested without waiting (test/resp_parser_tests.cpp). Depends on the C++20 standard
// library only. The answers and error messages are Redis 7.0's for the same commands (see
// https://redis.io/commands), with the differences said at each command in execute().
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace corio_samples::resp {

/// Appends "+text\r\n" (a RESP simple string) to `out`.
inline void append_simple(std::string& out, std::string_view text) {
  out += '+';
  out += text;
  out += "\r\n";
}

/// Appends "-text\r\n" (a RESP error; `text` starts with its kind, "ERR ...") to `out`, with any
/// CR or LF in `text` turned into a space so that the answer stays one line (as Redis does).
inline void append_error(std::string& out, std::string_view text) {
  out += '-';
  const std::size_t at = out.size();
  out += text;
  for (std::size_t i = at; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out += "\r\n";
}

namespace detail {

/// Appends `marker` then the decimal `v` then CRLF: ":42\r\n", "$3\r\n", "*2\r\n".
inline void append_marked(std::string& out, char marker, std::int64_t v) {
  std::array<char, 24> text{};
  text[0] = marker;
  auto [end, ec] = std::to_chars(text.data() + 1, text.data() + text.size() - 2, v);
  *end++ = '\r';
  *end++ = '\n';
  out.append(text.data(), static_cast<std::size_t>(end - text.data()));
}

}  // namespace detail

/// Appends ":v\r\n" (a RESP integer) to `out`.
inline void append_integer(std::string& out, std::int64_t v) { detail::append_marked(out, ':', v); }

/// Appends "$len\r\nbytes\r\n" (a RESP bulk string) to `out`.
inline void append_bulk(std::string& out, std::string_view bytes) {
  detail::append_marked(out, '$', static_cast<std::int64_t>(bytes.size()));
  out += bytes;
  out += "\r\n";
}

/// Appends "$-1\r\n" (RESP2's null bulk string: a missing key) to `out`.
inline void append_null(std::string& out) { out += "$-1\r\n"; }

/// Appends "*n\r\n" (the header of a RESP array of n elements) to `out`.
inline void append_array(std::string& out, std::size_t n) {
  detail::append_marked(out, '*', static_cast<std::int64_t>(n));
}

/// Parses all of `text` as a 64-bit signed integer the way Redis's string2ll does: an optional '-'
/// and digits, no '+', no spaces, no leading zeros (only "0" itself), and in range. False
/// otherwise ("-0" and "007" are not integers to Redis, so INCR on them is an error).
inline bool parse_integer(std::string_view text, std::int64_t& out) noexcept {
  if (text.empty() || text.size() > 20) return false;
  const std::size_t digits_at = text.front() == '-' ? 1 : 0;
  if (digits_at == text.size()) return false;
  if (text[digits_at] == '0' && (text.size() > 1)) return false;  // "0" alone only
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

/// A string key-value map split into `shard_count` shards, each a std::unordered_map under its own
/// std::mutex. Thread-safe: every access locks the key's shard, briefly (a lookup and a copy of a
/// value; never across a co_await or I/O), so workers serving different keys rarely meet, and a
/// shard lock never waits long (Memcached's and Dragonfly's striped locks, Java's
/// ConcurrentHashMap segments). Expiry is lazy (a read of an expired key removes it, as Redis's
/// expireIfNeeded) plus a bounded sweep (sweep_expired, Redis's activeExpireCycle in spirit) that
/// the server runs periodically. Times are milliseconds of the caller's monotonic clock.
class keyspace {
 public:
  /// The number of shards (a power of two).
  static constexpr std::size_t shard_count = 64;
  /// An expires_at that means "no expiry".
  static constexpr std::int64_t never = 0;

  /// One value and its expiry time (ms; never: none).
  struct entry {
    std::string value;
    std::int64_t expires_at = never;
  };

  /// Transparent hashing, so that lookups take a std::string_view and allocate nothing.
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  /// The map of one shard.
  using map_type = std::unordered_map<std::string, entry, key_hash, std::equal_to<>>;

  /// One shard: its lock, its map and its count of keys that have an expiry. On its own cache
  /// lines, so that locking one does not slow down the neighbours.
  struct alignas(64) shard {
    std::mutex lock;
    map_type map;
    std::size_t volatile_keys = 0;  ///< entries that have an expiry
    std::size_t sweep_bucket = 0;   ///< where the next sweep of this shard starts
  };

  /// The shard that holds `key`.
  [[nodiscard]] shard& shard_of(std::string_view key) noexcept {
    // The map hashes the key again with the low bits; the shard takes the high ones.
    const std::size_t h = key_hash{}(key);
    return shards_[(h >> 40) & (shard_count - 1)];
  }

  /// Under `s.lock`: the live entry for `key` in `s`, or null; an expired one is removed first.
  static entry* find_live(shard& s, std::string_view key, std::int64_t now_ms) {
    auto it = s.map.find(key);
    if (it == s.map.end()) return nullptr;
    if (it->second.expires_at != never && it->second.expires_at <= now_ms) {
      --s.volatile_keys;
      s.map.erase(it);
      return nullptr;
    }
    return &it->second;
  }

  /// Under `s.lock`: removes `key` from `s` if it is there (expired or not).
  static void erase(shard& s, std::string_view key) {
    auto it = s.map.find(key);
    if (it == s.map.end()) return;
    if (it->second.expires_at != never) --s.volatile_keys;
    s.map.erase(it);
  }

  /// Under `s.lock`: the entry for `key` in `s`, created empty (no expiry) if it was missing or
  /// expired; `created` tells which. Throws std::bad_alloc.
  static entry& find_or_create(shard& s, std::string_view key, std::int64_t now_ms, bool& created) {
    auto it = s.map.find(key);
    if (it != s.map.end()) {
      created = it->second.expires_at != never && it->second.expires_at <= now_ms;
      if (created) {
        it->second.value.clear();
        set_expiry(s, it->second, never);
      }
      return it->second;
    }
    created = true;
    return s.map.try_emplace(std::string{key}).first->second;
  }

  /// Under `s.lock`: sets `e`'s expiry to `expires_at` (ms, or never), keeping volatile_keys.
  static void set_expiry(shard& s, entry& e, std::int64_t expires_at) noexcept {
    if (e.expires_at == never && expires_at != never) ++s.volatile_keys;
    if (e.expires_at != never && expires_at == never) --s.volatile_keys;
    e.expires_at = expires_at;
  }

  /// Keys in all shards, expired ones not yet removed included (Redis's DBSIZE counts them too).
  [[nodiscard]] std::size_t size() {
    std::size_t n = 0;
    for (shard& s : shards_) {
      std::lock_guard guard{s.lock};
      n += s.map.size();
    }
    return n;
  }

  /// Removes every key.
  void clear() {
    for (shard& s : shards_) {
      map_type old;
      {
        std::lock_guard guard{s.lock};
        old.swap(s.map);
        s.volatile_keys = 0;
        s.sweep_bucket = 0;
      }
      // `old` is freed here, outside the lock.
    }
  }

  /// Removes expired keys: in each shard that has keys with an expiry, looks at up to
  /// `buckets_per_shard` buckets of its map from where the previous sweep stopped. Returns the
  /// number of keys removed. Each shard lock is held for that many buckets at most, so a sweep
  /// never stalls the commands for long; over successive sweeps every bucket is visited.
  std::size_t sweep_expired(std::int64_t now_ms, std::size_t buckets_per_shard = 32) {
    std::size_t removed = 0;
    for (shard& s : shards_) {
      std::lock_guard guard{s.lock};
      if (s.volatile_keys == 0) continue;
      const std::size_t buckets = s.map.bucket_count();
      for (std::size_t i = 0; i < buckets_per_shard && i < buckets; ++i) {
        const std::size_t b = s.sweep_bucket % buckets;
        s.sweep_bucket = (b + 1) % buckets;
        // Erasing invalidates only the erased element's iterator: find each expired key's global
        // iterator through the bucket's local one.
        for (auto it = s.map.begin(b); it != s.map.end(b);) {
          const entry& e = it->second;
          auto next = std::next(it);
          if (e.expires_at != never && e.expires_at <= now_ms) {
            s.map.erase(s.map.find(it->first));
            ++removed;
            --s.volatile_keys;
          }
          it = next;
        }
      }
    }
    return removed;
  }

 private:
  std::array<shard, shard_count> shards_;
};

/// What the connection does after a command's answer.
enum class after_command {
  keep_open,  ///< go on reading commands
  close,      ///< QUIT: send the answers so far, then close
};

namespace detail {

/// ASCII case-insensitive equality of `a` with the lowercase `lower`.
inline bool iequals(std::string_view a, std::string_view lower) noexcept {
  if (a.size() != lower.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

inline void wrong_arity(std::string& out, std::string_view lower_name) {
  out += "-ERR wrong number of arguments for '";
  out += lower_name;
  out += "' command\r\n";
}

inline constexpr std::string_view not_integer = "-ERR value is not an integer or out of range\r\n";

/// The longest part of a user's bytes quoted in an error answer.
inline constexpr std::size_t max_quoted = 128;

/// Redis 7's answer to an unknown command: "-ERR unknown command 'name', with args beginning
/// with: 'a' 'b' " (each quoted piece cut to max_quoted bytes, at most 8 arguments).
inline void unknown_command(std::string& out, std::span<const std::string_view> args) {
  std::string text = "ERR unknown command '";
  text += args[0].substr(0, max_quoted);
  text += "', with args beginning with: ";
  for (std::size_t i = 1; i < args.size() && i <= 8; ++i) {
    text += '\'';
    text += args[i].substr(0, max_quoted);
    text += "' ";
  }
  append_error(out, text);
}

/// The time `amount` units of `unit_ms` milliseconds after `now_ms`, into `at`; false on overflow
/// (a negative amount gives a past time: the caller decides what that means).
inline bool expiry_from(std::int64_t now_ms, std::int64_t amount, std::int64_t unit_ms,
                        std::int64_t& at) noexcept {
  std::int64_t delta = 0;
  if (__builtin_mul_overflow(amount, unit_ms, &delta)) return false;
  return !__builtin_add_overflow(now_ms, delta, &at);
}

/// The answer to INCR/DECR/INCRBY/DECRBY key by `by`: the new value; the key's expiry stays.
inline void increment(keyspace& ks, std::string_view key, std::int64_t by, std::int64_t now_ms,
                      std::string& out) {
  keyspace::shard& s = ks.shard_of(key);
  std::int64_t result = 0;
  {
    std::lock_guard guard{s.lock};
    bool created = false;
    keyspace::entry& e = keyspace::find_or_create(s, key, now_ms, created);
    std::int64_t current = 0;
    if (!created && !parse_integer(e.value, current)) {
      out += not_integer;
      return;
    }
    if (__builtin_add_overflow(current, by, &result)) {
      out += "-ERR increment or decrement would overflow\r\n";
      return;
    }
    std::array<char, 24> text{};
    auto [end, ec] = std::to_chars(text.data(), text.data() + text.size(), result);
    e.value.assign(text.data(), static_cast<std::size_t>(end - text.data()));  // the expiry stays
  }
  append_integer(out, result);
}

/// SET key value [EX seconds | PX milliseconds] [NX | XX].
inline void set(keyspace& ks, std::span<const std::string_view> args, std::int64_t now_ms, std::string& out) {
  bool nx = false;
  bool xx = false;
  bool has_expiry = false;
  std::int64_t expires_at = keyspace::never;
  for (std::size_t i = 3; i < args.size(); ++i) {
    const std::string_view opt = args[i];
    if (iequals(opt, "nx") && !xx) {
      nx = true;
    } else if (iequals(opt, "xx") && !nx) {
      xx = true;
    } else if ((iequals(opt, "ex") || iequals(opt, "px")) && !has_expiry && i + 1 < args.size()) {
      std::int64_t amount = 0;
      if (!parse_integer(args[++i], amount)) {
        out += not_integer;
        return;
      }
      const std::int64_t unit = iequals(opt, "ex") ? 1000 : 1;
      if (amount <= 0 || !expiry_from(now_ms, amount, unit, expires_at)) {
        out += "-ERR invalid expire time in 'set' command\r\n";
        return;
      }
      has_expiry = true;
    } else {
      out += "-ERR syntax error\r\n";
      return;
    }
  }
  const std::string_view key = args[1];
  keyspace::shard& s = ks.shard_of(key);
  {
    std::lock_guard guard{s.lock};
    if (nx || xx) {
      const bool exists = keyspace::find_live(s, key, now_ms) != nullptr;
      if (exists == nx) {  // NX and it exists, or XX and it does not
        append_null(out);
        return;
      }
    }
    bool created = false;
    keyspace::entry& e = keyspace::find_or_create(s, key, now_ms, created);
    e.value.assign(args[2]);
    keyspace::set_expiry(s, e, expires_at);
  }
  out += "+OK\r\n";
}

/// The answer to TTL (unit_ms 1000) or PTTL (1): -2 no key, -1 no expiry, else the time left.
inline void ttl(keyspace& ks, std::string_view key, std::int64_t unit_ms, std::int64_t now_ms,
                std::string& out) {
  keyspace::shard& s = ks.shard_of(key);
  std::int64_t left = -2;
  {
    std::lock_guard guard{s.lock};
    if (const keyspace::entry* e = keyspace::find_live(s, key, now_ms)) {
      left = e->expires_at == keyspace::never ? -1 : e->expires_at - now_ms;
    }
  }
  if (left >= 0) left = (left + unit_ms / 2) / unit_ms;  // Redis rounds TTL to the nearest second
  append_integer(out, left);
}

/// EXPIRE key seconds: 1 if the key exists (a time not in the future removes it, as Redis 7 does),
/// else 0. Redis's NX/XX/GT/LT options are not supported (a syntax error).
inline void expire(keyspace& ks, std::span<const std::string_view> args, std::int64_t now_ms,
                   std::string& out) {
  std::int64_t seconds = 0;
  if (!parse_integer(args[2], seconds)) {
    out += not_integer;
    return;
  }
  std::int64_t at = 0;
  if (!expiry_from(now_ms, seconds, 1000, at)) {
    out += "-ERR invalid expire time in 'expire' command\r\n";
    return;
  }
  const std::string_view key = args[1];
  keyspace::shard& s = ks.shard_of(key);
  bool found = false;
  {
    std::lock_guard guard{s.lock};
    if (keyspace::entry* e = keyspace::find_live(s, key, now_ms)) {
      found = true;
      if (at <= now_ms) {
        keyspace::erase(s, key);
      } else {
        keyspace::set_expiry(s, *e, at);
      }
    }
  }
  append_integer(out, found ? 1 : 0);
}

/// CONFIG GET pattern: what redis-benchmark asks ("save" and "appendonly", to warn about
/// persistence); any other parameter is answered as unknown (an empty array), "*" with both.
inline void config_get(std::string_view pattern, std::string& out) {
  const bool all = pattern == "*";
  const bool save = all || iequals(pattern, "save");
  const bool appendonly = all || iequals(pattern, "appendonly");
  append_array(out, (save ? 2 : 0) + (appendonly ? 2 : 0));
  if (save) {
    append_bulk(out, "save");
    append_bulk(out, "");
  }
  if (appendonly) {
    append_bulk(out, "appendonly");
    append_bulk(out, "no");
  }
}

}  // namespace detail

/// Executes one command (`args` non-empty, the name first, in any case) on `ks` at time `now_ms`
/// and appends its RESP2 answer to `out`. Commands: PING [msg], ECHO msg, SET key value [EX s|PX ms]
/// [NX|XX], GET, DEL key..., EXISTS key..., INCR, DECR, INCRBY key n, DECRBY key n, EXPIRE key s,
/// TTL, PTTL, MGET key..., MSET key value..., DBSIZE, FLUSHALL [ASYNC|SYNC], QUIT, CONFIG GET
/// parameter (see config_get), COMMAND (an empty array: redis-cli then has no hints, which is all it
/// needs; COMMAND COUNT answers 0, COMMAND DOCS an empty array). Each key's operation is atomic
/// (under its shard's lock); MSET, MGET, DEL and EXISTS over several keys are not atomic as a whole
/// (Redis's are). An unknown command or wrong arguments get Redis's error answer; a command never
/// fails the connection. Returns after_command::close for QUIT. Thread-safe (see keyspace);
/// throws std::bad_alloc.
inline after_command execute(keyspace& ks, std::span<const std::string_view> args, std::int64_t now_ms,
                             std::string& out) {
  using detail::iequals;
  using detail::wrong_arity;
  const std::string_view name = args[0];
  const std::size_t argc = args.size();
  // The two commands of a benchmark first.
  if (iequals(name, "get")) {
    if (argc != 2) {
      wrong_arity(out, "get");
      return after_command::keep_open;
    }
    keyspace::shard& s = ks.shard_of(args[1]);
    std::lock_guard guard{s.lock};
    if (const keyspace::entry* e = keyspace::find_live(s, args[1], now_ms)) {
      append_bulk(out, e->value);
    } else {
      append_null(out);
    }
  } else if (iequals(name, "set")) {
    if (argc < 3) {
      wrong_arity(out, "set");
    } else {
      detail::set(ks, args, now_ms, out);
    }
  } else if (iequals(name, "ping")) {
    if (argc > 2) {
      wrong_arity(out, "ping");
    } else if (argc == 2) {
      append_bulk(out, args[1]);
    } else {
      out += "+PONG\r\n";
    }
  } else if (iequals(name, "echo")) {
    if (argc != 2) {
      wrong_arity(out, "echo");
    } else {
      append_bulk(out, args[1]);
    }
  } else if (iequals(name, "del") || iequals(name, "exists")) {
    const bool del = iequals(name, "del");
    if (argc < 2) {
      wrong_arity(out, del ? "del" : "exists");
      return after_command::keep_open;
    }
    std::int64_t n = 0;
    for (std::size_t i = 1; i < argc; ++i) {
      keyspace::shard& s = ks.shard_of(args[i]);
      std::lock_guard guard{s.lock};
      if (keyspace::find_live(s, args[i], now_ms) != nullptr) {
        ++n;
        if (del) keyspace::erase(s, args[i]);
      }
    }
    append_integer(out, n);
  } else if (iequals(name, "incr") || iequals(name, "decr")) {
    if (argc != 2) {
      wrong_arity(out, iequals(name, "incr") ? "incr" : "decr");
    } else {
      detail::increment(ks, args[1], iequals(name, "incr") ? 1 : -1, now_ms, out);
    }
  } else if (iequals(name, "incrby") || iequals(name, "decrby")) {
    const bool incr = iequals(name, "incrby");
    std::int64_t by = 0;
    if (argc != 3) {
      wrong_arity(out, incr ? "incrby" : "decrby");
    } else if (!parse_integer(args[2], by) || (!incr && by == std::numeric_limits<std::int64_t>::min())) {
      out += detail::not_integer;
    } else {
      detail::increment(ks, args[1], incr ? by : -by, now_ms, out);
    }
  } else if (iequals(name, "expire")) {
    if (argc != 3) {
      wrong_arity(out, "expire");
    } else {
      detail::expire(ks, args, now_ms, out);
    }
  } else if (iequals(name, "ttl") || iequals(name, "pttl")) {
    const bool seconds = iequals(name, "ttl");
    if (argc != 2) {
      wrong_arity(out, seconds ? "ttl" : "pttl");
    } else {
      detail::ttl(ks, args[1], seconds ? 1000 : 1, now_ms, out);
    }
  } else if (iequals(name, "mget")) {
    if (argc < 2) {
      wrong_arity(out, "mget");
      return after_command::keep_open;
    }
    append_array(out, argc - 1);
    for (std::size_t i = 1; i < argc; ++i) {
      keyspace::shard& s = ks.shard_of(args[i]);
      std::lock_guard guard{s.lock};
      if (const keyspace::entry* e = keyspace::find_live(s, args[i], now_ms)) {
        append_bulk(out, e->value);
      } else {
        append_null(out);
      }
    }
  } else if (iequals(name, "mset")) {
    if (argc < 3 || argc % 2 == 0) {
      wrong_arity(out, "mset");
      return after_command::keep_open;
    }
    for (std::size_t i = 1; i + 1 < argc; i += 2) {
      keyspace::shard& s = ks.shard_of(args[i]);
      std::lock_guard guard{s.lock};
      bool created = false;
      keyspace::entry& e = keyspace::find_or_create(s, args[i], now_ms, created);
      e.value.assign(args[i + 1]);
      keyspace::set_expiry(s, e, keyspace::never);
    }
    out += "+OK\r\n";
  } else if (iequals(name, "dbsize")) {
    if (argc != 1) {
      wrong_arity(out, "dbsize");
    } else {
      append_integer(out, static_cast<std::int64_t>(ks.size()));
    }
  } else if (iequals(name, "flushall")) {
    if (argc > 2 || (argc == 2 && !iequals(args[1], "async") && !iequals(args[1], "sync"))) {
      out += "-ERR syntax error\r\n";
    } else {
      ks.clear();
      out += "+OK\r\n";
    }
  } else if (iequals(name, "quit")) {
    out += "+OK\r\n";
    return after_command::close;
  } else if (iequals(name, "config")) {
    if (argc == 3 && iequals(args[1], "get")) {
      detail::config_get(args[2], out);
    } else if (argc >= 2 && iequals(args[1], "get")) {
      wrong_arity(out, "config|get");
    } else {
      out += "-ERR CONFIG: only CONFIG GET is supported\r\n";
    }
  } else if (iequals(name, "command")) {
    if (argc >= 2 && iequals(args[1], "count")) {
      append_integer(out, 0);
    } else {
      append_array(out, 0);
    }
  } else {
    detail::unknown_command(out, args);
  }
  return after_command::keep_open;
}

}  // namespace corio_samples::resp
