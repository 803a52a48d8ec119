// The libsandbox Node.js kernel: one persistent vm2 VM per session (docs/agent.md).
//
// Started by sandbox-agent as `node kernel.js` with fd 0 = /dev/null, fds 1/2 = output
// pipes, fd 3 = requests (agent -> kernel), fd 4 = replies (kernel -> agent). Each message
// is a u32 little-endian length followed by JSON. The kernel first replies {"ready": true},
// then answers each {"code", "stdin"} request with one result object.
//
// User code runs in a vm2 VM (not NodeVM): globals persist across executions, `console`
// prints to the execution's stdout/stderr, timers work, `require` and `process` are not
// available. vm2 is a second wall only; the OS sandbox around the agent is the real one.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const util = require('util');

const REQ_FD = 3;
const REP_FD = 4;

function reply(obj) {
  const body = Buffer.from(JSON.stringify(obj), 'utf8');
  const buf = Buffer.alloc(4 + body.length);
  buf.writeUInt32LE(body.length, 0);
  body.copy(buf, 4);
  let off = 0;
  try {
    while (off < buf.length) {
      try {
        off += fs.writeSync(REP_FD, buf, off, buf.length - off);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
      }
    }
  } catch (e) {
    process.exit(70);  // the agent cannot hear us any more; dying tells it so
  }
}

function write(fd, text) {
  try {
    fs.writeSync(fd, text);
  } catch (e) { /* a closed pipe must not kill the kernel */ }
}

let VM = null;
let loadError = null;
try {
  ({ VM } = require(path.join(__dirname, 'node_modules', 'vm2')));
} catch (e) {
  loadError = 'vm2 is not installed next to kernel.js (' + path.join(__dirname, 'node_modules') +
              '): run `npm ci --prefix runtime` when building libsandbox (' + e.message + ')';
}

// Host-side output functions handed to the VM; they receive only formatted strings.
const hostOut = (s) => write(1, String(s));
const hostErr = (s) => write(2, String(s));

