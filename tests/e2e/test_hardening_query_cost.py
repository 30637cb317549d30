"""Issue 17, item 1: fragment expansion and query cost, over real HTTP.

A document of k fragments, each spreading the next twice, is a few hundred bytes and
expands to 2^k fields. It is refused with LIMIT_EXCEEDED in well under a second for k=17
(5 s of a blocked event loop before) and for k=400 (the most the token limit lets in),
`/healthz` answering within 0.5 s while several such attacks run at once; as a mutation,
it is refused and audited once, not 2^k times. An operation over the cost budget is
refused with its cost and the budget, and runs nothing; every priced response carries
`extensions.cost`."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import httpx
import sqlalchemy as sa

from gateway.models import AuditEvent, Partner
from tests.conftest import _start_on
from tests.support.auth import get_token, post_graphql, register_partner

VIEWER = "{ viewer { clientId } }"
BUDGET = 10_000


def fragment_bomb(k: int, root: str = "query", leaf: str = "viewer { clientId }") -> str:
    """The issue's document: F_i spreads F_{i+1} twice, F_k selects `leaf`; 2^k copies of it."""
    kind = "Mutation" if root == "mutation" else "Query"
    spreads = " ".join(f"fragment F{i} on {kind}{{...F{i + 1} ...F{i + 1}}}" for i in range(k))
    return f"{root}{{...F0}} {spreads} fragment F{k} on {kind}{{{leaf}}}"


def _served(settings, **changes):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    issuer = f"http://127.0.0.1:{port}"
    return _start_on(dataclasses.replace(settings, issuer=issuer, audience=f"{issuer}/graphql", **changes), port)


async def _operator_token(db, url: str) -> str:
    op = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    return get_token(url, op.client_id, op.client_secret)


async def _admin_token(db, url: str) -> str:
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    return get_token(url, admin.client_id, admin.client_secret)


