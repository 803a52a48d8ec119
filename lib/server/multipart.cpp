#include "server/multipart.hpp"

#include <algorithm>
#include <cctype>

#include "sandbox/error.hpp"

namespace sandbox::server {
namespace {

[[noreturn]] void bad(std::string_view what) {
  throw Error(errc::invalid_argument, "malformed multipart body: " + std::string(what));
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Walks `; key=value` parameters (value plain or a quoted-string with \-escapes) after the
// first token of a header value, calling fn(key, value).
template <class F>
void for_each_param(std::string_view v, F&& fn) {
  auto semi = v.find(';');
  if (semi == std::string_view::npos) return;
  v.remove_prefix(semi + 1);
  while (true) {
    v = trim(v);
    if (v.empty()) return;
    auto eq = v.find('=');
    auto sc = v.find(';');
    if (eq == std::string_view::npos || (sc != std::string_view::npos && sc < eq)) {
      if (sc == std::string_view::npos) return;  // a bare flag: ignore
      v.remove_prefix(sc + 1);
      continue;
    }
    std::string key(trim(v.substr(0, eq)));
    v.remove_prefix(eq + 1);
    v = trim(v);
    std::string value;
    if (!v.empty() && v.front() == '"') {
      std::size_t i = 1;
      bool closed = false;
      for (; i < v.size(); ++i) {
        if (v[i] == '\\' && i + 1 < v.size()) {
          value.push_back(v[++i]);
        } else if (v[i] == '"') {
          closed = true;
          ++i;
          break;
        } else {
          value.push_back(v[i]);
        }
      }
      if (!closed) bad("unterminated quoted parameter");
      v.remove_prefix(i);
      auto next = v.find(';');
      v = next == std::string_view::npos ? std::string_view{} : v.substr(next + 1);
    } else {
      auto end = v.find(';');
      value = std::string(trim(v.substr(0, end)));
      v = end == std::string_view::npos ? std::string_view{} : v.substr(end + 1);
    }
    fn(key, value);
  }
}

}  // namespace

MultipartParser::MultipartParser(std::string_view boundary, MultipartCallbacks callbacks,
                                 std::size_t max_header_bytes, std::size_t max_parts)
    : delimiter_("\r\n--" + std::string(boundary)),
      cb_(std::move(callbacks)),
      max_header_bytes_(max_header_bytes),
      max_parts_(max_parts),
      pending_("\r\n") {  // the first delimiter may open the body: pretend a CRLF before it
  if (boundary.empty() || boundary.size() > 70)
    throw Error(errc::invalid_argument, "multipart boundary must be 1 to 70 characters");
}

void MultipartParser::feed(std::string_view chunk) {
  if (state_ == State::done) return;  // the epilogue is ignored
  pending_.append(chunk);
  while (true) {
    switch (state_) {
      case State::preamble: {
        auto pos = pending_.find(delimiter_);
        if (pos == std::string::npos) {
          // Keep only what could still be the start of a delimiter.
          if (pending_.size() >= delimiter_.size())
            pending_.erase(0, pending_.size() - (delimiter_.size() - 1));
          return;
        }
        pending_.erase(0, pos + delimiter_.size());
        state_ = State::after_boundary;
        break;
      }
      case State::after_boundary: {
        // Optional transport padding (spaces, tabs) before the CRLF, or "--" at the end.
        std::size_t i = 0;
        if (pending_.size() >= 2 && pending_.compare(0, 2, "--") == 0) {
          state_ = State::done;
          pending_.clear();
          return;
        }
        while (i < pending_.size() && (pending_[i] == ' ' || pending_[i] == '\t')) ++i;
        if (i > 256) bad("padding after boundary");
        if (pending_.size() < i + 2) return;
        if (pending_.compare(i, 2, "\r\n") != 0) bad("boundary not followed by CRLF");
        pending_.erase(0, i + 2);
        state_ = State::headers;
        break;
      }
      case State::headers: {
        std::size_t end;
        std::size_t skip;
        if (pending_.size() >= 2 && pending_.compare(0, 2, "\r\n") == 0) {
          end = 0;
          skip = 2;  // a part without headers
        } else {
          end = pending_.find("\r\n\r\n");
          skip = 4;
          if (end == std::string::npos) {
            if (pending_.size() > max_header_bytes_) bad("part headers too large");
            return;
          }
        }
        if (end > max_header_bytes_) bad("part headers too large");
        if (++parts_ > max_parts_) bad("too many parts");
        parse_headers(std::string_view(pending_).substr(0, end));
        pending_.erase(0, end + skip);
        state_ = State::body;
        break;
      }
      case State::body: {
        auto pos = pending_.find(delimiter_);
        if (pos == std::string::npos) {
          if (pending_.size() >= delimiter_.size()) {
            std::size_t safe = pending_.size() - (delimiter_.size() - 1);
            if (cb_.on_data) cb_.on_data(std::string_view(pending_).substr(0, safe));
            pending_.erase(0, safe);
          }
          return;
        }
        if (pos > 0 && cb_.on_data) cb_.on_data(std::string_view(pending_).substr(0, pos));
        if (cb_.on_part_end) cb_.on_part_end();
        pending_.erase(0, pos + delimiter_.size());
        state_ = State::after_boundary;
        break;
      }
      case State::done:
        pending_.clear();
        return;
    }
  }
}

void MultipartParser::finish() const {
  if (state_ != State::done) bad("the closing boundary is missing");
}

void MultipartParser::parse_headers(std::string_view block) {
  Part part;
  bool disposition = false;
  while (!block.empty()) {
    auto eol = block.find("\r\n");
    auto line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view{} : block.substr(eol + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) bad("part header without a colon");
    auto name = trim(line.substr(0, colon));
    auto value = trim(line.substr(colon + 1));
    if (iequals(name, "Content-Disposition")) {
      auto first = trim(value.substr(0, value.find(';')));
      if (!iequals(first, "form-data")) bad("part disposition is not form-data");
      disposition = true;
      for_each_param(value, [&](const std::string& k, std::string& v) {
        if (iequals(k, "name")) part.name = std::move(v);
        else if (iequals(k, "filename")) part.filename = std::move(v);
      });
    } else if (iequals(name, "Content-Type")) {
      part.content_type = std::string(value);
    }
  }
  if (!disposition) bad("part without Content-Disposition");
  if (cb_.on_part) cb_.on_part(part);
}

std::optional<std::string> multipart_boundary(std::string_view content_type) {
  auto first = trim(content_type.substr(0, content_type.find(';')));
  if (!iequals(first, "multipart/form-data")) return std::nullopt;
  std::optional<std::string> boundary;
  try {
    for_each_param(content_type, [&](const std::string& k, std::string& v) {
      if (iequals(k, "boundary")) boundary = std::move(v);
    });
  } catch (const Error&) {
    return std::nullopt;
  }
  if (boundary && (boundary->empty() || boundary->size() > 70)) return std::nullopt;
  return boundary;
}

}  // namespace sandbox::server
