"""The audit log's hash chain: append an event, verify the chain, `mileage-gateway audit verify`.

Each event's `hash` is SHA-256 over its predecessor's hash followed by the RFC 8785
canonical JSON of its own fields (`at`, `client_id`, `partner_id`, `operation`,
`outcome`, `detail`). The first event chains to `GENESIS_HASH`. A single head row
(`audit_chain_head`) names the newest event, so deleting rows from the end is caught too.

Appending is race-safe across processes: on PostgreSQL the writer takes a
transaction-scoped advisory lock before reading the head; on SQLite every write
transaction already begins with `BEGIN IMMEDIATE` and so runs alone.
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

from gateway.db import utcnow
from gateway.models.audit import GENESIS_HASH, AuditChainHead, AuditEvent

#: Key of the PostgreSQL advisory lock guarding the chain head ("audit" in ASCII).
ADVISORY_LOCK_KEY = 0x61756469_74
HEAD_ID = 1


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


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


async def _lock_head(session: AsyncSession) -> AuditChainHead:
    """The chain head, locked against other writers until the caller's transaction ends."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
    head = await session.get(AuditChainHead, HEAD_ID, populate_existing=True)
    if head is None:
        head = AuditChainHead(id=HEAD_ID, last_event_id=None, last_hash=GENESIS_HASH, events=0)
        session.add(head)
    return head


async def record(
    *,
    session: AsyncSession,
    client_id: str,
    partner_id: int | None,
    operation: str,
    outcome: str,
    detail: str | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction."""
    head = await _lock_head(session)
    at = utcnow()
    event = AuditEvent(
        at=at,
        client_id=client_id[:64],
        partner_id=partner_id,
        operation=operation[:128],
        outcome=outcome[:64],
        detail=detail,
        prev_hash=head.last_hash,
    )
    event.hash = event_hash(
        prev_hash=event.prev_hash,
        at=at,
        client_id=event.client_id,
        partner_id=partner_id,
        operation=event.operation,
        outcome=event.outcome,
        detail=detail,
    )
    session.add(event)
    await session.flush()
    head.last_event_id = event.id
    head.last_hash = event.hash
    head.events = (head.events or 0) + 1
    await session.flush()
    return event


async def verify(session: AsyncSession) -> tuple[bool, int | None]:
    """Walk the chain oldest first: `(True, None)` when intact, else `(False, id of the first bad event)`.

    An event is bad when its `prev_hash` is not its predecessor's hash or its own
    `hash` does not match its fields. When the rows are intact but the head names
    an event beyond the last row (the tail was cut off), the id returned is the
    first missing one.
    """
    prev_hash = GENESIS_HASH
    last_id: int | None = None
    count = 0
    result = await session.stream_scalars(
        sa.select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=500)
    )
    async for event in result:
        expected = event_hash(
            prev_hash=prev_hash,
            at=event.at,
            client_id=event.client_id,
            partner_id=event.partner_id,
            operation=event.operation,
            outcome=event.outcome,
            detail=event.detail,
        )
        if event.prev_hash != prev_hash or event.hash != expected:
            await result.close()
            return False, event.id
        prev_hash, last_id = event.hash, event.id
        count += 1
    head = await session.get(AuditChainHead, HEAD_ID)
    if head is not None and (head.last_hash != prev_hash or head.events != count):
        return False, (last_id or 0) + 1
    if head is None and count:
        return False, last_id
    return True, None


# ---------------------------------------------------------------- command line


async def _verify_database(url: str) -> dict:
    from gateway.db import Database

    db = Database(url)
    try:
        async with db.session() as session:
            ok, bad = await verify(session)
            events = (await session.execute(sa.select(sa.func.count()).select_from(AuditEvent))).scalar_one()
    finally:
        await db.dispose()
    return {"ok": ok, "events": events, "first_bad_id": bad}


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.settings import Settings

    report = asyncio.run(_verify_database(Settings.from_env().database_url))
    print(json.dumps(report))
    if not report["ok"]:
        print(f"audit chain broken at event {report['first_bad_id']}", file=sys.stderr)
        return 1
    return 0


def register_cli(subparsers) -> None:
    """Adds `mileage-gateway audit verify` (exit 1 when the chain is broken)."""
    audit = subparsers.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "verify", help="check the audit log's hash chain; exit non-zero where it is broken"
    ).set_defaults(func=cmd_audit_verify)
