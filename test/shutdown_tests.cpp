// runtime::shutdown(grace) (suite "cancel"): stop requested on every task, a grace period, then
// the frames of tasks still suspended destroyed; nothing leaks, nothing hangs.
#include <corio/corio.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <semaphore>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::net::endpoint;
using corio::net::tcp_listener;
using corio::net::tcp_stream;
using corio_test::scaled;

namespace {

struct census {
  static inline std::atomic<long> alive{0};
  census() { alive.fetch_add(1); }
  census(const census&) { alive.fetch_add(1); }
  ~census() { alive.fetch_sub(1); }
};

corio::task<void> parked_on_channel(corio::channel<int> ch, census c) {
  (void)c;
  auto v = co_await ch.recv();
  (void)v;
}

corio::task<void> sleeping(census c) {
  (void)c;
  co_await corio::sleep_for(24h);
}

corio::task<void> reader(tcp_stream s, census c, std::atomic<int>* ready) {
  (void)c;
  std::array<std::byte, 64> buf{};
  ready->fetch_add(1);
  auto n = co_await s.read_some(buf);
  (void)n;
}

corio::task<void> stubborn(census c, std::atomic<int>* refusals) {
  (void)c;
  for (;;) {
    bool refused = false;
    try {
      co_await corio::sleep_for(24h);
    } catch (const corio::operation_cancelled&) {
      refusals->fetch_add(1);
      refused = true;
    }
    if (refused) co_await corio::yield();  // ignores its stop, yet suspends: the deadline can end it
  }
}

corio::task<void> open_connections(std::size_t n, std::atomic<int>* ready) {
  auto l = tcp_listener::bind("127.0.0.1:0");
  const endpoint ep = l.local_endpoint();
  for (std::size_t i = 0; i < n; ++i) {
    tcp_stream client = co_await tcp_stream::connect(ep);
    tcp_stream server = co_await l.accept();
    corio::spawn(reader(std::move(client), census{}, ready)).detach();
    corio::spawn(reader(std::move(server), census{}, ready)).detach();
  }
}

corio::task<void> receive_until_closed(corio::channel<int> ch, std::atomic<long>* received) {
  for (;;) {
    auto v = co_await ch.recv();
    if (!v) break;
    received->fetch_add(1);
  }
}

corio::task<void> select_until_closed(corio::channel<int> a, corio::channel<int> b, std::atomic<long>* received) {
  for (;;) {
    auto r = co_await corio::select(a.recv_case(), b.recv_case());
    const std::optional<int>& v = r.index() == 0 ? std::get<0>(r) : std::get<1>(r);
    if (!v) break;
    received->fetch_add(1);
  }
}

corio::task<void> sleep_an_hour() { co_await corio::sleep_for(1h); }

corio::task<void> wait_in_an_hour_timeout() {
  corio::event never;
  co_await corio::timeout(1h, never.wait());
}

corio::task<void> shielded_recv(corio::channel<int> ch, std::atomic<int>* got) {
  auto v = co_await corio::shield(ch.recv());  // the shutdown's stop does not end it
  got->store(v ? *v : -1);
}

corio::task<void> signal_stop(corio::channel<int> never, std::counting_semaphore<2>* stopped) {
  try {
    auto v = co_await never.recv();
    (void)v;
  } catch (const corio::operation_cancelled&) {
    stopped->release();
    throw;
  }
}

/// Shuts a runtime down with `grace` while one task waits, out of reach of the stop, on a channel
/// that a thread fills only once the shutdown's stop reached another task. Returns how many tasks
/// the shutdown destroyed; `*got` is the value the waiting task received (0: none).
template <class D>
std::size_t shutdown_waiting_for_a_late_value(unsigned workers, D grace, std::atomic<int>* got) {
  corio::channel<int> ch{1}, never{0};
  std::counting_semaphore<2> stopped{0};
  corio::runtime rt{{.workers = workers}};
  rt.spawn(shielded_recv(ch, got)).detach();
  rt.spawn(signal_stop(never, &stopped)).detach();
  std::thread filler([&stopped, ch]() mutable {
    if (stopped.try_acquire_for(60s)) (void)ch.try_send(7);
  });
  const std::size_t destroyed = rt.shutdown(grace);
  stopped.release();  // the filler's wait ends even when the stop never reached signal_stop
  filler.join();
  return destroyed;
}

}  // namespace

