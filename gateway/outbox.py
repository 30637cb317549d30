"""Domain events, written to the outbox in the transaction of the change they report.

`emit` only writes rows; webhook delivery (another module) reads them per partner with
`events_for_partner` (one index range scan on outbox_recipients) and sends
`{"type", "timestamp", "data"}` with `webhook-id` = the event id.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import utcnow
from gateway.ledger import bulk_insert
from gateway.models.outbox import OutboxEvent, OutboxRecipient

#: The contract's event types (README, "Webhooks").
EVENT_TYPES = frozenset(
    {
        "redemption.authorized",
        "redemption.captured",
        "redemption.voided",
        "redemption.refunded",
        "redemption.expired",
        "activity.credited",
        "donation.created",
        "campaign.goal_reached",
        "campaign.budget_exhausted",
        "exchange.completed",
        "settlement.closed",
        "settlement.confirmed",
        "settlement.disputed",
        "reconciliation.completed",
        "connector.status_changed",
    }
)


def new_event_id() -> str:
    return "evt_" + base64.b32encode(secrets.token_bytes(15)).decode("ascii").lower()[:24]


async def emit(
    *,
    session: AsyncSession,
    type: str,
    partner_ids: Iterable[int | None],
    data: dict,
    now: dt.datetime | None = None,
) -> str:
    """Write one event for the partners it concerns; returns its id ("evt_...")."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = OutboxEvent(event_id=new_event_id(), type=type, payload=data, created_at=now or utcnow())
    session.add(event)
    await session.flush()
    for partner_id in sorted({p for p in partner_ids if p is not None}):
        session.add(OutboxRecipient(partner_id=partner_id, event_id=event.id))
    await session.flush()
    return event.event_id


async def emit_many(
    *, session: AsyncSession, events: Sequence[tuple[str, Iterable[int | None], dict]], now: dt.datetime | None = None
) -> list[str]:
    """`emit` for many events (type, partner_ids, data) in two statements; returns their ids."""
    if not events:
        return []
    now = now or utcnow()
    rows = []
    for type_, _partners, data in events:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        rows.append(dict(event_id=new_event_id(), type=type_, payload=data, created_at=now))
    ids = await bulk_insert(session, OutboxEvent, rows)
    recipients = [
        dict(partner_id=partner_id, event_id=event_pk)
        for event_pk, (_type, partners, _data) in zip(ids, events)
        for partner_id in sorted({p for p in partners if p is not None})
    ]
    if recipients:
        await session.execute(sa.insert(OutboxRecipient), recipients)
    return [row["event_id"] for row in rows]


async def events_for_partner(
    session: AsyncSession,
    partner_id: int,
    *,
    after_id: int | None = None,
    limit: int = 100,
    types: Iterable[str] | None = None,
) -> list[OutboxEvent]:
    """The partner's events in the order they were written, after outbox id `after_id`."""
    stmt = (
        sa.select(OutboxEvent)
        .join(OutboxRecipient, OutboxRecipient.event_id == OutboxEvent.id)
        .where(OutboxRecipient.partner_id == partner_id)
    )
    if after_id is not None:
        stmt = stmt.where(OutboxRecipient.event_id > after_id)
    if types is not None:
        stmt = stmt.where(OutboxEvent.type.in_(list(types)))
    stmt = stmt.order_by(OutboxRecipient.event_id).limit(limit)
    return list((await session.execute(stmt)).scalars())


__all__ = ["EVENT_TYPES", "emit", "emit_many", "events_for_partner", "new_event_id"]
