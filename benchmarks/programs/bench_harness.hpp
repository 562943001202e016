// bench_harness.hpp - the command line, the timing loop and the output line shared by corio's
// whole-program scheduler benchmarks (benchmarks/programs/*.cpp) and their Asio peers
// (benchmarks/peers/asio_*.cpp). Header-only, no dependency on corio or Asio.
//
// Contract of every program (benchmarks/run relies on it):
//   <prog> [--workers N | --threads N] [--runs N] [--warmup N] [--n N]
//     --workers/--threads  worker threads (default 2); the two spellings are aliases
//     --runs               timed runs (default 5)
//     --warmup             untimed runs before them (default 1; benchmarks/run --quick passes 0)
//     --n                  problem size (default: the figure's size; see each program)
//   prints one line with the result, the expected value and every run's time, then exactly one
//   line `<name>=<median wall ms> unit=ms`; exit status 1 when any run's result is wrong (the
//   median line is then not printed), 2 on bad arguments or when the runtime cannot start.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace bench {

struct options {
  unsigned workers = 2;
  unsigned runs = 5;
  unsigned warmup = 1;
  std::int64_t n = 0;
};

/// Limits of --n for one program.
struct n_range {
  std::int64_t default_value;
  std::int64_t min;
  std::int64_t max;
};

[[noreturn]] inline void usage(const char* prog, const char* msg) {
  std::fprintf(stderr, "%s: %s\nusage: %s [--workers N | --threads N] [--runs N] [--warmup N] [--n N]\n", prog,
               msg, prog);
  std::exit(2);
}

inline std::int64_t parse_int(const char* prog, const char* flag, const char* v, std::int64_t lo, std::int64_t hi) {
  char msg[256];
  if (v == nullptr) {
    std::snprintf(msg, sizeof msg, "%s needs a value", flag);
    usage(prog, msg);
  }
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
    std::snprintf(msg, sizeof msg, "%s: expected an integer in [%lld, %lld], got '%s'", flag,
                  static_cast<long long>(lo), static_cast<long long>(hi), v);
    usage(prog, msg);
  }
  return x;
}

inline options parse(int argc, char** argv, const char* prog, n_range n) {
  options o;
  o.n = n.default_value;
  for (int i = 1; i < argc; i += 2) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (std::strcmp(a, "--workers") == 0 || std::strcmp(a, "--threads") == 0) {
      o.workers = static_cast<unsigned>(parse_int(prog, a, v, 1, 256));
    } else if (std::strcmp(a, "--runs") == 0) {
      o.runs = static_cast<unsigned>(parse_int(prog, a, v, 1, 1000));
    } else if (std::strcmp(a, "--warmup") == 0) {
      o.warmup = static_cast<unsigned>(parse_int(prog, a, v, 0, 100));
    } else if (std::strcmp(a, "--n") == 0) {
      o.n = parse_int(prog, a, v, n.min, n.max);
    } else {
      char msg[256];
      std::snprintf(msg, sizeof msg, "unknown argument '%s'", a);
      usage(prog, msg);
    }
  }
  return o;
}

/// n*(n-1)/2: the sum of 0..n-1 (skynet's and fanout's result).
constexpr std::int64_t sum_below(std::int64_t n) { return n * (n - 1) / 2; }

/// fib(n) computed iteratively, for checking.
constexpr std::int64_t fib_value(std::int64_t n) {
  std::int64_t a = 0, b = 1;
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t c = a + b;
    a = b;
    b = c;
  }
  return a;
}

/// Number of solutions of the n-queens problem, n in [1, 16] (OEIS A000170).
constexpr std::int64_t nqueens_value(std::int64_t n) {
  constexpr std::int64_t table[] = {1, 1, 0, 0, 2, 10, 4, 40, 92, 352, 724, 2680, 14200, 73712, 365596, 2279184,
                                    14772512};
  return table[n];
}

/// True when n is 10^k (skynet's tree with branching 10 needs it).
constexpr bool is_power_of_10(std::int64_t n) {
  if (n < 1) return false;
  while (n % 10 == 0) n /= 10;
  return n == 1;
}

/// Runs `run` (a callable returning the result as std::int64_t) opt.warmup times untimed and
/// opt.runs times timed with std::chrono::steady_clock around the call, checks every result
/// against `expected`, prints the report described at the top of this file and returns main's
/// exit status. An exception from `run` is reported and gives status 1.
///
/// With `ops` > 0 (the operations one run performs: round trips, messages), it also prints
/// `<name>_per_op=<median ns per operation> unit=ns` and `<name>_rate=<operations per second of
/// the median run> unit=ops/s`.
template <class Run>
int measure(const char* name, const options& opt, std::int64_t expected, Run&& run, std::int64_t ops = 0) {
  using clock = std::chrono::steady_clock;
  std::vector<double> ms;
  ms.reserve(opt.runs);
  std::int64_t result = 0;
  bool ok = true;
  try {
    for (unsigned i = 0; i < opt.warmup; ++i) {
      result = run();
      ok = ok && result == expected;
    }
    for (unsigned i = 0; i < opt.runs; ++i) {
      auto t0 = clock::now();
      result = run();
      auto t1 = clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      ok = ok && result == expected;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: run failed: %s\n", name, e.what());
    return 1;
  }
  std::string list;
  for (double t : ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.1f", list.empty() ? "" : " ", t);
    list += buf;
  }
  const bool peer = std::strncmp(name, "asio_", 5) == 0;
  std::printf("%s: result %lld (expected %lld), %s %u, n %lld, warm-up %u, runs (ms): %s\n", name,
              static_cast<long long>(result), static_cast<long long>(expected), peer ? "threads" : "workers", opt.workers,
              static_cast<long long>(opt.n), opt.warmup, list.c_str());
  if (!ok) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: WRONG RESULT %lld, expected %lld\n", name, static_cast<long long>(result),
                 static_cast<long long>(expected));
    return 1;
  }
  std::sort(ms.begin(), ms.end());
  std::size_t k = ms.size();
  double median = k % 2 == 1 ? ms[k / 2] : (ms[k / 2 - 1] + ms[k / 2]) / 2;
  std::printf("%s=%.1f unit=ms\n", name, median);
  if (ops > 0) {
    std::printf("%s_per_op=%.1f unit=ns\n", name, median * 1e6 / static_cast<double>(ops));
    std::printf("%s_rate=%.0f unit=ops/s\n", name, static_cast<double>(ops) / (median / 1e3));
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace bench
