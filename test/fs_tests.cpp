// Suite "fs": corio::fs::file, read_file/write_file and detail::splice_copy, on either reactor
// (the suite also runs with CORIO_BACKEND=asio). Files live in a fresh directory under /tmp.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <corio/corio.hpp>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <string>
#include <system_error>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using corio::fs::file;
using corio::fs::open_flags;
using corio_test::hang_guard;
using corio_test::open_descriptors;

namespace {

using corio_test::temp_dir;

/// Bytes that differ at every offset (so a read at the wrong place is seen).
std::vector<std::byte> pattern_bytes(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

bool uring(const corio::runtime& rt) { return rt.stats().backend == "io_uring"; }

// --- write, read, size ----------------------------------------------------------------------

corio::task<int> write_then_read_back(std::string path) {
  int checked = 0;
  file f = co_await file::open(path, open_flags::read | open_flags::write | open_flags::create | open_flags::truncate);
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{4096},
                           std::size_t{65537}, std::size_t{1} << 20}) {
    for (std::int64_t offset : {std::int64_t{0}, std::int64_t{7}, std::int64_t{1} << 20}) {
      const auto data = pattern_bytes(size, static_cast<unsigned>(size + offset));
      const std::size_t written = co_await f.write_all_at(data, offset);
      CHECK(written == size);
      std::vector<std::byte> back(size);
      std::size_t got = 0;
      while (got < size) {
        const std::size_t n = co_await f.read_at(std::span{back}.subspan(got), offset + static_cast<std::int64_t>(got));
        REQUIRE(n > 0);
        got += n;
      }
      CHECK(back == data);
      ++checked;
    }
  }
  // The file position: write() and read() move it, read_at/write_at do not.
  file g = co_await file::open(path, open_flags::write | open_flags::truncate);
  const std::size_t w1 = co_await g.write_all("hello, ");
  const std::size_t w2 = co_await g.write_all("world");
  CHECK(w1 + w2 == 12);
  const std::uint64_t size = co_await g.size();
  CHECK(size == 12);
  co_await g.close();
  file r = co_await file::open(path);
  std::string text(5, '\0');
  std::size_t n = co_await r.read(std::as_writable_bytes(std::span{text}));
  CHECK(n == 5);
  CHECK(text == "hello");
  std::string at(5, '\0');
  n = co_await r.read_at(std::as_writable_bytes(std::span{at}), 7);
  CHECK(at == "world");
  n = co_await r.read_some(std::as_writable_bytes(std::span{text}));  // still at 5
  CHECK(n == 5);
  CHECK(text == ", wor");
  co_await f.close();
  co_return checked;
}

corio::task<std::size_t> read_past_end(std::string path) {
  co_await corio::fs::write_file(path, "abc");
  file f = co_await file::open(path);
  std::array<std::byte, 16> buffer{};
  const std::size_t at_end = co_await f.read_at(buffer, 3);
  const std::size_t past = co_await f.read_at(buffer, 1000);
  const std::size_t first = co_await f.read(buffer);
  const std::size_t second = co_await f.read(buffer);
  CHECK(first == 3);
  co_return at_end + past + second;
}

corio::task<std::string> append_twice(std::string path) {
  co_await corio::fs::write_file(path, "start;");
  for (int i = 0; i < 2; ++i) {
    file f = co_await file::open(path, open_flags::append);
    // With append every write goes to the end, whatever offset is asked for (O_APPEND).
    const std::size_t n = co_await f.write_all_at(std::as_bytes(std::span{"more;", 5}), 0);
    CHECK(n == 5);
  }
  co_return co_await corio::fs::read_file(path);
}

corio::task<std::uint64_t> sizes_and_syncs(std::string path) {
  file f = co_await file::open(path, open_flags::write | open_flags::create | open_flags::truncate);
  const std::uint64_t empty = co_await f.size();
  CHECK(empty == 0);
  const auto data = pattern_bytes(10000, 3);
  co_await f.write_all(data);
  co_await f.sync();
  const std::uint64_t after = co_await f.size();
  CHECK(after == 10000);
  co_await f.write_all_at(data, 50000);
  co_await f.datasync();
  std::error_code ec;
  co_await f.sync(ec);
  CHECK(!ec);
  const std::uint64_t size = co_await f.size();
  co_return size;
}

// --- errors ---------------------------------------------------------------------------------

struct caught {
  int code = 0;
  std::string what;
};

