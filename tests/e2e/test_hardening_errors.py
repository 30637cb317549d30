"""Issue 17, items 4 and 8 over real HTTP: text the database cannot store is refused as
INVALID_INPUT, an unexpected failure answers INTERNAL with an error id (and the same id
is in the log with the traceback), and BigInt amounts are exact up to what the ledger
holds and refused as INVALID_INPUT beyond it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import socket

import httpx
import pytest
import sqlalchemy as sa

from gateway.models import Campaign, Member, Redemption
from tests.conftest import _start_on
from tests.e2e.checkout_world import AUTHORIZE, BALANCE, World, build_world, key
from tests.support.auth import GatewayClient, graphql, register_partner

MEMBER = "query($id: String!) { member(externalId: $id) { externalId } }"
CREATE_CAMPAIGN = """
mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { code name } errors { code message field } }
}"""
INTERNALS = ("select", "insert", "sqlalchemy", "asyncpg", "sqlite", "relation", "no such table", "traceback", "members")


def _codes(result: dict) -> list[str | None]:
    return [(e.get("extensions") or {}).get("code") for e in result.get("errors") or []]


def _gql(client: GatewayClient, query: str, **variables) -> dict:
    """POST as a client's JSON library would, with \\u escapes: a lone surrogate, which
    cannot be UTF-8, travels as `\\ud800` (httpx itself would refuse to encode it)."""
    body = json.dumps({"query": query, "variables": variables or None}, ensure_ascii=True)
    response = httpx.post(
        client.base_url + "/graphql",
        content=body,
        timeout=30,
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def _campaign_input(**fields) -> dict:
    today = dt.date.today()
    values = {
        "code": "warm-steps",
        "name": "Warm steps",
        "beneficiaryCode": "sharing-foundation",
        "startsOn": today.isoformat(),
        "endsOn": (today + dt.timedelta(days=10)).isoformat(),
        "wonPerKm": "100",
        "wonPerAchiever": "0",
        "matchRatio": "1",
        "budgetWon": "1000000",
    }
    values.update(fields)
    return values


async def _count(db, model) -> int:
    async with db.session() as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()


# ---------------------------------------------------------------- text the database cannot store


async def test_nul_bytes_and_lone_surrogates_are_refused_as_invalid_input_and_nothing_is_written(db, live_server):
    url = live_server.url
    operator = GatewayClient.of(
        url,
        await register_partner(
            db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
        ),
    )
    sponsor = GatewayClient.of(
        url, await register_partner(db, code="yakult", kind="SPONSOR", scopes=["campaigns:write"])
    )
    await register_partner(db, code="sharing-foundation", kind="BENEFICIARY", scopes=["donations:read"])

    # A NUL in a string literal (an escape and a raw character) and in variables.
    for answer in (
        _gql(operator, '{ member(externalId: "a\\u0000b") { externalId } }'),
        _gql(operator, '{ member(externalId: "a\x00b") { externalId } }'),
        _gql(operator, MEMBER, id="a\u0000b"),
        _gql(operator, MEMBER, id="\ud800"),
    ):
        assert answer["data"] is None, answer
        assert _codes(answer) == ["INVALID_INPUT"], answer
        assert "cannot be stored" in answer["errors"][0]["message"]

    # In an input object's field, nested in a mutation's input: refused before it runs.
    for bad in ({"name": "Warm\u0000steps"}, {"name": "Warm \udc00 steps"}, {"code": "warm\u0000"}):
        answer = _gql(sponsor, CREATE_CAMPAIGN, input=_campaign_input(**bad))
        assert answer["data"] is None and _codes(answer) == ["INVALID_INPUT"], answer
        assert "$input." in answer["errors"][0]["message"]
    assert await _count(db, Campaign) == 0
    assert await _count(db, Member) == 0

    # The same operations with storable text run.
    assert operator.data(MEMBER, id="a b")["member"] is None
    payload = sponsor.data(CREATE_CAMPAIGN, input=_campaign_input(name="걷기 좋은 날 🚶"))["createCampaign"]
    assert payload["errors"] == [] and payload["campaign"]["name"] == "걷기 좋은 날 🚶"


# ---------------------------------------------------------------- unexpected failures


def _served(settings, **changes):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    issuer = f"http://127.0.0.1:{port}"
    return _start_on(dataclasses.replace(settings, issuer=issuer, audience=f"{issuer}/graphql", **changes), port)


@pytest.mark.parametrize("env", ["development", "production"])
async def test_an_unexpected_failure_answers_internal_with_an_error_id_that_is_in_the_log(db, settings, env, caplog):
    server = _served(settings, env=env, graphiql=False)
    try:
        operator = GatewayClient.of(
            server.url,
            await register_partner(
                db, code="seoul-walking", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
            ),
        )
        assert operator.data(MEMBER, id="kim")["member"] is None
        # The database breaks under the running gateway: its members table goes away.
        async with db.transaction() as session:
            await session.execute(sa.text("ALTER TABLE members RENAME TO members_gone"))

        with caplog.at_level(logging.ERROR, logger="gateway.errors"):
            response = httpx.post(
                server.url + "/graphql",
                json={"query": MEMBER, "variables": {"id": "kim"}},
                headers={"Authorization": f"Bearer {operator.token}"},
                timeout=30,
            )
        assert response.status_code == 200
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "INTERNAL"
        error_id = error["extensions"]["errorId"]
        assert len(error_id) >= 16 and error["path"] == ["member"]
        assert not any(word in response.text.lower() for word in INTERNALS), response.text

        [record] = [r for r in caplog.records if error_id in r.getMessage()]
        assert record.exc_info is not None  # the traceback is logged under the same id

        # Errors that carry a code are the client's and stay as they are.
        forbidden = graphql(server.url, operator.token, "{ auditEvents(first: 1) { edges { cursor } } }")
        assert _codes(forbidden) == ["FORBIDDEN"]
    finally:
        server.stop()


# ---------------------------------------------------------------- large numbers


@pytest.fixture
async def world(db, live_server) -> World:
    return await build_world(db, live_server.url)


def _authorize(w: World, code: str, amount, idem: str) -> dict:
    return w.shop.gw.gql(
        AUTHORIZE,
        input={"memberCode": code, "amountWon": amount, "orderId": "big-1", "idempotencyKey": idem, "capture": True},
    )


async def test_an_amount_above_2_to_the_53_is_exact_and_replays_exactly(world: World):
    w = world
    big = 2**53 + 1
    await w.credit(w.seoul, "kim", big + 10)
    code = w.code(w.seoul, "kim")
    idem = key()

    first = _authorize(w, code, str(big), idem)
    assert "errors" not in first, first
    r = first["data"]["authorizeRedemption"]["redemption"]
    assert (r["status"], r["amountWon"], r["capturedWon"], r["points"]) == ("CAPTURED", str(big), str(big), str(big))
    assert w.balance(w.seoul, "kim") == (10, 0)

    # The same request (as a JSON integer this time) replays; one won more is another request.
    replay = _authorize(w, code, big, idem)["data"]["authorizeRedemption"]
    assert replay["errors"] == [] and replay["redemption"]["id"] == r["id"]
    reused = _authorize(w, code, str(big + 1), idem)["data"]["authorizeRedemption"]
    assert [e["code"] for e in reused["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]
    assert w.balance(w.seoul, "kim") == (10, 0)


async def test_amounts_beyond_what_the_ledger_holds_are_invalid_input(world: World, db):
    w = world
    await w.credit(w.seoul, "kim", 1_000)
    code = w.code(w.seoul, "kim")
    for amount in (2**63, str(2**63), str(-(2**63)), "9" * 5000, "0" * 5000 + str(2**63)):
        answer = _authorize(w, code, amount, key())
        assert answer["data"] is None and _codes(answer) == ["INVALID_INPUT"], answer
        assert "9223372036854775807" in answer["errors"][0]["message"]
    literal = w.shop.gw.gql(
        'mutation { authorizeRedemption(input: {memberCode: "%s", amountWon: "%d", orderId: "o", idempotencyKey: "k"})'
        " { errors { code } } }" % (code, 2**63)
    )
    assert literal["data"] is None and _codes(literal) == ["INVALID_INPUT"], literal

    # The largest amount the ledger holds is an amount like any other: here, too many points.
    payload = _authorize(w, code, str(2**63 - 1), key())["data"]["authorizeRedemption"]
    assert [e["code"] for e in payload["errors"]] == ["INSUFFICIENT_POINTS"]
    assert w.seoul.gw.data(BALANCE, id="kim")["member"]["balance"]["available"] == "1000"
    assert await _count(db, Redemption) == 0
