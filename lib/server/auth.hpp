// server/auth.hpp: bearer tokens and the tenant each one stands for.
//
// The token file holds one token per line, optionally named: `alice:s3cr3t`. Blank lines
// and `#` comments are skipped. A token's name is its tenant: sessions it creates are
// owned by that name, and other tenants see 404 for them. An unnamed token's tenant is a
// stable digest of it, so the file can be reordered without losing sessions. Words after
// the token are flags; the one flag is `admin` (may read server-wide figures, /metrics):
// `ops:t0ken admin`. Bearer tokens hold no spaces (RFC 6750), so old files read the same.
//
//   auto tokens = server::Tokens::load("/etc/sandbox/tokens");
//   auto owner = tokens.owner_for("Bearer s3cr3t");   // "alice", or nullopt
//   bool ops = tokens.identify("Bearer t0ken")->admin;
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::server {

class Tokens {
 public:
  Tokens() = default;  // no tokens: auth is off
  // Throws sandbox::Error(not_found / invalid_argument) if the file is missing or empty.
  static Tokens load(const std::filesystem::path& file);
  static Tokens parse(std::string_view text);

  bool enabled() const { return !entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  struct Identity {
    std::string owner;   // the tenant
    bool admin = false;  // may read server-wide figures
  };
  // Who an Authorization header value ("Bearer <token>") stands for, nullopt if unknown.
  std::optional<Identity> identify(std::string_view authorization) const;
  // The tenant alone.
  std::optional<std::string> owner_for(std::string_view authorization) const;

 private:
  struct Entry {
    std::string token;
    std::string owner;
    bool admin = false;
  };
  std::vector<Entry> entries_;
};

}  // namespace sandbox::server
