"""Webhook delivery over real HTTP to a loopback receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import sqlalchemy as sa
from standardwebhooks import Webhook

from connectors.webhooks import DeliveryWorker
from gateway import webhooks
from gateway.db import Database
from gateway.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from gateway.outbox import emit
from tests.gateway import factories
from tests.support.simulators import webhook_receiver  # noqa: F401  (fixture)

SECRET_KEY = "test-secret-key-not-for-production"
FAST = (0.05,) * 9  # the Standard Webhooks schedule, compressed for tests


async def _endpoint(db, partner_id, url, types=("activity.credited",)):
    async with db.transaction() as session:
        return await webhooks.create_endpoint(
            session=session,
            secret_key=SECRET_KEY,
            partner_id=partner_id,
            url=url,
            event_types=list(types),
            allow_private=True,
        )


async def _emit(db, partner_id, type_="activity.credited", data=None) -> str:
    async with db.transaction() as session:
        return await emit(
            session=session, type=type_, partner_ids=[partner_id], data=data or {"member": "kim", "points": 200}
        )


async def _delivery(db, event_id) -> WebhookDelivery:
    async with db.session() as session:
        return (
            await session.execute(sa.select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
        ).scalar_one()


async def _until_settled(db, worker: DeliveryWorker, event_id: str, timeout: float = 10.0) -> WebhookDelivery:
    for _ in range(int(timeout / 0.05)):
        await worker.run_once()
        delivery = await _delivery(db, event_id)
        if delivery.status != DeliveryStatus.PENDING:
            return delivery
        await asyncio.sleep(0.05)
    raise AssertionError("the delivery did not settle")


async def test_a_webhook_verifies_with_standardwebhooks_and_the_endpoints_secret(db, settings, webhook_receiver):
    async with db.transaction() as session:
        op = await factories.operator(session)
    endpoint, secret = await _endpoint(db, op.id, webhook_receiver.url + "/hooks/mileage")
    event_id = await _emit(db, op.id, data={"member": "kim", "date": "2026-11-24", "points": 200})
    await webhooks.dispatch(db=db)
    worker = DeliveryWorker(db=db, settings=settings)
    try:
        assert await worker.drain() == 1
    finally:
        await worker.aclose()
    [received] = webhook_receiver.received
    assert received.path == "/hooks/mileage"
    assert received.headers["webhook-id"] == event_id
    body = Webhook(secret).verify(received.body, received.headers)
    assert body["type"] == "activity.credited" and body["data"] == {
        "member": "kim",
        "date": "2026-11-24",
        "points": 200,
    }
    assert body["timestamp"].endswith("Z")
    assert received.headers["webhook-signature"].startswith("v1,")
    assert received.headers["content-type"] == "application/json"
    delivery = await _delivery(db, event_id)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1 and delivery.last_status_code == 204
    # Another secret does not verify.
    other = webhooks.new_secret()
    try:
        Webhook(other).verify(received.body, received.headers)
        raise AssertionError("verified with another secret")
    except Exception as exc:  # noqa: BLE001 - standardwebhooks' WebhookVerificationError
        assert "signature" in str(exc).lower()


async def test_a_receiver_failing_twice_gets_the_same_webhook_id_three_times(db, settings, webhook_receiver):
    async with db.transaction() as session:
        op = await factories.operator(session)
    _, secret = await _endpoint(db, op.id, webhook_receiver.url + "/in")
    event_id = await _emit(db, op.id)
    await webhooks.dispatch(db=db)
    webhook_receiver.fail_next(2, status=503)
    worker = DeliveryWorker(db=db, settings=settings, schedule=FAST)
    try:
        delivery = await _until_settled(db, worker, event_id)
    finally:
        await worker.aclose()
    assert webhook_receiver.ids() == [event_id, event_id, event_id]
    assert [r.status for r in webhook_receiver.received] == [503, 503, 204]
    assert len({r.body for r in webhook_receiver.received}) == 1  # the same body each time
    for received in webhook_receiver.received:
        Webhook(secret).verify(received.body, received.headers)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3


async def test_a_receiver_that_keeps_failing_ends_failed_after_the_schedule(db, settings, webhook_receiver):
    async with db.transaction() as session:
        op = await factories.operator(session)
    await _endpoint(db, op.id, webhook_receiver.url + "/in")
    event_id = await _emit(db, op.id)
    await webhooks.dispatch(db=db)
    webhook_receiver.fail_next(100)
    worker = DeliveryWorker(db=db, settings=dataclasses.replace(settings, webhook_retry_schedule=(0.05, 0.05)))
    try:
        delivery = await _until_settled(db, worker, event_id)
    finally:
        await worker.aclose()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3 and delivery.last_status_code == 500


async def test_a_410_answer_disables_the_endpoint(db, settings, webhook_receiver):
    async with db.transaction() as session:
        op = await factories.operator(session)
    endpoint, _ = await _endpoint(db, op.id, webhook_receiver.url + "/in")
    event_id = await _emit(db, op.id)
    await webhooks.dispatch(db=db)
    webhook_receiver.gone()
    worker = DeliveryWorker(db=db, settings=settings, schedule=FAST)
    try:
        delivery = await _until_settled(db, worker, event_id)
    finally:
        await worker.aclose()
    assert delivery.status == DeliveryStatus.FAILED and delivery.last_status_code == 410
    async with db.session() as session:
        assert not (await session.get(WebhookEndpoint, endpoint.id)).enabled


async def test_the_resolved_address_is_checked_again_at_delivery(db, settings, webhook_receiver):
    """An endpoint whose name resolves to loopback (registered while private addresses were
    allowed, or re-pointed in DNS since) gets nothing once they are not allowed."""
    async with db.transaction() as session:
        op = await factories.operator(session)
    await _endpoint(db, op.id, f"http://localhost:{webhook_receiver.port}/in")
    await _endpoint(db, op.id, f"http://127.0.0.1:{webhook_receiver.port}/in")
    await _emit(db, op.id)
    await webhooks.dispatch(db=db)
    strict = dataclasses.replace(settings, webhook_allow_private=False)
    worker = DeliveryWorker(db=db, settings=strict, schedule=FAST)
    try:
        assert await worker.run_once() == 2
    finally:
        await worker.aclose()
    assert webhook_receiver.received == []
    async with db.session() as session:
        deliveries = (await session.execute(sa.select(WebhookDelivery))).scalars().all()
    assert all(
        d.status == DeliveryStatus.PENDING and "loopback" in d.last_error and d.last_status_code is None
        for d in deliveries
    )


async def test_with_two_gateway_processes_each_event_is_delivered_once_per_endpoint(db, settings, webhook_receiver):
    async with db.transaction() as session:
        a = await factories.operator(session)
        b = await factories.operator(session)
    await _endpoint(db, a.id, webhook_receiver.url + "/a1")
    await _endpoint(db, a.id, webhook_receiver.url + "/a2")
    await _endpoint(db, b.id, webhook_receiver.url + "/b")
    second = Database(settings.database_url)  # the other process's engine and pool
    workers = [
        DeliveryWorker(db=db, settings=settings, owner="gw-1"),
        DeliveryWorker(db=second, settings=settings, owner="gw-2"),
    ]
    events: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def process(database: Database, worker: DeliveryWorker) -> None:
        while not done.is_set():
            if await webhooks.has_undispatched(database):
                await webhooks.dispatch(db=database)
            await worker.run_once()
            await asyncio.sleep(0.01)

    async def partners_act() -> None:
        for i in range(20):
            events.append((await _emit(db, a.id, data={"i": i}), 2))
            events.append((await _emit(second, b.id, data={"i": i}), 1))
            await asyncio.sleep(0.005)

    try:
        running = [asyncio.create_task(process(d, w)) for d, w in ((db, workers[0]), (second, workers[1]))]
        await partners_act()
        expected = sum(n for _, n in events)
        await asyncio.to_thread(webhook_receiver.wait_for, expected, 30)
        await asyncio.sleep(0.3)  # anything extra would arrive by now
        done.set()
        await asyncio.gather(*running)
    finally:
        for worker in workers:
            await worker.aclose()
        await second.dispose()

    got = [(r.headers["webhook-id"], r.path) for r in webhook_receiver.received]
    assert len(got) == expected == 60
    assert len(set(got)) == len(got), "an event reached an endpoint twice"
    assert {path for _, path in got} == {"/a1", "/a2", "/b"}
    owners = {json.loads(r.body)["data"]["i"] for r in webhook_receiver.received}
    assert owners == set(range(20))
    async with db.session() as session:
        statuses = (await session.execute(sa.select(WebhookDelivery.status, WebhookDelivery.attempts))).all()
    assert statuses and all(s == DeliveryStatus.DELIVERED and n == 1 for s, n in statuses)
