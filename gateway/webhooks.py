"""Webhooks, the domain half: endpoints, deliveries, the dispatcher and the retry schedule.

* Endpoints belong to one partner, name the event types they want and carry a signing secret
  ("whsec_" + base64 of 24 random bytes) that is shown once and kept sealed at rest. An
  endpoint gets the events written after it was registered.
* The dispatcher (`dispatch`) reads the outbox past a stored position and writes one
  `WebhookDelivery` per (event, endpoint) for the endpoints of the partners the event
  concerns (outbox recipients) that subscribe to its type. The unique (endpoint, event) pair
  makes a second dispatcher (another process) harmless.
* Delivery workers (connectors/webhooks.py sends the HTTP requests) claim due deliveries with
  a lease (`claim_due`: FOR UPDATE SKIP LOCKED on PostgreSQL, a conditional UPDATE on both),
  so with several gateway processes each delivery is attempted by one of them at a time,
  then report each attempt (`record_attempt`).
* Retries follow the Standard Webhooks schedule - 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
  20 h, 24 h after the attempts before, each ±10 % - then the delivery is FAILED and may be
  redelivered. A 410 answer disables the endpoint (its pending deliveries fail with it).
* URLs must be http(s) and must not point at loopback, private, link-local, shared or
  metadata addresses (`vet_url` at registration, again for the resolved address when
  sending; the guard is gateway/addresses.py, shared with connectors) unless
  `settings.webhook_allow_private`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import addresses
from gateway.addresses import UnsafeAddress, address_refusal, resolve_public
from gateway.db import Database, utcnow
from gateway.errors import InvalidInput, InvalidState, NotFound
from gateway.models.outbox import OutboxEvent, OutboxRecipient
from gateway.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookDispatchState, WebhookEndpoint
from gateway.outbox import EVENT_TYPES
from gateway.secretbox import seal, unseal

#: Seconds to wait after the 1st, 2nd, ... failed attempt (Standard Webhooks); then FAILED.
RETRY_SCHEDULE: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
JITTER = 0.10
MAX_ENDPOINTS_PER_PARTNER = 20
#: How long a hole in the outbox ids may hold the dispatcher's position back: a transaction
#: that wrote an event but has not committed yet, or one that rolled back (PostgreSQL
#: sequences never reuse an id). Events after the hole are dispatched meanwhile.
GAP_GRACE = dt.timedelta(seconds=30)


# ---------------------------------------------------------------- retry schedule


def next_wait(
    failed_attempts: int, schedule: Sequence[float] = RETRY_SCHEDULE, *, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after `failed_attempts` failures in a row (1 = the first
    attempt failed), jittered ±10 %; None when the schedule is spent (the delivery FAILS)."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    base = float(schedule[failed_attempts - 1])
    return base * (1 + (rng or random).uniform(-JITTER, JITTER))


# ---------------------------------------------------------------- URLs and addresses
# The guard is gateway/addresses.py (connectors use it too); its names stay importable here.


def check_url(url: str, *, allow_private: bool, field: list[str] | None = None) -> tuple[str, str, int]:
    """The URL's (url, host, port) if it may be an endpoint as written (no name resolution);
    raises InvalidInput otherwise."""
    return addresses.check_url(url, allow_private=allow_private, field=field)


async def vet_url(url: str, *, allow_private: bool, field: list[str] | None = None) -> str:
    """`check_url`, then the host's resolved addresses. Call it outside a transaction."""
    return await addresses.vet_url(url, allow_private=allow_private, field=field)


# ---------------------------------------------------------------- endpoints


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _secret_purpose(partner_id: int) -> str:
    return f"webhook-secret:{partner_id}"


def secret_of(endpoint: WebhookEndpoint, secret_key: str) -> str:
    """The endpoint's signing secret ("whsec_..."), unsealed for signing."""
    return unseal(secret_key, endpoint.secret, purpose=_secret_purpose(endpoint.partner_id)).decode()


def check_event_types(event_types: Iterable[str]) -> list[str]:
    types = list(dict.fromkeys(t.strip() for t in event_types))
    if not types:
        raise InvalidInput("name at least one event type", field=["input", "eventTypes"])
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(f"unknown event types: {', '.join(unknown)}", field=["input", "eventTypes"])
    return types


