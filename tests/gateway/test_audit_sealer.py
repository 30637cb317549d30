"""The sealer as the scheduler runs it (the `audit.seal` job, under its lease), and the
0004 migration: events chained before it keep verifying, and new ones chain after them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gateway import audit
from gateway.composition import job_registry
from gateway.db import Database
from gateway.jobs import JobContext, run_job
from gateway.migrations import upgrade
from gateway.models import AuditChainHead, AuditEvent
from gateway.models.audit import GENESIS_HASH
from tests.gateway.test_migrations import empty_database  # noqa: F401  (fixture)


async def _record(db: Database, n: int) -> None:
    for i in range(n):
        async with db.transaction() as session:
            await audit.record(session=session, client_id="c", partner_id=None, operation=f"op{i}", outcome="OK")


async def test_the_seal_job_chains_what_was_recorded(db, settings):
    job = job_registry()["audit.seal"]
    await _record(db, 3)

    outcome = await run_job(job, JobContext(db=db, settings=settings), force=True)

    assert (outcome.ran, outcome.error, outcome.result) == (True, None, 3)
    async with db.session() as session:
        assert await audit.verify(session) == (True, None)
        assert (
            await session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None)))
            == 0
        )


async def test_events_chained_before_the_migration_still_verify_after_it(empty_database):
    await upgrade(empty_database, "0003_persisted_queries_per_partner")
    db = Database(empty_database)
    try:
        prev = GENESIS_HASH
        at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        async with db.transaction() as session:
            for i in range(3):  # chained as the gateway did before 0004: in id order, at write time
                fields = dict(
                    at=at + dt.timedelta(seconds=i),
                    client_id="c",
                    partner_id=None,
                    operation=f"op{i}",
                    outcome="OK",
                    detail=None,
                )
                digest = audit.event_hash(prev_hash=prev, **fields)
                await session.execute(sa.insert(AuditEvent.__table__).values(**fields, prev_hash=prev, hash=digest))
                prev = digest
            await session.execute(
                sa.insert(AuditChainHead.__table__).values(id=1, last_event_id=3, last_hash=prev, events=3)
            )
        await db.dispose()

        await upgrade(empty_database)
        db = Database(empty_database)
        async with db.session() as session:
            assert (await session.execute(sa.select(AuditEvent.seq).order_by(AuditEvent.id))).scalars().all() == [
                1,
                2,
                3,
            ]
            assert await audit.verify(session) == (True, None)
        await _record(db, 2)
        assert await audit.seal(db) == 2
        async with db.session() as session:
            assert await audit.verify(session) == (True, None)
    finally:
        await db.dispose()
