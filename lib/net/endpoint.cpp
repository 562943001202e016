// lib/net/endpoint.cpp - parsing and printing numeric socket addresses.
#include "corio/net/endpoint.hpp"

#include <fmt/format.h>

#include "socket_api.hpp"
#if defined(_WIN32)
#include <iphlpapi.h>  // if_nametoindex
#ifndef IF_NAMESIZE
#define IF_NAMESIZE 256
#endif
#endif

#include <charconv>
#include <cstring>
#include <system_error>

namespace corio::net {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::optional<endpoint> endpoint::try_parse(std::string_view text) noexcept {
  endpoint e;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    std::string_view host = text.substr(1, close - 1);
    const auto port = parse_port(text.substr(close + 2));
    if (!port) return std::nullopt;
    std::uint32_t scope = 0;
    if (const auto pct = host.find('%'); pct != std::string_view::npos) {
      char name[IF_NAMESIZE + 1] = {};
      const auto scope_text = host.substr(pct + 1);
      if (scope_text.empty() || scope_text.size() > IF_NAMESIZE) return std::nullopt;
      std::memcpy(name, scope_text.data(), scope_text.size());
      scope = ::if_nametoindex(name);
      if (scope == 0) {
        auto [end, ec] = std::from_chars(scope_text.data(), scope_text.data() + scope_text.size(), scope);
        if (ec != std::errc{} || end != scope_text.data() + scope_text.size()) return std::nullopt;
      }
      host = host.substr(0, pct);
    }
    char buf[INET6_ADDRSTRLEN + 1] = {};
    if (host.empty() || host.size() >= sizeof buf) return std::nullopt;
    std::memcpy(buf, host.data(), host.size());
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(*port);
    sa.sin6_scope_id = scope;
    if (::inet_pton(AF_INET6, buf, &sa.sin6_addr) != 1) return std::nullopt;
    std::memcpy(e.storage_.data(), &sa, sizeof sa);
    e.size_ = sizeof sa;
    return e;
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const std::string_view host = text.substr(0, colon);
  const auto port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  char buf[INET_ADDRSTRLEN + 1] = {};
  if (host.empty() || host.size() >= sizeof buf) return std::nullopt;
  std::memcpy(buf, host.data(), host.size());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(*port);
  if (::inet_pton(AF_INET, buf, &sa.sin_addr) != 1) return std::nullopt;
  std::memcpy(e.storage_.data(), &sa, sizeof sa);
  e.size_ = sizeof sa;
  return e;
}

endpoint endpoint::parse(std::string_view text) {
  if (auto e = try_parse(text)) return *e;
  throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                          fmt::format("corio::net::endpoint: '{}' is not a numeric \"address:port\" "
                                      "(\"1.2.3.4:80\", \"[::1]:80\")",
                                      text));
}

endpoint endpoint::from_native(const void* address, std::size_t size) {
  detail::socket_family_t family = AF_UNSPEC;
  if (size >= sizeof family) std::memcpy(&family, address, sizeof family);
  const bool ok = (family == AF_INET && size == sizeof(sockaddr_in)) ||
                  (family == AF_INET6 && size == sizeof(sockaddr_in6));
  if (!ok) {
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "corio::net::endpoint: not an IPv4 or IPv6 socket address");
  }
  endpoint e;
  std::memcpy(e.storage_.data(), address, size);
  e.size_ = static_cast<std::uint32_t>(size);
  return e;
}

bool endpoint::is_v4() const noexcept {
  detail::socket_family_t family = AF_UNSPEC;
  std::memcpy(&family, storage_.data(), sizeof family);
  return size_ != 0 && family == AF_INET;
}

bool endpoint::is_v6() const noexcept {
  detail::socket_family_t family = AF_UNSPEC;
  std::memcpy(&family, storage_.data(), sizeof family);
  return size_ != 0 && family == AF_INET6;
}

std::uint16_t endpoint::port() const noexcept {
  if (is_v4()) {
    sockaddr_in sa{};
    std::memcpy(&sa, storage_.data(), sizeof sa);
    return ntohs(sa.sin_port);
  }
  if (is_v6()) {
    sockaddr_in6 sa{};
    std::memcpy(&sa, storage_.data(), sizeof sa);
    return ntohs(sa.sin6_port);
  }
  return 0;
}

std::string endpoint::address_string() const {
  char buf[INET6_ADDRSTRLEN + 1] = {};
  if (is_v4()) {
    sockaddr_in sa{};
    std::memcpy(&sa, storage_.data(), sizeof sa);
    ::inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
    return buf;
  }
  if (is_v6()) {
    sockaddr_in6 sa{};
    std::memcpy(&sa, storage_.data(), sizeof sa);
    ::inet_ntop(AF_INET6, &sa.sin6_addr, buf, sizeof buf);
    if (sa.sin6_scope_id != 0) return fmt::format("{}%{}", buf, sa.sin6_scope_id);
    return buf;
  }
  return {};
}

std::string endpoint::to_string() const {
  if (is_v4()) return fmt::format("{}:{}", address_string(), port());
  if (is_v6()) return fmt::format("[{}]:{}", address_string(), port());
  return "unspecified";
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
  return a.size_ == b.size_ && std::memcmp(a.storage_.data(), b.storage_.data(), a.size_) == 0;
}

}  // namespace corio::net
