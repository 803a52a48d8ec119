// The seccomp allowlist on the namespaces backend, through the real agent: Python kernels
// forked from the template (which loads the filters itself, template/module.cpp), and
// python3, node and shells the agent starts (which inherit the agent's, contain.cpp).
// A syscall not on the list is refused by the filter (EPERM), not answered by the kernel;
// what Docker's default profile refuses stays refused; and real workloads still run.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "isolation/backends.hpp"
#include "sandbox/sandbox.hpp"

namespace fs = std::filesystem;
using namespace sandbox;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

// Python: sc(nr, args...) is the errno of the raw syscall (0 when it succeeded);
// child(fn) runs fn in a fork and gives its exit code: fn's errno, or -signal if the
// filter killed it. Calls that would change the caller (namespaces, personality, clone)
// run in a child so that a filter letting them through cannot break the session.
constexpr const char* kHarness = R"(import ctypes, json, os
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def sc(*args):
    ctypes.set_errno(0)
    r = _libc.syscall(*[ctypes.c_long(a) for a in args])
    return ctypes.get_errno() if r == -1 else 0
def child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn() & 0xff)
        except BaseException:
            os._exit(250)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
buf = ctypes.create_string_buffer(256)
p = ctypes.addressof(buf)
zero_buf = ctypes.create_string_buffer(16)  # an rlimit of 0: prlimit64's new limit
zero = ctypes.addressof(zero_buf)
results = {}
)";

// Syscalls the host kernel knows (Linux 6.13-6.17) that are not on the list, called with
// arguments that make a kernel fail at once: fd -1, null pointers.
const std::map<std::string, long> kNewer = {
    {"setxattrat", 463}, {"getxattrat", 464}, {"listxattrat", 465}, {"removexattrat", 466},
    {"open_tree_attr", 467}, {"file_getattr", 468}, {"file_setattr", 469},
};

class SeccompTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto backend = isolation::make_namespaces_backend();
    auto support = backend->probe();
    if (!support.available) GTEST_SKIP() << "namespaces backend unavailable: " << support.reason;
#if !defined(__x86_64__)
    GTEST_SKIP() << "the syscall numbers here are x86_64's";
#endif
    Options o;
    o.isolation = "namespaces";
    o.limits.timeout = 120s;
    sb_ = std::make_unique<Sandbox>(o);
    session_ = sb_->create_session({});
  }

  // Runs harness + code in the session's Python kernel and returns `results`.
  Json probe(const std::string& code) {
    Result r = session_->run({.code = std::string(kHarness) + code + "\nprint(json.dumps(results))\n"});
    EXPECT_EQ(r.status, Status::finished) << to_json(r);
    return last_json_line(r);
  }
  // The same from a python3 the shell starts: the agent's filter, inherited.
  Json probe_via_shell(const std::string& code) {
    Result r = session_->run({.language = Language::shell,
                              .code = "python3 - <<'EOF'\n" + std::string(kHarness) + code +
                                      "\nprint(json.dumps(results))\nEOF\n"});
    EXPECT_EQ(r.status, Status::finished) << to_json(r);
    return last_json_line(r);
  }
  static Json last_json_line(const Result& r) {
    auto text = r.stdout_text;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    auto nl = text.rfind('\n');
    try {
      return Json::parse(nl == std::string::npos ? text : text.substr(nl + 1));
    } catch (const std::exception&) {
      ADD_FAILURE() << "no report: " << to_json(r);
      return Json::object();
    }
  }

  std::unique_ptr<Sandbox> sb_;
  std::shared_ptr<Session> session_;
};

// Every entry of `j` has the errno `want` (as a number: 1 EPERM, 38 ENOSYS, 0 success).
void expect_all(const Json& j, int want, const char* where) {
  ASSERT_TRUE(j.is_object() && !j.empty()) << where << ": " << j.dump();
  for (auto& [name, got] : j.items())
    EXPECT_EQ(got, want) << where << ": " << name << " gave " << got.dump() << " (want " << want << ")";
}

