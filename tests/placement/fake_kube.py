#!/usr/bin/env python3
"""fake_kube.py: a strict fake Kubernetes API server, and its kubelet, as a test fixture.

No cluster can run on the test hosts (Debian has no kube-apiserver), so placement is tested
against this: the real JSON shapes of the core/v1 Pod and Node APIs and metrics.k8s.io, over
TLS with a CA generated at start, behind bearer-token (or client-certificate) auth. It is
strict where the real API server is: DNS-1123 names (422 Invalid), 409 AlreadyExists, 404
NotFound, resourceVersion on every object and watch event, a bounded watch history (an
expired resourceVersion gets the real "410 Expired" ERROR event, or 410 on a list with
resourceVersionMatch=Exact), label selectors (equality, inequality, existence, in/notin).

It is also the kubelet: each pod it schedules becomes a real process started from the pod's
first container (`command` + `args`, `$(VAR)` expanded from `env`, `valueFrom.fieldRef`
for metadata.name/namespace/labels and status.podIP), on its own loopback address
(127.0.N.2, 127.0.N.3, ...). The pod turns Ready when its readinessProbe (httpGet) answers
2xx/3xx, or at start without a probe; it is killed (its whole process group) on delete.
The scheduler is real enough to leave a pod Pending/Unschedulable when the nodes'
allocatable cannot fit its requests.

Test-only control endpoints (same auth), all JSON:
  PUT  /_fake/nodes    {"node-a": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                   "usage": {"cpu": "500m", "memory": "1Gi"}}}  replaces nodes
  PUT  /_fake/metrics  {"available": false}      metrics.k8s.io answers 503 (as when the
                                                 metrics-server is down)
  POST /_fake/faults   {"method": "POST", "path": "regex", "code": 429, "count": 2,
                        "retry_after": 1, "delay": 0}  the next `count` matching requests fail
                        (code 0 + delay: the request hangs `delay` seconds, then is served)
  POST /_fake/compact  forget the watch history: older resourceVersions are now expired
  GET  /_fake/pods     [{"namespace", "name", "pid", "ip", "alive"}] the kubelet's view

Usage: fake_kube.py --dir DIR [--port 0] [--token T] [--ip-prefix 127.0.5 | ::1]
Prints one JSON line on stdout once serving: {"url", "port", "dir", "token", "ca_file",
"kubeconfig", "kubeconfig_cert", "wrong_ca_file", "readonly_token"}; then logs to stderr.
SIGTERM/SIGINT: kills every pod process and exits.
"""

import argparse
import base64
import collections
import datetime
import http.client
import http.server
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

# ---------------------------------------------------------------------------------------
# Names, labels, quantities (the validation rules of k8s.io/apimachinery)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
SUFFIX = {None: 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "P": 1e15, "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
          "Pi": 2**50, "Ei": 2**60}


def is_subdomain(s):
    return isinstance(s, str) and 0 < len(s) <= 253 and DNS1123_SUBDOMAIN.match(s) is not None


def is_label(s):
    return isinstance(s, str) and 0 < len(s) <= 63 and DNS1123_LABEL.match(s) is not None


def valid_label_key(k):
    if not isinstance(k, str):
        return False
    prefix, _, name = k.rpartition("/")
    if prefix and not is_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and LABEL_NAME.match(name) is not None


def valid_label_value(v):
    return isinstance(v, str) and len(v) <= 63 and LABEL_VALUE.match(v) is not None


def parse_quantity(q):
    """A resource.Quantity as a float (cores, bytes); ValueError if malformed."""
    if isinstance(q, (int, float)):
        return float(q)
    m = QUANTITY.match(str(q))
    if not m:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {q!r}")
    num, suf = m.group(1), m.group(2)
    if suf and suf[0] in "eE":
        return float(num + suf)
    return float(num) * SUFFIX[suf]


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """A failure answered as a metav1.Status object."""

    REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 406: "NotAcceptable", 409: "AlreadyExists",
               410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
               429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
               504: "Timeout"}

    def __init__(self, code, message, reason=None, details=None, headers=None):
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or self.REASONS.get(code, "Unknown")
        self.details, self.headers = details, headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


def invalid(kind, name, causes):
    """422 Invalid with field causes, as the API server words it."""
    msg = f'{kind} "{name}" is invalid: ' + ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(422, msg, "Invalid", {"name": name, "kind": kind.lower() + "s",
                                          "causes": [{"reason": "FieldValueInvalid",
                                                      "message": m, "field": f}
                                                     for f, m in causes]})


# ---------------------------------------------------------------------------------------
# Label selectors


