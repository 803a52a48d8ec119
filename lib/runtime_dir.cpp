#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>

#include "sandbox/sandbox.hpp"

namespace sandbox {

std::filesystem::path find_runtime_dir(const std::filesystem::path& configured) {
  namespace fs = std::filesystem;
  auto holds_agent = [](const fs::path& dir) {
    std::error_code ec;
    return !dir.empty() && fs::is_regular_file(dir / "sandbox-agent", ec);
  };
  std::vector<fs::path> candidates;
  if (!configured.empty()) {
    if (!holds_agent(configured))
      throw Error(errc::invalid_argument, "runtime dir " + configured.string() + " has no sandbox-agent");
    return fs::absolute(configured);
  }
  if (const char* env = std::getenv("SANDBOX_RUNTIME_DIR"); env && *env) candidates.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path().parent_path() / "libexec" / "sandbox");
    candidates.push_back(exe.parent_path() / "libexec" / "sandbox");
  }
  // Beside the shared library itself (<libdir>/../libexec/sandbox): a consumer's program
  // lives anywhere, and an installed prefix may have been moved.
  Dl_info self{};
  if (::dladdr(reinterpret_cast<void*>(&find_runtime_dir), &self) && self.dli_fname && exe != self.dli_fname)
    candidates.push_back((fs::path(self.dli_fname).parent_path() / SANDBOX_LIB_TO_RUNTIME).lexically_normal());
  candidates.emplace_back(SANDBOX_INSTALL_RUNTIME_DIR);
  candidates.emplace_back(SANDBOX_BUILD_RUNTIME_DIR);
  for (const auto& c : candidates) {
    if (holds_agent(c)) return fs::absolute(c);
  }
  throw Error(errc::unavailable,
              "cannot find the sandbox runtime (sandbox-agent); set SANDBOX_RUNTIME_DIR");
}

}  // namespace sandbox
