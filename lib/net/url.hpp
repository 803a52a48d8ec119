// net/url.hpp: the one parser of the URLs the library dials (a server, a pod, the cloud
// gateway, the Kubernetes API): http:// and https://, IPv4, [IPv6] and names.
//
//   auto u = net::Url::parse("https://[::1]:8443/base");
//   // u.tls, u.host == "::1" (no brackets: what the resolver wants), u.port == 8443,
//   // u.path == "/base", u.authority() == "[::1]:8443" (what a Host header wants)
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sandbox::net {

struct Url {
  bool tls = false;            // https
  std::string host;            // a name or an address, IPv6 without brackets
  std::uint16_t port = 0;      // the scheme's default when the URL has none
  std::string path;            // "" or "/..." without a trailing '/'; no query or fragment

  // Throws Error(invalid_argument) naming what is wrong: another scheme, user info, an
  // empty or unbalanced host, a port outside 1..65535, a query or fragment.
  static Url parse(std::string_view text);

  std::string authority() const;   // host[:port] as a Host header spells it, [v6] bracketed
  std::string origin() const;      // "https://[::1]:8443"
  std::string str() const;         // origin() + path
  bool is_ip_literal() const;      // v4 or v6 address (no SNI, verify by IP)
  // 127.0.0.0/8, ::1, "localhost": where a bearer token may go over plain HTTP.
  bool is_loopback() const;
};

}  // namespace sandbox::net
