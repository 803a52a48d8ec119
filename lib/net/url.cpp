#include "net/url.hpp"

#include <sandbox/error.hpp>

#include <boost/asio/ip/address.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace sandbox::net {
namespace {

[[noreturn]] void bad(std::string_view text, std::string_view why) {
  throw Error(errc::invalid_argument, fmt::format("bad URL '{}': {}", text, why));
}

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

}  // namespace

Url Url::parse(std::string_view text) {
  Url u;
  std::string_view rest;
  if (starts_with_nocase(text, "https://")) {
    u.tls = true;
    rest = text.substr(8);
  } else if (starts_with_nocase(text, "http://")) {
    rest = text.substr(7);
  } else {
    bad(text, "only http:// and https:// are supported");
  }
  if (rest.find_first_of("?#") != std::string_view::npos) bad(text, "a query or fragment has no place here");
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = rest.substr(authority.size());
  if (authority.find('@') != std::string_view::npos) bad(text, "user info is not supported");

  std::string_view port;
  bool has_port = false;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) bad(text, "unbalanced '[' in the host");
    u.host = std::string(authority.substr(1, close - 1));
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(u.host, ec);
    if (ec) bad(text, fmt::format("'{}' is not an IPv6 address", u.host));
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad(text, "junk after the IPv6 address");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    auto colon = authority.find(':');
    if (colon != std::string_view::npos) {
      if (authority.find(':', colon + 1) != std::string_view::npos)
        bad(text, "an IPv6 host must be in brackets");
      port = authority.substr(colon + 1);
      has_port = true;
    }
    auto host = authority.substr(0, colon);
    if (host.find(']') != std::string_view::npos) bad(text, "unbalanced ']' in the host");
    if (!std::all_of(host.begin(), host.end(), name_char)) bad(text, "the host has characters a name cannot have");
    u.host.resize(host.size());
    std::transform(host.begin(), host.end(), u.host.begin(),
                   [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
  }
  if (u.host.empty()) bad(text, "no host");
  if (has_port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value < 1 || value > 65535)
      bad(text, "the port must be a number in 1..65535");
    u.port = static_cast<std::uint16_t>(value);
  } else {
    u.port = u.tls ? 443 : 80;
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  u.path = std::string(path);
  return u;
}

bool Url::is_ip_literal() const {
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  return !ec;
}

bool Url::is_loopback() const {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(host, ec);
  return !ec && a.is_loopback();
}

std::string Url::authority() const {
  bool v6 = host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + host + "]" : host;
  if (port == (tls ? 443 : 80)) return h;
  return fmt::format("{}:{}", h, port);
}

std::string Url::origin() const { return fmt::format("{}://{}", tls ? "https" : "http", authority()); }

std::string Url::str() const { return origin() + path; }

}  // namespace sandbox::net
