"""Automatic persisted queries (Apollo's APQ): query texts by their SHA-256, per partner."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, utcnow

__all__ = ["PersistedQuery"]


class PersistedQuery(Base):
    """A query text one partner stored: no other partner can run it by its hash, and each
    partner keeps a bounded number (the least recently used go first)."""

    __tablename__ = "persisted_queries"
    __table_args__ = (
        # Eviction reads a partner's least recently used first.
        sa.Index("ix_persisted_queries_partner_last_used", "partner_id", "last_used_at"),
    )

    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), primary_key=True, autoincrement=False)
    #: Lowercase hex SHA-256 of `query` (UTF-8).
    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    query: Mapped[str] = mapped_column(sa.Text)
    #: The client whose request stored it first.
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: When a request last ran it (recorded at most once a `persisted_query_touch_seconds`).
    last_used_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
