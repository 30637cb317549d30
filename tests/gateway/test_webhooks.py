"""Webhooks, the domain half: endpoints, SSRF refusals, the dispatcher, the retry schedule."""

from __future__ import annotations

import base64
import datetime as dt
import random
import socket

import pytest
import sqlalchemy as sa

from gateway import webhooks
from gateway.db import utcnow
from gateway.errors import InvalidInput, InvalidState, NotFound
from gateway.models import DeliveryStatus, OutboxEvent, PartnerKind, WebhookDelivery, WebhookEndpoint
from gateway.outbox import emit
from tests.gateway import factories

SECRET_KEY = "test-secret-key-not-for-production"


async def _endpoint(
    db, partner_id: int, types=("redemption.captured",), url="https://hooks.example.com/in"
) -> tuple[WebhookEndpoint, str]:
    async with db.transaction() as session:
        return await webhooks.create_endpoint(
            session=session,
            secret_key=SECRET_KEY,
            partner_id=partner_id,
            url=url,
            event_types=list(types),
            allow_private=False,
        )


async def _emit(db, type_: str, *partner_ids: int, data: dict | None = None) -> str:
    async with db.transaction() as session:
        return await emit(session=session, type=type_, partner_ids=partner_ids, data=data or {"n": 1})


async def _deliveries(db) -> list[WebhookDelivery]:
    async with db.session() as session:
        return list((await session.execute(sa.select(WebhookDelivery).order_by(WebhookDelivery.id))).scalars())


# ---------------------------------------------------------------- SSRF


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[fe80::1%25eth0]/hook",
        "http://0177.0.0.1/hook",
        "http://100.100.100.200/latest/meta-data",
        "http://0.0.0.0/hook",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/hook",
        "ftp://hooks.example.com/hook",
        "file:///etc/passwd",
        "https://user:pw@hooks.example.com/hook",
        "hooks.example.com/hook",
    ],
)
def test_endpoints_on_private_loopback_link_local_and_metadata_addresses_are_refused(url):
    with pytest.raises(InvalidInput):
        webhooks.check_url(url, allow_private=False)


def test_public_https_urls_are_accepted_and_private_ones_only_when_allowed():
    assert webhooks.check_url("https://93.184.216.34/hooks?x=1", allow_private=False)[1] == "93.184.216.34"
    assert webhooks.check_url("https://hooks.example.com/in", allow_private=False)[2] == 443
    assert webhooks.check_url("http://127.0.0.1:9000/hook", allow_private=True)[2] == 9000
    with pytest.raises(InvalidInput):
        webhooks.check_url("ftp://127.0.0.1/hook", allow_private=True)


async def test_a_name_resolving_to_a_private_address_is_refused_at_registration():
    host = socket.gethostname()  # resolves to loopback or a private address on test machines
    addresses = {info[4][0] for info in socket.getaddrinfo(host, 80)}
    if any(webhooks.address_refusal(a) is None for a in addresses):
        pytest.skip(f"{host} resolves to a public address here")
    with pytest.raises(InvalidInput, match="resolves to"):
        await webhooks.vet_url(f"http://{host}:8080/hook", allow_private=False)
    assert await webhooks.vet_url(f"http://{host}:8080/hook", allow_private=True)


async def test_resolved_addresses_are_checked_one_by_one():
    with pytest.raises(webhooks.UnsafeAddress, match="loopback"):
        await webhooks.resolve_public("localhost", 80, allow_private=False)
    assert "127.0.0.1" in await webhooks.resolve_public("localhost", 80, allow_private=True)


# ---------------------------------------------------------------- endpoints


async def test_an_endpoint_gets_a_secret_shown_once_and_kept_sealed(db):
    async with db.transaction() as session:
        op = await factories.operator(session)
    endpoint, secret = await _endpoint(db, op.id)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    assert secret not in endpoint.secret and endpoint.secret.startswith("v1.")
    assert webhooks.secret_of(endpoint, SECRET_KEY) == secret


async def test_unknown_event_types_are_refused(db):
    async with db.transaction() as session:
        op = await factories.operator(session)
    with pytest.raises(InvalidInput, match="unknown event types: redemption.teleported"):
        await _endpoint(db, op.id, types=["redemption.captured", "redemption.teleported"])
    with pytest.raises(InvalidInput):
        await _endpoint(db, op.id, types=[])


