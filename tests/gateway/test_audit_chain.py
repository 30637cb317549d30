"""The audit log's hash chain: recorded events are sealed into one chain, any tampering
with a sealed event (altered, removed, reordered) is found, and `mileage-gateway audit
verify` says so with its exit code, as it does for events left unsealed too long."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway import audit
from gateway.bootstrap import ensure_admin_partner
from gateway.db import Database
from gateway.models import AuditChainHead, AuditEvent
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


async def _record_sealed(db, n: int, partner_id: int | None, client: str = "client-a") -> None:
    await _record(db, n, partner_id, client)
    assert await audit.seal(db) == n


async def _events(db) -> list[AuditEvent]:
    async with db.session() as session:
        return list((await session.execute(sa.select(AuditEvent).order_by(AuditEvent.id))).scalars())


async def _verify(db) -> tuple[bool, int | None]:
    async with db.session() as session:
        return await audit.verify(session)


async def test_recorded_events_wait_unsealed_until_the_sealer_chains_them(db):
    partner_id = await _admin_id(db)
    await _record(db, 3, partner_id)

    assert [(e.seq, e.prev_hash, e.hash) for e in await _events(db)] == [(None, None, None)] * 3
    assert await _verify(db) == (True, None)  # nothing sealed yet: an empty chain
    assert await audit.seal(db) == 3
    assert [e.seq for e in await _events(db)] == [1, 2, 3]
    await _record(db, 2, partner_id)
    assert await audit.seal(db, batch=1) == 2  # several small transactions, one chain
    assert await audit.seal(db) == 0
    events = await _events(db)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    async with db.session() as session:
        head = await session.get(AuditChainHead, audit.HEAD_ID)
        assert (head.events, head.last_event_id, head.last_hash) == (5, events[-1].id, events[-1].hash)
    assert await _verify(db) == (True, None)


async def test_each_event_chains_to_the_one_before(db):
    partner_id = await _admin_id(db)
    await _record_sealed(db, 5, partner_id)

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
    await _record_sealed(db, 4, await _admin_id(db))
    target = (await _events(db))[1].id
    async with db.transaction() as session:
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == target).values(outcome="OK"))

    assert await _verify(db) == (False, target)


async def test_a_rehashed_row_still_breaks_the_link_to_the_next(db):
    """Rewriting a row *and* its hash is caught by the next row's prev_hash."""
    await _record_sealed(db, 3, await _admin_id(db))
    first, second, _ = await _events(db)
    forged = audit.event_hash(
        prev_hash=first.prev_hash,
        at=first.at,
        client_id="someone-else",
        partner_id=first.partner_id,
        operation=first.operation,
        outcome=first.outcome,
        detail=first.detail,
    )
    async with db.transaction() as session:
        await session.execute(
            sa.update(AuditEvent).where(AuditEvent.id == first.id).values(client_id="someone-else", hash=forged)
        )

    assert await _verify(db) == (False, second.id)


async def test_a_deleted_row_is_found(db):
    await _record_sealed(db, 4, await _admin_id(db))
    events = await _events(db)
    async with db.transaction() as session:
        await session.execute(sa.delete(AuditEvent).where(AuditEvent.id == events[1].id))

    assert await _verify(db) == (False, events[2].id)


async def test_reordered_rows_are_found(db):
    """Swapping two sealed events' chain positions (or their contents) breaks the chain."""
    await _record_sealed(db, 4, await _admin_id(db))
    events = await _events(db)
    a, b = events[1], events[2]
    async with db.transaction() as session:  # through -1: seq is unique
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == a.id).values(seq=-1))
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == b.id).values(seq=a.seq))
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == a.id).values(seq=b.seq))

    assert await _verify(db) == (False, b.id)


async def test_a_sealed_row_made_to_look_unsealed_is_found(db):
    """Clearing a sealed event's chain fields takes it out of the chain: the gap is found."""
    await _record_sealed(db, 3, await _admin_id(db))
    events = await _events(db)
    async with db.transaction() as session:
        await session.execute(
            sa.update(AuditEvent).where(AuditEvent.id == events[0].id).values(seq=None, prev_hash=None, hash=None)
        )

    assert await _verify(db) == (False, events[1].id)


