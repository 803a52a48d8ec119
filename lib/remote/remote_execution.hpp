// remote/remote_execution.hpp: an Execution that runs on a server, observed over HTTP.
//
// wait()/wait_for() long-poll GET /{sid}/result?wait=; wait_change() and subscribe() read
// the execution's event stream (GET /{sid}/stream) on a thread of their own, started on
// first use, so output is seen as it arrives. The final result is kept once known.
#pragma once
#include <memory>
#include <string>

#include "remote/wire.hpp"
#include "sandbox/execution.hpp"

namespace sandbox::remote {

class RemoteExecution final : public Execution {
 public:
  // `session` is the escaped session id, as it goes into a path.
  RemoteExecution(std::shared_ptr<Wire> wire, std::string session, std::string id, Language language);
  ~RemoteExecution() override;

  const std::string& id() const override { return id_; }
  Language language() const override { return language_; }
  Status status() const override;
  bool done() const override;
  Result snapshot(Page page = {}) const override;
  Result wait() override;
  bool wait_for(std::chrono::milliseconds d) override;
  bool wait_change(std::uint64_t stdout_size, std::uint64_t stderr_size,
                   std::chrono::milliseconds d) override;
  std::uint64_t add_subscriber(std::function<void()> fn) override;
  void remove_subscriber(std::uint64_t token) noexcept override;
  void cancel() override;

  struct State;  // shared with the event-stream thread

 private:
  std::string result_target(std::string_view query) const;
  // GET /{sid}/result for this execution; a finished answer covering whole streams is kept.
  Result fetch(Page page, std::chrono::milliseconds wait) const;
  void watch();  // starts the event-stream thread unless it runs

  std::shared_ptr<Wire> wire_;
  const std::string session_, id_;
  const Language language_;
  std::shared_ptr<State> state_;
};

}  // namespace sandbox::remote
