#include "remote/remote_session.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <random>

namespace sandbox::remote {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

FileInfo file_info(const json& j) {
  return {j.value("name", ""), j.value("size", std::uint64_t{0}), j.value("modified", std::int64_t{0}),
          parse_file_type(j.value("type", ""))};
}

// An unlinked temporary file: what uploads spool to and downloads land in, so neither is
// held in memory. Closed (and so gone) with the returned descriptor.
int temp_file() {
  const char* dir = std::getenv("TMPDIR");
  std::string d = dir && *dir ? dir : "/tmp";
  int fd = ::open(d.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) throw_syscall("open(O_TMPFILE)", errno, d);
  return fd;
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_syscall("write", errno, "a temporary file");
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::string boundary() {
  std::random_device rd;
  return fmt::format("libsandbox-{:08x}{:08x}", rd(), rd());
}

// The multipart framing around one file of the form field `file`.
struct Multipart {
  std::string boundary_ = boundary();
  std::string head(std::string_view name) const {
    std::string safe;
    for (char c : name) safe += c == '"' ? std::string("%22") : std::string(1, c);
    return fmt::format("--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n"
                       "Content-Type: application/octet-stream\r\n\r\n",
                       boundary_, safe);
  }
  std::string tail() const { return fmt::format("\r\n--{}--\r\n", boundary_); }
  std::string content_type() const { return "multipart/form-data; boundary=" + boundary_; }
};

class RemoteFiles;

// Spools what is written to a temporary file; commit() sends it in one streamed request.
class RemoteWriter final : public FileWriter {
 public:
  RemoteWriter(RemoteFiles& files, std::string name, UploadOptions options)
      : files_(files), name_(std::move(name)), options_(options), fd_(temp_file()) {}
  ~RemoteWriter() override { ::close(fd_); }
  void write(std::string_view chunk) override;
  FileInfo commit() override;

 private:
  RemoteFiles& files_;
  std::string name_;
  UploadOptions options_;
  int fd_;
  std::uint64_t size_ = 0;
  bool committed_ = false;
};

class RemoteFiles final : public Files {
 public:
  explicit RemoteFiles(RemoteSession& s) : s_(s) {}

  std::string upload_target(const UploadOptions& o) const {
    return s_.path() + "/files/upload" + (o.overwrite ? "?overwrite=true" : "");
  }
  std::string named(std::string_view route, std::string_view name) const {
    return fmt::format("{}/files/{}/{}", s_.path(), route, escape(name, true));
  }
  void check_size(std::uint64_t size) const {
    if (size > s_.limits().upload_bytes)
      throw Error(errc::resource_exhausted, fmt::format("upload of {} bytes is over the limit of {}",
                                                        size, s_.limits().upload_bytes));
  }

  FileInfo upload(std::string_view name, std::string_view data, UploadOptions o) override {
    s_.check_open();
    validate_file_name(name);
    check_size(data.size());
    Multipart mp;
    std::string body = mp.head(name);
    body += data;
    body += mp.tail();
    net::Request req{.method = "POST", .target = upload_target(o), .body = std::move(body),
                     .content_type = mp.content_type()};
    net::Response res = s_.wire().client().request(req);
    if (res.status / 100 != 2) Wire::fail(res);
    return file_info(json::parse(res.body));
  }

  // Streams the spooled file `fd` of `size` bytes as the upload of `name`.
  FileInfo send(std::string_view name, int fd, std::uint64_t size, const UploadOptions& o) {
    s_.check_open();
    Multipart mp;
    std::string head = mp.head(name), tail = mp.tail();
    if (::lseek(fd, 0, SEEK_SET) < 0) throw_syscall("lseek", errno, "a temporary file");
    std::vector<char> buf(64 * 1024);
    int part = 0;  // 0 head, 1 file, 2 tail, 3 end
    auto source = [&]() -> std::string_view {
      while (true) {
        if (part == 0) { part = 1; return head; }
        if (part == 1) {
          ssize_t n = ::read(fd, buf.data(), buf.size());
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) throw_syscall("read", errno, "a temporary file");
          if (n > 0) return {buf.data(), static_cast<std::size_t>(n)};
          part = 2;
          continue;
        }
        if (part == 2) { part = 3; return tail; }
        return {};
      }
    };
    net::Request req{.method = "POST", .target = upload_target(o), .content_type = mp.content_type()};
    net::Response res = s_.wire().client().upload(req, head.size() + size + tail.size(), source);
    if (res.status / 100 != 2) Wire::fail(res);
    return file_info(json::parse(res.body));
  }

  std::unique_ptr<FileWriter> open_upload(std::string_view name, UploadOptions o,
                                          std::optional<std::uint64_t> expected_size) override {
    s_.check_open();
    validate_file_name(name);
    if (expected_size) check_size(*expected_size);
    return std::make_unique<RemoteWriter>(*this, std::string(name), o);
  }

  std::string download(std::string_view name) override {
    s_.check_open();
    validate_file_name(name);
    return s_.wire().call("GET", named("download", name));
  }

  FileReader open_download(std::string_view name) override {
    s_.check_open();
    validate_file_name(name);
    int fd = temp_file();
    std::uint64_t size = 0;
    try {
      net::Request req{.target = named("download", name)};
      net::Response res = s_.wire().client().stream(req, [&](std::string_view chunk) {
        write_all(fd, chunk);
        size += chunk.size();
        return true;
      });
      if (res.status / 100 != 2) Wire::fail(res);
      if (::lseek(fd, 0, SEEK_SET) < 0) throw_syscall("lseek", errno, "a temporary file");
    } catch (...) {
      ::close(fd);
      throw;
    }
    return FileReader(fd, size);
  }

  std::vector<FileInfo> list() override {
    s_.check_open();
    json j = s_.wire().call_json("GET", s_.path() + "/files/list");
    std::vector<FileInfo> out;
    for (const auto& f : j.value("files", json::array())) out.push_back(file_info(f));
    return out;
  }

  void remove(std::string_view name) override {
    s_.check_open();
    validate_file_name(name);
    s_.wire().call("DELETE", named("delete", name));
  }

  FileInfo stat(std::string_view name) override {
    validate_file_name(name);
    for (auto& f : list())  // the API has no stat route: the listing holds every entry
      if (f.name == name) return f;
    throw Error(errc::not_found, fmt::format("no file '{}'", name));
  }

 private:
  RemoteSession& s_;
};

void RemoteWriter::write(std::string_view chunk) {
  if (committed_) throw Error(errc::failed_precondition, "the upload was committed");
  files_.check_size(size_ + chunk.size());
  write_all(fd_, chunk);
  size_ += chunk.size();
}

FileInfo RemoteWriter::commit() {
  if (committed_) throw Error(errc::failed_precondition, "the upload was committed");
  committed_ = true;
  return files_.send(name_, fd_, size_, options_);
}

ProcessInfo process_info(const json& p) {
  ProcessInfo i;
  i.pid = p.value("pid", 0);
  i.ppid = p.value("ppid", 0);
  i.name = p.value("name", "");
  i.cmdline = p.value("cmdline", "");
  i.state = parse_process_state(p.value("state", ""));
  i.rss_bytes = p.value("rss", std::uint64_t{0});
  i.cpu_time_ms = p.value("cpu_time_ms", std::uint64_t{0});
  i.start_time = p.value("start_time", std::int64_t{0});
  return i;
}

std::chrono::milliseconds seconds(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000)));
}

}  // namespace

