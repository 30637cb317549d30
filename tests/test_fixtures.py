"""The test fixtures themselves: every test starts from an empty migrated database, whatever the
test before it did to its own, and a Redis database of its own; CI cannot pass by running nothing.

The PostgreSQL databases are reused between tests (tests/support/pgpool.py), so these are the
promises that reuse must keep: no rows, sequences back at the start, the migrated schema,
no connection of the last test left to write into the next one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
import redis

from gateway.db import Database
from tests.conftest import REDIS_URL
from tests.support.auth import register_partner
from tests.support.redisdb import RedisDatabases

ROOT = Path(__file__).resolve().parents[1]


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        tables = [r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}
    finally:
        await conn.close()


async def _register(url: str) -> int:
    """A partner and its client, through the product's own code; the partner's id."""
    db = Database(url)
    try:
        await register_partner(
            db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
        )
        conn = await asyncpg.connect(_dsn(url))
        try:
            return await conn.fetchval("SELECT id FROM partners WHERE code = 'seoul-walk'")
        finally:
            await conn.close()
    finally:
        await db.dispose()


def test_a_reused_postgresql_database_is_as_new_after_a_test_wrote_to_it(templates):
    url = templates.pg_acquire()
    fresh = asyncio.run(_counts(url))
    first_id = asyncio.run(_register(url))
    assert sum(asyncio.run(_counts(url)).values()) > fresh["alembic_version"]
    templates.pg_release(url)

    again = templates.pg_acquire()
    try:
        assert again == url  # the same database, reused
        assert asyncio.run(_counts(again)) == fresh  # only alembic_version has its row
        assert fresh["alembic_version"] == 1
        assert asyncio.run(_register(again)) == first_id  # the sequences start over
    finally:
        templates.pg_release(again)


def test_a_connection_left_in_a_transaction_is_cut_and_its_locks_do_not_block_the_next_test(templates):
    url = templates.pg_acquire()

    async def leave_a_lock_behind() -> asyncpg.Connection:
        conn = await asyncpg.connect(_dsn(url))
        await conn.execute("BEGIN; LOCK TABLE partners IN ACCESS EXCLUSIVE MODE")
        return conn

    loop = asyncio.new_event_loop()
    straggler = loop.run_until_complete(leave_a_lock_behind())
    try:
        templates.pg_release(url)
        again = templates.pg_acquire()
        assert again == url
        assert asyncio.run(_register(again)) > 0  # the table is free again
        templates.pg_release(again)
        assert straggler.is_closed() or loop.run_until_complete(_closed_by_server(straggler))
    finally:
        straggler.terminate()
        loop.close()


async def _closed_by_server(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError):
        return True
    return False


def test_a_test_that_broke_its_schema_leaves_a_sound_database_to_the_next(templates):
    url = templates.pg_acquire()

    async def break_it() -> None:
        conn = await asyncpg.connect(_dsn(url))
        try:
            await conn.execute("ALTER TABLE members RENAME TO members_gone; ALTER TABLE partners ADD COLUMN stray int")
        finally:
            await conn.close()

    fresh = asyncio.run(_counts(url))
    asyncio.run(break_it())
    templates.pg_release(url)

    again = templates.pg_acquire()
    try:
        assert asyncio.run(_counts(again)) == fresh  # members is back, and empty
        assert asyncio.run(_register(again)) > 0  # partners has its own columns again
    finally:
        templates.pg_release(again)


def test_redis_url_is_a_database_of_this_test_alone_and_empty(redis_url):
    assert not redis_url.endswith("/0")  # database 0 is for tests that share it by key prefix
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("left-behind", "1")
    finally:
        client.close()


def test_two_runs_at_once_get_different_redis_databases(redis_url):
    first, second = RedisDatabases(REDIS_URL), RedisDatabases(REDIS_URL)
    try:
        a, b = first.claim(), second.claim()
        assert a != b and redis_url not in (a, b)
    finally:
        first.release()
        second.release()


def test_under_ci_a_run_that_collects_nothing_fails():
    env = {**os.environ, "CI": "true", "GATEWAY_TEST_BACKENDS": "sqlite,postgresql"}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "tests/test_fixtures.py", "-k", "no_test_has_this_name"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-2000:] + done.stderr[-2000:]
