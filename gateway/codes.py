"""Member codes: single-use, short-lived, 16-digit numbers bound to a member and a purpose.

A PAYMENT code is shown at a merchant's checkout; a RECEIVE code is given to another
operator to receive exchanged points. Codes come from `secrets`, are stored only as their
SHA-256 (they live minutes, so a plain digest is enough), and are consumed atomically: a
conditional `UPDATE ... WHERE used_at IS NULL` lets exactly one caller use a code, also
under concurrency. If the caller's transaction rolls back, the code is unused again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidMemberCode, MemberCodeExpired, MemberSuspended
from gateway.members import require_member
from gateway.models.members import Member, MemberCode, MemberCodePurpose, MemberStatus

CODE_DIGITS = 16
#: Defaults of Settings.payment_code_ttl_seconds / receive_code_ttl_seconds.
DEFAULT_TTL_SECONDS = {MemberCodePurpose.PAYMENT: 180, MemberCodePurpose.RECEIVE: 600}


@dataclass(frozen=True)
class IssuedCode:
    #: The code itself: shown once, never stored.
    code: str
    purpose: MemberCodePurpose
    expires_at: dt.datetime
    member_id: int


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def ttl_for(settings, purpose: MemberCodePurpose) -> int:
    """The TTL a `gateway.settings.Settings` gives a purpose."""
    if MemberCodePurpose(purpose) == MemberCodePurpose.PAYMENT:
        return settings.payment_code_ttl_seconds
    return settings.receive_code_ttl_seconds


async def issue_member_code(
    *,
    session: AsyncSession,
    operator_id: int,
    external_id: str,
    purpose: MemberCodePurpose,
    now: dt.datetime,
    ttl_seconds: int | None = None,
) -> IssuedCode:
    """A new code for the operator's member. NotFound for an unknown member (or another
    operator's), MemberSuspended for a member who is not ACTIVE."""
    purpose = MemberCodePurpose(purpose)
    member = await require_member(session, operator_id, external_id)
    if member.status != MemberStatus.ACTIVE:
        raise MemberSuspended(f"the member is {member.status.value}")
    ttl = DEFAULT_TTL_SECONDS[purpose] if ttl_seconds is None else ttl_seconds
    code = new_code()
    expires_at = now + dt.timedelta(seconds=ttl)
    session.add(
        MemberCode(
            member_id=member.id, purpose=purpose, code_hash=code_hash(code), expires_at=expires_at, created_at=now
        )
    )
    await session.flush()
    return IssuedCode(code=code, purpose=purpose, expires_at=expires_at, member_id=member.id)


async def consume_member_code(
    *, session: AsyncSession, code: str, purpose: MemberCodePurpose, now: dt.datetime
) -> Member:
    """Use a code once; returns its member. InvalidMemberCode for a code that is malformed,
    unknown, already used or issued for another purpose; MemberCodeExpired once past its time."""
    purpose = MemberCodePurpose(purpose)
    if not isinstance(code, str) or len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise InvalidMemberCode("not a member code", field=["input", "memberCode"])
    digest = code_hash(code)
    t = MemberCode.__table__
    used = (
        await session.execute(
            sa.update(t)
            .where(t.c.code_hash == digest, t.c.purpose == purpose.value, t.c.used_at.is_(None), t.c.expires_at > now)
            .values(used_at=now)
            .returning(t.c.member_id)
        )
    ).first()
    if used is None:
        row = (
            await session.execute(sa.select(t.c.purpose, t.c.used_at, t.c.expires_at).where(t.c.code_hash == digest))
        ).first()
        if row is not None and row.purpose == purpose.value and row.used_at is None:
            raise MemberCodeExpired("the member code has expired", field=["input", "memberCode"])
        raise InvalidMemberCode("unknown or used member code", field=["input", "memberCode"])
    return await session.get(Member, used.member_id)


__all__ = ["IssuedCode", "consume_member_code", "issue_member_code", "ttl_for"]