async def test_another_partners_endpoint_answers_not_found(db):
    async with db.transaction() as session:
        a = await factories.operator(session)
        b = await factories.operator(session)
    endpoint, _ = await _endpoint(db, a.id)
    with pytest.raises(NotFound):
        async with db.transaction() as session:
            await webhooks.delete_endpoint(session=session, partner_id=b.id, endpoint_id=endpoint.id)
    async with db.transaction() as session:
        deleted = await webhooks.delete_endpoint(session=session, partner_id=a.id, endpoint_id=endpoint.id)
    assert not deleted.enabled and deleted.deleted_at is not None


# ---------------------------------------------------------------- the dispatcher


async def test_events_become_one_delivery_per_subscribed_endpoint_of_the_partners_concerned(db):
    async with db.transaction() as session:
        a = await factories.operator(session)
        b = await factories.operator(session)
        merchant = await factories.partner(session, PartnerKind.MERCHANT, operator_id=a.id)
    old = await _emit(db, "redemption.captured", a.id)  # before any endpoint: not delivered
    captured, _ = await _endpoint(db, a.id, types=["redemption.captured"])
    everything, _ = await _endpoint(db, a.id, types=["redemption.captured", "activity.credited"])
    merchant_hook, _ = await _endpoint(db, merchant.id, types=["redemption.captured"])
    b_hook, _ = await _endpoint(db, b.id, types=["redemption.captured"])

    first = await _emit(db, "redemption.captured", a.id, merchant.id)
    second = await _emit(db, "activity.credited", a.id)
    await _emit(db, "activity.credited", b.id)  # b does not subscribe to it

    assert await webhooks.has_undispatched(db)
    assert await webhooks.dispatch(db=db) == 4
    assert await webhooks.dispatch(db=db) == 0  # nothing twice
    assert not await webhooks.has_undispatched(db)
    pairs = {(d.event_id, d.endpoint_id) for d in await _deliveries(db)}
    assert pairs == {
        (first, captured.id),
        (first, everything.id),
        (first, merchant_hook.id),
        (second, everything.id),
    }
    assert all(event != old for event, _ in pairs) and all(e != b_hook.id for _, e in pairs)


async def test_a_hole_in_the_outbox_ids_holds_the_position_but_not_the_deliveries(db):
    async with db.transaction() as session:
        a = await factories.operator(session)
    hook, _ = await _endpoint(db, a.id, types=["activity.credited"])
    first = await _emit(db, "activity.credited", a.id)
    # An event id taken by a transaction that has not committed (or rolled back): simulate
    # the hole by writing the next event with a later id.
    async with db.transaction() as session:
        top = await session.scalar(sa.select(sa.func.max(OutboxEvent.id)))
        session.add(
            OutboxEvent(
                id=top + 2, event_id="evt_after_hole", type="activity.credited", payload={}, created_at=utcnow()
            )
        )
        await session.flush()
        from gateway.models import OutboxRecipient

        session.add(OutboxRecipient(partner_id=a.id, event_id=top + 2))
    now = utcnow()
    assert await webhooks.dispatch(db=db, now=now) == 2
    async with db.session() as session:
        state = await session.get(webhooks.WebhookDispatchState, "outbox")
        assert state.position == top and state.gap_since is not None
    # Within the grace period the position waits; afterwards it moves past the hole.
    assert await webhooks.dispatch(db=db, now=now + dt.timedelta(seconds=5)) == 0
    await webhooks.dispatch(db=db, now=now + webhooks.GAP_GRACE + dt.timedelta(seconds=1))
    async with db.session() as session:
        state = await session.get(webhooks.WebhookDispatchState, "outbox", populate_existing=True)
        assert state.position == top + 2 and state.gap_since is None
    assert {d.event_id for d in await _deliveries(db)} == {first, "evt_after_hole"}


# ---------------------------------------------------------------- retries


def test_the_retry_schedule_is_standard_webhooks_with_ten_percent_jitter():
    rng = random.Random(7)
    expected = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    for attempt, base in enumerate(expected, start=1):
        for _ in range(20):
            wait = webhooks.next_wait(attempt, rng=rng)
            assert base * 0.9 <= wait <= base * 1.1
    assert webhooks.next_wait(10) is None
    assert sum(expected) >= 24 * 3600


async def _claim_one(db, owner="w1", now=None):
    claimed = await webhooks.claim_due(db=db, secret_key=SECRET_KEY, owner=owner, now=now)
    assert len(claimed) == 1
    return claimed[0]


