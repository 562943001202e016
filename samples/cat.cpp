// samples/cat.cpp - concatenates files to standard output with corio::fs::file.
//
//   cat FILE...
//
// Writes each FILE in turn to standard output ("-" reads standard input). A file that cannot be
// opened or read is reported on standard error as "cat: PATH: REASON" and skipped; the others are
// still written, and the exit status is then 1 (as GNU cat does). On io_uring the bytes go from
// the file to standard output with splice(2) (corio::detail::splice_copy: directly when standard
// output is a pipe, through a pipe of its own otherwise, with reads and writes where the kernel
// refuses to splice, a terminal say); on the Asio reactor they go through a 128 KiB buffer:
// fs::file::read, then write_all on standard output borrowed as an fs::file (never closed).
#include <corio/corio.hpp>
#include <fmt/format.h>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

/// Copies `from` to `to` through `buffer`; an error is reported in `ec` naming the side.
corio::task<void> copy_through_buffer(const corio::fs::file* from, const corio::fs::file* to,
                                      std::vector<std::byte>* buffer, std::error_code* ec, bool* write_failed) {
  for (;;) {
    const std::size_t n = co_await from->read(*buffer, *ec);
    if (*ec || n == 0) co_return;
    co_await to->write_all(std::span<const std::byte>{buffer->data(), n}, *ec);
    if (*ec) {
      *write_failed = true;
      co_return;
    }
  }
}

corio::task<int> cat(std::vector<std::string> paths) {
  const corio::fs::file out = corio::fs::file::borrow(1, "standard output");
  std::vector<std::byte> buffer(128 * 1024);
  int status = 0;
  for (const std::string& path : paths) {
    std::error_code ec;
    corio::fs::file in;
    if (path == "-") {
      in = corio::fs::file::borrow(0, "standard input");
    } else {
      in = co_await corio::fs::file::open(path, corio::fs::open_flags::read, ec);
      if (ec) {
        fmt::print(stderr, "cat: {}: {}\n", path, ec.message());
        status = 1;
        continue;
      }
    }
    bool write_failed = false;
    (void)co_await corio::detail::splice_copy(in.native_handle(), out.native_handle(),
                                              std::numeric_limits<std::uint64_t>::max(), &ec);
    if (ec == std::errc::not_supported) {  // the Asio reactor: read and write
      ec.clear();
      co_await copy_through_buffer(&in, &out, &buffer, &ec, &write_failed);
    }
    if (ec) {
      fmt::print(stderr, "cat: {}: {}\n", write_failed ? std::string_view{"write error"} : std::string_view{path},
                 ec.message());
      status = 1;
      // Standard output is gone: nothing more can be written.
      if (write_failed || ec == std::errc::broken_pipe) break;
    }
  }
  co_return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: cat FILE...   (\"-\" is standard input)\n");
    return 2;
  }
  std::vector<std::string> paths(argv + 1, argv + argc);
  try {
    corio::runtime rt{{.workers = 1}};
    return rt.block_on(cat(std::move(paths)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "cat: {}\n", e.what());
    return 1;
  }
}