TEST_SUITE("cancel") {
  TEST_CASE("shutdown with many suspended tasks and open connections ends them all, leak-free") {
    corio_test::hang_guard guard{"shutdown", 300s};
    const std::size_t before = corio_test::open_descriptors();
    const std::size_t tasks = scaled(100'000);
    const std::size_t connections = std::min<std::size_t>(500, scaled(500));
    std::atomic<int> ready{0}, refusals{0};
    {
      corio::runtime rt{{.workers = 4}};
      corio::channel<int> ch{0};
      for (std::size_t i = 0; i < tasks; ++i) {
        if (i % 2 == 0) rt.spawn(parked_on_channel(ch, census{})).detach();
        else rt.spawn(sleeping(census{})).detach();
      }
      rt.block_on(open_connections(connections, &ready));
      for (int i = 0; i < 20'000 && ready.load() < static_cast<int>(2 * connections); ++i) std::this_thread::sleep_for(1ms);
      CHECK(ready.load() == static_cast<int>(2 * connections));
      rt.spawn(stubborn(census{}, &refusals)).detach();
      for (int i = 0; i < 20'000 && rt.stats().live_tasks < tasks + 2 * connections + 1; ++i) {
        std::this_thread::sleep_for(1ms);
      }
      const std::size_t destroyed = rt.shutdown(2s);
      // Every task that honours its stop ended in the grace period; the stubborn one was destroyed.
      CHECK(refusals.load() >= 1);
      CHECK(destroyed >= 1);
      CHECK(destroyed <= 1 + 2 * connections);  // reads end by cancellation (or by destruction)
      CHECK_THROWS_AS((void)rt.spawn(sleeping(census{})), std::runtime_error);
    }
    CHECK(census::alive.load() == 0);
    CHECK(corio_test::open_descriptors() == before);
  }

  TEST_CASE("a thread outside the runtime that sends and closes while the runtime shuts down races nothing") {
    // The channels outlive the runtime (documented); try_send and close are allowed from any
    // thread. Tasks parked on them are destroyed by the shutdown while the thread claims them.
    corio_test::hang_guard guard{"foreign sender during shutdown", 300s};
    const int rounds = static_cast<int>(scaled(60));
    for (int round = 0; round < rounds; ++round) {
      CAPTURE(round);
      corio::channel<int> a{0}, b{1};
      std::atomic<long> received{0}, sent{0};
      std::atomic<bool> done{false};
      std::thread foreign;
      {
        corio::runtime rt{{.workers = 2}};
        for (int i = 0; i < 4; ++i) {
          rt.spawn(receive_until_closed(a, &received)).detach();
          rt.spawn(select_until_closed(a, b, &received)).detach();
        }
        for (int i = 0; i < 20'000 && rt.stats().live_tasks < 8; ++i) std::this_thread::sleep_for(100us);
        foreign = std::thread([&a, &b, &sent, &done] {
          for (int i = 0; i < 200'000 && !done.load(); ++i) {
            if (a.try_send(i).status == corio::channel_status::delivered) sent.fetch_add(1);
            if (b.try_send(i).status == corio::channel_status::delivered) sent.fetch_add(1);
          }
          a.close();
          b.close();
        });
        std::this_thread::sleep_for(std::chrono::microseconds(round % 7 * 50));  // vary where the race lands
        rt.shutdown(std::chrono::milliseconds(round % 2));
        done.store(true);
      }
      foreign.join();
      CHECK(received.load() <= sent.load());
    }
  }

  TEST_CASE("shutdown destroys sleeping tasks and tasks in a timeout whose timers share a wheel slot") {
    // Destroying a sleeping frame left its timer entry linked in the wheel; a timeout's timer in
    // the same slot, released when its own frame was destroyed next, wrote into the freed frame.
    for (int round = 0; round < 20; ++round) {
      corio::runtime rt{{.workers = 1}};  // the real clock: an idle manual one would jump to the timers
      for (int i = 0; i < 8; ++i) {  // both orders: the registry destroys in one of them
        if (round % 2 == 0) rt.spawn(sleep_an_hour()).detach();
        rt.spawn(wait_in_an_hour_timeout()).detach();
        if (round % 2 == 1) rt.spawn(sleep_an_hour()).detach();
      }
      for (int i = 0; i < 20'000 && rt.stats().live_tasks < 16; ++i) std::this_thread::sleep_for(100us);
      CHECK(rt.stats().live_tasks == 16);
      CHECK(rt.shutdown(std::chrono::nanoseconds{0}) == 16);
    }
  }

  TEST_CASE("shutdown with a grace of nanoseconds::max() or a thousand years waits for a task that ends late by itself") {
    corio_test::hang_guard guard{"shutdown with an endless grace", 120s};
    for (unsigned workers : {1u, 2u}) {
      CAPTURE(workers);
      std::atomic<int> got{0};
      CHECK(shutdown_waiting_for_a_late_value(workers, std::chrono::nanoseconds::max(), &got) == 0);
      CHECK(got.load() == 7);
      got.store(0);
      CHECK(shutdown_waiting_for_a_late_value(workers, std::chrono::hours{24 * 365 * 1000}, &got) == 0);
      CHECK(got.load() == 7);
    }
  }
}