Limits limits_from_json(const json& j) {
  Limits l;
  if (!j.is_object()) return l;
  if (j.contains("timeout")) l.timeout = seconds(j["timeout"].get<double>());
  l.memory_bytes = j.value("memory_bytes", l.memory_bytes);
  l.max_processes = j.value("max_processes", l.max_processes);
  l.disk_bytes = j.value("disk_bytes", l.disk_bytes);
  l.output_bytes = j.value("output_bytes", l.output_bytes);
  l.upload_bytes = j.value("upload_bytes", l.upload_bytes);
  if (j.contains("cpu_time")) l.cpu_time = std::chrono::seconds(j["cpu_time"].get<std::int64_t>());
  l.open_files = j.value("open_files", l.open_files);
  l.cpus = j.value("cpus", l.cpus);
  l.result_bytes = j.value("result_bytes", l.result_bytes);
  l.image_bytes = j.value("image_bytes", l.image_bytes);
  l.images_bytes = j.value("images_bytes", l.images_bytes);
  l.history_bytes = j.value("history_bytes", l.history_bytes);
  return l;
}

json limits_request(const Limits& l) {
  const Limits d;
  json j = json::object();
  if (l.timeout != d.timeout) j["timeout"] = static_cast<double>(l.timeout.count()) / 1000;
  if (l.memory_bytes != d.memory_bytes) j["memory_bytes"] = l.memory_bytes;
  if (l.max_processes != d.max_processes) j["max_processes"] = l.max_processes;
  if (l.disk_bytes != d.disk_bytes) j["disk_bytes"] = l.disk_bytes;
  if (l.output_bytes != d.output_bytes) j["output_bytes"] = l.output_bytes;
  if (l.upload_bytes != d.upload_bytes) j["upload_bytes"] = l.upload_bytes;
  if (l.cpu_time != d.cpu_time) j["cpu_time"] = static_cast<double>(l.cpu_time.count());
  if (l.open_files != d.open_files) j["open_files"] = l.open_files;
  if (l.cpus != d.cpus) j["cpus"] = l.cpus;
  if (l.result_bytes != d.result_bytes) j["result_bytes"] = l.result_bytes;
  if (l.image_bytes != d.image_bytes) j["image_bytes"] = l.image_bytes;
  if (l.images_bytes != d.images_bytes) j["images_bytes"] = l.images_bytes;
  if (l.history_bytes != d.history_bytes) j["history_bytes"] = l.history_bytes;
  return j;
}

