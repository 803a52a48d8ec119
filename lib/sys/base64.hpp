// Base64 (RFC 4648, padded, no line breaks) through OpenSSL: the one codec of the tree.
// Images travel as bytes inside the library; base64 exists only at the JSON edges (the
// kernels' DONE frame, sandbox::to_json, kubeconfig data).
#pragma once

#include <string>
#include <string_view>

namespace sandbox::sys {

std::string base64_encode(std::string_view bytes);
// Throws sandbox::Error(invalid_argument) on text that is not padded base64.
// ASCII whitespace is ignored, as in kubeconfig files.
std::string base64_decode(std::string_view text);

}  // namespace sandbox::sys
