#include "remote/sse_reader.hpp"

namespace sandbox::remote {

bool SseReader::feed(std::string_view chunk) {
  pending_.append(chunk);
  std::size_t start = 0;
  bool go = true;
  for (auto nl = pending_.find('\n', start); go && nl != std::string::npos;
       nl = pending_.find('\n', start)) {
    std::string_view l(pending_.data() + start, nl - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    go = line(l);
    start = nl + 1;
  }
  pending_.erase(0, start);
  return go;
}

bool SseReader::line(std::string_view l) {
  if (l.empty()) {  // the blank line ends an event
    bool go = true;
    if (has_data_) go = on_event_(event_.empty() ? "message" : event_, data_);
    event_.clear();
    data_.clear();
    has_data_ = false;
    return go;
  }
  if (l.front() == ':') return true;  // a comment: the server's keep-alive
  auto colon = l.find(':');
  std::string_view field = l.substr(0, colon), value;
  if (colon != std::string_view::npos) {
    value = l.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_ = value;
  } else if (field == "data") {
    if (has_data_) data_ += '\n';
    data_ += value;
    has_data_ = true;
  }
  return true;  // "id", "retry" and unknown fields: nothing this client needs
}

}  // namespace sandbox::remote