TEST_F(SeccompTest, SyscallsNotOnTheListAreRefusedByTheFilterNotTheKernel) {
  std::string code;
  for (auto& [name, nr] : kNewer) code += "results['" + name + "'] = sc(" + std::to_string(nr) + ", -1, 0, 0, 0, 0)\n";
  // Numbers no kernel has yet, and the largest a filter sees.
  code += "results['500'] = sc(500)\nresults['1023'] = sc(1023)\n";
  // Known to the kernel and allowed by Docker, but nothing here needs them.
  code += R"(
results['cachestat'] = sc(451, -1, 0, 0, 0)
results['mseal (len 0)'] = sc(462, 0, 0, 0)
results['get_robust_list'] = sc(274, 0, p, p + 8)
results['modify_ldt read'] = sc(154, 0, p, 16)
results['io_setup'] = sc(206, 1, p)
results['mq_open'] = sc(240, 0, 0, 0, 0)
results['memfd_secret'] = sc(447, 0)
results['name_to_handle_at'] = sc(303, -100, 0, 0, 0, 0)
results['remap_file_pages'] = sc(216, 0, 0, 0, 0, 0)
results['adjtimex read'] = sc(159, p)
results['io_uring_setup'] = sc(425, 1, p)
)";
  Json j = probe(code);
  expect_all(j, EPERM, "forked Python kernel");
  expect_all(probe_via_shell(code), EPERM, "python3 under the agent");

  // Outside, the same calls reach the kernel and get its own answer.
  for (auto& [name, nr] : kNewer) {
    errno = 0;
    long r = ::syscall(nr, -1L, 0L, 0L, 0L, 0L);
    EXPECT_TRUE(r == -1 && errno != EPERM) << name << " on the host: " << r << " errno " << errno
                                           << " (the comparison needs a host answer other than EPERM)";
  }
  errno = 0;
  EXPECT_EQ(::syscall(500L), -1);
  EXPECT_EQ(errno, ENOSYS) << "the host kernel has no syscall 500";
}

