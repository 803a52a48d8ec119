// The workspace file API against real files: every name rule, and every trick sandboxed code
// can plant in its workspace (symlinks, symlinked directories, hard links, FIFOs).
#include "sandbox/files.hpp"

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "files_internal.hpp"
#include "sandbox/error.hpp"

namespace fs = std::filesystem;
using sandbox::errc;
using sandbox::FileType;

namespace {

// A temp root holding `ws` (the workspace) and `outside` (what the host must protect).
class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "files_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    ws_ = root_ / "ws";
    outside_ = root_ / "outside";
    fs::create_directory(ws_);
    fs::create_directory(outside_);
    write_file(outside_ / "secret", "top secret");
    files_ = sandbox::make_workspace_files(ws_, kLimit, {});
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  static void write_file(const fs::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary) << data;
  }
  static std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Entries physically present in a directory, temp files included.
  static std::vector<std::string> raw_entries(const fs::path& dir) {
    std::vector<std::string> names;
    for (auto& e : fs::recursive_directory_iterator(dir)) names.push_back(fs::relative(e.path(), dir).string());
    std::sort(names.begin(), names.end());
    return names;
  }
  std::vector<std::string> listed_names() {
    std::vector<std::string> names;
    for (auto& f : files_->list()) names.push_back(f.name);
    return names;
  }

  static constexpr std::uint64_t kLimit = 1 << 20;
  fs::path root_, ws_, outside_;
  std::unique_ptr<sandbox::Files> files_;
};

// Runs `fn` and returns the sandbox::Error code it threw (ok when it did not throw).
errc code_of(const std::function<void()>& fn, std::string* message = nullptr) {
  try {
    fn();
  } catch (const sandbox::Error& e) {
    if (message) *message = e.message();
    return e.code_value();
  }
  return errc::ok;
}

TEST(FileNames, AcceptsCleanRelativePaths) {
  for (std::string_view ok : {"a", "a.txt", "dir/a.csv", "a/b/c/d", ".hidden", "a..b", "...", "x y"}) {
    EXPECT_NO_THROW(sandbox::validate_file_name(ok)) << ok;
  }
  std::string longest;  // 4096 bytes exactly, in components under NAME_MAX
  while (longest.size() + 201 <= 4096) longest += std::string(200, 'a') + "/";
  longest += std::string(4096 - longest.size(), 'b');
  ASSERT_EQ(longest.size(), 4096u);
  EXPECT_NO_THROW(sandbox::validate_file_name(longest));
}

TEST(FileNames, RefusesEscapesAndMalformedNames) {
  std::string long_name;
  while (long_name.size() <= 4096) long_name += "abcdefgh/";
  long_name += "x";
  const std::vector<std::string> bad = {
      "", "..", "../x", "a/../../x", "a/..", "/etc/passwd", "/", "a//b", "a/", "./a", "a/./b", ".",
      std::string("a\0b", 3), long_name, std::string(256, 'n'), ".sandbox-upload-123"};
  for (const auto& name : bad) {
    EXPECT_EQ(code_of([&] { sandbox::validate_file_name(name); }), errc::invalid_argument) << name;
  }
}

TEST_F(FilesTest, EveryOperationRefusesBadNames) {
  for (const std::string& name : std::vector<std::string>{"../outside/secret", "/etc/passwd",
                                                          std::string("a\0b", 3), "a//b"}) {
    EXPECT_EQ(code_of([&] { files_->upload(name, "x"); }), errc::invalid_argument) << name;
    EXPECT_EQ(code_of([&] { files_->open_upload(name); }), errc::invalid_argument) << name;
    EXPECT_EQ(code_of([&] { files_->download(name); }), errc::invalid_argument) << name;
    EXPECT_EQ(code_of([&] { files_->open_download(name); }), errc::invalid_argument) << name;
    EXPECT_EQ(code_of([&] { files_->remove(name); }), errc::invalid_argument) << name;
    EXPECT_EQ(code_of([&] { files_->stat(name); }), errc::invalid_argument) << name;
  }
  EXPECT_EQ(read_file(outside_ / "secret"), "top secret");
}

