// The host-side implementation of sandbox::Files over a workspace directory.
//
// Every path is resolved from a dirfd of the workspace with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so nothing sandboxed code
// plants (a symlink, a hard link, a FIFO) makes the host read or write outside the workspace.
//
//   auto files = sandbox::make_workspace_files("/var/lib/sandbox/s1/workspace", 10 << 20, {});
//   files->upload("data/a.csv", "x,y\n");
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include "sandbox/files.hpp"

namespace sandbox {

// Uploads are refused past `upload_limit` bytes. When `owner` is set, new files and
// directories are chowned to it (the uid/gid sandboxed code runs as, so it can use them).
// The workspace directory must exist when the first operation runs.
std::unique_ptr<Files> make_workspace_files(std::filesystem::path workspace,
                                            std::uint64_t upload_limit = 10ull << 20,
                                            std::optional<std::pair<uid_t, gid_t>> owner = {});

// Uploads in flight live under this prefix in their target directory; list() hides them.
inline constexpr std::string_view kUploadTempPrefix = ".sandbox-upload-";

}  // namespace sandbox
