"""Campaign commitments as walking arrives: kilometres, goals, corrections, the budget cap,
matching, and statements that seal what they show."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from auth.keys import KeyStore
from gateway import campaigns, composition, ledger, statements
from gateway.activity import ActivityIn, record_activities
from gateway.donations import donate_points, visible_donations
from gateway.errors import BudgetExhausted, CampaignNotActive, InsufficientPoints, InvalidInput, NotFound
from gateway.models import OutboxEvent, PartnerKind
from gateway.models.campaigns import Campaign, CampaignDay
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 20, 3, 0, tzinfo=dt.UTC)  # 12:00 in Seoul
MARCH = dt.date(2025, 3, 1)


def day(n: int) -> dt.date:
    return dt.date(2025, 3, n)


def walk(member: str, date: dt.date, metres: int, steps: int | None = None) -> ActivityIn:
    return ActivityIn(member, date, steps if steps is not None else round(metres / 0.75), metres, "app")


class World:
    def __init__(self, s, op, sponsor, beneficiary):
        self.s, self.op, self.sponsor, self.beneficiary = s, op, sponsor, beneficiary

    async def campaign(self, code="spring", now=NOW, **kw) -> Campaign:
        values = dict(
            code=code,
            name="Spring walk",
            sponsor_code=self.sponsor.code,
            beneficiary_code=self.beneficiary.code,
            starts_on=MARCH,
            ends_on=dt.date(2025, 3, 31),
            won_per_km=100,
            goal_steps=None,
            won_per_achiever=0,
            match_ratio=Decimal("1"),
            budget_won=1_000_000,
        )
        values.update(kw)
        return await campaigns.create_campaign(session=self.s, now=now, **values)

    async def join(self, member: str, campaign: Campaign, now=NOW) -> Campaign:
        return await campaigns.join_campaign(
            session=self.s, operator_id=self.op.id, member_external_id=member, campaign_code=campaign.code, now=now
        )

    async def record(self, *walks: ActivityIn):
        outcomes = await record_activities(session=self.s, operator_id=self.op.id, records=list(walks), now=NOW)
        assert all(o.status.value != "REJECTED" for o in outcomes), outcomes
        return outcomes

    async def reload(self, campaign: Campaign) -> Campaign:
        return await campaigns.get_campaign(self.s, campaign.code)

    async def days(self, campaign: Campaign) -> dict[dt.date, tuple[int, int, int]]:
        await campaigns.flush_commitments(self.s)  # the test runs in one transaction
        rows = (await self.s.execute(sa.select(CampaignDay).where(CampaignDay.campaign_id == campaign.id))).scalars()
        out: dict[dt.date, tuple[int, int, int]] = {}
        for r in rows:
            p, m, w = out.get(r.date, (0, 0, 0))
            out[r.date] = (p + r.participants, m + r.distance_m, w + r.distance_won)
        return out

    async def events(self, type_: str) -> list[dict]:
        rows = (
            await self.s.execute(sa.select(OutboxEvent).where(OutboxEvent.type == type_).order_by(OutboxEvent.id))
        ).scalars()
        return [r.payload for r in rows]

    async def sponsor_owes(self) -> int:
        account = await ledger.partner_account(self.s, self.sponsor.id, "KRW", "commitments")
        return -(await ledger.account_balance(self.s, account)).total


@pytest.fixture(autouse=True)
def _commitments_follow_walking():
    """These tests call the services directly: wire the listener as create_app and the CLI do."""
    composition.register_listeners()


@pytest.fixture
async def world(db):
    async with db.transaction() as s:
        op = await f.operator(s, won_per_point="1")
        sponsor = await f.partner(s, PartnerKind.SPONSOR)
        beneficiary = await f.partner(s, PartnerKind.BENEFICIARY)
        yield World(s, op, sponsor, beneficiary)


async def test_kilometres_commit_won_with_the_remainders_carried(signer, world):
    c = await world.campaign()
    await world.join("kim", c)
    await world.record(walk("kim", day(2), 1234), walk("kim", day(3), 1234), walk("kim", day(4), 1234))
    c = await world.reload(c)
    # 3.702 km at 100 won/km: 370 won, not 3 x floor(123.4) = 369.
    assert (c.distance_m, c.distance_won, c.committed_won) == (3702, 370, 370)
    assert campaigns.km(c.distance_m) == Decimal("3.702")
    assert await world.days(c) == {day(2): (1, 1234, 123), day(3): (1, 1234, 123), day(4): (1, 1234, 124)}
    # The ledger gets the commitment when a statement seals it.
    assert await world.sponsor_owes() == 0
    await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(1), period_end=day(19), signer=signer, now=NOW
    )
    assert await world.sponsor_owes() == 370
    await f.check_invariants(world.s)


async def test_walks_count_by_walk_date_and_only_for_participants(world):
    c = await world.campaign(starts_on=day(10), ends_on=day(31))
    await world.join("kim", c)
    await world.record(walk("kim", day(9), 5000), walk("kim", day(10), 5000), walk("lee", day(10), 5000))
    c = await world.reload(c)
    assert (c.distance_m, c.committed_won, c.participants) == (5000, 500, 1)


async def test_reaching_the_goal_commits_the_achievement_once(world):
    c = await world.campaign(goal_steps=10_000, won_per_achiever=5_000)
    await world.join("kim", c)
    await world.record(walk("kim", day(2), 4500, steps=6000))
    assert (await world.reload(c)).achievers == 0
    await world.record(walk("kim", day(3), 3750, steps=5000))
    await world.record(walk("kim", day(4), 3750, steps=5000))
    c = await world.reload(c)
    assert (c.achievers, c.achievement_won, c.distance_won) == (1, 5000, 1200)
    assert c.committed_won == 6200
    sponsor_view, operator_view = await world.events("campaign.goal_reached")
    assert sponsor_view["date"] == day(3).isoformat() and "memberExternalId" not in sponsor_view
    assert operator_view["memberExternalId"] == "kim"


async def test_a_correction_corrects_the_commitment_down_too(world):
    c = await world.campaign(goal_steps=10_000, won_per_achiever=5_000)
    await world.join("kim", c)
    await world.record(walk("kim", day(2), 7500, steps=10_000))
    c = await world.reload(c)
    assert (c.distance_won, c.achievers, c.committed_won) == (750, 1, 5750)
    # The operator corrects the day: fewer steps, shorter distance; the goal is no longer reached.
    await world.record(walk("kim", day(2), 3000, steps=4000))
    c = await world.reload(c)
    assert (c.distance_m, c.distance_won, c.achievers, c.achievement_won, c.committed_won) == (3000, 300, 0, 0, 300)
    assert await world.days(c) == {day(2): (1, 3000, 300)}
    # A correction to nothing takes the participant off that day.
    await world.record(walk("kim", day(2), 0, steps=0))
    assert await world.days(c) == {day(2): (0, 0, 0)}
    await f.check_invariants(world.s)


async def test_the_budget_cap_holds_exactly(world):
    c = await world.campaign(budget_won=1_000, goal_steps=20_000, won_per_achiever=300)
    await world.join("kim", c)
    await world.join("lee", c)
    await world.record(walk("kim", day(2), 8000))
    assert (await world.reload(c)).committed_won == 800
    await world.record(walk("lee", day(2), 5000))  # 500 due, 200 left
    c = await world.reload(c)
    assert (c.distance_m, c.distance_won, c.committed_won) == (13_000, 1000, 1000)
    assert c.budget_exhausted_at is not None
    await world.record(walk("kim", day(3), 15000, steps=20_000))  # km and a goal: nothing left
    c = await world.reload(c)
    assert (c.committed_won, c.achievers, c.achievement_won) == (1000, 1, 0)
    [event] = await world.events("campaign.budget_exhausted")
    assert (event["campaign"], event["committedWon"], event["budgetWon"]) == ("spring", "1000", "1000")
    days = await world.days(c)
    assert sum(w for _, _, w in days.values()) == c.distance_won == 1000
    # A correction down frees budget; the commitment follows the walking, never above the budget.
    await world.record(walk("kim", day(3), 0, steps=0))
    c = await world.reload(c)
    assert c.committed_won <= 1000 and c.achievers == 0
    assert c.committed_won == c.distance_won + c.achievement_won + c.matched_won
    await f.check_invariants(world.s)


async def test_joining_counts_the_walking_already_recorded(world):
    c = await world.campaign(goal_steps=10_000, won_per_achiever=1_000)
    await world.record(walk("kim", day(2), 6000, steps=8000), walk("kim", day(5), 1500, steps=2000))
    c = await world.join("kim", c)
    assert (c.participants, c.distance_m, c.distance_won, c.achievers, c.committed_won) == (1, 7500, 750, 1, 1750)
    again = await world.join("kim", c)
    assert again.participants == 1 and again.committed_won == 1750
    [sponsor_view, _] = await world.events("campaign.goal_reached")
    assert sponsor_view["date"] == day(5).isoformat()


async def test_an_ended_campaign_cannot_be_joined(world):
    c = await world.campaign(starts_on=day(1), ends_on=day(25))
    later = NOW + dt.timedelta(days=10)
    with pytest.raises(CampaignNotActive):
        await campaigns.join_campaign(
            session=world.s, operator_id=world.op.id, member_external_id="kim", campaign_code=c.code, now=later
        )


async def test_campaign_input_is_checked(world):
    with pytest.raises(InvalidInput):
        await world.campaign(code="Bad Code")
    with pytest.raises(InvalidInput):
        await world.campaign(won_per_achiever=100)  # no goal
    with pytest.raises(InvalidInput):
        await world.campaign(ends_on=dt.date(2025, 2, 1), starts_on=dt.date(2025, 1, 1))  # already over
    with pytest.raises(NotFound):
        await world.campaign(beneficiary_code=world.sponsor.code)
    await world.campaign()
    with pytest.raises(InvalidInput):
        await world.campaign()  # the code is taken


async def test_status_follows_the_seoul_calendar(world):
    c = await world.campaign(starts_on=day(21), ends_on=day(22))
    at = lambda d: campaigns.campaign_status(c, d)  # noqa: E731
    assert [at(day(20)), at(day(21)), at(day(22)), at(day(23))] == ["SCHEDULED", "ACTIVE", "ACTIVE", "ENDED"]
    # 2025-03-20 23:30 in UTC is already the 21st in Seoul.
    assert campaigns.seoul_today(dt.datetime(2025, 3, 20, 15, 30, tzinfo=dt.UTC)) == day(21)


# ---------------------------------------------------------------- donations


async def _earn(world, member: str, points: int):
    m = await f.member(world.s, world.op, member)
    await f.earn(world.s, m, points)
    return m


async def test_a_donation_is_matched_by_the_ratio(world):
    c = await world.campaign(match_ratio=Decimal("1.5"))
    await _earn(world, "kim", 1000)
    d = await donate_points(
        session=world.s,
        operator_id=world.op.id,
        member_external_id="kim",
        beneficiary_code=world.beneficiary.code,
        points=333,
        campaign_code=c.code,
        idempotency_key="k1",
        now=NOW,
    )
    assert (d.points, d.won_value, d.matched_won) == (333, 333, 499)  # floor(333 x 1.5)
    c = await world.reload(c)
    assert (c.matched_won, c.committed_won) == (499, 499)
    # Replaying the key returns the same donation and moves nothing.
    again = await donate_points(
        session=world.s,
        operator_id=world.op.id,
        member_external_id="kim",
        beneficiary_code=world.beneficiary.code,
        points=333,
        campaign_code=c.code,
        idempotency_key="k1",
        now=NOW,
    )
    assert again.id == d.id and (await world.reload(c)).committed_won == 499
    await f.check_invariants(world.s)


async def test_matching_stays_within_the_budget(world):
    c = await world.campaign(match_ratio=Decimal("2"), budget_won=500)
    await _earn(world, "kim", 1000)
    d = await donate_points(
        session=world.s,
        operator_id=world.op.id,
        member_external_id="kim",
        beneficiary_code=world.beneficiary.code,
        points=200,
        campaign_code=c.code,
        idempotency_key="a",
        now=NOW,
    )
    assert d.matched_won == 400
    d = await donate_points(
        session=world.s,
        operator_id=world.op.id,
        member_external_id="kim",
        beneficiary_code=world.beneficiary.code,
        points=200,
        campaign_code=c.code,
        idempotency_key="b",
        now=NOW,
    )
    assert d.matched_won == 100  # cut to the budget
    assert (await world.reload(c)).committed_won == 500
    with pytest.raises(BudgetExhausted):
        await donate_points(
            session=world.s,
            operator_id=world.op.id,
            member_external_id="kim",
            beneficiary_code=world.beneficiary.code,
            points=10,
            campaign_code=c.code,
            idempotency_key="c",
            now=NOW,
        )


async def test_a_donation_values_points_at_the_unit_and_needs_them(world):
    op = await f.operator(world.s, won_per_point="0.5")
    m = await f.member(world.s, op, "park")
    await f.earn(world.s, m, 101)
    d = await donate_points(
        session=world.s,
        operator_id=op.id,
        member_external_id="park",
        beneficiary_code=world.beneficiary.code,
        points=101,
        campaign_code=None,
        idempotency_key="x",
        now=NOW,
    )
    assert (d.won_value, d.matched_won, d.campaign_id) == (50, 0, None)
    with pytest.raises(InsufficientPoints):
        await donate_points(
            session=world.s,
            operator_id=op.id,
            member_external_id="park",
            beneficiary_code=world.beneficiary.code,
            points=1,
            campaign_code=None,
            idempotency_key="y",
            now=NOW,
        )
    ids = (
        (await world.s.execute(visible_donations(partner_id=world.beneficiary.id, partner_kind="BENEFICIARY")))
        .scalars()
        .all()
    )
    assert [x.id for x in ids] == [d.id]
    assert (
        await world.s.execute(visible_donations(partner_id=world.sponsor.id, partner_kind="SPONSOR"))
    ).scalars().all() == []


async def test_a_donation_outside_the_campaign_dates_is_refused(world):
    c = await world.campaign(starts_on=day(25), ends_on=day(31))
    await _earn(world, "kim", 100)
    with pytest.raises(CampaignNotActive):
        await donate_points(
            session=world.s,
            operator_id=world.op.id,
            member_external_id="kim",
            beneficiary_code=world.beneficiary.code,
            points=10,
            campaign_code=c.code,
            idempotency_key="k",
            now=NOW,
        )


# ---------------------------------------------------------------- statements


@pytest.fixture
async def signer(db, settings):
    store = KeyStore(db=db, settings=settings)
    await store.ensure_keys()
    return store


async def test_a_closed_period_is_sealed_and_late_walking_goes_to_the_next_statement(signer, world):
    c = await world.campaign(goal_steps=9_000, won_per_achiever=700, match_ratio=Decimal("1"))
    await world.join("kim", c)
    await world.join("lee", c)
    await world.record(walk("kim", day(2), 4321, steps=5000), walk("lee", day(3), 6000, steps=9000))
    await _earn(world, "kim", 100)
    await donate_points(
        session=world.s,
        operator_id=world.op.id,
        member_external_id="kim",
        beneficiary_code=world.beneficiary.code,
        points=50,
        campaign_code=c.code,
        idempotency_key="d",
        now=NOW,
    )

    first = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(1), period_end=day(10), signer=signer, now=NOW
    )
    doc = json.loads(first.document)
    assert doc["provisional"] is False and doc["currency"] == "KRW"
    [line] = doc["lines"]
    assert line == {
        "campaign": "spring",
        "beneficiary": world.beneficiary.code,
        "participants": "2",
        "achievers": "1",
        "distanceKm": "10.321",
        "distanceWon": "1032",
        "achievementWon": "700",
        "matchedWon": "0",
        "totalWon": "1732",
    }  # the match was made on the 20th, outside the period
    assert [(d["date"], d["distanceWon"]) for d in doc["days"]] == [("2025-03-02", "432"), ("2025-03-03", "600")]
    assert sum(int(d["distanceWon"]) for d in doc["days"]) == int(line["distanceWon"])
    assert doc["totalWon"] == "1732"
    assert await signer.verify_detached(first.document, first.signature)

    # Late walking for the 4th, after the period was issued: the issued statement never changes.
    await world.record(walk("kim", day(4), 1000))
    again = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(1), period_end=day(10), signer=signer, now=NOW
    )
    assert (again.id, again.document, again.signature) == (first.id, first.document, first.signature)

    # Overlapping periods are refused; the next period takes the late walking under its own date.
    with pytest.raises(InvalidInput):
        await statements.donation_statement(
            session=world.s,
            sponsor_id=world.sponsor.id,
            period_start=day(5),
            period_end=day(15),
            signer=signer,
            now=NOW,
        )
    second = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(11), period_end=day(19), signer=signer, now=NOW
    )
    doc2 = json.loads(second.document)
    [line2] = doc2["lines"]
    assert (line2["distanceWon"], line2["matchedWon"], line2["totalWon"]) == ("100", "0", "100")
    assert [(d["date"], d["distanceKm"], d["distanceWon"]) for d in doc2["days"]] == [("2025-03-04", "1", "100")]

    # The open rest of the month is provisional and carries the match.
    open_part = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(20), period_end=day(31), signer=signer, now=NOW
    )
    doc3 = json.loads(open_part.document)
    assert doc3["provisional"] is True and doc3["lines"][0]["matchedWon"] == "50"
    c = await world.reload(c)
    assert c.committed_won == sum(int(json.loads(x.document)["totalWon"]) for x in (first, second, open_part))
    # In the ledger: the two sealed statements' walking, and the match, posted with its donation.
    assert await world.sponsor_owes() == 1732 + 100 + 50 == c.committed_won
    await f.check_invariants(world.s)


async def test_a_capped_campaign_cuts_its_days_with_it(signer, world):
    c = await world.campaign(budget_won=1000)
    for n, who in enumerate(["a", "b", "c"]):
        await world.join(who, c)
    await world.record(walk("a", day(2), 4000), walk("b", day(3), 4000), walk("c", day(4), 4000))
    st = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(1), period_end=day(19), signer=signer, now=NOW
    )
    doc = json.loads(st.document)
    assert [d["distanceWon"] for d in doc["days"]] == ["400", "400", "200"]
    assert doc["lines"][0]["distanceWon"] == "1000" and doc["lines"][0]["distanceKm"] == "12"


async def test_participants_count_those_who_walked_in_the_period(signer, world):
    short = await world.campaign(code="short", starts_on=day(1), ends_on=day(15), now=NOW - dt.timedelta(days=10))
    for who in ("a", "b", "c"):
        await world.join(who, short, now=NOW - dt.timedelta(days=10))
    await world.record(walk("a", day(2), 3000), walk("b", day(9), 3000), walk("c", day(9), 0, steps=0))
    whole = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(1), period_end=day(19), signer=signer, now=NOW
    )
    assert [(l.campaign, l.participants) for l in whole.lines] == [("short", 2)]  # the whole campaign
    part = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(20), period_end=day(31), signer=signer, now=NOW
    )
    assert part.lines == ()  # the campaign ended before the period
    other = await world.campaign(code="long")
    await world.join("a", other)
    await world.join("b", other)
    first_week = await statements.donation_statement(
        session=world.s, sponsor_id=world.sponsor.id, period_start=day(20), period_end=day(25), signer=signer, now=NOW
    )
    assert [(l.campaign, l.participants) for l in first_week.lines] == [("long", 0)]


async def test_a_record_another_listener_rejects_commits_nothing(db):
    from gateway import activity
    from gateway.errors import ImplausibleActivity

    async def refuse_lee(*, session, member, date, old, new):
        if member.external_id.startswith("lee"):
            raise ImplausibleActivity("refused by a test listener")

    async with db.transaction() as s:
        op = await f.operator(s)
        sponsor = await f.partner(s, PartnerKind.SPONSOR)
        beneficiary = await f.partner(s, PartnerKind.BENEFICIARY)
        world = World(s, op, sponsor, beneficiary)
        c = await world.campaign(goal_steps=5_000, won_per_achiever=1_000)
        for who in ("lee-1", "kim", "lee-2"):
            await world.join(who, c)
    activity.listeners.append(refuse_lee)
    try:
        async with db.transaction() as s:
            # The first record is refused while the batch's working set is being built, the
            # third after it exists: neither may leave anything behind.
            outcomes = await record_activities(
                session=s,
                operator_id=op.id,
                now=NOW,
                records=[
                    walk("lee-1", day(2), 4000, steps=6000),
                    walk("kim", day(2), 4000, steps=6000),
                    walk("lee-2", day(2), 4000, steps=6000),
                ],
            )
        assert [o.status.value for o in outcomes] == ["REJECTED", "CREDITED", "REJECTED"]
    finally:
        activity.listeners.remove(refuse_lee)
    async with db.transaction() as s:
        c = await campaigns.get_campaign(s, "spring")
        assert (c.distance_m, c.distance_won, c.achievers, c.committed_won) == (4000, 400, 1, 1400)
        rows = (await s.execute(sa.select(CampaignDay).where(CampaignDay.campaign_id == c.id))).scalars().all()
        assert [(r.date, r.participants, r.distance_m, r.distance_won, r.achievers) for r in rows] == [
            (day(2), 1, 4000, 400, 1)
        ]
