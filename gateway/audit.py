"""The audit log's hash chain: record an event, seal events into the chain, verify it;
`mileage-gateway audit seal` and `mileage-gateway audit verify`.

Recording is cheap and lock-free: a mutation inserts its event, unsealed, in its own
transaction (so an event exists exactly when the mutation committed), and refusals insert
theirs in a small transaction of their own. No writer touches a shared row, so mutations
from many processes do not wait for one another.

The sealer (`seal`, run by the `audit.seal` job every few seconds in one process at a
time, and by `mileage-gateway audit seal`) chains the unsealed events afterwards, as a
transparency log does with its signed tree head: oldest id first, each gets the next
position `seq` and `hash` = SHA-256 over its predecessor's hash followed by the RFC 8785
canonical JSON of its own fields (`at`, `client_id`, `partner_id`, `operation`,
`outcome`, `detail`); the first chains to `GENESIS_HASH`. The head row
(`audit_chain_head`) names the newest sealed event, so deleting rows from the end is
caught too. Only the sealer takes the head's lock (a PostgreSQL advisory lock; on SQLite
every write transaction begins with `BEGIN IMMEDIATE` and so runs alone).

An event is protected once sealed; `audit verify` reports events left unsealed longer
than a threshold (a stopped sealer), since until then a row could be changed unnoticed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import sys

import rfc8785
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, utcnow
from gateway.models.audit import GENESIS_HASH, AuditChainHead, AuditEvent
from gateway.settings import Settings

#: Key of the PostgreSQL advisory lock guarding the chain head ("audit" in ASCII).
ADVISORY_LOCK_KEY = 0x61756469_74
HEAD_ID = 1
#: Events the sealer chains per transaction.
SEAL_BATCH = 500
#: `audit verify` reports events unsealed for longer than this (seconds) by default.
UNSEALED_MAX_AGE_SECONDS = 300


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def event_hash(
    *,
    prev_hash: str,
    at: dt.datetime,
    client_id: str,
    partner_id: int | None,
    operation: str,
    outcome: str,
    detail: str | None,
) -> str:
    """The hash an event with these fields must carry after `prev_hash`."""
    canonical = rfc8785.dumps(
        {
            "at": _timestamp(at),
            "client_id": client_id,
            "partner_id": partner_id,
            "operation": operation,
            "outcome": outcome,
            "detail": detail,
        }
    )
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def hash_after(prev_hash: str, event: AuditEvent) -> str:
    """`event_hash` of a stored event after `prev_hash`."""
    return event_hash(
        prev_hash=prev_hash,
        at=event.at,
        client_id=event.client_id,
        partner_id=event.partner_id,
        operation=event.operation,
        outcome=event.outcome,
        detail=event.detail,
    )


def content_hash(event: AuditEvent) -> str:
    """SHA-256 of an event's own fields, with no predecessor: what an unsealed event shows as its hash."""
    return hash_after("", event)


async def record(
    *,
    session: AsyncSession,
    client_id: str,
    partner_id: int | None,
    operation: str,
    outcome: str,
    detail: str | None = None,
) -> AuditEvent:
    """Insert one unsealed event in the caller's transaction (no lock: the sealer chains it)."""
    event = AuditEvent(
        at=utcnow(),
        client_id=client_id[:64],
        partner_id=partner_id,
        operation=operation[:128],
        outcome=outcome[:64],
        detail=detail,
    )
    session.add(event)
    await session.flush()
    return event


# ---------------------------------------------------------------- sealing


async def _lock_head(session: AsyncSession) -> AuditChainHead:
    """The chain head, locked against other sealers until the caller's transaction ends."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
    head = await session.get(AuditChainHead, HEAD_ID, populate_existing=True)
    if head is None:
        head = AuditChainHead(id=HEAD_ID, last_event_id=None, last_hash=GENESIS_HASH, events=0)
        session.add(head)
    return head


async def seal_batch(session: AsyncSession, *, limit: int = SEAL_BATCH) -> int:
    """Chain up to `limit` unsealed events, oldest id first, in the caller's transaction.

    An event whose transaction commits after a younger one was sealed (ids are handed out
    before commit) simply takes the next position: the chain's order is `seq`, not id."""
    head = await _lock_head(session)
    events = (
        await session.scalars(
            sa.select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(limit)
        )
    ).all()
    for event in events:
        event.seq = (head.events or 0) + 1
        event.prev_hash = head.last_hash
        event.hash = hash_after(head.last_hash, event)
        head.events, head.last_hash, head.last_event_id = event.seq, event.hash, event.id
    await session.flush()
    return len(events)


