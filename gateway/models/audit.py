"""The audit log: every mutation, allowed or refused, in a hash chain."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class AuditEvent(IdMixin, Base):
    __tablename__ = "audit_events"

    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    client_id: Mapped[str] = mapped_column(sa.String(64))
    partner_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    operation: Mapped[str] = mapped_column(sa.String(128))
    outcome: Mapped[str] = mapped_column(sa.String(64))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
