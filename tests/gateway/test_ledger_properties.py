"""Property: whatever happens (earn, correct up and down, hold, post in full or in part, void,
spend, expire holds and points, suspend and reinstate members, time passing), the ledger stays sound:

* the entries of every transaction sum to zero per unit, and so do all balances of a unit;
* every account's total is the sum of its entries, its held part the sum of their held changes,
  and the newest entry's balance_after is the total;
* no wallet is ever below zero, and its lots add up to its available and held points;
* an operation refused with a business error changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os

import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gateway import ledger
from gateway.activity import ActivityIn, record_activities
from gateway.db import Database
from gateway.errors import DomainError
from gateway.expiry import expire_points
from gateway.members import set_member_status
from gateway.models import Account, EntryKind, Hold, Member, MemberStatus, PartnerKind
from tests.gateway import factories as f

START = dt.datetime(2025, 1, 20, 1, 0, tzinfo=dt.UTC)
MEMBERS = 3

member_ix = st.integers(0, MEMBERS - 1)
operation = st.one_of(
    st.tuples(st.just("earn"), member_ix, st.integers(1, 500)),
    st.tuples(
        st.just("report"),
        st.lists(st.tuples(member_ix, st.integers(0, 3), st.integers(0, 20_000)), min_size=1, max_size=4),
    ),
    st.tuples(st.just("hold"), member_ix, st.integers(1, 600)),
    st.tuples(st.just("post"), st.integers(0, 9), st.integers(0, 100)),
    st.tuples(st.just("void"), st.integers(0, 9)),
    st.tuples(st.just("spend"), member_ix, st.integers(1, 400)),
    st.tuples(st.just("tick"), st.sampled_from([0.001, 0.02, 1, 30, 120, 200])),
    st.tuples(st.just("expire_holds")),
    st.tuples(st.just("expire_points")),
    st.tuples(st.just("status"), member_ix, st.sampled_from([MemberStatus.ACTIVE, MemberStatus.SUSPENDED])),
)


async def _snapshot(s) -> dict[int, tuple[int, int]]:
    rows = await s.execute(sa.select(Account.id, Account.available, Account.held))
    # Accounts still at zero do not count: looking a wallet up may create it, empty.
    return {r.id: (r.available, r.held) for r in rows if (r.available, r.held) != (0, 0)}


async def _scenario(url: str, ops: list[tuple]) -> None:
    db = Database(url)
    try:
        async with db.transaction() as s:
            op = await f.operator(s)
            merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id)
            members = [await f.member(s, op) for _ in range(MEMBERS)]
            member_ids = [m.id for m in members]
            shop_id = (await ledger.partner_account(s, merchant.id, op.unit_code, "merchant")).id
        now = START
        holds: list[int] = []
        for step in ops:
            name = step[0]
            if name == "tick":
                now += dt.timedelta(days=step[1])
                continue
            async with db.transaction() as s:
                before = await _snapshot(s)
                try:
                    await _apply(s, name, step, op, member_ids, shop_id, holds, now)
                except DomainError:
                    # Refused inside this very transaction: the service itself left no trace.
                    assert await _snapshot(s) == before, f"{step} failed but changed balances"
        async with db.transaction() as s:
            await f.check_invariants(s)
    finally:
        await db.dispose()


async def _apply(s, name, step, op, member_ids, shop_id, holds, now) -> None:
    async def wallet(ix):
        return await ledger.wallet_account(s, await s.get(Member, member_ids[ix]))

    if name == "earn":
        await f.earn(s, await s.get(Member, member_ids[step[1]]), step[2], now=now)
    elif name == "report":  # one batch; may name a member and day twice (credit, then correct)
        records = []
        for ix, days_back, metres in step[1]:
            member = await s.get(Member, member_ids[ix])
            day = ledger.seoul_date(now) - dt.timedelta(days=days_back)
            records.append(ActivityIn(member.external_id, day, metres * 4 // 3, metres))
        await record_activities(session=s, operator_id=op.id, records=records, now=now)
    elif name == "hold":
        hold = await ledger.create_hold(
            session=s,
            debit=await wallet(step[1]),
            credit=await ledger.get_account(s, shop_id),
            amount=step[2],
            memo="order",
            expires_at=now + dt.timedelta(minutes=15),
            now=now,
        )
        holds.append(hold.id)
    elif name in ("post", "void") and holds:
        hold = await s.get(Hold, holds[step[1] % len(holds)])
        if name == "void":
            await ledger.void_hold(session=s, hold=hold, now=now)
        else:
            amount = max(1, hold.amount * step[2] // 100)
            await ledger.post_hold(session=s, hold=hold, amount=amount, now=now)
    elif name == "spend":
        await ledger.post(
            session=s,
            kind=EntryKind.DONATE,
            memo="gift",
            now=now,
            legs=[ledger.Leg(await wallet(step[1]), await ledger.get_account(s, shop_id), step[2])],
        )
    elif name == "expire_holds":
        await ledger.expire_holds(session=s, now=now)
    elif name == "status":
        member = await s.get(Member, member_ids[step[1]])
        await set_member_status(session=s, operator_id=op.id, external_id=member.external_id, status=step[2])
    elif name == "expire_points":
        await expire_points(session=s, now=now)


@hsettings(
    max_examples=int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "30")),  # raise it to hunt for bugs
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=12))
def test_the_ledger_stays_balanced_whatever_happens(database_url, ops):
    asyncio.run(_scenario(database_url, ops))
