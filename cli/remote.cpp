// sandboxctl session|exec|files|ps|kill: the client commands, over sandbox::connect() (the
// library's RemoteSession), so errors and exit codes come from the same vocabulary as local
// commands, and http:// and https:// (--ca-file, --insecure) work alike.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.hpp"
#include "sandbox/error.hpp"
#include "sandbox/remote.hpp"

namespace sandbox::cli {
namespace {

using nlohmann::json;

// The options every client command takes.
struct ClientArgs {
  std::string server = "http://127.0.0.1:8080", token, ca_file;
  bool insecure = false;

  std::unique_ptr<Remote> connect() const {
    ConnectOptions o;
    o.token = token;
    o.ca_file = ca_file;
    o.verify_tls = !insecure;
    return sandbox::connect(server, o);
  }
};

void client_options(CLI::App* c, ClientArgs& a) {
  c->add_option("--server", a.server, "the server's URL (http:// or https://)")
      ->envname("SANDBOX_SERVER")->capture_default_str();
  c->add_option("--token", a.token, "bearer token")->envname("SANDBOX_TOKEN");
  c->add_option("--ca-file", a.ca_file, "PEM bundle to verify https against (default: the system's)")
      ->type_name("FILE");
  c->add_flag("--insecure", a.insecure, "do not verify the server's certificate (tests only)");
}

std::string read_file(const std::string& path) {
  if (path == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(errc::not_found, "cannot read " + path);
  return {std::istreambuf_iterator<char>(in), {}};
}

int print_result(const Result& r, bool as_json) {
  if (as_json) {
    fmt::print("{}\n", to_json(r));
  } else {
    std::fwrite(r.stdout_text.data(), 1, r.stdout_text.size(), stdout);
    std::fwrite(r.stderr_text.data(), 1, r.stderr_text.size(), stderr);
    if (r.result) fmt::print("{}\n", *r.result);
    if (r.error) fmt::print(stderr, "{}", r.error->traceback);
  }
  if (r.status == Status::finished) return 0;
  if (r.status == Status::timeout) return 8;
  return 1;
}

json session_json(const Session& s) {
  return {{"id", s.id()},
          {"status", to_string(s.status())},
          {"placement", s.placement()},
          {"isolation", s.isolation()}};
}

struct Args {
  std::string sid, name, local, language = "python", code, file, timeout, stdin_text, id;
  int pid = 0, signal = 9;
  bool as_json = false, overwrite = false;
};

// Registers a client subcommand whose action gets the server and the parsed arguments.
template <typename Fn>
CLI::App* command(CLI::App& parent, const char* name, const char* what, std::shared_ptr<Args> a,
                  int& exit_code, Fn fn) {
  auto* c = parent.add_subcommand(name, what);
  // Each command its own: CLI11 fills an option's variable from its environment variable
  // for every subcommand, parsed or not, which would overwrite a shared one.
  auto client = std::make_shared<ClientArgs>();
  client_options(c, *client);
  c->callback([a, client, &exit_code, fn] { exit_code = fn(*a, *client->connect()); });
  return c;
}

}  // namespace

void add_remote(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<Args>();

  auto* session = app.add_subcommand("session", "Create, list or delete a session on a server");
  session->require_subcommand(1);
  auto* create = command(*session, "create", "Create a session", a, exit_code, [](Args& x, Remote& r) {
    auto s = r.create_session({.id = x.id, .language = parse_language(x.language)});
    fmt::print("{}\n", session_json(*s).dump(2));
    return 0;
  });
  create->add_option("--id", a->id, "the session id (default: generated)");
  create->add_option("--language", a->language, "the kernel to warm first: python, nodejs or shell")->capture_default_str();
  command(*session, "list", "List your sessions", a, exit_code, [](Args&, Remote& r) {
    for (auto& s : r.sessions()) fmt::print("{}\t{}\t{}\n", s->id(), to_string(s->status()), s->placement());
    return 0;
  });
  command(*session, "delete", "Close a session and remove its workspace", a, exit_code, [](Args& x, Remote& r) {
    r.close_session(x.sid);
    return 0;
  })->add_option("sid", a->sid, "the session id")->required();

  auto* exec = command(app, "exec", "Run code in a session (created if missing) and print the result", a,
                       exit_code, [](Args& x, Remote& r) {
    ExecRequest req{.language = parse_language(x.language), .stdin_text = x.stdin_text};
    if (!x.code.empty()) req.code = x.code;
    else if (!x.file.empty()) req.code = read_file(x.file);
    else throw Error(errc::invalid_argument, "exec wants -c CODE, a file or - (see sandboxctl exec --help)");
    if (!x.timeout.empty())
      req.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(std::stod(x.timeout) * 1000));
    std::shared_ptr<Session> s;
    try {
      s = r.session(x.sid);
    } catch (const Error& e) {
      if (e.code_value() != errc::not_found) throw;
      s = r.create_session({.id = x.sid, .language = req.language});
    }
    return print_result(s->run(std::move(req)), x.as_json);
  });
  exec->add_option("sid", a->sid, "the session id")->required();
  exec->add_option("file", a->file, "a file of code, or - for standard input")->type_name("FILE");
  exec->add_option("-c", a->code, "the code")->type_name("CODE");
  exec->add_option("--language", a->language, "python, nodejs or shell")->capture_default_str();
  exec->add_option("--timeout", a->timeout, "seconds for this run (default: the session's)")->type_name("S");
  exec->add_option("--stdin", a->stdin_text, "text given to the code as its standard input");
  exec->add_flag("--json", a->as_json, "print the result object as JSON");

