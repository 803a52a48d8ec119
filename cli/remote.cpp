// sandboxctl session|exec|files|ps|kill: a small HTTP client for `sandboxctl serve`.
// Every answer that is not 2xx becomes the sandbox::Error its body names, so exit codes
// come from the same vocabulary as local commands.
#include <fmt/core.h>

#include <limits>
#include <utility>  // Boost 1.74's asio needs std::exchange declared first

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "sandbox/error.hpp"

namespace sandbox::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

constexpr const char* remote_usage = R"(usage: sandboxctl <command> [--server URL] [--token T] ...

  session create [--id ID] [--language python|nodejs|shell]
  session list
  session delete SID
  exec SID [--language L] [--timeout S] [--stdin TEXT] [--json] (-c CODE | FILE | -)
  files put SID LOCAL [NAME] [--overwrite]
  files get SID NAME [LOCAL]          (LOCAL omitted or '-': stdout)
  files list SID
  files delete SID NAME
  ps SID
  kill SID PID

--server defaults to $SANDBOX_SERVER or http://127.0.0.1:8080; --token to $SANDBOX_TOKEN.
)";

[[noreturn]] void usage_error(const std::string& msg) {
  throw Error(errc::invalid_argument, msg + " (see sandboxctl <command> --help)");
}

errc errc_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(errc::internal); ++i)
    if (to_string(static_cast<errc>(i)) == name) return static_cast<errc>(i);
  return errc::internal;
}

class Remote {
 public:
  Remote(std::string url, std::string token) : token_(std::move(token)), socket_(ioc_) {
    std::string_view u = url;
    if (u.substr(0, 7) != "http://") usage_error("--server wants http://HOST:PORT");
    u.remove_prefix(7);
    u = u.substr(0, u.find('/'));
    auto colon = u.rfind(':');
    std::string host(u.substr(0, colon)), port = colon == std::string_view::npos ? "80" : std::string(u.substr(colon + 1));
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    host_ = host;
    tcp::resolver resolver(ioc_);
    beast::error_code ec;
    auto results = resolver.resolve(host, port, ec);
    if (!ec) asio::connect(socket_, results, ec);
    if (ec) throw Error(errc::unavailable, fmt::format("cannot reach {}: {}", url, ec.message()));
  }

  // Sends a request; returns the body of a 2xx answer, throws the error of any other.
  std::string call(http::verb method, const std::string& target, std::string body = {},
                   std::string content_type = "application/json") {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_);
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!body.empty()) req.set(http::field::content_type, content_type);
    req.body() = std::move(body);
    req.prepare_payload();
    http::write(socket_, req);
    http::response_parser<http::string_body> p;
    p.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read(socket_, buffer_, p);
    auto& res = p.get();
    if (res.result_int() / 100 == 2) return std::move(res.body());
    auto j = json::parse(res.body(), nullptr, false);
    if (j.is_object() && j.contains("error"))
      throw Error(errc_named(j["error"].value("code", "internal")),
                  j["error"].value("message", std::string("request failed")));
    throw Error(errc::internal, fmt::format("HTTP {}: {}", res.result_int(), res.body()));
  }
  json call_json(http::verb m, const std::string& t, std::string body = {}) {
    return json::parse(call(m, t, std::move(body)));
  }

 private:
  std::string token_;
  std::string host_;
  asio::io_context ioc_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
};

std::string read_file(const std::string& path) {
  if (path == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(errc::not_found, "cannot read " + path);
  return {std::istreambuf_iterator<char>(in), {}};
}

int print_result(const json& r, bool as_json) {
  if (as_json) {
    fmt::print("{}\n", r.dump());
  } else {
    fmt::print("{}", r.value("stdout", ""));
    fmt::print(stderr, "{}", r.value("stderr", ""));
    if (r.contains("result") && r["result"].is_string()) fmt::print("{}\n", r["result"].get<std::string>());
    if (r.contains("error") && r["error"].is_object())
      fmt::print(stderr, "{}", r["error"].value("traceback", ""));
  }
  std::string status = r.value("status", "");
  if (status == "Finished") return 0;
  if (status == "Timeout") return 8;
  return 1;
}

}  // namespace

