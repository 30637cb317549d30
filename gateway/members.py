"""Members of an operator's program: enrolment, status, balance and history queries.

A member is identified by its operator and the operator's own `external_id`; no personal
data is held. Members are enrolled on their first activity (`enroll` is get-or-create).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from gateway.db import utcnow
from gateway.errors import InvalidInput, InvalidState, NotFound
from gateway.ledger import Balance, account_entries, find_wallet, operator_unit
from gateway.models.activity import ActivityRecord
from gateway.models.ledger import LedgerEntry
from gateway.models.members import Member, MemberStatus

EXTERNAL_ID_MAX = 128


def _check_external_id(external_id: str) -> str:
    if not isinstance(external_id, str) or not external_id.strip() or len(external_id) > EXTERNAL_ID_MAX:
        raise InvalidInput(
            f"a member's externalId must be 1 to {EXTERNAL_ID_MAX} characters", field=["memberExternalId"]
        )
    return external_id


def _by_external_id(operator_id: int, external_id: str):
    return (
        sa.select(Member)
        .where(Member.operator_id == operator_id, Member.external_id == external_id)
        .execution_options(populate_existing=True)
    )


async def get_member(session: AsyncSession, operator_id: int, external_id: str) -> Member | None:
    """The operator's member with that externalId, or None."""
    return (await session.execute(_by_external_id(operator_id, external_id))).scalar_one_or_none()


async def require_member(session: AsyncSession, operator_id: int, external_id: str) -> Member:
    """Like `get_member`, but NotFound when the operator has no such member (also for another
    operator's member: ids cannot be probed)."""
    member = await get_member(session, operator_id, external_id)
    if member is None:
        raise NotFound("no such member")
    return member


async def get_member_by_id(session: AsyncSession, member_id: int) -> Member | None:
    return await session.get(Member, member_id)


async def enroll(
    *, session: AsyncSession, operator_id: int, external_id: str, now: dt.datetime | None = None
) -> Member:
    """The member, enrolled now if new (race-safe get-or-create)."""
    _check_external_id(external_id)
    member = await get_member(session, operator_id, external_id)
    if member is not None:
        return member
    now = now or utcnow()
    try:
        async with session.begin_nested():
            member = Member(
                operator_id=operator_id,
                external_id=external_id,
                status=MemberStatus.ACTIVE,
                enrolled_at=now,
                updated_at=now,
            )
            session.add(member)
            await session.flush()
        return member
    except IntegrityError:
        return (await session.execute(_by_external_id(operator_id, external_id))).scalar_one()


async def set_member_status(
    *, session: AsyncSession, operator_id: int, external_id: str, status: MemberStatus, now: dt.datetime | None = None
) -> Member:
    """Set a member's status. A SUSPENDED or CLOSED member earns and spends nothing.

    NotFound for an unknown member; InvalidState to change a CLOSED member (closing is final).
    """
    status = MemberStatus(status)
    member = await require_member(session, operator_id, external_id)
    if member.status == status:
        return member
    if member.status == MemberStatus.CLOSED:
        raise InvalidState("a closed member cannot be reopened")
    now = now or utcnow()
    await session.execute(
        sa.update(Member.__table__)
        .where(Member.__table__.c.id == member.id)
        .values(status=status.value, updated_at=now)
    )
    set_committed_value(member, "status", status)
    set_committed_value(member, "updated_at", now)
    return member


async def balance(session: AsyncSession, member: Member) -> Balance:
    """The member's balance in its operator's unit (zero before its first credit)."""
    wallet = await find_wallet(session, member)
    if wallet is None:
        return Balance(unit=await operator_unit(session, member.operator_id), available=0, held=0)
    return Balance(unit=wallet.unit, available=wallet.available, held=wallet.held)


async def entries(
    session: AsyncSession, member: Member, *, limit: int, before_id: int | None = None
) -> list[LedgerEntry]:
    """The member's ledger entries, newest first (by id), `limit` at most, older than
    `before_id` when given (keyset: ask for first + 1 to learn whether there is a next page)."""
    wallet = await find_wallet(session, member)
    if wallet is None:
        return []
    return await account_entries(session, wallet.id, limit=limit, before_id=before_id)


async def activities(
    session: AsyncSession,
    member: Member,
    *,
    limit: int,
    before: dt.date | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> list[ActivityRecord]:
    """The member's days of walking, newest date first, within [date_from, date_to]; `before`
    continues after the last date seen (a date is unique per member, so it is the cursor)."""
    stmt = sa.select(ActivityRecord).where(ActivityRecord.member_id == member.id)
    if before is not None:
        stmt = stmt.where(ActivityRecord.date < before)
    if date_from is not None:
        stmt = stmt.where(ActivityRecord.date >= date_from)
    if date_to is not None:
        stmt = stmt.where(ActivityRecord.date <= date_to)
    stmt = stmt.order_by(ActivityRecord.date.desc()).limit(limit)
    return list((await session.execute(stmt)).scalars())


__all__ = [
    "activities",
    "balance",
    "enroll",
    "entries",
    "get_member",
    "get_member_by_id",
    "require_member",
    "set_member_status",
]
