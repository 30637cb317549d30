"""Automatic persisted queries (Apollo's convention) over real HTTP, and clients
registered to run only persisted queries."""

from __future__ import annotations

import hashlib

import httpx
import sqlalchemy as sa

from gateway.models import OAuthClient, PersistedQuery
from tests.support.auth import add_client, get_token, register_partner

VIEWER = "query Who { viewer { clientId partner { code } } }"


def _sha(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


def _post(live_server, token: str, query: str | None, sha: str | None = None) -> dict:
    body: dict = {}
    if query is not None:
        body["query"] = query
    if sha is not None:
        body["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    response = httpx.post(
        live_server.url + "/graphql", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def _code(result: dict) -> str:
    return result["errors"][0]["extensions"]["code"]


async def _operator(db, live_server, code: str, unit: str) -> tuple[str, str]:
    reg = await register_partner(
        db, code=code, kind="OPERATOR", scopes=["members:read"], unit_code=unit, won_per_point=1
    )
    return reg.client_id, get_token(live_server.url, reg.client_id, reg.client_secret)


async def _stored(db) -> list[str]:
    async with db.session() as session:
        return list((await session.execute(sa.select(PersistedQuery.sha256))).scalars())


async def test_an_unknown_hash_is_asked_for_then_stored_with_its_query_and_run_by_hash(db, live_server):
    _, token = await _operator(db, live_server, "walk-a", "WA")
    _, other = await _operator(db, live_server, "walk-b", "WB")
    sha = _sha(VIEWER)

    missing = _post(live_server, token, None, sha)
    assert missing["data"] is None
    assert missing["errors"][0]["message"] == "PersistedQueryNotFound"
    assert _code(missing) == "PERSISTED_QUERY_NOT_FOUND"

    full = _post(live_server, token, VIEWER, sha)
    assert full["data"]["viewer"]["partner"]["code"] == "walk-a"
    assert await _stored(db) == [sha]

    assert _post(live_server, token, None, sha)["data"]["viewer"]["partner"]["code"] == "walk-a"
    # Each partner has a store of its own (issue 17): the hash is unknown to another partner.
    assert _code(_post(live_server, other, None, sha)) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_wrong_hash_or_an_invalid_query_is_not_stored(db, live_server):
    _, token = await _operator(db, live_server, "walk-a", "WA")

    mismatch = _post(live_server, token, VIEWER, _sha(VIEWER + " "))
    assert _code(mismatch) == "INVALID_INPUT"
    invalid = "{ viewer { nothingHere } }"
    assert _post(live_server, token, invalid, _sha(invalid))["errors"]
    deep = "{ viewer { partner { " + "operator { " * 12 + "code" + " }" * 12 + " } } }"
    assert _code(_post(live_server, token, deep, _sha(deep))) == "LIMIT_EXCEEDED"
    assert _code(_post(live_server, token, None, "z" * 64)) == "INVALID_INPUT"

    assert await _stored(db) == []
    assert _code(_post(live_server, token, None, _sha(invalid))) == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_persisted_only_client_runs_known_queries_and_nothing_else(db, live_server):
    locked_id, locked = await _operator(db, live_server, "walk-b", "WB")
    sibling = await add_client(db, "walk-b", scopes=["members:read"])  # shares walk-b's persisted queries
    open_token = get_token(live_server.url, sibling.client_id, sibling.client_secret)
    async with db.transaction() as session:
        await session.execute(
            sa.update(OAuthClient).where(OAuthClient.client_id == locked_id).values(persisted_queries_only=True)
        )
    sha = _sha(VIEWER)

    assert _code(_post(live_server, locked, VIEWER)) == "FORBIDDEN"
    assert _code(_post(live_server, locked, None, sha)) == "PERSISTED_QUERY_NOT_FOUND"
    assert _code(_post(live_server, locked, VIEWER, sha)) == "FORBIDDEN"
    assert await _stored(db) == []

    assert _post(live_server, open_token, VIEWER, sha)["data"]["viewer"]
    assert _post(live_server, locked, None, sha)["data"]["viewer"]["clientId"] == locked_id
    assert _post(live_server, locked, VIEWER, sha)["data"]["viewer"]["clientId"] == locked_id
