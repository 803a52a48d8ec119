// The one confinement of a session's processes (namespaces.hpp: confinement()): built in
// the parent, applied by sys::confine() in the agent's clone child (contain.cpp) and in a
// kernel forked from the template (template/module.cpp).
#include <signal.h>

#include "isolation/namespaces/namespaces.hpp"

namespace sandbox::isolation::ns {

sys::Confinement confinement(const std::vector<Rlimit>& rlimits, bool agent, bool durable) {
  sys::Confinement c;
  c.cwd = workspace_inside;  // the code's, mode 0700: entered while capabilities allow it
  for (const auto& l : rlimits) {
    if (c.nrlimits == static_cast<int>(std::size(c.rlimits))) throw Error(errc::internal, "too many rlimits");
    c.rlimits[c.nrlimits++] = l;
  }
  // No supplementary groups: host root's would show as the overflow gid.
  c.set_groups = true;
  c.gid = inside_gid;
  c.uid = agent ? agent_inside_uid : inside_uid;
  c.dumpable = true;  // /proc/self stays the uid's, not root's (the agent lists its kernels)
  // The agent keeps CAP_SETUID and CAP_SETPCAP (ambient) for its one switch; code none.
  c.caps = sys::Confinement::Caps::set;
  c.keep_caps = agent ? agent_caps : 0;
  static const int cap_last = sys::last_cap();
  c.cap_last = cap_last;
  c.pdeathsig = durable ? 0 : SIGKILL;
  c.setsid = true;  // no terminal signal from the host reaches it
  c.no_new_privs = true;
  const std::vector<sock_filter>* filters[] = {&seccomp::personality_filter(), &seccomp::filter()};
  for (int i = 0; i < 2; ++i) {
    c.filters[i] = filters[i]->data();
    c.filter_lens[i] = filters[i]->size();
  }
  return c;
}

}  // namespace sandbox::isolation::ns
