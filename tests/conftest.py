"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL.

Every test that asks for `db` runs twice, once per backend. The schema is built
once per backend into a template (SQLite file / PostgreSQL template database)
and copied for each test, so a test starts from an empty, migrated database
in milliseconds.

Under CI (CI=true) a PostgreSQL that cannot be reached fails the run; elsewhere
the PostgreSQL half is skipped with a message.
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

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_URL_BASE = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
RUN_ID = uuid.uuid4().hex[:8]
BACKENDS = [b for b in os.environ.get("GATEWAY_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def pytest_configure(config):
    config.addinivalue_line("markers", "pg_only: test needs PostgreSQL (several processes, row locks)")


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
    """Per-backend migrated template, built on first use."""

    def __init__(self, tmp_root: Path) -> None:
        self.tmp_root = tmp_root
        self.sqlite_template: Path | None = None
        self.pg_template: str | None = None
        self.pg_error: str | None = "unchecked"

    def sqlite_url(self) -> str:
        if self.sqlite_template is None:
            path = self.tmp_root / "template.db"
            asyncio.run(build_schema(f"sqlite+aiosqlite:///{path}"))
            self.sqlite_template = path
        target = self.tmp_root / f"t-{uuid.uuid4().hex[:10]}.db"
        shutil.copyfile(self.sqlite_template, target)
        return f"sqlite+aiosqlite:///{target}"

    def pg_url(self) -> str:
        if self.pg_error == "unchecked":
            self.pg_error = _pg_available()
        if self.pg_error:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"PostgreSQL is not reachable under CI: {self.pg_error}")
            pytest.skip(f"PostgreSQL not reachable: {self.pg_error}")
        if self.pg_template is None:
            name = f"gw_tpl_{RUN_ID}"
            asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
            asyncio.run(build_schema(f"{PG_URL_BASE}/{name}"))
            self.pg_template = name
        name = f"gw_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        asyncio.run(_pg_exec(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"'))
        return f"{PG_URL_BASE}/{name}"

    def drop_pg(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def cleanup(self) -> None:
        if self.pg_template:
            asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{self.pg_template}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _test_strength_argon2(monkeypatch):
    """Argon2id still, at test strength: production parameters cost ~0.5 s a hash and a
    hash check, which every registration and token request in the suite would pay.
    (Servers started as subprocesses keep the production parameters.)"""
    import auth.clients
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth.clients, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    t = Templates(tmp_path_factory.mktemp("db"))
    yield t
    t.cleanup()


@pytest.fixture(params=BACKENDS)
def database_url(request, templates):
    """URL of a fresh, migrated, empty database on each backend."""
    if request.param == "sqlite":
        yield templates.sqlite_url()
    else:
        url = templates.pg_url()
        yield url
        templates.drop_pg(url)


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

    def start(self) -> "LiveServer":
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
