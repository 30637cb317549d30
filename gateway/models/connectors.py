"""Connectors: a partner's own system the gateway pulls from or pushes to, and each run."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base, BigId, IdMixin, utcnow


class ConnectorStatus(str, enum.Enum):
    """The circuit breaker's state: HEALTHY (closed), DEGRADED (failing, still tried),
    DOWN (open: not tried until `retry_at`), DISABLED (switched off by an administrator)."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"
    DISABLED = "DISABLED"


class ConnectorJob(str, enum.Enum):
    PULL_ACTIVITY = "PULL_ACTIVITY"
    PULL_RECONCILIATION = "PULL_RECONCILIATION"
    PUSH_STATEMENT = "PUSH_STATEMENT"


class ConnectorRunStatus(str, enum.Enum):
    """The contract shows it as ReconciliationStatus (same three values)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


def _enum(cls):
    return sa.Enum(cls, native_enum=False, length=24, validate_strings=True)


class ConnectorConfig(IdMixin, Base):
    """One connector of a partner: its registered type (`kind`), the jobs it serves, its
    settings, its credentials (sealed, gateway/secretbox.py), a cursor per job and its health."""

    __tablename__ = "connector_configs"
    __table_args__ = (sa.UniqueConstraint("partner_id", "kind"),)

    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    #: ConnectorJob values this connector serves; a partner has at most one connector per job.
    jobs: Mapped[list] = mapped_column(sa.JSON, default=list)
    config: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    #: Sealed JSON object (tokens, passwords); never shown back.
    credentials: Mapped[str | None] = mapped_column(sa.Text)
    #: Per job: the position after the last record applied (opaque to the gateway).
    cursors: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    status: Mapped[ConnectorStatus] = mapped_column(_enum(ConnectorStatus), default=ConnectorStatus.HEALTHY)
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: While DOWN: not tried before this instant (then one trial run decides).
    retry_at: Mapped[dt.datetime | None]
    #: Pull/push every this many seconds (None: on demand only).
    schedule_seconds: Mapped[int | None] = mapped_column(sa.Integer)
    next_sync_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    last_sync_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ConnectorRun(IdMixin, Base):
    """One execution of one job of a connector: RUNNING, then COMPLETED or FAILED."""

    __tablename__ = "connector_runs"
    __table_args__ = (sa.Index("ix_connector_runs_connector_job", "connector_id", "job", "status"),)

    connector_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("connector_configs.id"))
    partner_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("partners.id"), index=True)
    job: Mapped[ConnectorJob] = mapped_column(_enum(ConnectorJob))
    #: "manual" (syncConnector, the CLI) or "schedule".
    trigger: Mapped[str] = mapped_column(sa.String(16), default="manual")
    status: Mapped[ConnectorRunStatus] = mapped_column(_enum(ConnectorRunStatus), default=ConnectorRunStatus.RUNNING)
    #: Records received from (or sent to) the partner's system.
    records: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: Outcome counts (e.g. {"CREDITED": 3, "UNCHANGED": 2}) and references of what it started.
    detail: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]


__all__ = ["ConnectorConfig", "ConnectorJob", "ConnectorRun", "ConnectorRunStatus", "ConnectorStatus"]
