#include "server/auth.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cstdint>
#include <fstream>
#include <sstream>

#include "sandbox/error.hpp"

namespace sandbox::server {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Compares without an early exit, so timing does not reveal how much of a token matched.
bool same(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string digest_name(std::string_view token) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a: a stable label, not a secret
  for (unsigned char c : token) h = (h ^ c) * 1099511628211ull;
  return fmt::format("token-{:016x}", h);
}

}  // namespace

Tokens Tokens::load(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(errc::not_found, "cannot read token file " + file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  Tokens t = parse(ss.str());
  if (!t.enabled()) throw Error(errc::invalid_argument, "token file " + file.string() + " holds no token");
  return t;
}

Tokens Tokens::parse(std::string_view text) {
  Tokens t;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    Entry e;
    auto colon = line.find(':');
    auto rest = trim(colon == std::string_view::npos ? line : line.substr(colon + 1));
    // Flags follow the token after blanks: `name:token admin`.
    auto blank = rest.find_first_of(" \t");
    e.token = std::string(rest.substr(0, blank));
    e.owner = colon == std::string_view::npos ? digest_name(e.token) : std::string(trim(line.substr(0, colon)));
    for (auto flags = blank == std::string_view::npos ? std::string_view{} : rest.substr(blank);
         !(flags = trim(flags)).empty();) {
      auto stop = flags.find_first_of(" \t");
      auto word = flags.substr(0, stop);
      if (word != "admin")
        throw Error(errc::invalid_argument, "token file: unknown flag '" + std::string(word) + "' (known: admin)");
      e.admin = true;
      flags = stop == std::string_view::npos ? std::string_view{} : flags.substr(stop);
    }
    if (e.token.empty() || e.owner.empty())
      throw Error(errc::invalid_argument, "token file: an entry has an empty name or token");
    t.entries_.push_back(std::move(e));
  }
  return t;
}

std::optional<std::string> Tokens::owner_for(std::string_view authorization) const {
  auto who = identify(authorization);
  if (!who) return std::nullopt;
  return std::move(who->owner);
}

std::optional<Tokens::Identity> Tokens::identify(std::string_view authorization) const {
  auto v = trim(authorization);
  constexpr std::string_view scheme = "Bearer ";
  if (v.size() <= scheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size() - 1; ++i)
    if (std::tolower(static_cast<unsigned char>(v[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i])))
      return std::nullopt;
  if (v[scheme.size() - 1] != ' ') return std::nullopt;
  auto token = trim(v.substr(scheme.size()));
  std::optional<Identity> who;
  for (const Entry& e : entries_)  // every entry is compared: no early exit on a match
    if (same(e.token, token) && !who) who = Identity{e.owner, e.admin};
  return who;
}

}  // namespace sandbox::server
