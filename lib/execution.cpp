#include "execution_impl.hpp"

#include <nlohmann/json.hpp>

#include "session_impl.hpp"

namespace sandbox {

using nlohmann::json;
using std::chrono::steady_clock;

namespace {

std::uint64_t ms_since(steady_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t).count());
}

Status parse_status(const std::string& s) {
  if (s == "Finished") return Status::finished;
  if (s == "Timeout") return Status::timeout;
  if (s == "Killed") return Status::killed;
  return Status::failed;
}

Termination parse_termination(const std::string& s) {
  if (s == "timeout") return Termination::timeout;
  if (s == "cancelled") return Termination::cancelled;
  if (s == "kernel_died") return Termination::kernel_died;
  if (s == "out_of_memory") return Termination::out_of_memory;
  if (s == "process_limit") return Termination::process_limit;
  return Termination::none;
}

}  // namespace

ExecutionImpl::ExecutionImpl(std::string id, std::uint32_t wire_id, ExecRequest req,
                             std::uint64_t output_cap, std::weak_ptr<SessionImpl> session)
    : id_(std::move(id)),
      wire_id_(wire_id),
      language_(req.language),
      output_cap_(output_cap),
      session_(std::move(session)),
      submitted_(steady_clock::now()),
      started_(submitted_) {
  result_.execution_id = id_;
  result_.language = language_;
}

Status ExecutionImpl::status() const {
  std::lock_guard lock(mutex_);
  return result_.status;
}

bool ExecutionImpl::done() const {
  std::lock_guard lock(mutex_);
  return done_;
}

Result ExecutionImpl::snapshot_locked(Page page) const {
  Result r;
  // Copy everything but the streams, then only the requested slices of those.
  r.execution_id = result_.execution_id;
  r.language = result_.language;
  r.status = result_.status;
  r.result = result_.result;
  r.images = result_.images;
  r.error = result_.error;
  r.exit_code = result_.exit_code;
  r.duration_ms = done_ ? result_.duration_ms : ms_since(started_);
  r.truncated = result_.truncated;
  r.cpu_time_ms = result_.cpu_time_ms;
  r.peak_memory_bytes = result_.peak_memory_bytes;
  r.termination = result_.termination;
  r.note = result_.note;
  r.stdout_total = result_.stdout_text.size();
  r.stderr_total = result_.stderr_text.size();
  auto slice = [&](const std::string& s, std::string& out, std::uint64_t& offset) {
    std::uint64_t off = std::min<std::uint64_t>(page.offset, s.size());
    std::uint64_t len = std::min<std::uint64_t>(page.limit, s.size() - off);
    out.assign(s, off, len);
    offset = off;
  };
  slice(result_.stdout_text, r.stdout_text, r.stdout_offset);
  slice(result_.stderr_text, r.stderr_text, r.stderr_offset);
  return r;
}

Result ExecutionImpl::snapshot(Page page) const {
  std::lock_guard lock(mutex_);
  return snapshot_locked(page);
}

Result ExecutionImpl::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_; });
  return snapshot_locked({});
}

bool ExecutionImpl::wait_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, d, [&] { return done_; });
}

bool ExecutionImpl::wait_change(std::uint64_t stdout_size, std::uint64_t stderr_size,
                                std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, d, [&] {
    return done_ || result_.stdout_text.size() > stdout_size ||
           result_.stderr_text.size() > stderr_size;
  });
}

std::uint64_t ExecutionImpl::subscribe(std::function<void()> fn) {
  std::unique_lock lock(mutex_);
  if (done_) {
    lock.unlock();
    fn();
    return 0;
  }
  std::uint64_t token = next_token_++;
  subscribers_.emplace(token, std::move(fn));
  return token;
}

void ExecutionImpl::unsubscribe(std::uint64_t token) {
  std::lock_guard lock(mutex_);
  subscribers_.erase(token);
}

void ExecutionImpl::cancel() {
  if (done()) return;
  if (auto s = session_.lock()) s->cancel(*this);
}

void ExecutionImpl::publish(std::unique_lock<std::mutex>& lock) {
  // Subscribers run without the lock so that they may call snapshot().
  std::vector<std::function<void()>> fns;
  fns.reserve(subscribers_.size());
  for (auto& [token, fn] : subscribers_) fns.push_back(fn);
  if (done_) subscribers_.clear();
  lock.unlock();
  changed_.notify_all();
  for (auto& fn : fns) fn();
}

void ExecutionImpl::on_started() {
  std::lock_guard lock(mutex_);
  started_ = steady_clock::now();
}

void ExecutionImpl::on_output(int stream, std::string_view bytes) {
  std::unique_lock lock(mutex_);
  if (done_) return;
  std::string& s = stream == 2 ? result_.stderr_text : result_.stdout_text;
  // The agent caps output already; this is the host's own guard against a broken agent.
  std::uint64_t room = s.size() < output_cap_ ? output_cap_ - s.size() : 0;
  if (bytes.size() > room) {
    bytes = bytes.substr(0, room);
    result_.truncated = true;
  }
  s.append(bytes);
  publish(lock);
}

void ExecutionImpl::on_done(std::string_view payload, const std::function<void(Result&)>& refine) {
  std::unique_lock lock(mutex_);
  if (done_) return;
  Result& r = result_;
  json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    r.status = Status::failed;
    r.error = ErrorInfo{"AgentError", "the agent sent a malformed result", ""};
  } else {
    r.status = parse_status(j.value("status", "Failed"));
    if (auto it = j.find("exit_code"); it != j.end() && it->is_number_integer()) r.exit_code = it->get<int>();
    if (auto it = j.find("result"); it != j.end() && it->is_string()) r.result = it->get<std::string>();
    if (auto it = j.find("images"); it != j.end() && it->is_array()) {
      for (const auto& img : *it) {
        if (img.is_object()) r.images.push_back({img.value("mime", "image/png"), img.value("data", "")});
      }
    }
    if (auto it = j.find("error"); it != j.end() && it->is_object()) {
      r.error = ErrorInfo{it->value("name", ""), it->value("value", ""), it->value("traceback", "")};
    }
    if (j.value("truncated", false)) r.truncated = true;
    if (auto it = j.find("cpu_ms"); it != j.end() && it->is_number()) r.cpu_time_ms = it->get<std::uint64_t>();
    if (auto it = j.find("peak_rss_bytes"); it != j.end() && it->is_number() && it->get<std::uint64_t>() > 0)
      r.peak_memory_bytes = it->get<std::uint64_t>();
    r.termination = parse_termination(j.value("termination", "none"));
    if (auto it = j.find("note"); it != j.end() && it->is_string()) r.note = it->get<std::string>();
  }
  r.duration_ms = ms_since(started_);
  if (refine) refine(r);
  hold_.reset();
  done_ = true;
  publish(lock);
}

void ExecutionImpl::fail(Status status, Termination why, std::string note) {
  std::unique_lock lock(mutex_);
  if (done_) return;
  result_.status = status;
  result_.termination = why;
  result_.note = std::move(note);
  result_.duration_ms = ms_since(started_);
  hold_.reset();
  done_ = true;
  publish(lock);
}

}  // namespace sandbox
