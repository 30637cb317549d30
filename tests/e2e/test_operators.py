"""Operators over real HTTP: report walking, read balances and history, issue codes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.support.auth import GatewayClient, register_partner

SEOUL = ZoneInfo("Asia/Seoul")
OPERATOR_SCOPES = ["members:read", "activity:write", "codes:issue"]

RECORD = """
mutation($input: RecordActivitiesInput!) {
  recordActivities(input: $input) {
    results { memberExternalId date status pointsCredited reason }
    errors { code message field }
  }
}"""

MEMBER = """
query($id: String!, $op: String) {
  member(externalId: $id, operatorCode: $op) {
    id externalId status operator { code }
    balance { unit available held total }
    activities(first: 10) { edges { node { date steps distanceMeters pointsCredited source } } }
    entries(first: 10) { edges { node { kind points unit balanceAfter reference memo } } pageInfo { hasNextPage } }
  }
}"""


def today() -> dt.date:
    return dt.datetime.now(SEOUL).date()


def ordinary_day(back: int) -> dt.date:
    """A date `back` days ago or more that is not the walking day (11th), so no multiplier applies."""
    day = today() - dt.timedelta(days=back)
    return day if day.day != 11 else day - dt.timedelta(days=1)


@pytest.fixture
async def seoul(db):
    return await register_partner(
        db, code="seoul-walking", kind="OPERATOR", scopes=OPERATOR_SCOPES, unit_code="SWM", won_per_point="1"
    )


@pytest.fixture
async def busan(db):
    return await register_partner(
        db, code="busan-steps", kind="OPERATOR", scopes=OPERATOR_SCOPES, unit_code="BSP", won_per_point="0.5"
    )


def walk(member: str, day: dt.date, steps: int, meters: int, source: str | None = "app") -> dict:
    return {
        "memberExternalId": member,
        "date": day.isoformat(),
        "steps": steps,
        "distanceMeters": meters,
        "source": source,
    }


def record(gw: GatewayClient, *walks: dict) -> dict:
    return gw.data(RECORD, input={"activities": list(walks)})["recordActivities"]


async def test_every_activity_status_over_http(live_server, seoul):
    gw = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    day = ordinary_day(3)
    first = record(
        gw,
        walk("m-1", day, 8000, 6000),
        walk("m-2", day, 60000, 45000),  # far past the daily cap
        walk("m-3", day, 1000, 9000),  # a 9 m stride: implausible
        walk("m-4", today() + dt.timedelta(days=3), 8000, 6000),  # in the future
    )
    assert first["errors"] == []
    statuses = [r["status"] for r in first["results"]]
    assert statuses == ["CREDITED", "CAPPED", "REJECTED", "REJECTED"]
    credited = int(first["results"][0]["pointsCredited"])
    assert credited > 0
    assert first["results"][2]["reason"] and first["results"][3]["reason"]
    assert int(first["results"][2]["pointsCredited"]) == 0

    again = record(gw, walk("m-1", day, 8000, 6000))["results"][0]
    assert (again["status"], int(again["pointsCredited"])) == ("UNCHANGED", 0)

    up = record(gw, walk("m-1", day, 12000, 9000))["results"][0]
    assert up["status"] == "ADJUSTED" and int(up["pointsCredited"]) > 0
    down = record(gw, walk("m-1", day, 4000, 3000))["results"][0]
    assert down["status"] == "ADJUSTED" and int(down["pointsCredited"]) < 0

    member = gw.data(MEMBER, id="m-1")["member"]
    total = credited + int(up["pointsCredited"]) + int(down["pointsCredited"])
    assert member["balance"] == {"unit": "SWM", "available": str(total), "held": "0", "total": str(total)}
    entries = [e["node"] for e in member["entries"]["edges"]]
    assert [int(e["balanceAfter"]) for e in entries][0] == total
    # Newest first, and each balanceAfter follows from the one before it.
    for newer, older in zip(entries, entries[1:]):
        assert int(newer["balanceAfter"]) == int(older["balanceAfter"]) + int(newer["points"])
    assert {e["kind"] for e in entries} <= {"EARN", "ADJUST"}
    assert member["activities"]["edges"][0]["node"] == {
        "date": day.isoformat(),
        "steps": 4000,
        "distanceMeters": 3000,
        "pointsCredited": str(total),
        "source": "app",
    }
    rejected = gw.data(MEMBER, id="m-3")["member"]
    assert rejected is None or rejected["balance"]["total"] == "0"


async def test_a_batch_over_one_thousand_is_refused_whole_and_changes_nothing(live_server, seoul):
    gw = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    day = ordinary_day(2)
    walks = [walk(f"bulk-{i}", day, 5000, 4000) for i in range(1001)]
    result = record(gw, *walks)
    assert result["results"] == []
    assert [e["code"] for e in result["errors"]] == ["LIMIT_EXCEEDED"]
    assert gw.data(MEMBER, id="bulk-0")["member"] is None

    ok = record(gw, *walks[:1000])
    assert ok["errors"] == [] and len(ok["results"]) == 1000
    assert {r["status"] for r in ok["results"]} == {"CREDITED"}


async def test_records_succeed_or_fail_one_by_one(live_server, seoul):
    gw = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    day = ordinary_day(4)
    result = record(gw, walk("a", day, 8000, 6000), walk("b", day, -5, 100), walk("c", day, 7000, 5000))
    assert [r["status"] for r in result["results"]] == ["CREDITED", "REJECTED", "CREDITED"]


async def test_an_operator_is_refused_another_operators_member(live_server, seoul, busan):
    mine = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    theirs = GatewayClient(live_server.url, busan.client_id, busan.client_secret)
    record(mine, walk("shared-id", ordinary_day(2), 8000, 6000))
    member = mine.data(MEMBER, id="shared-id")["member"]
    assert member["operator"]["code"] == "seoul-walking"

    # The other operator finds nothing: not by its own scope, not by naming the owner, not by id.
    assert theirs.data(MEMBER, id="shared-id")["member"] is None
    assert theirs.data(MEMBER, id="shared-id", op="seoul-walking")["member"] is None
    assert theirs.data("query($id: ID!) { node(id: $id) { id } }", id=member["id"])["node"] is None
    status = theirs.data(
        "mutation($i: SetMemberStatusInput!) { setMemberStatus(input: $i) { member { id } errors { code } } }",
        i={"memberExternalId": "shared-id", "status": "SUSPENDED"},
    )["setMemberStatus"]
    assert status == {"member": None, "errors": [{"code": "NOT_FOUND"}]}
    assert mine.data(MEMBER, id="shared-id")["member"]["status"] == "ACTIVE"


async def test_a_merchant_token_is_forbidden_to_read_members(live_server, db, seoul):
    shop = await register_partner(
        db, code="mangwon-bakery", kind="MERCHANT", scopes=["redemptions:read"], operator_code="seoul-walking"
    )
    gw = GatewayClient(live_server.url, shop.client_id, shop.client_secret)
    body = gw.gql('{ member(externalId: "x") { id } }')
    assert body["data"] is None or body["data"].get("member") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


async def test_member_codes_are_sixteen_digits_single_purpose_and_refused_for_suspended_members(live_server, seoul):
    gw = GatewayClient(live_server.url, seoul.client_id, seoul.client_secret)
    record(gw, walk("m-code", ordinary_day(2), 8000, 6000))
    issue = "mutation($i: IssueMemberCodeInput!) { issueMemberCode(input: $i) { memberCode { code purpose expiresAt } errors { code } } }"
    one = gw.data(issue, i={"memberExternalId": "m-code", "purpose": "PAYMENT"})["issueMemberCode"]
    two = gw.data(issue, i={"memberExternalId": "m-code", "purpose": "PAYMENT"})["issueMemberCode"]
    code = one["memberCode"]["code"]
    assert len(code) == 16 and code.isdigit() and code != two["memberCode"]["code"]
    expires = dt.datetime.fromisoformat(one["memberCode"]["expiresAt"])
    assert dt.timedelta(seconds=150) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=181)

    suspended = gw.data(
        "mutation($i: SetMemberStatusInput!) { setMemberStatus(input: $i) { member { status } errors { code } } }",
        i={"memberExternalId": "m-code", "status": "SUSPENDED"},
    )["setMemberStatus"]
    assert suspended == {"member": {"status": "SUSPENDED"}, "errors": []}
    refused = gw.data(issue, i={"memberExternalId": "m-code", "purpose": "PAYMENT"})["issueMemberCode"]
    assert refused == {"memberCode": None, "errors": [{"code": "MEMBER_SUSPENDED"}]}
    earn = record(gw, walk("m-code", ordinary_day(1), 8000, 6000))["results"][0]
    assert earn["status"] == "REJECTED" and int(earn["pointsCredited"]) == 0
