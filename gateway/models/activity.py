"""Walking activity: per-operator earning rules and one record per member and day."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class ActivityStatus(str, enum.Enum):
    CREDITED = "CREDITED"
    ADJUSTED = "ADJUSTED"
    UNCHANGED = "UNCHANGED"
    CAPPED = "CAPPED"
    REJECTED = "REJECTED"


#: Defaults when an operator has no rule row (shared/program.md: about 200 points for
#: 8,000 steps, about 6 km; walking day on the 11th; points expire after about a year).
DEFAULT_RULE = dict(
    points_per_km=Decimal("33.34"),
    daily_cap=400,
    walking_day=11,
    walking_day_multiplier=Decimal("2"),
    max_steps_per_day=100_000,
    min_stride_m=Decimal("0.3"),
    max_stride_m=Decimal("2.5"),
    expiry_months=12,
)


class EarningRule(IdMixin, Base):
    """How an operator's members earn points for walking (one row per operator)."""

    __tablename__ = "earning_rules"

    operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), unique=True)
    points_per_km: Mapped[Decimal] = mapped_column(default=DEFAULT_RULE["points_per_km"])
    #: Most points a day's walk earns before the walking-day multiplier.
    daily_cap: Mapped[int] = mapped_column(default=DEFAULT_RULE["daily_cap"])
    #: Day of the month that is walking day (0: none).
    walking_day: Mapped[int] = mapped_column(sa.Integer, default=DEFAULT_RULE["walking_day"])
    walking_day_multiplier: Mapped[Decimal] = mapped_column(default=DEFAULT_RULE["walking_day_multiplier"])
    max_steps_per_day: Mapped[int] = mapped_column(default=DEFAULT_RULE["max_steps_per_day"])
    min_stride_m: Mapped[Decimal] = mapped_column(default=DEFAULT_RULE["min_stride_m"])
    max_stride_m: Mapped[Decimal] = mapped_column(default=DEFAULT_RULE["max_stride_m"])
    #: Points expire this many months after they are credited (None or 0: never).
    expiry_months: Mapped[int | None] = mapped_column(sa.Integer, default=DEFAULT_RULE["expiry_months"])
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @classmethod
    def default(cls, operator_id: int) -> EarningRule:
        """An unsaved rule with the program defaults."""
        return cls(operator_id=operator_id, **DEFAULT_RULE)


class ActivityRecord(IdMixin, Base):
    """A member's walking total for one day (Asia/Seoul). A re-report replaces the figures."""

    __tablename__ = "activity_records"
    __table_args__ = (sa.UniqueConstraint("member_id", "date"),)

    member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"))
    date: Mapped[dt.date]
    steps: Mapped[int]
    distance_meters: Mapped[int]
    source: Mapped[str | None] = mapped_column(sa.String(64))
    #: Net points the day has earned under the rules (credits minus corrections).
    points_credited: Mapped[int] = mapped_column(default=0)
    #: Reference of the last movement that credited or corrected this day.
    reference: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = ["ActivityRecord", "ActivityStatus", "DEFAULT_RULE", "EarningRule"]
