"""Exchanges of points between two operators' programs.

See `gateway/exchange.py` for the rules these rows follow.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class Exchange(IdMixin, Base):
    """Points of one program's member converted, through won, into another program's points
    for a member of that program. The two member ids are kept for the ledger's sake only and
    are never shown to the other operator."""

    __tablename__ = "exchanges"
    __table_args__ = (
        sa.CheckConstraint("from_points > 0 AND to_points > 0", name="points_positive"),
        sa.CheckConstraint("won_value >= 0 AND fee_won >= 0 AND fee_won <= won_value", name="won_in_range"),
        sa.Index("ix_exchanges_from_operator_id_id", "from_operator_id", "id"),
        sa.Index("ix_exchanges_to_operator_id_id", "to_operator_id", "id"),
    )

    reference: Mapped[str] = mapped_column(sa.String(40), unique=True)
    agreement_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("agreements.id"))
    from_operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    to_operator_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    from_member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"))
    to_member_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("members.id"))
    from_points: Mapped[int]
    from_unit: Mapped[str] = mapped_column(sa.String(16))
    to_points: Mapped[int]
    to_unit: Mapped[str] = mapped_column(sa.String(16))
    won_value: Mapped[int]
    fee_won: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = ["Exchange"]