corio::task<caught> open_caught(std::string path, open_flags flags) {
  caught c;
  try {
    file f = co_await file::open(path, flags);
  } catch (const std::system_error& e) {
    c.code = e.code().value();
    c.what = e.what();
  }
  co_return c;
}

corio::task<int> open_missing_ec(std::string path) {
  std::error_code ec;
  file f = co_await file::open(path, open_flags::read, ec);
  CHECK(!f.is_open());
  co_return ec.value();
}

corio::task<int> moved_from_operations() {
  temp_dir dir;
  file f = co_await file::open(dir / "x", open_flags::write | open_flags::create);
  file g = std::move(f);
  int thrown = 0;
  std::string what;
  std::array<std::byte, 4> buffer{};
  try {
    (void)co_await f.read(buffer);
  } catch (const std::system_error& e) {
    thrown = e.code().value();
    what = e.what();
  }
  CHECK(thrown == EBADF);
  CHECK(what.find("corio: read") != std::string::npos);
  std::error_code ec;
  const std::size_t n = co_await f.write_at(buffer, 0, ec);
  CHECK(n == 0);
  CHECK(ec == std::errc::bad_file_descriptor);
  ec.clear();
  (void)co_await f.size(ec);
  CHECK(ec == std::errc::bad_file_descriptor);
  ec.clear();
  co_await f.datasync(ec);
  CHECK(ec == std::errc::bad_file_descriptor);
  // A bad offset is EINVAL.
  ec.clear();
  (void)co_await g.write_at(buffer, -5, ec);
  CHECK(ec == std::errc::invalid_argument);
  // Close twice, close of the moved-from: nothing happens.
  co_await g.close();
  co_await g.close();
  co_await f.close();
  CHECK(!g.is_open());
  try {
    (void)co_await g.write(buffer);
  } catch (const std::system_error& e) {
    thrown += e.code().value();
  }
  co_return thrown;
}

// --- concurrency ----------------------------------------------------------------------------

corio::task<std::uint64_t> sum_range(const file* f, std::int64_t offset, std::size_t length) {
  std::vector<std::byte> buffer(length);
  std::size_t got = 0;
  while (got < length) {
    const std::size_t n =
        co_await f->read_at(std::span{buffer}.subspan(got), offset + static_cast<std::int64_t>(got));
    if (n == 0) break;
    got += n;
  }
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < got; ++i) sum += static_cast<std::uint64_t>(buffer[i]) * (offset + i + 1);
  co_return sum;
}

corio::task<std::uint64_t> concurrent_reads(std::string path, std::size_t tasks, std::size_t piece) {
  file f = co_await file::open(path);
  std::vector<corio::join_handle<std::uint64_t>> handles;
  for (std::size_t i = 0; i < tasks; ++i) {
    handles.push_back(corio::spawn(sum_range(&f, static_cast<std::int64_t>(i * piece), piece)));
  }
  std::uint64_t total = 0;
  for (auto& h : handles) total += co_await std::move(h);
  co_return total;
}

// --- cancellation ---------------------------------------------------------------------------

corio::task<int> open_after_stop(std::string path) {
  corio::this_task::request_stop();
  try {
    file f = co_await file::open(path, open_flags::write | open_flags::create);
    co_return f.is_open() ? 2 : 3;
  } catch (const corio::operation_cancelled&) {
    co_return 1;
  }
}

corio::task<int> read_after_stop(const file* f) {
  corio::this_task::request_stop();
  std::array<std::byte, 8> buffer{};
  try {
    (void)co_await f->read_at(buffer, 0);
    co_return 2;
  } catch (const corio::operation_cancelled&) {
    co_return 1;
  }
}

corio::task<int> stop_before_start(std::string path) {
  auto h = corio::spawn(open_after_stop(path));
  const int opened = co_await std::move(h);
  CHECK(opened == 1);
  co_await corio::fs::write_file(path + ".data", "data");
  file f = co_await file::open(path + ".data");
  auto r = corio::spawn(read_after_stop(&f));
  const int read = co_await std::move(r);
  co_return opened + read;
}

// --- splice ---------------------------------------------------------------------------------

corio::task<std::uint64_t> drain_socket(corio::net::tcp_stream s, std::vector<std::byte>* into) {
  std::array<std::byte, 8192> buffer{};
  std::uint64_t total = 0;
  for (;;) {
    const std::size_t n = co_await s.read_some(buffer);
    if (n == 0) break;
    into->insert(into->end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(n));
    total += n;
  }
  co_return total;
}