def parse_selector(text):
    """A list of predicates over a labels dict; ApiError(400) if malformed."""
    preds = []
    text = (text or "").strip()
    i, n = 0, len(text)
    while i < n:
        # One requirement up to the next top-level comma.
        depth, j = 0, i
        while j < n and (depth > 0 or text[j] != ","):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        req = text[i:j].strip()
        i = j + 1
        if not req:
            raise ApiError(400, f"unable to parse requirement: empty requirement in {text!r}")
        m = re.match(r"^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$", req)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if not valid_label_key(key) or not all(valid_label_value(v) for v in vals):
                raise ApiError(400, f"unable to parse requirement: invalid {req!r}")
            if op == "in":
                preds.append(lambda l, k=key, vs=vals: l.get(k) in vs)
            else:
                preds.append(lambda l, k=key, vs=vals: l.get(k) not in vs)
            continue
        m = re.match(r"^([^\s!=]+)\s*(==|=|!=)\s*([^\s!=]*)$", req)
        if m:
            key, op, val = m.groups()
            if not valid_label_key(key) or not valid_label_value(val):
                raise ApiError(400, f"unable to parse requirement: invalid label selector {req!r}")
            if op == "!=":
                preds.append(lambda l, k=key, v=val: l.get(k) != v)
            else:
                preds.append(lambda l, k=key, v=val: l.get(k) == v)
            continue
        m = re.match(r"^(!?)([^\s!=()]+)$", req)
        if m and valid_label_key(m.group(2)):
            neg, key = m.groups()
            preds.append((lambda l, k=key: k not in l) if neg else (lambda l, k=key: k in l))
            continue
        raise ApiError(400, f"unable to parse requirement: found '{req}', expected: "
                            f"'=', '!=', '==', 'in', notin'")
    return preds


def parse_field_selector(text):
    preds = []
    for req in filter(None, (r.strip() for r in (text or "").split(","))):
        m = re.match(r"^([a-zA-Z.]+)\s*(==|=|!=)\s*(.*)$", req)
        if not m or m.group(1) not in ("metadata.name", "metadata.namespace", "status.phase",
                                       "spec.nodeName"):
            raise ApiError(400, f'field label not supported: {req.split("=")[0]}')
        path, op, val = m.groups()

        def get(obj, path=path):
            for part in path.split("."):
                obj = (obj or {}).get(part)
            return obj or ""
        if op == "!=":
            preds.append(lambda o, g=get, v=val: g(o) != v)
        else:
            preds.append(lambda o, g=get, v=val: g(o) == v)
    return preds


# ---------------------------------------------------------------------------------------
# The cluster: pods, nodes, resourceVersions, watch history, the kubelet


