// benchmarks/programs/file_read_bench.cpp - corio::fs::file reads against a plain blocking pread
// loop in the same process (issue 18).
//
//   file_read_bench [--dir DIR] [--size-mib N] [--reads N] [--workers N] [--direct-mib N]
//
// Writes a DIR/corio_file_bench file of --size-mib MiB (256), so that it sits in the page cache,
// then measures, each as the median of 5 runs
// interleaved with the blocking loop's 5 (both see the same machine load):
//   seq      reading it all with 128 KiB reads: one task awaiting fs::file::read_at in turn,
//            against pread(2) in a loop on the main thread;
//   rand1    --reads (50000) random 4 KiB reads at 4 KiB-aligned offsets, one at a time (queue
//            depth 1): fs::file::read_at in one task against pread;
//   rand32   the same reads from 32 tasks at once (queue depth 32) against the same pread loop.
// With --direct-mib N (0: skipped) it writes a second file of N MiB and reads it with O_DIRECT
// (the page cache bypassed, every read goes to the device): random 4 KiB reads at queue depth 1
// with pread against queue depth 32 with fs::file (32 tasks), which shows the device's
// parallelism. Both files are deleted at the end. Prints one line per measure:
//   <name> corio=<MB/s> blocking=<MB/s> ratio=<corio/blocking>
// The runtime has --workers workers (1: the same single thread the pread loop gets).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <corio/corio.hpp>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::string dir = "/tmp";
  std::size_t size_mib = 256;
  std::size_t reads = 50000;
  unsigned workers = 1;
  std::size_t direct_mib = 0;
};

constexpr std::size_t seq_block = 128 * 1024;
constexpr std::size_t page = 4096;
constexpr std::size_t depth = 32;

struct aligned_free {
  void operator()(std::byte* p) const noexcept { std::free(p); }
};
using aligned_buffer = std::unique_ptr<std::byte[], aligned_free>;

aligned_buffer make_buffer(std::size_t size) {
  return aligned_buffer{static_cast<std::byte*>(std::aligned_alloc(page, size))};
}

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

void write_file(const std::string& path, std::size_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::system_category(), "open " + path);
  std::vector<std::byte> chunk(1 << 20);
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<std::byte>(i * 31 + 7);
  for (std::size_t done = 0; done < bytes; done += chunk.size()) {
    const std::size_t n = std::min(chunk.size(), bytes - done);
    if (::write(fd, chunk.data(), n) != static_cast<ssize_t>(n)) {
      throw std::system_error(errno, std::system_category(), "write " + path);
    }
  }
  ::fsync(fd);
  ::close(fd);
}

std::vector<std::int64_t> random_offsets(std::size_t count, std::size_t file_size, std::uint64_t seed) {
  std::vector<std::int64_t> v(count);
  const std::size_t pages = file_size / page;
  for (auto& o : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    o = static_cast<std::int64_t>(((seed >> 17) % pages) * page);
  }
  return v;
}

// --- blocking ---------------------------------------------------------------------------------

double blocking_seq(int fd, std::size_t size) {
  auto buffer = make_buffer(seq_block);
  const auto start = clock_type::now();
  for (std::size_t off = 0; off < size;) {
    const ssize_t n = ::pread(fd, buffer.get(), seq_block, static_cast<off_t>(off));
    if (n <= 0) throw std::runtime_error("pread failed");
    off += static_cast<std::size_t>(n);
  }
  return seconds_since(start);
}

double blocking_random(int fd, const std::vector<std::int64_t>& offsets) {
  auto buffer = make_buffer(page);
  const auto start = clock_type::now();
  for (const std::int64_t off : offsets) {
    if (::pread(fd, buffer.get(), page, off) != static_cast<ssize_t>(page)) throw std::runtime_error("pread failed");
  }
  return seconds_since(start);
}

// --- corio -------------------------------------------------------------------------------------

corio::task<double> corio_seq(const corio::fs::file* f, std::size_t size) {
  auto buffer = make_buffer(seq_block);
  const auto start = clock_type::now();
  for (std::size_t off = 0; off < size;) {
    const std::size_t n =
        co_await f->read_at(std::span{buffer.get(), seq_block}, static_cast<std::int64_t>(off));
    if (n == 0) throw std::runtime_error("short file");
    off += n;
  }
  co_return seconds_since(start);
}

corio::task<std::size_t> corio_reader(const corio::fs::file* f, const std::int64_t* offsets, std::size_t count) {
  auto buffer = make_buffer(page);
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t n = co_await f->read_at(std::span{buffer.get(), page}, offsets[i]);
    bytes += n;
  }
  co_return bytes;
}

corio::task<double> corio_random(const corio::fs::file* f, const std::vector<std::int64_t>* offsets,
                                 std::size_t tasks) {
  const auto start = clock_type::now();
  const std::size_t per = offsets->size() / tasks;
  std::vector<corio::join_handle<std::size_t>> handles;
  for (std::size_t t = 0; t < tasks; ++t) handles.push_back(corio::spawn(corio_reader(f, offsets->data() + t * per, per)));
  std::size_t bytes = 0;
  for (auto& h : handles) bytes += co_await std::move(h);
  if (bytes != per * tasks * page) throw std::runtime_error("short read");
  co_return seconds_since(start);
}

