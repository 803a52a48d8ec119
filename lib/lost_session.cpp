#include "lost_session.hpp"

#include <cstdio>

#include "files_internal.hpp"

namespace sandbox {

namespace {
std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}
}  // namespace

LostSession::LostSession(store::SessionRecord record, Limits limits, isolation::LaunchSpec spec,
                         isolation::Backend& backend, store::Store* store)
    : record_(std::move(record)), limits_(limits), spec_(std::move(spec)), backend_(backend), store_(store) {}

std::chrono::system_clock::time_point LostSession::created() const { return from_ms(record_.created_ms); }

std::chrono::steady_clock::time_point LostSession::last_used() const {
  // On the steady clock, as far back as the wall clock says it was.
  auto ago = std::chrono::system_clock::now() - from_ms(record_.last_used_ms);
  return std::chrono::steady_clock::now() - std::chrono::duration_cast<std::chrono::steady_clock::duration>(ago);
}

std::chrono::system_clock::time_point LostSession::lost_at() const { return from_ms(record_.lost_at_ms); }

void LostSession::lost() const {
  if (closed_) throw Error(errc::failed_precondition, "session " + record_.id + " is closed");
  throw Error(errc::session_lost, "session " + record_.id + " was lost (" + record_.lost_reason +
                                      "); its workspace can still be downloaded until it is deleted");
}

Files& LostSession::files() {
  if (closed_) lost();
  std::lock_guard lock(mutex_);
  if (!files_) files_ = make_workspace_files(spec_.workspace, limits_.upload_bytes, std::nullopt);
  return *files_;
}

std::vector<ProcessInfo> LostSession::processes() { lost(); }
void LostSession::kill(int, int) { lost(); }
std::shared_ptr<Execution> LostSession::start(ExecRequest) { lost(); }
std::shared_ptr<Execution> LostSession::latest() const { lost(); }
std::shared_ptr<Execution> LostSession::execution(std::string_view) const { lost(); }

void LostSession::close() {
  if (closed_.exchange(true)) return;
  try {
    backend_.forget_lost(spec_, record_.handle_json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sandbox: cannot release lost session %s: %s\n", record_.id.c_str(), e.what());
  }
  std::error_code ec;
  std::filesystem::remove_all(spec_.session_dir, ec);
  if (store_) store_->remove_session(record_.owner, record_.id);
}

}  // namespace sandbox
