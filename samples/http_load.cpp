// samples/http_load.cpp - an HTTP/1.1 keep-alive load generator written with corio.
//
//   http_load [--port N] [--host ADDRESS] [--connections N] [--seconds S] [--workers N] [--path P]
//             [--sources LIST] [--connect-rate N] [--rate N] [--warmup S]
//
// Opens N keep-alive connections to ADDRESS:PORT (default 127.0.0.1:8080, 64 connections,
// 5 seconds, 1 worker, like `wrk -t1 -c64 -d5s`), each sending one GET at a time, and prints
// requests per second and the p50/p99/max latency in microseconds. Exits 1 when any connection
// failed, any answer was malformed, truncated or not 200. A connection the server closes between
// two answers (a graceful shutdown) is counted as closed, not as an error; the last lines say how
// many connections were still open at the end (a connection whose end of stream arrives within
// 100 ms of a last read is counted as closed by the server).
//
// A run has three phases: the ramp-up (opening the connections, at most --connect-rate a second,
// all at once by default; each connection sends its first request as soon as it is connected),
// the warm-up (--warmup seconds, default 0) and the measured phase (--seconds). A line is printed
// (and flushed) as each phase begins and as the measured one ends, so that a script can sample
// the server at those moments; the summary gives each phase's requests, errors and latency.
// --rate spreads that many requests a second evenly over all connections (each connection sends
// one request every CONNECTIONS/RATE seconds, on a grid offset per connection; a connection that
// falls behind sends at once and skips the ticks it missed); without it each connection sends its
// next request as soon as it has the answer. Latency is measured from the request's write to the
// end of its answer. --sources binds the connections, in turn, to source addresses before they
// connect (a comma-separated list of addresses and IPv4 ranges such as 127.0.0.2-127.0.0.5), so
// that more connections than one source address has ephemeral ports can reach one server.
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_parser.hpp"
#include "sample_args.hpp"

using namespace std::chrono_literals;
using corio_samples::parse_unsigned;
namespace http = corio_samples::http;

namespace {

struct options {
  unsigned port = 8080;
  std::string host = "127.0.0.1";
  unsigned connections = 64;
  unsigned seconds = 5;
  unsigned warmup = 0;
  unsigned workers = 1;
  unsigned rate = 0;          // requests per second over all connections; 0: each as fast as it can
  unsigned connect_rate = 0;  // connections opened per second during the ramp-up; 0: all at once
  std::string path = "/";
  std::string sources_text;                   // as given, for the report
  std::vector<corio::net::endpoint> sources;  // port 0 each; empty: the kernel picks
};

/// The address of `text` ("127.0.0.2", "::1") as an endpoint with port 0, or std::nullopt.
std::optional<corio::net::endpoint> source_address(std::string_view text) {
  const std::string s(text);
  return corio::net::endpoint::try_parse(s.find(':') != std::string::npos ? fmt::format("[{}]:0", s)
                                                                          : fmt::format("{}:0", s));
}

/// A dotted-quad IPv4 address as a number, or std::nullopt.
std::optional<std::uint32_t> ipv4_number(std::string_view text) {
  std::uint32_t value = 0;
  for (int part = 0; part < 4; ++part) {
    unsigned byte = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), byte);
    if (ec != std::errc{} || byte > 255 || end == text.data()) return std::nullopt;
    value = (value << 8) | byte;
    text.remove_prefix(static_cast<std::size_t>(end - text.data()));
    if (part < 3) {
      if (text.empty() || text.front() != '.') return std::nullopt;
      text.remove_prefix(1);
    }
  }
  if (!text.empty()) return std::nullopt;
  return value;
}

/// Parses --sources: addresses and IPv4 ranges ("A-B", at most 65536 addresses each), separated
/// by commas. False on anything else.
bool parse_sources(std::string_view text, std::vector<corio::net::endpoint>& out) {
  out.clear();
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    const std::size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      const auto e = source_address(item);
      if (!e) return false;
      out.push_back(*e);
      continue;
    }
    const auto first = ipv4_number(item.substr(0, dash));
    const auto last = ipv4_number(item.substr(dash + 1));
    if (!first || !last || *last < *first || *last - *first >= 65536) return false;
    for (std::uint64_t a = *first; a <= *last; ++a) {
      out.push_back(*source_address(fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)));
    }
  }
  return !out.empty();
}

