// http_load: trivial executions per second over HTTP against `sandboxctl serve`, from one
// single-threaded asynchronous client, so the figure measures the server and not the client.
//
//   http_load --port P [--host 127.0.0.1] [--sessions 32] [--seconds 5] [--code '1+1']
//             [--expect 2] [--lang python] [--token-file F] [--max-requests N]
//
// Each session gets one keep-alive connection: POST /sessions, one warm-up execution, then
// (timed, all sessions at once) POST /{sid}/exec/{lang} and GET /{sid}/result?wait= until the
// status is terminal, checking `result`; at the end DELETE /sessions/{sid}. Prints figures and
// a final JSON line; exits 1 if any request failed or nothing ran. Loopback only.
#include <utility>  // before Boost 1.74's asio/awaitable.hpp, which uses std::exchange

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t sessions = 32;
  double seconds = 5;
  std::string code = "1+1";
  std::optional<std::string> expect = "2";
  std::string lang = "python";
  std::string token;
  std::uint64_t max_requests = 10'000'000;  // executions, over all sessions
};

constexpr const char* usage =
    "usage: http_load --port P [--host 127.0.0.1] [--sessions 32] [--seconds 5] [--code '1+1']\n"
    "                 [--expect 2 | --no-expect] [--lang python] [--token-file F]\n"
    "                 [--max-requests N]\n";

// The long-poll a result request asks for, and how many polls one execution may take: a
// trivial execution ends within the first; the cap keeps every loop bounded.
constexpr int kWaitMs = 5000;
constexpr int kMaxPolls = 20;
constexpr auto kIoSlack = std::chrono::seconds(10);
// Sessions created (and closed) at once.
constexpr std::size_t kSetupWidth = 4;

std::uint64_t number(std::string_view flag, std::string_view v) {
  std::uint64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc{} || p != v.data() + v.size())
    throw std::invalid_argument(fmt::format("{} wants a number, not '{}'", flag, v));
  return out;
}

// The token of the first entry of a `serve --token-file` file (`name:token` or a bare token).
std::string read_token(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw std::invalid_argument("cannot read token file " + file);
  std::string line;
  while (std::getline(in, line)) {
    auto trim = [](std::string s) {
      auto b = s.find_first_not_of(" \t\r\n");
      auto e = s.find_last_not_of(" \t\r\n");
      return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
    };
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    auto colon = line.find(':');
    return colon == std::string::npos ? line : trim(line.substr(colon + 1));
  }
  throw std::invalid_argument("token file " + file + " holds no token");
}

Args parse_args(int argc, char** argv) {
  Args a;
  bool have_port = false, code_given = false, expect_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view f = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{} wants a value", f));
      return argv[++i];
    };
    if (f == "--port") {
      auto p = number(f, value());
      if (p == 0 || p > 65535) throw std::invalid_argument("--port is out of range");
      a.port = static_cast<std::uint16_t>(p);
      have_port = true;
    } else if (f == "--host") {
      a.host = value();
    } else if (f == "--sessions") {
      a.sessions = number(f, value());
    } else if (f == "--seconds") {
      a.seconds = static_cast<double>(number(f, value()));
    } else if (f == "--code") {
      a.code = value();
      code_given = true;
    } else if (f == "--expect") {
      a.expect = std::string(value());
      expect_given = true;
    } else if (f == "--no-expect") {
      a.expect.reset();
      expect_given = true;
    } else if (f == "--lang") {
      a.lang = value();
    } else if (f == "--token-file") {
      a.token = read_token(std::string(value()));
    } else if (f == "--max-requests") {
      a.max_requests = number(f, value());
    } else if (f == "--help" || f == "-h") {
      std::fputs(usage, stdout);
      std::exit(0);
    } else {
      throw std::invalid_argument(fmt::format("unknown argument '{}'", f));
    }
  }
  if (!have_port) throw std::invalid_argument("--port is required");
  if (a.sessions == 0 || a.sessions > 4096) throw std::invalid_argument("--sessions: 1 to 4096");
  if (a.seconds <= 0 || a.seconds > 3600) throw std::invalid_argument("--seconds: 1 to 3600");
  // The default expectation belongs to the default code.
  if (code_given && !expect_given) a.expect.reset();
  auto addr = asio::ip::make_address(a.host);
  if (!addr.is_loopback()) throw std::invalid_argument("--host must be a loopback address");
  return a;
}

struct Stats {
  std::uint64_t executions = 0;  // timed, completed with the expected result
  std::uint64_t started = 0;     // timed, submitted (bounded by --max-requests)
  std::uint64_t errors = 0;
  std::vector<double> latency_ms;
  std::string first_error;

