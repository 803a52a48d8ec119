"""The fake API server speaks the real API: kubectl drives it, and it is strict where the
real one is (auth, names, conflicts, expired watches, selectors), and its pods are real
processes that are killed on delete."""

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

KUBECTL = shutil.which("kubectl")


def pod(name, labels=None, probe=True, cpu="100m", memory="64Mi"):
    c = {"name": "main", "image": "fake",
         "command": [sys.executable, "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
         "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
         "resources": {"limits": {"cpu": cpu, "memory": memory}}}
    if probe:
        c["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": "libsandbox"}},
            "spec": {"restartPolicy": "Never", "containers": [c]}}


def wait_ready(fk, name, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, p = fk.request("GET", f"/api/v1/namespaces/default/pods/{name}")
        assert st == 200
        conds = {c["type"]: c["status"] for c in p["status"].get("conditions", [])}
        if conds.get("Ready") == "True":
            return p
        time.sleep(0.05)
    raise AssertionError(f"pod {name} never Ready: {p['status']}")


def test_auth_is_required(fake_kube):
    st, body = fake_kube.request("GET", "/api/v1/namespaces/default/pods", token="wrong")
    assert st == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    st, body = fake_kube.request("POST", "/api/v1/namespaces/default/pods", pod("x"),
                                 token=fake_kube.info["readonly_token"])
    assert st == 403 and body["reason"] == "Forbidden"


def test_tls_is_verified(fake_kube):
    bad = ssl.create_default_context(cafile=fake_kube.info["wrong_ca_file"])
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(fake_kube.url + "/version", context=bad, timeout=5)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_gets_pods(fake_kube, tmp_path):
    assert fake_kube.request("POST", "/api/v1/namespaces/default/pods",
                             pod("web-1", {"app": "libsandbox", "sid": "s1"}))[0] == 201
    wait_ready(fake_kube, "web-1")
    for kc in ("kubeconfig", "kubeconfig_cert"):
        out = subprocess.run([KUBECTL, "--kubeconfig", fake_kube.info[kc], "--cache-dir",
                              str(tmp_path / kc), "get", "pods", "-l", "app=libsandbox"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]
        assert lines[1].split()[:3] == ["web-1", "1/1", "Running"]
    out = subprocess.run([KUBECTL, "--kubeconfig", fake_kube.info["kubeconfig"], "--cache-dir",
                          str(tmp_path / "c"), "delete", "pod", "web-1", "--grace-period=0",
                          "--force"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr


def test_pod_lifecycle_real_process(fake_kube):
    st, created = fake_kube.request("POST", "/api/v1/namespaces/default/pods", pod("p1"))
    assert st == 201
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    assert created["status"]["phase"] == "Pending"
    assert created["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m",
                                                                        "memory": "64Mi"}
    p = wait_ready(fake_kube, "p1")
    ip = p["status"]["podIP"]
    assert ip.startswith("127.0.9.")
    with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as r:
        assert r.status == 200
    st, dup = fake_kube.request("POST", "/api/v1/namespaces/default/pods", pod("p1"))
    assert st == 409 and dup["reason"] == "AlreadyExists"
    kubelet = fake_kube.request("GET", "/_fake/pods")[1]
    pid = kubelet[0]["pid"]
    st, _ = fake_kube.request("DELETE", "/api/v1/namespaces/default/pods/p1?gracePeriodSeconds=0")
    assert st == 200
    assert not os.path.exists(f"/proc/{pid}") or \
        open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    st, gone = fake_kube.request("GET", "/api/v1/namespaces/default/pods/p1")
    assert st == 404 and gone["reason"] == "NotFound" and gone["code"] == 404


def test_invalid_names_and_namespaces(fake_kube):
    st, body = fake_kube.request("POST", "/api/v1/namespaces/default/pods", pod("Bad_Name"))
    assert st == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    st, body = fake_kube.request("POST", "/api/v1/namespaces/nope/pods", pod("ok"))
    assert st == 404
    bad = pod("lbl", {"sid": "not a label"})
    assert fake_kube.request("POST", "/api/v1/namespaces/default/pods", bad)[0] == 422
    rc = pod("rc")
    rc["spec"]["runtimeClassName"] = "kata"
    assert fake_kube.request("POST", "/api/v1/namespaces/default/pods", rc)[0] == 403


def test_label_selectors(fake_kube):
    for name, sid in (("a", "s1"), ("b", "s2"), ("c", "s3")):
        p = pod(name, {"app": "libsandbox", "sid": sid}, probe=False)
        assert fake_kube.request("POST", "/api/v1/namespaces/default/pods", p)[0] == 201

    def names(sel):
        st, lst = fake_kube.request("GET", "/api/v1/namespaces/default/pods?labelSelector=" +
                                    urllib.parse.quote(sel))
        assert st == 200 and lst["kind"] == "PodList", lst
        assert "kind" not in (lst["items"] or [{}])[0]
        return sorted(i["metadata"]["name"] for i in lst["items"])
    assert names("app=libsandbox") == ["a", "b", "c"]
    assert names("app=libsandbox,sid=s2") == ["b"]
    assert names("sid!=s2") == ["a", "c"]
    assert names("sid in (s1,s3)") == ["a", "c"]
    assert names("app=other") == []
    st, _ = fake_kube.request("GET", "/api/v1/namespaces/default/pods?labelSelector=a%3D%3D%3Db")
    assert st == 400


def watch_events(fk, query, want, timeout=10):
    """Reads watch events until `want` of them arrived (or the stream ends)."""
    req = urllib.request.Request(f"{fk.url}/api/v1/namespaces/default/pods?watch=true&{query}")
    req.add_header("Authorization", f"Bearer {fk.token}")
    events = []
    with urllib.request.urlopen(req, context=fk.ctx, timeout=timeout) as r:
        for line in r:
            events.append(json.loads(line))
            if len(events) >= want:
                break
    return events


def test_watch_and_expired_resource_version(fake_kube):
    st, lst = fake_kube.request("GET", "/api/v1/namespaces/default/pods")
    rv0 = lst["metadata"]["resourceVersion"]
    assert fake_kube.request("POST", "/api/v1/namespaces/default/pods", pod("w1"))[0] == 201
    wait_ready(fake_kube, "w1")
    events = watch_events(fake_kube, f"resourceVersion={rv0}&labelSelector=app%3Dlibsandbox", 3)
    assert events[0]["type"] == "ADDED"
    assert all(e["type"] == "MODIFIED" for e in events[1:])
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv0)
    fake_kube.request("POST", "/_fake/compact")
    events = watch_events(fake_kube, f"resourceVersion={rv0}", 1)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_nodes_and_metrics(fake_kube):
    fake_kube.request("PUT", "/_fake/nodes", {"n1": {"allocatable": {"cpu": "2", "memory": "4Gi"},
                                                     "usage": {"cpu": "1500m", "memory": "1Gi"}}})
    st, nodes = fake_kube.request("GET", "/api/v1/nodes")
    assert st == 200 and nodes["items"][0]["status"]["allocatable"]["cpu"] == "2"
    st, m = fake_kube.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert st == 200 and m["items"][0]["usage"] == {"cpu": "1500000000n", "memory": "1048576Ki"}
    fake_kube.request("PUT", "/_fake/metrics", {"available": False})
    st, _ = fake_kube.request("GET", "/apis/metrics.k8s.io/v1beta1/nodes")
    assert st == 503
    # A pod that does not fit stays Pending, Unschedulable.
    big = pod("big", cpu="3", probe=False)
    assert fake_kube.request("POST", "/api/v1/namespaces/default/pods", big)[0] == 201
    time.sleep(0.2)
    st, p = fake_kube.request("GET", "/api/v1/namespaces/default/pods/big")
    assert p["status"]["phase"] == "Pending"
    assert p["status"]["conditions"][0]["reason"] == "Unschedulable"


def test_fault_injection(fake_kube):
    fake_kube.request("POST", "/_fake/faults", {"method": "GET", "path": "/pods", "code": 429,
                                                "count": 1, "retry_after": 1})
    st, body = fake_kube.request("GET", "/api/v1/namespaces/default/pods")
    assert st == 429 and body["reason"] == "TooManyRequests"
    assert fake_kube.request("GET", "/api/v1/namespaces/default/pods")[0] == 200
