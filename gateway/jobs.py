"""Periodic jobs, run once per interval across all gateway processes.

Each package says which jobs it has in a `register_jobs(jobs)` function, and the composition
root (`gateway.composition.job_registry()`, called by `create_app` and the CLI) calls them
in turn; nothing registers itself at import:

    from gateway.jobs import Job, JobContext, JobRegistry

    async def expire_holds_job(ctx: JobContext) -> None:
        async with ctx.db.transaction() as session:
            await expire_holds(session=session, now=utcnow())

    def register_jobs(jobs: JobRegistry) -> None:
        jobs.add(Job.every("ledger.expire_holds", 60, expire_holds_job))

The scheduler, started from the app's lifespan when `settings.scheduler` is on, looks at each
job of the registry it was given every tick:

* a *singleton* job (the default) runs in one process at a time: the process takes the job's
  lease row (`job_leases`) with a conditional UPDATE (`WHERE lease_until < now AND
  next_run_at <= now`); exactly one of several racing processes succeeds. It releases the
  lease when done and sets `next_run_at = finish + interval`. A process that dies holding a
  lease loses it after `timeout_seconds` plus a margin.
* a job made with `singleton=False` runs in every process (work that is itself claimed
  row by row, such as webhook delivery workers).

Each run is bounded by the job's `timeout_seconds`; a failing job is logged, noted on its
lease row (`last_error`) and tried again at its next interval. Jobs never run inside a
request's transaction.

`mileage-gateway jobs list` shows the jobs and their leases; `mileage-gateway jobs run-once
NAME` runs one now (still under its lease, so never alongside another process's run).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gateway.db import Database, utcnow
from gateway.models.jobs import JobLease
from gateway.settings import Settings

log = logging.getLogger("gateway.jobs")

#: Extra lease time beyond a job's timeout before another process may take it over.
LEASE_MARGIN_SECONDS = 30.0
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass
class JobContext:
    """What a job function gets: the database, the settings and (under the app) its AppState."""

    db: Database
    settings: Settings
    state: Any = None
    job: Job | None = None


JobFn = Callable[[JobContext], Awaitable[Any]]


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: float
    fn: JobFn
    singleton: bool = True
    timeout_seconds: float = 300.0

    @property
    def lease_seconds(self) -> float:
        return self.timeout_seconds + LEASE_MARGIN_SECONDS

    @classmethod
    def every(
        cls,
        name: str,
        interval_seconds: float,
        fn: JobFn,
        *,
        singleton: bool = True,
        timeout_seconds: float | None = None,
    ) -> Job:
        """The job `name`: `await fn(ctx)` every `interval_seconds`.

        `timeout_seconds` bounds one run (default: ten intervals, at least a minute)."""
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        timeout = float(timeout_seconds) if timeout_seconds else max(60.0, 10.0 * float(interval_seconds))
        return cls(
            name=name, interval_seconds=float(interval_seconds), fn=fn, singleton=singleton, timeout_seconds=timeout
        )


class JobRegistry(Mapping[str, Job]):
    """The jobs one process knows, by name: filled by the packages' `register_jobs(jobs)`
    functions, which the composition root calls; the scheduler and the CLI read it."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def add(self, job: Job) -> Job:
        """Add `job`; a second job of the same name is a wiring mistake."""
        if job.name in self._jobs and self._jobs[job.name] != job:
            raise ValueError(f"a job named {job.name!r} is already registered")
        self._jobs[job.name] = job
        return job

    def __getitem__(self, name: str) -> Job:
        return self._jobs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)


