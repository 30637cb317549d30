"""Shared fixtures: an empty migrated database per test on SQLite and on PostgreSQL.

Every test that asks for `db` (or `database_url`, `settings`, `live_server`) runs twice, once
per backend (GATEWAY_TEST_BACKENDS=sqlite limits a run to SQLite). The schema is built once
per pytest process (per xdist worker) from the Alembic history into a template: SQLite
copies the template file for each test; PostgreSQL hands out a database of a small pool and
empties it after the test (tests/support/pgpool.py says how and why).

Under CI (CI=true) a PostgreSQL or Redis that cannot be reached fails the run, the suite
must run on both backends, and a run that collects no test fails; elsewhere the
PostgreSQL and Redis tests are skipped with a message.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.settings import Settings
from tests.support.exclusive import Exclusive
from tests.support.pgpool import PgDatabases
from tests.support.progress import FileProgress
from tests.support.redisdb import RedisDatabases

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_URL_BASE = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# One id for the whole run (xdist hands its own to every worker) and one per worker, so
# that each worker's databases have names of their own.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
BACKENDS = [b for b in os.environ.get("GATEWAY_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config):
    config.addinivalue_line("markers", "pg_only: test needs PostgreSQL (several processes, row locks)")
    # pytest-xdist's own marker, known also when xdist is off (-p no:xdist)
    config.addinivalue_line("markers", "xdist_group(name): tests that one xdist worker runs one after the other")
    if CI and set(BACKENDS) != {"sqlite", "postgresql"}:
        raise pytest.UsageError(f"under CI the suite runs on both backends, not GATEWAY_TEST_BACKENDS={BACKENDS}")
    config.addinivalue_line("markers", "exclusive: no other test of the run runs meanwhile (xdist workers wait)")
    if not hasattr(config, "workerinput"):  # the controlling process (with or without xdist)
        config.pluginmanager.register(FileProgress(config), "file-progress")
    elif config.option.basetemp:  # an xdist worker: its basetemp is in the run's, shared by all
        config.pluginmanager.register(Exclusive(Path(config.option.basetemp).parent), "exclusive")


# Tests that start several gateway processes of their own (or a fuzzer and its server): under
# pytest-xdist with `--dist loadgroup` one worker runs them one after the other, and each
# runs alone (`exclusive`), so that they never compete for the cores that their time
# limits assume. Mark a test `exclusive` yourself if it measures time or needs both cores.
SEVERAL_PROCESSES = (
    "tests/e2e/test_concurrency_pg.py",
    "tests/e2e/test_limits_redis.py",
    "tests/e2e/test_fuzz_smoke.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("pg_only") or item.nodeid.split("::", 1)[0] in SEVERAL_PROCESSES:
            item.add_marker(pytest.mark.xdist_group("several-processes"))
            params = getattr(item, "callspec", None) and item.callspec.params
            if not params or params.get("database_url") != "sqlite":  # those skip at once
                item.add_marker(pytest.mark.exclusive)


def pytest_sessionfinish(session, exitstatus):
    # A CI run that ran nothing (a wrong path, a filter that matches nothing) is a failure.
    if CI and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def unavailable(service: str, reason: str):
    """Fail under CI, skip elsewhere: a service the suite needs cannot be reached."""
    if CI:
        pytest.fail(f"{service} is not reachable under CI: {reason}", pytrace=False)
    pytest.skip(f"{service} not reachable: {reason}")


async def _pg_exec(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_available() -> str | None:
    try:
        asyncio.run(_pg_exec("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {exc}"


async def build_schema(url: str) -> None:
    """The schema as production gets it: the Alembic history, not the models."""
    from gateway.migrations import upgrade

    await upgrade(url)


class Templates:
    """Per-backend migrated template, built on first use, and the pool of PostgreSQL databases."""

    def __init__(self, tmp_root: Path) -> None:
        self.tmp_root = tmp_root
        self.sqlite_template: Path | None = None
        self.pg = PgDatabases(PG_ADMIN_DSN, PG_URL_BASE, f"gw_{RUN_ID}_{WORKER}", build_schema)
        self.pg_error: str | None = "unchecked"

    def sqlite_url(self) -> str:
        if self.sqlite_template is None:
            path = self.tmp_root / "template.db"
            asyncio.run(build_schema(f"sqlite+aiosqlite:///{path}"))
            self.sqlite_template = path
        target = self.tmp_root / f"t-{uuid.uuid4().hex[:10]}.db"
        shutil.copyfile(self.sqlite_template, target)
        return f"sqlite+aiosqlite:///{target}"

    def _require_pg(self) -> None:
        if "postgresql" not in BACKENDS:
            pytest.skip(f"PostgreSQL is not among GATEWAY_TEST_BACKENDS={','.join(BACKENDS)}")
        if self.pg_error == "unchecked":
            self.pg_error = _pg_available()
        if self.pg_error:
            unavailable("PostgreSQL", self.pg_error)

    def pg_url(self) -> str:
        """A new migrated database of the caller's own; drop it with `drop_pg`."""
        self._require_pg()
        return self.pg.clone()

    def drop_pg(self, url: str) -> None:
        self.pg.drop(self.pg.name_of(url))

    def pg_acquire(self) -> str:
        """An empty migrated database of the pool; give it back with `pg_release`."""
        self._require_pg()
        return self.pg.acquire()

    def pg_release(self, url: str) -> None:
        self.pg.release(url)

    def cleanup(self) -> None:
        if self.pg_error is None:
            self.pg.close()


