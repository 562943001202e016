// benchmarks/programs/resolve_rate.cpp - corio::net::resolve calls per second, one task in a
// loop on one worker, for each resolver path.
//
// Usage: resolve_rate [--seconds S (1)]
// Prints one line per case: `resolve <host> <backend>: <calls/s> calls/s, <us> us/call`.
// Cases: "localhost" (answered by corio itself, RFC 6761: no resolver runs), and a name of
// /etc/hosts other than localhost (the first found), through c-ares (reads /etc/resolv.conf and
// /etc/hosts per call: one channel per resolve) and through getaddrinfo on the blocking pool. Nothing
// leaves the machine.
#include <fmt/format.h>

#include <chrono>
#include <corio/corio.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace {

std::string hosts_file_name() {
  std::ifstream in("/etc/hosts");
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string address;
    std::string name;
    if (!(words >> address)) continue;
    while (words >> name) {
      if (name.find("localhost") == std::string::npos) return name;
    }
  }
  return {};
}

corio::task<std::size_t> loop(std::string host, corio::net::resolve_options options, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::size_t calls = 0;
  for (;;) {
    auto v = co_await corio::net::resolve(host, "80", options);
    if (v.empty()) std::abort();
    ++calls;
    if ((calls & 15) == 0 && std::chrono::steady_clock::now() >= end) break;
  }
  co_return calls;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string_view{argv[i]} == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  corio::runtime rt{{.workers = 1}};
  const std::string hosts_name = hosts_file_name();
  struct row {
    std::string host;
    corio::net::resolver_backend backend;
    const char* name;
  };
  std::vector<row> rows{{"localhost", corio::net::resolver_backend::automatic, "local answer"}};
  if (!hosts_name.empty()) {
    if (corio::net::has_cares()) rows.push_back({hosts_name, corio::net::resolver_backend::cares, "c-ares"});
    rows.push_back({hosts_name, corio::net::resolver_backend::getaddrinfo, "getaddrinfo pool"});
  }
  for (const auto& r : rows) {
    corio::net::resolve_options o;
    o.resolver.backend = r.backend;
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t calls = rt.block_on(loop(r.host, o, seconds));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("resolve {} {}: {:.0f} calls/s, {:.2f} us/call\n", r.host, r.name, calls / s, s * 1e6 / calls);
  }
}