class Cluster:
    def __init__(self, ip_prefix, history, runtime_classes, logdir):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 100                       # last resourceVersion handed out
        self.pods = {}                      # (ns, name) -> pod dict
        self.order = {}                     # (ns, name) -> creation sequence (scheduling order)
        self.procs = {}                     # (ns, name) -> Popen
        self.events = collections.deque()   # (rv, type, ns, pod) in rv order
        self.history = history              # events kept for watches
        self.oldest = self.rv               # a watch from below this rv is expired
        self.namespaces = {"default", "kube-system", "sandboxes"}
        self.runtime_classes = set(runtime_classes)
        self.metrics_available = True
        self.nodes = {}
        self.set_nodes({"fake-node-1": {"allocatable": {"cpu": "4", "memory": "8Gi",
                                                        "pods": "110"},
                                        "usage": {"cpu": "250m", "memory": "512Mi"}}})
        self.ip_prefix = ip_prefix
        self.next_ip = 2
        self.ips_in_use = set()
        self.logdir = logdir
        self.closing = False

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def set_nodes(self, spec):
        with self.lock:
            nodes = {}
            for name, n in spec.items():
                alloc = dict(n.get("allocatable") or {"cpu": "4", "memory": "8Gi"})
                alloc.setdefault("pods", "110")
                for q in alloc.values():
                    parse_quantity(q)
                usage = dict(n.get("usage") or {"cpu": "0", "memory": "0"})
                nodes[name] = {"allocatable": alloc, "usage": usage,
                               "uid": str(uuid.uuid4()), "created": now_rfc3339(),
                               "rv": self.next_rv()}
            self.nodes = nodes
            self.schedule_pending()

    # -- events ---------------------------------------------------------------------
    def emit(self, etype, pod):
        """Records a change (the caller holds the lock and has set the pod's rv)."""
        rv = int(pod["metadata"]["resourceVersion"])
        self.events.append((rv, etype, pod["metadata"]["namespace"], json.loads(json.dumps(pod))))
        while len(self.events) > self.history:
            old = self.events.popleft()
            self.oldest = old[0]
        self.changed.notify_all()

    def compact(self):
        with self.lock:
            self.events.clear()
            self.oldest = self.rv

    def update(self, pod, mutate):
        """Mutates a stored pod under the lock and emits MODIFIED if it still exists."""
        with self.lock:
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if self.pods.get(key) is not pod:
                return False
            mutate(pod)
            pod["metadata"]["resourceVersion"] = self.next_rv()
            self.emit("MODIFIED", pod)
            return True

    # -- scheduling -----------------------------------------------------------------
    @staticmethod
    def requests_of(pod):
        cpu = mem = 0.0
        for c in pod["spec"].get("containers", []):
            req = (c.get("resources") or {}).get("requests") or {}
            cpu += parse_quantity(req.get("cpu", 0))
            mem += parse_quantity(req.get("memory", 0))
        return cpu, mem

    def schedule_pending(self):
        """Binds Pending pods without a node to the first node that fits (lock held)."""
        for key, pod in sorted(self.pods.items(), key=lambda kv: self.order.get(kv[0], 0)):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            cpu, mem = self.requests_of(pod)
            chosen = None
            reasons = []
            for name, node in sorted(self.nodes.items()):
                used_cpu = used_mem = 0.0
                count = 0
                for other in self.pods.values():
                    if other["spec"].get("nodeName") == name and \
                            other["status"].get("phase") in ("Pending", "Running"):
                        c, m = self.requests_of(other)
                        used_cpu, used_mem, count = used_cpu + c, used_mem + m, count + 1
                alloc = node["allocatable"]
                if used_cpu + cpu > parse_quantity(alloc.get("cpu", 0)) + 1e-9:
                    reasons.append("Insufficient cpu")
                elif used_mem + mem > parse_quantity(alloc.get("memory", 0)):
                    reasons.append("Insufficient memory")
                elif count + 1 > parse_quantity(alloc.get("pods", 110)):
                    reasons.append("Too many pods")
                else:
                    chosen = name
                    break
            if chosen is None:
                msg = f"0/{len(self.nodes)} nodes are available: " + \
                      ", ".join(f"1 {r}" for r in sorted(set(reasons)) or ["no nodes"]) + "."
                conds = pod["status"].setdefault("conditions", [])
                if not conds or conds[0].get("message") != msg:
                    def unsched(p, msg=msg):
                        p["status"]["conditions"] = [{
                            "type": "PodScheduled", "status": "False", "lastProbeTime": None,
                            "lastTransitionTime": now_rfc3339(), "reason": "Unschedulable",
                            "message": msg}]
                    self.update(pod, unsched)
                continue
            ip = self.allocate_ip()

            def bind(p, chosen=chosen, ip=ip):
                p["spec"]["nodeName"] = chosen
                ts = now_rfc3339()
                p["status"].update({
                    "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                    "podIP": ip, "podIPs": [{"ip": ip}], "startTime": ts,
                    "conditions": [cond("PodScheduled", True), cond("Initialized", True),
                                   cond("Ready", False, "ContainersNotReady"),
                                   cond("ContainersReady", False, "ContainersNotReady")],
                    "containerStatuses": [{
                        "name": c["name"], "image": c["image"], "imageID": "",
                        "ready": False, "restartCount": 0, "started": False,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                        "lastState": {}} for c in p["spec"]["containers"]]})
            self.update(pod, bind)
            threading.Thread(target=self.run_pod, args=(pod,), daemon=True).start()

    def allocate_ip(self):
        if self.ip_prefix == "::1":
            # IPv6: the one loopback address, so one pod at a time (tests of v6 pod IPs).
            if "::1" in self.ips_in_use:
                raise ApiError(503, "fake kubelet: the IPv6 pod address ::1 is taken")
            self.ips_in_use.add("::1")
            return "::1"
        for _ in range(253):
            n = self.next_ip
            self.next_ip = 2 if self.next_ip >= 254 else self.next_ip + 1
            ip = f"{self.ip_prefix}.{n}"
            if ip not in self.ips_in_use:
                self.ips_in_use.add(ip)
                return ip
        raise ApiError(503, "fake kubelet: no free pod IP")

    # -- the kubelet ----------------------------------------------------------------
    def run_pod(self, pod):
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        c = pod["spec"]["containers"][0]
        env = dict(os.environ)
        cenv = {}
        for e in c.get("env") or []:
            if "value" in e:
                val = expand(str(e["value"]), cenv)
            else:
                ref = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
                val = field_value(pod, ref)
            cenv[e["name"]] = val
        env.update(cenv)
        argv = [expand(a, cenv) for a in (c.get("command") or []) + (c.get("args") or [])]
        log = open(os.path.join(self.logdir, f"{key[0]}_{key[1]}.log"), "ab")
        try:
            if not c.get("command"):
                raise OSError("fake kubelet: the container has no command (images are not run)")
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=c.get("workingDir") or None,
                                    start_new_session=True)
        except OSError as e:
            log.write(f"{e}\n".encode())
            log.close()
            self.finish(pod, 128, "StartError", str(e))
            return
        log.close()
        with self.lock:
            if self.pods.get(key) is not pod or self.closing:
                kill_group(proc, 0)
                return
            self.procs[key] = proc
        started = now_rfc3339()
        probe = c.get("readinessProbe")

        def running(p, ready=False):
            p["status"]["phase"] = "Running"
            for cs in p["status"]["containerStatuses"]:
                cs.update({"started": True, "ready": ready,
                           "containerID": f"fake://{proc.pid}",
                           "state": {"running": {"startedAt": started}}})
            set_cond(p, "Ready", ready, None if ready else "ContainersNotReady")
            set_cond(p, "ContainersReady", ready, None if ready else "ContainersNotReady")
        self.update(pod, lambda p: running(p, ready=probe is None))
        ready = probe is None
        delay = float(probe.get("initialDelaySeconds", 0)) if probe else 0
        if delay:
            time.sleep(delay)
        while proc.poll() is None:
            if probe is not None:
                ok = http_probe(pod, c, probe)
                if ok != ready:
                    ready = ok
                    self.update(pod, lambda p, r=ok: running(p, ready=r))
            # Probes every 50 ms, not periodSeconds: the fake's kubelet is eager so tests
            # measure our code, not a probe period.
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        rc = proc.returncode
        self.finish(pod, rc if rc >= 0 else 128 - rc, "Completed" if rc == 0 else "Error", "")

    def finish(self, pod, code, reason, message):
        def done(p):
            p["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
            set_cond(p, "Ready", False, "PodCompleted")
            set_cond(p, "ContainersReady", False, "PodCompleted")
            for cs in p["status"].get("containerStatuses", []):
                cs.update({"ready": False, "started": False, "state": {"terminated": {
                    "exitCode": code, "reason": reason, "message": message,
                    "finishedAt": now_rfc3339()}}})
        self.update(pod, done)

    def remove(self, key, grace):
        """Deletes a pod: kills its processes (TERM, then KILL after `grace`), emits DELETED."""
        with self.lock:
            pod = self.pods.get(key)
            proc = self.procs.get(key)
        if proc is not None:
            kill_group(proc, grace)
        with self.lock:
            if self.pods.get(key) is not pod:
                return
            del self.pods[key]
            self.order.pop(key, None)
            self.procs.pop(key, None)
            ip = pod["status"].get("podIP")
            self.ips_in_use.discard(ip)
            pod["metadata"]["resourceVersion"] = self.next_rv()
            self.emit("DELETED", pod)
            self.schedule_pending()

    def shutdown(self):
        with self.lock:
            self.closing = True
            procs = list(self.procs.values())
        for p in procs:
            kill_group(p, 0)


def cond(ctype, ok, reason=None):
    c = {"type": ctype, "status": "True" if ok else "False", "lastProbeTime": None,
         "lastTransitionTime": now_rfc3339()}
    if reason and not ok:
        c["reason"] = reason
    return c


def set_cond(pod, ctype, ok, reason=None):
    conds = pod["status"].setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c["type"] == ctype:
            if c["status"] != ("True" if ok else "False"):
                conds[i] = cond(ctype, ok, reason)
            return
    conds.append(cond(ctype, ok, reason))


def field_value(pod, path):
    m = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if m:
        return pod["metadata"].get(m.group(1), {}).get(m.group(2), "")
    return {"metadata.name": pod["metadata"]["name"],
            "metadata.namespace": pod["metadata"]["namespace"],
            "metadata.uid": pod["metadata"]["uid"],
            "status.podIP": pod["status"].get("podIP", ""),
            "status.hostIP": pod["status"].get("hostIP", ""),
            "spec.nodeName": pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "")}.get(path, "")