@pytest.fixture(autouse=True)
def _test_strength_argon2(monkeypatch):
    """Argon2id still, at test strength: production parameters cost ~0.5 s a hash and a
    hash check, which every registration and token request in the suite would pay.
    (Servers started as subprocesses keep the production parameters.)"""
    from argon2 import PasswordHasher

    import auth.clients

    monkeypatch.setattr(auth.clients, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    t = Templates(tmp_path_factory.mktemp("db"))
    yield t
    t.cleanup()


@pytest.fixture(params=BACKENDS)
def database_url(request, templates):
    """URL of an empty migrated database on each backend, for this test alone.

    On PostgreSQL the database is emptied after the test: the connections the test left
    open are cut then (close them in your fixtures first, as `db` and `live_server` do)."""
    if request.param == "sqlite":
        yield templates.sqlite_url()
    else:
        url = templates.pg_acquire()
        yield url
        templates.pg_release(url)


@pytest.fixture(scope="session")
def _redis_databases():
    databases = RedisDatabases(REDIS_URL)
    yield databases
    databases.release()


@pytest.fixture
def redis_url(_redis_databases):
    """`redis://127.0.0.1:6379/<n>`: a Redis database for this test alone, empty before and after.

    The number is claimed per pytest process (xdist worker) so that parallel runs do not
    empty each other's data. Skipped when Redis cannot be reached, failed under CI."""
    reason = _redis_databases.reachable()
    if reason:
        unavailable("Redis", reason)
    url = _redis_databases.claim()
    yield url
    _redis_databases.empty()


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings.from_env(
        {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_SECRET_KEY": "test-secret-key-not-for-production",
            "GATEWAY_ENV": "development",
            "GATEWAY_SCHEDULER": "0",
            "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "1",
        }
    )


@pytest.fixture
async def db(settings):
    """An open `Database` on a fresh database (async tests)."""
    database = Database(settings.database_url)
    yield database
    await database.dispose()


# ---------------------------------------------------------------- a real HTTP server


class LiveServer:
    """The gateway app served by uvicorn on a loopback port, in a thread of its own."""

    port: int
    url: str
    settings: Settings

    def start(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_server(settings):
    """A served gateway on a fresh database; `.url` is its base URL, `.settings` its settings."""
    import dataclasses
    import socket

    # The issuer and audience must be the URL partners use: reserve the port first.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    issuer = f"http://127.0.0.1:{port}"
    served = dataclasses.replace(settings, issuer=issuer, audience=f"{issuer}/graphql")
    server = _start_on(served, port)
    yield server
    server.stop()


def _start_on(settings: Settings, port: int) -> LiveServer:
    import threading

    import uvicorn

    from gateway.app import create_app

    server = LiveServer.__new__(LiveServer)
    server.port = port
    server.url = f"http://127.0.0.1:{port}"
    server.settings = settings
    server.app = create_app(settings)
    server.server = uvicorn.Server(
        uvicorn.Config(server.app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    server.thread = threading.Thread(target=server.server.run, daemon=True)
    return server.start()
