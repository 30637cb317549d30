"""Issue 17, item 7 over real HTTP: persisted queries belong to a partner, are capped in
size and in number (the least recently used go), and ADMIN registers a client to run only
persisted queries with a mutation."""

from __future__ import annotations

import dataclasses
import hashlib

import httpx
import pytest
import sqlalchemy as sa

from gateway.models import PersistedQuery
from tests.support.auth import GatewayClient, add_client, register_partner

MAX_BYTES = 2048
PER_PARTNER = 3
VIEWER = "query Who { viewer { clientId partner { code } } }"
SET_ONLY = """
mutation($input: SetPersistedQueriesOnlyInput!) {
  setPersistedQueriesOnly(input: $input) {
    client { clientId persistedQueriesOnly partner { code } }
    errors { code message field }
  }
}"""


@pytest.fixture
def settings(settings):
    """Small caps, and every use of a query recorded at once (the default is once a minute)."""
    return dataclasses.replace(
        settings,
        persisted_query_max_bytes=MAX_BYTES,
        persisted_queries_per_partner=PER_PARTNER,
        persisted_query_touch_seconds=0,
    )


def _sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def _post(client: GatewayClient, query: str | None, sha: str | None = None) -> dict:
    body: dict = {}
    if query is not None:
        body["query"] = query
    if sha is not None:
        body["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    response = httpx.post(
        client.base_url + "/graphql", json=body, timeout=30, headers={"Authorization": f"Bearer {client.token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _code(result: dict) -> str | None:
    errors = result.get("errors") or []
    return errors[0]["extensions"]["code"] if errors else None


def _store(client: GatewayClient, query: str) -> dict:
    result = _post(client, query, _sha(query))
    assert "errors" not in result, result
    return result["data"]


def _by_hash(client: GatewayClient, query: str) -> dict:
    return _post(client, None, _sha(query))


async def _operator(db, url: str, code: str, unit: str) -> GatewayClient:
    return GatewayClient.of(
        url,
        await register_partner(
            db, code=code, kind="OPERATOR", scopes=["members:read"], unit_code=unit, won_per_point=1
        ),
    )


async def _stored(db, partner_code: str | None = None) -> list[str]:
    async with db.session() as session:
        rows = await session.execute(
            sa.text("SELECT p.code, q.sha256 FROM persisted_queries q JOIN partners p ON p.id = q.partner_id")
        )
        return sorted(sha for code, sha in rows if partner_code in (None, code))


async def test_a_hash_one_partner_stored_is_unknown_to_every_other(db, live_server):
    walk_a = await _operator(db, live_server.url, "walk-a", "WA")
    walk_b = await _operator(db, live_server.url, "walk-b", "WB")
    sibling = GatewayClient.of(live_server.url, await add_client(db, "walk-a", scopes=["members:read"]))

    assert _store(walk_a, VIEWER)["viewer"]["partner"]["code"] == "walk-a"
    assert _code(_by_hash(walk_b, VIEWER)) == "PERSISTED_QUERY_NOT_FOUND"
    # Another client of the same partner shares its store.
    assert _by_hash(sibling, VIEWER)["data"]["viewer"]["clientId"] == sibling.client_id

    # The other partner stores the same text under the same hash: a copy of its own.
    assert _store(walk_b, VIEWER)["viewer"]["partner"]["code"] == "walk-b"
    assert _by_hash(walk_b, VIEWER)["data"]["viewer"]["partner"]["code"] == "walk-b"
    assert await _stored(db, "walk-a") == await _stored(db, "walk-b") == [_sha(VIEWER)]


async def test_a_query_over_the_size_cap_is_refused_and_not_stored(db, live_server):
    walk_a = await _operator(db, live_server.url, "walk-a", "WA")
    big = "query Big { viewer { clientId } }\n# " + "x" * MAX_BYTES
    just_fits = "query Fits { viewer { clientId } }\n# " + "y" * (MAX_BYTES - 40)
    assert len(just_fits.encode()) <= MAX_BYTES < len(big.encode())

    refused = _post(walk_a, big, _sha(big))
    assert refused["data"] is None and _code(refused) == "LIMIT_EXCEEDED", refused
    assert f"at most {MAX_BYTES} bytes" in refused["errors"][0]["message"]
    assert _code(_by_hash(walk_a, big)) == "PERSISTED_QUERY_NOT_FOUND"
    assert _post(walk_a, big)["data"]["viewer"]["clientId"]  # the cap is on storing, not on running

    assert _store(walk_a, just_fits)["viewer"]["clientId"]
    assert await _stored(db) == [_sha(just_fits)]


async def test_beyond_the_count_cap_the_least_recently_used_query_goes(db, live_server):
    walk_a = await _operator(db, live_server.url, "walk-a", "WA")
    walk_b = await _operator(db, live_server.url, "walk-b", "WB")
    q1, q2, q3, q4 = (f"query Q{i} {{ viewer {{ clientId }} }}" for i in range(1, 5))
    for query in (q1, q2, q3):
        _store(walk_a, query)
    _store(walk_b, q4)
    assert _by_hash(walk_a, q1)["data"]["viewer"]  # q1 is used again: q2 is now the least recent

    _store(walk_a, q4)  # one more than the cap
    assert await _stored(db, "walk-a") == sorted(_sha(q) for q in (q1, q3, q4))
    assert _code(_by_hash(walk_a, q2)) == "PERSISTED_QUERY_NOT_FOUND"
    for query in (q1, q3, q4):
        assert _by_hash(walk_a, query)["data"]["viewer"]
    # The other partner's store was not touched by this one's eviction.
    assert await _stored(db, "walk-b") == [_sha(q4)]

    # An evicted query can be stored again (and pushes out the next least recent: q1).
    _store(walk_a, q2)
    assert await _stored(db, "walk-a") == sorted(_sha(q) for q in (q2, q3, q4))
    async with db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(PersistedQuery))).scalar_one() == 4