TEST_F(FilesTest, UploadDownloadRoundTripCreatesDirectories) {
  std::string binary("\0\1\2\xff payload", 12);
  auto info = files_->upload("data/deep/blob.bin", binary);
  EXPECT_EQ(info.name, "data/deep/blob.bin");
  EXPECT_EQ(info.size, binary.size());
  EXPECT_EQ(info.type, FileType::file);
  EXPECT_GT(info.modified, 0);
  EXPECT_EQ(read_file(ws_ / "data/deep/blob.bin"), binary);
  EXPECT_EQ(files_->download("data/deep/blob.bin"), binary);
  EXPECT_EQ(fs::status(ws_ / "data/deep/blob.bin").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);

  auto st = files_->stat("data/deep");
  EXPECT_EQ(st.type, FileType::directory);

  sandbox::FileReader reader = files_->open_download("data/deep/blob.bin");
  EXPECT_EQ(reader.size(), binary.size());
  std::string got(64, '\0');
  std::size_t n = reader.read(got);
  EXPECT_EQ(got.substr(0, n), binary);
  EXPECT_EQ(reader.read(got), 0u);
  sandbox::FileReader moved = std::move(reader);
  EXPECT_EQ(reader.fd(), -1);
  EXPECT_GE(moved.fd(), 0);
}

TEST_F(FilesTest, ListIsRecursiveSortedAndTyped) {
  files_->upload("b.txt", "bb");
  files_->upload("a/z.txt", "z");
  files_->upload("a/y/x.txt", "xxx");
  fs::create_symlink("/etc/passwd", ws_ / "link");
  auto list = files_->list();
  std::vector<std::string> names;
  for (auto& f : list) names.push_back(f.name + ":" + std::string(sandbox::to_string(f.type)));
  EXPECT_EQ(names, (std::vector<std::string>{"a:directory", "a/y:directory", "a/y/x.txt:file",
                                             "a/z.txt:file", "b.txt:file", "link:symlink"}));
  EXPECT_EQ(list[2].size, 3u);
  EXPECT_EQ(files_->list().size(), list.size());
  EXPECT_EQ(code_of([&] { sandbox::make_workspace_files(ws_ / "missing", kLimit, {})->list(); }),
            errc::not_found);
}

TEST_F(FilesTest, OverwriteSemantics) {
  files_->upload("a.txt", "first");
  std::string msg;
  EXPECT_EQ(code_of([&] { files_->upload("a.txt", "second"); }, &msg), errc::already_exists);
  EXPECT_NE(msg.find("a.txt"), std::string::npos) << msg;
  EXPECT_EQ(files_->download("a.txt"), "first");
  EXPECT_EQ(files_->upload("a.txt", "second", {.overwrite = true}).size, 6u);
  EXPECT_EQ(files_->download("a.txt"), "second");

  // A directory is never replaced by an upload.
  files_->upload("d/x", "x");
  EXPECT_EQ(code_of([&] { files_->upload("d", "x", {.overwrite = true}); }), errc::invalid_argument);
  EXPECT_EQ(code_of([&] { files_->upload("d", "x"); }), errc::already_exists);

  // A name that appears while the upload streams: commit() refuses it unless overwrite.
  auto w1 = files_->open_upload("race.txt");
  auto w2 = files_->open_upload("race.txt");
  w1->write("one");
  w2->write("two");
  w1->commit();
  EXPECT_EQ(code_of([&] { w2->commit(); }), errc::already_exists);
  w2.reset();
  EXPECT_EQ(files_->download("race.txt"), "one");
  auto w3 = files_->open_upload("race.txt", {.overwrite = true});
  w3->write("three");
  w3->commit();
  EXPECT_EQ(files_->download("race.txt"), "three");
  EXPECT_EQ(raw_entries(ws_), (std::vector<std::string>{"a.txt", "d", "d/x", "race.txt"}));
}