async def test_a_cut_off_tail_is_found(db):
    await _record_sealed(db, 3, await _admin_id(db))
    last = (await _events(db))[-1]
    async with db.transaction() as session:
        await session.execute(sa.delete(AuditEvent).where(AuditEvent.id == last.id))

    ok, bad = await _verify(db)
    assert not ok and bad == last.id


async def test_concurrent_writers_and_sealers_from_several_engines_keep_one_chain(db, database_url):
    """Three engines (as three processes would have) record and seal at once: one unbroken chain."""
    partner_id = await _admin_id(db)
    engines = [Database(database_url) for _ in range(3)]

    async def write_and_seal(engine, i):
        await _record(engine, 8, partner_id, client=f"c{i}")
        await audit.seal(engine, batch=3)

    try:
        await asyncio.gather(*(write_and_seal(e, i) for i, e in enumerate(engines)))
    finally:
        for e in engines:
            await e.dispose()
    await audit.seal(db)

    events = await _events(db)
    assert len(events) == 24
    assert len({e.prev_hash for e in events}) == 24
    assert await _verify(db) == (True, None)


async def test_an_event_committed_after_a_younger_one_was_sealed_joins_the_chain(db, database_url):
    """Ids are handed out before commit: an older id committing late is sealed after a
    younger one, and the chain (ordered by position, not id) still verifies."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: a commit cannot be overtaken")
    partner_id = await _admin_id(db)
    slow = Database(database_url)
    try:
        async with slow.transaction() as session:
            late = await audit.record(
                session=session, client_id="slow", partner_id=partner_id, operation="x", outcome="OK"
            )
            await _record(db, 1, partner_id)
            assert await audit.seal(db) == 1  # the slow one is not committed yet
        assert await audit.seal(db) == 1
    finally:
        await slow.dispose()

    events = {e.id: e for e in await _events(db)}
    assert events[late.id].seq == 2 and min(events) == late.id
    assert await _verify(db) == (True, None)


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SECRET_KEY": "test-secret-key-not-for-production",
        "GATEWAY_ENV": "development",  # the test key is too weak for production (by design)
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", *(args or ("verify",))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_audit_verify_command_exits_non_zero_on_a_broken_chain(db, database_url):
    await _record_sealed(db, 3, await _admin_id(db))

    intact = await asyncio.to_thread(_cli, database_url)
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout) == {
        "ok": True,
        "events": 3,
        "first_bad_id": None,
        "unsealed": 0,
        "stale_unsealed": 0,
        "oldest_stale_id": None,
    }

    target = (await _events(db))[0].id
    async with db.transaction() as session:
        await session.execute(sa.update(AuditEvent).where(AuditEvent.id == target).values(operation="nothing"))

    broken = await asyncio.to_thread(_cli, database_url)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["first_bad_id"] == target
    assert f"broken at event {target}" in broken.stderr


async def test_audit_seal_command_and_events_left_unsealed_too_long(db, database_url):
    """`audit verify` exits 2 while events wait unsealed past the threshold; `audit seal` chains them."""
    partner_id = await _admin_id(db)
    await _record(db, 2, partner_id)
    old = (await _events(db))[0].id
    async with db.transaction() as session:
        await session.execute(
            sa.update(AuditEvent).where(AuditEvent.id == old).values(at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        )

    waiting = await asyncio.to_thread(_cli, database_url, "verify", "--max-unsealed-age", "600")
    assert waiting.returncode == 2, waiting.stderr
    assert json.loads(waiting.stdout) == {
        "ok": True,
        "events": 0,
        "first_bad_id": None,
        "unsealed": 2,
        "stale_unsealed": 1,
        "oldest_stale_id": old,
    }
    assert "is the audit.seal job running?" in waiting.stderr

    sealed = await asyncio.to_thread(_cli, database_url, "seal")
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads(sealed.stdout) == {"sealed": 2}
    intact = await asyncio.to_thread(_cli, database_url, "verify")
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout)["events"] == 2
