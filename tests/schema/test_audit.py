"""The audit log over real HTTP: every mutation field, run or refused, becomes one
event with client, partner, operation and outcome, hash-chained by the sealer; ADMIN
reads them newest first with `auditEvents` (the unsealed ones too on request); nobody
else can."""

from __future__ import annotations

import sqlalchemy as sa

from gateway import audit
from gateway.models import AuditEvent
from tests.support.auth import get_token, post_graphql, register_partner

CREATE = 'createPartner(input: {code: "%s", name: "A Sponsor", kind: SPONSOR}) { partner { code } errors { code } }'
EVENTS = """query($first: Int, $after: String, $unsealed: Boolean = false) {
  auditEvents(first: $first, after: $after, includeUnsealed: $unsealed) {
    edges { cursor node { id at clientId partner { code } operation outcome hash sealed sequence } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def _clients(db, live_server):
    admin = await register_partner(db, code="program-office", kind="ADMIN", scopes=["admin"])
    op = await register_partner(
        db, code="seoul-walk", kind="OPERATOR", scopes=["members:read"], unit_code="SWM", won_per_point="1"
    )
    return (
        admin,
        op,
        get_token(live_server.url, admin.client_id, admin.client_secret),
        get_token(live_server.url, op.client_id, op.client_secret),
    )


async def test_run_and_refused_mutations_are_in_the_chained_log(db, live_server):
    admin, op, admin_token, op_token = await _clients(db, live_server)
    url = live_server.url

    ok = post_graphql(url, admin_token, "mutation { " + CREATE % "walk-sponsor" + " }").json()
    assert ok["data"]["createPartner"]["partner"] == {"code": "walk-sponsor"}
    user_error = post_graphql(url, admin_token, "mutation { " + CREATE % "Not A Slug" + " }").json()
    assert user_error["data"]["createPartner"]["errors"] == [{"code": "INVALID_INPUT"}]
    forbidden = post_graphql(url, op_token, "mutation { " + CREATE % "sneaky" + " }").json()
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    too_deep = (
        "mutation { "
        + (CREATE % "deep").replace("partner { code }", "partner { " + "operator { " * 12 + "code" + " }" * 12 + " }")
        + " }"
    )
    assert post_graphql(url, admin_token, too_deep).json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    invalid = post_graphql(url, op_token, "mutation { " + CREATE.replace("errors", "mistakes") % "typo" + " }")
    assert invalid.json()["errors"]
    too_long = "mutation { " + CREATE % "long" + " " * 10 + "# padding\n" * 5001 + " }"
    assert post_graphql(url, op_token, too_long).json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert post_graphql(url, op_token, "{ viewer { clientId } }").status_code == 200  # queries are not audited

    # Recorded at once, chained by the sealer (the `audit.seal` job) afterwards.
    assert post_graphql(url, admin_token, EVENTS, {"first": 10}).json()["data"]["auditEvents"]["edges"] == []
    waiting = post_graphql(url, admin_token, EVENTS, {"first": 10, "unsealed": True}).json()["data"]["auditEvents"]
    assert [(e["node"]["sealed"], e["node"]["sequence"]) for e in waiting["edges"]] == [(False, None)] * 6
    assert await audit.seal(db) == 6

    page = post_graphql(url, admin_token, EVENTS, {"first": 10}).json()["data"]["auditEvents"]

    events = [
        (e["node"]["clientId"], e["node"]["partner"]["code"], e["node"]["operation"], e["node"]["outcome"])
        for e in page["edges"]
    ]
    assert events == [
        (op.client_id, "seoul-walk", "(unparsed mutation)", "LIMIT_EXCEEDED"),
        (op.client_id, "seoul-walk", "createPartner", "GRAPHQL_VALIDATION_FAILED"),
        (admin.client_id, "program-office", "createPartner", "LIMIT_EXCEEDED"),
        (op.client_id, "seoul-walk", "createPartner", "FORBIDDEN"),
        (admin.client_id, "program-office", "createPartner", "INVALID_INPUT"),
        (admin.client_id, "program-office", "createPartner", "OK"),
    ]
    assert not page["pageInfo"]["hasNextPage"]
    async with db.session() as session:
        stored = (await session.execute(sa.select(AuditEvent.hash).order_by(AuditEvent.id.desc()))).scalars().all()
        assert [e["node"]["hash"] for e in page["edges"]] == stored
        assert await audit.verify(session) == (True, None)
    assert [(e["node"]["sealed"], e["node"]["sequence"]) for e in page["edges"]] == [(True, n) for n in range(6, 0, -1)]


async def test_audit_events_are_for_admin_only_and_page_newest_first(db, live_server):
    _, _, admin_token, op_token = await _clients(db, live_server)
    for i in range(3):
        post_graphql(live_server.url, admin_token, "mutation { " + CREATE % f"sponsor-{i}" + " }")
    await audit.seal(db)

    refused = post_graphql(live_server.url, op_token, EVENTS).json()
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    first = post_graphql(live_server.url, admin_token, EVENTS, {"first": 2}).json()["data"]["auditEvents"]
    rest = post_graphql(
        live_server.url, admin_token, EVENTS, {"first": 2, "after": first["pageInfo"]["endCursor"]}
    ).json()["data"]["auditEvents"]
    ids = [e["node"]["id"] for e in first["edges"] + rest["edges"]]
    assert first["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"]
    assert len(ids) == len(set(ids)) == 3
    times = [e["node"]["at"] for e in first["edges"] + rest["edges"]]
    assert times == sorted(times, reverse=True)
    too_many = post_graphql(live_server.url, admin_token, EVENTS, {"first": 501}).json()
    assert too_many["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


async def test_a_refused_batch_leaves_its_mutations_in_the_log(db, live_server):
    import httpx

    admin, _, admin_token, _ = await _clients(db, live_server)
    batch = [
        {"query": "mutation { " + CREATE % "batched" + " }"},
        {"query": "{ viewer { clientId } }"},
    ]
    response = httpx.post(
        live_server.url + "/graphql", json=batch, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"

    page = post_graphql(live_server.url, admin_token, EVENTS, {"unsealed": True}).json()["data"]["auditEvents"]
    assert [(e["node"]["clientId"], e["node"]["operation"], e["node"]["outcome"]) for e in page["edges"]] == [
        (admin.client_id, "createPartner", "LIMIT_EXCEEDED")
    ]