// The console, a value inspector and an error describer live inside the VM, so they see
// the sandbox's own objects (not vm2's host-side proxies) and only strings cross back.
const PRELUDE = String.raw`(function (out, err) {
  const MAX_DEPTH = 2, MAX_ITEMS = 100, BREAK = 72;
  const ident = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
  const quote = (s) => "'" + s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n') + "'";
  const key = (k) => typeof k === 'symbol' ? '[' + k.toString() + ']' : ident.test(k) ? k : quote(k);
  const ctorName = (v) => {
    try { const p = Object.getPrototypeOf(v); return p && p.constructor && p.constructor.name; } catch (e) { return undefined; }
  };
  function wrap(open, parts, close, indent) {
    if (parts.length === 0) return open.trimEnd() + close.trimStart();
    const one = open + ' ' + parts.join(', ') + ' ' + close;
    if (one.length <= BREAK && !one.includes('\n')) return one;
    const pad = '  '.repeat(indent + 1);
    return open + '\n' + pad + parts.join(',\n' + pad) + '\n' + '  '.repeat(indent) + close;
  }
  function inspect(v, depth, seen, indent) {
    switch (typeof v) {
      case 'string': return depth === 0 ? quote(v) : quote(v);
      case 'number': return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint': return String(v) + 'n';
      case 'boolean': case 'undefined': return String(v);
      case 'symbol': return v.toString();
      case 'function': {
        const src = Function.prototype.toString.call(v);
        const kind = /^class\b/.test(src) ? 'class' : v.constructor && v.constructor.name === 'AsyncFunction' ? 'AsyncFunction' : 'Function';
        return '[' + kind + (v.name ? (kind === 'class' ? ' ' : ': ') + v.name : ' (anonymous)') + ']';
      }
    }
    if (v === null) return 'null';
    if (seen.includes(v)) return '[Circular *1]';
    if (v instanceof Error) return v.stack || String(v);
    if (v instanceof Date) return isNaN(v) ? 'Invalid Date' : v.toISOString();
    if (v instanceof RegExp) return String(v);
    if (v instanceof Promise) return 'Promise { <pending> }';
    const name = ctorName(v);
    if (depth > MAX_DEPTH) return Array.isArray(v) ? '[Array]' : '[' + (name || 'Object') + ']';
    seen = seen.concat([v]);
    const sub = (x) => inspect(x, depth + 1, seen, indent + 1);
    if (v instanceof Map) {
      const parts = [];
      for (const [k, x] of v) parts.push(sub(k) + ' => ' + sub(x));
      return wrap((name || 'Map') + '(' + v.size + ') {', parts, '}', indent);
    }
    if (v instanceof Set) {
      const parts = [];
      for (const x of v) parts.push(sub(x));
      return wrap((name || 'Set') + '(' + v.size + ') {', parts, '}', indent);
    }
    if (Array.isArray(v) || ArrayBuffer.isView(v)) {
      const parts = [];
      const n = Math.min(v.length, MAX_ITEMS);
      let holes = 0;
      for (let i = 0; i < n; i++) {
        if (!(i in v)) { holes++; continue; }
        if (holes) { parts.push('<' + holes + ' empty item' + (holes > 1 ? 's' : '') + '>'); holes = 0; }
        parts.push(sub(v[i]));
      }
      if (holes) parts.push('<' + holes + ' empty item' + (holes > 1 ? 's' : '') + '>');
      if (v.length > n) parts.push('... ' + (v.length - n) + ' more item' + (v.length - n > 1 ? 's' : ''));
      const prefix = Array.isArray(v) ? (name && name !== 'Array' ? name + '(' + v.length + ') ' : '') : name + '(' + v.length + ') ';
      return wrap(prefix + '[', parts, ']', indent);
    }
    const parts = [];
    for (const k of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, k);
      if (!d || !d.enumerable) continue;
      if (d.get || d.set) parts.push(key(k) + ': ' + (d.get && d.set ? '[Getter/Setter]' : d.get ? '[Getter]' : '[Setter]'));
      else parts.push(key(k) + ': ' + sub(d.value));
    }
    const prefix = name === undefined ? '[Object: null prototype] ' : name === 'Object' ? '' : name + ' ';
    return wrap(prefix + '{', parts, '}', indent);
  }
  const show = (v) => inspect(v, 0, [], 0);
  const format = (args) => {
    let first = args[0], rest = args.slice(1);
    let head = '';
    if (typeof first === 'string') {
      head = first.replace(/%[sdifjoO%]/g, (m) => {
        if (m === '%%') return '%';
        if (rest.length === 0) return m;
        const a = rest.shift();
        if (m === '%s') return typeof a === 'string' ? a : show(a);
        if (m === '%d' || m === '%i') return String(m === '%i' ? parseInt(a) : Number(a));
        if (m === '%f') return String(parseFloat(a));
        if (m === '%j') { try { return JSON.stringify(a); } catch (e) { return '[Circular]'; } }
        return show(a);
      });
    } else if (args.length) {
      head = show(first);
    }
    return [head].concat(rest.map((a) => typeof a === 'string' ? a : show(a))).join(' ');
  };
  let group = '';
  const line = (sink) => (...args) => sink(format(args).replace(/^/gm, group) + '\n');
  const counts = new Map(), timers = new Map();
  const console = {
    log: line(out), info: line(out), debug: line(out), dir: (v) => out(group + show(v) + '\n'),
    error: line(err), warn: line(err), trace: (...a) => err(group + 'Trace: ' + format(a) + '\n'),
    table: line(out),
    assert: (c, ...a) => { if (!c) err(group + 'Assertion failed' + (a.length ? ': ' + format(a) : '') + '\n'); },
    group: (...a) => { if (a.length) out(group + format(a) + '\n'); group += '  '; },
    groupEnd: () => { group = group.slice(2); },
    count: (l = 'default') => { counts.set(l, (counts.get(l) || 0) + 1); out(group + l + ': ' + counts.get(l) + '\n'); },
    countReset: (l = 'default') => { counts.delete(l); },
    time: (l = 'default') => { timers.set(l, Date.now()); },
    timeEnd: (l = 'default') => { if (timers.has(l)) { out(group + l + ': ' + (Date.now() - timers.get(l)) + 'ms\n'); timers.delete(l); } },
    timeLog: (l = 'default', ...a) => { if (timers.has(l)) out(group + l + ': ' + (Date.now() - timers.get(l)) + 'ms' + (a.length ? ' ' + format(a) : '') + '\n'); },
  };
  console.groupCollapsed = console.group;
  Object.defineProperty(globalThis, 'console', { value: console, writable: true, configurable: true, enumerable: false });
  const describe = (e) => {
    if (e instanceof Error || (e && typeof e === 'object' && 'message' in e)) {
      let name = 'Error';
      try { name = String(e.name || ctorName(e) || 'Error'); } catch (x) {}
      let message = '', stack = '';
      try { message = String(e.message); } catch (x) {}
      try { stack = String(e.stack || ''); } catch (x) {}
      return JSON.stringify({ name, value: message, traceback: stack });
    }
    let text;
    try { text = typeof e === 'string' ? e : show(e); } catch (x) { text = '<unprintable>'; }
    return JSON.stringify({ name: 'Error', value: 'Uncaught ' + text, traceback: 'Uncaught ' + text });
  };
  const isThenable = (v) => v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
  // Awaits inside the VM and hands back only strings: [ok, shown result or error JSON].
  const settle = (v, done) => {
    if (!isThenable(v)) { done(true, v === undefined ? null : show(v)); return; }
    Promise.resolve(v).then((x) => done(true, x === undefined ? null : show(x)), (e) => done(false, describe(e)));
  };
  return { show, describe, settle, isThenable };
})`;

