"""End to end: hybrid placement through real gateways behind a real NGINX (DESIGN section 6).

Two fake clusters (fake_kube.py: local on 127.0.21.x, cloud on 127.0.22.x, each pod a real
`sandboxctl serve`), a cloud gateway (`sandboxctl serve --placement kubernetes`), two local
gateways (`--placement hybrid --cloud-gateway ...`) behind NGINX running deploy/nginx.conf
with its ports rewritten. Shows: sessions stay local until the water level passes, then
burst to the cloud; each session's requests keep reaching the same kernel; code runs and
files round-trip; killing and restarting a gateway loses no session; deleting every
session leaves no pod. Loopback only; every process is ours and stopped at the end.

Run: SANDBOXCTL=build/cli/sandboxctl python3 -m pytest -s tests/placement/test_e2e.py
(-s prints the latency figures).
"""

import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import FakeKube

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SANDBOXCTL = os.environ.get("SANDBOXCTL", str(ROOT / "build" / "cli" / "sandboxctl"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = [
    pytest.mark.skipif(not os.access(SANDBOXCTL, os.X_OK), reason=f"{SANDBOXCTL} is not built"),
    pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx is not installed"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http:
    """A keep-alive JSON client for one server."""

    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port = host, port
        self.conn = None

    def call(self, method, path, body=None, headers=None, raw=False, timeout=60):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        hdrs = dict(headers or {})
        if data is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/json"
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                payload = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()  # a keep-alive connection the server closed: once more
                if attempt:
                    raise
        if raw:
            return r.status, payload
        try:
            return r.status, json.loads(payload)
        except ValueError:
            return r.status, payload.decode(errors="replace")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def wait_http(port, path="/healthz", timeout=20, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection(host, port, timeout=1)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{host}:{port}{path} never answered")


class Proc:
    def __init__(self, argv, log):
        self.argv, self.log = argv, log
        self.p = None

    def start(self):
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=open(self.log, "ab"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def pod_template(path, fake_dir):
    """The built-in template's shape, running this build's sandboxctl on the pod's address."""
    tmpl = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "libsandbox"}},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [{
            "name": "sandbox", "image": "libsandbox:0.1.0",
            "command": [SANDBOXCTL, "serve", "--listen", "$(POD_IP):8080", "--quiet",
                        "--isolation", "rlimit", "--close-sessions-on-exit", "--state-dir", f"{fake_dir}/pod-$(POD_NAME)"],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1}}]}}
    path.write_text(json.dumps(tmpl))
    return path


def nginx_conf(tmp, listen, gateways):
    """deploy/nginx.conf with our ports, run in the foreground with its files under `tmp`."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("listen 127.0.0.1:18080;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("127.0.0.1:18081", f"127.0.0.1:{gateways[0]}")
    conf = conf.replace("127.0.0.1:18082", f"127.0.0.1:{gateways[1]}")
    conf = re.sub(r"worker_processes\s+\S+;", "worker_processes 1;", conf)
    head = (f"daemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log info;\n" +
            ("user root;\n" if os.geteuid() == 0 else ""))
    temps = "".join(f"  {d}_temp_path {tmp}/{d};\n"
                    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = conf.replace("http {\n", "http {\n" + temps + f"  access_log {tmp}/nginx-access.log;\n", 1)
    path = tmp / "nginx.conf"
    path.write_text(head + conf)
    return path


@pytest.fixture
def base_dir():
    """A 0711 directory of our own: session code runs as another uid under rlimit and must pass
    through it (pytest keeps its own temporary root 0700, and resets it when run in parallel)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="sbx-e2e-"))
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def world(base_dir):
    tmp_path = base_dir
    procs, fakes = [], []
    try:
        local = FakeKube(_mk(tmp_path / "local-fake"), ip_prefix="127.0.21")
        fakes.append(local)
        cloud = FakeKube(_mk(tmp_path / "cloud-fake"), ip_prefix="127.0.22")
        fakes.append(cloud)
        tl = pod_template(tmp_path / "local-template.json", local.info["dir"])
        tc = pod_template(tmp_path / "cloud-template.json", cloud.info["dir"])

        cloud_port = free_port()
        cloud_gw = Proc([SANDBOXCTL, "serve", "--listen", f"127.0.0.1:{cloud_port}", "--quiet",
                         "--isolation", "rlimit", "--close-sessions-on-exit", "--state-dir", str(_mk(tmp_path / "cloud-gw")),
                         "--placement", "kubernetes", "--kubeconfig", cloud.info["kubeconfig"],
                         "--pod-template", str(tc), "--gateway-name", "cloud-gw"],
                        tmp_path / "cloud-gw.log").start()
        procs.append(cloud_gw)
        wait_http(cloud_port)

        gw_ports = [free_port(), free_port()]
        gws = []
        for i, port in enumerate(gw_ports):
            gw = Proc([SANDBOXCTL, "serve", "--listen", f"127.0.0.1:{port}", "--quiet",
                       "--isolation", "rlimit", "--close-sessions-on-exit", "--state-dir", str(_mk(tmp_path / f"gw{i}")),
                       "--placement", "hybrid", "--kubeconfig", local.info["kubeconfig"],
                       "--pod-template", str(tl), "--cloud-gateway", f"http://127.0.0.1:{cloud_port}",
                       "--water-level", "0.8", "--gateway-name", f"gw{i}"],
                      tmp_path / f"gw{i}.log").start()
            procs.append(gw)
            gws.append(gw)
        for port in gw_ports:
            wait_http(port)

        ng_port = free_port()
        ng_tmp = _mk(tmp_path / "nginx")
        ng = Proc([NGINX, "-c", str(nginx_conf(ng_tmp, ng_port, gw_ports)), "-p", str(ng_tmp)],
                  tmp_path / "nginx.log").start()
        procs.append(ng)
        wait_http(ng_port)
        yield {"local": local, "cloud": cloud, "cloud_port": cloud_port, "gws": gws,
               "gw_ports": gw_ports, "nginx": ng_port, "tmp": tmp_path}
    finally:
        for p in reversed(procs):
            p.kill(signal.SIGTERM)
        for f in fakes:
            f.stop()