  void error(std::string what) {
    if (errors++ == 0) first_error = std::move(what);
  }
};

// One session and its keep-alive connection.
class Client {
 public:
  Client(asio::io_context& ioc, const Args& args, Stats& stats, std::string sid)
      : args_(args), stats_(stats), stream_(ioc), sid_(std::move(sid)) {}

  // Connects, creates the session and runs one untimed execution (the kernel's first
  // execution pays for imports the steady state does not).
  asio::awaitable<void> setup() {
    try {
      co_await connect();
      // Built outside the co_await: GCC 12 rejects brace-initialised temporaries (with string
      // literals) inside a co_await expression ("array used as initializer").
      std::string body = json{{"id", sid_}}.dump();
      auto res = co_await call(http::verb::post, std::string("/sessions"), std::move(body));
      if (res.result_int() != 201) {
        stats_.error(fmt::format("POST /sessions: {} {}", res.result_int(), res.body()));
        co_return;
      }
      created_ = true;
      if (co_await execute()) ready_ = true;
    } catch (const std::exception& e) {
      stats_.error(fmt::format("session {} setup: {}", sid_, e.what()));
      beast::error_code ec;
      stream_.socket().close(ec);  // teardown starts a clean connection
    }
  }

  asio::awaitable<void> run(Clock::time_point deadline) {
    if (!ready_) co_return;
    while (Clock::now() < deadline && stats_.started < args_.max_requests) {
      ++stats_.started;
      auto t0 = Clock::now();
      bool ok = false, broken = false;
      try {
        ok = co_await execute();
      } catch (const std::exception& e) {
        stats_.error(fmt::format("session {}: {}", sid_, e.what()));
        broken = true;
      }
      if (broken) {
        // The connection is in an unknown state (no co_await in a handler): start a new one,
        // or stop this session if the server is gone.
        beast::error_code ec;
        stream_.socket().close(ec);
        bool connected = false;
        try {
          co_await connect();
          connected = true;
        } catch (const std::exception&) {
        }
        if (!connected) co_return;
        continue;
      }
      if (!ok) continue;
      ++stats_.executions;
      stats_.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }

  asio::awaitable<void> teardown() {
    if (!created_) co_return;
    try {
      if (!stream_.socket().is_open()) co_await connect();
      std::string target = "/sessions/" + sid_;
      auto res = co_await call(http::verb::delete_, target, std::string());
      if (res.result_int() != 200)
        stats_.error(fmt::format("DELETE /sessions/{}: {} {}", sid_, res.result_int(), res.body()));
    } catch (const std::exception& e) {
      stats_.error(fmt::format("DELETE /sessions/{}: {}", sid_, e.what()));
    }
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

 private:
  asio::awaitable<void> connect() {
    tcp::endpoint ep(asio::ip::make_address(args_.host), args_.port);
    stream_.expires_after(kIoSlack);
    co_await stream_.async_connect(ep, asio::use_awaitable);
    stream_.socket().set_option(tcp::no_delay(true));
    buffer_.clear();
  }

  // One request and its response on the keep-alive connection; throws on transport errors.
  asio::awaitable<http::response<http::string_body>> call(http::verb verb, const std::string& target,
                                                          std::string body) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, args_.host);
    if (!args_.token.empty()) req.set(http::field::authorization, "Bearer " + args_.token);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = std::move(body);
    }
    req.keep_alive(true);
    req.prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(kWaitMs) + kIoSlack);
    co_await http::async_write(stream_, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream_, buffer_, res, asio::use_awaitable);
    if (!res.keep_alive()) throw std::runtime_error(fmt::format("{} {}: the server closed the connection",
                                                                 std::string(req.method_string()), target));
    co_return res;
  }

  // One execution, submit to terminal result. False (and an error counted) if any step
  // answered otherwise than expected.
  asio::awaitable<bool> execute() {
    auto res = co_await call(http::verb::post, exec_target_, exec_body_);
    if (res.result_int() != 202) {
      stats_.error(fmt::format("POST {}: {} {}", exec_target_, res.result_int(), res.body()));
      co_return false;
    }
    json sub = json::parse(res.body(), nullptr, false);
    if (sub.is_discarded() || !sub.contains("execution_id") || !sub["execution_id"].is_string()) {
      stats_.error(fmt::format("POST {}: no execution_id in {}", exec_target_, res.body()));
      co_return false;
    }
    std::string target = fmt::format("/{}/result?wait={}&execution_id={}", sid_, kWaitMs,
                                     sub["execution_id"].get<std::string>());
    for (int poll = 0; poll < kMaxPolls; ++poll) {
      auto r = co_await call(http::verb::get, target, std::string());
      if (r.result_int() != 200) {
        stats_.error(fmt::format("GET {}: {} {}", target, r.result_int(), r.body()));
        co_return false;
      }
      json j = json::parse(r.body(), nullptr, false);
      if (j.is_discarded() || !j.contains("status") || !j["status"].is_string()) {
        stats_.error(fmt::format("GET {}: not a result: {}", target, r.body()));
        co_return false;
      }
      if (j["status"] == "Running") continue;
      if (j["status"] != "Finished") {
        stats_.error(fmt::format("execution ended {}: {}", j["status"].get<std::string>(), r.body()));
        co_return false;
      }
      if (args_.expect && !(j["result"].is_string() && j["result"] == *args_.expect)) {
        stats_.error(fmt::format("result {} is not '{}'", j["result"].dump(), *args_.expect));
        co_return false;
      }
      co_return true;
    }
    stats_.error(fmt::format("GET {}: still running after {} polls", target, kMaxPolls));
    co_return false;
  }

  const Args& args_;
  Stats& stats_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::string sid_;
  std::string exec_target_ = fmt::format("/{}/exec/{}", sid_, args_.lang);
  std::string exec_body_ = json{{"code", args_.code}}.dump();
  bool created_ = false;
  bool ready_ = false;
};

