// placement/yaml.cpp: an indentation parser over pre-split lines.
#include "placement/yaml.hpp"

#include <sandbox/error.hpp>

#include <fmt/format.h>

#include <string>
#include <vector>

namespace sandbox::placement {
namespace {

struct Line {
  std::size_t indent;
  std::string text;  // without indentation, comment and trailing blanks
  std::size_t number;
};

[[noreturn]] void fail(std::size_t line, std::string_view what) {
  throw Error(errc::invalid_argument, fmt::format("YAML line {}: {}", line, what));
}

// Drops a comment: a '#' at the start or after a blank, outside quotes.
std::string strip_comment(std::string_view s) {
  char quote = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == '\\' && quote == '"') ++i;
      else if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      if (i == 0 || s[i - 1] == ' ' || s[i - 1] == ':' || s[i - 1] == '-' || s[i - 1] == '[' ||
          s[i - 1] == '{' || s[i - 1] == ',')
        quote = c;
    } else if (c == '#' && (i == 0 || s[i - 1] == ' ')) {
      s = s.substr(0, i);
      break;
    }
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> out;
  std::size_t number = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++number;
    std::size_t indent = 0;
    while (indent < raw.size() && raw[indent] == ' ') ++indent;
    if (indent < raw.size() && raw[indent] == '\t') fail(number, "tabs are not allowed for indentation");
    std::string body = strip_comment(raw.substr(indent));
    if (body.empty() || body == "---") continue;
    if (body == "..." ) break;
    out.push_back({indent, std::move(body), number});
  }
  return out;
}

nlohmann::json scalar(std::string_view s, std::size_t line);

// One-line flow collections: {a: b, "c": [1, d]}. Plain scalars end at ',', ']' or '}'.
class Flow {
 public:
  Flow(std::string_view s, std::size_t line) : s_(s), line_(line) {}

  nlohmann::json all() {
    auto v = value();
    skip();
    if (i_ != s_.size()) fail(line_, "trailing text after a flow collection");
    return v;
  }

 private:
  void skip() {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  nlohmann::json value() {
    skip();
    if (eat('{')) {
      auto out = nlohmann::json::object();
      if (eat('}')) return out;
      do {
        auto key = atom(true);
        if (!key.is_string()) fail(line_, "flow mapping keys must be strings");
        if (!eat(':')) fail(line_, "expected ':' in a flow mapping");
        out[key.get<std::string>()] = value();
      } while (eat(','));
      if (!eat('}')) fail(line_, "expected '}'");
      return out;
    }
    if (eat('[')) {
      auto out = nlohmann::json::array();
      if (eat(']')) return out;
      do out.push_back(value());
      while (eat(','));
      if (!eat(']')) fail(line_, "expected ']'");
      return out;
    }
    return atom(false);
  }
  nlohmann::json atom(bool key) {
    skip();
    std::size_t start = i_;
    if (i_ < s_.size() && (s_[i_] == '"' || s_[i_] == '\'')) {
      char q = s_[i_++];
      while (true) {
        if (i_ >= s_.size()) fail(line_, "unterminated quoted scalar");
        if (q == '"' && s_[i_] == '\\') {
          i_ += 2;
        } else if (s_[i_] == q) {
          if (q == '\'' && i_ + 1 < s_.size() && s_[i_ + 1] == '\'') {  // '' is one quote
            i_ += 2;
            continue;
          }
          ++i_;
          break;
        } else {
          ++i_;
        }
      }
      return scalar(s_.substr(start, i_ - start), line_);
    }
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ']' && s_[i_] != '}' &&
           !(key && s_[i_] == ':' && (i_ + 1 == s_.size() || s_[i_ + 1] == ' ')))
      ++i_;
    std::string_view t = s_.substr(start, i_ - start);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    return scalar(t, line_);
  }

  std::string_view s_;
  std::size_t line_;
  std::size_t i_ = 0;
};

nlohmann::json scalar(std::string_view s, std::size_t line) {
  if (s.empty() || s == "~" || s == "null") return nullptr;
  if (s.front() == '{' || s.front() == '[') return Flow(s, line).all();
  if (s.front() == '"') {
    auto j = nlohmann::json::parse(s, nullptr, false);  // a JSON string is a YAML double-quoted one
    if (j.is_discarded() || !j.is_string()) fail(line, "bad double-quoted scalar");
    return j;
  }
  if (s.front() == '\'') {
    if (s.size() < 2 || s.back() != '\'') fail(line, "bad single-quoted scalar");
    std::string out;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
      out += s[i];
      if (s[i] == '\'') ++i;  // '' is one quote
    }
    return out;
  }
  if (s.front() == '&' || s.front() == '*' || s.front() == '!' || s.front() == '|' || s.front() == '>')
    fail(line, "anchors, aliases, tags and block scalars are not supported");
  return std::string(s);
}