def new_owner() -> str:
    """An identity for this process's scheduler (host, pid and a random part)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


# ---------------------------------------------------------------- leases


def _insert_ignore(dialect: str, model, values: list[dict], key: list[str]):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).values(values).on_conflict_do_nothing(index_elements=key)


async def ensure_leases(db: Database, names: Iterable[str], *, now: dt.datetime | None = None) -> None:
    """Create the lease rows that do not exist yet (due at once, free)."""
    names = sorted(set(names))
    if not names:
        return
    now = now or utcnow()
    values = [dict(name=n, owner=None, lease_until=_EPOCH, next_run_at=now, runs=0) for n in names]
    async with db.transaction() as session:
        await session.execute(_insert_ignore(db.dialect, JobLease, values, ["name"]))


async def acquire(
    db: Database, name: str, *, owner: str, lease_seconds: float, now: dt.datetime | None = None, force: bool = False
) -> bool:
    """Take the job's lease if it is free and the job is due (`force`: due or not)."""
    now = now or utcnow()
    conditions = [JobLease.name == name, JobLease.lease_until < now]
    if not force:
        conditions.append(JobLease.next_run_at <= now)
    for _ in range(2):
        async with db.transaction() as session:
            result = await session.execute(
                sa.update(JobLease)
                .where(*conditions)
                .values(owner=owner, lease_until=now + dt.timedelta(seconds=lease_seconds), last_started_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                return True
            if await session.get(JobLease, name) is not None:
                return False
        await ensure_leases(db, [name], now=now)  # first run of this job anywhere
    return False


async def release(
    db: Database,
    name: str,
    *,
    owner: str,
    next_run_at: dt.datetime,
    error: str | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Give the lease back and set when the job is due next (only if `owner` still holds it)."""
    now = now or utcnow()
    async with db.transaction() as session:
        await session.execute(
            sa.update(JobLease)
            .where(JobLease.name == name, JobLease.owner == owner)
            .values(
                owner=None,
                lease_until=now,
                next_run_at=next_run_at,
                last_finished_at=now,
                last_error=error[:2000] if error else None,
                runs=JobLease.runs + 1,
            )
            .execution_options(synchronize_session=False)
        )


async def lease_of(db: Database, name: str) -> JobLease | None:
    async with db.session() as session:
        return await session.get(JobLease, name)


@dataclass(frozen=True)
class JobOutcome:
    name: str
    ran: bool
    error: str | None = None
    result: Any = None


async def run_job(
    job: Job,
    ctx: JobContext,
    *,
    owner: str | None = None,
    force: bool = False,
    clock: Callable[[], dt.datetime] = utcnow,
) -> JobOutcome:
    """Run `job` once if this process gets its lease (`force`: even if not yet due).

    Returns `ran=False` when another process holds the lease (or, without force, it is not due)."""
    owner = owner or new_owner()
    if job.singleton and not await acquire(
        ctx.db, job.name, owner=owner, lease_seconds=job.lease_seconds, now=clock(), force=force
    ):
        return JobOutcome(job.name, ran=False)
    ctx = JobContext(db=ctx.db, settings=ctx.settings, state=ctx.state, job=job)
    error = None
    result = None
    try:
        result = await asyncio.wait_for(job.fn(ctx), timeout=job.timeout_seconds)
    except TimeoutError:
        error = f"timed out after {job.timeout_seconds:g} s"
        log.warning("job %s %s", job.name, error)
    except Exception as exc:  # noqa: BLE001 - a failing job must not stop the scheduler
        error = f"{type(exc).__name__}: {exc}"
        log.exception("job %s failed", job.name)
    finally:
        if job.singleton:
            finished = clock()
            await asyncio.shield(
                release(
                    ctx.db,
                    job.name,
                    owner=owner,
                    next_run_at=finished + dt.timedelta(seconds=job.interval_seconds),
                    error=error,
                    now=finished,
                )
            )
    return JobOutcome(job.name, ran=True, error=error, result=result)


# ---------------------------------------------------------------- the scheduler


class Scheduler:
    """Runs the jobs it is given (a `JobRegistry`) in background tasks of the current event loop."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        state: Any = None,
        tick_seconds: float = 1.0,
        jobs: Mapping[str, Job],
        owner: str | None = None,
    ) -> None:
        self.ctx = JobContext(db=db, settings=settings, state=state)
        self.tick_seconds = tick_seconds
        self.jobs = jobs
        self.owner = owner or new_owner()
        self._next_check: dict[str, float] = {}
        self._running: dict[str, asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None

    async def start(self) -> None:
        await ensure_leases(self.ctx.db, [j.name for j in self.jobs.values() if j.singleton])
        self._loop_task = asyncio.create_task(self._loop(), name="gateway-scheduler")

    async def stop(self) -> None:
        tasks = [t for t in [self._loop_task, *self._running.values()] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._running.clear()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for job in list(self.jobs.values()):
                if job.name in self._running or self._next_check.get(job.name, 0.0) > loop.time():
                    continue
                self._running[job.name] = asyncio.create_task(self._tick(job), name=f"job:{job.name}")
            await asyncio.sleep(self.tick_seconds)

    async def _tick(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        delay = job.interval_seconds
        try:
            if job.singleton:
                await run_job(job, self.ctx, owner=self.owner)
                row = await lease_of(self.ctx.db, job.name)
                if row is not None:
                    now = utcnow()
                    due = row.next_run_at
                    if row.lease_until > now:  # another process runs it: look again within an interval
                        due = max(due, min(row.lease_until, now + dt.timedelta(seconds=job.interval_seconds)))
                    delay = (due - now).total_seconds()
            else:
                await run_job(job, self.ctx, owner=self.owner)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
            log.exception("scheduler could not run %s", job.name)
            delay = min(job.interval_seconds, 30.0)
        finally:
            self._next_check[job.name] = loop.time() + max(delay, 0.0)
            self._running.pop(job.name, None)


# ---------------------------------------------------------------- app lifespan


def on_shutdown(state: Any, hook: Callable[[], Awaitable[None]]) -> None:
    """Ask the app to await `hook()` when it stops (e.g. to finish background connector runs)."""
    state_extra(state).setdefault("shutdown_hooks", []).append(hook)


def state_extra(state: Any) -> dict:
    """The app state's dict of per-process services (`AppState.extra`; made if missing)."""
    extra = getattr(state, "extra", None)
    if extra is None:
        extra = {}
        state.extra = extra
    return extra


async def start_background(state: Any, jobs: Mapping[str, Job]) -> Scheduler | None:
    """Start the scheduler for the app over `jobs` (when `settings.scheduler` is on)."""
    if not state.settings.scheduler:
        return None
    scheduler = Scheduler(db=state.db, settings=state.settings, state=state, jobs=jobs)
    await scheduler.start()
    state_extra(state)["scheduler"] = scheduler
    return scheduler


async def stop_background(state: Any) -> None:
    """Stop the scheduler and run the shutdown hooks, newest first."""
    extra = state_extra(state)
    scheduler = extra.pop("scheduler", None)
    if scheduler is not None:
        await scheduler.stop()
    for hook in reversed(extra.pop("shutdown_hooks", [])):
        try:
            await hook()
        except Exception:  # noqa: BLE001 - shutting down regardless
            log.exception("shutdown hook failed")


# ---------------------------------------------------------------- command line


def register_cli(subparsers, *, jobs: Mapping[str, Job]) -> None:
    """The `jobs` commands, over the registry the composition root built."""
    parser = subparsers.add_parser("jobs", help="periodic jobs (hold expiry, connector syncs, webhooks...)")
    parser.set_defaults(jobs=jobs)
    sub = parser.add_subparsers(dest="jobs_command", required=True)
    sub.add_parser("list", help="registered jobs and their leases, one JSON object a line").set_defaults(func=_cmd_list)
    once = sub.add_parser("run-once", help="run one job now (under its lease)")
    once.add_argument("name")
    once.set_defaults(func=_cmd_run_once)


def _cmd_list(args) -> int:
    async def main() -> list[dict]:
        settings = Settings.from_env()
        db = Database(settings.database_url)
        try:
            rows = []
            for job in sorted(args.jobs.values(), key=lambda j: j.name):
                lease = await lease_of(db, job.name) if job.singleton else None
                rows.append(
                    dict(
                        name=job.name,
                        interval_seconds=job.interval_seconds,
                        singleton=job.singleton,
                        next_run_at=lease.next_run_at.isoformat() if lease else None,
                        owner=lease.owner if lease else None,
                        last_finished_at=lease.last_finished_at.isoformat()
                        if lease and lease.last_finished_at
                        else None,
                        last_error=lease.last_error if lease else None,
                    )
                )
            return rows
        finally:
            await db.dispose()

    for row in asyncio.run(main()):
        print(json.dumps(row))
    return 0


def _cmd_run_once(args) -> int:
    job = args.jobs.get(args.name)
    if job is None:
        print(f"no job named {args.name!r}; known: {', '.join(sorted(args.jobs)) or 'none'}", file=sys.stderr)
        return 2

    async def main() -> JobOutcome:
        settings = Settings.from_env()
        db = Database(settings.database_url)
        try:
            return await run_job(job, JobContext(db=db, settings=settings), force=True)
        finally:
            await db.dispose()

    outcome = asyncio.run(main())
    if not outcome.ran:
        print(f"{job.name} is running in another process now", file=sys.stderr)
        return 3
    if outcome.error:
        print(f"{job.name} failed: {outcome.error}", file=sys.stderr)
        return 1
    print(f"{job.name} done", file=sys.stderr)
    return 0


__all__ = [
    "Job",
    "JobContext",
    "JobOutcome",
    "JobRegistry",
    "Scheduler",
    "acquire",
    "on_shutdown",
    "release",
    "run_job",
    "start_background",
    "state_extra",
    "stop_background",
]