  auto* files = app.add_subcommand("files", "Put, get, list or delete files of a session");
  files->require_subcommand(1);
  auto* put = command(*files, "put", "Upload a local file (streamed)", a, exit_code, [](Args& x, Remote& r) {
    std::string name = x.name.empty() ? x.local.substr(x.local.rfind('/') + 1) : x.name;
    auto s = r.session(x.sid);
    std::ifstream in(x.local, std::ios::binary);
    if (!in) throw Error(errc::not_found, "cannot read " + x.local);
    auto w = s->files().open_upload(name, {.overwrite = x.overwrite});
    std::vector<char> buf(256 * 1024);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
      w->write(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
    FileInfo info = w->commit();
    fmt::print("{}\t{}\n", info.name, info.size);
    return 0;
  });
  put->add_option("sid", a->sid, "the session id")->required();
  put->add_option("local", a->local, "the local file")->required();
  put->add_option("name", a->name, "its name in the workspace (default: the local file's)");
  put->add_flag("--overwrite", a->overwrite, "replace an existing file");
  auto* get = command(*files, "get", "Download a file (to LOCAL, or standard output)", a, exit_code,
                      [](Args& x, Remote& r) {
    FileReader rd = r.session(x.sid)->files().open_download(x.name);
    std::ofstream out;
    bool to_stdout = x.local.empty() || x.local == "-";
    if (!to_stdout) out.open(x.local, std::ios::binary);
    std::vector<char> buf(256 * 1024);
    while (std::size_t n = rd.read(buf)) {
      if (to_stdout) std::fwrite(buf.data(), 1, n, stdout);
      else out.write(buf.data(), static_cast<std::streamsize>(n));
    }
    return 0;
  });
  get->add_option("sid", a->sid, "the session id")->required();
  get->add_option("name", a->name, "the file's name in the workspace")->required();
  get->add_option("local", a->local, "where to write it ('-' or omitted: standard output)");
  command(*files, "list", "List the workspace", a, exit_code, [](Args& x, Remote& r) {
    for (auto& f : r.session(x.sid)->files().list()) fmt::print("{}\t{}\t{}\n", to_string(f.type), f.size, f.name);
    return 0;
  })->add_option("sid", a->sid, "the session id")->required();
  auto* del = command(*files, "delete", "Delete a file", a, exit_code, [](Args& x, Remote& r) {
    r.session(x.sid)->files().remove(x.name);
    return 0;
  });
  del->add_option("sid", a->sid, "the session id")->required();
  del->add_option("name", a->name, "the file's name in the workspace")->required();

  command(app, "ps", "List a session's processes", a, exit_code, [](Args& x, Remote& r) {
    fmt::print("{:>7} {:>7} {:>2} {:>10} {}\n", "PID", "PPID", "S", "RSS", "CMD");
    for (auto& p : r.session(x.sid)->processes())
      fmt::print("{:>7} {:>7} {:>2} {:>10} {}\n", p.pid, p.ppid, to_string(p.state), p.rss_bytes, p.cmdline);
    return 0;
  })->add_option("sid", a->sid, "the session id")->required();
  auto* kill = command(app, "kill", "Send a signal to a process of a session", a, exit_code, [](Args& x, Remote& r) {
    r.session(x.sid)->kill(x.pid, x.signal);
    return 0;
  });
  kill->add_option("sid", a->sid, "the session id")->required();
  kill->add_option("pid", a->pid, "the pid, as the session sees it")->required();
  kill->add_option("--signal", a->signal, "the signal number")->capture_default_str();
}

}  // namespace sandbox::cli
