// The test main: doctest's runner, after raising the descriptor limit.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fmt/format.h>
#if !defined(_WIN32)
#include <sys/resource.h>
#endif

#include <cstdlib>

int main(int argc, char** argv) {
#if !defined(_WIN32)
  // Tests open many sockets: take the whole hard limit (20,000 on the machines here).
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
#endif
  // Where the machine refuses io_uring, runtimes fall back to the Asio reactor by themselves, so
  // every suite runs; `meson test --setup asio` (CORIO_BACKEND=asio) runs them on Asio anyway.
  if (const char* backend = std::getenv("CORIO_BACKEND")) fmt::print(stderr, "CORIO_BACKEND={}\n", backend);

  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