RemoteSession::RemoteSession(std::shared_ptr<Wire> wire, const json& info)
    : wire_(std::move(wire)),
      id_(info.value("id", "")),
      path_("/" + escape(id_)),
      isolation_(info.value("isolation", "")),
      placement_(info.value("placement", "")),
      limits_(limits_from_json(info.value("limits", json::object()))),
      created_(std::chrono::system_clock::time_point(std::chrono::seconds(info.value("created", std::int64_t{0})))),
      last_used_ns_(now_ns()),
      files_(std::make_unique<RemoteFiles>(*this)) {
  if (id_.empty()) throw Error(errc::internal, "the server's session object has no id");
}

void RemoteSession::check_open() const {
  if (closed_) throw Error(errc::failed_precondition, fmt::format("session '{}' is closed", id_));
  last_used_ns_ = now_ns();
}

SessionStatus RemoteSession::status() const {
  if (closed_) return SessionStatus::closed;
  try {
    json j = wire_->call_json("GET", "/sessions" + path_);
    std::string s = j.value("status", "");
    if (s == "Pending") return SessionStatus::pending;
    if (s == "Closed") return SessionStatus::closed;
    if (s == "Lost") return SessionStatus::lost;
    return SessionStatus::ready;
  } catch (const Error& e) {
    if (e.code_value() == errc::not_found) return SessionStatus::closed;
    if (e.code_value() == errc::session_lost) return SessionStatus::lost;
    throw;
  }
}

std::chrono::steady_clock::time_point RemoteSession::last_used() const {
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(last_used_ns_.load()));
}

Files& RemoteSession::files() { return *files_; }

std::vector<ProcessInfo> RemoteSession::processes() {
  check_open();
  json j = wire_->call_json("GET", path_ + "/processes");
  std::vector<ProcessInfo> out;
  for (const auto& p : j.value("processes", json::array())) out.push_back(process_info(p));
  return out;
}

void RemoteSession::kill(int pid, int signal) {
  check_open();
  if (pid <= 0) throw Error(errc::not_found, fmt::format("no process {} in this session", pid));
  wire_->call("POST", fmt::format("{}/process/kill/{}?signal={}", path_, pid, signal));
}

std::shared_ptr<Execution> RemoteSession::start(ExecRequest req) {
  check_open();
  json body = {{"code", std::move(req.code)}};
  if (!req.stdin_text.empty()) body["stdin"] = std::move(req.stdin_text);
  if (req.timeout) body["timeout"] = static_cast<double>(req.timeout->count()) / 1000;
  if (req.fresh) body["fresh"] = true;
  json started = wire_->call_json("POST", fmt::format("{}/exec/{}", path_, to_string(req.language)),
                                  body.dump(-1, ' ', false, json::error_handler_t::replace));
  return known(started.value("execution_id", ""), req.language);
}

std::shared_ptr<Execution> RemoteSession::known(const std::string& id, Language language) const {
  if (id.empty()) throw Error(errc::internal, "the server named no execution");
  std::lock_guard lock(mu_);
  auto& slot = executions_[id];
  if (auto ex = slot.lock()) return ex;
  std::shared_ptr<Execution> ex = std::make_shared<RemoteExecution>(wire_, path_.substr(1), id, language);
  slot = ex;
  std::erase_if(executions_, [](auto& kv) { return kv.second.expired(); });
  return ex;
}

std::shared_ptr<Execution> RemoteSession::latest() const {
  check_open();
  try {
    Result r = parse_result(wire_->call("GET", path_ + "/result?wait=0&limit=0"));
    return known(r.execution_id, r.language);
  } catch (const Error& e) {
    if (e.code_value() == errc::not_found) return nullptr;
    throw;
  }
}

std::shared_ptr<Execution> RemoteSession::execution(std::string_view id) const {
  check_open();
  // An unknown id is not_found, as the local session says.
  Result r = parse_result(wire_->call(
      "GET", fmt::format("{}/result?wait=0&limit=0&execution_id={}", path_, escape(id))));
  return known(r.execution_id, r.language);
}

void RemoteSession::close() {
  if (closed_.exchange(true)) return;
  try {
    wire_->call("DELETE", "/sessions" + path_);
  } catch (const Error& e) {
    if (e.code_value() != errc::not_found) throw;  // closed meanwhile: nothing left to do
  }
}

}  // namespace sandbox::remote