async def test_failures_follow_the_schedule_then_fail_and_can_be_redelivered(db):
    async with db.transaction() as session:
        a = await factories.operator(session)
        b = await factories.operator(session)
    await _endpoint(db, a.id, types=["activity.credited"])
    await _emit(db, "activity.credited", a.id)
    await webhooks.dispatch(db=db)
    now = utcnow()
    schedule = (5, 300)
    claimed = await _claim_one(db, now=now)
    assert await webhooks.claim_due(db=db, secret_key=SECRET_KEY, owner="w2", now=now) == []  # leased
    d = await webhooks.record_attempt(
        db=db, delivery_id=claimed.id, owner="w1", status_code=500, schedule=schedule, now=now
    )
    assert d.status == DeliveryStatus.PENDING and 4.5 <= (d.next_attempt_at - now).total_seconds() <= 5.5
    assert await webhooks.claim_due(db=db, secret_key=SECRET_KEY, owner="w1", now=now) == []  # not due yet
    later = now + dt.timedelta(seconds=6)
    claimed = await _claim_one(db, now=later)
    d = await webhooks.record_attempt(
        db=db, delivery_id=claimed.id, owner="w1", status_code=None, error="timeout", schedule=schedule, now=later
    )
    assert d.status == DeliveryStatus.PENDING and d.attempts == 2
    last = later + dt.timedelta(seconds=400)
    claimed = await _claim_one(db, now=last)
    d = await webhooks.record_attempt(
        db=db, delivery_id=claimed.id, owner="w1", status_code=502, schedule=schedule, now=last
    )
    assert d.status == DeliveryStatus.FAILED and d.next_attempt_at is None and d.attempts == 3

    with pytest.raises(NotFound):
        async with db.transaction() as session:
            await webhooks.redeliver(session=session, partner_id=b.id, delivery_id=d.id)
    async with db.transaction() as session:
        again = await webhooks.redeliver(session=session, partner_id=a.id, delivery_id=d.id)
    assert again.status == DeliveryStatus.PENDING and again.round_attempts == 0
    claimed = await _claim_one(db)
    d = await webhooks.record_attempt(db=db, delivery_id=claimed.id, owner="w1", status_code=200, schedule=schedule)
    assert d.status == DeliveryStatus.DELIVERED and d.attempts == 4


async def test_a_410_disables_the_endpoint_and_fails_what_was_pending_for_it(db):
    async with db.transaction() as session:
        a = await factories.operator(session)
    endpoint, _ = await _endpoint(db, a.id, types=["activity.credited"])
    await _emit(db, "activity.credited", a.id)
    await _emit(db, "activity.credited", a.id)
    await webhooks.dispatch(db=db)
    claimed = await webhooks.claim_due(db=db, secret_key=SECRET_KEY, owner="w1", limit=1)
    await webhooks.record_attempt(db=db, delivery_id=claimed[0].id, owner="w1", status_code=410)
    deliveries = await _deliveries(db)
    assert [d.status for d in deliveries] == [DeliveryStatus.FAILED, DeliveryStatus.FAILED]
    async with db.session() as session:
        row = await session.get(WebhookEndpoint, endpoint.id)
        assert not row.enabled and row.disabled_reason == "gone"
    with pytest.raises(InvalidState):
        async with db.transaction() as session:
            await webhooks.redeliver(session=session, partner_id=a.id, delivery_id=deliveries[0].id)
    # Nothing more is dispatched to it.
    await _emit(db, "activity.credited", a.id)
    assert await webhooks.dispatch(db=db) == 0


async def test_a_worker_that_lost_its_lease_cannot_record_an_attempt(db):
    async with db.transaction() as session:
        a = await factories.operator(session)
    await _endpoint(db, a.id, types=["activity.credited"])
    await _emit(db, "activity.credited", a.id)
    await webhooks.dispatch(db=db)
    now = utcnow()
    claimed = await webhooks.claim_due(db=db, secret_key=SECRET_KEY, owner="slow", lease_seconds=1, now=now)
    taken = await webhooks.claim_due(db=db, secret_key=SECRET_KEY, owner="fast", now=now + dt.timedelta(seconds=2))
    assert [c.id for c in taken] == [claimed[0].id]
    assert await webhooks.record_attempt(db=db, delivery_id=claimed[0].id, owner="slow", status_code=200) is None
    assert (
        await webhooks.record_attempt(db=db, delivery_id=taken[0].id, owner="fast", status_code=200)
    ).status == DeliveryStatus.DELIVERED
