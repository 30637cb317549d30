"""Mileage expiry: the scheduled job that expires what is left of lots past their date.

Lots are dated when credited (`gateway.ledger` lots; the expiry comes from the operator's
earning rule, `expiry_months`). Spending always takes the oldest lots first, so what expires
is only what is left of them, also after part was spent, donated or exchanged. Points held by
a pending hold do not expire while held; if the hold is released, they go back to their lot
and expire at the next run. Each wallet's expiry is one EXPIRE posting to the operator's
breakage account.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import ledger
from gateway.db import utcnow
from gateway.jobs import Job, JobRegistry
from gateway.models.ledger import Account, EntryKind, Lot, OwnerKind
from gateway.models.members import Member


async def expire_points(*, session: AsyncSession, now: dt.datetime, limit: int = 1000) -> int:
    """Expire the remaining points of lots with `expires_at <= now` in up to `limit` wallets;
    returns the number of points expired (call again while it returns more than zero)."""
    account_ids = (
        (
            await session.execute(
                sa.select(Lot.account_id)
                .where(Lot.expires_at.is_not(None), Lot.expires_at <= now, Lot.remaining > 0)
                .group_by(Lot.account_id)
                .order_by(Lot.account_id)
                .limit(limit)
            )
        )
        .scalars()
        .all()
    )
    total = 0
    for account_id in account_ids:
        # Lock the wallet before reading its lots (spenders lock it before touching them too).
        wallet = (
            await session.execute(
                sa.select(Account)
                .where(Account.id == account_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalar_one()
        lots = (
            (
                await session.execute(
                    sa.select(Lot)
                    .where(
                        Lot.account_id == account_id,
                        Lot.expires_at.is_not(None),
                        Lot.expires_at <= now,
                        Lot.remaining > 0,
                    )
                    .order_by(Lot.expires_at, Lot.id)
                    .execution_options(populate_existing=True)
                )
            )
            .scalars()
            .all()
        )
        amount = sum(lot.remaining for lot in lots)
        if amount <= 0 or wallet.owner_kind != OwnerKind.MEMBER:
            continue
        operator_id = await session.scalar(sa.select(Member.operator_id).where(Member.id == wallet.owner_id))
        breakage = await ledger.breakage_account(session, operator_id)
        first, last = min(lot.earned_on for lot in lots), max(lot.earned_on for lot in lots)
        span = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
        await ledger.post(
            session=session,
            kind=EntryKind.EXPIRE,
            legs=[ledger.Leg(wallet, breakage, amount)],
            memo=f"{amount} points earned {span} expired",
            now=now,
            _debit_lots={0: lots},
        )
        total += amount
    return total


__all__ = ["expire_points", "expire_points_job", "register_jobs"]


async def expire_points_job(ctx) -> int:
    """The scheduled job: expire lots past their date, a thousand wallets per transaction."""
    total = 0
    while True:
        async with ctx.db.transaction() as session:
            expired = await expire_points(session=session, now=utcnow())
        total += expired
        if expired == 0:
            return total


def register_jobs(jobs: JobRegistry) -> None:
    jobs.add(Job.every("points.expire", 3600, expire_points_job))