async def create_endpoint(
    *,
    session: AsyncSession,
    secret_key: str,
    partner_id: int,
    url: str,
    event_types: Iterable[str],
    allow_private: bool,
    now: dt.datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint for the partner; returns it and its secret (shown once)."""
    url, _, _ = check_url(url, allow_private=allow_private)
    types = check_event_types(event_types)
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.partner_id == partner_id, WebhookEndpoint.deleted_at.is_(None))
    )
    if count >= MAX_ENDPOINTS_PER_PARTNER:
        raise InvalidInput(f"a partner may have at most {MAX_ENDPOINTS_PER_PARTNER} endpoints", field=["input", "url"])
    secret = new_secret()
    endpoint = WebhookEndpoint(
        partner_id=partner_id,
        url=url,
        event_types=types,
        secret=seal(secret_key, secret, purpose=_secret_purpose(partner_id)),
        enabled=True,
        created_at=now or utcnow(),
        after_event_id=await session.scalar(sa.select(sa.func.coalesce(sa.func.max(OutboxEvent.id), 0))),
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get_endpoint(
    session: AsyncSession, *, partner_id: int, endpoint_id: int, lock: bool = False
) -> WebhookEndpoint:
    """The partner's endpoint (not deleted); another partner's answers NotFound like an unknown id."""
    stmt = sa.select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id,
        WebhookEndpoint.partner_id == partner_id,
        WebhookEndpoint.deleted_at.is_(None),
    )
    if lock:
        stmt = stmt.with_for_update()
    endpoint = (await session.execute(stmt)).scalar_one_or_none()
    if endpoint is None:
        raise NotFound("No such webhook endpoint", field=["input", "id"])
    return endpoint


async def delete_endpoint(
    *, session: AsyncSession, partner_id: int, endpoint_id: int, now: dt.datetime | None = None
) -> WebhookEndpoint:
    """Remove the endpoint: nothing more is sent to it; its pending deliveries fail."""
    now = now or utcnow()
    endpoint = await get_endpoint(session, partner_id=partner_id, endpoint_id=endpoint_id, lock=True)
    endpoint.enabled = False
    endpoint.deleted_at = now
    endpoint.disabled_reason = "deleted"
    await _fail_pending(session, endpoint.id, "the endpoint was deleted")
    await session.flush()
    return endpoint


def endpoints_of(partner_id: int) -> sa.Select:
    return (
        sa.select(WebhookEndpoint)
        .where(WebhookEndpoint.partner_id == partner_id, WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.id)
    )


async def _fail_pending(session: AsyncSession, endpoint_id: int, reason: str) -> None:
    await session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=reason, lease_owner=None, lease_until=None
        )
        .execution_options(synchronize_session=False)
    )


# ---------------------------------------------------------------- deliveries


def deliveries_of(
    partner_id: int, *, endpoint_id: int | None = None, status: DeliveryStatus | None = None
) -> sa.Select:
    """The partner's deliveries (paginate newest first by id)."""
    stmt = sa.select(WebhookDelivery).where(WebhookDelivery.partner_id == partner_id)
    if endpoint_id is not None:
        stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    return stmt


async def endpoint_exists(session: AsyncSession, *, partner_id: int, endpoint_id: int) -> bool:
    """The partner has (or had: deleted ones keep their deliveries) this endpoint."""
    found = await session.scalar(
        sa.select(WebhookEndpoint.id).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.partner_id == partner_id)
    )
    return found is not None


