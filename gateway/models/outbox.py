"""Outbox of domain events, written in the same transaction as the change they report."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class OutboxEvent(IdMixin, Base):
    """One domain event. `id` orders events; `event_id` ("evt_...") is what partners see
    (the Standard Webhooks `webhook-id`)."""

    __tablename__ = "outbox_events"

    event_id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    type: Mapped[str] = mapped_column(sa.String(64), index=True)
    payload: Mapped[dict] = mapped_column(sa.JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class OutboxRecipient(Base):
    """A partner an event concerns (who may receive it). Keyed (partner_id, event id) so a
    partner's events are one index range scan."""

    __tablename__ = "outbox_recipients"

    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("outbox_events.id"), primary_key=True)


__all__ = ["OutboxEvent", "OutboxRecipient"]