struct splice_outcome {
  bool supported = true;
  bool to_socket_ok = false;
  bool to_file_ok = false;
  bool append_ok = false;
};

corio::task<splice_outcome> splice_both_ways(std::string dir, std::size_t size) {
  using corio::net::tcp_listener;
  using corio::net::tcp_stream;
  splice_outcome out;
  const auto data = pattern_bytes(size, 11);
  const std::string source = dir + "/source";
  co_await corio::fs::write_file(source, std::string_view{reinterpret_cast<const char*>(data.data()), data.size()});
  auto listener = tcp_listener::bind("127.0.0.1:0");
  // file -> socket
  {
    tcp_stream client = co_await tcp_stream::connect(listener.local_endpoint());
    tcp_stream server = co_await listener.accept();
    std::vector<std::byte> received;
    auto reader = corio::spawn(drain_socket(std::move(server), &received));
    file f = co_await file::open(source);
    std::error_code ec;
    const std::uint64_t moved = co_await corio::detail::splice_copy(f.native_handle(), client.native_handle(),
                                                                    std::numeric_limits<std::uint64_t>::max(), &ec);
    if (ec == std::errc::not_supported) {
      CHECK(moved == 0);
      CHECK_FALSE(corio::detail::splice_available());
      out.supported = false;
      client.close();
      (void)co_await std::move(reader);
      co_return out;
    }
    CHECK(corio::detail::splice_available());
    CHECK(!ec);
    CHECK(moved == size);
    client.close();
    const std::uint64_t got = co_await std::move(reader);
    out.to_socket_ok = got == size && received == data;
  }
  // socket -> file
  {
    tcp_stream client = co_await tcp_stream::connect(listener.local_endpoint());
    tcp_stream server = co_await listener.accept();
    file target = co_await file::open(dir + "/from_socket", open_flags::write | open_flags::create);
    auto writer = corio::spawn(corio::fs::write_file(dir + "/unused", "x"));  // another task meanwhile
    co_await std::move(writer);
    const std::size_t sent = co_await client.write_all(data);
    CHECK(sent == size);
    client.close();
    const std::uint64_t moved = co_await corio::detail::splice_copy(server.native_handle(), target.native_handle());
    CHECK(moved == size);
    co_await target.close();
    const std::string back = co_await corio::fs::read_file(dir + "/from_socket");
    out.to_file_ok = back.size() == size && std::memcmp(back.data(), data.data(), size) == 0;
  }
  // file -> file opened with O_APPEND (splice refuses it: the copy goes on with reads and writes)
  {
    co_await corio::fs::write_file(dir + "/appended", "head");
    file from = co_await file::open(source);
    file to = co_await file::open(dir + "/appended", open_flags::append);
    const std::uint64_t moved = co_await corio::detail::splice_copy(from.native_handle(), to.native_handle(), size / 2);
    CHECK(moved == size / 2);
    const std::string back = co_await corio::fs::read_file(dir + "/appended");
    out.append_ok = back.size() == 4 + size / 2 && back.compare(0, 4, "head") == 0 &&
                    std::memcmp(back.data() + 4, data.data(), size / 2) == 0;
  }
  co_return out;
}

/// Reads through the reactor every time: O_DIRECT takes no page-cache attempt. Yields the bytes
/// of the block at 4096 that match, or -1 when the file system refuses O_DIRECT (tmpfs).
corio::task<int> direct_read(std::string path) {
  const auto data = pattern_bytes(3 * 4096, 9);
  co_await corio::fs::write_file(path, std::string_view{reinterpret_cast<const char*>(data.data()), data.size()});
  std::error_code ec;
  file f = co_await file::open(path, O_RDONLY | O_DIRECT, ec);
  if (ec) co_return -1;
  auto* block = static_cast<std::byte*>(std::aligned_alloc(4096, 4096));
  const std::size_t n = co_await f.read_at(std::span{block, 4096}, 4096);
  int same = 0;
  for (std::size_t i = 0; i < n; ++i) same += block[i] == data[4096 + i] ? 1 : 0;
  std::free(block);
  co_return same;
}

/// Reads `reads` cached 4 KiB pages of `f` in turn; records how often `other` ran meanwhile.
corio::task<std::size_t> read_cached_pages(const file* f, int reads, const std::atomic<int>* other_turns,
                                           int* turns_seen) {
  std::vector<std::byte> buffer(4096);
  std::size_t bytes = 0;
  for (int i = 0; i < reads; ++i) bytes += co_await f->read_at(buffer, (i % 16) * 4096);
  *turns_seen = other_turns->load();
  co_return bytes;
}

