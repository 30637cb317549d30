"""The ledger: postings, holds, balances, lots, references, no double spend."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa

from gateway import ledger
from gateway.errors import (
    AmountExceedsAuthorized,
    InsufficientPoints,
    InvalidInput,
    InvalidState,
    MemberSuspended,
)
from gateway.members import balance, entries, set_member_status
from gateway.models import EntryKind, HoldStatus, LedgerEntry, MemberStatus, PartnerKind
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)


async def _shop(session, op):
    merchant = await f.partner(session, PartnerKind.MERCHANT, operator_id=op.id)
    return await ledger.partner_account(session, merchant.id, op.unit_code, "merchant")


async def test_earned_points_appear_in_the_wallet_and_every_unit_balances(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        txn = await f.earn(s, m, 200, now=NOW)
        assert txn.reference.startswith("mv_") and len(txn.reference) == 23
        b = await balance(s, m)
        assert (b.unit, b.available, b.held, b.total) == (op.unit_code, 200, 0, 200)
        issuance = await ledger.issuance_account(s, op.id)
        assert issuance.available == -200
        [entry] = await entries(s, m, limit=10)
        assert (entry.kind, entry.points, entry.balance_after, entry.reference, entry.memo) == (
            EntryKind.EARN,
            200,
            200,
            txn.reference,
            "walked",
        )
        await f.check_invariants(s)


async def test_a_hold_larger_than_available_is_refused_and_changes_nothing(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 100, now=NOW)
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        with pytest.raises(InsufficientPoints):
            await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=101, memo="too much", now=NOW)
        with pytest.raises(InsufficientPoints):
            await ledger.post(session=s, kind=EntryKind.DONATE, legs=[ledger.Leg(wallet, shop, 101)], memo="x", now=NOW)
        b = await balance(s, m)
        assert (b.available, b.held) == (100, 0)
        assert len(await entries(s, m, limit=10)) == 1
        await f.check_invariants(s)


async def test_partial_capture_releases_the_rest(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 500, now=NOW)
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        hold = await ledger.create_hold(
            session=s,
            debit=wallet,
            credit=shop,
            amount=300,
            memo="order A-17",
            expires_at=NOW + dt.timedelta(minutes=15),
            now=NOW,
        )
        b = await balance(s, m)
        assert (b.available, b.held, b.total) == (200, 300, 500)
        txn = await ledger.post_hold(session=s, hold=hold, amount=200, now=NOW)
        assert txn.reference == hold.reference
        assert (hold.status, hold.posted_amount) == (HoldStatus.POSTED, 200)
        b = await balance(s, m)
        assert (b.available, b.held, b.total) == (300, 0, 300)
        assert (await ledger.account_balance(s, shop)).available == 200
        newest = await entries(s, m, limit=10)
        assert [(e.kind, e.points, e.held_change, e.balance_after) for e in newest] == [
            (EntryKind.RELEASE, 0, -100, 300),
            (EntryKind.REDEEM, -200, -200, 300),
            (EntryKind.REDEEM, 0, 300, 500),
            (EntryKind.EARN, 500, 0, 500),
        ]
        assert {e.reference for e in newest[:3]} == {hold.reference}
        # A refund is a new posting in the same movement, never a change to the old entries.
        await ledger.post(
            session=s,
            kind=EntryKind.REFUND,
            reference=hold.reference,
            legs=[ledger.Leg(shop, wallet, 50)],
            memo="refund",
            now=NOW,
        )
        assert (await balance(s, m)).available == 350
        await f.check_invariants(s)


async def test_a_hold_resolves_exactly_once(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 500, now=NOW)
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        hold = await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=300, memo="o", now=NOW)
        with pytest.raises(AmountExceedsAuthorized):
            await ledger.post_hold(session=s, hold=hold, amount=301, now=NOW)
        with pytest.raises(InvalidInput):
            await ledger.post_hold(session=s, hold=hold, amount=0, now=NOW)
        await ledger.void_hold(session=s, hold=hold, now=NOW)
        assert hold.status == HoldStatus.VOIDED
        with pytest.raises(InvalidState):
            await ledger.post_hold(session=s, hold=hold, now=NOW)
        with pytest.raises(InvalidState):
            await ledger.void_hold(session=s, hold=hold, now=NOW)
        b = await balance(s, m)
        assert (b.available, b.held) == (500, 0)
        await f.check_invariants(s)


async def test_expired_holds_are_released_and_can_no_longer_be_captured(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 500, now=NOW)
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        hold = await ledger.create_hold(
            session=s,
            debit=wallet,
            credit=shop,
            amount=300,
            memo="o",
            expires_at=NOW + dt.timedelta(minutes=15),
            now=NOW,
        )
        later = NOW + dt.timedelta(minutes=16)
        with pytest.raises(InvalidState):
            await ledger.post_hold(session=s, hold=hold, now=later)
        assert await ledger.expire_holds(session=s, now=NOW) == []
        expired = await ledger.expire_holds(session=s, now=later)
        assert [h.id for h in expired] == [hold.id] and hold.status == HoldStatus.EXPIRED
        assert await ledger.expire_holds(session=s, now=later) == []
        b = await balance(s, m)
        assert (b.available, b.held) == (500, 0)
        [release, *_] = await entries(s, m, limit=10)
        assert (release.kind, release.points, release.held_change, release.reference) == (
            EntryKind.RELEASE,
            0,
            -300,
            hold.reference,
        )
        await f.check_invariants(s)


async def test_exchange_moves_two_units_through_the_agreement_clearing_accounts(db):
    async with db.transaction() as s:
        op_a = await f.operator(s)
        op_b = await f.operator(s, won_per_point="2")
        ag = await f.agreement(s, op_a, op_b)
        giver = await f.member(s, op_a)
        receiver = await f.member(s, op_b)
        await f.earn(s, giver, 1000, now=NOW)
        wallet_a = await ledger.wallet_account(s, giver)
        wallet_b = await ledger.wallet_account(s, receiver)
        out_clearing = await ledger.clearing_account(s, ag.id, op_a.unit_code)
        in_clearing = await ledger.clearing_account(s, ag.id, op_b.unit_code)
        txn = await ledger.post(
            session=s,
            kind=EntryKind.EXCHANGE_OUT,
            memo="exchange",
            now=NOW,
            legs=[
                ledger.Leg(wallet_a, out_clearing, 1000),
                ledger.Leg(in_clearing, wallet_b, 495, kind=EntryKind.EXCHANGE_IN),
            ],
        )
        assert (await balance(s, giver)).total == 0
        assert (await balance(s, receiver)).total == 495
        [out] = await entries(s, giver, limit=1)
        [into] = await entries(s, receiver, limit=1)
        assert (out.kind, out.points, into.kind, into.points) == (
            EntryKind.EXCHANGE_OUT,
            -1000,
            EntryKind.EXCHANGE_IN,
            495,
        )
        assert out.reference == into.reference == txn.reference
        with pytest.raises(InvalidInput):
            await ledger.post(
                session=s, kind=EntryKind.EXCHANGE_OUT, memo="x", legs=[ledger.Leg(wallet_b, out_clearing, 1)]
            )
        await f.check_invariants(s)


async def test_spending_takes_the_oldest_lots_first_and_a_release_returns_to_them(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        old = NOW + dt.timedelta(days=30)
        new = NOW + dt.timedelta(days=60)
        await f.earn(s, m, 100, now=NOW, expires_at=new)
        await f.earn(s, m, 100, now=NOW, expires_at=old)
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        hold = await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=150, memo="o", now=NOW)
        lots = await ledger.wallet_lots(s, wallet.id)
        assert [(l.expires_at, l.remaining, l.held) for l in lots] == [(old, 0, 100), (new, 50, 50)]
        await ledger.post_hold(session=s, hold=hold, amount=120, now=NOW)
        lots = await ledger.wallet_lots(s, wallet.id)
        assert [(l.remaining, l.held) for l in lots] == [(0, 0), (80, 0)]
        await f.check_invariants(s)


async def test_a_suspended_member_spends_nothing(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 100, now=NOW)
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        await set_member_status(session=s, operator_id=op.id, external_id=m.external_id, status=MemberStatus.SUSPENDED)
        with pytest.raises(MemberSuspended):
            await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=10, memo="o", now=NOW)
        with pytest.raises(MemberSuspended):
            await ledger.post(session=s, kind=EntryKind.DONATE, legs=[ledger.Leg(wallet, shop, 10)], memo="d")
        with pytest.raises(MemberSuspended):
            await f.earn(s, m, 10)
        assert (await balance(s, m)).available == 100


async def test_entries_page_newest_first_by_keyset(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        for points in range(1, 6):
            await f.earn(s, m, points, now=NOW)
        first = await entries(s, m, limit=2)
        second = await entries(s, m, limit=2, before_id=first[-1].id)
        third = await entries(s, m, limit=2, before_id=second[-1].id)
        assert [e.points for e in first + second + third] == [5, 4, 3, 2, 1]
        assert [e.balance_after for e in first + second + third] == [15, 10, 6, 3, 1]


async def test_posted_entries_are_never_rewritten(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 100, now=NOW)
        before = [(e.id, e.points, e.balance_after) for e in (await s.execute(sa.select(LedgerEntry))).scalars()]
        wallet = await ledger.wallet_account(s, m)
        shop = await _shop(s, op)
        hold = await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=60, memo="o", now=NOW)
        await ledger.post_hold(session=s, hold=hold, amount=30, now=NOW)
        rows = (await s.execute(sa.select(LedgerEntry).execution_options(populate_existing=True))).scalars().all()
        assert [(e.id, e.points, e.balance_after) for e in rows][: len(before)] == before


async def test_one_hundred_concurrent_holds_on_ten_spends_worth_exactly_ten_succeed(db):
    if db.dialect != "postgresql":
        pytest.skip("row-lock concurrency is a PostgreSQL matter; SQLite serializes writers")
    async with db.transaction() as s:
        op = await f.operator(s)
        m = await f.member(s, op)
        await f.earn(s, m, 1000, now=NOW)
        shop = await _shop(s, op)
        shop_id = shop.id

    async def spend(i: int) -> bool:
        try:
            async with db.transaction() as s:
                member = await s.get(type(m), m.id)
                wallet = await ledger.wallet_account(s, member)
                credit = await ledger.get_account(s, shop_id)
                await ledger.create_hold(session=s, debit=wallet, credit=credit, amount=100, memo=f"spend {i}", now=NOW)
            return True
        except InsufficientPoints:
            return False

    results = await asyncio.gather(*(spend(i) for i in range(100)))
    assert sum(results) == 10
    async with db.transaction() as s:
        b = await balance(s, await s.get(type(m), m.id))
        assert (b.available, b.held) == (0, 1000)
        await f.check_invariants(s)