let vm = null;
let helpers = null;
if (VM) {
  vm = new VM({
    sandbox: {
      setTimeout, clearTimeout, setInterval, clearInterval, setImmediate, clearImmediate,
      queueMicrotask,
    },
    eval: true,
    wasm: true,
    allowAsync: true,
  });
  helpers = vm.run(PRELUDE, 'kernel-prelude.js')(hostOut, hostErr);
}

// Errors thrown inside the VM reach us as vm2 proxies; describe them inside the VM.
function describeError(e) {
  try {
    return JSON.parse(helpers.describe(e));
  } catch (x) {
    return { name: (e && e.name) || 'Error', value: String((e && e.message) || e), traceback: String((e && e.stack) || '') };
  }
}

// Uncaught errors from timers and rejected promises nobody handled go to stderr; the
// kernel (and the session's state) lives on, unlike plain node.
process.on('uncaughtException', (e) => {
  const d = describeError(e);
  hostErr('Uncaught ' + (d.traceback || d.name + ': ' + d.value) + '\n');
});
process.on('unhandledRejection', (e) => {
  const d = describeError(e);
  hostErr('Unhandled promise rejection: ' + (d.traceback || d.name + ': ' + d.value) + '\n');
});

function usage() {
  const cpu = process.cpuUsage();
  return {
    cpu_total_ms: Math.floor((cpu.user + cpu.system) / 1000),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  };
}

let busy = false;

function execute(req, done) {
  const before = usage();
  const finish = (out) => {
    const after = usage();
    out.cpu_ms = Math.max(0, after.cpu_total_ms - before.cpu_total_ms);
    out.cpu_total_ms = after.cpu_total_ms;
    out.peak_rss_bytes = after.peak_rss_bytes;
    done(out);
  };
  const base = { status: 'ok', result: null, images: [], error: null, exit_code: null };
  if (!vm) {
    finish(Object.assign(base, { status: 'error', error: { name: 'KernelError', value: loadError, traceback: '' } }));
    return;
  }
  let value;
  try {
    value = vm.run(String(req.code || ''), 'cell.js');
  } catch (e) {
    const err = describeError(e);
    hostErr((err.traceback || err.name + ': ' + err.value) + '\n');
    finish(Object.assign(base, { status: 'error', error: err }));
    return;
  }
  try {
    helpers.settle(value, (ok, text) => {
      if (ok) {
        finish(Object.assign(base, { result: text }));
      } else {
        const err = JSON.parse(text);
        hostErr((err.traceback || err.name + ': ' + err.value) + '\n');
        finish(Object.assign(base, { status: 'error', error: err }));
      }
    });
  } catch (e) {
    finish(Object.assign(base, { result: util.inspect(value) }));
  }
}

// Requests: u32 LE length + JSON, handled one at a time (the agent never sends a second
// before the first is answered, but be robust anyway).
const pending = [];
let inbuf = Buffer.alloc(0);

function next() {
  if (busy || pending.length === 0) return;
  busy = true;
  const req = pending.shift();
  execute(req, (out) => {
    reply(out);
    busy = false;
    setImmediate(next);
  });
}

const channel = new net.Socket({ fd: REQ_FD, readable: true, writable: false });
channel.on('data', (chunk) => {
  inbuf = inbuf.length ? Buffer.concat([inbuf, chunk]) : chunk;
  while (inbuf.length >= 4) {
    const len = inbuf.readUInt32LE(0);
    if (inbuf.length < 4 + len) break;
    const body = inbuf.subarray(4, 4 + len).toString('utf8');
    inbuf = inbuf.subarray(4 + len);
    try {
      pending.push(JSON.parse(body));
    } catch (e) {
      pending.push({ code: '' });
    }
  }
  next();
});
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(0));

reply({ ready: true });