TEST_F(FilesTest, SymlinkToEtcPasswdIsNeverFollowed) {
  fs::create_symlink("/etc/passwd", ws_ / "passwd");
  std::string msg;
  EXPECT_EQ(code_of([&] { files_->download("passwd"); }, &msg), errc::permission_denied);
  EXPECT_NE(msg.find("symlink"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { files_->open_download("passwd"); }), errc::permission_denied);
  EXPECT_EQ(files_->stat("passwd").type, FileType::symlink);

  // Writing to the name replaces the link itself; the target is untouched.
  fs::create_symlink(outside_ / "secret", ws_ / "secret");
  EXPECT_EQ(code_of([&] { files_->upload("secret", "pwned"); }), errc::already_exists);
  files_->upload("secret", "mine", {.overwrite = true});
  EXPECT_EQ(read_file(outside_ / "secret"), "top secret");
  EXPECT_FALSE(fs::is_symlink(ws_ / "secret"));
  EXPECT_EQ(read_file(ws_ / "secret"), "mine");

  // Removing a symlink removes the link, not its target.
  files_->remove("passwd");
  EXPECT_FALSE(fs::exists(fs::symlink_status(ws_ / "passwd")));
  EXPECT_TRUE(fs::exists("/etc/passwd"));
}

TEST_F(FilesTest, SymlinkedDirectoryIsNeverTraversed) {
  fs::create_directory_symlink(outside_, ws_ / "dir");
  EXPECT_EQ(code_of([&] { files_->download("dir/secret"); }), errc::permission_denied);
  EXPECT_EQ(code_of([&] { files_->stat("dir/secret"); }), errc::permission_denied);
  EXPECT_EQ(code_of([&] { files_->upload("dir/planted", "x"); }), errc::permission_denied);
  EXPECT_EQ(code_of([&] { files_->upload("dir/sub/planted", "x"); }), errc::permission_denied);
  EXPECT_EQ(code_of([&] { files_->remove("dir/secret"); }), errc::permission_denied);
  EXPECT_EQ(listed_names(), std::vector<std::string>{"dir"});
  EXPECT_EQ(raw_entries(outside_), std::vector<std::string>{"secret"});

  // A symlink deeper down, and the whole tree removed: only the workspace side goes.
  files_->upload("tree/a/file", "f");
  fs::create_directory_symlink(outside_, ws_ / "tree/a/escape");
  files_->remove("tree");
  EXPECT_FALSE(fs::exists(ws_ / "tree"));
  files_->remove("dir");
  EXPECT_TRUE(raw_entries(ws_).empty());
  EXPECT_EQ(read_file(outside_ / "secret"), "top secret");
}

TEST_F(FilesTest, HardLinkToOutsideFileIsNeitherReadNorWritten) {
  fs::create_hard_link(outside_ / "secret", ws_ / "stolen");
  std::string msg;
  EXPECT_EQ(code_of([&] { files_->download("stolen"); }, &msg), errc::permission_denied);
  EXPECT_NE(msg.find("hard link"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { files_->open_download("stolen"); }), errc::permission_denied);

  files_->upload("stolen", "overwritten", {.overwrite = true});
  EXPECT_EQ(read_file(outside_ / "secret"), "top secret");
  EXPECT_EQ(fs::hard_link_count(outside_ / "secret"), 1u);
  EXPECT_EQ(files_->download("stolen"), "overwritten");
}

TEST_F(FilesTest, RacingSymlinkSwapNeverEscapes) {
  // Sandboxed code swaps a real directory and a symlink to the outside under one name, as
  // fast as it can, while the host uploads into and downloads from that directory.
  fs::create_directory(ws_ / "d");
  write_file(ws_ / "d/secret", "inside");
  fs::create_directory_symlink(outside_, ws_ / "alt");
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    while (!stop) ::renameat2(AT_FDCWD, (ws_ / "d").c_str(), AT_FDCWD, (ws_ / "alt").c_str(), RENAME_EXCHANGE);
  });
  int downloads = 0, uploads = 0;
  for (int i = 0; i < 2000; ++i) {
    try {
      EXPECT_EQ(files_->download("d/secret"), "inside");
      ++downloads;
    } catch (const sandbox::Error&) {
    }
    try {
      files_->upload("d/f" + std::to_string(i % 4), "x", {.overwrite = true});
      ++uploads;
    } catch (const sandbox::Error&) {
    }
  }
  stop = true;
  swapper.join();
  EXPECT_EQ(raw_entries(outside_), std::vector<std::string>{"secret"});
  EXPECT_EQ(read_file(outside_ / "secret"), "top secret");
  RecordProperty("downloads", downloads);
  RecordProperty("uploads", uploads);
}

