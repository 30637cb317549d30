"""Periodic jobs under a database lease: once per interval across processes, not once per process."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import composition
from gateway.db import Database, utcnow
from gateway.jobs import Job, JobContext, JobRegistry, Scheduler, acquire, lease_of, run_job

ROOT = Path(__file__).resolve().parents[2]


def _job(name: str, fn, interval: float = 60.0, timeout: float = 30.0, singleton: bool = True) -> Job:
    return Job(name=name, interval_seconds=interval, fn=fn, singleton=singleton, timeout_seconds=timeout)


async def test_two_processes_racing_for_a_due_job_run_it_once(db, settings):
    other = Database(settings.database_url)  # a second gateway process's engine
    runs = []

    async def work(ctx: JobContext) -> None:
        runs.append(ctx.db)
        await asyncio.sleep(0.2)

    job = _job("test.race", work)
    try:
        outcomes = await asyncio.gather(
            run_job(job, JobContext(db=db, settings=settings), owner="p1"),
            run_job(job, JobContext(db=other, settings=settings), owner="p2"),
        )
    finally:
        await other.dispose()
    assert sorted(o.ran for o in outcomes) == [False, True]
    assert len(runs) == 1


async def test_a_job_is_not_due_again_before_its_interval_unless_forced(db, settings):
    count = 0

    async def work(ctx):
        nonlocal count
        count += 1

    job = _job("test.interval", work, interval=3600)
    ctx = JobContext(db=db, settings=settings)
    assert (await run_job(job, ctx)).ran
    assert not (await run_job(job, ctx)).ran
    assert (await run_job(job, ctx, force=True)).ran
    assert count == 2
    lease = await lease_of(db, "test.interval")
    assert lease.runs == 2 and lease.owner is None
    assert lease.next_run_at > utcnow() + dt.timedelta(minutes=59)


async def test_a_failing_job_notes_its_error_and_stays_scheduled(db, settings):
    async def broken(ctx):
        raise RuntimeError("partner file server unreachable")

    outcome = await run_job(_job("test.broken", broken, interval=1), JobContext(db=db, settings=settings))
    assert outcome.ran and "unreachable" in outcome.error
    lease = await lease_of(db, "test.broken")
    assert "unreachable" in lease.last_error and lease.owner is None


async def test_a_job_that_overruns_its_timeout_is_stopped(db, settings):
    async def slow(ctx):
        await asyncio.sleep(5)

    outcome = await run_job(_job("test.slow", slow, timeout=0.2), JobContext(db=db, settings=settings))
    assert outcome.error.startswith("timed out")


async def test_the_lease_of_a_process_that_died_is_taken_over_after_it_expires(db, settings):
    start = utcnow()
    assert await acquire(db, "test.dead", owner="dead-process", lease_seconds=30, now=start)
    assert not await acquire(db, "test.dead", owner="alive", lease_seconds=30, now=start + dt.timedelta(seconds=10))
    assert await acquire(db, "test.dead", owner="alive", lease_seconds=30, now=start + dt.timedelta(seconds=31))


async def test_the_scheduler_runs_registered_jobs_in_the_background(db, settings):
    seen: list[str] = []

    async def tick(ctx):
        seen.append("singleton")

    async def everywhere(ctx):
        seen.append("local")

    jobs = {
        "test.tick": _job("test.tick", tick, interval=0.1),
        "test.local": _job("test.local", everywhere, interval=0.1, singleton=False),
    }
    scheduler = Scheduler(db=db, settings=settings, jobs=jobs, tick_seconds=0.05)
    await scheduler.start()
    try:
        for _ in range(100):
            if seen.count("singleton") >= 2 and seen.count("local") >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
    assert seen.count("singleton") >= 2 and seen.count("local") >= 2


def test_the_composition_root_gives_the_scheduler_every_package_s_jobs():
    jobs = composition.job_registry()
    assert set(jobs) == {
        "auth.purge_expired",
        "auth.rotate_keys_if_due",  # auth
        "connectors.sync",
        "webhooks.deliver",
        "webhooks.dispatch",  # connectors
        "points.expire",
        "redemptions.expire",
        "settlement.close_due",
        "reconciliation.recover",
        "audit.seal",  # gateway
    }
    assert jobs["connectors.sync"].timeout_seconds == 120 and not jobs["webhooks.deliver"].singleton
    assert jobs["points.expire"].singleton and jobs["points.expire"].timeout_seconds == 36_000


def test_a_registry_refuses_two_jobs_of_one_name():
    async def noop(ctx):
        return None

    jobs = JobRegistry()
    job = jobs.add(Job.every("test.registered", 30, noop))
    assert jobs["test.registered"] is job and job.singleton and job.timeout_seconds == 300
    with pytest.raises(ValueError, match="already registered"):
        jobs.add(Job.every("test.registered", 60, noop))
    with pytest.raises(ValueError):
        Job.every("test.zero", 0, noop)


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SECRET_KEY": "test-secret-key-not-for-production",
        "GATEWAY_ENV": "development",
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "jobs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_cli_sees_every_package_s_jobs_and_runs_one_under_its_lease(db, database_url):
    ran = await asyncio.to_thread(_cli, database_url, "run-once", "auth.purge_expired")
    assert ran.returncode == 0 and "auth.purge_expired done" in ran.stderr, ran.stderr

    listed = await asyncio.to_thread(_cli, database_url, "list")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert set(rows) == set(composition.job_registry())
    assert rows["auth.purge_expired"]["last_finished_at"] and rows["auth.purge_expired"]["last_error"] is None
    assert rows["webhooks.deliver"]["singleton"] is False

    unknown = await asyncio.to_thread(_cli, database_url, "run-once", "nope")
    assert unknown.returncode == 2 and "connectors.sync" in unknown.stderr