// Runs `phase` on every client, at most `width` at once, and returns when all have finished.
template <typename Phase>
void run_all(asio::io_context& ioc, std::vector<std::unique_ptr<Client>>& clients, Phase phase,
             std::size_t width) {
  std::size_t next = 0;  // one thread: the workers share it without a lock
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < clients.size()) co_await phase(*clients[next++]);
  };
  for (std::size_t i = 0; i < std::min(width, clients.size()); ++i)
    asio::co_spawn(ioc, worker(), asio::detached);
  ioc.restart();
  ioc.run();
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_load: %s\n%s", e.what(), usage);
    return 2;
  }
  asio::io_context ioc(1);
  Stats stats;
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < args.sessions; ++i)
    clients.push_back(std::make_unique<Client>(ioc, args, stats,
                                               fmt::format("load-{}-{}", ::getpid(), i)));

  // Sessions are created a few at a time: the timed phase is about warm sessions, and a burst
  // of 32 cold kernels on two cores can outlast the backstop (timeout + 5 s) that
  // SessionImpl::start arms at submission, which then restarts the session.
  auto setup_start = Clock::now();
  run_all(ioc, clients, [](Client& c) { return c.setup(); }, kSetupWidth);
  const std::uint64_t setup_errors = stats.errors;
  // Progress on stderr marks the timed phase, for scripts that sample CPU time around it.
  std::fprintf(stderr, "http_load: sessions ready in %.1f s; timed phase starts\n",
               std::chrono::duration<double>(Clock::now() - setup_start).count());
  std::fflush(stderr);
  auto t0 = Clock::now();
  auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args.seconds));
  run_all(ioc, clients, [deadline](Client& c) { return c.run(deadline); }, clients.size());
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::fprintf(stderr, "http_load: timed phase over; closing the sessions\n");
  std::fflush(stderr);
  run_all(ioc, clients, [](Client& c) { return c.teardown(); }, kSetupWidth);

  double rate = elapsed > 0 ? static_cast<double>(stats.executions) / elapsed : 0;
  double p50 = percentile(stats.latency_ms, 0.50), p99 = percentile(stats.latency_ms, 0.99);
  fmt::print("sessions:   {}\n", args.sessions);
  fmt::print("executions: {}\n", stats.executions);
  fmt::print("seconds:    {:.2f}\n", elapsed);
  fmt::print("exec/s:     {:.0f}\n", rate);
  fmt::print("latency:    p50 {:.2f} ms, p99 {:.2f} ms (submit to terminal result)\n", p50, p99);
  fmt::print("errors:     {} ({} in setup){}\n", stats.errors, setup_errors,
             stats.first_error.empty() ? "" : "; first: " + stats.first_error);
  json line = {{"tool", "http_load"},      {"sessions", args.sessions},
               {"executions", stats.executions}, {"seconds", elapsed},
               {"exec_per_s", rate},       {"p50_ms", p50},
               {"p99_ms", p99},            {"errors", stats.errors}};
  fmt::print("{}\n", line.dump());
  std::fflush(stdout);
  return stats.errors == 0 && stats.executions > 0 ? 0 : 1;
}