async def seal(db: Database, *, batch: int = SEAL_BATCH, max_batches: int | None = None) -> int:
    """Seal every event unsealed now (in transactions of `batch` events); the number sealed."""
    sealed = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        async with db.transaction() as session:
            n = await seal_batch(session, limit=batch)
        sealed += n
        batches += 1
        if n < batch:
            break
    return sealed


# ---------------------------------------------------------------- verifying


async def verify(session: AsyncSession) -> tuple[bool, int | None]:
    """Walk the sealed chain by `seq`: `(True, None)` when intact, else `(False, id of the first bad event)`.

    An event is bad when its `seq` is not the next position, its `prev_hash` is not its
    predecessor's hash, or its own `hash` does not match its fields. When the rows are
    intact but the head names a later event (the tail was cut off), the id returned is
    the head's newest event. Unsealed events are not part of the chain (see `unsealed`).
    """
    prev_hash = GENESIS_HASH
    last_id: int | None = None
    count = 0
    result = await session.stream_scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=500)
    )
    async for event in result:
        if event.seq != count + 1 or event.prev_hash != prev_hash or event.hash != hash_after(prev_hash, event):
            await result.close()
            return False, event.id
        prev_hash, last_id = event.hash, event.id
        count += 1
    head = await session.get(AuditChainHead, HEAD_ID)
    if head is not None and (head.last_hash != prev_hash or head.events != count):
        return False, head.last_event_id if head.last_event_id != last_id else last_id
    if head is None and count:
        return False, last_id
    return True, None


async def unsealed(session: AsyncSession, *, older_than: dt.datetime) -> dict:
    """How many events await the sealer, and how many (and the oldest id) since before `older_than`."""
    pending = AuditEvent.seq.is_(None)
    total = await session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(pending))
    stale = sa.select(AuditEvent.id).where(pending, AuditEvent.at < older_than)
    stale_count = await session.scalar(sa.select(sa.func.count()).select_from(stale.subquery()))
    oldest = await session.scalar(stale.order_by(AuditEvent.id).limit(1))
    return {"unsealed": total, "stale_unsealed": stale_count, "oldest_stale_id": oldest}


# ---------------------------------------------------------------- command line


async def _verify_database(url: str, *, max_age_seconds: float) -> dict:
    db = Database(url)
    try:
        async with db.session() as session:
            ok, bad = await verify(session)
            events = await session.scalar(
                sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_not(None))
            )
            pending = await unsealed(session, older_than=utcnow() - dt.timedelta(seconds=max_age_seconds))
    finally:
        await db.dispose()
    return {"ok": ok, "events": events, "first_bad_id": bad, **pending}


def cmd_audit_verify(args: argparse.Namespace) -> int:
    report = asyncio.run(_verify_database(Settings.from_env().database_url, max_age_seconds=args.max_unsealed_age))
    print(json.dumps(report))
    if not report["ok"]:
        print(f"audit chain broken at event {report['first_bad_id']}", file=sys.stderr)
        return 1
    if report["stale_unsealed"]:
        print(
            f"{report['stale_unsealed']} audit events unsealed for over {args.max_unsealed_age:g} s "
            f"(oldest: {report['oldest_stale_id']}); is the audit.seal job running?",
            file=sys.stderr,
        )
        return 2
    return 0


async def _seal_database(url: str) -> int:
    db = Database(url)
    try:
        return await seal(db)
    finally:
        await db.dispose()


def cmd_audit_seal(args: argparse.Namespace) -> int:
    sealed = asyncio.run(_seal_database(Settings.from_env().database_url))
    print(json.dumps({"sealed": sealed}))
    return 0


def register_cli(subparsers) -> None:
    """Adds `mileage-gateway audit verify` (exit 1: the chain is broken; 2: events left
    unsealed too long) and `mileage-gateway audit seal` (chain the unsealed events now)."""
    audit = subparsers.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify_cmd = audit_sub.add_parser(
        "verify", help="check the audit log's hash chain; exit non-zero where it is broken or events stay unsealed"
    )
    verify_cmd.add_argument(
        "--max-unsealed-age",
        type=float,
        default=UNSEALED_MAX_AGE_SECONDS,
        metavar="SECONDS",
        help=f"report events unsealed for longer than this (default {UNSEALED_MAX_AGE_SECONDS})",
    )
    verify_cmd.set_defaults(func=cmd_audit_verify)
    audit_sub.add_parser("seal", help="chain the audit events not sealed yet").set_defaults(func=cmd_audit_seal)