async def redeliver(
    *, session: AsyncSession, partner_id: int, delivery_id: int, now: dt.datetime | None = None
) -> WebhookDelivery:
    """Send a delivery again now, with a fresh retry schedule (same `webhook-id`)."""
    now = now or utcnow()
    delivery = (
        await session.execute(
            sa.select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.partner_id == partner_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if delivery is None:
        raise NotFound("No such webhook delivery", field=["input", "deliveryId"])
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled or endpoint.deleted_at is not None:
        raise InvalidState("The delivery's endpoint is disabled or deleted; register an endpoint again")
    in_flight = (
        delivery.status == DeliveryStatus.PENDING and delivery.lease_until is not None and delivery.lease_until > now
    )
    delivery.status = DeliveryStatus.PENDING
    delivery.round_attempts = 0
    delivery.next_attempt_at = now
    if not in_flight:  # a worker sending it right now keeps it (and reports its attempt)
        delivery.lease_owner = None
        delivery.lease_until = None
    await session.flush()
    return delivery


# ---------------------------------------------------------------- the dispatcher


def _insert_ignore(dialect: str, model, values: list[dict], key: list[str]):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).values(values).on_conflict_do_nothing(index_elements=key)


async def has_undispatched(db: Database) -> bool:
    """Whether the outbox holds events past the dispatcher's position (a cheap read)."""
    async with db.session() as session:
        position = await session.scalar(
            sa.select(WebhookDispatchState.position).where(WebhookDispatchState.name == "outbox")
        )
        newest = await session.scalar(sa.select(sa.func.max(OutboxEvent.id)))
    return newest is not None and newest > (position or 0)


async def has_due(db: Database, *, now: dt.datetime | None = None) -> bool:
    """Whether some delivery is due (a cheap read before claiming)."""
    now = now or utcnow()
    async with db.session() as session:
        found = await session.scalar(
            sa.select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
                sa.or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
            )
            .limit(1)
        )
    return found is not None