def expand(s, env):
    """Kubernetes' $(VAR) expansion: defined variables are replaced, $$ escapes a $."""
    def rep(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", rep, s)


def http_probe(pod, container, probe):
    get = probe.get("httpGet")
    if not get:
        return True  # exec/tcpSocket probes: treated as passing while the process lives
    port = get.get("port")
    if isinstance(port, str) and not port.isdigit():
        port = next((p["containerPort"] for p in container.get("ports") or []
                     if p.get("name") == port), None)
    if port is None:
        return False
    host = get.get("host") or pod["status"].get("podIP")
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=1)
        conn.request("GET", get.get("path", "/"))
        status = conn.getresponse().status
        conn.close()
        return 200 <= status < 400
    except (OSError, http.client.HTTPException):
        return False


def kill_group(proc, grace):
    if proc.poll() is not None:
        return
    try:
        if grace > 0:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                pass
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# ---------------------------------------------------------------------------------------
# Pod admission: defaults and validation, as the API server applies them


def admit_pod(cluster, ns, body):
    if not isinstance(body, dict):
        raise ApiError(400, "the object provided is unrecognized (must be of type Pod)")
    if body.get("kind", "Pod") != "Pod" or body.get("apiVersion", "v1") != "v1":
        raise ApiError(400, f"the API version in the data ({body.get('apiVersion')}) does not "
                            f"match the expected API version (v1)")
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    if meta.get("namespace", ns) != ns:
        raise ApiError(400, "the namespace of the provided object does not match the "
                            "namespace sent on the request")
    name = meta.get("name")
    if not name and meta.get("generateName"):
        name = meta["generateName"] + uuid.uuid4().hex[:5]
    causes = []
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif not is_subdomain(name):
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                       "subdomain must consist of lower case alphanumeric characters, '-' or "
                       "'.', and must start and end with an alphanumeric character"))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(("metadata.labels", "Invalid value: must be a map"))
        labels = {}
    for k, v in labels.items():
        if not valid_label_key(k):
            causes.append((f"metadata.labels", f'Invalid value: "{k}": name part must consist '
                           "of alphanumeric characters, '-', '_' or '.'"))
        if not valid_label_value(v):
            causes.append((f"metadata.labels", f'Invalid value: "{v}": a valid label must be an '
                           "empty string or consist of alphanumeric characters, '-', '_' or '.'"
                           ", and must start and end with an alphanumeric character"))
    spec = body.get("spec")
    if not isinstance(spec, dict):
        causes.append(("spec", "Required value"))
        spec = {}
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        causes.append(("spec.containers", "Required value"))
        containers = []
    for i, c in enumerate(containers):
        f = f"spec.containers[{i}]"
        if not isinstance(c, dict):
            causes.append((f, "Invalid value: must be an object"))
            continue
        if not is_label(c.get("name")):
            causes.append((f + ".name", f'Invalid value: "{c.get("name")}": a lowercase RFC '
                           "1123 label must consist of lower case alphanumeric characters or '-'"))
        if not c.get("image"):
            causes.append((f + ".image", "Required value"))
        res = c.setdefault("resources", {})
        for kind in ("limits", "requests"):
            for rname, q in (res.get(kind) or {}).items():
                try:
                    if parse_quantity(q) < 0:
                        raise ValueError("must be greater than or equal to 0")
                except ValueError as e:
                    causes.append((f"{f}.resources.{kind}[{rname}]", f"Invalid value: {e}"))
        # Requests default to limits (the API server's defaulting).
        if res.get("limits"):
            req = res.setdefault("requests", {})
            for rname, q in res["limits"].items():
                req.setdefault(rname, q)
            for rname, q in req.items():
                if rname in res["limits"]:
                    try:
                        if parse_quantity(q) > parse_quantity(res["limits"][rname]):
                            causes.append((f"{f}.resources.requests", f'Invalid value: "{q}": '
                                           f"must be less than or equal to {rname} limit of "
                                           f"{res['limits'][rname]}"))
                    except ValueError:
                        pass
        for e in c.get("env") or []:
            if not isinstance(e, dict) or not e.get("name"):
                causes.append((f + ".env", "Required value: name"))
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("imagePullPolicy", "IfNotPresent")
    rp = spec.setdefault("restartPolicy", "Always")
    if rp not in ("Always", "OnFailure", "Never"):
        causes.append(("spec.restartPolicy", f'Unsupported value: "{rp}": supported values: '
                       '"Always", "OnFailure", "Never"'))
    if causes:
        raise invalid("Pod", name or "", causes)
    rc = spec.get("runtimeClassName")
    if rc is not None and rc not in cluster.runtime_classes:
        raise ApiError(403, f'pod rejected: RuntimeClass "{rc}" not found', "Forbidden",
                       {"name": name, "kind": "pods"})
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    meta.update({"name": name, "namespace": ns, "uid": str(uuid.uuid4()),
                 "creationTimestamp": now_rfc3339()})
    meta.pop("resourceVersion", None)
    body["kind"], body["apiVersion"] = "Pod", "v1"
    body["status"] = {"phase": "Pending", "qosClass": qos_class(containers)}
    return body


