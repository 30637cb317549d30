"""Campaign and donation lists load their related rows in batches: the SQL count does not
grow with the rows."""

from __future__ import annotations

from decimal import Decimal

from gateway import campaigns
from gateway.donations import donate_points
from gateway.models import PartnerKind
from tests.gateway import factories as f
from tests.schema.test_dataloaders import StatementCounter
from tests.support.schema import execute, principal

DONATIONS = """{ donations(first: 500) { edges { node {
  reference points wonValue matchedWon operator { code } beneficiary { code }
  campaign { code sponsor { code } beneficiary { code } } } } } }"""
CAMPAIGNS = (
    "{ campaigns(first: 500) { edges { node { code status committedWon sponsor { code } beneficiary { code } } } } }"
)


async def _donate(db, world, n: int, start: int) -> None:
    async with db.transaction() as s:
        for i in range(start, start + n):
            await donate_points(
                session=s,
                operator_id=world["op"],
                member_external_id="kim",
                beneficiary_code=world["beneficiary"],
                points=1,
                campaign_code=world["campaigns"][i % len(world["campaigns"])] if i % 3 else None,
                idempotency_key=f"k-{i}",
            )


async def _world(db) -> dict:
    async with db.transaction() as s:
        op = await f.operator(s)
        sponsor = await f.partner(s, PartnerKind.SPONSOR)
        beneficiary = await f.partner(s, PartnerKind.BENEFICIARY)
        codes = []
        for n in range(4):
            c = await campaigns.create_campaign(
                session=s,
                code=f"camp-{n}",
                name=f"Campaign {n}",
                sponsor_code=sponsor.code,
                beneficiary_code=beneficiary.code,
                starts_on=campaigns.seoul_today(),
                ends_on=campaigns.seoul_today(),
                won_per_km=100,
                goal_steps=None,
                won_per_achiever=0,
                match_ratio=Decimal("1"),
                budget_won=10**9,
            )
            codes.append(c.code)
        member = await f.member(s, op, "kim")
        await f.earn(s, member, 1000)
        return {
            "op": op.id,
            "op_code": op.code,
            "sponsor": sponsor.id,
            "beneficiary": beneficiary.code,
            "campaigns": codes,
        }


async def _count(db, settings, who, query) -> tuple[int, dict]:
    with StatementCounter(db) as counter:
        result = await execute(db, settings, who, query)
    assert result.errors is None, result.errors
    return counter.count, result.data


async def test_donation_list_loads_partners_and_campaigns_in_batches(db, settings):
    world = await _world(db)
    operator = principal(world["op"], world["op_code"], "OPERATOR", "donations:read")
    await _donate(db, world, 3, 0)
    small, data = await _count(db, settings, operator, DONATIONS)
    assert len(data["donations"]["edges"]) == 3
    await _donate(db, world, 20, 3)
    large, data = await _count(db, settings, operator, DONATIONS)
    edges = data["donations"]["edges"]
    assert len(edges) == 23 and sum(1 for e in edges if e["node"]["campaign"]) == 15
    assert 0 < large == small


async def test_campaign_list_loads_sponsors_and_beneficiaries_in_one_batch(db, settings):
    world = await _world(db)
    sponsor = principal(world["sponsor"], "sponsor", "SPONSOR", "donations:read")
    small, data = await _count(db, settings, sponsor, CAMPAIGNS)
    assert [e["node"]["code"] for e in data["campaigns"]["edges"]] == ["camp-3", "camp-2", "camp-1", "camp-0"]
    async with db.transaction() as s:
        sponsor_code = (await s.get(f.Partner, world["sponsor"])).code
        for n in range(4, 16):
            other = await f.partner(s, PartnerKind.BENEFICIARY)
            await campaigns.create_campaign(
                session=s,
                code=f"camp-{n}",
                name=f"Campaign {n}",
                sponsor_code=sponsor_code,
                beneficiary_code=other.code,
                starts_on=campaigns.seoul_today(),
                ends_on=campaigns.seoul_today(),
                won_per_km=1,
                goal_steps=None,
                won_per_achiever=0,
                match_ratio=Decimal("0"),
                budget_won=1,
            )
    large, data = await _count(db, settings, sponsor, CAMPAIGNS)
    assert len(data["campaigns"]["edges"]) == 16
    assert 0 < large == small


async def test_node_answers_another_tenants_campaign_and_donation_as_unknown(db, settings):
    world = await _world(db)
    await _donate(db, world, 2, 1)  # both on campaigns
    sponsor = principal(world["sponsor"], "sponsor", "SPONSOR", "donations:read")
    async with db.transaction() as s:
        rival = await f.partner(s, PartnerKind.SPONSOR)
    stranger = principal(rival.id, rival.code, "SPONSOR", "donations:read")
    listing = await execute(
        db, settings, sponsor, "{ campaigns { edges { node { id code } } } donations { edges { node { id } } } }"
    )
    campaign_id = listing.data["campaigns"]["edges"][0]["node"]["id"]
    donation_id = listing.data["donations"]["edges"][0]["node"]["id"]
    query = """query($c: ID!, $d: ID!) {
      c: node(id: $c) { ... on Campaign { code } }
      d: node(id: $d) { ... on Donation { points campaign { code } } }
    }"""
    own = await execute(db, settings, sponsor, query, {"c": campaign_id, "d": donation_id})
    assert own.errors is None and own.data["c"]["code"] == "camp-3" and own.data["d"]["points"] == "1"
    other = await execute(db, settings, stranger, query, {"c": campaign_id, "d": donation_id})
    assert other.errors is None and other.data == {"c": None, "d": None}