async def test_admin_registers_a_client_to_run_only_persisted_queries(db, live_server):
    url = live_server.url
    admin = GatewayClient.of(url, await register_partner(db, code="office", kind="ADMIN", scopes=["admin"]))
    walk_a = await _operator(db, url, "walk-a", "WA")
    locked = GatewayClient.of(url, await add_client(db, "walk-a", scopes=["members:read"]))
    _store(walk_a, VIEWER)
    assert _post(locked, VIEWER)["data"]["viewer"]["clientId"] == locked.client_id

    # Only ADMIN may set it; an unknown client is NOT_FOUND.
    assert (
        _code(walk_a.gql(SET_ONLY, input={"clientId": locked.client_id, "persistedQueriesOnly": True})) == "FORBIDDEN"
    )
    unknown = admin.data(SET_ONLY, input={"clientId": "no-such-client", "persistedQueriesOnly": True})
    assert [e["code"] for e in unknown["setPersistedQueriesOnly"]["errors"]] == ["NOT_FOUND"]

    payload = admin.data(SET_ONLY, input={"clientId": locked.client_id, "persistedQueriesOnly": True})
    assert payload["setPersistedQueriesOnly"] == {
        "client": {"clientId": locked.client_id, "persistedQueriesOnly": True, "partner": {"code": "walk-a"}},
        "errors": [],
    }
    # At once, with the token it already holds: known hashes run, nothing else does.
    assert _code(_post(locked, VIEWER)) == "FORBIDDEN"
    other = "query Other { viewer { clientId } }"
    assert _code(_post(locked, other, _sha(other))) == "FORBIDDEN"
    assert _by_hash(locked, VIEWER)["data"]["viewer"]["clientId"] == locked.client_id
    assert _post(walk_a, VIEWER)["data"]["viewer"]  # its sibling is not affected
    assert await _stored(db) == [_sha(VIEWER)]

    admin.data(SET_ONLY, input={"clientId": locked.client_id, "persistedQueriesOnly": False})
    assert _post(locked, VIEWER)["data"]["viewer"]["clientId"] == locked.client_id