def qos_class(containers):
    guaranteed, any_set = True, False
    for c in containers:
        res = c.get("resources") or {}
        lim, req = res.get("limits") or {}, res.get("requests") or {}
        any_set = any_set or bool(lim) or bool(req)
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r) != lim.get(r):
                guaranteed = False
    return "Guaranteed" if guaranteed else ("Burstable" if any_set else "BestEffort")


# ---------------------------------------------------------------------------------------
# HTTP


def discovery_core():
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "namespaces", "singularName": "namespace", "namespaced": False,
         "kind": "Namespace", "verbs": ["get", "list"], "shortNames": ["ns"]},
        {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
         "verbs": ["get", "list"], "shortNames": ["no"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["create", "delete", "get", "list", "watch"], "shortNames": ["po"],
         "categories": ["all"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
         "verbs": ["get"]},
    ]}


def discovery_metrics():
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "metrics.k8s.io/v1beta1", "resources": [
                {"name": "nodes", "singularName": "", "namespaced": False,
                 "kind": "NodeMetrics", "verbs": ["get", "list"]}]}


def node_object(name, n):
    alloc = n["allocatable"]
    return {"metadata": {"name": name, "uid": n["uid"], "resourceVersion": n["rv"],
                         "creationTimestamp": n["created"],
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64"}},
            "spec": {},
            "status": {"capacity": dict(alloc), "allocatable": dict(alloc),
                       "conditions": [{"type": "Ready", "status": "True", "reason":
                                       "KubeletReady", "message": "kubelet is posting ready "
                                       "status", "lastHeartbeatTime": now_rfc3339(),
                                       "lastTransitionTime": n["created"]}],
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0-fake",
                                    "containerRuntimeVersion": "fake://0",
                                    "operatingSystem": "linux", "architecture": "amd64"}}}


def node_metrics(name, n):
    # metrics-server reports nanocores and KiB; so does the fake, whatever the test set.
    cpu = parse_quantity(n["usage"].get("cpu", 0))
    mem = parse_quantity(n["usage"].get("memory", 0))
    return {"metadata": {"name": name, "creationTimestamp": now_rfc3339(),
                         "labels": {"kubernetes.io/hostname": name}},
            "timestamp": now_rfc3339(), "window": "10.04s",
            "usage": {"cpu": f"{int(round(cpu * 1e9))}n", "memory": f"{int(mem // 1024)}Ki"}}


def age(ts):
    try:
        t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    return f"{s}s" if s < 120 else f"{s // 60}m"


