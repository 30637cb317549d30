"""Partners (operators, merchants, sponsors, beneficiaries, the program office) and agreements."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class PartnerKind(str, enum.Enum):
    OPERATOR = "OPERATOR"
    MERCHANT = "MERCHANT"
    SPONSOR = "SPONSOR"
    BENEFICIARY = "BENEFICIARY"
    ADMIN = "ADMIN"


class SettlementPeriod(str, enum.Enum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"


class AgreementStatus(str, enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    ENDED = "ENDED"


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=20, validate_strings=True)


class Partner(IdMixin, Base):
    __tablename__ = "partners"

    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[PartnerKind] = mapped_column(_enum(PartnerKind), index=True)
    #: OPERATOR: its point unit (e.g. SWM) and what one point is worth in won.
    unit_code: Mapped[str | None] = mapped_column(sa.String(16), unique=True)
    won_per_point: Mapped[Decimal | None]
    #: MERCHANT: the operator it is affiliated with.
    operator_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Agreement(IdMixin, Base):
    """A cooperation agreement between two operators."""

    __tablename__ = "agreements"
    __table_args__ = (
        sa.CheckConstraint("operator_a_id <> operator_b_id", name="distinct_operators"),
        sa.CheckConstraint("fee_bps >= 0 AND fee_bps <= 10000", name="fee_bps_range"),
    )

    code: Mapped[str] = mapped_column(sa.String(64), unique=True)
    operator_a_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    operator_b_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    cross_redemption: Mapped[bool]
    point_exchange: Mapped[bool]
    fee_bps: Mapped[int] = mapped_column(sa.Integer)
    settlement_period: Mapped[SettlementPeriod] = mapped_column(_enum(SettlementPeriod))
    starts_on: Mapped[dt.date]
    ends_on: Mapped[dt.date | None]
    status: Mapped[AgreementStatus] = mapped_column(_enum(AgreementStatus), default=AgreementStatus.ACTIVE)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
