// Network: the host's loopback services (TCP, abstract and pathname unix sockets), other
// sessions' ports, anything outside. Only loopback and unroutable documentation addresses
// (RFC 5737) are used: no packet is meant to leave this machine.
#include <fmt/format.h>

#include <thread>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

const char* kConnect = R"(
import socket
got, failed = {}, {}
def reach(name, family, addr, timeout=2.0, kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    s.settimeout(timeout)
    try:
        s.connect(addr)
        try:
            got[name] = s.recv(100).decode("latin-1")[:60] or "connected"
        except OSError:
            got[name] = "connected"
    except Exception as e:
        failed[name] = repr(e)[:100]
    finally:
        s.close()
)";

}  // namespace

TEST_P(Network, HostLoopbackTcp) {
  host::HostServices services(marker_);
  define("PORT", std::to_string(services.port()));
  define("PORT6", std::to_string(services.port6()));
  auto j = py_json(std::string(kConnect) + R"(
reach("127.0.0.1", socket.AF_INET, ("127.0.0.1", @PORT@))
reach("127.1.2.3", socket.AF_INET, ("127.1.2.3", @PORT@))
if @PORT6@:
    reach("::1", socket.AF_INET6, ("::1", @PORT6@))
out(got=got, failed=failed)
)");
  const int accepted = services.accepted();
  verdict(kWalled, "a TCP service on the host's loopback", accepted == 0 && j.is_object() && j["got"].empty(),
          fmt::format("host accepted {} connections; inside: {}", accepted, j.is_object() ? j["got"].dump() : brief(last_)));
}

TEST_P(Network, AbstractUnixSocket) {
  host::HostServices services(marker_);
  define("ABSTRACT", services.abstract_name());
  auto j = py_json(std::string(kConnect) + R"(
reach("abstract", socket.AF_UNIX, "\0@ABSTRACT@")
out(got=got, failed=failed)
)");
  const int accepted = services.accepted();
  verdict(kWalled, "an abstract unix socket of the host", accepted == 0 && j.is_object() && j["got"].empty(),
          fmt::format("host accepted {} connections; inside: {}", accepted, j.is_object() ? j["got"].dump() : brief(last_)));
}

TEST_P(Network, HostUnixSocketPath) {
  host::HostServices services(marker_);
  define("SOCK", services.socket_path());
  auto j = py_json(std::string(kConnect) + R"(
reach("path", socket.AF_UNIX, "@SOCK@")
reach("via /proc/1/root", socket.AF_UNIX, "/proc/1/root@SOCK@")
out(got=got, failed=failed)
)");
  const int accepted = services.accepted();
  verdict(kWalled, "a world-writable unix socket in the host's /tmp", accepted == 0 && j.is_object() && j["got"].empty(),
          fmt::format("host accepted {} connections; inside: {}", accepted, j.is_object() ? j["got"].dump() : brief(last_)));
}

TEST_P(Network, OtherSessionPort) {
  auto a = new_session("A");
  auto listener = start_py(R"(
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(4)
print("PORT", s.getsockname()[1], flush=True)
s.settimeout(6.0)
try:
    c, _ = s.accept()
    c.sendall(b"SESSION-A-SECRET\n")
    print("ACCEPTED", flush=True)
except OSError:
    print("NOBODY", flush=True)
)", 10s, a.get());
  int port = 0;
  for (int i = 0; i < 100 && !port && !listener->done(); ++i) {
    auto snap = listener->snapshot();
    auto pos = snap.stdout_text.find("PORT ");
    if (pos != std::string::npos && snap.stdout_text.find('\n', pos) != std::string::npos)
      port = std::stoi(snap.stdout_text.substr(pos + 5));
    else
      listener->wait_change(snap.stdout_total, snap.stderr_total, 100ms);
  }
  ASSERT_GT(port, 0) << "session A never listened: " << brief(listener->snapshot());
  define("PORT", std::to_string(port));
  auto j = py_json(std::string(kConnect) + R"(
reach("A's port", socket.AF_INET, ("127.0.0.1", @PORT@))
out(got=got, failed=failed)
)");
  listener->cancel();
  auto ra = listener->wait();
  const bool accepted = ra.stdout_text.find("ACCEPTED") != std::string::npos;
  verdict(kWalled, "another session's listening port", !accepted && j.is_object() && j["got"].empty(),
          fmt::format("A {}; inside B: {}", accepted ? "accepted B" : "saw nobody",
                      j.is_object() ? j["got"].dump() : brief(last_)));
}

TEST_P(Network, UnroutableAddress) {
  // Refused at once (no route, no interface) is contained; a timeout means the packet left.
  auto j = py_json(std::string(kConnect) + R"(
import time
t0 = time.time()
reach("192.0.2.1:80", socket.AF_INET, ("192.0.2.1", 80), timeout=1.5)
reach("198.51.100.7:53", socket.AF_INET, ("198.51.100.7", 53), timeout=1.5)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", ("203.0.113.9", 53))
        return "sent"
    finally:
        s.close()
try:
    got["udp 203.0.113.9:53"] = udp()
except OSError as e:
    failed["udp"] = repr(e)
out(got=got, failed=failed, timeouts=[k for k, v in failed.items() if "timed out" in v])
)", 8s);
  const bool ok = j.is_object() && j["got"].empty() && j["timeouts"].empty();
  verdict(kWalled, "any address outside the machine", ok,
          j.is_object() ? fmt::format("reached {}; timed out (packets left) {}; refused {}", j["got"].dump(),
                                      j["timeouts"].dump(), j["failed"].dump())
                        : brief(last_));
}

TEST_P(Network, Interfaces) {
  auto j = py_json(R"(
import socket
out(names=[n for _, n in socket.if_nameindex()])
)");
  bool only_lo = j.is_object() && j["names"].size() <= 1;
  if (only_lo && !j["names"].empty()) only_lo = j["names"][0] == "lo";
  verdict(kWalled, "network interfaces other than loopback", only_lo,
          j.is_object() ? "interfaces " + j["names"].dump() : brief(last_));
}

TEST_P(Network, RawSocket) {
  auto j = py_json(R"(
import socket
got, failed = {}, {}
for name, args in [("raw icmp", (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
                   ("packet", (socket.AF_PACKET, socket.SOCK_RAW, 0x0300))]:
    try:
        socket.socket(*args).close()
        got[name] = "opened"
    except OSError as e:
        failed[name] = repr(e)
out(got=got, failed=failed)
)");
  verdict(kAll, "raw and packet sockets", j.is_object() && j["got"].empty(),
          j.is_object() ? "opened " + j["got"].dump() : brief(last_));
}

}  // namespace hostile
