"""One line per test file as it finishes: `tests/x.py: 12 passed, 1 failed (3.4 s)`.

With the suite's `-q` pytest prints a dot per test and nothing else until the end, and
under pytest-xdist not even the file names: a long run shows no sign of where it is.
This plugin (registered by tests/conftest.py in the controlling process only) counts the
reports of each file, which arrive in the controller with or without xdist, and prints the
file's line once its last test is torn down. The time is the sum of its tests' setup, call
and teardown (time spent by a worker, not wall time). In quiet mode the dots are dropped.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest


class FileProgress:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.expected: Counter[str] = Counter()  # file -> number of tests
        self.finished: Counter[str] = Counter()
        self.outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        self.seconds: Counter[str] = Counter()
        self.failed_ids: set[str] = set()
        self.skipped_ids: set[str] = set()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.config.get_verbosity() <= 0:
            reporter.showfspath = False  # the file's name comes with its line, at its end

    # ------------------------------------------------------------ how many tests a file has

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:  # without xdist: the controller collected the tests itself
            self.expected = Counter(item.nodeid.split("::", 1)[0] for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        if not self.expected:  # every worker collects the same tests
            self.expected = Counter(nodeid.split("::", 1)[0] for nodeid in ids)

    # ------------------------------------------------------------ counting

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report, config):
        result = yield
        if result and config.get_verbosity() <= 0:
            category, _letter, word = result
            return category, "", word  # no dot: the file lines say the same, readably
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = report.nodeid.split("::", 1)[0]
        self.seconds[path] += report.duration
        if report.failed:
            self.failed_ids.add(report.nodeid)
        elif report.skipped:
            self.skipped_ids.add(report.nodeid)
        if report.when in ("setup", "call"):
            return  # a test ends with its teardown (or a "???" report when its worker crashed)
        self._finish(path, report)

    def _finish(self, path: str, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        if nodeid in self.failed_ids:
            self.outcomes[path]["failed"] += 1
        elif nodeid in self.skipped_ids:
            self.outcomes[path]["skipped"] += 1
        else:
            self.outcomes[path]["passed"] += 1
        self.failed_ids.discard(nodeid)
        self.skipped_ids.discard(nodeid)
        self.finished[path] += 1
        if self.finished[path] == self.expected.get(path, 0):
            self._print(path)

    def _print(self, path: str) -> None:
        counts = self.outcomes[path]
        parts = [f"{counts[k]} {k}" for k in ("passed", "failed", "skipped") if counts[k] or k == "passed"]
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        reporter.ensure_newline()
        reporter.write_line(f"{path}: {', '.join(parts)} ({self.seconds[path]:.1f} s)", red=bool(counts["failed"]))
