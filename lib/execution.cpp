#include "execution_impl.hpp"

#include <thread>

#include "session_impl.hpp"
#include "sys/base64.hpp"

namespace sandbox {

using std::chrono::steady_clock;

namespace {

std::uint64_t ms_since(steady_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - t).count());
}

// Not "of how many": the kernel already cut what it sent to one character over the cap.
std::string fmt_cut(const char* what, std::uint64_t cap) {
  return std::string(what) + " cut to " + std::to_string(cap) + " bytes";
}

// The longest prefix of `s` within `cap` bytes that does not split a UTF-8 sequence.
std::size_t utf8_prefix(const std::string& s, std::size_t cap) {
  if (s.size() <= cap) return s.size();
  std::size_t n = cap;
  // Back off continuation bytes (10xxxxxx) to the start of the cut character.
  for (int i = 0; i < 4 && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80; ++i) --n;
  return n;
}

// Cuts `s` to `cap` bytes; says what was cut into `notes`.
void cap_text(std::string& s, std::uint64_t cap, const char* what, std::vector<std::string>& notes) {
  if (s.size() <= cap) return;
  notes.push_back(fmt_cut(what, cap));
  s.resize(utf8_prefix(s, static_cast<std::size_t>(cap)));
  s.shrink_to_fit();  // the cut-off bytes are what the cap is for: give them back
}

}  // namespace

ExecutionImpl::ExecutionImpl(std::string id, std::uint32_t wire_id, ExecRequest req,
                             const Limits& limits, std::weak_ptr<SessionImpl> session)
    : id_(std::move(id)),
      wire_id_(wire_id),
      language_(req.language),
      output_cap_(limits.output_bytes),
      result_cap_(limits.result_cap()),
      image_cap_(limits.image_cap()),
      images_cap_(limits.images_cap()),
      session_(std::move(session)),
      submitted_(steady_clock::now()),
      started_(submitted_) {
  result_.execution_id = id_;
  result_.language = language_;
}

void ExecutionImpl::restore(Result stored) {
  std::unique_lock lock(mutex_);
  result_ = std::move(stored);
  result_.execution_id = id_;
  result_.language = language_;
  done_ = true;
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

// Reading a result, waiting for it or streaming it is use of the session (its idle time).
void ExecutionImpl::used() const {
  if (auto s = session_.lock()) s->touch();
}

Result ExecutionImpl::snapshot(Page page) const {
  used();
  std::lock_guard lock(mutex_);
  return snapshot_locked(page);
}

Result ExecutionImpl::wait() {
  used();
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return done_; });
  return snapshot_locked({});
}

bool ExecutionImpl::wait_for(std::chrono::milliseconds d) {
  used();
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, d, [&] { return done_; });
}

bool ExecutionImpl::wait_change(std::uint64_t stdout_size, std::uint64_t stderr_size,
                                std::chrono::milliseconds d) {
  used();
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, d, [&] {
    return done_ || result_.stdout_text.size() > stdout_size ||
           result_.stderr_text.size() > stderr_size;
  });
}