/// Latencies in nanoseconds in log-linear buckets (HdrHistogram's layout, 64 sub-buckets per power
/// of two): values below 128 ns are kept exactly, larger ones within 1/64 (1.6%); values above
/// 2^47 ns (39 hours) count as that. Fixed size (21 KiB) however long the run.
class latency_histogram {
 public:
  void record(std::uint64_t ns) noexcept {
    ++counts_[index_of(ns)];
    ++count_;
    max_ = std::max(max_, ns);
  }
  void merge(const latency_histogram& other) noexcept {
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
  }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  /// The `p` quantile (0 < p <= 1) by nearest rank, as the highest value of its bucket (never above
  /// the largest value recorded); 0 when nothing was recorded.
  [[nodiscard]] std::uint64_t percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(p * static_cast<double>(count_) + 0.999999));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(highest_of(i), max_);
    }
    return max_;
  }

 private:
  static constexpr unsigned max_shift = 40;
  static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < 128) return static_cast<std::size_t>(v);
    auto shift = static_cast<unsigned>(std::bit_width(v)) - 7;  // v >> shift is in [64, 128)
    if (shift > max_shift) {
      shift = max_shift;
      v = (std::uint64_t{128} << shift) - 1;
    }
    return 128 + (shift - 1) * 64 + static_cast<std::size_t>((v >> shift) - 64);
  }
  static std::uint64_t highest_of(std::size_t i) noexcept {
    if (i < 128) return i;
    const std::size_t shift = (i - 128) / 64 + 1;
    const std::uint64_t mantissa = (i - 128) % 64 + 64;
    return ((mantissa + 1) << shift) - 1;
  }

  std::array<std::uint64_t, 128 + max_shift * 64> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

enum phase : int { ramp_up, warm_up, measured, phase_count };
constexpr std::array<std::string_view, phase_count> phase_names{"ramp-up", "warm-up", "measured"};

struct phase_stats {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;   // connect or I/O failures, malformed or truncated answers
  std::uint64_t closed = 0;   // the server closed the connection between answers (a drain)
  std::uint64_t non_200 = 0;
  latency_histogram latency;  // one entry per answered request

  void merge(const phase_stats& o) noexcept {
    requests += o.requests;
    errors += o.errors;
    closed += o.closed;
    non_200 += o.non_200;
    latency.merge(o.latency);
  }
};

/// What the connections share. The statistics are kept per worker (indexed by
/// corio::this_worker_index()), each updated only by tasks running on that worker, between two
/// suspension points, so no update needs an atomic.
struct load_state {
  corio::net::endpoint server;
  std::string request;
  std::vector<corio::net::endpoint> sources;
  unsigned connections = 0;
  corio::clock::duration interval{};  // between one connection's requests; 0: none
  corio::clock::time_point grid_start;
  std::atomic<int> current_phase{ramp_up};
  corio::event done;                      // set when the measured phase ends
  corio::latch connected;                 // counted down once per connection, connected or not
  std::atomic<unsigned> open_at_end{0};   // connections that saw `done` still open
  std::vector<std::array<phase_stats, phase_count>> per_worker;

  load_state(unsigned n, unsigned workers) : connections(n), connected(n), per_worker(std::max(1u, workers)) {}

  /// The running worker's statistics of the current phase. Valid until the next suspension.
  phase_stats& stats() {
    const unsigned w = corio::this_worker_index().value_or(0);
    return per_worker[std::min<std::size_t>(w, per_worker.size() - 1)][current_phase.load(std::memory_order_relaxed)];
  }
};

// Bounded in time (the phases) and in count (max_requests per connection).
constexpr std::uint64_t max_requests = 100'000'000;
constexpr auto connect_timeout = 10s;

