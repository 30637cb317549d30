"""The `csv-batch` connector: a nightly drop of files in a folder, statements written to another."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from connectors.runner import ConnectorRunner
from gateway.errors import InvalidInput
from gateway.models import (
    ConnectorJob,
    ConnectorRunStatus,
    ConnectorStatus,
    FlowKind,
    IssuedStatement,
    PartnerKind,
    ReconciliationRun,
    ReconciliationStatus,
    SettlementFlow,
)
from tests.connectors.helpers import available, configure, connector_of, walk_day
from tests.gateway import factories


def write(path, rows: list[list], header: list[str]) -> None:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def test_a_nightly_activity_drop_is_credited_once_file_by_file(db, settings, tmp_path):
    async with db.transaction() as session:
        op = await factories.operator(session)
    day = walk_day()
    header = ["member", "walk_date", "steps", "km"]
    write(
        tmp_path / "activity-1.csv",
        [["kim", day, 8000, "6.0"], ["lee", day, 10000, "7.5"], ["park", day, 4000, "3"]],
        header,
    )
    connector = await configure(
        db,
        op,
        "csv-batch",
        ["PULL_ACTIVITY"],
        {
            "folder": str(tmp_path),
            "activity": {
                "columns": {
                    "member_external_id": "member",
                    "date": "walk_date",
                    "steps": "steps",
                    "distance_meters": "km",
                },
                "distance_unit": "km",
                "page_size": 2,
                "source": "nightly-file",
            },
        },
    )
    runner = ConnectorRunner(db=db, settings=settings)
    run = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert run.status == ConnectorRunStatus.COMPLETED, run.error
    assert run.records == 3 and run.detail["CREDITED"] == 3
    kim = await available(db, op.id, "kim")
    assert kim == 200  # 6 km at 33.34 points a km
    assert (await connector_of(db, connector.id)).cursors["PULL_ACTIVITY"] == "activity-1.csv"

    again = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert again.records == 0 and await available(db, op.id, "kim") == kim

    # The next night's file (kim walked further that day: only the difference is credited).
    write(tmp_path / "activity-2.csv", [["kim", day, 9000, "7.0"], ["choi", day, 6000, "4.5"]], header)
    write(tmp_path / ".activity-3.csv.tmp", [["ghost", day, 1, "0"]], header)  # still being written
    third = await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)
    assert third.records == 2 and third.detail["ADJUSTED"] == 1 and third.detail["CREDITED"] == 1
    assert await available(db, op.id, "kim") == 233 and await available(db, op.id, "ghost") == 0


async def test_a_file_is_taken_only_once_its_ready_marker_is_there(db, settings, tmp_path):
    async with db.transaction() as session:
        op = await factories.operator(session)
    write(
        tmp_path / "activity-1.csv",
        [["kim", walk_day(), 8000, 6000]],
        ["memberExternalId", "date", "steps", "distanceMeters"],
    )
    await configure(db, op, "csv-batch", ["PULL_ACTIVITY"], {"folder": str(tmp_path), "ready_marker": ".done"})
    runner = ConnectorRunner(db=db, settings=settings)
    assert (await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)).records == 0
    (tmp_path / "activity-1.csv.done").touch()
    assert (await runner.sync(partner_id=op.id, job=ConnectorJob.PULL_ACTIVITY)).records == 1


async def test_a_csv_batch_drop_of_a_reconciliation_report_starts_a_run(db, settings, tmp_path):
    async with db.transaction() as session:
        a = await factories.operator(session)
        b = await factories.operator(session)
        agreement = await factories.agreement(session, a, b)
        day = dt.date(2026, 11, 2)
        at = dt.datetime(2026, 11, 2, 3, 0, tzinfo=dt.UTC)
        for ref, won in (("mv_matched", 1000), ("mv_different", 2000), ("mv_only_here", 700)):
            session.add(
                SettlementFlow(
                    agreement_id=agreement.id,
                    kind=FlowKind.CROSS_REDEMPTION,
                    payer_id=a.id,
                    payee_id=b.id,
                    reference=ref,
                    gross_won=won,
                    fee_won=won // 100,
                    net_won=won - won // 100,
                    occurred_at=at,
                )
            )
    write(
        tmp_path / f"recon-{agreement.code}-2026-11-01-2026-11-30.csv",
        [
            ["mv_matched", "CROSS_REDEMPTION", 1000, "2026-11-02T12:00:00+09:00"],
            ["mv_different", "CROSS_REDEMPTION", 2500, "2026-11-02T12:00:00+09:00"],
            ["mv_only_there", "CROSS_REDEMPTION", 300, "2026-11-02T12:00:00+09:00"],
        ],
        ["reference", "kind", "amountWon", "occurredAt"],
    )
    connector = await configure(db, a, "csv-batch", ["PULL_RECONCILIATION"], {"folder": str(tmp_path)})
    runner = ConnectorRunner(db=db, settings=settings)
    run = await runner.sync(partner_id=a.id, job=ConnectorJob.PULL_RECONCILIATION)
    assert run.status == ConnectorRunStatus.COMPLETED, run.error
    assert run.records == 3
    async with db.session() as session:
        recon = await session.get(ReconciliationRun, run.detail["reconciliationRuns"][0])
    assert recon.status == ReconciliationStatus.COMPLETED
    assert (recon.agreement_id, recon.partner_id, recon.period_start, recon.period_end) == (
        agreement.id,
        a.id,
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 30),
    )
    assert (
        recon.partner_records,
        recon.matched,
        recon.amount_mismatch,
        recon.missing_in_gateway,
        recon.missing_at_partner,
    ) == (3, 1, 1, 1, 1)
    assert day == recon.period_start + dt.timedelta(days=1)
    # The same drop is not reconciled twice.
    again = await runner.sync(partner_id=a.id, job=ConnectorJob.PULL_RECONCILIATION)
    assert again.records == 0 and (await connector_of(db, connector.id)).status == ConnectorStatus.HEALTHY


async def test_a_report_for_an_agreement_the_partner_is_not_party_to_fails_the_run(db, settings, tmp_path):
    async with db.transaction() as session:
        a, b, c = [await factories.operator(session) for _ in range(3)]
        foreign = await factories.agreement(session, b, c)
    write(
        tmp_path / f"recon-{foreign.code}-2026-11-01.csv",
        [["mv_x", "EXCHANGE", 1, "2026-11-01T12:00:00+09:00"]],
        ["reference", "kind", "amountWon", "occurredAt"],
    )
    await configure(db, a, "csv-batch", ["PULL_RECONCILIATION"], {"folder": str(tmp_path)})
    run = await ConnectorRunner(db=db, settings=settings).sync(partner_id=a.id, job=ConnectorJob.PULL_RECONCILIATION)
    assert run.status == ConnectorRunStatus.FAILED and "No agreement" in run.error


async def test_statements_are_written_as_files(db, settings, tmp_path):
    async with db.transaction() as session:
        sponsor = await factories.partner(session, PartnerKind.SPONSOR)
        document = json.dumps(
            {
                "currency": "KRW",
                "days": [],
                "issuedAt": "2026-11-01T00:00:00+00:00",
                "lines": [],
                "periodEnd": "2026-10-31",
                "periodStart": "2026-10-01",
                "provisional": False,
                "sponsor": sponsor.code,
                "totalWon": "0",
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        session.add(
            IssuedStatement(
                sponsor_id=sponsor.id,
                period_start=dt.date(2026, 10, 1),
                period_end=dt.date(2026, 10, 31),
                provisional=False,
                seal_key=f"{sponsor.id}:2026-10-01:2026-10-31",
                document=document,
                digest="e" * 64,
                signature="eyJhbGciOiJFZERTQSJ9..c2ln",
                issued_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            )
        )
    out = tmp_path / "finance" / "in"
    await configure(db, sponsor, "csv-batch", ["PUSH_STATEMENT"], {"statements": {"folder": str(out)}})
    run = await ConnectorRunner(db=db, settings=settings).sync(partner_id=sponsor.id, job=ConnectorJob.PUSH_STATEMENT)
    assert run.status == ConnectorRunStatus.COMPLETED, run.error
    base = out / f"statement-{sponsor.code}-2026-10-01-2026-10-31"
    assert base.with_suffix(".json").read_bytes() == document
    assert (out / (base.name + ".json.jws")).read_text() == "eyJhbGciOiJFZERTQSJ9..c2ln"
    assert (out / (base.name + ".csv")).read_text().startswith("campaign,beneficiary")


async def test_folders_must_be_absolute(db, tmp_path):
    async with db.transaction() as session:
        op = await factories.operator(session)
    with pytest.raises(InvalidInput, match="folder must be an absolute path"):
        await configure(db, op, "csv-batch", ["PULL_ACTIVITY"], {"folder": "relative/drop"})
