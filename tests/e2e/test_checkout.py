"""Checkout end to end over real HTTP with real tokens: the lifecycle, every refusal, a lost
reply, tenancy, payments across programs, exchange between programs, hold expiry."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import sqlalchemy as sa

from gateway import redemption as redemption_service
from gateway.models import Redemption as RedemptionRow
from gateway.models import SettlementFlow
from gateway.outbox import events_for_partner
from tests.e2e.checkout_world import (
    AUTHORIZE,
    CAPTURE,
    EXCHANGE,
    REDEMPTION,
    REDEMPTIONS,
    REFUND,
    VOID,
    World,
    build_world,
    codes_in_db,
    key,
    party,
)
from tests.support.auth import post_graphql


@pytest.fixture
async def world(db, live_server) -> World:
    return await build_world(db, live_server.url)


def authorize(w: World, code: str, amount, *, order="order-1", idem=None, capture=False, shop=None) -> dict:
    shop = shop or w.shop
    return shop.gw.data(
        AUTHORIZE,
        input={
            "memberCode": code,
            "amountWon": str(amount),
            "orderId": order,
            "idempotencyKey": idem or key(),
            "capture": capture,
        },
    )["authorizeRedemption"]


def act(w: World, mutation: str, field: str, shop=None, **input) -> dict:
    input.setdefault("idempotencyKey", key())
    return (shop or w.shop).gw.data(mutation, input=input)[field]


def ok(payload: dict) -> dict:
    assert payload["errors"] == [], payload["errors"]
    return payload["redemption"]


def refused(payload: dict, code: str) -> None:
    assert [e["code"] for e in payload["errors"]] == [code], payload
    assert payload["redemption"] is None


# ---------------------------------------------------------------- lifecycle


async def test_authorize_partial_capture_and_refunds_over_graphql(world: World):
    w = world
    await w.credit(w.seoul, "kim", 10_000)
    r = ok(authorize(w, w.code(w.seoul, "kim"), 4_500, order="A-17"))
    assert (r["status"], r["amountWon"], r["points"], r["unit"]) == ("AUTHORIZED", "4500", "4500", "SWM")
    assert (r["merchant"]["code"], r["memberOperator"]["code"]) == ("mangwon-bakery", "seoul-walking")
    assert r["expiresAt"] is not None
    assert w.balance(w.seoul, "kim") == (5_500, 4_500)

    r = ok(act(w, CAPTURE, "captureRedemption", redemptionId=r["id"], amountWon="4000"))
    assert (r["status"], r["capturedWon"], r["points"], r["expiresAt"]) == ("CAPTURED", "4000", "4000", None)
    assert w.balance(w.seoul, "kim") == (6_000, 0)  # the other 500 released

    r = ok(act(w, REFUND, "refundRedemption", redemptionId=r["id"], amountWon="1500", reason="one bun returned"))
    assert (r["status"], r["refundedWon"], r["refundedPoints"]) == ("PARTIALLY_REFUNDED", "1500", "1500")
    refused(act(w, REFUND, "refundRedemption", redemptionId=r["id"], amountWon="2501"), "AMOUNT_EXCEEDS_CAPTURED")
    r = ok(act(w, REFUND, "refundRedemption", redemptionId=r["id"], amountWon="2500"))
    assert (r["status"], r["refundedWon"], r["refundedPoints"]) == ("REFUNDED", "4000", "4000")
    assert w.balance(w.seoul, "kim") == (10_000, 0)
    refused(act(w, REFUND, "refundRedemption", redemptionId=r["id"], amountWon="1"), "AMOUNT_EXCEEDS_CAPTURED")

    async with w.db.session() as s:
        types = [e.type for e in await events_for_partner(s, w.shop.id)]
    assert types == ["redemption.authorized", "redemption.captured", "redemption.refunded", "redemption.refunded"]


async def test_capture_at_once_and_void(world: World):
    w = world
    await w.credit(w.seoul, "lee", 1_000)
    paid = ok(authorize(w, w.code(w.seoul, "lee"), 300, capture=True))
    assert (paid["status"], paid["capturedWon"]) == ("CAPTURED", "300")
    held = ok(authorize(w, w.code(w.seoul, "lee"), 200, order="order-2"))
    assert w.balance(w.seoul, "lee") == (500, 200)
    voided = ok(act(w, VOID, "voidRedemption", redemptionId=held["id"]))
    assert voided["status"] == "VOIDED"
    assert w.balance(w.seoul, "lee") == (700, 0)


# ---------------------------------------------------------------- refusals, nothing changed


async def test_every_refusal_changes_nothing(world: World, db):
    w = world
    await w.credit(w.seoul, "park", 1_000)
    before = (1_000, 0)

    refused(authorize(w, w.code(w.seoul, "park"), 1_001), "INSUFFICIENT_POINTS")
    refused(authorize(w, "1234567812345678", 10), "INVALID_MEMBER_CODE")
    refused(authorize(w, w.code(w.seoul, "park", "RECEIVE"), 10), "INVALID_MEMBER_CODE")
    [stale] = await codes_in_db(
        db, w.seoul.id, "park", 1, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), ttl_seconds=180
    )
    refused(authorize(w, stale, 10), "MEMBER_CODE_EXPIRED")
    refused(authorize(w, w.code(w.seoul, "park"), 0), "INVALID_INPUT")
    assert w.balance(w.seoul, "park") == before

    held = ok(authorize(w, w.code(w.seoul, "park"), 100, idem="pay-1"))
    refused(authorize(w, w.code(w.seoul, "park"), 101, idem="pay-1"), "IDEMPOTENCY_KEY_REUSED")
    refused(act(w, CAPTURE, "captureRedemption", redemptionId=held["id"], amountWon="101"), "AMOUNT_EXCEEDS_AUTHORIZED")
    refused(act(w, REFUND, "refundRedemption", redemptionId=held["id"], amountWon="10"), "INVALID_STATE")
    refused(act(w, CAPTURE, "captureRedemption", redemptionId="bm90LWFuLWlk"), "NOT_FOUND")
    assert w.balance(w.seoul, "park") == (900, 100)
    ok(act(w, VOID, "voidRedemption", redemptionId=held["id"]))
    refused(act(w, CAPTURE, "captureRedemption", redemptionId=held["id"]), "INVALID_STATE")
    refused(act(w, VOID, "voidRedemption", redemptionId=held["id"]), "INVALID_STATE")

    code = w.code(w.seoul, "park")
    suspended = w.seoul.gw.data(
        "mutation($i: SetMemberStatusInput!) { setMemberStatus(input: $i) { member { status } errors { code } } }",
        i={"memberExternalId": "park", "status": "SUSPENDED"},
    )["setMemberStatus"]
    assert suspended["member"]["status"] == "SUSPENDED"
    refused(authorize(w, code, 10), "MEMBER_SUSPENDED")
    await w.credit(w.busan, "choi", 1_000)
    refused(authorize(w, w.code(w.busan, "choi"), 10), "NO_AGREEMENT")
    assert w.balance(w.seoul, "park") == (1_000, 0)
    assert w.balance(w.busan, "choi") == (1_000, 0)


# ---------------------------------------------------------------- a lost reply


async def test_a_lost_reply_is_found_by_replaying_the_key_or_by_order_id(world: World):
    w = world
    await w.credit(w.seoul, "jung", 1_000)
    code = w.code(w.seoul, "jung")
    variables = {
        "input": {
            "memberCode": code,
            "amountWon": "250",
            "orderId": "POS-9-0042",
            "idempotencyKey": "POS-9-0042-pay",
            "capture": True,
        }
    }
    # The POS gives up before the answer comes: a client timeout far shorter than the request.
    try:
        httpx.post(
            w.url + "/graphql",
            json={"query": AUTHORIZE, "variables": variables},
            headers={"Authorization": f"Bearer {w.shop.gw.token}"},
            timeout=0.001,
        )
    except httpx.TimeoutException:
        pass
    # The same request again, answer dropped on the floor (the reply is "lost" either way).
    post_graphql(w.url, w.shop.gw.token, AUTHORIZE, variables)
    # Recovery 1: replay the same key: the same redemption, nothing taken twice.
    replayed = ok(w.shop.gw.data(AUTHORIZE, **variables)["authorizeRedemption"])
    again = ok(w.shop.gw.data(AUTHORIZE, **variables)["authorizeRedemption"])
    assert replayed == again and replayed["status"] == "CAPTURED"
    assert w.balance(w.seoul, "jung") == (750, 0)
    # Recovery 2: look it up by the order id.
    found = w.shop.gw.data(REDEMPTIONS, filter={"orderId": "POS-9-0042"})["redemptions"]["edges"]
    assert [e["node"]["id"] for e in found] == [replayed["id"]]
    by_reference = w.shop.gw.data(REDEMPTIONS, filter={"reference": replayed["reference"]})["redemptions"]["edges"]
    assert [e["node"]["id"] for e in by_reference] == [replayed["id"]]


# ---------------------------------------------------------------- scopes and tenancy


async def test_scopes_and_tenancy(world: World, db):
    w = world
    await w.credit(w.seoul, "han", 1_000)
    r = ok(authorize(w, w.code(w.seoul, "han"), 100, order="T-1"))

    # An operator may not take payments; a merchant without the write scope neither.
    result = w.seoul.gw.gql(
        AUTHORIZE, input={"memberCode": "1" * 16, "amountWon": "1", "orderId": "x", "idempotencyKey": "k"}
    )
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN" and result["data"] is None
    reader = await party(
        db, w.url, code="reader-shop", kind="MERCHANT", scopes=["redemptions:read"], operator_code="seoul-walking"
    )
    result = reader.gw.gql(
        AUTHORIZE, input={"memberCode": "1" * 16, "amountWon": "1", "orderId": "x", "idempotencyKey": "k"}
    )
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # Another merchant: the id answers like an unknown one.
    assert w.other_shop.gw.data(REDEMPTION, id=r["id"])["redemption"] is None
    assert w.other_shop.gw.data("query($id: ID!) { node(id: $id) { id } }", id=r["id"])["node"] is None
    refused(act(w, CAPTURE, "captureRedemption", shop=w.other_shop, redemptionId=r["id"]), "NOT_FOUND")
    refused(act(w, VOID, "voidRedemption", shop=w.other_shop, redemptionId=r["id"]), "NOT_FOUND")
    assert w.other_shop.gw.data(REDEMPTIONS, filter={"orderId": "T-1"})["redemptions"]["edges"] == []
    # The merchant's operator sees it; an operator with neither the member nor the merchant does not.
    assert w.seoul.gw.data(REDEMPTION, id=r["id"])["redemption"]["id"] == r["id"]
    assert w.busan.gw.data(REDEMPTION, id=r["id"])["redemption"] is None
    assert w.busan.gw.data(REDEMPTIONS)["redemptions"]["edges"] == []
    # Listing needs redemptions:read.
    writer = await party(
        db, w.url, code="writer-shop", kind="MERCHANT", scopes=["redemptions:write"], operator_code="seoul-walking"
    )
    result = writer.gw.gql(REDEMPTIONS)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN" and result["data"] is None


async def test_redemptions_are_listed_newest_first_with_filters_and_pages(world: World):
    w = world
    await w.credit(w.seoul, "yoon", 1_000)
    ids = [ok(authorize(w, w.code(w.seoul, "yoon"), 10, order=f"L-{i}", capture=i % 2 == 0))["id"] for i in range(5)]
    page = w.shop.gw.data(REDEMPTIONS, first=2)["redemptions"]
    assert [e["node"]["id"] for e in page["edges"]] == ids[::-1][:2] and page["pageInfo"]["hasNextPage"]
    rest = w.shop.gw.data(REDEMPTIONS, first=10, after=page["pageInfo"]["endCursor"])["redemptions"]
    assert [e["node"]["id"] for e in rest["edges"]] == ids[::-1][2:]
    captured = w.shop.gw.data(REDEMPTIONS, filter={"status": "CAPTURED"})["redemptions"]["edges"]
    assert [e["node"]["id"] for e in captured] == [ids[4], ids[2], ids[0]]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert w.shop.gw.data(REDEMPTIONS, filter={"from": future})["redemptions"]["edges"] == []
    assert len(w.shop.gw.data(REDEMPTIONS, filter={"to": future})["redemptions"]["edges"]) == 5


# ---------------------------------------------------------------- across programs


async def test_a_member_of_another_program_pays_only_under_an_agreement(world: World):
    w = world
    await w.credit(w.busan, "choi", 10_000)  # BSP at 0.5 won a point
    refused(authorize(w, w.code(w.busan, "choi"), 1_000), "NO_AGREEMENT")
    await w.agreement(cross_redemption=False)
    refused(authorize(w, w.code(w.busan, "choi"), 1_000), "NO_AGREEMENT")
    assert w.balance(w.busan, "choi") == (10_000, 0)


async def test_cross_program_payment_settles_through_the_agreement(world: World):
    w = world
    await w.agreement(fee_bps=250)
    await w.credit(w.busan, "choi", 10_000)  # BSP at 0.5 won a point
    r = ok(authorize(w, w.code(w.busan, "choi"), 1_001, capture=True, order="X-1"))
    assert (r["points"], r["unit"], r["memberOperator"]["code"]) == ("2002", "BSP", "busan-steps")
    assert w.balance(w.busan, "choi") == (7_998, 0)
    # Both operators see it; the member's operator through its member's payments.
    assert w.busan.gw.data(REDEMPTION, id=r["id"])["redemption"]["reference"] == r["reference"]
    assert w.seoul.gw.data(REDEMPTION, id=r["id"])["redemption"]["reference"] == r["reference"]
    r = ok(act(w, REFUND, "refundRedemption", redemptionId=r["id"], amountWon="1001"))
    assert w.balance(w.busan, "choi") == (10_000, 0)
    async with w.db.session() as s:
        flows = (await s.execute(sa.select(SettlementFlow).order_by(SettlementFlow.id))).scalars().all()
    # gross = floor(2002 x 0.5) = 1001; fee = floor(1001 x 2.5 %) = 25
    assert [(f.kind.value, f.payer_id, f.payee_id, f.gross_won, f.fee_won, f.net_won, f.reference) for f in flows] == [
        ("CROSS_REDEMPTION", w.busan.id, w.seoul.id, 1001, 25, 976, r["reference"]),
        ("CROSS_REFUND", w.seoul.id, w.busan.id, 1001, 25, 976, r["reference"]),
    ]
    async with w.db.session() as s:
        assert [e.type for e in await events_for_partner(s, w.busan.id)][-1] == "redemption.refunded"


# ---------------------------------------------------------------- exchange


async def test_exchange_between_programs(world: World):
    w = world
    await w.credit(w.seoul, "kim", 1_000)
    await w.credit(w.busan, "choi", 1)
    receive = w.code(w.busan, "choi", "RECEIVE")
    payload = w.seoul.gw.data(
        EXCHANGE, input={"memberExternalId": "kim", "receiveCode": receive, "points": "500", "idempotencyKey": "x-1"}
    )["exchangePoints"]
    assert [e["code"] for e in payload["errors"]] == ["NO_AGREEMENT"]
    await w.agreement(fee_bps=100)
    receive = w.code(w.busan, "choi", "RECEIVE")
    variables = {"input": {"memberExternalId": "kim", "receiveCode": receive, "points": "500", "idempotencyKey": "x-2"}}
    payload = w.seoul.gw.data(EXCHANGE, **variables)["exchangePoints"]
    assert payload["errors"] == []
    e = payload["exchange"]
    # wonValue = 500 x 1 = 500; fee = 5; toPoints = floor(495 / 0.5) = 990
    assert (
        e["fromOperator"]["code"],
        e["toOperator"]["code"],
        e["fromPoints"],
        e["fromUnit"],
        e["toPoints"],
        e["toUnit"],
        e["wonValue"],
        e["feeWon"],
    ) == ("seoul-walking", "busan-steps", "500", "SWM", "990", "BSP", "500", "5")
    assert w.seoul.gw.data(EXCHANGE, **variables)["exchangePoints"]["exchange"] == e  # a replay
    assert w.balance(w.seoul, "kim") == (500, 0)
    assert w.balance(w.busan, "choi") == (991, 0)
    # Both operators can read the exchange; neither sees the other's member.
    node = "query($id: ID!) { node(id: $id) { ... on Exchange { reference toPoints } } }"
    assert w.busan.gw.data(node, id=e["id"])["node"]["toPoints"] == "990"
    assert w.shop.gw.data(node, id=e["id"])["node"] is None
    async with w.db.session() as s:
        [incoming] = await events_for_partner(s, w.busan.id, types=["exchange.completed"])
        [outgoing] = await events_for_partner(s, w.seoul.id, types=["exchange.completed"])
    assert incoming.payload["memberExternalId"] == "choi" and "kim" not in str(incoming.payload)
    assert outgoing.payload["memberExternalId"] == "kim" and "choi" not in str(outgoing.payload)
    # A merchant may not exchange.
    result = w.shop.gw.gql(
        EXCHANGE, input={"memberExternalId": "kim", "receiveCode": receive, "points": "1", "idempotencyKey": "x"}
    )
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# ---------------------------------------------------------------- expiry


async def test_a_hold_left_alone_expires_and_the_points_come_back(world: World):
    w = world
    await w.credit(w.seoul, "seo", 1_000)
    r = ok(authorize(w, w.code(w.seoul, "seo"), 400))
    async with w.db.transaction() as s:
        expired = await redemption_service.expire_redemptions(
            session=s, now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=901)
        )
    assert [x.reference for x in expired] == [r["reference"]]
    assert w.shop.gw.data(REDEMPTION, id=r["id"])["redemption"]["status"] == "EXPIRED"
    assert w.balance(w.seoul, "seo") == (1_000, 0)
    refused(act(w, CAPTURE, "captureRedemption", redemptionId=r["id"]), "INVALID_STATE")
    async with w.db.session() as s:
        assert [e.type for e in await events_for_partner(s, w.seoul.id, types=["redemption.expired"])] == [
            "redemption.expired"
        ]
        assert (await s.get(RedemptionRow, expired[0].id)).status.value == "EXPIRED"