int remote_main(std::string_view command, int argc, char** argv) {
  std::string server = std::getenv("SANDBOX_SERVER") ? std::getenv("SANDBOX_SERVER") : "http://127.0.0.1:8080";
  std::string token = std::getenv("SANDBOX_TOKEN") ? std::getenv("SANDBOX_TOKEN") : "";
  std::vector<std::string> pos;
  std::string id, language = "python", code, stdin_text, timeout;
  bool have_code = false, as_json = false, overwrite = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(fmt::format("{} wants a value", a));
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      fmt::print("{}", remote_usage);
      return 0;
    } else if (a == "--server") server = value();
    else if (a == "--token") token = value();
    else if (a == "--id") id = value();
    else if (a == "--language") language = value();
    else if (a == "--timeout") timeout = value();
    else if (a == "--stdin") stdin_text = value();
    else if (a == "-c") code = value(), have_code = true;
    else if (a == "--json") as_json = true;
    else if (a == "--overwrite") overwrite = true;
    else if (a.size() > 1 && a.front() == '-') usage_error(fmt::format("unknown option '{}'", a));
    else pos.emplace_back(a);
  }
  auto need = [&](std::size_t n, const char* what) {
    if (pos.size() < n) usage_error(fmt::format("{} wants {}", command, what));
  };
  Remote r(server, token);
  using http::verb;

  if (command == "session") {
    need(1, "create|list|delete");
    if (pos[0] == "create") {
      json body = json::object();
      if (!id.empty()) body["id"] = id;
      body["language"] = language;
      fmt::print("{}\n", r.call_json(verb::post, "/sessions", body.dump()).dump(2));
    } else if (pos[0] == "list") {
      json list = r.call_json(verb::get, "/sessions");
      for (auto& s : list["sessions"])
        fmt::print("{}\t{}\t{}\n", s.value("id", ""), s.value("status", ""), s.value("placement", ""));
    } else if (pos[0] == "delete") {
      need(2, "a session id");
      r.call(verb::delete_, "/sessions/" + pos[1]);
    } else {
      usage_error("session wants create|list|delete");
    }
    return 0;
  }
  if (command == "exec") {
    need(1, "a session id");
    if (!have_code) {
      need(2, "-c CODE, a file or -");
      code = read_file(pos[1]);
    }
    json body = {{"code", code}};
    if (!stdin_text.empty()) body["stdin"] = stdin_text;
    if (!timeout.empty()) body["timeout"] = std::stod(timeout);
    auto started = r.call_json(verb::post, fmt::format("/{}/exec/{}", pos[0], language), body.dump());
    std::string eid = started.value("execution_id", "");
    while (true) {
      auto res = r.call_json(verb::get, fmt::format("/{}/result?wait=30000&execution_id={}", pos[0], eid));
      if (res.value("status", "") != "Running") return print_result(res, as_json);
    }
  }
  if (command == "files") {
    need(2, "put|get|list|delete and a session id");
    const std::string& sid = pos[1];
    if (pos[0] == "list") {
      json list = r.call_json(verb::get, "/" + sid + "/files/list");
      for (auto& f : list["files"])
        fmt::print("{}\t{}\t{}\n", f.value("type", ""), f.value("size", 0), f.value("name", ""));
    } else if (pos[0] == "put") {
      need(3, "a local file");
      std::string local = pos[2];
      std::string name = pos.size() > 3 ? pos[3] : local.substr(local.rfind('/') + 1);
      std::string boundary = fmt::format("sandboxctl-{:016x}", std::random_device{}() * 2654435761ull);
      std::string body = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" +
                         name + "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + read_file(local) +
                         "\r\n--" + boundary + "--\r\n";
      auto info = json::parse(r.call(verb::post, "/" + sid + "/files/upload" + (overwrite ? "?overwrite=true" : ""),
                                     std::move(body), "multipart/form-data; boundary=" + boundary));
      fmt::print("{}\t{}\n", info.value("name", ""), info.value("size", 0));
    } else if (pos[0] == "get") {
      need(3, "a file name");
      std::string data = r.call(verb::get, "/" + sid + "/files/download/" + pos[2]);
      if (pos.size() > 3 && pos[3] != "-") {
        std::ofstream(pos[3], std::ios::binary) << data;
      } else {
        std::fwrite(data.data(), 1, data.size(), stdout);
      }
    } else if (pos[0] == "delete") {
      need(3, "a file name");
      r.call(verb::delete_, "/" + sid + "/files/delete/" + pos[2]);
    } else {
      usage_error("files wants put|get|list|delete");
    }
    return 0;
  }
  if (command == "ps") {
    need(1, "a session id");
    fmt::print("{:>7} {:>7} {:>2} {:>10} {}\n", "PID", "PPID", "S", "RSS", "CMD");
    json list = r.call_json(verb::get, "/" + pos[0] + "/processes");
    for (auto& p : list["processes"])
      fmt::print("{:>7} {:>7} {:>2} {:>10} {}\n", p.value("pid", 0), p.value("ppid", 0),
                 p.value("state", ""), p.value("rss", 0), p.value("cmdline", ""));
    return 0;
  }
  if (command == "kill") {
    need(2, "a session id and a pid");
    r.call(verb::post, "/" + pos[0] + "/process/kill/" + pos[1]);
    return 0;
  }
  usage_error(fmt::format("unknown command '{}'", command));
}

}  // namespace sandbox::cli