def _mk(p):
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o711)  # pods running code as another uid pass through it
    return p


def set_usage(fake, cpu):
    st, _ = fake.request("PUT", "/_fake/nodes", {"node-a": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "usage": {"cpu": cpu, "memory": "1Gi"}}})
    assert st == 200


def pods(fake):
    st, out = fake.request("GET", "/_fake/pods")
    assert st == 200
    return out


def wait_ready(api, sid, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, s = api.call("GET", f"/sessions/{sid}")
        assert st == 200, s
        if s["status"] == "Ready":
            return s
        assert s["status"] == "Pending", s
        time.sleep(0.01)
    raise AssertionError(f"{sid} never became Ready")


def run(api, sid, code, timeout=30):
    st, r = api.call("POST", f"/{sid}/exec/python", {"code": code})
    assert st == 202, r
    st, r = api.call("GET", f"/{sid}/result?wait={timeout * 1000}&execution_id={r['execution_id']}")
    assert st == 200, r
    assert r["status"] == "Finished", r
    return r


def upload(api, sid, name, data):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return api.call("POST", f"/{sid}/files/upload", body,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})


def p50_one_plus_one(api, sid, n=40):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = run(api, sid, "1+1")
        times.append((time.perf_counter() - t0) * 1000)
        assert r["result"] == "2", r
    return statistics.median(times)


