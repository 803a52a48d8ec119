"""Fixtures for the `sandbox` package tests.

Run with the package from a CMake build tree:
    PYTHONPATH=build/python python3 -m pytest -q tests/python
Tests use the rlimit backend (it runs on any Linux host) unless they test the default.
"""

import pytest

import sandbox

ISOLATION = "rlimit"


@pytest.fixture
def session():
    with sandbox.Session(isolation=ISOLATION, timeout=20) as s:
        yield s
