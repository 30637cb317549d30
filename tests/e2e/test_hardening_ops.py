"""Operations hardening over real HTTP (issue 17, items 15 and 17).

* /metrics answers only a bearer token with the `metrics:read` scope.
* Overload: with every database connection taken, a request waits GATEWAY_DB_POOL_TIMEOUT at
  most, then gets 503 with Retry-After (REST faces) or `extensions.code: UNAVAILABLE`
  (GraphQL), never SQLAlchemy's pool message; /metrics shows the pool meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import Response

from gateway.db import Database
from schema import build_schema
from schema.context import Context
from tests.support.auth import get_token, register_partner
from tests.support.schema import execute, principal

MEMBER = 'query { member(externalId: "kim") { externalId } }'
#: What must never reach a client: SQLAlchemy's pool message and its pieces.
POOL_TEXT = ("queuepool", "pool limit", "overflow", "sqlalchemy", "timeouterror", "connection timed out")


def samples(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples if not s.labels}


async def admin_client(db, *scopes: str):
    return await register_partner(db, code="office", kind="ADMIN", scopes=list(scopes))


# ---------------------------------------------------------------- item 15: /metrics


async def test_metrics_answer_only_a_token_with_metrics_read(db, live_server):
    url = live_server.url + "/metrics"
    operator = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )
    admin = await admin_client(db, "admin")
    monitor = await admin_client(db, "metrics:read")

    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "gateway_" not in anonymous.text
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    for reg in (operator, admin):
        token = get_token(live_server.url, reg.client_id, reg.client_secret)
        refused = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "insufficient_scope"
        assert 'scope="metrics:read"' in refused.headers["www-authenticate"] and "gateway_" not in refused.text

    token = get_token(live_server.url, monitor.client_id, monitor.client_secret)
    served = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/plain")
    figures = samples(served.text)
    assert figures["gateway_db_pool_size"] == live_server.settings.db_pool_size
    assert {"gateway_db_pool_checked_out", "gateway_db_pool_overflow", "gateway_db_pool_waiting"} <= set(figures)


async def test_only_admin_partners_may_hold_metrics_read(db, live_server):
    from auth.scopes import invalid_scopes

    assert invalid_scopes("ADMIN", ["metrics:read"]) == []
    for kind in ("OPERATOR", "MERCHANT", "SPONSOR", "BENEFICIARY"):
        assert invalid_scopes(kind, ["metrics:read"]) == ["metrics:read"]


# ---------------------------------------------------------------- item 17: overload


@pytest.fixture
def tiny_pool_server(settings):
    """A served gateway with one database connection, no overflow and a 0.2 s wait."""
    from tests.conftest import _start_on

    if settings.is_sqlite:
        pytest.skip("row locks held by another session: PostgreSQL")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    issuer = f"http://127.0.0.1:{port}"
    tiny = dataclasses.replace(
        settings,
        issuer=issuer,
        audience=f"{issuer}/graphql",
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout=0.2,
        rate_per_second=10_000,
        rate_burst=10_000,
        max_concurrent=10_000,
    )
    server = _start_on(tiny, port)
    yield server
    server.stop()


def check_refusal(response: httpx.Response) -> str:
    """A 503 as the contract wants it; returns its face."""
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    lowered = response.text.lower()
    assert not any(text in lowered for text in POOL_TEXT), response.text
    if "errors" in body:
        assert body["errors"] and all(e["extensions"]["code"] == "UNAVAILABLE" for e in body["errors"]), body
        return "graphql"
    assert body["error"] == "temporarily_unavailable", body
    return "oauth"


@pytest.mark.pg_only
async def test_an_exhausted_pool_answers_503_unavailable_and_shows_in_metrics(db, settings, tiny_pool_server):
    import asyncpg

    server = tiny_pool_server
    operator = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )
    monitor = await admin_client(db, "metrics:read")
    token = get_token(server.url, operator.client_id, operator.client_secret)
    metrics_token = get_token(server.url, monitor.client_id, monitor.client_secret)

    # Another session locks the members table: the first member query blocks on it holding
    # the only connection; everything else waits for a connection.
    lock = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    transaction = lock.transaction()
    await transaction.start()
    await lock.execute("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
    responses: list[httpx.Response] = []
    stop = asyncio.Event()

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def graphql_worker() -> None:
            while not stop.is_set():
                responses.append(
                    await http.post("/graphql", json={"query": MEMBER}, headers={"Authorization": f"Bearer {token}"})
                )

        async def token_worker() -> None:
            while not stop.is_set():
                responses.append(
                    await http.post(
                        "/oauth/token",
                        data={"grant_type": "client_credentials"},
                        auth=(operator.client_id, operator.client_secret),
                    )
                )

        workers = [asyncio.create_task(graphql_worker()) for _ in range(12)] + [
            asyncio.create_task(token_worker()) for _ in range(4)
        ]
        await asyncio.sleep(1.0)
        started = time.monotonic()
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {metrics_token}"})
        scrape_seconds = time.monotonic() - started
        await asyncio.sleep(0.5)
        await transaction.rollback()
        await lock.close()
        stop.set()
        await asyncio.gather(*workers)
        after = await http.post("/graphql", json={"query": MEMBER}, headers={"Authorization": f"Bearer {token}"})

    refused = [r for r in responses if r.status_code != 200]
    faces = {check_refusal(r) for r in refused}
    assert faces == {"graphql", "oauth"}, (len(responses), len(refused))
    for ok in (r for r in responses if r.status_code == 200):
        assert all(e.get("extensions", {}).get("code") for e in ok.json().get("errors", [])), ok.text
    # The gateway recovers at once.
    assert after.status_code == 200 and after.json()["data"] == {"member": None} and "errors" not in after.json()

    # The pool, seen while it was exhausted (the token checked without the database).
    assert scraped.status_code == 200 and scrape_seconds < 2, scraped.text
    figures = samples(scraped.text)
    assert figures["gateway_db_pool_size"] == 1 and figures["gateway_db_pool_checked_out"] == 1
    assert figures["gateway_db_pool_overflow"] == 0
    assert figures["gateway_db_pool_waiting"] >= 1 and figures["gateway_db_pool_timeouts_total"] >= 1


async def test_a_graphql_field_that_finds_no_connection_is_unavailable_and_the_answer_503(db, settings):
    """The GraphQL path (GatewaySchema.process_errors) on a real pool of one connection that
    the test holds: the resolver's wait runs out inside execution."""
    operator = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point=1
    )
    tiny = Database(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    sub_response = Response()
    sub_response.status_code = None
    who = principal(operator.partner_id, operator.code, "OPERATOR", "members:read")
    gateway_schema = build_schema()
    try:
        async with tiny.engine.connect():  # the only connection, taken
            ctx = Context(request=None, response=sub_response, db=tiny, settings=settings, principal=who, state=None)
            try:
                result = await gateway_schema.execute(MEMBER, context_value=ctx)
            finally:
                await ctx.close()
        [error] = result.errors
        assert error.extensions == {"code": "UNAVAILABLE", "retryAfter": 1}
        assert not any(text in error.message.lower() for text in POOL_TEXT), error.message
        assert sub_response.status_code == 503 and sub_response.headers["retry-after"] == "1"
        # With the connection back, the same query runs.
        assert (await execute(tiny, settings, who, MEMBER)).errors is None
    finally:
        await tiny.dispose()
