"""Leases of periodic jobs: one row per job name, so that with several gateway processes
each job runs once per interval, not once per process (gateway/jobs.py)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base


class JobLease(Base):
    """Who runs a job now (`owner` until `lease_until`) and when it is due next.

    A process takes the lease with a conditional UPDATE (`WHERE lease_until < now AND
    next_run_at <= now`): of several processes racing, exactly one row update succeeds.
    """

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    owner: Mapped[str | None] = mapped_column(sa.String(100))
    lease_until: Mapped[dt.datetime]
    next_run_at: Mapped[dt.datetime]
    last_started_at: Mapped[dt.datetime | None]
    last_finished_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    runs: Mapped[int] = mapped_column(default=0)


__all__ = ["JobLease"]
