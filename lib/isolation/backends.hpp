// The backends this build carries; isolation/backend.cpp picks among them.
#pragma once

#include <memory>

#include "sandbox/isolation.hpp"

namespace sandbox::isolation {

std::unique_ptr<Backend> make_rlimit_backend();
std::unique_ptr<Backend> make_namespaces_backend();
std::unique_ptr<Backend> make_runsc_backend();

}  // namespace sandbox::isolation
