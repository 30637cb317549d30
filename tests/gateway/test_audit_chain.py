"""The audit log's hash chain: appended events link up, any tampering is found, and
`mileage-gateway audit verify` says so with its exit code."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from gateway import audit
from gateway.bootstrap import ensure_admin_partner
from gateway.db import Database
from gateway.models import AuditEvent
from gateway.models.audit import GENESIS_HASH

ROOT = Path(__file__).resolve().parents[2]


async def _admin_id(db) -> int:
    async with db.transaction() as session:
        return (await ensure_admin_partner(session)).id


async def _record(db, n: int, partner_id: int | None, client: str = "client-a") -> None:
    for i in range(n):
        async with db.transaction() as session:
            await audit.record(
                session=session,
                client_id=client,
                partner_id=partner_id,
                operation=f"createPartner#{i}",
                outcome="OK" if i % 2 == 0 else "FORBIDDEN",
                detail=None if i % 3 else "detail with ünïcode",
            )


async def _events(db) -> list[AuditEvent]:
    async with db.session() as session:
        return list((await session.execute(sa.select(AuditEvent).order_by(AuditEvent.id))).scalars())


async def _verify(db) -> tuple[bool, int | None]:
    async with db.session() as session:
        return await audit.verify(session)


async def test_each_event_chains_to_the_one_before(db):
    partner_id = await _admin_id(db)
    await _record(db, 5, partner_id)

    events = await _events(db)
    assert len(events) == 5
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in zip(events, events[1:]):
        assert after.prev_hash == before.hash
    assert events[0].hash == audit.event_hash(
        prev_hash=GENESIS_HASH,
        at=events[0].at,
        client_id="client-a",
        partner_id=partner_id,
        operation="createPartner#0",
        outcome="OK",
        detail="detail with ünïcode",
    )
    assert await _verify(db) == (True, None)


async def test_an_empty_log_verifies(db):
    assert await _verify(db) == (True, None)


async def test_a_row_altered_in_the_database_is_found(db):
    await _record(db, 4, await _admin_id(db))
    target = (await _events(db))[1].id
    async with db.transaction() as session:
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == target).values(outcome="OK"))

    assert await _verify(db) == (False, target)


async def test_a_rehashed_row_still_breaks_the_link_to_the_next(db):
    """Rewriting a row *and* its hash is caught by the next row's prev_hash."""
    await _record(db, 3, await _admin_id(db))
    first, second, _ = await _events(db)
    forged = audit.event_hash(
        prev_hash=first.prev_hash, at=first.at, client_id="someone-else", partner_id=first.partner_id,
        operation=first.operation, outcome=first.outcome, detail=first.detail,
    )
    async with db.transaction() as session:
        await session.execute(
            sa.update(AuditEvent).where(AuditEvent.id == first.id).values(client_id="someone-else", hash=forged)
        )

    assert await _verify(db) == (False, second.id)


async def test_a_deleted_row_is_found(db):
    await _record(db, 4, await _admin_id(db))
    events = await _events(db)
    async with db.transaction() as session:
        await session.execute(sa.delete(AuditEvent).where(AuditEvent.id == events[1].id))

    assert await _verify(db) == (False, events[2].id)


async def test_a_cut_off_tail_is_found(db):
    await _record(db, 3, await _admin_id(db))
    last = (await _events(db))[-1]
    async with db.transaction() as session:
        await session.execute(sa.delete(AuditEvent).where(AuditEvent.id == last.id))

    ok, bad = await _verify(db)
    assert not ok and bad == last.id


async def test_concurrent_writers_from_several_engines_keep_one_chain(db, database_url):
    """Three engines (as three processes would have) append at once: one unbroken chain."""
    partner_id = await _admin_id(db)
    engines = [Database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(_record(e, 8, partner_id, client=f"c{i}") for i, e in enumerate(engines)))
    finally:
        for e in engines:
            await e.dispose()

    events = await _events(db)
    assert len(events) == 24
    assert len({e.prev_hash for e in events}) == 24
    assert await _verify(db) == (True, None)


def _cli(database_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SECRET_KEY": "test-secret-key-not-for-production",
        "GATEWAY_ENV": "development",  # the test key is too weak for production (by design)
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


async def test_audit_verify_command_exits_non_zero_on_a_broken_chain(db, database_url):
    await _record(db, 3, await _admin_id(db))

    intact = await asyncio.to_thread(_cli, database_url)
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout) == {"ok": True, "events": 3, "first_bad_id": None}

    target = (await _events(db))[0].id
    async with db.transaction() as session:
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == target).values(operation="nothing"))

    broken = await asyncio.to_thread(_cli, database_url)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["first_bad_id"] == target
    assert f"broken at event {target}" in broken.stderr