def pod_table(pods, rv):
    """The server-side printing kubectl asks for (meta.k8s.io/v1 Table)."""
    rows = []
    for p in pods:
        cs = p["status"].get("containerStatuses") or []
        ready = sum(1 for c in cs if c.get("ready"))
        status = p["status"].get("phase", "Pending")
        if p["metadata"].get("deletionTimestamp"):
            status = "Terminating"
        rows.append({"cells": [p["metadata"]["name"], f"{ready}/{len(p['spec']['containers'])}",
                               status, 0, age(p["metadata"]["creationTimestamp"]),
                               p["status"].get("podIP", "<none>"),
                               p["spec"].get("nodeName", "<none>")],
                     "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": p["metadata"]}})
    cols = [("Name", "string", "name", 0), ("Ready", "string", "", 0),
            ("Status", "string", "", 0), ("Restarts", "string", "", 0),
            ("Age", "string", "", 0), ("IP", "string", "", 1), ("Node", "string", "", 1)]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": [{"name": n, "type": t, "format": f, "description": n,
                                   "priority": pr} for n, t, f, pr in cols],
            "rows": rows}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube/1"

    # Set on the class by main().
    cluster = None
    token = None
    readonly_token = None
    faults = []
    faults_lock = threading.Lock()

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-kube: %s %s\n" % (self.address_string(), fmt % args))

    # -- plumbing -------------------------------------------------------------------
    def send_json(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_text(self, code, text, ctype="text/plain; charset=utf-8"):
        data = text.encode() if isinstance(text, str) else text
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(400, "chunked request bodies are not supported by the fake")
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, f"couldn't get version/kind; json parse error: {e}")

    def authenticate(self):
        """-> 'rw', 'ro' or raises 401."""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[len("Bearer "):].strip()
            if tok == self.token:
                return "rw"
            if self.readonly_token and tok == self.readonly_token:
                return "ro"
            raise ApiError(401, "Unauthorized")
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        if cert:  # verified against the CA by the TLS layer
            return "rw"
        raise ApiError(401, "Unauthorized")

    def inject_fault(self):
        with self.faults_lock:
            for f in self.faults:
                if f["count"] > 0 and f["method"] in (self.command, "*") and \
                        re.search(f["path"], self.path):
                    f["count"] -= 1
                    fault = dict(f)
                    break
            else:
                return
        if fault.get("delay"):
            time.sleep(fault["delay"])
        if fault.get("code"):
            headers = {}
            if fault.get("retry_after") is not None:
                headers["Retry-After"] = str(fault["retry_after"])
            raise ApiError(fault["code"], fault.get("message") or
                           f"fake fault injected ({fault['code']})", headers=headers)

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        try:
            if parts in (["healthz"], ["readyz"], ["livez"]):
                return self.send_text(200, "ok")
            role = self.authenticate()
            if parts and parts[0] == "_fake":
                return self.control(parts[1:])
            self.inject_fault()
            return self.route(parts, q, role)
        except ApiError as e:
            # A request body we did not read would poison the keep-alive connection.
            if self.command in ("POST", "PUT", "PATCH", "DELETE"):
                self.close_connection = True
            self.send_json(e.code, e.status(), e.headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # a bug in the fake: say so loudly, as a 500 Status
            import traceback
            traceback.print_exc()
            self.send_json(500, ApiError(500, f"fake-kube bug: {e!r}").status())

    def route(self, parts, q, role):
        m, c = self.command, self.cluster
        if m == "GET" and parts == ["version"]:
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake",
                                        "gitCommit": "0" * 40, "gitTreeState": "clean",
                                        "buildDate": "2025-01-01T00:00:00Z",
                                        "goVersion": "go1.23", "compiler": "gc",
                                        "platform": "linux/amd64"})
        if m == "GET" and parts == ["api"]:
            host = self.server.server_address
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{
                                            "clientCIDR": "0.0.0.0/0",
                                            "serverAddress": f"{host[0]}:{host[1]}"}]})
        if m == "GET" and parts == ["apis"]:
            gv = {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": "metrics.k8s.io", "versions": [gv], "preferredVersion": gv}]})
        if m == "GET" and parts == ["api", "v1"]:
            return self.send_json(200, discovery_core())
        if m == "GET" and parts == ["apis", "metrics.k8s.io", "v1beta1"]:
            return self.send_json(200, discovery_metrics())
        if parts[:2] == ["api", "v1"] and len(parts) >= 3 and parts[2] == "nodes":
            if m != "GET":
                raise ApiError(405, f"the server does not allow this method on the requested "
                                    f"resource")
            with c.lock:
                nodes = [node_object(n, v) for n, v in sorted(c.nodes.items())]
                rv = str(c.rv)
            if len(parts) == 3:
                return self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                                            "metadata": {"resourceVersion": rv}, "items": nodes})
            if len(parts) == 4:
                for n in nodes:
                    if n["metadata"]["name"] == parts[3]:
                        return self.send_json(200, dict(n, kind="Node", apiVersion="v1"))
                raise ApiError(404, f'nodes "{parts[3]}" not found', details={
                    "name": parts[3], "kind": "nodes"})
        if parts[:4] == ["apis", "metrics.k8s.io", "v1beta1", "nodes"]:
            if m != "GET":
                raise ApiError(405, "the server does not allow this method on the requested "
                                    "resource")
            with c.lock:
                if not c.metrics_available:
                    raise ApiError(503, "the server is currently unable to handle the request "
                                        "(get nodes.metrics.k8s.io)")
                items = [node_metrics(n, v) for n, v in sorted(c.nodes.items())]
            if len(parts) == 4:
                return self.send_json(200, {"kind": "NodeMetricsList",
                                            "apiVersion": "metrics.k8s.io/v1beta1",
                                            "metadata": {}, "items": items})
            for it in items:
                if it["metadata"]["name"] == parts[4]:
                    return self.send_json(200, dict(it, kind="NodeMetrics",
                                                    apiVersion="metrics.k8s.io/v1beta1"))
            raise ApiError(404, f'nodemetrics.metrics.k8s.io "{parts[4]}" not found')
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 4:
            ns = parts[3]
            with c.lock:
                if ns not in c.namespaces:
                    raise ApiError(404, f'namespaces "{ns}" not found',
                                   details={"name": ns, "kind": "namespaces"})
            if len(parts) == 4 and m == "GET":
                return self.send_json(200, {"kind": "Namespace", "apiVersion": "v1",
                                            "metadata": {"name": ns}, "spec": {},
                                            "status": {"phase": "Active"}})
            if len(parts) >= 5 and parts[4] == "pods":
                return self.pods(ns, parts[5:], q, role)
        if parts == ["api", "v1", "pods"] and m == "GET":
            return self.pods(None, [], q, role)
        raise ApiError(404, "the server could not find the requested resource")

    # -- pods -----------------------------------------------------------------------
    def pods(self, ns, rest, q, role):
        m, c = self.command, self.cluster
        if m in ("POST", "DELETE", "PUT", "PATCH") and role != "rw":
            verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}[m]
            raise ApiError(403, f'pods is forbidden: User "system:serviceaccount:{ns}:readonly" '
                                f'cannot {verb} resource "pods" in API group "" in the '
                                f'namespace "{ns}"', details={"kind": "pods"})
        if not rest:
            if m == "GET":
                if q.get("watch") in ("true", "1"):
                    return self.watch(ns, q)
                return self.list_pods(ns, q)
            if m == "POST":
                body = self.read_body()
                with c.lock:
                    pod = admit_pod(c, ns, body)
                    key = (ns, pod["metadata"]["name"])
                    if key in c.pods:
                        raise ApiError(409, f'pods "{key[1]}" already exists', "AlreadyExists",
                                       {"name": key[1], "kind": "pods"})
                    if q.get("dryRun") == "All":
                        return self.send_json(201, pod)
                    pod["metadata"]["resourceVersion"] = c.next_rv()
                    c.pods[key] = pod
                    c.order[key] = int(pod["metadata"]["resourceVersion"])
                    c.emit("ADDED", pod)
                    c.schedule_pending()
                    return self.send_json(201, pod)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        name = rest[0]
        if len(rest) == 2 and rest[1] == "log" and m == "GET":
            with c.lock:
                if (ns, name) not in c.pods:
                    raise ApiError(404, f'pods "{name}" not found',
                                   details={"name": name, "kind": "pods"})
            try:
                with open(os.path.join(c.logdir, f"{ns}_{name}.log"), "rb") as f:
                    return self.send_text(200, f.read())
            except FileNotFoundError:
                return self.send_text(200, b"")
        if len(rest) != 1:
            raise ApiError(404, "the server could not find the requested resource")
        key = (ns, name)
        if m == "GET":
            with c.lock:
                pod = c.pods.get(key)
                if pod is None:
                    raise ApiError(404, f'pods "{name}" not found',
                                   details={"name": name, "kind": "pods"})
                return self.send_json(200, pod)
        if m == "DELETE":
            body = self.read_body() or {}
            grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
            with c.lock:
                pod = c.pods.get(key)
                if pod is None:
                    raise ApiError(404, f'pods "{name}" not found',
                                   details={"name": name, "kind": "pods"})
                if grace is None:
                    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
                grace = int(grace)
                running = key in c.procs and pod["status"].get("phase") == "Running"
                if grace > 0 and running:
                    # Graceful: marked for deletion now, gone once its processes are.
                    if not pod["metadata"].get("deletionTimestamp"):
                        def mark(p, g=grace):
                            p["metadata"]["deletionTimestamp"] = now_rfc3339()
                            p["metadata"]["deletionGracePeriodSeconds"] = g
                        c.update(pod, mark)
                        threading.Thread(target=c.remove, args=(key, grace), daemon=True).start()
                    return self.send_json(200, pod)
            c.remove(key, 0)
            return self.send_json(200, pod)
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def selected(self, q):
        lsel = parse_selector(q.get("labelSelector"))
        fsel = parse_field_selector(q.get("fieldSelector"))
        return lambda pod: all(p(pod["metadata"].get("labels") or {}) for p in lsel) and \
            all(p(pod) for p in fsel)

    def list_pods(self, ns, q):
        c = self.cluster
        match = self.selected(q)
        with c.lock:
            rv = q.get("resourceVersion")
            if rv and q.get("resourceVersionMatch") == "Exact" and rv != str(c.rv):
                raise ApiError(410, f"The resourceVersion for the provided list is too old.",
                               "Expired")
            items = [p for (pns, _), p in sorted(c.pods.items())
                     if (ns is None or pns == ns) and match(p)]
            items = json.loads(json.dumps(items))
            cur = str(c.rv)
        accept = self.headers.get("Accept", "")
        if "as=Table" in accept:
            return self.send_json(200, pod_table(items, cur))
        for p in items:  # list items carry no kind/apiVersion
            p.pop("kind", None)
            p.pop("apiVersion", None)
        return self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                                    "metadata": {"resourceVersion": cur}, "items": items})

    def watch(self, ns, q):
        c = self.cluster
        match = self.selected(q)
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv = q.get("resourceVersion")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True

        def send(etype, obj):
            data = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def in_scope(pns, pod):
            return (ns is None or pns == ns) and match(pod)
        with c.lock:
            if rv in (None, "", "0"):
                # "Get State and Start at Most Recent": synthetic ADDED for what exists.
                initial = [json.loads(json.dumps(p)) for (pns, _), p in sorted(c.pods.items())
                           if in_scope(pns, p)]
                last = c.rv
            else:
                try:
                    last = int(rv)
                except ValueError:
                    initial, last = None, None
                if last is None:
                    pass
                elif last < c.oldest:
                    initial = "expired"
                else:
                    initial = []
        if last is None:
            send("ERROR", ApiError(400, f"invalid resource version: {rv!r}").status())
            return self.end_chunks()
        if initial == "expired":
            send("ERROR", ApiError(410, f"too old resource version: {rv} ({c.oldest})",
                                   "Expired").status())
            return self.end_chunks()
        for p in initial:
            send("ADDED", p)
        while True:
            with c.lock:
                batch = [(erv, et, p) for erv, et, pns, p in c.events
                         if erv > last and in_scope(pns, p)]
                if batch:
                    last = batch[-1][0]
                else:
                    # Every event was seen, in scope or not.
                    last = max(last, c.events[-1][0] if c.events else last)
                    left = deadline - time.monotonic()
                    if left <= 0 or c.closing:
                        break
                    c.changed.wait(timeout=min(left, 1.0))
                    continue
            for _, et, p in batch:
                send(et, p)
        self.end_chunks()

    def end_chunks(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass

    # -- test control ---------------------------------------------------------------
    def control(self, parts):
        c, m = self.cluster, self.command
        if parts == ["nodes"] and m == "PUT":
            body = self.read_body() or {}
            try:
                c.set_nodes(body)
            except ValueError as e:
                raise ApiError(400, str(e))
            return self.send_json(200, {"ok": True})
        if parts == ["metrics"] and m == "PUT":
            body = self.read_body() or {}
            with c.lock:
                c.metrics_available = bool(body.get("available", True))
            return self.send_json(200, {"ok": True})
        if parts == ["faults"] and m == "POST":
            body = self.read_body() or {}
            fault = {"method": body.get("method", "*"), "path": body.get("path", ".*"),
                     "code": int(body.get("code", 0)), "count": int(body.get("count", 1)),
                     "retry_after": body.get("retry_after"), "delay": float(body.get("delay", 0)),
                     "message": body.get("message")}
            with self.faults_lock:
                self.faults.append(fault)
            return self.send_json(200, {"ok": True})
        if parts == ["faults"] and m == "DELETE":
            with self.faults_lock:
                self.faults.clear()
            return self.send_json(200, {"ok": True})
        if parts == ["compact"] and m == "POST":
            c.compact()
            return self.send_json(200, {"ok": True, "resourceVersion": str(c.rv)})
        if parts == ["pods"] and m == "GET":
            with c.lock:
                out = [{"namespace": k[0], "name": k[1], "pid": c.procs[k].pid if k in c.procs
                        else None, "alive": k in c.procs and c.procs[k].poll() is None,
                        "ip": p["status"].get("podIP")} for k, p in sorted(c.pods.items())]
            return self.send_json(200, out)
        raise ApiError(404, "no such fake control endpoint")


# ---------------------------------------------------------------------------------------
# TLS material and kubeconfig


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_leaf(d, name, subj, ext):
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d)


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def write_kubeconfig(path, url, ca_path, user_lines, ns="default"):
    # Written the way kubectl writes it (block mappings, lists of named entries).
    text = f"""apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {b64file(ca_path)}
    server: {url}
  name: fake
contexts:
- context:
    cluster: fake
    namespace: {ns}
    user: fake-user
  name: fake
current-context: fake
kind: Config
preferences: {{}}
users:
- name: fake-user
  user:
{user_lines}"""
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True, help="certificates, kubeconfigs and pod logs")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default=None, help="the bearer token (default: random)")
    ap.add_argument("--ip-prefix", default="127.0.9",
                    help="pods get ADDR.2, ADDR.3, ... (give each fake its own); "
                         "'::1': the pod gets the IPv6 loopback address (one pod at a time)")
    ap.add_argument("--history", type=int, default=1000, help="watch events kept")
    ap.add_argument("--runtime-class", action="append", default=None,
                    help="a RuntimeClass that exists (default: gvisor)")
    ap.add_argument("--namespace", action="append", default=[],
                    help="an extra namespace that exists")
    args = ap.parse_args()
    ipaddress.ip_address(args.ip_prefix if args.ip_prefix == "::1" else args.ip_prefix + ".1")

    d = os.path.abspath(args.dir)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    make_ca(d, "ca")
    make_ca(d, "wrong-ca")
    make_leaf(d, "server", "/CN=fake-kube-apiserver",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\n")
    make_leaf(d, "client", "/O=system:masters/CN=fake-admin",
              "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n")

    token = args.token or uuid.uuid4().hex
    cluster = Cluster(args.ip_prefix, args.history, args.runtime_class or ["gvisor"],
                      os.path.join(d, "logs"))
    cluster.namespaces.update(args.namespace)
    Handler.cluster, Handler.token = cluster, token
    Handler.readonly_token = "ro-" + token

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL   # client certificates are one way to authenticate

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    srv = Server((args.host, args.port), Handler)
    # The handshake runs in the handler thread (first read), not in accept().
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    port = srv.server_address[1]
    url = f"https://{args.host}:{port}"

    kc = os.path.join(d, "kubeconfig")
    write_kubeconfig(kc, url, os.path.join(d, "ca.crt"), f"    token: {token}\n")
    kcc = os.path.join(d, "kubeconfig-cert")
    write_kubeconfig(kcc, url, os.path.join(d, "ca.crt"),
                     f"    client-certificate-data: {b64file(os.path.join(d, 'client.crt'))}\n"
                     f"    client-key-data: {b64file(os.path.join(d, 'client.key'))}\n")

    def stop(signum, frame):
        cluster.shutdown()
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    print(json.dumps({"url": url, "port": port, "dir": d, "token": token,
                      "readonly_token": Handler.readonly_token,
                      "ca_file": os.path.join(d, "ca.crt"),
                      "wrong_ca_file": os.path.join(d, "wrong-ca.crt"),
                      "kubeconfig": kc, "kubeconfig_cert": kcc,
                      "ip_prefix": args.ip_prefix}), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
