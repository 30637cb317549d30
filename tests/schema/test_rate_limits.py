"""Per-client rate limits: a token bucket and a concurrency cap per client id; over
either, HTTP 429 with Retry-After and LIMIT_EXCEEDED, while other clients are served."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from gateway.ratelimit import ClientLimiter
from gateway.settings import Settings
from schema.http import GraphQLEndpoint
from tests.support.auth import get_token, post_graphql, register_partner

VIEWER = "{ viewer { clientId } }"


# ---------------------------------------------------------------- the limiter itself


def test_defaults_admit_a_burst_of_100_and_50_a_second():
    limiter = ClientLimiter.from_settings(Settings())
    assert (limiter.rate, limiter.burst, limiter.max_concurrent) == (50, 100, 40)
    for _ in range(100):
        assert limiter.admit("a") is None
        limiter.release("a")
    refusal = limiter.admit("a")
    assert refusal is not None and refusal.limit == "rate" and refusal.retry_after == 1
    time.sleep(0.1)  # 50/s refills about five tokens
    admitted = 0
    while limiter.admit("a") is None:
        limiter.release("a")
        admitted += 1
    assert 4 <= admitted <= 7


def test_an_empty_bucket_names_the_wait_and_leaves_other_clients_alone():
    limiter = ClientLimiter(rate_per_second=0.25, burst=2, max_concurrent=10)
    for _ in range(2):
        assert limiter.admit("greedy") is None
        limiter.release("greedy")
    refusal = limiter.admit("greedy")
    assert refusal.limit == "rate"
    assert 1 <= refusal.retry_after <= 4
    assert limiter.admit("patient") is None


def test_concurrent_requests_are_capped_per_client_without_spending_tokens():
    limiter = ClientLimiter(rate_per_second=1, burst=3, max_concurrent=2)
    assert limiter.admit("a") is None and limiter.admit("a") is None
    refusal = limiter.admit("a")
    assert refusal.limit == "concurrency" and refusal.retry_after == 1
    assert limiter.admit("b") is None
    limiter.release("a")
    assert limiter.admit("a") is None  # the third token was still there
    assert limiter.in_flight("a") == 2


# ---------------------------------------------------------------- over HTTP


def _endpoint(live_server) -> GraphQLEndpoint:
    return next(r.endpoint for r in live_server.app.routes if getattr(r, "path", None) == "/graphql")


async def _two_clients(db, live_server) -> tuple[str, str, str]:
    a = await register_partner(
        db, code="walk-a", kind="OPERATOR", scopes=["members:read"], unit_code="WA", won_per_point=1
    )
    b = await register_partner(
        db, code="walk-b", kind="OPERATOR", scopes=["members:read"], unit_code="WB", won_per_point=1
    )
    return (
        a.client_id,
        get_token(live_server.url, a.client_id, a.client_secret),
        get_token(live_server.url, b.client_id, b.client_secret),
    )


# A slow refill (one request every 50 s) so that a loaded machine cannot refill the bucket
# between the requests of the test.
@pytest.mark.settings(rate_per_second=0.02, rate_burst=3)
async def test_a_client_over_its_bucket_gets_429_while_another_is_served(db, live_server):
    _, greedy, other = await _two_clients(db, live_server)

    answers = [post_graphql(live_server.url, greedy, VIEWER) for _ in range(4)]

    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 50
    assert limited.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert post_graphql(live_server.url, other, VIEWER).json()["data"]["viewer"]["clientId"]
    assert post_graphql(live_server.url, greedy, VIEWER).status_code == 429


@pytest.mark.settings(max_concurrent=1)
async def test_a_second_concurrent_request_of_one_client_gets_429(db, live_server):
    client_id, slow, other = await _two_clients(db, live_server)
    endpoint = _endpoint(live_server)
    release = threading.Event()

    def body():  # the first request holds its slot while its body trickles in
        yield b'{"query": "{ viewer '
        release.wait(10)
        yield b'{ clientId } }"}'

    headers = {"Authorization": f"Bearer {slow}", "Content-Type": "application/json"}
    first: dict = {}
    worker = threading.Thread(
        target=lambda: first.update(
            r=httpx.post(live_server.url + "/graphql", content=body(), headers=headers, timeout=30)
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while endpoint.limiter.in_flight(client_id) < 1:
            assert time.monotonic() < deadline, "the first request never arrived"
            time.sleep(0.01)

        second = post_graphql(live_server.url, slow, VIEWER)
        assert second.status_code == 429
        assert second.headers["retry-after"] == "1"
        assert second.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
        assert post_graphql(live_server.url, other, VIEWER).status_code == 200
    finally:
        release.set()
        worker.join(15)

    assert first["r"].status_code == 200 and first["r"].json()["data"]["viewer"]["clientId"] == client_id
    deadline = time.monotonic() + 5  # the slot is freed just after the response has gone out
    while endpoint.limiter.in_flight(client_id):
        assert time.monotonic() < deadline, "the slot was never released"
        time.sleep(0.01)
    assert post_graphql(live_server.url, slow, VIEWER).status_code == 200
