// remote/sse_reader.hpp: the client's side of server-sent events (text/event-stream), fed
// chunk by chunk as they arrive; an event is handed over at its blank line.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace sandbox::remote {

class SseReader {
 public:
  // Returns false to stop reading.
  using Handler = std::function<bool(std::string_view event, std::string_view data)>;
  explicit SseReader(Handler on_event) : on_event_(std::move(on_event)) {}

  // False once the handler asked to stop.
  bool feed(std::string_view chunk);

 private:
  bool line(std::string_view l);

  Handler on_event_;
  std::string pending_;        // a line not yet ended
  std::string event_, data_;
  bool has_data_ = false;
};

}  // namespace sandbox::remote
