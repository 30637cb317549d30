"""Small builders for connector tests."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from connectors.registry import registry
from gateway import connectors as service
from gateway import members
from gateway.models import ConnectorConfig, ConnectorJob, OutboxEvent, Partner

SEOUL = ZoneInfo("Asia/Seoul")
SECRET_KEY = "test-secret-key-not-for-production"
#: Fast retries for tests: a failing call is tried twice, 10-20 ms apart.
FAST_RETRY = {"attempts": 2, "initial_seconds": 0.01, "max_seconds": 0.02, "jitter_seconds": 0}


def walk_day(back: int = 2) -> dt.date:
    """A recent date in Asia/Seoul that is not the walking day (no multiplier)."""
    day = dt.datetime.now(SEOUL).date() - dt.timedelta(days=back)
    return day if day.day != 11 else day - dt.timedelta(days=1)


async def configure(
    db,
    partner: Partner,
    kind: str,
    jobs: list[str],
    config: dict,
    *,
    credentials: dict | None = None,
    schedule_seconds: int | None = None,
) -> ConnectorConfig:
    checked = registry.validate(kind, jobs, config)
    async with db.transaction() as session:
        partner = await session.get(Partner, partner.id)
        return await service.configure(
            session=session,
            secret_key=SECRET_KEY,
            partner=partner,
            kind=kind,
            jobs=[ConnectorJob(j) for j in jobs],
            config=checked,
            credentials=credentials,
            schedule_seconds=schedule_seconds,
        )


async def connector_of(db, connector_id: int) -> ConnectorConfig:
    async with db.session() as session:
        return await session.get(ConnectorConfig, connector_id)


async def available(db, operator_id: int, external_id: str) -> int:
    async with db.session() as session:
        member = await members.get_member(session, operator_id, external_id)
        return 0 if member is None else (await members.balance(session, member)).available


async def status_events(db) -> list[tuple[str, str]]:
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(OutboxEvent.payload)
                .where(OutboxEvent.type == "connector.status_changed")
                .order_by(OutboxEvent.id)
            )
        ).scalars()
        return [(p["previousStatus"], p["status"]) for p in rows]
