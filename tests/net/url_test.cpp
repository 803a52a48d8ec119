// net::Url: the one parser of the URLs the library dials.
#include "net/url.hpp"

#include <sandbox/error.hpp>

#include <gtest/gtest.h>

using sandbox::errc;
using sandbox::net::Url;

TEST(Url, SchemesAndDefaultPorts) {
  auto a = Url::parse("http://example.com");
  EXPECT_FALSE(a.tls);
  EXPECT_EQ(a.host, "example.com");
  EXPECT_EQ(a.port, 80);
  EXPECT_EQ(a.path, "");
  EXPECT_EQ(a.authority(), "example.com");
  auto b = Url::parse("HTTPS://Sb.Example/");
  EXPECT_TRUE(b.tls);
  EXPECT_EQ(b.host, "sb.example");
  EXPECT_EQ(b.port, 443);
  EXPECT_EQ(b.path, "");
  EXPECT_EQ(b.origin(), "https://sb.example");
}

TEST(Url, PortsAndPaths) {
  auto u = Url::parse("http://10.1.2.3:8080/base/api//");
  EXPECT_EQ(u.host, "10.1.2.3");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.path, "/base/api");
  EXPECT_EQ(u.authority(), "10.1.2.3:8080");
  EXPECT_EQ(u.str(), "http://10.1.2.3:8080/base/api");
  EXPECT_TRUE(u.is_ip_literal());
  EXPECT_FALSE(u.is_loopback());
}

TEST(Url, Ipv6WithoutBrackets) {
  auto u = Url::parse("https://[::1]:8443/base");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 8443);
  EXPECT_EQ(u.path, "/base");
  EXPECT_EQ(u.authority(), "[::1]:8443");
  EXPECT_EQ(u.origin(), "https://[::1]:8443");
  EXPECT_TRUE(u.is_ip_literal());
  EXPECT_TRUE(u.is_loopback());
  auto v = Url::parse("http://[fd00::5]");
  EXPECT_EQ(v.host, "fd00::5");
  EXPECT_EQ(v.port, 80);
  EXPECT_EQ(v.authority(), "[fd00::5]");
  EXPECT_FALSE(v.is_loopback());
}

TEST(Url, Loopback) {
  EXPECT_TRUE(Url::parse("http://localhost:1").is_loopback());
  EXPECT_TRUE(Url::parse("http://127.0.5.2:1").is_loopback());
  EXPECT_FALSE(Url::parse("http://128.0.0.1").is_loopback());
  EXPECT_FALSE(Url::parse("http://localhost.example").is_loopback());
  EXPECT_FALSE(Url::parse("http://localhost").is_ip_literal());
}

TEST(Url, RejectsBadInput) {
  for (const char* bad : {"ftp://x", "x", "", "http://", "http://:80", "http://user@host", "http://h:0",
                          "http://h:65536", "http://h:8x", "http://h:", "http://[::1", "http://::1]",
                          "http://::1", "http://[nothost]:80", "http://[::1]x", "http://h/p?q=1", "http://h/#f",
                          "http://ho st", "http://h%41"}) {
    try {
      Url::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const sandbox::Error& e) {
      EXPECT_EQ(e.code(), errc::invalid_argument) << bad;
      EXPECT_NE(std::string(e.what()).find("URL"), std::string::npos);
    }
  }
}
