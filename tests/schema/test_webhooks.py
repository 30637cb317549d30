"""GraphQL: webhook endpoints and deliveries, each partner for itself."""

from __future__ import annotations

import dataclasses

import pytest

from gateway import webhooks
from gateway.models import PartnerKind
from gateway.outbox import emit
from schema.ids import decode_pk
from tests.gateway import factories
from tests.support.schema import execute, principal

CREATE = """
mutation($url: String!, $types: [String!]!) {
  createWebhookEndpoint(input: {url: $url, eventTypes: $types}) {
    endpoint { id url eventTypes enabled createdAt } secret errors { code message field }
  }
}"""
ENDPOINTS = "query { webhookEndpoints { id url eventTypes enabled disabledReason } }"
DELETE = "mutation($id: ID!) { deleteWebhookEndpoint(input: {id: $id}) { endpoint { id enabled disabledReason } errors { code field } } }"
DELIVERIES = """
query($endpoint: ID, $status: DeliveryStatus, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $endpoint, status: $status, first: $first, after: $after) {
    edges { cursor node { id eventId eventType status attempts lastStatusCode lastError nextAttemptAt createdAt endpoint { id url } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
REDELIVER = (
    "mutation($id: ID!) { redeliverWebhook(input: {deliveryId: $id}) { delivery { id status } errors { code field } } }"
)


@pytest.fixture
async def world(db):
    async with db.transaction() as session:
        op = await factories.operator(session)
        merchant = await factories.partner(session, PartnerKind.MERCHANT, operator_id=op.id)
        beneficiary = await factories.partner(session, PartnerKind.BENEFICIARY)
    return dict(
        op=principal(op.id, op.code, "OPERATOR", "webhooks:manage"),
        op_id=op.id,
        merchant=principal(merchant.id, merchant.code, "MERCHANT", "webhooks:manage"),
        beneficiary=principal(beneficiary.id, beneficiary.code, "BENEFICIARY", "webhooks:manage"),
        unscoped=principal(op.id, op.code, "OPERATOR", "members:read"),
    )


async def _create(db, settings, who, url="https://hooks.example.com/mileage", types=("activity.credited",)):
    result = await execute(db, settings, who, CREATE, {"url": url, "types": list(types)})
    assert not result.errors, result.errors
    return result.data["createWebhookEndpoint"]


async def test_any_partner_registers_endpoints_for_itself_and_sees_only_those(db, settings, world):
    created = await _create(db, settings, world["op"])
    assert created["errors"] == [] and created["secret"].startswith("whsec_")
    assert created["endpoint"]["eventTypes"] == ["activity.credited"] and created["endpoint"]["enabled"]
    await _create(db, settings, world["beneficiary"], types=("donation.created",))
    listed = (await execute(db, settings, world["op"], ENDPOINTS)).data["webhookEndpoints"]
    assert [e["id"] for e in listed] == [created["endpoint"]["id"]]
    assert "secret" not in listed[0]
    assert (await execute(db, settings, world["merchant"], ENDPOINTS)).data["webhookEndpoints"] == []
    assert (await execute(db, settings, world["unscoped"], ENDPOINTS)).errors[0].extensions["code"] == "FORBIDDEN"


async def test_urls_on_private_addresses_are_refused_unless_allowed(db, settings, world):
    strict = dataclasses.replace(settings, webhook_allow_private=False)
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9000/hook",
        "http://[::1]/x",
        "gopher://example.com/",
    ):
        payload = (await execute(db, strict, world["op"], CREATE, {"url": url, "types": ["activity.credited"]})).data[
            "createWebhookEndpoint"
        ]
        assert payload["endpoint"] is None and payload["secret"] is None
        assert payload["errors"][0]["code"] == "INVALID_INPUT" and payload["errors"][0]["field"] == ["input", "url"]
    allowed = await _create(db, settings, world["op"], url="http://127.0.0.1:9000/hook")
    assert allowed["errors"] == []
    bad_type = (
        await execute(db, settings, world["op"], CREATE, {"url": "https://a.example/x", "types": ["nope"]})
    ).data
    assert bad_type["createWebhookEndpoint"]["errors"][0]["field"] == ["input", "eventTypes"]


async def test_another_partners_endpoint_or_delivery_answers_not_found(db, settings, world):
    created = await _create(db, settings, world["op"])
    endpoint_id = created["endpoint"]["id"]
    async with db.transaction() as session:
        await emit(session=session, type="activity.credited", partner_ids=[world["op_id"]], data={"n": 1})
    await webhooks.dispatch(db=db)
    delivery = (await execute(db, settings, world["op"], DELIVERIES)).data["webhookDeliveries"]["edges"][0]["node"]

    foreign = await execute(db, settings, world["merchant"], DELETE, {"id": endpoint_id})
    assert foreign.data["deleteWebhookEndpoint"]["errors"][0]["code"] == "NOT_FOUND"
    foreign = await execute(db, settings, world["merchant"], REDELIVER, {"id": delivery["id"]})
    assert foreign.data["redeliverWebhook"]["errors"][0]["code"] == "NOT_FOUND"
    foreign = await execute(db, settings, world["merchant"], DELIVERIES, {"endpoint": endpoint_id})
    assert foreign.errors[0].extensions["code"] == "NOT_FOUND" and foreign.data is None
    garbage = await execute(db, settings, world["op"], DELETE, {"id": "not-an-id"})
    assert garbage.data["deleteWebhookEndpoint"]["errors"][0]["code"] == "NOT_FOUND"

    mine = await execute(db, settings, world["op"], REDELIVER, {"id": delivery["id"]})
    assert mine.data["redeliverWebhook"] == {"delivery": {"id": delivery["id"], "status": "PENDING"}, "errors": []}
    deleted = (await execute(db, settings, world["op"], DELETE, {"id": endpoint_id})).data["deleteWebhookEndpoint"]
    assert deleted["endpoint"] == {"id": endpoint_id, "enabled": False, "disabledReason": "deleted"}
    assert (await execute(db, settings, world["op"], ENDPOINTS)).data["webhookEndpoints"] == []
    again = (await execute(db, settings, world["op"], DELETE, {"id": endpoint_id})).data["deleteWebhookEndpoint"]
    assert again["errors"][0]["code"] == "NOT_FOUND"
    # Its deliveries stay readable, failed.
    after = (await execute(db, settings, world["op"], DELIVERIES, {"endpoint": endpoint_id})).data["webhookDeliveries"][
        "edges"
    ]
    assert [e["node"]["status"] for e in after] == ["FAILED"] and after[0]["node"][
        "lastError"
    ] == "the endpoint was deleted"


async def test_deliveries_are_listed_newest_first_page_by_page(db, settings, world):
    first = await _create(db, settings, world["op"], url="https://one.example/h")
    second = await _create(
        db, settings, world["op"], url="https://two.example/h", types=("activity.credited", "redemption.captured")
    )
    events = []
    for type_ in ("activity.credited", "redemption.captured", "activity.credited"):
        async with db.transaction() as session:
            events.append(await emit(session=session, type=type_, partner_ids=[world["op_id"]], data={}))
    assert await webhooks.dispatch(db=db) == 5
    page = (await execute(db, settings, world["op"], DELIVERIES, {"first": 2})).data["webhookDeliveries"]
    assert page["pageInfo"]["hasNextPage"]
    rest = (
        await execute(db, settings, world["op"], DELIVERIES, {"first": 10, "after": page["pageInfo"]["endCursor"]})
    ).data["webhookDeliveries"]
    nodes = [e["node"] for e in page["edges"] + rest["edges"]]
    assert len(nodes) == 5 and not rest["pageInfo"]["hasNextPage"]
    pks = [decode_pk(n["id"], "WebhookDelivery") for n in nodes]
    assert pks == sorted(pks, reverse=True)
    assert nodes[0]["eventId"] == events[2] and nodes[-1]["eventId"] == events[0]
    assert all(n["status"] == "PENDING" and n["attempts"] == 0 and n["nextAttemptAt"] for n in nodes)
    only_first = (await execute(db, settings, world["op"], DELIVERIES, {"endpoint": first["endpoint"]["id"]})).data
    assert {e["node"]["endpoint"]["url"] for e in only_first["webhookDeliveries"]["edges"]} == {"https://one.example/h"}
    assert len(only_first["webhookDeliveries"]["edges"]) == 2
    delivered = (await execute(db, settings, world["op"], DELIVERIES, {"status": "DELIVERED"})).data
    assert delivered["webhookDeliveries"]["edges"] == []
    assert second["endpoint"]["eventTypes"] == ["activity.credited", "redemption.captured"]
