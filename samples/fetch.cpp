// samples/fetch.cpp - `fetch URL`: an HTTP/1.1 GET on corio, the name resolved by corio::net.
//
// Usage: fetch http://host[:port]/path
// Resolves the host (net::resolve: c-ares on the reactor, or getaddrinfo), connects with Happy
// Eyeballs (tcp_stream::connect(host, port)), sends a GET with Host and Connection: close, reads
// the response (Content-Length, chunked transfer coding, or until the server closes) and writes
// the body to stdout. Exit status: 0 for a 200, 1 for another status or a network error (a
// message on stderr names the host or the addresses tried), 2 for a bad URL or usage.
#include <fmt/format.h>

#include <array>
#include <charconv>
#include <corio/corio.hpp>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace {

struct url {
  std::string host;
  std::uint16_t port = 80;
  std::string path;
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

/// Parses http://host[:port][/path]; host may be "[v6]". std::nullopt for anything else.
std::optional<url> parse_url(std::string_view text) {
  constexpr std::string_view scheme = "http://";
  if (text.size() <= scheme.size() || !iequals(text.substr(0, scheme.size()), scheme)) return std::nullopt;
  text.remove_prefix(scheme.size());
  const auto slash = text.find('/');
  std::string_view authority = text.substr(0, slash);
  url u;
  u.path = slash == std::string_view::npos ? "/" : std::string{text.substr(slash)};
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = std::string{authority.substr(1, close - 1)};
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
    }
  } else {
    const auto colon = authority.find(':');
    u.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty() || u.host.find('@') != std::string::npos) return std::nullopt;
  if (!port_text.empty()) {
    unsigned p = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || p == 0 || p > 65535)
      return std::nullopt;
    u.port = static_cast<std::uint16_t>(p);
  }
  return u;
}

/// The bytes received so far and the connection they come from.
struct reader {
  corio::net::tcp_stream* stream;
  std::string buf;
  bool eof = false;
};

/// Reads more into r->buf; false at end of stream.
corio::task<bool> fill(reader* r) {
  std::array<char, 16384> chunk;
  const std::size_t n = co_await r->stream->read_some(std::span<char>{chunk});
  if (n == 0) {
    r->eof = true;
    co_return false;
  }
  r->buf.append(chunk.data(), n);
  co_return true;
}

/// Reads one CRLF-terminated line (without the CRLF) from the front of r->buf.
corio::task<std::optional<std::string>> read_line(reader* r) {
  for (int rounds = 0; rounds < 1 << 20; ++rounds) {
    const auto end = r->buf.find("\r\n");
    if (end != std::string::npos) {
      std::string line = r->buf.substr(0, end);
      r->buf.erase(0, end + 2);
      co_return line;
    }
    if (r->buf.size() > 65536) co_return std::nullopt;
    const bool more = co_await fill(r);
    if (!more) co_return std::nullopt;
  }
  co_return std::nullopt;
}

/// Writes exactly `n` body bytes to stdout; false when the stream ends first.
corio::task<bool> copy_exact(reader* r, std::size_t n) {
  while (n > 0) {
    if (r->buf.empty()) {
      const bool more = co_await fill(r);
      if (!more) co_return false;
    }
    const std::size_t take = std::min(n, r->buf.size());
    std::fwrite(r->buf.data(), 1, take, stdout);
    r->buf.erase(0, take);
    n -= take;
  }
  co_return true;
}

bool parse_hex(std::string_view text, std::size_t& out) {
  const auto semi = text.find(';');  // chunk extensions are ignored
  text = text.substr(0, semi);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return !text.empty() && ec == std::errc{} && end == text.data() + text.size();
}

corio::task<int> fetch(url u) {
  corio::net::tcp_stream s;
  try {
    s = co_await corio::net::tcp_stream::connect(u.host, u.port);
  } catch (const std::system_error& e) {
    fmt::print(stderr, "fetch: {}\n", e.what());
    co_return 1;
  }
  const bool v6_literal = u.host.find(':') != std::string::npos;
  const std::string host_field = v6_literal ? fmt::format("[{}]", u.host) : u.host;
  const std::string host_header = u.port == 80 ? host_field : fmt::format("{}:{}", host_field, u.port);
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: corio-fetch\r\nAccept: */*\r\nConnection: close\r\n\r\n",
      u.path, host_header);
  co_await s.write_all(request);

  reader r{&s, {}, false};
  auto status_line = co_await read_line(&r);
  if (!status_line || status_line->size() < 12 || status_line->compare(0, 7, "HTTP/1.") != 0) {
    fmt::print(stderr, "fetch: {}: not an HTTP/1.x response\n", host_header);
    co_return 1;
  }
  int status = 0;
  std::from_chars(status_line->data() + 9, status_line->data() + 12, status);
  std::optional<std::size_t> content_length;
  bool chunked = false;
  for (int fields = 0;; ++fields) {
    auto line = co_await read_line(&r);
    if (!line || fields > 1000) {
      fmt::print(stderr, "fetch: {}: truncated or oversized response head\n", host_header);
      co_return 1;
    }
    if (line->empty()) break;
    const auto colon = line->find(':');
    if (colon == std::string::npos) continue;
    const std::string_view name = std::string_view{*line}.substr(0, colon);
    std::string_view value = std::string_view{*line}.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (iequals(name, "content-length")) {
      std::size_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size()) {
        fmt::print(stderr, "fetch: {}: bad Content-Length\n", host_header);
        co_return 1;
      }
      content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      chunked = value.size() >= 7 && iequals(value.substr(value.size() - 7), "chunked");
    }
  }
  bool complete = true;
  if (chunked) {
    for (int chunks = 0; chunks < (1 << 30); ++chunks) {
      auto size_line = co_await read_line(&r);
      std::size_t size = 0;
      if (!size_line || !parse_hex(*size_line, size)) {
        complete = false;
        break;
      }
      if (size == 0) break;  // trailers, if any, are not needed
      const bool ok = co_await copy_exact(&r, size);
      if (!ok) {
        complete = false;
        break;
      }
      auto crlf = co_await read_line(&r);
      if (!crlf || !crlf->empty()) {
        complete = false;
        break;
      }
    }
  } else if (content_length) {
    complete = co_await copy_exact(&r, *content_length);
  } else {
    for (int rounds = 0; rounds < 1 << 30; ++rounds) {  // until the server closes
      std::fwrite(r.buf.data(), 1, r.buf.size(), stdout);
      r.buf.clear();
      const bool more = co_await fill(&r);
      if (!more) break;
    }
  }
  std::fflush(stdout);
  if (!complete) {
    fmt::print(stderr, "fetch: {}: the connection ended before the body did\n", host_header);
    co_return 1;
  }
  if (status != 200) {
    fmt::print(stderr, "fetch: {}: HTTP {}\n", host_header, std::string_view{*status_line}.substr(9));
    co_return 1;
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fmt::print(stderr, "usage: fetch http://host[:port]/path\n");
    return 2;
  }
  auto u = parse_url(argv[1]);
  if (!u) {
    fmt::print(stderr, "fetch: not an http:// URL: {}\n", argv[1]);
    return 2;
  }
  corio::runtime rt{{.workers = 1}};
  try {
    return rt.block_on(fetch(std::move(*u)));
  } catch (const std::exception& e) {
    fmt::print(stderr, "fetch: {}: {}\n", argv[1], e.what());
    return 1;
  }
}
