// Suite "net": corio::wait_readable and wait_writable on descriptors corio does not own.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <corio/corio.hpp>
#include <optional>
#include <system_error>

#include "test_support.hpp"

using namespace std::chrono_literals;

namespace {

/// A non-blocking pipe, closed by the destructor.
struct test_pipe {
  int fds[2]{-1, -1};
  test_pipe() { REQUIRE(::pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0); }
  ~test_pipe() {
    for (int fd : fds) {
      if (fd >= 0) ::close(fd);
    }
  }
  [[nodiscard]] int reader() const { return fds[0]; }
  [[nodiscard]] int writer() const { return fds[1]; }
};

corio::task<void> write_byte_later(int fd) {
  co_await corio::yield();
  const char c = 'x';
  REQUIRE(::write(fd, &c, 1) == 1);
}

corio::task<int> wait_then_read(int fd, int writer) {
  auto later = corio::spawn(write_byte_later(writer));
  const corio::ready_events events = co_await corio::wait_readable(fd);
  co_await std::move(later);
  CHECK(events == corio::ready_events::readable);
  char c = 0;
  const auto n = ::read(fd, &c, 1);
  co_return n == 1 && c == 'x' ? 1 : 0;
}

corio::task<int> rounds_of_waits(int rounds) {
  int done = 0;
  for (int i = 0; i < rounds; ++i) {
    test_pipe p;
    const int got = co_await wait_then_read(p.reader(), p.writer());
    done += got;
    // A full pipe is not writable; an empty one is at once.
    const corio::ready_events w = co_await corio::wait_writable(p.writer());
    CHECK(w == corio::ready_events::writable);
  }
  co_return done;
}

corio::task<bool> wait_cancelled_by_timeout(int fd) {
  const auto r = co_await corio::try_timeout(20ms, corio::wait_readable(fd));
  co_return !r.has_value();
}

corio::task<int> bad_descriptor() {
  std::error_code ec;
  const corio::ready_events e = co_await corio::wait_readable(-1, ec);
  CHECK(e == corio::ready_events::none);
  CHECK(ec == std::errc::bad_file_descriptor);
  int thrown = 0;
  try {
    (void)co_await corio::wait_writable(-1);
  } catch (const std::system_error& error) {
    thrown = error.code().value();
  }
  co_return thrown;
}

}  // namespace

TEST_CASE("wait_readable reports a pipe readable once a byte is written, over many descriptors") {
  corio_test::hang_guard guard{"wait_readable rounds", std::chrono::seconds(120)};
  // Fresh pipes reuse descriptor numbers: the Asio reactor must not keep a stale registration.
  for (unsigned workers : {1u, 2u, 4u}) {
    corio::runtime rt{{.workers = workers}};
    const int rounds = static_cast<int>(corio_test::scaled(300));
    CHECK(rt.block_on(rounds_of_waits(rounds)) == rounds);
  }
}

TEST_CASE("a readiness wait that never comes ends cancelled by a timeout, and the pipe stays usable") {
  corio_test::hang_guard guard{"wait_readable timeout", std::chrono::seconds(120)};
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
  test_pipe p;
  CHECK(rt.block_on(wait_cancelled_by_timeout(p.reader())));
  corio::runtime rt2{{.workers = 2}};
  CHECK(rt2.block_on(wait_then_read(p.reader(), p.writer())) == 1);
}

TEST_CASE("a readiness wait on a negative descriptor fails with EBADF, thrown or as an error_code") {
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(bad_descriptor()) == EBADF);
}