// Parameters by pointer or value (GCC 12 and coroutine references, see corio/runtime.hpp).
corio::task<void> drive(load_state* st, unsigned index) {
  using corio::clock;
  std::error_code ec;
  const corio::net::endpoint local = st->sources.empty() ? corio::net::endpoint{} : st->sources[index % st->sources.size()];
  auto connected = co_await corio::try_timeout(connect_timeout, corio::net::tcp_stream::connect(st->server, local, ec));
  st->connected.count_down();
  if (!connected || ec) {
    ++st->stats().errors;
    co_return;
  }
  corio::net::tcp_stream s = std::move(*connected);
  s.set_nodelay(true, ec);
  std::array<char, 16384> buf{};
  std::size_t have = 0;
  // The first request goes at once; the next ones on this connection's grid: ticks `interval`
  // apart, offset by index/connections of an interval, so that all connections spread evenly.
  clock::time_point next{};
  if (st->interval != clock::duration::zero()) {
    const auto offset = st->interval * index / st->connections;
    const auto since = clock::now() - (st->grid_start + offset);
    next = st->grid_start + offset + (since / st->interval) * st->interval;  // the last tick up to now
  }
  for (std::uint64_t n = 0; n < max_requests; ++n) {
    if (n != 0 && st->interval != clock::duration::zero()) {
      next += st->interval;
      const auto now = clock::now();
      if (next < now) next += ((now - next) / st->interval) * st->interval;  // skip the missed ticks
      if (next > now) {
        const bool ended = co_await corio::try_deadline(next, st->done.wait());
        if (ended) break;
      }
    }
    if (st->done.is_set()) break;
    const auto start = clock::now();
    (void)co_await s.write_all(st->request, ec);
    if (ec) {
      // The server closed the connection (a graceful shutdown closes idle keep-alive
      // connections): no answer was begun, so nothing was lost.
      ++(ec == std::errc::broken_pipe || ec == std::errc::connection_reset ? st->stats().closed : st->stats().errors);
      co_return;
    }
    http::response_head head;
    for (;;) {
      const auto parsed = http::parse_response({buf.data(), have}, head);
      if (parsed == http::parse_status::complete && have >= head.head_bytes + head.content_length) break;
      if (parsed == http::parse_status::bad_request || parsed == http::parse_status::too_large ||
          have == buf.size()) {
        ++st->stats().errors;
        co_return;
      }
      const std::size_t k = co_await s.read_some(std::span<char>{buf}.subspan(have), ec);
      if (ec || k == 0) {
        // Closed before a byte of the answer: the request was not taken (a drain). Closed in the
        // middle of an answer: a truncated answer, an error.
        const bool clean = have == 0 && (k == 0 || ec == std::errc::connection_reset);
        ++(clean ? st->stats().closed : st->stats().errors);
        co_return;
      }
      have += k;
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start);
    phase_stats& stats = st->stats();
    stats.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, elapsed.count())));
    ++stats.requests;
    if (head.status != 200) ++stats.non_200;
    const std::size_t used = head.head_bytes + head.content_length;
    std::memmove(buf.data(), buf.data() + used, have - used);
    have -= used;
  }
  // Still open? A connection the server closed while it waited for its next tick has not been
  // told yet: a short read is (the end of the stream at once), while an open one times out (the
  // error_code form reports the read the timeout cancelled as operation_canceled).
  auto unread = co_await corio::try_timeout(100ms, s.read_some(std::span<char>{buf}.subspan(have), ec));
  if (!unread || ec == std::errc::operation_canceled) {
    st->open_at_end.fetch_add(1, std::memory_order_relaxed);
  } else if (*unread == 0 || ec) {
    ++st->stats().closed;
  } else {
    ++st->stats().errors;  // bytes nobody asked for
  }
}

void announce(std::string_view what) {
  fmt::print("http_load: {}\n", what);
  std::fflush(stdout);
}

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

