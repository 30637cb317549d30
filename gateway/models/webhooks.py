"""Webhook endpoints partners register, and one delivery per (event, endpoint)."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class DeliveryStatus(str, enum.Enum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class WebhookEndpoint(IdMixin, Base):
    """A partner's URL and the event types it wants. The signing secret is sealed at rest
    (gateway/secretbox.py) and shown to the partner once, when the endpoint is created."""

    __tablename__ = "webhook_endpoints"

    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    url: Mapped[str] = mapped_column(sa.String(2048))
    event_types: Mapped[list] = mapped_column(sa.JSON, default=list)
    secret: Mapped[str] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(default=True)
    #: Why it was switched off: "gone" (the endpoint answered 410) or "deleted".
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(200))
    deleted_at: Mapped[dt.datetime | None]
    #: The newest outbox event when it was registered: it gets the events after that one.
    after_event_id: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDelivery(IdMixin, Base):
    """One event for one endpoint. `event_id` is the outbox event's public id ("evt_..."),
    sent as `webhook-id` on every attempt. Delivery workers claim a due row by setting
    `lease_owner`/`lease_until` (FOR UPDATE SKIP LOCKED on PostgreSQL)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "outbox_event_id"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_partner", "partner_id", "id"),
    )

    outbox_event_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("outbox_events.id"))
    event_id: Mapped[str] = mapped_column(sa.String(40))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    endpoint_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("webhook_endpoints.id"))
    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"))
    status: Mapped[DeliveryStatus] = mapped_column(
        sa.Enum(DeliveryStatus, native_enum=False, length=20, validate_strings=True), default=DeliveryStatus.PENDING
    )
    #: Every attempt ever made; `round_attempts` counts those since the last (re)delivery
    #: request and picks the next wait from the retry schedule.
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    round_attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    next_attempt_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(sa.String(100))
    lease_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class WebhookDispatchState(Base):
    """How far the dispatcher has turned outbox events into deliveries (one row, "outbox")."""

    __tablename__ = "webhook_dispatch_state"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    #: Every outbox event with id <= position has its deliveries.
    position: Mapped[int] = mapped_column(default=0)
    #: Since when a hole in the outbox ids (a transaction not yet committed, or rolled back)
    #: has held the position back.
    gap_since: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


__all__ = ["DeliveryStatus", "WebhookDelivery", "WebhookDispatchState", "WebhookEndpoint"]
