"""The point-of-sale REST face over real HTTP, every request and response checked against
its OpenAPI document (connectors/pos_openapi.yaml, as served at /pos/v1/openapi.yaml)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.e2e.checkout_world import REDEMPTION, World, build_world, codes_in_db, key, party

SPEC_PATH = "connectors/pos_openapi.yaml"
# openapi-core does not check oauth2 security schemes (the gateway does); it says so once per call.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")


# ---------------------------------------------------------------- openapi-core adapters for httpx


@dataclass
class _Request:
    request: httpx.Request

    def __post_init__(self) -> None:
        url = urlsplit(str(self.request.url))
        self._url = url
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(self.request.url.params.multi_items())),
            header=Headers(list(self.request.headers.items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def host_url(self) -> str:
        return f"{self._url.scheme}://{self._url.netloc}"

    @property
    def path(self) -> str:
        return self._url.path

    @property
    def method(self) -> str:
        return self.request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self.request.content or None

    @property
    def content_type(self) -> str:
        return self.request.headers.get("content-type", "")


@dataclass
class _Response:
    response: httpx.Response

    @property
    def data(self) -> bytes:
        return self.response.content

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str:
        return self.response.headers.get("content-type", "")

    @property
    def headers(self) -> Headers:
        return Headers(list(self.response.headers.items()))


class Pos:
    """A POS system: JSON over HTTP, every exchange validated against the served OpenAPI document."""

    def __init__(self, base_url: str, token: str | None, spec: OpenAPI) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.token = token
        self.spec = spec

    def call(
        self,
        method: str,
        path: str,
        *,
        json=None,
        idem: str | None = None,
        headers=None,
        validate_request=True,
        params=None,
    ) -> httpx.Response:
        h = dict(headers or {})
        if self.token is not None:
            h.setdefault("Authorization", f"Bearer {self.token}")
        if idem is not None:
            h["Idempotency-Key"] = idem
        response = self.http.request(method, path, json=json, headers=h, params=params)
        request = _Request(response.request)
        if validate_request:
            self.spec.validate_request(request)
        self.spec.validate_response(request, _Response(response))
        return response

    def pay(self, code: str, amount: int, *, order="POS-1", capture=False, idem=None) -> httpx.Response:
        return self.call(
            "POST",
            "/pos/v1/payments",
            json={"memberCode": code, "amountWon": amount, "orderId": order, "capture": capture},
            idem=idem or key(),
        )


def error_of(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
async def world(db, live_server) -> World:
    return await build_world(db, live_server.url)


@pytest.fixture
def spec(live_server) -> OpenAPI:
    served = httpx.get(live_server.url + "/pos/v1/openapi.yaml")
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/yaml")
    with open(Path(__file__).resolve().parents[2] / SPEC_PATH, "rb") as f:
        assert served.content == f.read()
    return OpenAPI.from_dict(yaml.safe_load(served.content))


@pytest.fixture
def pos(world, spec) -> Pos:
    return Pos(world.url, world.shop.gw.token, spec)


# ---------------------------------------------------------------- the lifecycle


async def test_authorize_capture_refund_over_rest(world: World, pos: Pos):
    w = world
    await w.credit(w.seoul, "kim", 10_000)
    created = pos.pay(w.code(w.seoul, "kim"), 4_500, order="POS-7-000123")
    assert created.status_code == 201
    p = created.json()
    assert (p["status"], p["amountWon"], p["points"], p["unit"], p["merchant"], p["memberOperator"]) == (
        "AUTHORIZED",
        4500,
        4500,
        "SWM",
        "mangwon-bakery",
        "seoul-walking",
    )
    assert w.balance(w.seoul, "kim") == (5_500, 4_500)
    # The id is the GraphQL Redemption id.
    assert w.shop.gw.data(REDEMPTION, id=p["id"])["redemption"]["reference"] == p["reference"]

    captured = pos.call("POST", f"/pos/v1/payments/{p['id']}/capture", json={"amountWon": 4000}, idem=key())
    assert (
        captured.status_code == 200 and captured.json()["status"] == "CAPTURED" and captured.json()["expiresAt"] is None
    )
    assert w.balance(w.seoul, "kim") == (6_000, 0)
    refund = pos.call(
        "POST", f"/pos/v1/payments/{p['id']}/refunds", json={"amountWon": 1000, "reason": "returned"}, idem=key()
    )
    assert refund.status_code == 200 and (refund.json()["status"], refund.json()["refundedWon"]) == (
        "PARTIALLY_REFUNDED",
        1000,
    )
    too_much = pos.call("POST", f"/pos/v1/payments/{p['id']}/refunds", json={"amountWon": 3001}, idem=key())
    assert (too_much.status_code, error_of(too_much)) == (422, "AMOUNT_EXCEEDS_CAPTURED")
    assert too_much.json()["error"]["field"] == ["amountWon"]
    assert w.balance(w.seoul, "kim") == (7_000, 0)

    got = pos.call("GET", f"/pos/v1/payments/{p['id']}")
    assert got.status_code == 200 and got.json()["refundedWon"] == 1000


async def test_capture_at_once_void_and_wrong_states(world: World, pos: Pos):
    w = world
    await w.credit(w.seoul, "lee", 1_000)
    paid = pos.pay(w.code(w.seoul, "lee"), 300, capture=True)
    assert paid.status_code == 201 and paid.json()["status"] == "CAPTURED"
    held = pos.pay(w.code(w.seoul, "lee"), 200, order="POS-2").json()
    voided = pos.call("POST", f"/pos/v1/payments/{held['id']}/void", idem=key())
    assert voided.status_code == 200 and voided.json()["status"] == "VOIDED"
    for path in (
        f"/pos/v1/payments/{held['id']}/capture",
        f"/pos/v1/payments/{held['id']}/void",
        f"/pos/v1/payments/{paid.json()['id']}/void",
    ):
        again = pos.call("POST", path, idem=key())
        assert (again.status_code, error_of(again)) == (409, "INVALID_STATE")
    assert w.balance(w.seoul, "lee") == (700, 0)


async def test_a_lost_reply_over_rest(world: World, pos: Pos):
    w = world
    await w.credit(w.seoul, "jung", 1_000)
    code = w.code(w.seoul, "jung")
    body = {"memberCode": code, "amountWon": 250, "orderId": "POS-9-0042", "capture": True}
    headers = {"Authorization": f"Bearer {pos.token}", "Idempotency-Key": "POS-9-0042-pay"}
    try:  # the POS gives up before the answer
        httpx.post(w.url + "/pos/v1/payments", json=body, headers=headers, timeout=0.001)
    except httpx.TimeoutException:
        pass
    first = pos.call("POST", "/pos/v1/payments", json=body, idem="POS-9-0042-pay")
    second = pos.call("POST", "/pos/v1/payments", json=body, idem="POS-9-0042-pay")
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    assert w.balance(w.seoul, "jung") == (750, 0)
    found = pos.call("GET", "/pos/v1/payments", params={"orderId": "POS-9-0042"})
    assert [p["id"] for p in found.json()["payments"]] == [first.json()["id"]]
    reused = pos.call("POST", "/pos/v1/payments", json={**body, "amountWon": 251}, idem="POS-9-0042-pay")
    assert (reused.status_code, error_of(reused)) == (409, "IDEMPOTENCY_KEY_REUSED")


# ---------------------------------------------------------------- refusals


async def test_business_refusals_over_rest(world: World, pos: Pos, db):
    w = world
    await w.credit(w.seoul, "park", 1_000)
    await w.credit(w.busan, "choi", 1_000)
    [stale] = await codes_in_db(
        db, w.seoul.id, "park", 1, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5), ttl_seconds=180
    )
    cases = [
        (w.code(w.seoul, "park"), 1_001, "INSUFFICIENT_POINTS"),
        ("0000000000000001", 10, "INVALID_MEMBER_CODE"),
        (stale, 10, "MEMBER_CODE_EXPIRED"),
        (w.code(w.busan, "choi"), 10, "NO_AGREEMENT"),
    ]
    for code, amount, expected in cases:
        response = pos.pay(code, amount)
        assert (response.status_code, error_of(response)) == (422, expected), response.text
    held = pos.pay(w.code(w.seoul, "park"), 100).json()
    over = pos.call("POST", f"/pos/v1/payments/{held['id']}/capture", json={"amountWon": 101}, idem=key())
    assert (over.status_code, error_of(over)) == (422, "AMOUNT_EXCEEDS_AUTHORIZED")
    code = w.code(w.seoul, "park")
    w.seoul.gw.data(
        "mutation($i: SetMemberStatusInput!) { setMemberStatus(input: $i) { errors { code } } }",
        i={"memberExternalId": "park", "status": "SUSPENDED"},
    )
    suspended = pos.pay(code, 10)
    assert (suspended.status_code, error_of(suspended)) == (422, "MEMBER_SUSPENDED")
    assert w.balance(w.seoul, "park") == (900, 100)
    assert w.balance(w.busan, "choi") == (1_000, 0)


async def test_malformed_requests_and_access_are_refused(world: World, pos: Pos, spec, db):
    w = world
    await w.credit(w.seoul, "han", 1_000)
    p = pos.pay(w.code(w.seoul, "han"), 100).json()

    no_key = pos.call(
        "POST",
        "/pos/v1/payments",
        json={"memberCode": "1" * 16, "amountWon": 1, "orderId": "x"},
        validate_request=False,
    )
    assert (no_key.status_code, error_of(no_key), no_key.json()["error"]["field"]) == (
        400,
        "INVALID_INPUT",
        ["Idempotency-Key"],
    )
    not_json = pos.call(
        "POST", "/pos/v1/payments", idem=key(), headers={"content-type": "application/json"}, validate_request=False
    )
    assert (not_json.status_code, error_of(not_json)) == (400, "INVALID_INPUT")
    for body in (
        {"memberCode": "1" * 16, "amountWon": "100", "orderId": "x"},
        {"memberCode": "1" * 16, "amountWon": 100},
        {"memberCode": "1" * 16, "amountWon": 100, "orderId": "x", "tip": 5},
    ):
        bad = pos.call("POST", "/pos/v1/payments", json=body, idem=key(), validate_request=False)
        assert (bad.status_code, error_of(bad)) == (400, "INVALID_INPUT"), body
    zero = pos.call(
        "POST",
        "/pos/v1/payments",
        json={"memberCode": "1" * 16, "amountWon": 0, "orderId": "x"},
        idem=key(),
        validate_request=False,
    )
    assert (zero.status_code, error_of(zero)) == (422, "INVALID_INPUT")

    anonymous = Pos(w.url, None, spec).call(
        "POST",
        "/pos/v1/payments",
        json={"memberCode": "1" * 16, "amountWon": 1, "orderId": "x"},
        idem=key(),
        validate_request=False,
    )
    assert (anonymous.status_code, error_of(anonymous)) == (401, "UNAUTHENTICATED")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = Pos(w.url, "not.a.token", spec).call("GET", f"/pos/v1/payments/{p['id']}", validate_request=False)
    assert forged.status_code == 401

    operator = Pos(w.url, w.seoul.gw.token, spec).call("POST", f"/pos/v1/payments/{p['id']}/void", idem=key())
    assert (operator.status_code, error_of(operator)) == (403, "FORBIDDEN")
    reader = await party(
        db, w.url, code="reader-shop", kind="MERCHANT", scopes=["redemptions:read"], operator_code="seoul-walking"
    )
    read_only = Pos(w.url, reader.gw.token, spec).call("POST", f"/pos/v1/payments/{p['id']}/void", idem=key())
    assert (read_only.status_code, error_of(read_only)) == (403, "FORBIDDEN")

    other = Pos(w.url, w.other_shop.gw.token, spec)
    for method, path in (
        ("GET", f"/pos/v1/payments/{p['id']}"),
        ("POST", f"/pos/v1/payments/{p['id']}/capture"),
        ("POST", "/pos/v1/payments/bm90LWFuLWlk/void"),
    ):
        missing = other.call(method, path, idem=key() if method == "POST" else None)
        assert (missing.status_code, error_of(missing)) == (404, "NOT_FOUND")
    assert other.call("GET", "/pos/v1/payments", params={"orderId": "POS-1"}).json() == {"payments": []}
    assert w.balance(w.seoul, "han") == (900, 100)
