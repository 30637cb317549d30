"""A spend costs the same however long the member's earning history: it reads only the lots
it consumes (FIFO), so a member with 1,000 lots pays with the statements and rows of a member
with one."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from gateway import ledger
from gateway.models import EntryKind, HoldLot, PartnerKind
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)
LONG_HISTORY = 1000


@dataclass
class Traffic:
    statements: int = 0
    lot_reads: list[int] = field(default_factory=list)  # rows fetched by each SELECT of lots

    @property
    def lot_rows(self) -> int:
        return sum(self.lot_reads)


@contextlib.contextmanager
def traffic(db):
    """Counts the statements sent to the database and the lot rows they bring back."""
    seen = Traffic()

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.statements += 1
        if statement.lstrip().upper().startswith("SELECT") and "ledger_lots" in statement:
            # Both async adapters (asyncpg, aiosqlite) buffer a result's rows in `_rows` on execute.
            seen.lot_reads.append(len(cursor._rows))

    sa.event.listen(db.engine.sync_engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine.sync_engine, "after_cursor_execute", after)


async def _member_with_lots(s, op, count: int, points: int = 1_000):
    """A member who earned `count` times (one lot a day, oldest expiring first)."""
    m = await f.member(s, op)
    wallet = await ledger.wallet_account(s, m)
    issuance = await ledger.issuance_account(s, op.id)
    await ledger.post_many(
        session=s,
        now=NOW,
        postings=[
            ledger.Posting(
                EntryKind.EARN,
                [ledger.Leg(issuance, wallet, points, lot_expires_at=NOW + dt.timedelta(days=30 + d))],
                memo=f"walk {d}",
            )
            for d in range(count)
        ],
    )
    return m, wallet


async def _spend_both_ways(db, wallet, shop) -> tuple[Traffic, Traffic, Traffic]:
    """A payment as one posting, as a hold then its capture, and as a bulk posting, each in its own transaction."""
    async with db.transaction() as s:
        wallet, shop = await ledger.get_account(s, wallet.id), await ledger.get_account(s, shop.id)
        with traffic(db) as posting:
            await ledger.post(
                session=s, kind=EntryKind.REDEEM, legs=[ledger.Leg(wallet, shop, 10)], memo="coffee", now=NOW
            )
    async with db.transaction() as s:
        wallet, shop = await ledger.get_account(s, wallet.id), await ledger.get_account(s, shop.id)
        with traffic(db) as hold:
            h = await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=10, memo="lunch", now=NOW)
            await ledger.post_hold(session=s, hold=h, amount=7, now=NOW)
    async with db.transaction() as s:
        wallet, shop = await ledger.get_account(s, wallet.id), await ledger.get_account(s, shop.id)
        with traffic(db) as bulk:
            await ledger.post_many(
                session=s,
                now=NOW,
                postings=[ledger.Posting(EntryKind.DONATE, [ledger.Leg(wallet, shop, 10)], memo="donation")],
            )
    return posting, hold, bulk


async def test_a_member_with_a_thousand_lots_pays_with_the_statements_and_rows_of_a_member_with_one(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id)
        shop = await ledger.partner_account(s, merchant.id, op.unit_code, "merchant")
        _, short = await _member_with_lots(s, op, 1)
        _, long = await _member_with_lots(s, op, LONG_HISTORY)

    one = await _spend_both_ways(db, short, shop)
    many = await _spend_both_ways(db, long, shop)

    for way, a, b in zip(("post", "hold and capture", "post_many"), one, many):
        assert b.statements == a.statements, (
            f"{way}: {a.statements} statements with 1 lot, {b.statements} with {LONG_HISTORY}"
        )
        assert b.lot_rows == a.lot_rows, (
            f"{way}: {a.lot_rows} lot rows read with 1 lot, {b.lot_rows} with {LONG_HISTORY}"
        )
        # Each read of lots (the hold's capture reads the hold's lots too) brings back the one lot used.
        assert b.lot_reads and set(b.lot_reads) == {1}, (
            f"{way}: lot rows read {b.lot_reads} for a spend covered by one lot"
        )

    async with db.transaction() as s:
        lots = await ledger.wallet_lots(s, long.id)
        # FIFO: all 27 points (10 + 7 captured + 10) came from the oldest lot; the others are untouched.
        assert [(lot.remaining, lot.held) for lot in lots[:2]] == [(1_000 - 27, 0), (1_000, 0)]
        assert all(lot.remaining == 1_000 for lot in lots[1:])
        assert (await ledger.account_balance(s, long.id)).available == LONG_HISTORY * 1_000 - 27
        await f.check_invariants(s)


async def test_a_spend_beyond_the_first_read_still_takes_the_oldest_lots_first(db, monkeypatch):
    """Lots are read in growing batches (4, then 16 here): a spend over many lots, across
    dated and never-expiring ones, takes them in expiry order, never-expiring last, and
    records a hold's lots."""
    monkeypatch.setattr(ledger, "LOT_BATCH", 4)
    async with db.transaction() as s:
        op = await f.operator(s)
        merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id)
        shop = await ledger.partner_account(s, merchant.id, op.unit_code, "merchant")
        m = await f.member(s, op)
        wallet = await ledger.wallet_account(s, m)
        issuance = await ledger.issuance_account(s, op.id)
        legs = []
        for d in range(12):  # interleaved: never-expiring lots first by id, dated ones newest first
            legs.append(ledger.Leg(issuance, wallet, 10, never_expires=True))
            legs.append(ledger.Leg(issuance, wallet, 10, lot_expires_at=NOW + dt.timedelta(days=100 - d)))
        await ledger.post(session=s, kind=EntryKind.EARN, legs=legs, memo="walks", now=NOW)

    async with db.transaction() as s:
        wallet = await ledger.get_account(s, wallet.id)
        # 12 dated lots (120 points) and 5.5 never-expiring ones.
        hold = await ledger.create_hold(session=s, debit=wallet, credit=shop, amount=175, memo="big order", now=NOW)
        held_lots = (await s.execute(sa.select(HoldLot.lot_id, HoldLot.amount).where(HoldLot.hold_id == hold.id))).all()
        assert sum(a for _, a in held_lots) == 175 and len(held_lots) == 18
        lots = await ledger.wallet_lots(s, wallet.id)
        assert [lot.expires_at is None for lot in lots] == [False] * 12 + [True] * 12
        assert [lot.held for lot in lots] == [10] * 17 + [5] + [0] * 6
        assert [lot.remaining for lot in lots] == [0] * 17 + [5] + [10] * 6
        dated = [lot.expires_at for lot in lots[:12]]
        assert dated == sorted(dated)
        await ledger.void_hold(session=s, hold=hold, now=NOW)
        await ledger.post(session=s, kind=EntryKind.REDEEM, legs=[ledger.Leg(wallet, shop, 125)], memo="x", now=NOW)
        lots = await ledger.wallet_lots(s, wallet.id)
        assert [lot.remaining for lot in lots] == [0] * 12 + [5] + [10] * 11
        assert [lot.held for lot in lots] == [0] * 24
        await f.check_invariants(s)
