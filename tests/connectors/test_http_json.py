"""The `http-json` connector against a real (loopback) walking-app API."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import sqlalchemy as sa

from connectors.runner import ConnectorRunner
from gateway import connectors as service
from gateway.errors import UpstreamUnavailable
from gateway.models import (
    ConnectorJob,
    ConnectorRunStatus,
    ConnectorStatus,
    IssuedStatement,
    PartnerKind,
    ReconciliationRun,
    ReconciliationStatus,
)
from tests.connectors.helpers import FAST_RETRY, available, configure, connector_of, status_events, walk_day
from tests.gateway import factories
from tests.support.simulators import OperatorApi, operator_api  # noqa: F401  (fixture)

ACTIVITY = {
    "path": "/activity",
    "fields": {"member_external_id": "userId", "date": "day", "steps": "stepCount", "distance_meters": "meters"},
    "has_more": "has_more",
    "page_size": 2,
}


def api_config(api: OperatorApi, **extra) -> dict:
    return {
        "base_url": api.url,
        "auth": "bearer",
        "timeout_seconds": 2,
        "retry": FAST_RETRY,
        "activity": ACTIVITY,
        **extra,
    }


async def test_an_http_json_pull_credits_walking_and_a_second_pull_credits_nothing_new(db, settings, operator_api):
    async with db.transaction() as session:
        op = await factories.operator(session)
    day = walk_day()
    operator_api.add_activity("kim", day.isoformat(), 8000, 6000)
    operator_api.add_activity("lee", day.isoformat(), 12000, 9000)
    operator_api.add_activity("kim", (day - dt.timedelta(days=1)).isoformat(), 3000, 2100)
    connector = await configure(
        db, op, "http-json", ["PULL_ACTIVITY"], api_config(operator_api), credentials={"token": "sim-token"}
    )
    runner = ConnectorRunner(db=db, settings=settings)

    first = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert first.status == ConnectorRunStatus.COMPLETED, first.error
    assert first.records == 3 and first.detail["CREDITED"] == 3
    kim, lee = await available(db, op.id, "kim"), await available(db, op.id, "lee")
    assert kim > 0 and lee > 0
    assert (await connector_of(db, connector.id)).cursors["PULL_ACTIVITY"] == "3"

    second = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert second.status == ConnectorRunStatus.COMPLETED and second.records == 0
    assert (await available(db, op.id, "kim"), await available(db, op.id, "lee")) == (kim, lee)

    # Even a pull from the very beginning (a lost cursor) credits nothing twice.
    async with db.transaction() as session:
        row = await service.get_connector(session, connector.id, lock=True)
        row.cursors = {}
    third = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert third.records == 3 and third.detail == {"UNCHANGED": 3}
    assert (await available(db, op.id, "kim"), await available(db, op.id, "lee")) == (kim, lee)

    # New walking arrives at the partner: only that is credited.
    operator_api.add_activity("park", day.isoformat(), 5000, 4000)
    fourth = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert fourth.records == 1 and fourth.detail["CREDITED"] == 1
    assert await available(db, op.id, "park") > 0
    connector = await connector_of(db, connector.id)
    assert connector.status == ConnectorStatus.HEALTHY and connector.last_sync_at is not None
    assert operator_api.requests[0][1] == {"limit": "2"}  # the first page has no cursor


async def test_a_partner_api_that_fails_then_times_out_then_recovers_goes_degraded_down_healthy(
    db, settings, operator_api
):
    async with db.transaction() as session:
        op = await factories.operator(session)
        other = await factories.operator(session)
    operator_api.add_activity("kim", walk_day().isoformat(), 8000, 6000)
    config = api_config(operator_api, timeout_seconds=0.5, breaker={"failure_threshold": 2, "cooldown_seconds": 0.5})
    connector = await configure(db, op, "http-json", ["PULL_ACTIVITY"], config, credentials={"token": "sim-token"})
    healthy_api = OperatorApi().start()
    try:
        healthy_api.add_activity("choi", walk_day().isoformat(), 7000, 5000)
        await configure(
            db, other, "http-json", ["PULL_ACTIVITY"], api_config(healthy_api), credentials={"token": "sim-token"}
        )
        runner = ConnectorRunner(db=db, settings=settings)

        operator_api.fail_next(100, status=503)
        failed = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
        assert failed.status == ConnectorRunStatus.FAILED and "HTTP 503" in failed.error
        assert failed.detail["retries"] == 1  # tried twice
        assert (await connector_of(db, connector.id)).status == ConnectorStatus.DEGRADED

        operator_api.healthy()
        operator_api.hang_next(100, seconds=5)
        started = time.monotonic()

        async def timed(coro):
            result = await coro
            return result, time.monotonic()

        hanging = asyncio.create_task(timed(runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)))
        # Meanwhile another partner's connector and the gateway's own work go on.
        await asyncio.sleep(0.05)
        other_run = await runner.sync(partner_id=other.id, job=ConnectorJob.PULL_ACTIVITY)
        async with db.transaction() as session:
            await factories.member(session, other, "served-meanwhile")
        served_at = time.monotonic()
        assert other_run.status == ConnectorRunStatus.COMPLETED and await available(db, other.id, "choi") > 0
        timed_out, ended_at = await hanging
        assert served_at < ended_at  # served while the partner's API hung
        assert ended_at - started < 4  # two attempts of 0.5 s each, not two hangs of 5 s
        assert timed_out.status == ConnectorRunStatus.FAILED and "no answer within 0.5 s" in timed_out.error
        down = await connector_of(db, connector.id)
        assert down.status == ConnectorStatus.DOWN and down.retry_at is not None and "no answer" in down.last_error

        with pytest.raises(UpstreamUnavailable):  # the breaker is open: no call is made
            await runner.start(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
        operator_api.healthy()
        await asyncio.sleep(0.6)  # the cooldown passes: one trial run
        recovered = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
        assert recovered.status == ConnectorRunStatus.COMPLETED and recovered.records == 1
        healthy = await connector_of(db, connector.id)
        assert (
            healthy.status == ConnectorStatus.HEALTHY
            and healthy.last_error is None
            and healthy.consecutive_failures == 0
        )
        assert await status_events(db) == [("HEALTHY", "DEGRADED"), ("DEGRADED", "DOWN"), ("DOWN", "HEALTHY")]
    finally:
        healthy_api.stop()


async def test_a_malformed_record_fails_the_run_without_touching_health_or_cursor(db, settings, operator_api):
    async with db.transaction() as session:
        op = await factories.operator(session)
    operator_api.add_activity("kim", "yesterday-ish", 8000, 6000)
    connector = await configure(
        db, op, "http-json", ["PULL_ACTIVITY"], api_config(operator_api), credentials={"token": "sim-token"}
    )
    run = await ConnectorRunner(db=db, settings=settings).sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert run.status == ConnectorRunStatus.FAILED and "date must be a date" in run.error
    row = await connector_of(db, connector.id)
    assert row.status == ConnectorStatus.HEALTHY and row.cursors.get("PULL_ACTIVITY") is None
    assert "date must be a date" in row.last_error


async def test_wrong_credentials_are_an_upstream_failure_that_is_not_retried(db, settings, operator_api):
    async with db.transaction() as session:
        op = await factories.operator(session)
    connector = await configure(
        db, op, "http-json", ["PULL_ACTIVITY"], api_config(operator_api), credentials={"token": "wrong"}
    )
    run = await ConnectorRunner(db=db, settings=settings).sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert run.status == ConnectorRunStatus.FAILED and "HTTP 401" in run.error and "retries" not in run.detail
    assert len(operator_api.requests) == 1
    assert (await connector_of(db, connector.id)).status == ConnectorStatus.DEGRADED


async def test_credentials_are_stored_encrypted(db, operator_api):
    async with db.transaction() as session:
        op = await factories.operator(session)
    connector = await configure(
        db, op, "http-json", ["PULL_ACTIVITY"], api_config(operator_api), credentials={"token": "sim-token"}
    )
    assert "sim-token" not in connector.credentials
    assert service.credentials_of(connector, "test-secret-key-not-for-production") == {"token": "sim-token"}


async def test_scheduled_pulls_start_when_due_and_not_before(db, settings, operator_api):
    async with db.transaction() as session:
        op = await factories.operator(session)
    operator_api.add_activity("kim", walk_day().isoformat(), 8000, 6000)
    await configure(
        db,
        op,
        "http-json",
        ["PULL_ACTIVITY"],
        api_config(operator_api),
        credentials={"token": "sim-token"},
        schedule_seconds=3600,
    )
    runner = ConnectorRunner(db=db, settings=settings)
    started = await runner.run_due(background=False)
    assert len(started) == 1
    assert (await runner.get(started[0])).trigger == "schedule"
    assert await runner.run_due(background=False) == []  # next in an hour
    assert await available(db, op.id, "kim") > 0


async def test_a_second_sync_while_one_runs_returns_the_running_one(db, settings, operator_api):
    async with db.transaction() as session:
        op = await factories.operator(session)
    await configure(
        db, op, "http-json", ["PULL_ACTIVITY"], api_config(operator_api), credentials={"token": "sim-token"}
    )
    runner = ConnectorRunner(db=db, settings=settings)
    run, created = await runner.start(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    again, created_again = await runner.start(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert created and not created_again and again.id == run.id
    # A run left RUNNING by a process that stopped is abandoned after the run timeout.
    async with db.transaction() as session:
        fresh, created = await service.start_run(
            session=session,
            partner_id=op.id,
            job=ConnectorJob.PULL_ACTIVITY,
            now=run.started_at + dt.timedelta(hours=1),
        )
    assert created and fresh.id != run.id
    assert (await runner.get(run.id)).status == ConnectorRunStatus.FAILED


async def test_reconciliation_reports_pulled_over_http_start_runs(db, settings, operator_api):
    async with db.transaction() as session:
        a = await factories.operator(session)
        b = await factories.operator(session)
        agreement = await factories.agreement(session, a, b)
    day = walk_day()
    lines = [
        {"ref": "mv_unknown_1", "type": "redeem", "won": "1200", "at": f"{day.isoformat()}T10:00:00+09:00"},
        {"ref": "mv_unknown_2", "type": "EXCHANGE", "won": 500, "at": f"{day.isoformat()}T11:00:00+09:00"},
    ]
    operator_api.add_report(agreement.code, day.isoformat(), day.isoformat(), lines)
    config = {
        "base_url": operator_api.url,
        "auth": "bearer",
        "retry": FAST_RETRY,
        "reconciliation": {
            "path": "/reports",
            "records": "reports",
            "next_cursor": "next",
            "has_more": "more",
            "fields": {"agreement_code": "agreement", "period_start": "from", "period_end": "to", "records": "lines"},
            "record_fields": {"reference": "ref", "kind": "type", "amount_won": "won", "occurred_at": "at"},
            "kind_values": {"redeem": "CROSS_REDEMPTION"},
        },
    }
    await configure(db, a, "http-json", ["PULL_RECONCILIATION"], config, credentials={"token": "sim-token"})
    runner = ConnectorRunner(db=db, settings=settings)
    run = await runner.sync(partner_id=a.id, job=ConnectorJob.PULL_RECONCILIATION)
    assert run.status == ConnectorRunStatus.COMPLETED, run.error
    assert run.records == 2 and len(run.detail["reconciliationRuns"]) == 1
    async with db.session() as session:
        recon = await session.get(ReconciliationRun, run.detail["reconciliationRuns"][0])
    assert (
        recon.status == ReconciliationStatus.COMPLETED and recon.partner_records == 2 and recon.missing_in_gateway == 2
    )
    again = await runner.sync(partner_id=a.id, job=ConnectorJob.PULL_RECONCILIATION)
    assert again.records == 0 and "reconciliationRuns" not in again.detail  # the same report is not run twice


async def test_statements_are_pushed_by_post_with_digest_and_signature(db, settings, operator_api):
    async with db.transaction() as session:
        sponsor = await factories.partner(session, PartnerKind.SPONSOR)
        document = (
            '{"currency":"KRW","days":[],"issuedAt":"2026-11-01T00:00:00+00:00","lines":[],"periodEnd":"2026-10-31",'
            f'"periodStart":"2026-10-01","provisional":false,"sponsor":"{sponsor.code}","totalWon":"0"}}'
        ).encode()
        session.add(
            IssuedStatement(
                sponsor_id=sponsor.id,
                period_start=dt.date(2026, 10, 1),
                period_end=dt.date(2026, 10, 31),
                provisional=False,
                seal_key=f"{sponsor.id}:2026-10-01:2026-10-31",
                document=document,
                digest="d" * 64,
                signature="eyJhbGciOiJFZERTQSJ9..c2ln",
                issued_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            )
        )
    config = {"base_url": operator_api.url, "retry": FAST_RETRY, "statements": {"path": "/statements"}}
    await configure(db, sponsor, "http-json", ["PUSH_STATEMENT"], config)
    runner = ConnectorRunner(db=db, settings=settings)
    run = await runner.sync(partner_id=sponsor.id, job=ConnectorJob.PUSH_STATEMENT)
    assert run.status == ConnectorRunStatus.COMPLETED, run.error
    assert run.records == 1 and len(operator_api.statements) == 1
    pushed = operator_api.statements[0]
    assert pushed["body"] == document
    assert pushed["headers"]["x-statement-digest"] == "d" * 64 and pushed["headers"]["idempotency-key"].startswith(
        "statement-"
    )
    again = await runner.sync(partner_id=sponsor.id, job=ConnectorJob.PUSH_STATEMENT)
    assert again.records == 0 and len(operator_api.statements) == 1


async def test_jobs_go_to_the_partner_kinds_they_serve(db, operator_api):
    from gateway.errors import InvalidInput

    async with db.transaction() as session:
        sponsor = await factories.partner(session, PartnerKind.SPONSOR)
    with pytest.raises(InvalidInput, match="PULL_ACTIVITY is for OPERATOR"):
        await configure(db, sponsor, "http-json", ["PULL_ACTIVITY"], api_config(operator_api))
    with pytest.raises(InvalidInput, match="base_url"):
        await configure(db, sponsor, "http-json", ["PUSH_STATEMENT"], {"base_url": "ftp://x"})
    async with db.session() as session:
        assert (await session.execute(sa.select(sa.func.count()).select_from(service.ConnectorConfig))).scalar() == 0
