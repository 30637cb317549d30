"""Tests that run alone: while one runs, no other xdist worker of the run runs a test.

Tests that start several gateway processes (and count on them being served promptly, or
measure how long something takes) starve when another worker's test takes the other core
of a 2-core machine. tests/conftest.py marks them `exclusive`; this plugin, loaded in each
xdist worker, holds a lock across their setup, call and teardown: exclusive for them,
shared for every other test. A second lock, the gate, gives a waiting exclusive test the
next turn, before the other workers' next tests (without it they could keep the shared lock
taken forever, one test after the other). The locks are files (flock) in the run's base
temporary directory, which all workers share and pytest cleans up; a killed worker releases
its lock with its process.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def _flock(path: Path, mode: int):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


class Exclusive:
    def __init__(self, run_dir: Path) -> None:
        self.lock, self.gate = run_dir / "exclusive.lock", run_dir / "exclusive.gate"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if item.get_closest_marker("exclusive"):
            with _flock(self.gate, fcntl.LOCK_EX), _flock(self.lock, fcntl.LOCK_EX):
                return (yield)
        with _flock(self.gate, fcntl.LOCK_SH):
            pass  # wait while an exclusive test waits or runs
        with _flock(self.lock, fcntl.LOCK_SH):
            return (yield)
