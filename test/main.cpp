// The test main: doctest's runner, after raising the descriptor limit and checking io_uring.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <liburing.h>
#include <sys/resource.h>

#include <cstdlib>

int main(int argc, char** argv) {
  // Tests open many sockets: take the whole hard limit (20,000 on the machines here).
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  // Skip (exit 77, which meson counts as skipped) where the machine refuses io_uring, as
  // liburing's own tests do; the Asio reactor will run these suites there.
  io_uring ring{};
  if (const int rc = io_uring_queue_init(8, &ring, 0); rc < 0) {
    fmt::print(stderr, "io_uring unavailable here (errno {}): skipping\n", -rc);
    return 77;
  }
  io_uring_queue_exit(&ring);

  doctest::Context context;
  context.applyCommandLine(argc, argv);
  return context.run();
}
