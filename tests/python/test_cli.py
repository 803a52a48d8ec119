"""sandboxctl's client commands against the fixture's server (they go through
sandbox::connect, the same client as sandbox.connect)."""

import os
import subprocess

import pytest

from conftest import _sandboxctl


def _ctl(server_url, *args, input=None):
    exe = _sandboxctl()
    env = dict(os.environ, SANDBOX_SERVER=server_url)
    return subprocess.run([exe, *args], input=input, capture_output=True, text=True, env=env, timeout=60)


def test_session_exec_files_ps(server_url, tmp_path):
    r = _ctl(server_url, "session", "create", "--id", "cli-s")
    assert r.returncode == 0, r.stderr
    assert '"id": "cli-s"' in r.stdout
    assert "cli-s\tReady" in _ctl(server_url, "session", "list").stdout
    r = _ctl(server_url, "exec", "cli-s", "-c", "6 * 7")
    assert (r.returncode, r.stdout) == (0, "42\n"), r.stderr
    r = _ctl(server_url, "exec", "cli-s", "-", input="1/0\n")
    assert r.returncode == 1 and "ZeroDivisionError" in r.stderr
    r = _ctl(server_url, "exec", "cli-s", "--language", "shell", "--json", "-c", "exit 3")
    assert r.returncode == 1 and '"exit_code":3' in r.stdout
    local = tmp_path / "in.bin"
    local.write_bytes(bytes(range(256)) * 100)
    assert _ctl(server_url, "files", "put", "cli-s", str(local), "d/in.bin").returncode == 0
    assert "25600\td/in.bin" in _ctl(server_url, "files", "list", "cli-s").stdout
    out = tmp_path / "out.bin"
    assert _ctl(server_url, "files", "get", "cli-s", "d/in.bin", str(out)).returncode == 0
    assert out.read_bytes() == local.read_bytes()
    assert _ctl(server_url, "files", "delete", "cli-s", "d/in.bin").returncode == 0
    r = _ctl(server_url, "files", "get", "cli-s", "d/in.bin")
    assert r.returncode == 3, r.stderr  # not_found
    assert "PID" in _ctl(server_url, "ps", "cli-s").stdout
    assert _ctl(server_url, "kill", "cli-s", str(1 << 22)).returncode == 3
    assert _ctl(server_url, "session", "delete", "cli-s").returncode == 0
    assert _ctl(server_url, "session", "delete", "cli-s").returncode == 3


def test_usage_errors_exit_2(server_url):
    assert _ctl(server_url, "exec").returncode == 2
    assert _ctl(server_url, "files", "frobnicate").returncode == 2
    assert _ctl(server_url, "--no-such-flag").returncode == 2
    assert _ctl(server_url, "exec", "--help").returncode == 0
    r = _ctl(server_url, "session", "list", "--server", "ftp://x")
    assert r.returncode == 2, r.stderr


def test_https_is_accepted_and_unreachable_is_7():
    r = subprocess.run([_sandboxctl(), "session", "list", "--server", "https://127.0.0.1:1", "--insecure"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 7, r.stderr  # unavailable, not a refusal of the scheme