async def dispatch(
    *, db: Database, now: dt.datetime | None = None, limit: int = 1000, gap_grace: dt.timedelta = GAP_GRACE
) -> int:
    """Turn outbox events past the stored position into deliveries; returns how many were new.

    One transaction that locks the position row, so dispatchers in several processes take
    turns; a delivery is never written twice (unique endpoint and event)."""
    now = now or utcnow()
    async with db.transaction() as session:
        await session.execute(
            _insert_ignore(
                db.dialect, WebhookDispatchState, [dict(name="outbox", position=0, updated_at=now)], ["name"]
            )
        )
        state = (
            await session.execute(
                sa.select(WebhookDispatchState)
                .where(WebhookDispatchState.name == "outbox")
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        events = (
            await session.execute(
                sa.select(OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.type)
                .where(OutboxEvent.id > state.position)
                .order_by(OutboxEvent.id)
                .limit(limit)
            )
        ).all()
        if not events:
            state.gap_since = None
            return 0
        ids = [e.id for e in events]
        recipients: dict[int, list[int]] = {}
        for event_pk, partner_id in await session.execute(
            sa.select(OutboxRecipient.event_id, OutboxRecipient.partner_id).where(OutboxRecipient.event_id.in_(ids))
        ):
            recipients.setdefault(event_pk, []).append(partner_id)
        partners = {p for ps in recipients.values() for p in ps}
        endpoints: dict[int, list[WebhookEndpoint]] = {}
        if partners:
            for endpoint in (
                await session.execute(
                    sa.select(WebhookEndpoint).where(
                        WebhookEndpoint.partner_id.in_(partners),
                        WebhookEndpoint.enabled.is_(True),
                        WebhookEndpoint.deleted_at.is_(None),
                    )
                )
            ).scalars():
                endpoints.setdefault(endpoint.partner_id, []).append(endpoint)
        rows = []
        for event in events:
            for partner_id in recipients.get(event.id, []):
                for endpoint in endpoints.get(partner_id, []):
                    if event.type in (endpoint.event_types or []) and event.id > (endpoint.after_event_id or 0):
                        rows.append(
                            dict(
                                outbox_event_id=event.id,
                                event_id=event.event_id,
                                event_type=event.type,
                                endpoint_id=endpoint.id,
                                partner_id=partner_id,
                                status=DeliveryStatus.PENDING.value,
                                attempts=0,
                                round_attempts=0,
                                next_attempt_at=now,
                                created_at=now,
                            )
                        )
        created = 0
        for start in range(0, len(rows), 500):
            result = await session.execute(
                _insert_ignore(
                    db.dialect, WebhookDelivery, rows[start : start + 500], ["endpoint_id", "outbox_event_id"]
                )
            )
            created += max(result.rowcount or 0, 0)
        _advance(state, ids, now=now, gap_grace=gap_grace)
        return created


def _advance(state: WebhookDispatchState, ids: list[int], *, now: dt.datetime, gap_grace: dt.timedelta) -> None:
    contiguous = state.position
    for event_id in ids:
        if event_id != contiguous + 1:
            break
        contiguous = event_id
    if contiguous == ids[-1]:
        state.position, state.gap_since = contiguous, None
    elif state.gap_since is not None and now - state.gap_since >= gap_grace:
        state.position, state.gap_since = ids[-1], None  # the hole was a rollback: move past it
    else:
        state.position = contiguous
        state.gap_since = state.gap_since or now
    state.updated_at = now


# ---------------------------------------------------------------- delivery workers


@dataclass(frozen=True)
class ClaimedDelivery:
    """What a delivery worker needs to send one attempt."""

    id: int
    event_id: str
    event_type: str
    endpoint_id: int
    url: str
    secret: str
    body: bytes
    attempts: int


def event_body(event: OutboxEvent) -> bytes:
    """The request body: {"type", "timestamp", "data"}, the same bytes on every attempt."""
    created = event.created_at.astimezone(dt.UTC)
    body = {"type": event.type, "timestamp": created.isoformat().replace("+00:00", "Z"), "data": event.payload}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


async def claim_due(
    *,
    db: Database,
    secret_key: str,
    owner: str,
    limit: int = 50,
    lease_seconds: float = 60.0,
    now: dt.datetime | None = None,
) -> list[ClaimedDelivery]:
    """Take up to `limit` due deliveries for this worker for `lease_seconds`.

    Rows another worker is claiming are skipped (SKIP LOCKED) and the UPDATE only takes rows
    whose lease is free, so two workers never hold the same delivery."""
    now = now or utcnow()
    async with db.transaction() as session:
        free = sa.or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
        ids = (
            (
                await session.execute(
                    sa.select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now, free
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            return []
        await session.execute(
            sa.update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == DeliveryStatus.PENDING, free)
            .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
        rows = (
            await session.execute(
                sa.select(WebhookDelivery, OutboxEvent, WebhookEndpoint)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.outbox_event_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.id.in_(ids), WebhookDelivery.lease_owner == owner)
                .order_by(WebhookDelivery.id)
                .execution_options(populate_existing=True)
            )
        ).all()
    return [
        ClaimedDelivery(
            id=delivery.id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            endpoint_id=endpoint.id,
            url=endpoint.url,
            secret=secret_of(endpoint, secret_key),
            body=event_body(event),
            attempts=delivery.attempts,
        )
        for delivery, event, endpoint in rows
    ]


async def record_attempt(
    *,
    db: Database,
    delivery_id: int,
    owner: str,
    status_code: int | None,
    error: str | None = None,
    schedule: Sequence[float] = RETRY_SCHEDULE,
    now: dt.datetime | None = None,
    rng: random.Random | None = None,
) -> WebhookDelivery | None:
    """Note one attempt's answer: 2xx DELIVERED; 410 FAILED and the endpoint disabled; anything
    else (or no answer) a retry per `schedule`, FAILED when it is spent. None when this
    worker's lease was lost meanwhile (another worker owns the delivery now)."""
    now = now or utcnow()
    async with db.transaction() as session:
        delivery = (
            await session.execute(
                sa.select(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if delivery is None or delivery.lease_owner != owner:
            return None
        delivery.attempts += 1
        delivery.round_attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code = status_code
        delivery.lease_owner = None
        delivery.lease_until = None
        if status_code is not None and 200 <= status_code < 300:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.last_error = None
        elif status_code == 410:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = "410 Gone: the endpoint is disabled"
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id, with_for_update=True)
            if endpoint is not None and endpoint.enabled:
                endpoint.enabled = False
                endpoint.disabled_reason = "gone"
            await session.flush()
            await _fail_pending(session, delivery.endpoint_id, "the endpoint answered 410 Gone and is disabled")
        else:
            delivery.last_error = (error or f"HTTP {status_code}")[:2000]
            wait = next_wait(delivery.round_attempts, schedule, rng=rng)
            if wait is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = now + dt.timedelta(seconds=wait)
        await session.flush()
        return delivery


__all__ = [
    "ClaimedDelivery",
    "GAP_GRACE",
    "RETRY_SCHEDULE",
    "UnsafeAddress",
    "address_refusal",
    "check_url",
    "claim_due",
    "create_endpoint",
    "deliveries_of",
    "delete_endpoint",
    "dispatch",
    "endpoint_exists",
    "endpoints_of",
    "event_body",
    "get_endpoint",
    "has_due",
    "has_undispatched",
    "new_secret",
    "next_wait",
    "record_attempt",
    "redeliver",
    "resolve_public",
    "secret_of",
    "vet_url",
]
