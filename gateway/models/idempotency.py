"""Idempotency records: one per (partner, key), written with the movement it guards."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class IdempotencyRecord(IdMixin, Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (sa.UniqueConstraint("partner_id", "key"),)

    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    key: Mapped[str] = mapped_column(sa.String(255))
    #: The mutation, e.g. "authorizeRedemption".
    operation: Mapped[str] = mapped_column(sa.String(64))
    #: Lowercase hex SHA-256 of the canonical JSON (RFC 8785) of operation and request.
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    #: The first result, as JSON; None only while the first request is still running.
    response: Mapped[dict | None] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = ["IdempotencyRecord"]
