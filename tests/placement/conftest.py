"""pytest fixtures for placement: a running fake_kube.py and a small HTTPS client for it."""

import json
import os
import pathlib
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent


class FakeKube:
    """One fake_kube.py process; `info` is the JSON line it printed."""

    def __init__(self, tmp, ip_prefix="127.0.9", extra=()):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_kube.py"), "--dir", str(tmp),
             "--ip-prefix", ip_prefix, *extra],
            stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "fake.log"), "wb"),
            text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("fake_kube.py did not start: " +
                               open(os.path.join(tmp, "fake.log")).read())
        self.info = json.loads(line)
        self.url, self.token = self.info["url"], self.info["token"]
        self.ctx = ssl.create_default_context(cafile=self.info["ca_file"])

    def request(self, method, path, body=None, token=None, headers=None):
        """-> (status, parsed JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def fake_kube(tmp_path):
    fk = FakeKube(tmp_path)
    yield fk
    fk.stop()
