"""GraphQL limits over real HTTP: each limit refuses with LIMIT_EXCEEDED and runs nothing,
the server answers the next request, GET is off, introspection and suggestions follow
the environment. A few checks run the schema in-process where HTTP adds nothing."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import sqlalchemy as sa
from graphql import get_introspection_query, parse
from strawberry.extensions.validation_cache import _get_validate_cache

from gateway.models import Partner
from schema import build_schema
from schema.cost import operation_cost
from schema.extensions import VALIDATION_CACHE_SIZE
from schema.fragments import root_fields
from schema.limits import rules_for, shape_errors
from tests.support.auth import get_token, post_graphql, register_partner
from tests.support.schema import execute, principal

VIEWER = "{ viewer { clientId } }"
DEPTH_13 = "{ viewer { partner { " + "operator { " * 11 + "code" + " }" * 11 + " } } }"
ALIASES_31 = "{ " + " ".join(f"v{i}: viewer {{ clientId }}" for i in range(31)) + " }"
TOKENS_5200 = "{ " + "viewer { clientId } " * 1300 + "}"
FIRST_501 = "{ partners(first: 501) { edges { cursor } } }"
FIRST_VARIABLE = "query($n: Int) { partners(first: $n) { edges { cursor } } }"
CREATE = 'createPartner(input: {code: "%s", name: "Shop", kind: SPONSOR}) { partner { code } errors { code } }'


async def _admin_and_operator(db, live_server) -> tuple[str, str]:
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    op = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    return (
        get_token(live_server.url, admin.client_id, admin.client_secret),
        get_token(live_server.url, op.client_id, op.client_secret),
    )


def _refused(response: httpx.Response, code: str = "LIMIT_EXCEEDED") -> dict:
    body = response.json()
    assert body.get("data") is None, body
    assert [e["extensions"]["code"] for e in body["errors"]][:1] == [code], body
    return body


def _served(live_server, token: str) -> None:
    response = post_graphql(live_server.url, token, VIEWER)
    assert response.status_code == 200 and response.json()["data"]["viewer"]["clientId"], response.text


async def test_each_limit_refuses_with_limit_exceeded_and_the_next_request_is_served(db, live_server):
    admin, _ = await _admin_and_operator(db, live_server)
    over = {
        "depth 13 > 12": (DEPTH_13, None),
        "31 aliases > 30": (ALIASES_31, None),
        "5,200 tokens > 5,000": (TOKENS_5200, None),
        "first: 501 > 500": (FIRST_501, None),
        "first: $n = 501": (FIRST_VARIABLE, {"n": 501}),
    }
    for name, (query, variables) in over.items():
        response = post_graphql(live_server.url, admin, query, variables)
        assert response.status_code == 200, (name, response.text)
        _refused(response)
        _served(live_server, admin)

    at_the_limit = post_graphql(live_server.url, admin, FIRST_VARIABLE, {"n": 500})
    assert "errors" not in at_the_limit.json()


async def test_a_mutation_over_a_limit_is_not_executed(db, live_server):
    admin, _ = await _admin_and_operator(db, live_server)
    deep = (
        "mutation { "
        + (CREATE % "deep-shop").replace(
            "partner { code }", "partner { " + "operator { " * 12 + "code" + " }" * 12 + " }"
        )
        + " }"
    )
    many = "mutation { " + " ".join(f"m{i}: " + CREATE % f"shop-{i}" for i in range(31)) + " }"

    for query in (deep, many):
        _refused(post_graphql(live_server.url, admin, query))

    async with db.session() as session:
        created = (await session.execute(sa.select(Partner.code).where(Partner.kind == "SPONSOR"))).scalars().all()
    assert created == []


async def test_a_body_over_the_limit_gets_413_without_being_read(db, live_server):
    admin, _ = await _admin_and_operator(db, live_server)
    limit = live_server.settings.max_body_bytes
    padded = json.dumps({"query": VIEWER, "variables": {"pad": "x" * limit}}).encode()
    headers = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}

    declared = httpx.post(live_server.url + "/graphql", content=padded, headers=headers, timeout=30)
    assert declared.status_code == 413
    _refused(declared)
    _served(live_server, admin)

    chunks = (padded[i : i + 65536] for i in range(0, len(padded), 65536))  # chunked: no Content-Length
    streamed = httpx.post(live_server.url + "/graphql", content=chunks, headers=headers, timeout=30)
    assert streamed.status_code == 413
    _refused(streamed)
    _served(live_server, admin)


async def test_batches_are_off_unless_switched_on(db, live_server):
    admin, _ = await _admin_and_operator(db, live_server)
    response = httpx.post(
        live_server.url + "/graphql",
        json=[{"query": VIEWER}, {"query": VIEWER}],
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert response.status_code == 400
    _refused(response)
    _served(live_server, admin)


@pytest.mark.settings(batching=True, max_batch=3)
async def test_a_batch_runs_each_operation_up_to_the_batch_limit(db, live_server):
    admin, _ = await _admin_and_operator(db, live_server)
    headers = {"Authorization": f"Bearer {admin}"}
    url = live_server.url + "/graphql"

    three = httpx.post(url, json=[{"query": VIEWER}, {"query": FIRST_501}, {"query": VIEWER}], headers=headers)
    assert three.status_code == 200
    first, second, third = three.json()
    assert first["data"]["viewer"]["clientId"] and third["data"]["viewer"]["clientId"]
    assert second["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"

    four = httpx.post(url, json=[{"query": VIEWER}] * 4, headers=headers)
    assert four.status_code == 400
    _refused(four)
    _served(live_server, admin)


async def test_queries_by_get_are_refused(db, live_server):
    admin, _ = await _admin_and_operator(db, live_server)
    headers = {"Authorization": f"Bearer {admin}"}
    for query in (VIEWER, "mutation { " + CREATE % "via-link" + " }"):
        response = httpx.get(live_server.url + "/graphql", params={"query": query}, headers=headers)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"
        assert "GET" in response.json()["errors"][0]["message"]
    async with db.session() as session:
        assert (await session.execute(sa.select(Partner).where(Partner.code == "via-link"))).first() is None


INTROSPECTION = '{ __schema { queryType { name } } __type(name: "Partner") { name } }'


@pytest.mark.settings(env="production")
async def test_introspection_is_for_admin_clients_only_in_production(db, live_server):
    admin, operator = await _admin_and_operator(db, live_server)

    refused = _refused(post_graphql(live_server.url, operator, INTROSPECTION), "FORBIDDEN")
    assert "introspection" in refused["errors"][0]["message"]
    _served(live_server, operator)

    allowed = post_graphql(live_server.url, admin, INTROSPECTION).json()
    assert allowed["data"] == {"__schema": {"queryType": {"name": "Query"}}, "__type": {"name": "Partner"}}


async def test_introspection_is_open_to_every_client_in_development(db, live_server):
    _, operator = await _admin_and_operator(db, live_server)
    full = post_graphql(live_server.url, operator, get_introspection_query()).json()
    assert "errors" not in full
    assert any(t["name"] == "AuditEvent" for t in full["data"]["__schema"]["types"])


TYPOS = [
    ("{ viewr { clientId } }", None),
    ("{ viewer { clientID } }", None),
    ("{ partners(frist: 1) { edges { cursor } } }", None),
    ("{ partners(kind: OPERATR) { edges { cursor } } }", None),
    ("query($k: PartnerKind) { partners(kind: $k) { edges { cursor } } }", {"k": "OPERATR"}),
    ("query($k: PartnerKnd) { partners(kind: $k) { edges { cursor } } }", None),
]


@pytest.mark.settings(env="production")
async def test_no_field_suggestions_in_production(db, live_server):
    admin, operator = await _admin_and_operator(db, live_server)
    for token in (operator, admin):
        for query, variables in TYPOS:
            response = post_graphql(live_server.url, token, query, variables)
            assert response.json()["errors"], query
            assert "Did you mean" not in response.text, response.text


async def test_field_suggestions_help_in_development(db, live_server):
    _, operator = await _admin_and_operator(db, live_server)
    for query, variables in TYPOS:
        response = post_graphql(live_server.url, operator, query, variables)
        assert "Did you mean" in response.text, (query, response.text)


# ---------------------------------------------------------------- in-process


async def test_introspection_nesting_does_not_count_towards_the_depth_limit(db, settings):
    import dataclasses

    shallow = dataclasses.replace(settings, max_depth=3)
    who = principal(1, "program-office", "ADMIN")
    result = await execute(db, shallow, who, get_introspection_query())
    assert result.errors is None
    result = await execute(db, shallow, who, "{ viewer { partner { operator { operator { code } } } } }")
    assert result.errors[0].extensions["code"] == "LIMIT_EXCEEDED"


async def test_the_limits_keep_validation_caching_effective(db, settings):
    """The limit rules are the same classes on every request, so the validation cache hits."""
    who = principal(1, "program-office", "ADMIN")
    assert rules_for(settings, who) is rules_for(settings, who)
    cache = _get_validate_cache(VALIDATION_CACHE_SIZE)
    query = "{ partners(first: 7) { edges { cursor } } }"
    await execute(db, settings, who, query)
    before = cache.cache_info()
    for _ in range(3):
        await execute(db, settings, who, query)
    after = cache.cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses


# ---------------------------------------------------------------- fragments and cost, on the real schema


def _bomb(k: int) -> str:
    spreads = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(k))
    return f"query {{ ...F0 }} {spreads} fragment F{k} on Query {{ viewer {{ clientId }} }}"


def _shape_errors(query: str, **limits) -> list[str]:
    limits = {"max_depth": 12, "max_aliases": 30, "max_fields": 2000, **limits}
    return [e.message for e in shape_errors(parse(query, max_tokens=5000), **limits)]


def test_a_fragment_spread_twice_at_every_level_is_measured_without_expanding_it():
    """2^400 fields are counted in the time the 400 fragments take to read (strawberry's
    depth limiter took seconds for k=17 and would never finish for k=400)."""
    for k in (17, 400):
        started = time.perf_counter()
        [message] = _shape_errors(_bomb(k))
        assert time.perf_counter() - started < 1.0  # milliseconds when quiet; the old walk: seconds, or never
        assert "fields once its fragments are spread" in message
    assert _shape_errors(_bomb(9)) == []  # 2^10 fields: within 2,000
    assert _shape_errors(_bomb(10)) == [
        "'anonymous' expands to 2,048 fields once its fragments are spread; at most 2,000 are allowed"
    ]


def test_fragments_count_for_depth_and_aliases_exactly_as_if_expanded():
    nested = "{ viewer { partner { ...A } } } fragment A on Partner { operator { ...B } } fragment B on Partner { %s }"
    eleven, twelve = ("operator { " * n + "code" + " }" * n for n in (9, 10))
    assert _shape_errors(nested % eleven) == []  # 12 levels
    assert _shape_errors(nested % twelve) == ["'anonymous' exceeds maximum operation depth of 12"]
    aliased = "{ ...F ...G } fragment F on Query { %s } fragment G on Query { ...F }"
    assert _shape_errors(aliased % " ".join(f"a{i}: viewer {{ clientId }}" for i in range(15))) == []
    assert _shape_errors(aliased % " ".join(f"a{i}: viewer {{ clientId }}" for i in range(16))) == [
        "32 aliases found. Allowed: 30"
    ]
    # A cycle or an unknown fragment is the spec rules' to report; the walk just ends.
    assert _shape_errors("{ ...A } fragment A on Query { viewer { clientId } ...A ...Missing }") == []


def test_root_fields_take_each_fragment_once_as_execution_does():
    document = parse(_bomb(400) + " query Other { __typename ...F400 partners { pageInfo { hasNextPage } } }")
    first, other = (d for d in document.definitions if d.kind == "operation_definition")
    assert [f.name.value for f in root_fields(document, first.selection_set)] == ["viewer"]
    assert [f.name.value for f in root_fields(document, other.selection_set)] == ["viewer", "partners"]


COSTS = [
    ("{ viewer { clientId scopes } }", None, 1),  # an object: 1; scalars and scalar lists: 0
    ("{ __schema { types { name fields { name } } } }", None, 0),  # introspection
    ("{ partners(first: 7) { edges { cursor node { code } } pageInfo { hasNextPage } } }", None, 8),
    ("{ partners { edges { node { code } } } }", None, 51),  # the field's default page, 50
    ("query($n: Int) { partners(first: $n) { edges { node { code } } } }", {"n": 120}, 121),
    ("query($n: Int = 3) { partners(first: $n) { edges { node { code } } } }", None, 4),
    ("query($n: Int) { partners(first: $n) { edges { node { code } } } }", {"n": None}, 51),
    # An unpaginated list of objects counts 10; a page inside it multiplies: 10 x (1 + 1 + 5).
    ("{ connectors { partner { code } runs(first: 5) { id } } }", None, 70),
    # Fragments and an abstract type: node 1, the connection 1, 30 discrepancies.
    (
        '{ node(id: "x") { ... on ReconciliationRun { ...D } } } '
        "fragment D on ReconciliationRun { discrepancies(first: 30) { ...E } } "
        "fragment E on DiscrepancyConnection { edges { node { kind } } }",
        None,
        32,
    ),
    # Priced as if expanded (as the field limit counts), in time linear in the document.
    (_bomb(9), None, 512),
]


@pytest.mark.parametrize("query, variables, expected", COSTS)
def test_the_price_of_an_operation(query, variables, expected):
    document = parse(query)
    operation = next(d for d in document.definitions if d.kind == "operation_definition")
    assert operation_cost(build_schema()._schema, document, operation, variables) == expected