/// Counts its turns until `stop` is set (each turn a yield).
corio::task<void> take_turns(std::atomic<int>* turns, const std::atomic<bool>* stop) {
  while (!stop->load()) {
    turns->fetch_add(1);
    co_await corio::yield();
  }
}

corio::task<std::size_t> reader_beside_another(std::string path, int reads, int* turns_seen) {
  file f = co_await file::open(path, open_flags::read);
  std::atomic<int> turns{0};
  std::atomic<bool> stop{false};
  auto other = corio::spawn(take_turns(&turns, &stop));
  const std::size_t bytes = co_await read_cached_pages(&f, reads, &turns, turns_seen);
  stop.store(true);
  co_await std::move(other);
  co_return bytes;
}

}  // namespace

TEST_SUITE("fs") {

TEST_CASE("a read with O_DIRECT goes through the reactor and returns the block asked for") {
  hang_guard guard{"fs O_DIRECT", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  const int same = rt.block_on(direct_read(dir / "direct"));
  if (same == -1) MESSAGE("O_DIRECT is not supported in " << dir.path);
  else CHECK(same == 4096);
}

TEST_CASE("bytes written at several offsets and sizes read back the same, and the file position moves") {
  hang_guard guard{"fs write then read", 120s};
  temp_dir dir;
  corio::runtime rt{{.workers = 2}};
  CHECK(rt.block_on(write_then_read_back(dir / "data")) == 18);
}

TEST_CASE("a task reading cached pages in a loop lets the other tasks of its worker run") {
  // The reads complete without suspending (preadv2 RWF_NOWAIT) until the task's cooperation
  // budget is spent; then the read is done and the task is requeued behind the others.
  hang_guard guard{"fs budget", 60s};
  temp_dir dir;
  const auto path = dir / "cached";
  const std::string content(16 * 4096, 'c');
  corio::runtime rt{{.workers = 1}};
  rt.block_on(corio::fs::write_file(path, content));
  int turns_seen = 0;
  const int reads = 5000;
  CHECK(rt.block_on(reader_beside_another(path, reads, &turns_seen)) == std::size_t{4096} * reads);
  CHECK(turns_seen > 0);
}

TEST_CASE("a read at or past the end of the file returns 0") {
  hang_guard guard{"fs read past end", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(read_past_end(dir / "short")) == 0);
}

TEST_CASE("a file opened for append gets every write at its end") {
  hang_guard guard{"fs append", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(append_twice(dir / "log")) == "start;more;more;");
}

TEST_CASE("size() follows the writes and sync and datasync succeed") {
  hang_guard guard{"fs size", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(sizes_and_syncs(dir / "sized")) == 60000);
}

TEST_CASE("opening a missing file fails with ENOENT naming the path, thrown or as an error_code") {
  hang_guard guard{"fs missing", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  const std::string missing = (dir.path / "no" / "such").string();
  const caught c = rt.block_on(open_caught(missing, open_flags::read));
  CHECK(c.code == ENOENT);
  CHECK(c.what.find("corio: open " + missing) != std::string::npos);
  CHECK(rt.block_on(open_missing_ec(missing)) == ENOENT);
  const std::size_t before = open_descriptors();
  const caught c2 = rt.block_on(open_caught(dir / "missing", open_flags::read));
  CHECK(c2.code == ENOENT);
  CHECK(open_descriptors() == before);
}

TEST_CASE("create | exclusive on an existing file fails with EEXIST naming the path") {
  hang_guard guard{"fs exclusive", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  const std::string path = dir / "exists";
  const caught first = rt.block_on(open_caught(path, open_flags::write | open_flags::create | open_flags::exclusive));
  CHECK(first.code == 0);
  const caught second = rt.block_on(open_caught(path, open_flags::write | open_flags::create | open_flags::exclusive));
  CHECK(second.code == EEXIST);
  CHECK(second.what.find(path) != std::string::npos);
  CHECK_THROWS_AS((void)file::open(path, open_flags::create), std::invalid_argument);
  CHECK_THROWS_AS((void)file::open(path, open_flags::read | open_flags::truncate), std::invalid_argument);
}

TEST_CASE("a moved-from or closed file reports EBADF instead of crashing, and closing twice is safe") {
  hang_guard guard{"fs moved-from", 60s};
  corio::runtime rt{{.workers = 1}};
  CHECK(rt.block_on(moved_from_operations()) == 2 * EBADF);
}

TEST_CASE("many tasks reading one file at once on several workers see every byte once") {
  hang_guard guard{"fs concurrent reads", 300s};
  temp_dir dir;
  const std::size_t tasks = 64;
  const std::size_t piece = 3 * 4096 + 17;
  const auto data = pattern_bytes(tasks * piece, 5);
  {
    std::FILE* out = std::fopen((dir / "shared").c_str(), "wb");
    REQUIRE(out != nullptr);
    REQUIRE(std::fwrite(data.data(), 1, data.size(), out) == data.size());
    std::fclose(out);
  }
  std::uint64_t expected = 0;
  for (std::size_t i = 0; i < data.size(); ++i) expected += static_cast<std::uint64_t>(data[i]) * (i + 1);
  for (unsigned workers : {1u, 2u, 4u}) {
    corio::runtime rt{{.workers = workers}};
    for (std::size_t round = 0; round < corio_test::scaled(10); ++round) {
      CHECK(rt.block_on(concurrent_reads(dir / "shared", tasks, piece)) == expected);
    }
  }
}

TEST_CASE("a stop requested before an open or a read starts cancels it and leaves no descriptor open") {
  // io_uring runs a file operation to its end once the kernel took it (regular files are not
  // interruptible), so only a stop that comes first is certain to cancel: that is this case.
  hang_guard guard{"fs stop before start", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 2, .clock = corio::manual_clock}};
  const std::size_t before = open_descriptors();
  CHECK(rt.block_on(stop_before_start(dir / "never")) == 2);
  CHECK_FALSE(std::filesystem::exists(dir / "never"));
  CHECK(open_descriptors() == before);
}

TEST_CASE("read_file returns what write_file wrote, empty and large files included") {
  hang_guard guard{"fs read_file", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 2}};
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{3} << 20}) {
    const auto data = pattern_bytes(size, static_cast<unsigned>(size));
    const std::string text{reinterpret_cast<const char*>(data.data()), data.size()};
    rt.block_on(corio::fs::write_file(dir / "whole", text));
    CHECK(rt.block_on(corio::fs::read_file(dir / "whole")) == text);
  }
  // A file whose size is 0 but which has content (procfs) is read to its end.
  CHECK(rt.block_on(corio::fs::read_file("/proc/self/status")).find("Name:") != std::string::npos);
  try {
    (void)rt.block_on(corio::fs::read_file(dir / "absent"));
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(e.code().value() == ENOENT);
    CHECK(std::string{e.what()}.find(dir / "absent") != std::string::npos);
  }
}

