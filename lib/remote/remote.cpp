// sandbox::connect: a server's sessions as Sessions (include/sandbox/remote.hpp).
#include "sandbox/remote.hpp"

#include <fmt/format.h>

#include "remote/remote_session.hpp"

namespace sandbox {
namespace {

using nlohmann::json;

class RemoteServer final : public Remote {
 public:
  RemoteServer(std::string_view url, const ConnectOptions& options)
      : wire_(std::make_shared<remote::Wire>(url, options)) {}

  std::shared_ptr<Session> create_session(SessionOptions opts) override {
    if (!opts.owner.empty())
      throw Error(errc::invalid_argument,
                  "a remote session's owner is the tenant of the token, not an option");
    json body = {{"language", to_string(opts.language)}};
    if (!opts.id.empty()) {
      validate_session_id(opts.id);
      body["id"] = opts.id;
    }
    if (opts.limits) {
      opts.limits->validate();
      json l = remote::limits_request(*opts.limits);
      if (!l.empty()) body["limits"] = std::move(l);
    }
    return made(wire_->call_json("POST", "/sessions", body.dump()));
  }

  std::shared_ptr<Session> session(std::string_view id) override {
    validate_session_id(id);
    return made(wire_->call_json("GET", "/sessions/" + remote::escape(id)));
  }

  std::vector<std::shared_ptr<Session>> sessions() override {
    json j = wire_->call_json("GET", "/sessions");
    std::vector<std::shared_ptr<Session>> out;
    for (const auto& s : j.value("sessions", json::array())) out.push_back(made(s));
    return out;
  }

  void close_session(std::string_view id) override {
    validate_session_id(id);
    wire_->call("DELETE", "/sessions/" + remote::escape(id));
  }

  const std::string& url() const override { return wire_->url(); }

 private:
  std::shared_ptr<Session> made(const json& info) {
    return std::make_shared<remote::RemoteSession>(wire_, info);
  }

  std::shared_ptr<remote::Wire> wire_;
};

}  // namespace

std::unique_ptr<Remote> connect(std::string_view url, ConnectOptions options) {
  // The Client checks the URL and the token rule now; it dials on the first request.
  return std::make_unique<RemoteServer>(url, options);
}

}  // namespace sandbox
