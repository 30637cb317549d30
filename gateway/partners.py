"""Partners and cooperation agreements: registration and look-up."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput, NotFound
from gateway.models import Agreement, AgreementStatus, Partner, PartnerKind, SettlementPeriod

CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
UNIT_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
#: Units the gateway itself uses: sponsors' commitments and matches are posted in won.
RESERVED_UNITS = frozenset({"KRW"})


async def get_by_code(session: AsyncSession, code: str) -> Partner | None:
    return (await session.execute(sa.select(Partner).where(Partner.code == code))).scalar_one_or_none()


async def require(
    session: AsyncSession, code: str, *, kind: PartnerKind | None = None, field: list[str] | None = None
) -> Partner:
    """The partner with this code (and kind), or NotFound naming the input field."""
    partner = await get_by_code(session, code)
    if partner is None or (kind is not None and partner.kind != kind):
        what = kind.value.lower() if kind else "partner"
        raise NotFound(f"No {what} with code {code!r}", field=field)
    return partner


async def create_partner(
    *,
    session: AsyncSession,
    code: str,
    name: str,
    kind: PartnerKind,
    unit_code: str | None = None,
    won_per_point: Decimal | None = None,
    operator_code: str | None = None,
) -> Partner:
    if not CODE_PATTERN.match(code):
        raise InvalidInput("code must be a lowercase slug (a-z, 0-9, -), 2 to 63 characters", field=["input", "code"])
    if not name.strip() or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", field=["input", "name"])
    if await get_by_code(session, code) is not None:
        raise InvalidInput(f"A partner with code {code!r} exists already", field=["input", "code"])
    operator_id = None
    if kind == PartnerKind.OPERATOR:
        if not unit_code or not UNIT_PATTERN.match(unit_code):
            raise InvalidInput("an OPERATOR needs unitCode: 2 to 16 capitals or digits", field=["input", "unitCode"])
        if unit_code in RESERVED_UNITS:
            raise InvalidInput(f"unitCode {unit_code} is reserved for won", field=["input", "unitCode"])
        if won_per_point is None or won_per_point <= 0 or won_per_point > 1_000_000:
            raise InvalidInput("an OPERATOR needs a positive wonPerPoint", field=["input", "wonPerPoint"])
        if won_per_point.as_tuple().exponent < -6:
            raise InvalidInput("wonPerPoint has at most 6 decimal places", field=["input", "wonPerPoint"])
        taken = await session.execute(sa.select(Partner.id).where(Partner.unit_code == unit_code))
        if taken.first() is not None:
            raise InvalidInput(f"Point unit {unit_code!r} belongs to another operator", field=["input", "unitCode"])
    elif unit_code is not None or won_per_point is not None:
        raise InvalidInput("unitCode and wonPerPoint are for OPERATOR partners only", field=["input", "unitCode"])
    if kind == PartnerKind.MERCHANT:
        if not operator_code:
            raise InvalidInput(
                "a MERCHANT needs operatorCode, the operator it is affiliated with", field=["input", "operatorCode"]
            )
        operator = await require(session, operator_code, kind=PartnerKind.OPERATOR, field=["input", "operatorCode"])
        operator_id = operator.id
    elif operator_code is not None:
        raise InvalidInput("operatorCode is for MERCHANT partners only", field=["input", "operatorCode"])
    partner = Partner(
        code=code,
        name=name.strip(),
        kind=kind,
        unit_code=unit_code if kind == PartnerKind.OPERATOR else None,
        won_per_point=won_per_point if kind == PartnerKind.OPERATOR else None,
        operator_id=operator_id,
    )
    session.add(partner)
    await session.flush()
    return partner


def partners_query(*, kind: PartnerKind | None = None) -> sa.Select:
    stmt = sa.select(Partner)
    if kind is not None:
        stmt = stmt.where(Partner.kind == kind)
    return stmt


async def create_agreement(
    *,
    session: AsyncSession,
    code: str,
    operator_a_code: str,
    operator_b_code: str,
    cross_redemption: bool,
    point_exchange: bool,
    fee_bps: int,
    settlement_period: SettlementPeriod,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
) -> Agreement:
    if not CODE_PATTERN.match(code):
        raise InvalidInput("code must be a lowercase slug (a-z, 0-9, -), 2 to 63 characters", field=["input", "code"])
    if (await session.execute(sa.select(Agreement.id).where(Agreement.code == code))).first():
        raise InvalidInput(f"An agreement with code {code!r} exists already", field=["input", "code"])
    a = await require(session, operator_a_code, kind=PartnerKind.OPERATOR, field=["input", "operatorACode"])
    b = await require(session, operator_b_code, kind=PartnerKind.OPERATOR, field=["input", "operatorBCode"])
    if a.id == b.id:
        raise InvalidInput("An agreement needs two different operators", field=["input", "operatorBCode"])
    if not 0 <= fee_bps <= 10_000:
        raise InvalidInput("feeBps must be between 0 and 10000", field=["input", "feeBps"])
    if ends_on is not None and ends_on < starts_on:
        raise InvalidInput("endsOn must not be before startsOn", field=["input", "endsOn"])
    if await active_agreement(session, a.id, b.id) is not None:
        raise InvalidInput("These operators already have an active agreement", field=["input", "operatorBCode"])
    agreement = Agreement(
        code=code,
        operator_a_id=a.id,
        operator_b_id=b.id,
        cross_redemption=cross_redemption,
        point_exchange=point_exchange,
        fee_bps=fee_bps,
        settlement_period=settlement_period,
        starts_on=starts_on,
        ends_on=ends_on,
        status=AgreementStatus.ACTIVE,
    )
    session.add(agreement)
    await session.flush()
    return agreement


async def active_agreement(
    session: AsyncSession, operator_x: int, operator_y: int, *, on: dt.date | None = None
) -> Agreement | None:
    """The ACTIVE agreement between two operators (either order), in force on `on` if given."""
    stmt = sa.select(Agreement).where(
        Agreement.status == AgreementStatus.ACTIVE,
        sa.or_(
            sa.and_(Agreement.operator_a_id == operator_x, Agreement.operator_b_id == operator_y),
            sa.and_(Agreement.operator_a_id == operator_y, Agreement.operator_b_id == operator_x),
        ),
    )
    if on is not None:
        stmt = stmt.where(Agreement.starts_on <= on, sa.or_(Agreement.ends_on.is_(None), Agreement.ends_on >= on))
    return (await session.execute(stmt.limit(1))).scalar_one_or_none()


def agreements_of(partner_id: int | None) -> sa.Select:
    """Agreements a partner is party to (all of them for None = ADMIN), oldest first."""
    stmt = sa.select(Agreement).order_by(Agreement.id)
    if partner_id is not None:
        stmt = stmt.where(sa.or_(Agreement.operator_a_id == partner_id, Agreement.operator_b_id == partner_id))
    return stmt


async def get_agreement(session: AsyncSession, code: str) -> Agreement:
    agreement = (await session.execute(sa.select(Agreement).where(Agreement.code == code))).scalar_one_or_none()
    if agreement is None:
        raise NotFound(f"No agreement with code {code!r}")
    return agreement


async def by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, Partner]:
    rows = (await session.execute(sa.select(Partner).where(Partner.id.in_(set(ids))))).scalars()
    return {p.id: p for p in rows}