// Splits "key: value" / "key:"; npos when the line is not a mapping entry.
std::size_t key_end(std::string_view s) {
  if (s.empty() || s.front() == '"' || s.front() == '\'' || s.front() == '{' || s.front() == '[') {
    if (!s.empty() && (s.front() == '"' || s.front() == '\'')) {
      auto close = s.find(s.front(), 1);
      if (close != std::string_view::npos && close + 1 < s.size() && s[close + 1] == ':' &&
          (close + 2 == s.size() || s[close + 2] == ' '))
        return close + 1;
    }
    return std::string_view::npos;
  }
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == ':' && (i + 1 == s.size() || s[i + 1] == ' ')) return i;
  return std::string_view::npos;
}

bool is_item(const Line& l) { return l.text == "-" || l.text.starts_with("- "); }

class Parser {
 public:
  explicit Parser(std::vector<Line> lines) : lines_(std::move(lines)) {}

  nlohmann::json document() {
    if (lines_.empty()) return nullptr;
    auto v = node(lines_[0].indent);
    if (i_ < lines_.size()) fail(lines_[i_].number, "unexpected indentation");
    return v;
  }

 private:
  nlohmann::json node(std::size_t indent) {
    const Line& l = lines_[i_];
    if (is_item(l)) return sequence(indent);
    if (key_end(l.text) != std::string_view::npos) return mapping(indent);
    ++i_;
    return scalar(l.text, l.number);
  }

  nlohmann::json sequence(std::size_t indent) {
    auto out = nlohmann::json::array();
    while (i_ < lines_.size() && lines_[i_].indent == indent && is_item(lines_[i_])) {
      Line& l = lines_[i_];
      std::string rest = l.text == "-" ? "" : l.text.substr(2);
      std::size_t pad = 0;
      while (pad < rest.size() && rest[pad] == ' ') ++pad;
      if (rest.empty()) {
        ++i_;
        if (i_ < lines_.size() && lines_[i_].indent > indent) out.push_back(node(lines_[i_].indent));
        else out.push_back(nullptr);
        continue;
      }
      // "- key: v" opens a mapping whose keys sit at the column after "- ".
      l.indent = indent + 2 + pad;
      l.text = rest.substr(pad);
      out.push_back(node(l.indent));
    }
    return out;
  }

  nlohmann::json mapping(std::size_t indent) {
    auto out = nlohmann::json::object();
    while (i_ < lines_.size() && lines_[i_].indent == indent && !is_item(lines_[i_])) {
      const Line l = lines_[i_];
      auto colon = key_end(l.text);
      if (colon == std::string_view::npos) fail(l.number, "expected 'key: value'");
      auto key = scalar(std::string_view(l.text).substr(0, colon), l.number);
      if (!key.is_string()) fail(l.number, "keys must be strings");
      std::string_view value = std::string_view(l.text).substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      ++i_;
      nlohmann::json v;
      if (!value.empty()) {
        v = scalar(value, l.number);
      } else if (i_ < lines_.size() && lines_[i_].indent > indent) {
        v = node(lines_[i_].indent);
      } else if (i_ < lines_.size() && lines_[i_].indent == indent && is_item(lines_[i_])) {
        v = sequence(indent);  // kubectl writes "clusters:\n- cluster:" at the key's indent
      }
      if (out.contains(key.get<std::string>())) fail(l.number, "duplicate key");
      out[key.get<std::string>()] = std::move(v);
    }
    if (i_ < lines_.size() && lines_[i_].indent > indent) fail(lines_[i_].number, "unexpected indentation");
    return out;
  }

  std::vector<Line> lines_;
  std::size_t i_ = 0;
};

}  // namespace

nlohmann::json parse_yaml(std::string_view text) {
  std::size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    auto j = nlohmann::json::parse(text, nullptr, false);  // JSON is YAML
    if (j.is_discarded()) throw Error(errc::invalid_argument, "bad JSON document");
    return j;
  }
  return Parser(split_lines(text)).document();
}

}  // namespace sandbox::placement
