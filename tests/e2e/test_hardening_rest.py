"""Issue 17 on the REST faces, over real HTTP against a served gateway:

- item 9: hostile input (a 5,000-digit expiry, a NUL in a parameter or a body, an unpaired
  surrogate, JSON nested 50,000 deep) is a 4xx with the face's error, never a 500;
- item 8: numbers beyond the ledger's BIGINT, negative, fractional or boolean amounts on
  the POS face are INVALID_INPUT, and nothing is paid;
- item 4: an unexpected failure (here a real one: a table gone from the database) is
  masked on every face: a generic message, INTERNAL, an errorId that is also in the log
  with the traceback, and none of the SQL text;
- item 14: a request body trickled too slowly is cut off with 408 and the connection closed.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
import uuid

import httpx
import pytest
import sqlalchemy as sa

from gateway import documents
from gateway.models import Redemption
from tests.e2e.checkout_world import World, build_world, key
from tests.support.auth import get_token, register_partner

DEEP = 50_000


@pytest.fixture
def settings(settings):
    """The suite's settings with a 1-second body timeout (item 14)."""
    return dataclasses.replace(settings, body_timeout_seconds=1.0, body_min_rate=1024)


@pytest.fixture
async def world(db, live_server) -> World:
    return await build_world(db, live_server.url)


@pytest.fixture
def pos(world) -> httpx.Client:
    with httpx.Client(
        base_url=world.url, timeout=30, headers={"Authorization": f"Bearer {world.shop.gw.token}"}
    ) as client:
        yield client


def _pos_error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "field"} <= set(body["error"]), body
    return body["error"]


async def _payments(db) -> int:
    async with db.session() as s:
        return await s.scalar(sa.select(sa.func.count()).select_from(Redemption))


# ---------------------------------------------------------------- item 9: no 500 for hostile input


@pytest.mark.parametrize("path", ["/statements/1.json", "/statements/1.pdf", "/settlements/1.json"])
def test_a_signed_document_url_with_a_hostile_expiry_is_403_not_500(live_server, path):
    """Unauthenticated: the expiry and signature are checked first, and refused as a changed URL."""
    for params in (
        {"expires": "9" * 5000, "sig": "x"},
        {"expires": "²", "sig": "x"},
        {"expires": str(int(time.time()) + 600), "sig": "é"},
    ):
        answer = httpx.get(live_server.url + path, params=params)
        assert answer.status_code == 403, (params, answer.text)
        assert answer.json()["error"] == "forbidden"


async def test_text_the_database_cannot_store_is_refused_on_the_pos_face(world: World, pos: httpx.Client, db):
    w = world
    await w.credit(w.seoul, "kim", 10_000)
    code = w.code(w.seoul, "kim")
    found = pos.get("/pos/v1/payments", params={"orderId": "a\x00b"})
    assert found.status_code == 400, found.text
    assert _pos_error(found)["code"] == "INVALID_INPUT" and _pos_error(found)["field"] == ["orderId"]
    assert pos.get("/pos/v1/payments", params={"reference": "\x00"}).status_code == 400

    for body, field in (
        ({"memberCode": code, "amountWon": 100, "orderId": "a\x00b"}, "orderId"),
        ('{"memberCode": "%s", "amountWon": 100, "orderId": "\\ud800"}' % code, "orderId"),
        ('{"memberCode": "%s", "amountWon": 100, "orderId": "x", "\\udfff": 1}' % code, None),
    ):
        kwargs = {"json": body} if isinstance(body, dict) else {"content": body}
        answer = pos.post(
            "/pos/v1/payments", headers={"Idempotency-Key": key(), "Content-Type": "application/json"}, **kwargs
        )
        assert answer.status_code == 400, answer.text
        error = _pos_error(answer)
        assert error["code"] == "INVALID_INPUT" and "cannot be stored" in error["message"]
        if field:
            assert error["field"] == [field]
    assert await _payments(db) == 0

    # A refund's reason with a NUL, on a real payment: refused, the payment untouched.
    paid = pos.post(
        "/pos/v1/payments",
        json={"memberCode": code, "amountWon": 1_000, "orderId": "o-1", "capture": True},
        headers={"Idempotency-Key": key()},
    )
    assert paid.status_code == 201, paid.text
    refund = pos.post(
        f"/pos/v1/payments/{paid.json()['id']}/refunds",
        json={"amountWon": 100, "reason": "bad\x00"},
        headers={"Idempotency-Key": key()},
    )
    assert (refund.status_code, _pos_error(refund)["field"]) == (400, ["reason"])
    assert pos.get(f"/pos/v1/payments/{paid.json()['id']}").json()["refundedWon"] == 0


