"""One idempotency mechanism for every value-moving mutation.

`run_idempotent` claims (partner, key) by inserting its record *before* the work runs, in
the caller's transaction, and stores the work's JSON result with it. So:

* a replay (same partner, key, operation and request) returns the stored first result and
  does no work;
* the same key with another request (or another operation) raises `IdempotencyKeyReused`;
* two concurrent requests with one key never both do the work: on PostgreSQL the second
  insert waits on the unique index until the first commits, then replays its result (or, if
  the first rolled back, goes ahead itself); SQLite serializes writers anyway;
* if the work raises (a business error), the caller's transaction rolls back and takes the
  record with it: nothing moved, nothing is remembered, and the key may be used again.

Store in the result whatever lets the GraphQL layer rebuild its payload, usually the id of
the object created (`{"redemption_id": 17}`), and reload that object on replay.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import rfc8785
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import utcnow
from gateway.errors import IdempotencyKeyReused, InvalidInput
from gateway.models.idempotency import IdempotencyRecord

KEY_MAX = 255

#: RFC 8785 (I-JSON) numbers are IEEE doubles: exact only up to 2^53 - 1 in magnitude.
_EXACT_INT = 2**53 - 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -_EXACT_INT <= value <= _EXACT_INT:
        # rfc8785 refuses these; as decimal strings they hash exactly and deterministically.
        # Smaller ints stay numbers, so hashes stored before this rule still match.
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return value.value
    return value


def request_hash(operation: str, request: dict) -> str:
    """Lowercase hex SHA-256 of the RFC 8785 canonical JSON of operation and request.

    Integers of any size are accepted: beyond 2^53 - 1 in magnitude they are hashed as
    their decimal string."""
    canonical = rfc8785.dumps({"operation": operation, "request": _jsonable(request)})
    return hashlib.sha256(canonical).hexdigest()


async def _find(session: AsyncSession, partner_id: int, key: str) -> IdempotencyRecord | None:
    return (
        await session.execute(
            sa.select(IdempotencyRecord)
            .where(IdempotencyRecord.partner_id == partner_id, IdempotencyRecord.key == key)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


def _replay(record: IdempotencyRecord, operation: str, digest: str) -> dict:
    if record.operation != operation or record.request_hash != digest:
        raise IdempotencyKeyReused(
            "this idempotency key was used for another request", field=["input", "idempotencyKey"]
        )
    if record.response is None:  # pragma: no cover - only visible inside the first transaction
        raise IdempotencyKeyReused("a request with this idempotency key is still in progress")
    return record.response


async def run_idempotent(
    *,
    session: AsyncSession,
    partner_id: int,
    key: str,
    operation: str,
    request: dict,
    work: Callable[[], Awaitable[dict]],
) -> dict:
    """Run `work` once per (partner, key); return its JSON-serialisable result, or the first
    result on a replay. Raises IdempotencyKeyReused for the same key with another request."""
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_MAX:
        raise InvalidInput(f"an idempotency key must be 1 to {KEY_MAX} characters", field=["input", "idempotencyKey"])
    digest = request_hash(operation, request)
    # One statement claims the key: INSERT ... ON CONFLICT DO NOTHING RETURNING id. On
    # PostgreSQL a conflicting insert still waits on the unique index until the other
    # transaction ends; if that one committed, no row comes back and its record is replayed
    # (the next statement sees it: READ COMMITTED); if it rolled back, ours goes in.
    table = IdempotencyRecord.__table__
    claim = (
        _insert_for(session)(table)
        .values(
            partner_id=partner_id,
            key=key,
            operation=operation,
            request_hash=digest,
            response=None,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[table.c.partner_id, table.c.key])
        .returning(table.c.id)
    )
    await session.flush()  # as the ORM statements did: pending changes go first (none: no SQL)
    record_id = (await session.execute(claim)).scalar_one_or_none()
    if record_id is None:
        existing = await _find(session, partner_id, key)
        if existing is None:  # pragma: no cover - the winner rolled back between our two statements
            raise IdempotencyKeyReused("a request with this idempotency key is in progress; retry")
        return _replay(existing, operation, digest)
    response = await work()
    json.dumps(response)  # fail here, not at commit, if the result cannot be stored
    await session.flush()
    await session.execute(sa.update(table).where(table.c.id == record_id).values(response=response))
    return response


def _insert_for(session: AsyncSession):
    """The dialect's INSERT (with ON CONFLICT) for the session's database."""
    return sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert


async def is_replay(*, session: AsyncSession, partner_id: int, key: str) -> bool:
    """Whether a result is already stored for (partner, key) (e.g. for logging or metrics)."""
    return await _find(session, partner_id, key) is not None


__all__ = ["request_hash", "run_idempotent", "is_replay"]
