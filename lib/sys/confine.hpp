// One confinement plan: what a process gives up before it execs (or, in the Python
// template's fork, before it runs session code). Plain values, filled in before fork or
// clone; confine() reads them and makes raw syscalls only (no allocation, no glibc set*id,
// which would wait for threads a clone()d child does not have).
//
//   sys::Confinement c;
//   c.uid = c.gid = 1000; c.caps = sys::Caps::none; c.pdeathsig = SIGKILL; c.parent = getpid();
//   ... fork() ...
//   sys::ConfineStep failed;
//   if (!sys::confine(c, &failed)) report(failed, errno);
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace sandbox::sys {

struct Rlimit {
  int resource;
  std::uint64_t value;  // soft and hard
};

// The steps of confine(), in the order it takes them; each names a failure.
enum class ConfineStep : int {
  chdir, rlimits, groups, gid, uid, dumpable, capabilities, pdeathsig, setsid, no_new_privs, seccomp,
};
const char* confine_step_name(ConfineStep step);

struct Confinement {
  static constexpr uid_t keep_uid = static_cast<uid_t>(-1);
  static constexpr gid_t keep_gid = static_cast<gid_t>(-1);
  enum class Caps { keep, set };  // keep: leave them alone; set: exactly `keep_caps`

  const char* cwd = nullptr;  // entered after the uid switch (the new uid owns it), or
  bool cwd_before_ids = false;  // first, while only the old ids may enter it
  Rlimit rlimits[8] = {};
  int nrlimits = 0;
  bool set_groups = false;    // supplementary groups := groups[0..ngroups)
  gid_t groups[4] = {};
  int ngroups = 0;
  gid_t gid = keep_gid;       // real, effective and saved
  uid_t uid = keep_uid;
  bool keep_caps_over_uid = false;  // PR_SET_KEEPCAPS: a switch away from root keeps them
  bool dumpable = false;      // undo the non-dumpable a uid switch left (/proc/self stays ours)
  Caps caps = Caps::keep;
  std::uint64_t keep_caps = 0;  // with Caps::set: effective, permitted, inheritable, ambient
  int cap_last = -1;            // >= 0: the bounding set cut down to keep_caps too
  int pdeathsig = 0;          // armed after the uid switch (which clears it), then:
  pid_t parent = 0;           // ... getppid() must still be this, and
  int parent_fd = -1;         // ... polling this must not show `parent_gone`
  short parent_gone = 0;
  bool setsid = false;
  bool no_new_privs = false;
  const sock_filter* filters[2] = {};  // loaded in order, last: nothing after them but exec
  std::size_t filter_lens[2] = {};
};

// Applies `c` to the calling process. False with errno set and *failed naming the step.
bool confine(const Confinement& c, ConfineStep* failed);
// Only the identity part (groups, gid, uid, dumpable): for a child that needs its final
// ids early (files it creates must belong to them) and confines itself later.
bool become(const Confinement& c, ConfineStep* failed);

// Capabilities: bounding set cut to `keep` (needs CAP_SETPCAP), then every set := `keep`.
bool drop_bounding(int cap_last, std::uint64_t keep);
bool set_caps(std::uint64_t keep);
int last_cap();  // /proc/sys/kernel/cap_last_cap (parent side: reads a file)

}  // namespace sandbox::sys