TEST_F(SeccompTest, WhatDockerRefusesIsRefused) {
  const std::string code = R"(
for name, args in {
    'keyctl': (250, 1, 0), 'add_key': (248, 0, 0, 0, 0, 0), 'request_key': (249, 0, 0, 0, 0),
    'bpf': (321, 0, p, 64), 'perf_event_open': (298, p, 0, -1, -1, 0), 'userfaultfd': (323, 0),
    'mount': (165, 0, 0, 0, 0, 0), 'umount2': (166, 0, 0), 'pivot_root': (155, 0, 0),
    'chroot': (161, 0), 'setns': (308, -1, 0), 'kexec_load': (246, 0, 0, 0, 0),
    'kexec_file_load': (320, -1, -1, 0, 0, 0), 'init_module': (175, 0, 0, 0),
    'finit_module': (313, -1, 0, 0), 'delete_module': (176, 0, 0), 'reboot': (169, 0, 0, 0, 0),
    'swapon': (167, 0, 0), 'swapoff': (168, 0), 'acct': (163, 0), 'settimeofday': (164, 0, 0),
    'clock_settime': (227, 0, 0), 'clock_adjtime': (305, 0, p), 'sethostname': (170, 0, 0),
    'setdomainname': (171, 0, 0), 'syslog': (103, 3, p, 16), 'iopl': (172, 0), 'ioperm': (173, 0, 0, 0),
    'quotactl': (179, 0, 0, 0, 0), 'lookup_dcookie': (212, 0, 0, 0), 'vhangup': (153,),
    'ptrace traceme': (101, 0, 0, 0, 0), 'process_vm_readv': (310, 1, 0, 0, 0, 0, 0),
    'process_vm_writev': (311, 1, 0, 0, 0, 0, 0), 'kcmp': (312, 1, 1, 0, 0, 0),
    'pidfd_getfd': (438, -1, 0, 0), 'process_madvise': (440, -1, 0, 0, 0, 0),
    'mbind': (237, 0, 0, 0, 0, 0, 0), 'set_mempolicy': (238, 0, 0, 0),
    'get_mempolicy': (239, 0, 0, 0, 0, 0), 'migrate_pages': (256, 0, 0, 0, 0),
    'move_pages': (279, 0, 0, 0, 0, 0, 0), 'open_by_handle_at': (304, -1, 0, 0),
    'fanotify_init': (300, 0, 0), 'fsopen': (430, 0, 0), 'fsconfig': (431, -1, 0, 0, 0, 0),
    'fsmount': (432, -1, 0, 0), 'open_tree': (428, -1, 0, 0), 'move_mount': (429, -1, 0, -1, 0, 0),
    'fspick': (433, -1, 0, 0), 'mount_setattr': (442, -1, 0, 0, 0, 0),
    'io_uring_enter': (426, -1, 0, 0, 0, 0, 0), 'io_uring_register': (427, -1, 0, 0, 0),
    'socket AF_PACKET': (41, 17, 3, 0), 'socket AF_VSOCK': (41, 40, 1, 0),
    'socket AF_VSOCK high bits': (41, 40 | (1 << 32), 1, 0), 'socket AF_ALG': (41, 38, 5, 0),
    'socket AF_TIPC': (41, 30, 2, 0), 'socket AF_RDS': (41, 21, 5, 0), 'socket AF_KEY': (41, 15, 3, 2),
    'socket AF_BLUETOOTH': (41, 31, 3, 0), 'socket AF_XDP': (41, 44, 3, 0),
    'socket NETLINK_AUDIT': (41, 16, 3, 9), 'socket NETLINK_SOCK_DIAG': (41, 16, 3, 4),
    'socketpair AF_TIPC': (53, 30, 2, 0, p), 'ioctl TIOCSTI': (16, 0, 0x5412, p),
    'ioctl TIOCSTI high bits': (16, 0, 0x5412 | (1 << 32), p), 'ioctl TIOCLINUX': (16, 0, 0x541C, p),
    'prlimit64 set the agent': (302, 1, 4, zero, 0),
}.items():
    results[name] = sc(*args)
for name, args in {
    'unshare user': (272, 0x10000000), 'unshare mount': (272, 0x20000), 'unshare net': (272, 0x40000000),
    'unshare time': (272, 0x80), 'clone NEWUSER': (56, 0x10000000 | 17, 0, 0, 0, 0),
    'clone NEWNS|NEWPID': (56, 0x20000 | 0x20000000 | 17, 0, 0, 0, 0),
    'clone NEWNET high bits': (56, 0x40000000 | (1 << 40) | 17, 0, 0, 0, 0),
    'personality ADDR_NO_RANDOMIZE': (135, 0x0040000), 'personality READ_IMPLIES_EXEC': (135, 0x0400000),
    'personality PER_BSD': (135, 0x0006), 'personality high bits': (135, 0x0040000 | (1 << 32)),
}.items():
    results[name] = child(lambda args=args: sc(*args))
)";
  // prlimit64 would set the agent's RLIMIT_CORE to the 0 it already has, should it pass.
  expect_all(probe(code), EPERM, "forked Python kernel");
  expect_all(probe_via_shell(code), EPERM, "python3 under the agent");
}

