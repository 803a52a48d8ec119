// One root layout (lib/isolation/root_layout.hpp), two renderings: the namespaces backend's
// mount steps and runsc's OCI bundle must mount the same things at the same places, with
// the same read-only-ness and the same nosuid/nodev/noexec.
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "isolation/namespaces/namespaces.hpp"
#include "isolation/root_layout.hpp"
#include "isolation/runsc/runsc.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace sandbox::isolation;

namespace {

struct Seen {
  std::string type;  // bind, tmpfs, proc
  bool ro = false, nosuid = false, nodev = false, noexec = false;
  bool operator==(const Seen& o) const {
    return type == o.type && ro == o.ro && nosuid == o.nosuid && nodev == o.nodev && noexec == o.noexec;
  }
};
std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << s.type << (s.ro ? " ro" : " rw") << (s.nosuid ? " nosuid" : "") << (s.nodev ? " nodev" : "")
            << (s.noexec ? " noexec" : "");
}

class RootLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("root-layout-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "workspace");
    fs::create_directories(dir_ / "runtime");
    spec_.session_id = "layout";
    spec_.workspace = dir_ / "workspace";
    spec_.runtime_dir = dir_ / "runtime";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  LaunchSpec spec_;
};

}  // namespace

TEST_F(RootLayoutTest, MountStepsAndTheOciBundleAgree) {
  const std::string root = "/newroot";
  std::map<std::string, Seen> steps;
  std::set<std::string> links, files;
  for (const auto& s : ns::mount::plan(spec_, root)) {
    if (s.target.rfind(root, 0) != 0 || s.target == root) continue;
    const std::string inside = s.target.substr(root.size());
    using K = ns::MountStep::Kind;
    if (s.kind == K::symlink) links.insert(inside);
    if (s.kind == K::file) files.insert(inside);
    if (s.kind != K::bind && s.kind != K::tmpfs && s.kind != K::proc) continue;
    if (s.optional) continue;  // /proc's covers: the namespaces backend's own
    steps[inside] = {s.kind == K::bind ? "bind" : s.kind == K::tmpfs ? "tmpfs" : "proc",
                     s.kind == K::bind ? !s.writable : (s.flags & MS_RDONLY) != 0,
                     (s.flags & MS_NOSUID) != 0, (s.flags & MS_NODEV) != 0, (s.flags & MS_NOEXEC) != 0};
  }
  auto bundle = runsc::write_bundle(spec_, dir_ / "bundle", {.container_id = "layout"});
  std::ifstream in(bundle / "config.json");
  auto config = nlohmann::json::parse(in);
  std::map<std::string, Seen> mounts;
  for (const auto& m : config["mounts"]) {
    Seen seen{m["type"].get<std::string>()};
    for (const auto& o : m["options"]) {
      seen.ro = seen.ro || o == "ro";
      seen.nosuid = seen.nosuid || o == "nosuid";
      seen.nodev = seen.nodev || o == "nodev";
      seen.noexec = seen.noexec || o == "noexec";
    }
    mounts[m["destination"].get<std::string>()] = seen;
  }
  ASSERT_FALSE(mounts.empty());
  // Every mount of the bundle is a step, alike; the steps have only /dev's nodes on top.
  for (const auto& [where, seen] : mounts) {
    ASSERT_TRUE(steps.count(where)) << where << " is in the bundle only";
    EXPECT_EQ(steps[where], seen) << where;
  }
  for (const auto& [where, seen] : steps)
    if (where.rfind("/dev/", 0) != 0 || where == "/dev/shm") {
      EXPECT_TRUE(mounts.count(where)) << where << " is a step only";
    }
  for (const char* where : {"/usr", "/workspace", "/opt/sandbox", "/tmp", "/dev", "/dev/shm", "/proc"})
    EXPECT_TRUE(mounts.count(where)) << where;
  EXPECT_FALSE(mounts["/workspace"].ro);
  EXPECT_TRUE(mounts["/opt/sandbox"].ro);
  // Files and symlinks of the layout are in the bundle's rootfs.
  for (const auto& m : root_layout(spec_, {1, 2, 3}, false)) {
    if (m.kind == RootMount::Kind::file) {
      EXPECT_TRUE(files.count(m.target)) << m.target;
      EXPECT_TRUE(fs::is_regular_file(bundle / "rootfs" / fs::path(m.target).relative_path())) << m.target;
    }
    if (m.kind == RootMount::Kind::symlink) {
      EXPECT_TRUE(links.count(m.target)) << m.target;
      EXPECT_TRUE(fs::is_symlink(bundle / "rootfs" / fs::path(m.target).relative_path())) << m.target;
    }
  }
}
