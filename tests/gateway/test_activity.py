"""Walking becomes mileage: every ActivityStatus, the batch limit, rules, listeners, expiry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from gateway import activity, ledger
from gateway.activity import ActivityIn, record_activities, set_earning_rule
from gateway.errors import LimitExceeded, NotFound
from gateway.expiry import expire_points
from gateway.members import activities, balance, entries, get_member, set_member_status
from gateway.models import ActivityStatus, EntryKind, MemberStatus, OutboxEvent, PartnerKind
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)  # 12:00 in Seoul
TODAY = dt.date(2025, 3, 5)


def walk(member: str, day: dt.date = TODAY, metres: int = 6000, steps: int | None = None, source: str | None = "app"):
    return ActivityIn(member, day, steps if steps is not None else round(metres / 0.75), metres, source)


async def _record(s, op, *records, now=NOW):
    return await record_activities(session=s, operator_id=op.id, records=list(records), now=now)


async def test_a_new_day_is_credited_and_the_member_enrolled(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        [out] = await _record(s, op, walk("kim", metres=6000, steps=8000))
        assert (out.status, out.points_credited, out.reason) == (ActivityStatus.CREDITED, 200, None)
        member = await get_member(s, op.id, "kim")
        assert member is not None and member.status == MemberStatus.ACTIVE
        assert (await balance(s, member)).available == 200
        [entry] = await entries(s, member, limit=5)
        assert (entry.kind, entry.points, entry.reference) == (EntryKind.EARN, 200, out.reference)
        assert "8000 steps" in entry.memo
        [day] = await activities(s, member, limit=5)
        assert (day.date, day.steps, day.distance_meters, day.points_credited, day.source) == (
            TODAY,
            8000,
            6000,
            200,
            "app",
        )
        [event] = (await s.execute(sa.select(OutboxEvent))).scalars().all()
        assert event.type == "activity.credited"
        assert event.payload["pointsCredited"] == "200" and event.payload["memberExternalId"] == "kim"
        await f.check_invariants(s)


async def test_the_walking_day_doubles_the_points(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        [out] = await _record(s, op, walk("kim", dt.date(2025, 2, 11)))
        assert (out.status, out.points_credited) == (ActivityStatus.CREDITED, 400)


async def test_a_day_over_the_cap_is_credited_up_to_the_cap(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        [out] = await _record(s, op, walk("kim", metres=15000))
        assert (out.status, out.points_credited) == (ActivityStatus.CAPPED, 400)
        assert "cap" in out.reason


async def test_a_resent_day_is_unchanged_and_credits_nothing(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        first = await _record(s, op, walk("kim"), walk("lee"))
        again = await _record(s, op, walk("kim"), walk("lee"))
        assert [o.status for o in again] == [ActivityStatus.UNCHANGED] * 2
        assert [o.points_credited for o in again] == [0, 0]
        assert [o.reference for o in again] == [o.reference for o in first]
        assert (await balance(s, await get_member(s, op.id, "kim"))).available == 200


async def test_a_corrected_day_credits_or_debits_only_the_difference(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await _record(s, op, walk("kim", metres=6000))
        [up] = await _record(s, op, walk("kim", metres=9000))
        assert (up.status, up.points_credited) == (ActivityStatus.ADJUSTED, 100)
        [down] = await _record(s, op, walk("kim", metres=3000))
        assert (down.status, down.points_credited) == (ActivityStatus.ADJUSTED, -200)
        member = await get_member(s, op.id, "kim")
        assert (await balance(s, member)).available == 100
        assert [(e.kind, e.points) for e in await entries(s, member, limit=5)] == [
            (EntryKind.ADJUST, -200),
            (EntryKind.ADJUST, 100),
            (EntryKind.EARN, 200),
        ]
        [day] = await activities(s, member, limit=5)
        assert (day.distance_meters, day.points_credited) == (3000, 100)
        await f.check_invariants(s)


async def test_a_downward_correction_takes_back_at_most_what_is_left(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await _record(s, op, walk("kim", metres=6000))
        member = await get_member(s, op.id, "kim")
        wallet = await ledger.wallet_account(s, member)
        shop = await ledger.partner_account(
            s, (await f.partner(s, PartnerKind.MERCHANT, op.id)).id, wallet.unit, "merchant"
        )
        await ledger.post(session=s, kind=EntryKind.REDEEM, legs=[ledger.Leg(wallet, shop, 150)], memo="lunch")
        [down] = await _record(s, op, walk("kim", metres=0, steps=0))
        assert (down.status, down.points_credited) == (ActivityStatus.ADJUSTED, -50)
        assert "150" in down.reason
        assert (await balance(s, member)).available == 0
        await f.check_invariants(s)


async def test_a_day_reported_twice_in_one_batch_is_credited_then_corrected(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        outs = await _record(s, op, walk("kim", metres=6000), walk("kim", metres=3000), walk("kim", metres=3000))
        assert [(o.status, o.points_credited) for o in outs] == [
            (ActivityStatus.CREDITED, 200),
            (ActivityStatus.ADJUSTED, -100),
            (ActivityStatus.UNCHANGED, 0),
        ]
        member = await get_member(s, op.id, "kim")
        assert (await balance(s, member)).available == 100
        assert [e.balance_after for e in await entries(s, member, limit=5)] == [100, 200]
        await f.check_invariants(s)


@pytest.mark.parametrize(
    "record, reason",
    [
        (walk("kim", TODAY + dt.timedelta(days=1)), "future"),
        (walk("kim", TODAY - dt.timedelta(days=401)), "400 days"),
        (walk("kim", metres=90_000, steps=120_000), "steps"),
        (walk("kim", metres=10_000, steps=1_000), "stride"),
        (walk("kim", metres=100, steps=10_000), "stride"),
        (walk("kim", metres=500, steps=0), "zero"),
        (walk("kim", steps=-1), "steps"),
        (walk("", metres=100), "memberExternalId"),
    ],
)
async def test_implausible_or_misdated_records_are_rejected_with_a_reason(db, record, reason):
    async with db.transaction() as s:
        op = await f.operator(s)
        [out] = await _record(s, op, record)
        assert (out.status, out.points_credited) == (ActivityStatus.REJECTED, 0)
        assert reason in out.reason
        assert (await s.execute(sa.select(OutboxEvent))).first() is None


async def test_a_walk_dated_400_days_back_or_just_after_midnight_ahead_is_accepted(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        # 23:58 in Seoul: a phone already at tomorrow (within the clock skew) is accepted.
        late = dt.datetime(2025, 3, 5, 14, 58, tzinfo=dt.UTC)
        outs = await _record(
            s, op, walk("kim", TODAY - dt.timedelta(days=400)), walk("kim", TODAY + dt.timedelta(days=1)), now=late
        )
        assert [o.status for o in outs] == [ActivityStatus.CREDITED, ActivityStatus.CREDITED]


async def test_records_in_a_batch_succeed_or_fail_one_by_one(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await _record(s, op, walk("suspended"))
        await set_member_status(session=s, operator_id=op.id, external_id="suspended", status=MemberStatus.SUSPENDED)
        failing_dates = []

        async def listener(*, session, member, date, old, new):
            if date in failing_dates:
                from gateway.errors import BudgetExhausted

                raise BudgetExhausted("campaign budget exhausted")

        activity.listeners.append(listener)
        try:
            failing_dates.append(TODAY - dt.timedelta(days=2))
            outs = await _record(
                s,
                op,
                walk("a"),
                walk("suspended", TODAY - dt.timedelta(days=1)),
                walk("b", metres=10_000, steps=100),
                walk("c", TODAY - dt.timedelta(days=2)),
                walk("d", metres=3000),
            )
        finally:
            activity.listeners.remove(listener)
        assert [o.status for o in outs] == [
            ActivityStatus.CREDITED,
            ActivityStatus.REJECTED,
            ActivityStatus.REJECTED,
            ActivityStatus.REJECTED,
            ActivityStatus.CREDITED,
        ]
        assert "SUSPENDED" in outs[1].reason and "budget" in outs[3].reason
        assert [o.member_external_id for o in outs] == ["a", "suspended", "b", "c", "d"]
        assert (await balance(s, await get_member(s, op.id, "a"))).available == 200
        assert (await balance(s, await get_member(s, op.id, "d"))).available == 100
        # The rejected record's savepoint took its enrolment, entries and event with it.
        c = await get_member(s, op.id, "c")
        assert c is None or (await balance(s, c)).total == 0
        await f.check_invariants(s)


async def test_listeners_see_the_old_and_new_figures(db):
    seen = []

    async def listener(*, session, member, date, old, new):
        seen.append((member.external_id, date, old, new))

    activity.listeners.append(listener)
    try:
        async with db.transaction() as s:
            op = await f.operator(s)
            await _record(s, op, walk("kim", metres=6000, steps=8000))
            await _record(s, op, walk("kim", metres=6000, steps=8000))  # unchanged: not called
            await _record(s, op, walk("kim", metres=7500, steps=10000))
    finally:
        activity.listeners.remove(listener)
    assert seen == [
        ("kim", TODAY, None, activity.ActivityFigures(8000, 6000, 200)),
        ("kim", TODAY, activity.ActivityFigures(8000, 6000, 200), activity.ActivityFigures(10000, 7500, 250)),
    ]


async def test_more_than_a_thousand_records_are_refused_whole(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        with pytest.raises(LimitExceeded):
            await _record(s, op, *[walk(f"m{i}") for i in range(1001)])
        assert await get_member(s, op.id, "m0") is None
        outs = await _record(s, op, *[walk(f"m{i}", metres=750, steps=1000) for i in range(1000)])
        assert {o.status for o in outs} == {ActivityStatus.CREDITED} and len(outs) == 1000


async def test_operators_have_their_own_rules_and_their_own_members(db):
    async with db.transaction() as s:
        op_a = await f.operator(s)
        op_b = await f.operator(s)
        await set_earning_rule(
            session=s,
            operator_id=op_b.id,
            points_per_km=Decimal("10"),
            daily_cap=50,
            walking_day=0,
            max_steps_per_day=30_000,
        )
        [a] = await _record(s, op_a, walk("kim", dt.date(2025, 2, 11)))
        [b] = await _record(s, op_b, walk("kim", dt.date(2025, 2, 11)))
        assert (a.status, a.points_credited) == (ActivityStatus.CREDITED, 400)
        assert (b.status, b.points_credited) == (ActivityStatus.CAPPED, 50)  # 60 capped, no walking day
        [b_over] = await _record(s, op_b, walk("lee", metres=25_000, steps=31_000))
        assert b_over.status == ActivityStatus.REJECTED
        kim_a, kim_b = await get_member(s, op_a.id, "kim"), await get_member(s, op_b.id, "kim")
        assert kim_a.id != kim_b.id
        assert (await balance(s, kim_b)).unit == op_b.unit_code


async def test_activities_list_newest_first_within_a_date_range(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await _record(s, op, *[walk("kim", TODAY - dt.timedelta(days=d)) for d in range(5)])
        member = await get_member(s, op.id, "kim")
        page = await activities(s, member, limit=2, date_to=TODAY - dt.timedelta(days=1))
        assert [a.date for a in page] == [TODAY - dt.timedelta(days=1), TODAY - dt.timedelta(days=2)]
        rest = await activities(s, member, limit=10, before=page[-1].date, date_from=TODAY - dt.timedelta(days=3))
        assert [a.date for a in rest] == [TODAY - dt.timedelta(days=3)]


async def test_expiry_takes_only_what_is_left_of_the_oldest_lot(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await _record(s, op, walk("kim", metres=6000))  # 200 points, expire after 12 months
        later = NOW + dt.timedelta(days=40)
        await _record(s, op, walk("kim", ledger.seoul_date(later), metres=3000), now=later)  # 100 more
        member = await get_member(s, op.id, "kim")
        wallet = await ledger.wallet_account(s, member)
        shop = await ledger.partner_account(
            s, (await f.partner(s, PartnerKind.MERCHANT, op.id)).id, wallet.unit, "merchant"
        )
        await ledger.post(
            session=s, kind=EntryKind.DONATE, legs=[ledger.Leg(wallet, shop, 150)], memo="gift", now=later
        )

        assert await expire_points(session=s, now=NOW + dt.timedelta(days=364)) == 0
        after_a_year = NOW + dt.timedelta(days=366)
        assert await expire_points(session=s, now=after_a_year) == 50
        assert await expire_points(session=s, now=after_a_year) == 0
        [expired, *_] = await entries(s, member, limit=5)
        assert (expired.kind, expired.points, expired.balance_after) == (EntryKind.EXPIRE, -50, 100)
        assert "2025-03-05" in expired.memo
        assert (await balance(s, member)).available == 100
        assert await expire_points(session=s, now=later + dt.timedelta(days=366)) == 100
        assert (await balance(s, member)).total == 0
        breakage = await ledger.breakage_account(s, op.id)
        assert (await ledger.account_balance(s, breakage)).available == 150
        await f.check_invariants(s)


async def test_held_points_do_not_expire_until_released(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        await _record(s, op, walk("kim", metres=6000))
        member = await get_member(s, op.id, "kim")
        wallet = await ledger.wallet_account(s, member)
        shop = await ledger.partner_account(
            s, (await f.partner(s, PartnerKind.MERCHANT, op.id)).id, wallet.unit, "merchant"
        )
        hold = await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=120, memo="o", now=NOW)
        year = NOW + dt.timedelta(days=400)
        assert await expire_points(session=s, now=year) == 80
        await ledger.void_hold(session=s, hold=hold, now=year)
        assert await expire_points(session=s, now=year) == 120
        b = await balance(s, member)
        assert (b.available, b.held) == (0, 0)
        await f.check_invariants(s)


async def test_unknown_member_status_change_is_not_found(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        with pytest.raises(NotFound):
            await set_member_status(session=s, operator_id=op.id, external_id="nobody", status=MemberStatus.SUSPENDED)
