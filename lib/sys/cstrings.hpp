// argv/envp for execve, built before fork: the child between fork and exec must not allocate.
#pragma once

#include <string>
#include <vector>

namespace sandbox::sys {

struct CStrings {
  std::vector<std::string> storage;
  std::vector<char*> ptrs;  // null-terminated, pointing into storage
  explicit CStrings(std::vector<std::string> s) : storage(std::move(s)) {
    for (auto& x : storage) ptrs.push_back(x.data());
    ptrs.push_back(nullptr);
  }
  CStrings(const CStrings&) = delete;  // ptrs point into this object's storage
  CStrings& operator=(const CStrings&) = delete;
};

}  // namespace sandbox::sys