TEST_F(SeccompTest, CheckedArgumentsLetTheHarmlessCasesThrough) {
  const std::string code = R"(
results['clone3 (libc falls back to clone)'] = sc(435, p, 88)
for name, args in {
    'socket AF_UNIX': (41, 1, 1, 0), 'socket AF_INET': (41, 2, 1, 0), 'socket AF_INET6': (41, 10, 2, 0),
    'socket NETLINK_ROUTE': (41, 16, 3, 0), 'socketpair AF_UNIX': (53, 1, 1, 0, p + 128),
    'prlimit64 read by pid': (302, os.getpid(), 7, 0, p + 64), 'prlimit64 set own': (302, 0, 4, zero, 0),
    'personality query': (135, 0xffffffff), 'ioctl FIONREAD': (16, 0, 0x541B, p + 160),
}.items():
    results[name] = sc(*args)
results['personality LINUX32'] = child(lambda: sc(135, 8))
results['clone plain'] = child(lambda: 0 if os.waitpid(os.fork() or os._exit(0), 0) else 1)
results['x32 getpid'] = child(lambda: sc(0x40000000 | 39))
def int80():
    import mmap
    code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (i386 getpid); int 0x80; ret
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    return ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))() and 0
results['int 0x80 getpid'] = child(int80)
)";
  for (const Json& j : {probe(code), probe_via_shell(code)}) {
    ASSERT_TRUE(j.is_object()) << j.dump();
    EXPECT_EQ(j.value("clone3 (libc falls back to clone)", -1), ENOSYS) << j.dump();
    for (const char* ok : {"socket AF_UNIX", "socket AF_INET", "socket AF_INET6", "socket NETLINK_ROUTE",
                           "socketpair AF_UNIX", "prlimit64 read by pid", "prlimit64 set own",
                           "personality query", "personality LINUX32", "clone plain"})
      EXPECT_EQ(j.value(ok, -1), 0) << ok << ": " << j.dump();
    // FIONREAD on /dev/null reaches the kernel (which may say ENOTTY), not the filter.
    EXPECT_NE(j.value("ioctl FIONREAD", -1), EPERM) << j.dump();
    // Foreign syscall ABIs are killed (SIGSYS), as the bad-arch action says.
    EXPECT_EQ(j.value("x32 getpid", 0), -SIGSYS) << j.dump();
    EXPECT_EQ(j.value("int 0x80 getpid", 0), -SIGSYS) << j.dump();
  }
}

