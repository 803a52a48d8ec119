// Uses an installed libsandbox: a Sandbox runs one shell command in a session, then a
// sandbox::server::Server on an ephemeral port answers one real HTTP request over loopback,
// and a remote session (sandbox::connect) runs code on that server.
// Exit 77 (skipped) when the installed prefix holds no runtime to run code with.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <string>

#include <sandbox/placement.hpp>
#include <sandbox/remote.hpp>
#include <sandbox/sandbox.hpp>
#include <sandbox/server.hpp>

namespace {

// One HTTP/1.1 request on a fresh connection; the whole answer (the server closes it).
std::string http(std::uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return answer;
}

}  // namespace

int main() {
  try {
    try {
      std::cout << "runtime: " << sandbox::find_runtime_dir().string() << '\n';
    } catch (const sandbox::Error& e) {
      std::cout << "no runtime installed, not running code: " << e.message() << '\n';
      return 77;
    }
    for (const auto& b : sandbox::isolation::describe_backends())
      std::cout << "backend " << b.name << ": " << (b.support.available ? "available" : "unavailable") << '\n';
    std::cout << "placement: " << sandbox::placement::to_string(sandbox::placement::Mode::local) << '\n';

    sandbox::Sandbox sb;
    std::cout << "isolation: " << sb.isolation() << '\n';
    auto session = sb.create_session({.language = sandbox::Language::shell});
    auto r = session->run({.language = sandbox::Language::shell, .code = "echo consumer-ok"});
    if (r.stdout_text != "consumer-ok\n") {
      std::cerr << "unexpected stdout: [" << r.stdout_text << "] stderr: [" << r.stderr_text << "]\n";
      return 1;
    }

    sandbox::server::Server server(sb, {.port = 0, .quiet = true});
    server.start();
    std::string answer = http(server.port(), "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if (answer.rfind("HTTP/1.1 200", 0) != 0 || answer.find("\"status\":\"ok\"") == std::string::npos) {
      std::cerr << "unexpected answer from " << server.url() << "/healthz: [" << answer << "]\n";
      return 1;
    }
    std::cout << "server: " << server.url() << " answered /healthz\n";

    // The same server through the remote client: a session there, driven by the Session API.
    auto remote = sandbox::connect(server.url());
    auto rs = remote->create_session({.language = sandbox::Language::shell});
    rs->files().upload("note.txt", "remote-ok\n");
    auto rr = rs->run({.language = sandbox::Language::shell, .code = "cat note.txt"});
    if (rr.stdout_text != "remote-ok\n") {
      std::cerr << "unexpected remote stdout: [" << rr.stdout_text << "] stderr: [" << rr.stderr_text << "]\n";
      return 1;
    }
    remote->close_session(rs->id());
    std::cout << "remote: ran code in " << rs->id() << " through " << remote->url() << '\n';
    server.stop();
    std::cout << "ok\n";
    return 0;
  } catch (const sandbox::Error& e) {
    std::cerr << "error: " << sandbox::to_string(e.code_value()) << ": " << e.message() << '\n';
    return 1;
  }
}
