"""The audit log: every mutation, allowed or refused, sealed into a hash chain (see gateway/audit.py)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow

__all__ = ["AuditEvent", "AuditChainHead", "GENESIS_HASH"]

#: `prev_hash` of the first event of the chain.
GENESIS_HASH = "0" * 64


class AuditEvent(IdMixin, Base):
    """One mutation field of one request: who, for which partner, what, and how it ended.

    Written unsealed (`seq`, `prev_hash`, `hash` null), in the mutation's own transaction.
    The sealer (gateway/audit.py `seal`) then gives it the next chain position `seq` and
    `hash` = SHA-256(prev_hash + canonical JSON of the other fields), where `prev_hash` is
    the `hash` of the event at `seq - 1`; so changing, removing or reordering a sealed row
    breaks the chain from there on.
    """

    __tablename__ = "audit_events"

    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    client_id: Mapped[str] = mapped_column(sa.String(64))
    partner_id: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    operation: Mapped[str] = mapped_column(sa.String(128))
    #: "OK", a contract ErrorCode (FORBIDDEN, LIMIT_EXCEEDED, INSUFFICIENT_POINTS, ...) or
    #: GRAPHQL_VALIDATION_FAILED / GRAPHQL_PARSE_FAILED / INTERNAL_ERROR.
    outcome: Mapped[str] = mapped_column(sa.String(64))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    #: Position in the chain (1, 2, ...), set by the sealer; null while unsealed.
    seq: Mapped[int | None] = mapped_column(BigId, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64))
    hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)


class AuditChainHead(Base):
    """The single row (id 1) naming the newest sealed event of the chain.

    The sealer updates it in the same transaction as the events it seals (`events` is the
    last `seq`), so a truncated tail (rows deleted from the end) shows up in `audit verify`.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last_event_id: Mapped[int | None] = mapped_column(BigId)
    last_hash: Mapped[str] = mapped_column(sa.String(64))
    events: Mapped[int] = mapped_column(default=0)
