"""The redemptions list loads its partners in batches: the SQL count does not grow with the rows."""

from __future__ import annotations

import datetime as dt

from gateway import redemption as svc
from gateway.codes import issue_member_code
from gateway.models import MemberCodePurpose, PartnerKind
from tests.gateway import factories as f
from tests.schema.test_dataloaders import StatementCounter
from tests.support.schema import execute, principal

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)
LIST = """query { redemptions(first: 50) { edges { node { id status points merchant { code operator { code } }
  memberOperator { code unit { code } } } } } }"""


async def _redemptions(db, n: int):
    async with db.transaction() as s:
        op = await f.operator(s)
        other = await f.operator(s)
        await f.agreement(s, op, other)
        members = [await f.member(s, op), await f.member(s, other)]
        for m in members:
            await f.earn(s, m, 100_000, now=NOW)
        shops = [await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id) for _ in range(3)]
    for i in range(n):
        member, shop = members[i % 2], shops[i % 3]
        async with db.transaction() as s:
            code = await issue_member_code(
                session=s,
                operator_id=member.operator_id,
                external_id=member.external_id,
                purpose=MemberCodePurpose.PAYMENT,
                now=NOW,
            )
            await svc.authorize(
                session=s,
                merchant_id=shop.id,
                code=code.code,
                amount_won=10,
                order_id=f"o-{i}",
                idempotency_key=f"k-{i}",
                capture=i % 2 == 0,
                now=NOW,
            )
    return op


async def test_listing_redemptions_costs_the_same_for_3_or_12_rows(db, settings):
    counts = []
    for n in (3, 12):
        op = await _redemptions(db, n)
        who = principal(op.id, op.code, "OPERATOR", "redemptions:read")
        with StatementCounter(db) as counter:
            result = await execute(db, settings, who, LIST)
        assert result.errors is None, result.errors
        assert len(result.data["redemptions"]["edges"]) == n
        counts.append(counter.count)
    assert counts[0] == counts[1], counts


async def test_admin_sees_every_redemption_and_a_sponsor_none(db, settings):
    op = await _redemptions(db, 4)
    admin = principal(0, "program-office", "ADMIN")
    result = await execute(db, settings, admin, "query { redemptions { edges { node { id } } } }")
    assert result.errors is None and len(result.data["redemptions"]["edges"]) == 4
    sponsor = principal(op.id + 1000, "a-sponsor", "SPONSOR", "redemptions:read")
    result = await execute(db, settings, sponsor, "query { redemptions { edges { node { id } } } }")
    assert result.errors[0].extensions["code"] == "FORBIDDEN"