corio::task<corio::fs::file> open_file(std::string path, int flags) {
  co_return co_await corio::fs::file::open(path, flags);
}

/// Runs `blocking` and `corio` in turn, 5 times each, interleaved (so that both see the same
/// machine load); returns the median seconds of each.
template <class B, class C>
std::pair<double, double> interleaved(B blocking, C corio_run) {
  std::vector<double> b, c;
  for (int i = 0; i < 5; ++i) {
    b.push_back(blocking());
    c.push_back(corio_run());
  }
  std::sort(b.begin(), b.end());
  std::sort(c.begin(), c.end());
  return {b[2], c[2]};
}

void print(std::string_view name, double bytes, double corio_s, double blocking_s) {
  const double corio_mb = bytes / corio_s / 1e6;
  const double blocking_mb = bytes / blocking_s / 1e6;
  fmt::print("{} corio={:.0f}MB/s blocking={:.0f}MB/s ratio={:.2f}\n", name, corio_mb, blocking_mb,
             blocking_s / corio_s);
}

bool parse(int argc, char** argv, options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view key = argv[i];
    const char* value = argv[i + 1];
    if (key == "--dir") o.dir = value;
    else if (key == "--size-mib") o.size_mib = std::strtoull(value, nullptr, 10);
    else if (key == "--reads") o.reads = std::strtoull(value, nullptr, 10);
    else if (key == "--workers") o.workers = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
    else if (key == "--direct-mib") o.direct_mib = std::strtoull(value, nullptr, 10);
    else return false;
  }
  return argc % 2 == 1 && o.size_mib > 0 && o.reads >= depth && o.workers > 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse(argc, argv, o)) {
    fmt::print(stderr, "usage: file_read_bench [--dir DIR] [--size-mib N] [--reads N] [--workers N] [--direct-mib N]\n");
    return 2;
  }
  const std::string path = o.dir + "/corio_file_bench";
  const std::size_t size = o.size_mib << 20;
  corio::runtime rt{{.workers = o.workers}};
  fmt::print("backend={} workers={} file={} MiB\n", rt.stats().backend, o.workers, o.size_mib);
  try {
    write_file(path, size);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    corio::fs::file f = rt.block_on(open_file(path, O_RDONLY));
    (void)blocking_seq(fd, size);  // warm: the whole file in the page cache
    const auto [seq_b, seq_c] =
        interleaved([&] { return blocking_seq(fd, size); }, [&] { return rt.block_on(corio_seq(&f, size)); });
    print("seq_128k", static_cast<double>(size), seq_c, seq_b);
    const auto offsets = random_offsets(o.reads, size, 42);
    const double bytes = static_cast<double>(o.reads / depth * depth * page);
    const auto [r_b, r1_c] = interleaved([&] { return blocking_random(fd, offsets); },
                                         [&] { return rt.block_on(corio_random(&f, &offsets, 1)); });
    print("rand_4k_qd1", bytes, r1_c, r_b);
    const auto [r_b2, r32_c] = interleaved([&] { return blocking_random(fd, offsets); },
                                           [&] { return rt.block_on(corio_random(&f, &offsets, depth)); });
    print("rand_4k_qd32", bytes, r32_c, r_b2);
    ::close(fd);
    ::unlink(path.c_str());
    if (o.direct_mib > 0) {
      const std::string direct_path = o.dir + "/corio_file_bench_direct";
      write_file(direct_path, o.direct_mib << 20);
      const int dfd = ::open(direct_path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
      if (dfd < 0) {
        fmt::print("direct: O_DIRECT not supported in {}: {}\n", o.dir, std::strerror(errno));
      } else {
        corio::fs::file df = rt.block_on(open_file(direct_path, O_RDONLY | O_DIRECT));
        const std::size_t direct_reads = std::min<std::size_t>(o.reads, 4000);
        const auto doffsets = random_offsets(direct_reads, o.direct_mib << 20, 7);
        const double dbytes = static_cast<double>(direct_reads / depth * depth * page);
        const auto [d_b, d1_c] = interleaved([&] { return blocking_random(dfd, doffsets); },
                                             [&] { return rt.block_on(corio_random(&df, &doffsets, 1)); });
        print("direct_rand_4k_qd1", dbytes, d1_c, d_b);
        const auto [d_b2, d32_c] = interleaved([&] { return blocking_random(dfd, doffsets); },
                                               [&] { return rt.block_on(corio_random(&df, &doffsets, depth)); });
        print("direct_rand_4k_qd32", dbytes, d32_c, d_b2);
        ::close(dfd);
      }
      ::unlink(direct_path.c_str());
    }
  } catch (const std::exception& e) {
    ::unlink(path.c_str());
    fmt::print(stderr, "file_read_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