TEST_F(SeccompTest, PythonWorkloadsRun) {
  const char* code = R"(import asyncio, concurrent.futures, mmap, multiprocessing as mp, os, select, socket
import sqlite3, subprocess, sys, tempfile, threading
import numpy as np
import matplotlib.pyplot as plt
done = []
a = np.random.default_rng(1).random((200, 200))
np.linalg.eigvals(a[:40, :40] @ a[:40, :40].T); done.append('numpy')
plt.figure(); plt.plot(np.arange(50), np.sin(np.arange(50))); plt.show(); done.append('plot')
con = sqlite3.connect('/workspace/t.db'); con.execute('create table t(x)')
con.executemany('insert into t values (?)', [(i,) for i in range(100)]); con.commit()
assert con.execute('select sum(x) from t').fetchone()[0] == 4950; done.append('sqlite3')
out = []
ts = [threading.Thread(target=lambda i=i: out.append(i)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]; assert sorted(out) == list(range(8)); done.append('threads')
with mp.get_context('fork').Pool(2) as pool:
    assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
done.append('multiprocessing fork')
with concurrent.futures.ProcessPoolExecutor(2, mp_context=mp.get_context('fork')) as ex:
    assert list(ex.map(abs, [-4])) == [4]
q = mp.Queue(); pr = mp.Process(target=q.put, args=(7,)); pr.start(); assert q.get(timeout=30) == 7; pr.join()
done.append('multiprocessing queue')
# spawn and forkserver start a fresh python3 that re-imports __main__: from a script, as
# the kernel's own __main__ is not importable inside.
open('/workspace/mp_start.py', 'w').write('''import multiprocessing as mp, sys
if __name__ == '__main__':
    for method in ('spawn', 'forkserver'):
        with mp.get_context(method).Pool(2) as pool:
            assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
        print('multiprocessing_' + method)
''')
print(subprocess.run([sys.executable, '/workspace/mp_start.py'], capture_output=True, text=True, timeout=60).stdout, end='')
assert subprocess.run(['sh', '-c', 'echo sub | tr a-z A-Z'], capture_output=True, text=True).stdout == 'SUB\n'
done.append('subprocess')
async def main():
    p = await asyncio.create_subprocess_exec('echo', 'async', stdout=asyncio.subprocess.PIPE)
    assert (await p.communicate())[0] == b'async\n'
    async def serve(r, w):
        w.write(await r.readline()); await w.drain(); w.close()
    srv = await asyncio.start_server(serve, '127.0.0.1', 0)
    r, w = await asyncio.open_connection(*srv.sockets[0].getsockname()[:2])
    w.write(b'ping\n'); assert await r.readline() == b'ping\n'; w.close()
    srv.close(); await srv.wait_closed()
    await asyncio.sleep(0.01)
asyncio.run(main()); done.append('asyncio')
m = mmap.mmap(-1, 1 << 20); m[:5] = b'hello'; m.close()
with tempfile.TemporaryFile() as f:
    f.write(b'x' * 4096); f.flush(); mm = mmap.mmap(f.fileno(), 0); mm[0:1] = b'y'; mm.flush(); mm.close()
done.append('mmap')
r, w = os.pipe(); os.write(w, b'a')
ep = select.epoll(); ep.register(r, select.EPOLLIN); assert ep.poll(1); ep.close()
assert select.select([r], [], [], 0)[0]; pl = select.poll(); pl.register(r); assert pl.poll(0)
done.append('select/poll/epoll')
s = socket.socket(socket.AF_UNIX); s.bind('/tmp/u.sock'); s.listen()
c = socket.socket(socket.AF_UNIX); c.connect('/tmp/u.sock'); conn, _ = s.accept(); c.send(b'u'); assert conn.recv(1) == b'u'
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
c = socket.create_connection(s.getsockname()); conn, _ = s.accept(); c.sendall(b'i'); assert conn.recv(1) == b'i'
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0)); u.sendto(b'd', u.getsockname()); assert u.recv(1) == b'd'
socket.socket(socket.AF_INET6).close()
a_, b_ = socket.socketpair(); a_.send(b'p'); assert b_.recv(1) == b'p'
assert [n for _, n in socket.if_nameindex()] == ['lo']
done.append('sockets')
os.mkfifo('/tmp/fifo'); os.symlink('t.db', '/workspace/l'); os.link('/workspace/t.db', '/workspace/h')
os.chmod('/workspace/h', 0o600); os.utime('/workspace/h'); os.statvfs('/workspace'); os.sched_getaffinity(0)
fd = os.pidfd_open(os.getpid()); os.close(fd); os.close(os.eventfd(0)); os.close(os.memfd_create('m'))
import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
done.append('files and misc')
print(' '.join(d.replace(' ', '_') for d in done))
)";
  Result r = session_->run({.code = code});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  for (const char* step : {"numpy", "plot", "sqlite3", "threads", "multiprocessing_fork", "multiprocessing_spawn",
                           "multiprocessing_forkserver", "multiprocessing_queue", "subprocess", "asyncio",
                           "mmap", "select/poll/epoll", "sockets", "files_and_misc"})
    EXPECT_NE(r.stdout_text.find(step), std::string::npos) << step << ": " << to_json(r);
  ASSERT_EQ(r.images.size(), 1u) << to_json(r);
  EXPECT_EQ(r.images[0].mime, "image/png");
}

