// Base64 (RFC 4648, standard alphabet), by OpenSSL's EVP block codec.
//
//   sys::base64_encode("hi") == "aGk=";
//   sys::base64_decode("aGk") == "hi";   // padding optional, whitespace skipped
#pragma once

#include <string>
#include <string_view>

namespace sandbox::sys {

// Padded, no line breaks.
std::string base64_encode(std::string_view bytes);

// Whitespace (space, tab, CR, LF) anywhere is skipped, as PEM-ish text wraps lines; the
// '=' padding is optional, but only at the end and at most two. Anything else - another
// character, a length that no encoding has - throws sandbox::Error(invalid_argument).
std::string base64_decode(std::string_view text);

}  // namespace sandbox::sys