TEST_F(FilesTest, OversizedUploadsAreRefusedAndLeaveNothing) {
  std::string big(kLimit + 1, 'x');
  std::string msg;
  EXPECT_EQ(code_of([&] { files_->upload("big", big); }, &msg), errc::resource_exhausted);
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;
  EXPECT_EQ(code_of([&] { files_->open_upload("big", {}, kLimit + 1); }), errc::resource_exhausted);

  // Declared small, streamed big: caught while streaming.
  auto w = files_->open_upload("big", {}, 10);
  w->write(std::string(kLimit, 'x'));
  EXPECT_EQ(code_of([&] { w->write("y"); }), errc::resource_exhausted);
  EXPECT_EQ(code_of([&] { w->commit(); }), errc::failed_precondition);  // never a partial file
  w.reset();
  EXPECT_TRUE(raw_entries(ws_).empty());

  // Exactly the limit is fine.
  EXPECT_EQ(files_->upload("exact", std::string(kLimit, 'x')).size, kLimit);
}

TEST_F(FilesTest, DiscardedWriterLeavesNothing) {
  {
    auto w = files_->open_upload("sub/pending.txt");
    w->write("partial");
    // The in-flight temp file exists but is hidden from list().
    EXPECT_EQ(raw_entries(ws_).size(), 2u);
    EXPECT_EQ(listed_names(), std::vector<std::string>{"sub"});
    EXPECT_EQ(code_of([&] { files_->download("sub/pending.txt"); }), errc::not_found);
  }
  EXPECT_EQ(raw_entries(ws_), std::vector<std::string>{"sub"});

  auto w = files_->open_upload("chunks.txt");
  for (int i = 0; i < 100; ++i) w->write("0123456789");
  auto info = w->commit();
  EXPECT_EQ(info.size, 1000u);
  EXPECT_EQ(code_of([&] { w->commit(); }), errc::failed_precondition);
  w.reset();  // a committed upload stays
  EXPECT_EQ(files_->download("chunks.txt").size(), 1000u);
}

TEST_F(FilesTest, MissingDirectoryAndSpecialFiles) {
  EXPECT_EQ(code_of([&] { files_->download("missing"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { files_->stat("missing"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { files_->remove("missing"); }), errc::not_found);
  EXPECT_EQ(code_of([&] { files_->remove("no/such/dir"); }), errc::not_found);
  files_->upload("d/f", "x");
  EXPECT_EQ(code_of([&] { files_->download("d"); }), errc::invalid_argument);
  // A regular file used as a directory.
  EXPECT_EQ(code_of([&] { files_->upload("d/f/g", "x"); }), errc::invalid_argument);

  // A FIFO must not hang the host.
  ASSERT_EQ(::mkfifo((ws_ / "fifo").c_str(), 0644), 0);
  EXPECT_EQ(code_of([&] { files_->download("fifo"); }), errc::invalid_argument);
  EXPECT_EQ(files_->stat("fifo").type, FileType::other);
  files_->remove("fifo");

  files_->remove("d");
  EXPECT_TRUE(raw_entries(ws_).empty());
}

TEST_F(FilesTest, NewFilesAndDirectoriesBelongToTheOwner) {
  if (::geteuid() != 0) GTEST_SKIP() << "chown needs root";
  auto owned = sandbox::make_workspace_files(ws_, kLimit, std::pair<uid_t, gid_t>{65534, 65533});
  owned->upload("made/by/host.txt", "x");
  for (const char* p : {"made", "made/by", "made/by/host.txt"}) {
    struct stat st {};
    ASSERT_EQ(::lstat((ws_ / p).c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_uid, 65534u) << p;
    EXPECT_EQ(st.st_gid, 65533u) << p;
  }
}

TEST_F(FilesTest, FullDiskIsResourceExhausted) {
  // A tiny tmpfs as the workspace, mounted in a child's private mount namespace.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(77);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
    if (::mount("tmpfs", ws_.c_str(), "tmpfs", 0, "size=64k") != 0) ::_exit(77);
    auto small = sandbox::make_workspace_files(ws_, 10 << 20, {});
    errc code = code_of([&] { small->upload("fill", std::string(1 << 20, 'x')); });
    bool clean = fs::is_empty(ws_);
    ::_exit(code == errc::resource_exhausted && clean ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot mount a tmpfs here (needs CAP_SYS_ADMIN)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a full disk was not reported as resource_exhausted";
}

}  // namespace