TEST_F(SeccompTest, NodeWorkloadsRun) {
  // The kernel itself (vm2), then node as a program with what the kernel does not allow.
  Result r = session_->run({.language = Language::nodejs,
                            .code = "let s = 0; for (let i = 0; i < 1e6; i++) s += i;\n"
                                    "new Promise((res) => setTimeout(() => res(JSON.stringify(\n"
                                    "  {s, d: new Date(0).toISOString(), r: typeof Math.random()})), 10))"});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_NE(r.result.value_or("").find("499999500000"), std::string::npos) << to_json(r);

  const char* program = R"(cat > /tmp/w.js <<'EOF'
const fs = require('fs'), os = require('os'), cp = require('child_process'), http = require('http');
const net = require('net'), crypto = require('crypto'), zlib = require('zlib'), { Worker } = require('worker_threads');
const done = [];
fs.writeFileSync('/tmp/n', 'x'); fs.copyFileSync('/tmp/n', '/tmp/n2'); fs.renameSync('/tmp/n2', '/tmp/n3');
fs.chmodSync('/tmp/n3', 0o600); fs.statSync('/tmp/n3'); fs.readdirSync('/tmp'); done.push('fs');
os.cpus(); os.networkInterfaces(); os.userInfo(); crypto.randomBytes(16); zlib.gunzipSync(zlib.gzipSync('z'));
done.push('os');
if (cp.execSync('echo sub | tr a-z A-Z').toString() === 'SUB\n') done.push('child_process');
const w = new Worker('require("worker_threads").parentPort.postMessage(42)', { eval: true });
w.on('message', (m) => { if (m === 42) done.push('worker'); w.terminate(); });
const srv = http.createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', () => {
  http.get({ host: '127.0.0.1', port: srv.address().port }, (res) => {
    res.on('data', (d) => { if (String(d) === 'ok') done.push('http'); });
    res.on('end', () => srv.close());
  });
});
const u = net.createServer((s) => s.end('u')).listen('/tmp/n.sock', () => {
  net.connect('/tmp/n.sock').on('data', (d) => { if (String(d) === 'u') done.push('unix'); u.close(); });
});
fs.promises.readFile('/tmp/n').then(() => done.push('promises'));
process.on('exit', () => console.log(done.sort().join(' ')));
EOF
node /tmp/w.js
)";
  r = session_->run({.language = Language::shell, .code = program});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.stdout_text, "child_process fs http os promises unix worker\n") << to_json(r);
}

TEST_F(SeccompTest, ShellPipelinesRun) {
  const char* script = R"(set -e
cd /workspace
seq 1 1000 | sort -rn | uniq | head -5 | tail -2 | wc -l
echo hello world | tr a-z A-Z | sed 's/O/0/g' | awk '{print $2, $1}' | cut -d' ' -f1 | grep -c W
printf 'b\na\n' > f; cp -a f g; mv g h; ln -s h s; ln h hh; chmod 600 h; touch -d '2020-01-01' h
stat h >/dev/null; ls -la >/dev/null; du -sh . >/dev/null; df . >/dev/null; sync f
mkdir -p x/y/z; find . -type d | xargs -n1 echo >/dev/null; rm -rf x; tee t < f >/dev/null
sha256sum f >/dev/null; mkfifo p; (echo fifo > p &); cat p
date >/dev/null; sleep 0.1; timeout 5 sleep 0.01; id -u; uname -s; nproc >/dev/null
tar czf a.tgz f h; mkdir out; tar xzf a.tgz -C out; gzip -k f; base64 f >/dev/null
comm <(sort f) <(sort h) >/dev/null; split -l1 f part; dd if=/dev/zero of=z bs=1k count=4 2>/dev/null
truncate -s 0 z; readlink -f s >/dev/null; kill -0 $$; ulimit -n 256; ulimit -c 0
{ sleep 0.05; echo bg; } & wait
echo done
)";
  Result r = session_->run({.language = Language::shell, .code = script});
  ASSERT_EQ(r.status, Status::finished) << to_json(r);
  EXPECT_EQ(r.stdout_text, "2\n1\nfifo\n1000\nLinux\nbg\ndone\n") << to_json(r);
}

}  // namespace
