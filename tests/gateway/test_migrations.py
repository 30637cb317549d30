"""One Alembic history builds the whole schema on SQLite and PostgreSQL, matching the models."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import gateway.models  # noqa: F401
from gateway.db import Base, make_engine
from gateway.migrations import upgrade
from tests.conftest import PG_URL_BASE, _pg_exec


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path, templates):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    templates.drop_pg(templates.pg_url())  # skips (or fails under CI) when PostgreSQL is not reachable
    name = f"gw_mig_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    yield f"{PG_URL_BASE}/{name}"
    asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_migrations_build_exactly_the_models(empty_database):
    await upgrade(empty_database)
    await upgrade(empty_database)  # a second run is a no-op
    engine = make_engine(empty_database)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": False}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations differ: {diff}"
