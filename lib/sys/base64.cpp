#include "sys/base64.hpp"

#include <openssl/evp.h>

#include "sandbox/error.hpp"

namespace sandbox::sys {

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  if (bytes.empty()) return out;
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text)
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') clean.push_back(c);
  if (clean.size() % 4 != 0) throw Error(errc::invalid_argument, "base64: length is not a multiple of 4");
  if (clean.empty()) return {};
  // EVP_DecodeBlock takes '=' anywhere; padding is only the last one or two characters.
  std::size_t pad = clean.ends_with("==") ? 2 : clean.ends_with('=') ? 1 : 0;
  if (clean.find('=') < clean.size() - pad) throw Error(errc::invalid_argument, "base64: '=' before the end");
  std::string out(clean.size() / 4 * 3, '\0');
  // EVP_DecodeBlock keeps the padding's zero bytes: cut them.
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) throw Error(errc::invalid_argument, "base64: not base64 text");
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace sandbox::sys
