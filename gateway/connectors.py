"""Connectors, the domain half: per-partner configuration, runs, cursors and health.

A connector is one partner system the gateway pulls records from or pushes documents to.
Its type (`kind`, e.g. "http-json") is code found through the connector registry
(connectors/registry.py); this module stores what the gateway knows about each configured
connector and decides its health. It never talks to a partner: connectors/runner.py does,
outside any database transaction, and reports back here.

Health is a circuit breaker whose state is the connector's `status`:

* HEALTHY - the last run reached the partner's system.
* DEGRADED - the last run(s) failed to reach it (after their retries), fewer than
  `failure_threshold` times in a row; runs are still tried.
* DOWN - `failure_threshold` failures in a row: no run is tried before `retry_at` (then one
  trial run: success closes the breaker, failure keeps it open for another cooldown).
  `syncConnector` answers UPSTREAM_UNAVAILABLE meanwhile.
* DISABLED - switched off by an administrator.

The faces reach the partner-facing half only through this module: `check_config` and
`request_run` take the connector types (`ConnectorTypes`) and the runner (`RunLauncher`) the
composition root hands in (gateway/composition.py `wire_connectors`), declared here as
Protocols, so nothing here imports connectors/.

Every change of status writes a `connector.status_changed` event for the partner and the
program office (ADMIN partners). Only failures to reach the partner's system count; a run
that fails on the partner's data (a malformed record) fails without moving the breaker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import utcnow
from gateway.errors import InvalidInput, InvalidState, NotFound, UpstreamUnavailable
from gateway.models.connectors import (
    ConnectorConfig,
    ConnectorJob,
    ConnectorRun,
    ConnectorRunStatus,
    ConnectorStatus,
)
from gateway.models.partners import Partner, PartnerKind
from gateway.outbox import emit
from gateway.secretbox import seal_json, unseal_json

#: Which partner kinds each job serves: activity and reconciliation come from operators,
#: statements go to sponsors.
JOB_PARTNER_KINDS: dict[ConnectorJob, frozenset[PartnerKind]] = {
    ConnectorJob.PULL_ACTIVITY: frozenset({PartnerKind.OPERATOR}),
    ConnectorJob.PULL_RECONCILIATION: frozenset({PartnerKind.OPERATOR}),
    ConnectorJob.PUSH_STATEMENT: frozenset({PartnerKind.SPONSOR}),
}
MIN_SCHEDULE_SECONDS = 10
#: How many handled report keys a connector remembers per job (`record_progress(remember=)`).
SEEN_KEEP = 200


class ConnectorTypes(Protocol):
    """The installed connector types (connectors/registry.py's `registry`)."""

    def validate(self, kind: str, jobs: Iterable[str], config: Mapping) -> dict: ...

    async def vet_outbound(self, kind: str, config: dict, *, allow_private: bool) -> None: ...


class RunLauncher(Protocol):
    """Executes started runs against partners' systems in background tasks of this process
    (connectors/runner.py's `ConnectorRunner`)."""

    @property
    def stale_after(self) -> dt.timedelta: ...

    def launch(self, run_id: int) -> object: ...


@dataclass(frozen=True)
class Breaker:
    """When the breaker opens (failures in a row) and for how long (seconds)."""

    failure_threshold: int = 3
    cooldown_seconds: float = 300.0


def credentials_purpose(partner_id: int, kind: str) -> str:
    return f"connector-credentials:{partner_id}:{kind}"


def credentials_of(connector: ConnectorConfig, secret_key: str) -> dict:
    """The connector's credentials, unsealed (for the runner only; never shown to partners)."""
    return unseal_json(
        secret_key, connector.credentials, purpose=credentials_purpose(connector.partner_id, connector.kind)
    )


# ---------------------------------------------------------------- configuration


async def configure(
    *,
    session: AsyncSession,
    secret_key: str,
    partner: Partner,
    kind: str,
    jobs: Sequence[ConnectorJob],
    config: dict,
    credentials: dict | None = None,
    schedule_seconds: int | None = None,
    enabled: bool = True,
    now: dt.datetime | None = None,
) -> ConnectorConfig:
    """Create or change the partner's connector of type `kind` (ADMIN's business).

    `credentials=None` keeps the stored ones; `{}` removes them. The caller has checked with
    the registry that `kind` exists, serves `jobs` and accepts `config`."""
    now = now or utcnow()
    jobs = list(dict.fromkeys(ConnectorJob(j) for j in jobs))
    if not jobs:
        raise InvalidInput("a connector serves at least one job", field=["input", "jobs"])
    for job in jobs:
        if partner.kind not in JOB_PARTNER_KINDS[job]:
            allowed = ", ".join(sorted(k.value for k in JOB_PARTNER_KINDS[job]))
            raise InvalidInput(f"{job.value} is for {allowed} partners", field=["input", "jobs"])
    if schedule_seconds is not None and schedule_seconds < MIN_SCHEDULE_SECONDS:
        raise InvalidInput(
            f"scheduleSeconds must be at least {MIN_SCHEDULE_SECONDS}", field=["input", "scheduleSeconds"]
        )
    siblings = (
        (
            await session.execute(
                sa.select(ConnectorConfig).where(ConnectorConfig.partner_id == partner.id).with_for_update()
            )
        )
        .scalars()
        .all()
    )
    connector = next((c for c in siblings if c.kind == kind), None)
    for other in siblings:
        if other is not connector and other.status != ConnectorStatus.DISABLED:
            taken = set(other.jobs) & {j.value for j in jobs}
            if taken and enabled:
                raise InvalidInput(
                    f"{', '.join(sorted(taken))} is served by the partner's {other.kind} connector already",
                    field=["input", "jobs"],
                )
    if connector is None:
        connector = ConnectorConfig(
            partner_id=partner.id,
            kind=kind,
            cursors={},
            status=ConnectorStatus.HEALTHY,
            consecutive_failures=0,
            created_at=now,
        )
        session.add(connector)
    connector.jobs = [j.value for j in jobs]
    connector.config = dict(config)
    if credentials is not None:
        connector.credentials = (
            seal_json(secret_key, credentials, purpose=credentials_purpose(partner.id, kind)) if credentials else None
        )
    connector.schedule_seconds = schedule_seconds
    connector.next_sync_at = now if schedule_seconds else None
    connector.updated_at = now
    await session.flush()
    if not enabled and connector.status != ConnectorStatus.DISABLED:
        await _set_status(session, connector, ConnectorStatus.DISABLED, now=now)
    elif enabled and connector.status == ConnectorStatus.DISABLED:
        connector.consecutive_failures = 0
        connector.retry_at = None
        await _set_status(session, connector, ConnectorStatus.HEALTHY, now=now)
    await session.flush()
    return connector


def connectors_of(partner_id: int | None) -> sa.Select:
    """Connectors of a partner (every partner's for None, i.e. ADMIN), oldest first."""
    stmt = sa.select(ConnectorConfig).order_by(ConnectorConfig.id)
    if partner_id is not None:
        stmt = stmt.where(ConnectorConfig.partner_id == partner_id)
    return stmt


async def for_job(
    session: AsyncSession, partner_id: int, job: ConnectorJob, *, lock: bool = False
) -> ConnectorConfig | None:
    """The partner's connector serving `job` (an enabled one first)."""
    stmt = sa.select(ConnectorConfig).where(ConnectorConfig.partner_id == partner_id).order_by(ConnectorConfig.id)
    if lock:
        stmt = stmt.with_for_update()
    rows = [c for c in (await session.execute(stmt)).scalars() if job.value in (c.jobs or [])]
    rows.sort(key=lambda c: c.status == ConnectorStatus.DISABLED)
    return rows[0] if rows else None


def may_run(connector: ConnectorConfig, now: dt.datetime) -> bool:
    """The breaker lets a run through (not DISABLED; not DOWN before its retry time)."""
    if connector.status == ConnectorStatus.DISABLED:
        return False
    if connector.status == ConnectorStatus.DOWN and connector.retry_at is not None and connector.retry_at > now:
        return False
    return True


# ---------------------------------------------------------------- runs


async def check_config(
    *, types: ConnectorTypes, kind: str, jobs: Sequence[ConnectorJob], config: Mapping, allow_private: bool
) -> dict:
    """`config` as the type `kind` accepts it for `jobs`, the partner addresses in it vetted;
    InvalidInput naming the input field otherwise. It resolves host names: call it outside
    a transaction."""
    checked = types.validate(kind, [j.value for j in jobs], config)
    await types.vet_outbound(kind, checked, allow_private=allow_private)
    return checked


async def request_run(
    *, session: AsyncSession, launcher: RunLauncher, partner_id: int, job: ConnectorJob, now: dt.datetime
) -> tuple[ConnectorRun, bool]:
    """A manual run of the partner's connector for `job`; (run, created), as `start_run`.

    A created run is the caller's to launch, `launcher.launch(run.id)`, once its transaction
    has committed (the runner reads the run in a transaction of its own)."""
    return await start_run(
        session=session, partner_id=partner_id, job=job, trigger="manual", now=now, stale_after=launcher.stale_after
    )


async def start_run(
    *,
    session: AsyncSession,
    partner_id: int,
    job: ConnectorJob,
    trigger: str = "manual",
    now: dt.datetime | None = None,
    stale_after: dt.timedelta = dt.timedelta(minutes=10),
) -> tuple[ConnectorRun, bool]:
    """Record a new RUNNING run of the partner's connector for `job`; (run, created).

    If a run of that job is RUNNING already, that run is returned (created=False) rather than
    a second one started; one RUNNING for longer than `stale_after` is marked FAILED
    (its process stopped) and a new one starts. Raises NotFound (no connector serves the
    job), InvalidState (DISABLED) or UpstreamUnavailable (DOWN, before its retry time)."""
    now = now or utcnow()
    connector = await for_job(session, partner_id, job, lock=True)
    if connector is None:
        raise NotFound(f"The partner has no connector for {job.value}", field=["input", "job"])
    if connector.status == ConnectorStatus.DISABLED:
        raise InvalidState("The connector is disabled")
    if not may_run(connector, now):
        raise UpstreamUnavailable(
            f"The partner's system is DOWN after {connector.consecutive_failures} failed runs; "
            f"the next try is at {connector.retry_at.isoformat(timespec='seconds')}"
        )
    running = (
        (
            await session.execute(
                sa.select(ConnectorRun)
                .where(
                    ConnectorRun.connector_id == connector.id,
                    ConnectorRun.job == job,
                    ConnectorRun.status == ConnectorRunStatus.RUNNING,
                )
                .order_by(ConnectorRun.id.desc())
            )
        )
        .scalars()
        .all()
    )
    for run in running:
        if run.started_at > now - stale_after:
            return run, False
        run.status = ConnectorRunStatus.FAILED
        run.error = "abandoned: the process running it stopped before it finished"
        run.finished_at = now
    run = ConnectorRun(
        connector_id=connector.id,
        partner_id=partner_id,
        job=job,
        trigger=trigger,
        status=ConnectorRunStatus.RUNNING,
        records=0,
        detail={},
        started_at=now,
    )
    session.add(run)
    await session.flush()
    return run, True


async def get_run(session: AsyncSession, run_id: int, *, lock: bool = False) -> ConnectorRun:
    stmt = sa.select(ConnectorRun).where(ConnectorRun.id == run_id)
    if lock:
        stmt = stmt.with_for_update()
    run = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if run is None:
        raise NotFound("No such connector run")
    return run


async def get_connector(session: AsyncSession, connector_id: int, *, lock: bool = False) -> ConnectorConfig:
    stmt = sa.select(ConnectorConfig).where(ConnectorConfig.id == connector_id)
    if lock:
        stmt = stmt.with_for_update()
    connector = (await session.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
    if connector is None:
        raise NotFound("No such connector")
    return connector


async def record_progress(
    *,
    session: AsyncSession,
    run_id: int,
    cursor: str | None = None,
    advance_cursor: bool = True,
    records: int = 0,
    counts: dict[str, int] | None = None,
    detail: dict | None = None,
    remember: str | None = None,
) -> ConnectorRun:
    """Note what a run has applied: in the same transaction as the records themselves, so the
    stored cursor never runs ahead of (or behind) what the gateway has recorded.

    `remember` notes a key (e.g. a report's fingerprint) among the job's last
    `SEEN_KEEP` handled ones (`has_seen`)."""
    run = await get_run(session, run_id, lock=True)
    connector = await get_connector(session, run.connector_id, lock=True)
    if advance_cursor or remember:
        cursors = dict(connector.cursors or {})
        if advance_cursor:
            cursors[run.job.value] = cursor
        if remember:
            seen = [k for k in cursors.get(f"{run.job.value}:seen", []) if k != remember]
            cursors[f"{run.job.value}:seen"] = (seen + [remember])[-SEEN_KEEP:]
        connector.cursors = cursors
    run.records = (run.records or 0) + records
    merged = dict(run.detail or {})
    for key, n in (counts or {}).items():
        merged[key] = merged.get(key, 0) + n
    for key, value in (detail or {}).items():
        if isinstance(value, list):
            merged[key] = list(merged.get(key, [])) + value
        else:
            merged[key] = value
    run.detail = merged
    await session.flush()
    return run


def cursor_of(connector: ConnectorConfig, job: ConnectorJob) -> str | None:
    return (connector.cursors or {}).get(job.value)


def has_seen(connector: ConnectorConfig, job: ConnectorJob, key: str) -> bool:
    return key in (connector.cursors or {}).get(f"{job.value}:seen", [])


async def finish_run(
    *,
    session: AsyncSession,
    run_id: int,
    error: str | None = None,
    upstream_failure: bool = False,
    breaker: Breaker = Breaker(),
    now: dt.datetime | None = None,
) -> ConnectorRun:
    """End a run: COMPLETED without `error`, FAILED with it; move the breaker.

    A completed run closes the breaker (HEALTHY); a run that failed to reach the partner's
    system (`upstream_failure`) counts towards opening it. A run no longer RUNNING (marked
    abandoned meanwhile) is left as it is."""
    now = now or utcnow()
    run = await get_run(session, run_id, lock=True)
    if run.status != ConnectorRunStatus.RUNNING:
        return run
    connector = await get_connector(session, run.connector_id, lock=True)
    run.finished_at = now
    run.status = ConnectorRunStatus.FAILED if error else ConnectorRunStatus.COMPLETED
    run.error = error[:4000] if error else None
    connector.updated_at = now
    if error is None:
        connector.last_sync_at = now
        connector.last_error = None
        connector.consecutive_failures = 0
        connector.retry_at = None
        if connector.status in (ConnectorStatus.DEGRADED, ConnectorStatus.DOWN):
            await _set_status(session, connector, ConnectorStatus.HEALTHY, now=now)
    else:
        connector.last_error = run.error
        if upstream_failure and connector.status != ConnectorStatus.DISABLED:
            connector.consecutive_failures = (connector.consecutive_failures or 0) + 1
            if connector.consecutive_failures >= breaker.failure_threshold:
                connector.retry_at = now + dt.timedelta(seconds=breaker.cooldown_seconds)
                await _set_status(session, connector, ConnectorStatus.DOWN, now=now)
            else:
                await _set_status(session, connector, ConnectorStatus.DEGRADED, now=now)
    await session.flush()
    return run


async def _set_status(
    session: AsyncSession, connector: ConnectorConfig, status: ConnectorStatus, *, now: dt.datetime
) -> None:
    previous = connector.status
    if previous == status:
        return
    connector.status = status
    partner = await session.get(Partner, connector.partner_id)
    admins = (await session.execute(sa.select(Partner.id).where(Partner.kind == PartnerKind.ADMIN))).scalars().all()
    await emit(
        session=session,
        type="connector.status_changed",
        partner_ids=[connector.partner_id, *admins],
        data={
            "partner": partner.code if partner else None,
            "kind": connector.kind,
            "previousStatus": previous.value if previous else None,
            "status": status.value,
            "error": connector.last_error if status in (ConnectorStatus.DEGRADED, ConnectorStatus.DOWN) else None,
            "retryAt": connector.retry_at.isoformat()
            if status == ConnectorStatus.DOWN and connector.retry_at
            else None,
            "at": now.isoformat(),
        },
        now=now,
    )


# ---------------------------------------------------------------- schedule


async def start_due_runs(
    *, session: AsyncSession, now: dt.datetime | None = None, stale_after: dt.timedelta = dt.timedelta(minutes=10)
) -> list[ConnectorRun]:
    """Start a run of each job of each connector that is due by its schedule (or whose DOWN
    breaker may be tried again) and move its next sync time on. New runs only."""
    now = now or utcnow()
    rows = (
        (
            await session.execute(
                sa.select(ConnectorConfig)
                .where(
                    ConnectorConfig.schedule_seconds.is_not(None),
                    ConnectorConfig.status != ConnectorStatus.DISABLED,
                    sa.or_(
                        ConnectorConfig.next_sync_at <= now,
                        sa.and_(ConnectorConfig.status == ConnectorStatus.DOWN, ConnectorConfig.retry_at <= now),
                    ),
                )
                .order_by(ConnectorConfig.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    started: list[ConnectorRun] = []
    for connector in rows:
        if not may_run(connector, now):
            continue
        connector.next_sync_at = now + dt.timedelta(seconds=connector.schedule_seconds)
        for job in _jobs(connector.jobs):
            try:
                async with session.begin_nested():
                    run, created = await start_run(
                        session=session,
                        partner_id=connector.partner_id,
                        job=job,
                        trigger="schedule",
                        now=now,
                        stale_after=stale_after,
                    )
            except (NotFound, InvalidState, UpstreamUnavailable):
                continue
            if created:
                started.append(run)
    await session.flush()
    return started


def _jobs(values: Iterable[str]) -> list[ConnectorJob]:
    return [ConnectorJob(v) for v in values or []]


async def recent_runs(
    session: AsyncSession, connector_ids: Sequence[int], per_connector: int
) -> dict[int, list[ConnectorRun]]:
    """The newest `per_connector` runs of each connector, newest first (one statement)."""
    if not connector_ids or per_connector <= 0:
        return {cid: [] for cid in connector_ids}
    ranked = (
        sa.select(
            ConnectorRun.id,
            sa.func.row_number()
            .over(partition_by=ConnectorRun.connector_id, order_by=ConnectorRun.id.desc())
            .label("rank"),
        )
        .where(ConnectorRun.connector_id.in_(set(connector_ids)))
        .subquery()
    )
    rows = (
        await session.execute(
            sa.select(ConnectorRun)
            .join(ranked, ranked.c.id == ConnectorRun.id)
            .where(ranked.c.rank <= per_connector)
            .order_by(ConnectorRun.id.desc())
        )
    ).scalars()
    grouped: dict[int, list[ConnectorRun]] = {cid: [] for cid in connector_ids}
    for run in rows:
        grouped[run.connector_id].append(run)
    return grouped


__all__ = [
    "Breaker",
    "ConnectorTypes",
    "JOB_PARTNER_KINDS",
    "RunLauncher",
    "check_config",
    "configure",
    "connectors_of",
    "credentials_of",
    "cursor_of",
    "finish_run",
    "for_job",
    "get_connector",
    "get_run",
    "has_seen",
    "may_run",
    "recent_runs",
    "record_progress",
    "start_due_runs",
    "start_run",
]
