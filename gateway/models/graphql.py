"""Automatic persisted queries (Apollo's APQ): query texts by their SHA-256."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, utcnow

__all__ = ["PersistedQuery"]


class PersistedQuery(Base):
    __tablename__ = "persisted_queries"

    #: Lowercase hex SHA-256 of `query` (UTF-8).
    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    query: Mapped[str] = mapped_column(sa.Text)
    #: The client whose request stored it first.
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