corio::task<int> load(options opt, unsigned workers) {
  using corio::clock;
  load_state st(opt.connections, workers);
  st.server = corio::net::endpoint::parse(opt.host.find(':') != std::string::npos
                                              ? fmt::format("[{}]:{}", opt.host, opt.port)
                                              : fmt::format("{}:{}", opt.host, opt.port));
  st.request = fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", opt.path, opt.host);
  st.sources = opt.sources;
  if (opt.rate != 0) {
    st.interval = std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds{
        std::max<std::uint64_t>(1, std::uint64_t{1'000'000'000} * opt.connections / opt.rate)});
  }
  fmt::print("http_load: {} connections to {}{}{}{}, {} s measured after a {} s warm-up\n", opt.connections,
             st.server.to_string(), opt.sources.empty() ? "" : " from ", opt.sources_text,
             opt.rate == 0 ? std::string{} : fmt::format(", {} requests/s", opt.rate), opt.seconds, opt.warmup);
  std::array<double, phase_count> phase_seconds{};
  std::vector<corio::join_handle<void>> tasks;
  tasks.reserve(opt.connections);
  const auto start = clock::now();
  st.grid_start = start;
  announce("ramp-up begins");
  for (unsigned i = 0; i < opt.connections; ++i) {
    if (opt.connect_rate != 0) {
      const auto target = start + std::chrono::duration_cast<clock::duration>(
                                      std::chrono::nanoseconds{std::uint64_t{1'000'000'000} * i / opt.connect_rate});
      if (clock::now() < target) co_await corio::sleep_until(target);
    }
    tasks.push_back(corio::spawn(drive(&st, i)));
  }
  co_await st.connected.wait();
  auto mark = clock::now();
  phase_seconds[ramp_up] = std::chrono::duration<double>(mark - start).count();
  st.current_phase.store(warm_up, std::memory_order_relaxed);
  if (opt.warmup != 0) {
    announce("warm-up begins");
    co_await corio::sleep_for(std::chrono::seconds(opt.warmup));
  }
  auto now = clock::now();
  phase_seconds[warm_up] = std::chrono::duration<double>(now - mark).count();
  mark = now;
  st.current_phase.store(measured, std::memory_order_relaxed);
  announce("measured phase begins");
  co_await corio::sleep_for(std::chrono::seconds(opt.seconds));
  phase_seconds[measured] = std::chrono::duration<double>(clock::now() - mark).count();
  announce("measured phase ends");
  st.done.set();
  for (auto& t : tasks) co_await t;

  std::array<phase_stats, phase_count> phases;
  phase_stats total;
  for (const auto& w : st.per_worker) {
    for (int p = 0; p < phase_count; ++p) phases[p].merge(w[p]);
  }
  fmt::print("{:<9} {:>8} {:>10} {:>7} {:>8} {:>7} {:>11} {:>11} {:>11}\n", "phase", "seconds", "requests",
             "errors", "non-200", "closed", "p50 us", "p99 us", "max us");
  for (int p = 0; p < phase_count; ++p) {
    const phase_stats& s = phases[p];
    fmt::print("{:<9} {:>8.2f} {:>10} {:>7} {:>8} {:>7} {:>11.1f} {:>11.1f} {:>11.1f}\n", phase_names[p],
               phase_seconds[p], s.requests, s.errors, s.non_200, s.closed, us(s.latency.percentile(0.50)),
               us(s.latency.percentile(0.99)), us(s.latency.max()));
    total.merge(s);
  }
  const phase_stats& m = phases[measured];
  fmt::print("requests: {}  errors: {}  non-200: {}  closed by the server: {}\n", total.requests, total.errors,
             total.non_200, total.closed);
  fmt::print("connections open at the end: {} of {}\n", st.open_at_end.load(), opt.connections);
  fmt::print("requests/s: {:.0f}\n", static_cast<double>(m.requests) / std::max(phase_seconds[measured], 1e-9));
  fmt::print("latency us: p50 {:.1f}  p99 {:.1f}  max {:.1f}\n", us(m.latency.percentile(0.50)),
             us(m.latency.percentile(0.99)), us(m.latency.max()));
  co_return (total.errors == 0 && total.non_200 == 0 && total.requests > 0) ? 0 : 1;
}

int usage() {
  fmt::print(stderr,
             "usage: http_load [--port N] [--host ADDRESS] [--connections N] [--seconds S] [--workers N]\n"
             "                 [--path P] [--sources LIST] [--connect-rate N] [--rate N] [--warmup S]\n"
             "  --seconds S       length of the measured phase (default 5)\n"
             "  --sources LIST    source addresses the connections bind to in turn, e.g. 127.0.0.2-127.0.0.5\n"
             "  --connect-rate N  connections opened per second during the ramp-up (default: all at once)\n"
             "  --rate N          requests per second over all connections (default: as fast as answered)\n"
             "  --warmup S        seconds of load between the ramp-up and the measured phase (default 0)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    bool ok = has_value;
    if (ok && arg == "--port") ok = parse_unsigned(argv[++i], opt.port) && opt.port <= 65535;
    else if (ok && arg == "--host") opt.host = argv[++i];
    else if (ok && arg == "--connections") ok = parse_unsigned(argv[++i], opt.connections) && opt.connections > 0;
    else if (ok && arg == "--seconds") ok = parse_unsigned(argv[++i], opt.seconds) && opt.seconds > 0;
    else if (ok && arg == "--workers") ok = parse_unsigned(argv[++i], opt.workers);
    else if (ok && arg == "--path") opt.path = argv[++i];
    else if (ok && arg == "--sources") ok = parse_sources(opt.sources_text = argv[++i], opt.sources);
    else if (ok && arg == "--connect-rate") ok = parse_unsigned(argv[++i], opt.connect_rate);
    else if (ok && arg == "--rate") ok = parse_unsigned(argv[++i], opt.rate);
    else if (ok && arg == "--warmup") ok = parse_unsigned(argv[++i], opt.warmup);
    else ok = false;
    if (!ok) return usage();
  }
  // At most a day per phase and a million connections: keeps every time computation in range.
  if (opt.seconds > 86400 || opt.warmup > 86400 || opt.connections > 1'000'000) return usage();
  try {
    corio::runtime rt{{.workers = opt.workers}};
    return rt.block_on(load(opt, rt.workers()));
  } catch (const std::exception& e) {
    fmt::print(stderr, "http_load: {}\n", e.what());
    return 1;
  }
}