std::uint64_t ExecutionImpl::add_subscriber(std::function<void()> fn) {
  used();
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

void ExecutionImpl::remove_subscriber(std::uint64_t token) noexcept {
  std::unique_lock lock(mutex_);
  subscribers_.erase(token);
  // No callback outlives its Subscription: wait for one running now on another thread (on
  // this one it is the callback dropping its own subscription, which must not wait).
  const auto me = std::this_thread::get_id();
  calls_done_.wait(lock, [&] {
    for (const auto& [t, who] : calling_)
      if (t == token && who != me) return false;
    return true;
  });
}

void ExecutionImpl::cancel() {
  if (done()) return;
  if (auto s = session_.lock()) s->cancel(*this);
}

void ExecutionImpl::publish(std::unique_lock<std::mutex>& lock) {
  // Subscribers run without the lock so that they may call snapshot().
  std::vector<std::pair<std::uint64_t, std::function<void()>>> fns(subscribers_.begin(), subscribers_.end());
  const bool last = done_;  // the end is everyone's last call: each is dropped after it
  lock.unlock();
  changed_.notify_all();
  const auto me = std::this_thread::get_id();
  for (auto& [token, fn] : fns) {
    lock.lock();
    if (!subscribers_.count(token)) {  // unsubscribed meanwhile: not called
      lock.unlock();
      continue;
    }
    if (last) subscribers_.erase(token);
    auto mark = calling_.emplace(token, me);  // running until it returns (remove_subscriber waits)
    lock.unlock();
    try {
      fn();
    } catch (...) {
      // A subscriber's failure is its own; the others are still told.
    }
    lock.lock();
    calling_.erase(mark);
    lock.unlock();
    calls_done_.notify_all();
  }
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

void ExecutionImpl::on_done(agent::Done&& d, const std::function<void(Result&)>& refine) {
  std::unique_lock lock(mutex_);
  if (done_) return;
  Result& r = result_;
  std::vector<std::string> notes;
  r.status = d.status;
  r.exit_code = d.exit_code;
  r.result = std::move(d.result);
  if (r.result) cap_text(*r.result, result_cap_, "result", notes);
  // An image cut short is no image: one over its cap is dropped, and so is every image
  // once the execution's total would pass its cap.
  std::uint64_t total = 0;
  std::size_t dropped_big = 0, dropped_total = 0, dropped_bad = 0;
  for (auto& img : d.images) {
    // Base64 ends here, at the kernel's edge: the library holds an image's bytes.
    try {
      img.data = sys::base64_decode(img.data);
    } catch (const Error&) {
      ++dropped_bad;
      continue;
    }
    std::uint64_t size = img.data.size() + img.mime.size();
    if (size > image_cap_) {
      ++dropped_big;
    } else if (total + size > images_cap_) {
      ++dropped_total;
    } else {
      total += size;
      r.images.push_back(std::move(img));
    }
  }
  if (dropped_big)
    notes.push_back(std::to_string(dropped_big) + " image(s) dropped: each over " + std::to_string(image_cap_) + " bytes");
  if (dropped_bad) notes.push_back(std::to_string(dropped_bad) + " image(s) dropped: not base64");
  if (dropped_total)
    notes.push_back(std::to_string(dropped_total) + " image(s) dropped: the execution's images passed " +
                    std::to_string(images_cap_) + " bytes");
  if (d.error) {
    cap_text(d.error->name, 256, "error name", notes);
    cap_text(d.error->value, result_cap_, "error value", notes);
    cap_text(d.error->traceback, result_cap_, "traceback", notes);
    r.error = std::move(d.error);
  }
  if (d.truncated) r.truncated = true;
  r.cpu_time_ms = d.cpu_ms;
  r.peak_memory_bytes = d.peak_rss_bytes;
  r.termination = d.termination;
  r.note = std::move(d.note);
  if (r.note) cap_text(*r.note, 4096, "note", notes);
  if (!notes.empty()) {
    r.truncated = true;
    std::string joined;
    for (auto& n : notes) joined += (joined.empty() ? "" : "; ") + n;
    r.note = r.note ? *r.note + "; " + joined : joined;
  }
  r.duration_ms = ms_since(started_);
  if (refine) refine(r);
  finish(lock);
}

std::uint64_t ExecutionImpl::footprint() const {
  std::lock_guard lock(mutex_);
  const Result& r = result_;
  std::uint64_t n = r.stdout_text.size() + r.stderr_text.size() + (r.result ? r.result->size() : 0);
  for (const auto& img : r.images) n += img.data.size() + img.mime.size();
  if (r.error) n += r.error->name.size() + r.error->value.size() + r.error->traceback.size();
  return n + 512;  // the rest of the record
}

void ExecutionImpl::finish(std::unique_lock<std::mutex>& lock) {
  hold_.reset();  // the tenant's execution count ends before the end is visible
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
  finish(lock);
}

}  // namespace sandbox