async def test_json_nested_50000_deep_is_400_on_graphql_and_every_json_rest_endpoint(
    world: World, pos: httpx.Client, db
):
    w = world
    await w.credit(w.seoul, "lee", 10_000)
    paid = pos.post(
        "/pos/v1/payments",
        json={"memberCode": w.code(w.seoul, "lee"), "amountWon": 1_000, "orderId": "o-2"},
        headers={"Idempotency-Key": key()},
    ).json()
    nested_array = b"[" * DEEP + b"]" * DEEP
    nested_object = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    for body in (nested_array, nested_object):
        for path in (
            "/pos/v1/payments",
            f"/pos/v1/payments/{paid['id']}/capture",
            f"/pos/v1/payments/{paid['id']}/void",
            f"/pos/v1/payments/{paid['id']}/refunds",
        ):
            answer = pos.post(
                path, content=body, headers={"Content-Type": "application/json", "Idempotency-Key": key()}
            )
            assert answer.status_code == 400, (path, answer.status_code, answer.text[:200])
            assert _pos_error(answer)["code"] == "INVALID_INPUT"
        answer = httpx.post(
            f"{w.url}/graphql",
            content=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {w.shop.gw.token}"},
        )
        assert answer.status_code == 400, answer.text[:200]
        assert answer.json()["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert pos.get(f"/pos/v1/payments/{paid['id']}").json()["status"] == "AUTHORIZED"


async def test_a_hostile_limit_parameter_is_400(world: World, pos: httpx.Client):
    for limit in ("²", "9" * 5000, "0", "101", "-1", "1.5"):
        answer = pos.get("/pos/v1/payments", params={"limit": limit})
        assert (answer.status_code, _pos_error(answer)["field"]) == (400, ["limit"]), limit


# ---------------------------------------------------------------- item 8: numbers the ledger cannot hold


@pytest.mark.parametrize(
    "amount",
    ["9223372036854775808", "18446744073709551616", "1" + "0" * 40, "9" * 5000, "-5", "4500.5", "1e3", "true", "null"],
)
async def test_amounts_beyond_the_ledger_or_not_whole_are_invalid_input(world: World, pos: httpx.Client, db, amount):
    w = world
    await w.credit(w.seoul, "park", 10_000)
    body = '{"memberCode": "%s", "amountWon": %s, "orderId": "o-big"}' % (w.code(w.seoul, "park"), amount)
    answer = pos.post(
        "/pos/v1/payments", content=body, headers={"Content-Type": "application/json", "Idempotency-Key": key()}
    )
    assert answer.status_code in (400, 422), (amount, answer.status_code, answer.text)
    assert _pos_error(answer)["code"] == "INVALID_INPUT"
    assert await _payments(db) == 0
    if amount.isdigit() and len(amount) < 100:
        # On capture and refund too, of a real payment.
        paid = pos.post(
            "/pos/v1/payments",
            json={"memberCode": w.code(w.seoul, "park"), "amountWon": 500, "orderId": "o-3"},
            headers={"Idempotency-Key": key()},
        ).json()
        for action in ("capture", "refunds"):
            answer = pos.post(
                f"/pos/v1/payments/{paid['id']}/{action}",
                content='{"amountWon": %s}' % amount,
                headers={"Content-Type": "application/json", "Idempotency-Key": key()},
            )
            assert answer.status_code == 422 and _pos_error(answer)["code"] == "INVALID_INPUT", answer.text


# ---------------------------------------------------------------- item 4: unexpected failures are masked


def _assert_masked(answer: httpx.Response, caplog, *, leaks: tuple[str, ...]) -> str:
    assert answer.status_code == 500, answer.text
    text = answer.text
    for leak in leaks:
        assert leak.lower() not in text.lower(), text
    [record] = [
        r
        for r in caplog.records
        if r.name == "gateway.errors"
        and "INTERNAL errorId=" in r.getMessage()
        and r.getMessage().split("errorId=")[1].split()[0] in text
    ]
    assert record.exc_info is not None  # the traceback is in the log, under the id the client got
    return record.getMessage().split("errorId=")[1].split()[0]


async def test_an_unexpected_failure_is_masked_on_every_rest_face(
    world: World, pos: httpx.Client, db, live_server, caplog
):
    w = world
    caplog.set_level(logging.ERROR, logger="gateway.errors")
    operator = await register_partner(
        db, code="daegu-walks", kind="OPERATOR", scopes=["settlements:write"], unit_code="DGW", won_per_point="1"
    )
    operator_token = get_token(w.url, operator.client_id, operator.client_secret)
    settlement_url = documents.signed_url(
        base_url=w.url, path="/settlements/1.json", secret_key=live_server.settings.secret_key, ttl_seconds=600
    )
    statement_url = documents.signed_url(
        base_url=w.url, path="/statements/1.json", secret_key=live_server.settings.secret_key, ttl_seconds=600
    )
    gone = f"gone_{uuid.uuid4().hex[:6]}"
    async with db.transaction() as s:  # a real outage of a kind: tables the handlers read are missing
        for table in ("redemptions", "settlements", "issued_statements", "agreements"):
            await s.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_{gone}"))

    answer = pos.get("/pos/v1/payments", params={"orderId": "x"})
    error_id = _assert_masked(answer, caplog, leaks=("redemptions", "select", "sqlalchemy", "order_id"))
    assert answer.json() == {
        "error": {"code": "INTERNAL", "field": None, "errorId": error_id, "message": answer.json()["error"]["message"]}
    }

    for url in (settlement_url, statement_url):
        answer = httpx.get(url)
        error_id = _assert_masked(answer, caplog, leaks=("settlements", "issued_statements", "select", "sqlalchemy"))
        assert answer.json()["error"] == "internal" and answer.json()["errorId"] == error_id

    upload = httpx.post(
        f"{w.url}/reconciliation/v1/reports",
        params={"agreement": "x", "periodStart": "2025-01-01", "periodEnd": "2025-01-31"},
        content=b"reference,kind,amountWon,occurredAt\n",
        headers={"Authorization": f"Bearer {operator_token}", "Content-Type": "text/csv"},
    )
    error_id = _assert_masked(upload, caplog, leaks=("agreements", "select", "sqlalchemy"))
    assert upload.json()["error"] == "internal" and upload.json()["errorId"] == error_id

    # The last resort (gateway/app.py): /graphql cannot check a token, answered in GraphQL's shape.
    async with db.transaction() as s:
        await s.execute(sa.text(f"ALTER TABLE revoked_tokens RENAME TO revoked_tokens_{gone}"))
    answer = httpx.post(
        f"{w.url}/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {w.shop.gw.token}"}
    )
    error_id = _assert_masked(answer, caplog, leaks=("revoked_tokens", "select", "sqlalchemy"))
    [error] = answer.json()["errors"]
    assert error["extensions"] == {"code": "INTERNAL", "errorId": error_id}

    async with db.transaction() as s:  # put things back for the fixture's teardown
        for table in ("redemptions", "settlements", "issued_statements", "agreements", "revoked_tokens"):
            await s.execute(sa.text(f"ALTER TABLE {table}_{gone} RENAME TO {table}"))