def test_hybrid_bursts_sticks_survives_and_cleans_up(world):
    local, cloud = world["local"], world["cloud"]
    api = Http(world["nginx"])

    # 1. Below the water level (0.25 of 4 cores): sessions go to the local cluster.
    set_usage(local, "1")
    local_ids, ready_ms = [f"loc-{i}" for i in range(3)], []
    for sid in local_ids:
        t0 = time.perf_counter()
        st, s = api.call("POST", "/sessions", {"id": sid})
        assert st == 201, s
        assert s["placement"] == "kubernetes" and s["status"] == "Pending", s
        wait_ready(api, sid)
        ready_ms.append((time.perf_counter() - t0) * 1000)
    assert len(pods(local)) == 3 and not pods(cloud)

    # 2. Above it (3.6 of 4 cores = 0.90 >= 0.80): new sessions burst to the cloud.
    set_usage(local, "3600m")
    cloud_ids = [f"cld-{i}" for i in range(2)]
    for sid in cloud_ids:
        st, s = api.call("POST", "/sessions", {"id": sid})
        assert st == 201, s
        assert s["placement"] == "cloud", s
        assert wait_ready(api, sid)["placement"] == "cloud"
    assert len(pods(local)) == 3 and len(pods(cloud)) == 2
    # A seed route on an unknown id is placed too (here: burst), then served.
    assert run(api, "seed-auto", "6*7")["result"] == "42"
    assert len(pods(cloud)) == 3
    everyone = local_ids + cloud_ids + ["seed-auto"]

    # 3. Code runs and state sticks (each session keeps reaching its own kernel); files
    #    round-trip through NGINX, a gateway and the pod, and live in that pod only.
    payload = os.urandom(300_000)
    for sid in everyone:
        run(api, sid, f"x = {len(sid)}")
        st, info = upload(api, sid, "data.bin", payload)
        assert st == 200, info
        st, body = api.call("GET", f"/{sid}/files/download/data.bin", raw=True)
        assert st == 200 and body == payload
        assert run(api, sid, "len(open('data.bin','rb').read())")["result"] == str(len(payload))
        st, listing = api.call("GET", f"/{sid}/files/list")
        assert [f["name"] for f in listing["files"]] == ["data.bin"], listing
    for sid in everyone:
        where = local if sid in local_ids else cloud
        other = cloud if where is local else local
        found = list(pathlib.Path(where.info["dir"]).glob(f"pod-sbx-{sid}-*/**/data.bin"))
        assert found, f"{sid}'s file is not in its pod"
        assert not list(pathlib.Path(other.info["dir"]).glob(f"pod-sbx-{sid}-*/**/data.bin"))

    # 4. Latency: 1+1 through NGINX + a gateway, through a gateway alone, and to the pod.
    sid = local_ids[0]
    pod_ip = next(p["ip"] for p in pods(local) if p["name"].startswith("sbx-loc-0-"))
    gw_api = Http(world["gw_ports"][0])
    p50 = {"pod": p50_one_plus_one(Http(8080, host=pod_ip), sid),
           "gateway": p50_one_plus_one(gw_api, sid),
           "nginx+gateway": p50_one_plus_one(api, sid)}
    print(f"\nPOST /sessions -> Ready (local fake, via NGINX): median {statistics.median(ready_ms):.0f} ms "
          f"({', '.join(f'{m:.0f}' for m in ready_ms)})")
    print("p50 of python 1+1 (exec + result?wait, keep-alive): " +
          ", ".join(f"{k} {v:.2f} ms" for k, v in p50.items()))

    # 5. Kill a gateway: NGINX sends its sessions to the other, which finds them (pods by
    #    name, cloud sessions through the cloud gateway). Restart it: it rebuilds its record.
    api.close()
    gw0 = world["gws"][0]
    gw0.kill(signal.SIGKILL)
    for sid in everyone:
        assert run(api, sid, "x")["result"] == str(len(sid)), sid
    gw0.start()
    wait_http(world["gw_ports"][0])
    gw_api = Http(world["gw_ports"][0])
    st, listing = gw_api.call("GET", "/sessions")
    assert st == 200
    assert {s["id"] for s in listing["sessions"]} >= set(local_ids), listing
    for sid in everyone:
        assert run(api, sid, "x")["result"] == str(len(sid)), sid
        assert run(gw_api, sid, "x")["result"] == str(len(sid)), sid

    # 6. Deleting every session leaves no pod in either cluster.
    for sid in everyone:
        st, r = api.call("DELETE", f"/sessions/{sid}")
        assert st == 200, r
        st, _ = api.call("GET", f"/sessions/{sid}")
        assert st == 404
    deadline = time.monotonic() + 20
    while (pods(local) or pods(cloud)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pods(local) and not pods(cloud)


def test_idle_sessions_lose_their_pods(base_dir):
    """--idle-timeout reaches the pods: an unused session's pod is deleted by its gateway."""
    tmp_path = base_dir
    fake = FakeKube(_mk(tmp_path / "fake"), ip_prefix="127.0.23")
    gw = None
    try:
        port = free_port()
        gw = Proc([SANDBOXCTL, "serve", "--listen", f"127.0.0.1:{port}", "--quiet", "--isolation", "rlimit",
                   "--close-sessions-on-exit", "--state-dir", str(_mk(tmp_path / "gw")), "--placement", "kubernetes",
                   "--kubeconfig", fake.info["kubeconfig"], "--idle-timeout", "1",
                   "--pod-template", str(pod_template(tmp_path / "t.json", fake.info["dir"]))],
                  tmp_path / "gw.log").start()
        wait_http(port)
        api = Http(port)
        st, s = api.call("POST", "/sessions", {"id": "idle-1"})
        assert st == 201, s
        wait_ready(api, "idle-1")
        assert run(api, "idle-1", "1+1")["result"] == "2"
        assert len(pods(fake)) == 1
        deadline = time.monotonic() + 20  # idle 1 s, swept every 2 s
        gone = lambda: not pods(fake) and api.call("GET", "/sessions/idle-1")[0] == 404  # noqa: E731
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pods(fake), "the idle session's pod is still there"
        assert api.call("GET", "/sessions/idle-1")[0] == 404
    finally:
        if gw:
            gw.kill(signal.SIGTERM)
        fake.stop()


def test_placed_sessions_belong_to_their_tenant(base_dir):
    """With tokens, a session on a pod is its tenant's alone, at the gateway as locally:
    another token gets the answers of a free id (404 for lifecycle routes; a seed route makes
    that token's own session, here on the gateway since the pod name is taken), never
    alice's session, and does not see hers listed."""
    fake = FakeKube(_mk(base_dir / "fake"), ip_prefix="127.0.23")
    tokens = base_dir / "tokens"
    tokens.write_text("alice: tok-alice\nbob: tok-bob\n")
    port = free_port()
    gw = Proc([SANDBOXCTL, "serve", "--listen", f"127.0.0.1:{port}", "--quiet", "--isolation", "rlimit",
               "--close-sessions-on-exit", "--state-dir", str(_mk(base_dir / "gw")), "--placement", "kubernetes",
               "--kubeconfig", fake.info["kubeconfig"],
               "--pod-template", str(pod_template(base_dir / "template.json", fake.info["dir"])),
               "--token-file", str(tokens)], base_dir / "gw.log").start()
    try:
        wait_http(port)
        api = Http(port)
        alice = {"Authorization": "Bearer tok-alice"}
        bob = {"Authorization": "Bearer tok-bob"}
        st, s = api.call("POST", "/sessions", {"id": "tenant-1"}, headers=alice)
        assert st == 201 and s["placement"] == "kubernetes", s
        deadline = time.monotonic() + 60
        while s["status"] != "Ready":
            assert time.monotonic() < deadline and s["status"] == "Pending", s
            time.sleep(0.02)
            st, s = api.call("GET", "/sessions/tenant-1", headers=alice)
            assert st == 200, s

        for method, path, body in (("GET", "/sessions/tenant-1", None),
                                   ("DELETE", "/sessions/tenant-1", None)):
            st, r = api.call(method, path, body, headers=bob)
            assert st == 404, (method, path, st, r)
        st, listed = api.call("GET", "/sessions", headers=bob)
        assert st == 200 and all(x["id"] != "tenant-1" for x in listed["sessions"]), listed
        # Bob's seed route makes bob's own tenant-1, not a relay to alice's pod.
        st, r = api.call("POST", "/tenant-1/exec/shell", {"code": "echo bob > owner.txt"}, headers=bob)
        assert st == 202, r
        st, r = api.call("GET", "/tenant-1/result?wait=20000", headers=bob)
        assert st == 200 and r["status"] == "Finished", r
        st, s = api.call("GET", "/sessions/tenant-1", headers=bob)
        assert st == 200 and s["placement"] == "local", s
        st, files = api.call("GET", "/tenant-1/files/list", headers=alice)
        assert st == 200 and all(f["name"] != "owner.txt" for f in files["files"]), files
        st, listed = api.call("GET", "/sessions", headers=alice)
        assert st == 200 and any(x["id"] == "tenant-1" for x in listed["sessions"]), listed
        st, r = api.call("DELETE", "/sessions/tenant-1", headers=bob)
        assert st == 200, r
        assert pods(fake), "bob's delete took alice's pod"

        st, r = api.call("POST", "/tenant-1/exec/shell", {"code": "echo $((6*7))"}, headers=alice)
        assert st == 202, r
        st, r = api.call("GET", "/tenant-1/result?wait=20000", headers=alice)
        assert st == 200 and r["stdout"] == "42\n", r
        st, r = api.call("DELETE", "/sessions/tenant-1", headers=alice)
        assert st == 200, r
        assert not pods(fake), "the pod outlived its session"
    finally:
        gw.kill(signal.SIGTERM)
        fake.stop()
