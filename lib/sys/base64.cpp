#include "sys/base64.hpp"

#include <openssl/evp.h>

#include "sandbox/error.hpp"

namespace sandbox::sys {
namespace {
[[noreturn]] void bad(const char* what) { throw Error(errc::invalid_argument, std::string("bad base64: ") + what); }

bool in_alphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // EVP_EncodeBlock adds a NUL
  int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text) {
  // EVP_DecodeBlock wants whole quanta and counts padding as zero bytes: give it exactly
  // that, checked here, and take the padding off after.
  std::string clean;
  clean.reserve(text.size() + 2);
  std::size_t pad = 0;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (!in_alphabet(c)) bad("a character outside the alphabet");
    if (pad) bad("data after '='");
    clean.push_back(c);
  }
  if (clean.size() % 4 == 1) bad("a truncated quantum");
  if (pad > 2 || (pad && (clean.size() + pad) % 4 != 0)) bad("wrong padding");
  pad = (4 - clean.size() % 4) % 4;
  clean.append(pad, '=');
  std::string out(clean.size() / 4 * 3, '\0');
  int n = ::EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) bad("rejected by the decoder");
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace sandbox::sys