def _refused(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("data") is None, body
    assert body["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED", body
    return body


# ---------------------------------------------------------------- fragment expansion


async def test_a_fragment_bomb_is_refused_at_once(db, live_server):
    token = await _operator_token(db, live_server.url)
    assert len(fragment_bomb(17)) < 800  # the 726-byte document

    for k in (17, 400):
        started = time.perf_counter()
        response = post_graphql(live_server.url, token, fragment_bomb(k))
        elapsed = time.perf_counter() - started
        body = _refused(response)
        assert elapsed < 2.5, (k, elapsed)  # the old walk took 5 s for k=17 and never ended for 400
        assert "fields once its fragments are spread" in body["errors"][0]["message"]

    # 1,200 repeats of one field: 2,400 fields. Over the limit, the document is not also
    # put through graphql-core's overlapping-fields rule (quadratic: ~1 s for this one).
    repeated = "{ " + "viewer { clientId } " * 1200 + "}"
    started = time.perf_counter()
    body = _refused(post_graphql(live_server.url, token, repeated))
    assert time.perf_counter() - started < 1.0  # ~1.5 s when the quadratic rule ran too
    assert "2,400 fields" in body["errors"][0]["message"]

    served = post_graphql(live_server.url, token, VIEWER).json()
    assert served["data"]["viewer"]["clientId"]


async def test_healthz_answers_while_fragment_bombs_run(db, live_server):
    token = await _operator_token(db, live_server.url)
    bombs = [fragment_bomb(17), fragment_bomb(400)]
    stop = threading.Event()
    outcomes: list[str] = []

    def attack(n: int) -> None:
        with httpx.Client(timeout=30) as client:
            i = 0
            while not stop.is_set() and i < 6:  # 4 attackers x 6 stays under the rate limit's burst
                response = client.post(
                    live_server.url + "/graphql",
                    json={"query": bombs[(n + i) % 2]},
                    headers={"Authorization": f"Bearer {token}"},
                )
                outcomes.append(response.json()["errors"][0]["extensions"]["code"])
                i += 1

    attackers = [threading.Thread(target=attack, args=(n,)) for n in range(4)]
    for thread in attackers:
        thread.start()
    slowest = 0.0
    try:
        with httpx.Client(timeout=5) as client:
            for _ in range(20):
                started = time.perf_counter()
                assert client.get(live_server.url + "/healthz").status_code == 200
                slowest = max(slowest, time.perf_counter() - started)
                time.sleep(0.02)
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=60)
    assert slowest < 0.5, slowest
    assert outcomes and set(outcomes) == {"LIMIT_EXCEEDED"}, outcomes


async def test_a_mutation_fragment_bomb_is_refused_and_audited_once(db, live_server):
    admin = await _admin_token(db, live_server.url)
    create = 'createPartner(input: {code: "bomb-shop", name: "Shop", kind: SPONSOR}) { partner { code } }'

    started = time.perf_counter()
    _refused(post_graphql(live_server.url, admin, fragment_bomb(17, "mutation", create)))
    assert time.perf_counter() - started < 2.5

    async with db.session() as session:
        events = (
            await session.execute(
                sa.select(AuditEvent.operation, AuditEvent.outcome).where(AuditEvent.operation == "createPartner")
            )
        ).all()
        created = (await session.execute(sa.select(Partner).where(Partner.code == "bomb-shop"))).first()
    assert [tuple(e) for e in events] == [("createPartner", "LIMIT_EXCEEDED")]
    assert created is None


async def test_fragments_count_towards_depth_and_aliases_as_if_expanded(db, live_server):
    token = await _admin_token(db, live_server.url)
    deep = (
        "{ viewer { partner { ...A } } } fragment A on Partner { operator { ...B } }"
        " fragment B on Partner { " + "operator { " * 10 + "code" + " }" * 10 + " }"
    )  # 13 levels through two fragments
    body = _refused(post_graphql(live_server.url, token, deep))
    assert "depth of 12" in body["errors"][0]["message"]

    aliases = (
        "{ ...F ...G } fragment F on Query { "
        + " ".join(f"a{i}: viewer {{ clientId }}" for i in range(16))
        + " } fragment G on Query { ...F }"
    )  # 16 aliases, spread twice: 32 > 30
    body = _refused(post_graphql(live_server.url, token, aliases))
    assert "32 aliases" in body["errors"][0]["message"]

    shared = (
        "{ ...F ...F viewer { ...V ...V } } fragment F on Query { viewer { ...V } } fragment V on Viewer { clientId }"
    )
    assert post_graphql(live_server.url, token, shared).json()["data"]["viewer"]["clientId"]


# ---------------------------------------------------------------- query cost


async def test_every_priced_response_carries_its_cost(db, live_server):
    token = await _admin_token(db, live_server.url)

    body = post_graphql(live_server.url, token, VIEWER).json()
    assert "errors" not in body
    assert body["extensions"]["cost"] == {"requestedQueryCost": 1, "maximumAvailable": BUDGET}

    page = "query($n: Int) { partners(first: $n) { edges { cursor node { code } } pageInfo { hasNextPage } } }"
    body = post_graphql(live_server.url, token, page, {"n": 20}).json()
    assert "errors" not in body and body["data"]["partners"]["edges"]
    assert body["extensions"]["cost"]["requestedQueryCost"] == 21  # the page, and 20 partners
    body = post_graphql(live_server.url, token, page).json()  # no `first`: the default page of 50
    assert body["extensions"]["cost"]["requestedQueryCost"] == 51


async def test_a_query_over_the_budget_is_refused_with_its_cost(db, live_server):
    token = await _admin_token(db, live_server.url)
    # 30 aliases (the alias limit), each a page of 500 (the page limit): 30 x 501 = 15,030.
    wide = "{ " + " ".join(f"p{i}: partners(first: 500) {{ edges {{ node {{ code }} }} }}" for i in range(30)) + " }"
    body = _refused(post_graphql(live_server.url, token, wide))
    error = body["errors"][0]
    assert "15,030" in error["message"] and "10,000" in error["message"]
    assert error["extensions"]["cost"] == 15_030 and error["extensions"]["budget"] == BUDGET
    assert body["extensions"]["cost"] == {"requestedQueryCost": 15_030, "maximumAvailable": BUDGET}

    narrower = wide.replace("first: 500", "first: 300")  # 30 x 301 = 9,030
    body = post_graphql(live_server.url, token, narrower).json()
    assert "errors" not in body, body
    assert body["extensions"]["cost"]["requestedQueryCost"] == 9_030


async def test_a_mutation_over_the_budget_runs_nothing(db, settings):
    server = _served(settings, max_query_cost=20)
    try:
        token = await _admin_token(db, server.url)
        one = 'c%d: createPartner(input: {code: "shop-%d", name: "Shop", kind: SPONSOR}) { partner { code } errors { code } }'
        # Each costs 1 (payload) + 1 (partner) + 10 (the errors list): 12, two are 24 > 20.
        body = _refused(post_graphql(server.url, token, "mutation { " + one % (1, 1) + " " + one % (2, 2) + " }"))
        assert "24" in body["errors"][0]["message"] and "20" in body["errors"][0]["message"]
        async with db.session() as session:
            created = (await session.execute(sa.select(Partner.code).where(Partner.kind == "SPONSOR"))).scalars().all()
        assert created == []

        body = post_graphql(server.url, token, "mutation { " + one % (3, 3) + " }").json()
        assert body["data"]["c3"]["partner"]["code"] == "shop-3"
        assert body["extensions"]["cost"] == {"requestedQueryCost": 12, "maximumAvailable": 20}
    finally:
        server.stop()