corio::task<bool> close_not_awaited(std::string path) {
  file f = co_await file::open(path, open_flags::write | open_flags::create);
  const int fd = f.native_handle();
  { (void)f.close(); }  // the awaiter is dropped: it closes the descriptor itself
  co_return !f.is_open() && ::fcntl(fd, F_GETFD) == -1;
}

TEST_CASE("a close() that is never awaited still closes the descriptor") {
  hang_guard guard{"fs close not awaited", 60s};
  temp_dir dir;
  corio::runtime rt{{.workers = 1}};
  const std::size_t before = open_descriptors();
  CHECK(rt.block_on(close_not_awaited(dir / "dropped")));
  CHECK(open_descriptors() == before);
}

TEST_CASE("a borrowed descriptor stays open after the file is gone; an adopted one is closed") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
  {
    file borrowed = file::borrow(fds[0]);
    CHECK(borrowed.native_handle() == fds[0]);
    CHECK(borrowed.path() == "descriptor " + std::to_string(fds[0]));
  }
  CHECK(::fcntl(fds[0], F_GETFD) >= 0);
  { file adopted = file::adopt(fds[0], "pipe"); }
  CHECK(::fcntl(fds[0], F_GETFD) == -1);
  ::close(fds[1]);
}

TEST_CASE("splice_copy moves a file into a socket and a socket into a file, byte for byte") {
  hang_guard guard{"fs splice", 120s};
  temp_dir dir;
  for (unsigned workers : {1u, 2u}) {
    corio::runtime rt{{.workers = workers}};
    const splice_outcome out = rt.block_on(splice_both_ways(dir.path.string(), (1u << 20) + 12345));
    if (uring(rt)) {
      CHECK(out.supported);
      CHECK(out.to_socket_ok);
      CHECK(out.to_file_ok);
      CHECK(out.append_ok);
    } else {
      CHECK_FALSE(out.supported);  // Asio: the caller takes its read/write loop
    }
  }
}

}  // TEST_SUITE