# ---------------------------------------------------------------- item 14: slow bodies


def _raw(port: int, head: str, body: bytes, *, wait: float) -> tuple[bytes, float, bool]:
    """Send `head` and part of a body, then nothing: (the answer, seconds until it came, closed?)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + body)
        answer = b""
        closed = False
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                answer += data
        except TimeoutError:
            pass
        return answer, time.monotonic() - started, closed


def test_a_trickled_body_is_cut_off_with_408(world: World, live_server):
    """Token endpoint (unauthenticated, it reads the form first) and the POS face: 20 of 100
    declared bytes, then silence. Cut within the 1-second timeout (plus slack), connection closed."""
    token_head = (
        "POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    answer, took, closed = _raw(live_server.port, token_head, b"grant_type=client_cr", wait=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert took < 5 and closed
    assert b'"error":"invalid_request"' in answer and b"did not arrive in time" in answer

    pos_head = (
        f"POST /pos/v1/payments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {world.shop.gw.token}\r\n"
        f"Idempotency-Key: {key()}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    answer, took, closed = _raw(live_server.port, pos_head, b'{"memberCode": "1', wait=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert took < 5 and closed
    assert b'"code":"REQUEST_TIMEOUT"' in answer

    # A body that arrives in time is served as ever.
    assert httpx.post(f"{world.url}/oauth/token", data={"grant_type": "client_credentials"}).status_code in (400, 401)
