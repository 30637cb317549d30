"""Small builders for ledger-level tests (partners, members, earned points)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from gateway import ledger
from gateway.members import enroll
from gateway.models import Agreement, EntryKind, Member, Partner, PartnerKind, SettlementPeriod

_seq = itertools.count(1)


async def operator(session, unit: str | None = None, won_per_point: str = "1") -> Partner:
    n = next(_seq)
    partner = Partner(
        code=f"op-{n}",
        name=f"Operator {n}",
        kind=PartnerKind.OPERATOR,
        unit_code=unit or f"U{n}",
        won_per_point=Decimal(won_per_point),
    )
    session.add(partner)
    await session.flush()
    return partner


async def partner(session, kind: PartnerKind, operator_id: int | None = None) -> Partner:
    n = next(_seq)
    p = Partner(code=f"{kind.value.lower()}-{n}", name=f"{kind.value.title()} {n}", kind=kind, operator_id=operator_id)
    session.add(p)
    await session.flush()
    return p


async def agreement(session, a: Partner, b: Partner) -> Agreement:
    n = next(_seq)
    ag = Agreement(
        code=f"ag-{n}",
        operator_a_id=a.id,
        operator_b_id=b.id,
        cross_redemption=True,
        point_exchange=True,
        fee_bps=100,
        settlement_period=SettlementPeriod.MONTHLY,
        starts_on=dt.date(2024, 1, 1),
    )
    session.add(ag)
    await session.flush()
    return ag


async def member(session, op: Partner, external_id: str | None = None) -> Member:
    return await enroll(session=session, operator_id=op.id, external_id=external_id or f"m-{next(_seq)}")


async def earn(session, m: Member, points: int, *, now: dt.datetime | None = None, expires_at=None, memo="walked"):
    """Credit `points` to the member from its operator's issuance account (an EARN)."""
    wallet = await ledger.wallet_account(session, m)
    issuance = await ledger.issuance_account(session, m.operator_id)
    return await ledger.post(
        session=session,
        kind=EntryKind.EARN,
        legs=[ledger.Leg(issuance, wallet, points, lot_expires_at=expires_at)],
        memo=memo,
        now=now,
    )


async def check_invariants(session) -> None:
    """The ledger's promises, checked over the whole database."""
    import sqlalchemy as sa

    from gateway.models import Account, LedgerEntry, Lot

    per_txn_unit = await session.execute(
        sa.select(LedgerEntry.transaction_id, LedgerEntry.unit, sa.func.sum(LedgerEntry.points))
        .group_by(LedgerEntry.transaction_id, LedgerEntry.unit)
        .having(sa.func.sum(LedgerEntry.points) != 0)
    )
    assert per_txn_unit.all() == [], "a transaction does not balance in some unit"
    per_unit = dict(
        (
            await session.execute(
                sa.select(Account.unit, sa.func.sum(Account.available + Account.held)).group_by(Account.unit)
            )
        ).all()
    )
    assert all(v == 0 for v in per_unit.values()), per_unit

    accounts = (await session.execute(sa.select(Account).execution_options(populate_existing=True))).scalars().all()
    sums = {
        r[0]: (r[1], r[2])
        for r in await session.execute(
            sa.select(
                LedgerEntry.account_id, sa.func.sum(LedgerEntry.points), sa.func.sum(LedgerEntry.held_change)
            ).group_by(LedgerEntry.account_id)
        )
    }
    lots = {
        r[0]: (r[1], r[2])
        for r in await session.execute(
            sa.select(Lot.account_id, sa.func.sum(Lot.remaining), sa.func.sum(Lot.held)).group_by(Lot.account_id)
        )
    }
    for acc in accounts:
        total, held = sums.get(acc.id, (0, 0))
        assert acc.available + acc.held == total, (acc.id, acc.available, acc.held, total)
        assert acc.held == held, (acc.id, acc.held, held)
        if not acc.allow_negative:
            assert acc.available >= 0
        if acc.has_lots:
            assert lots.get(acc.id, (0, 0)) == (acc.available, acc.held), (
                acc.id,
                lots.get(acc.id),
                acc.available,
                acc.held,
            )
        last = (
            await session.execute(
                sa.select(LedgerEntry).where(LedgerEntry.account_id == acc.id).order_by(LedgerEntry.id.desc()).limit(1)
            )
        ).scalar_one_or_none()
        if last is not None:
            assert last.balance_after == acc.available + acc.held
            assert last.available_after == acc.available
