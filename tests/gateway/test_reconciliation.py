"""Reconciliation: staging a partner's report, matching it in SQL, classifying each difference."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from gateway import reconciliation as service
from gateway.errors import InvalidInput, InvalidState, LimitExceeded, NotFound
from gateway.models import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    FlowKind,
    ReconciliationRun,
    ReconciliationStatus,
    StagedRecord,
)
from gateway.outbox import events_for_partner
from gateway.reconciliation import ReportRecord
from tests.gateway import factories as f
from tests.gateway.settlement_support import agreement, flow, seoul

R, RF, EX = FlowKind.CROSS_REDEMPTION, FlowKind.CROSS_REFUND, FlowKind.EXCHANGE
MIG, MAP, AMT, DUP = (
    DiscrepancyKind.MISSING_IN_GATEWAY,
    DiscrepancyKind.MISSING_AT_PARTNER,
    DiscrepancyKind.AMOUNT_MISMATCH,
    DiscrepancyKind.DUPLICATE,
)


async def _aiter(items):
    for item in items:
        yield item


async def planted_world(db):
    """January 2025 between operators A and B, and A's report with one difference of every kind."""
    async with db.transaction() as s:
        a, b = await f.operator(s), await f.operator(s)
        other = await f.operator(s)
        ag = await agreement(s, a, b, fee_bps=100)
        elsewhere = await agreement(s, a, other)
        day = seoul(2025, 1, 10)
        await flow(s, ag, R, a, b, 10_000, day, "mv_matched")
        await flow(s, ag, R, a, b, 5_000, day, "mv_amount")
        await flow(s, ag, R, b, a, 3_000, day, "mv_not_at_partner")
        await flow(s, ag, R, a, b, 2_000, day, "mv_reported_twice")
        # A capture and two partial refunds share one reference.
        await flow(s, ag, R, a, b, 8_000, seoul(2025, 1, 11), "mv_refunded")
        await flow(s, ag, RF, b, a, 1_000, seoul(2025, 1, 12), "mv_refunded")
        await flow(s, ag, RF, b, a, 2_000, seoul(2025, 1, 13), "mv_refunded")
        await flow(s, ag, EX, a, b, 4_000, day, "mv_wrong_kind")
        await flow(s, ag, R, a, b, 6_000, seoul(2025, 2, 1, 0, 30), "mv_february")  # another period
        await flow(s, elsewhere, R, a, other, 9_000, day, "mv_elsewhere")  # another agreement
    at = seoul(2025, 1, 10, 13)
    records = [
        ReportRecord("mv_matched", R, 10_000, at),
        ReportRecord("mv_amount", R, 5_500, at),
        ReportRecord("mv_only_at_partner", R, 700, at),
        ReportRecord("mv_reported_twice", R, 2_000, at),
        ReportRecord("mv_refunded", R, 8_000, seoul(2025, 1, 11)),
        ReportRecord("mv_refunded", RF, 2_000, seoul(2025, 1, 13)),
        ReportRecord("mv_refunded", RF, 1_000, seoul(2025, 1, 12)),
        ReportRecord("mv_reported_twice", R, 2_000, at),
        ReportRecord("mv_twice_unknown", R, 900, at),
        ReportRecord("mv_twice_unknown", R, 900, at),
        ReportRecord("mv_wrong_kind", R, 4_000, at),
    ]
    return a, b, ag, records


async def _discrepancies(db, run_id):
    async with db.session() as s:
        rows = (
            await s.execute(sa.select(Discrepancy).where(Discrepancy.run_id == run_id).order_by(Discrepancy.id))
        ).scalars()
        return sorted((d.kind, d.reference, d.flow_kind, d.gateway_amount_won, d.partner_amount_won) for d in rows)


async def test_a_report_with_planted_differences_is_classified_exactly(db):
    a, b, ag, records = await planted_world(db)
    run_id = await service.stage_report(
        db=db,
        agreement_id=ag.id,
        partner_id=a.id,
        period_start=dt.date(2025, 1, 1),
        period_end=dt.date(2025, 1, 31),
        records=_aiter(records),
        batch_size=3,
    )
    async with db.session() as s:
        staged = await s.get(ReconciliationRun, run_id)
        assert (staged.status, staged.partner_records) == (ReconciliationStatus.RUNNING, 11)
    run = await service.run_matching(db=db, run_id=run_id)

    assert run.status == ReconciliationStatus.COMPLETED
    assert (
        run.partner_records,
        run.matched,
        run.missing_in_gateway,
        run.missing_at_partner,
        run.amount_mismatch,
        run.duplicates,
    ) == (11, 5, 3, 2, 1, 2)
    assert await _discrepancies(db, run_id) == sorted(
        [
            (AMT, "mv_amount", R, 5_000, 5_500),
            (MIG, "mv_only_at_partner", R, None, 700),
            (MIG, "mv_twice_unknown", R, None, 900),
            (DUP, "mv_twice_unknown", R, None, 900),
            (DUP, "mv_reported_twice", R, None, 2_000),
            (MIG, "mv_wrong_kind", R, None, 4_000),
            (MAP, "mv_wrong_kind", EX, 4_000, None),
            (MAP, "mv_not_at_partner", R, 3_000, None),
        ]
    )
    async with db.session() as s:
        for operator in (a, b):
            [event] = await events_for_partner(s, operator.id, types=["reconciliation.completed"])
            assert (event.payload["status"], event.payload["matched"], event.payload["duplicates"]) == (
                "COMPLETED",
                "5",
                "2",
            )


async def test_a_duplicate_with_another_amount_leaves_the_exact_record_matched(db):
    async with db.transaction() as s:
        a, b = await f.operator(s), await f.operator(s)
        ag = await agreement(s, a, b)
        await flow(s, ag, R, a, b, 100, seoul(2025, 1, 2), "mv_x")
        run = await service.create_run(
            session=s,
            agreement_id=ag.id,
            partner_id=b.id,
            period_start=dt.date(2025, 1, 1),
            period_end=dt.date(2025, 1, 31),
        )
        await service.stage_records(
            session=s,
            run=run,
            records=[ReportRecord("mv_x", R, 90, seoul(2025, 1, 1)), ReportRecord("mv_x", R, 100, seoul(2025, 1, 2))],
        )
    done = await service.run_matching(db=db, run_id=run.id)
    assert (done.matched, done.duplicates, done.amount_mismatch) == (1, 1, 0)
    assert await _discrepancies(db, run.id) == [(DUP, "mv_x", R, None, 90)]


async def test_matching_again_starts_afresh(db):
    a, b, ag, records = await planted_world(db)
    run_id = await service.stage_report(
        db=db,
        agreement_id=ag.id,
        partner_id=a.id,
        period_start=dt.date(2025, 1, 1),
        period_end=dt.date(2025, 1, 31),
        records=_aiter(records),
    )
    await service.run_matching(db=db, run_id=run_id)
    again = await service.run_matching(db=db, run_id=run_id, rerun=True)
    assert again.matched == 5 and len(await _discrepancies(db, run_id)) == 8


async def test_a_bad_record_fails_the_run_and_names_its_line(db):
    async with db.transaction() as s:
        a, b = await f.operator(s), await f.operator(s)
        ag = await agreement(s, a, b)
    body = [
        b"reference,kind,amountWon,occurredAt\n",
        b"mv_1,CROSS_REDEMPTION,100,2025-01-02T10:00:00+09:00\n",
        b"mv_2,CROSS_REDEMPTION,-5,2025-01-02T10:00:00+09:00\n",
    ]
    with pytest.raises(InvalidInput, match="line 3: amountWon"):
        await service.stage_report(
            db=db,
            agreement_id=ag.id,
            partner_id=a.id,
            period_start=dt.date(2025, 1, 1),
            period_end=dt.date(2025, 1, 31),
            records=service.parse_csv(service.iter_lines(_aiter(body))),
            batch_size=1,
        )
    async with db.session() as s:
        run = (await s.execute(sa.select(ReconciliationRun))).scalar_one()
        assert run.status == ReconciliationStatus.FAILED and "line 3" in run.error
        assert (await s.execute(sa.select(sa.func.count()).select_from(StagedRecord))).scalar() == 0


async def test_a_report_over_the_limit_is_refused(db):
    async with db.transaction() as s:
        a, b = await f.operator(s), await f.operator(s)
        ag = await agreement(s, a, b)
    records = [ReportRecord(f"mv_{i}", R, 1, seoul(2025, 1, 2)) for i in range(4)]
    with pytest.raises(LimitExceeded):
        await service.stage_report(
            db=db,
            agreement_id=ag.id,
            partner_id=a.id,
            period_start=dt.date(2025, 1, 1),
            period_end=dt.date(2025, 1, 31),
            records=_aiter(records),
            max_records=3,
        )


async def test_only_an_operator_party_to_the_agreement_may_report(db):
    async with db.transaction() as s:
        a, b, c = await f.operator(s), await f.operator(s), await f.operator(s)
        ag = await agreement(s, a, b)
    with pytest.raises(NotFound):
        await service.stage_report(
            db=db,
            agreement_id=ag.id,
            partner_id=c.id,
            period_start=dt.date(2025, 1, 1),
            period_end=dt.date(2025, 1, 31),
            records=_aiter([]),
        )


async def test_csv_and_json_lines_parse_the_same_records_from_any_chunking():
    csv_body = '\ufeffkind,reference,occurredAt,amountWon\r\nCROSS_REFUND,mv_한글,2025-01-02T10:00:00Z,1500\r\n\r\nEXCHANGE,"mv_q",2025-01-03T10:00:00+09:00,7\r\n'.encode()
    ndjson_body = (
        '{"reference": "mv_한글", "kind": "CROSS_REFUND", "amountWon": "1500", "occurredAt": "2025-01-02T10:00:00Z"}\n'
        '{"reference": "mv_q", "kind": "EXCHANGE", "amountWon": 7, "occurredAt": "2025-01-03T10:00:00+09:00"}'
    ).encode()
    expected = [
        ReportRecord("mv_한글", RF, 1500, dt.datetime(2025, 1, 2, 10, tzinfo=dt.UTC)),
        ReportRecord("mv_q", EX, 7, seoul(2025, 1, 3, 10)),
    ]
    for body, parse in ((csv_body, service.parse_csv), (ndjson_body, service.parse_ndjson)):
        for size in (1, 2, 5, len(body)):
            chunks = [body[i : i + size] for i in range(0, len(body), size)]
            assert [r async for r in parse(service.iter_lines(_aiter(chunks)))] == expected


async def test_a_discrepancy_is_resolved_once_with_a_note_by_a_party(db):
    a, b, ag, records = await planted_world(db)
    run_id = await service.stage_report(
        db=db,
        agreement_id=ag.id,
        partner_id=a.id,
        period_start=dt.date(2025, 1, 1),
        period_end=dt.date(2025, 1, 31),
        records=_aiter(records),
    )
    await service.run_matching(db=db, run_id=run_id)
    async with db.transaction() as s:
        stranger = await f.operator(s)
        first = (await s.execute(service.discrepancies_query(run_id, AMT))).scalars().one()
    with pytest.raises(NotFound):
        async with db.transaction() as s:
            await service.resolve_discrepancy(
                session=s,
                discrepancy_id=first.id,
                partner_id=stranger.id,
                resolved_by_id=stranger.id,
                resolution="mine?",
            )
    async with db.transaction() as s:
        done = await service.resolve_discrepancy(
            session=s,
            discrepancy_id=first.id,
            partner_id=b.id,
            resolved_by_id=b.id,
            resolution="price corrected at the till",
        )
        assert (done.status, done.resolution) == (DiscrepancyStatus.RESOLVED, "price corrected at the till")
    with pytest.raises(InvalidState):
        async with db.transaction() as s:
            await service.resolve_discrepancy(
                session=s, discrepancy_id=first.id, partner_id=None, resolved_by_id=a.id, resolution="again"
            )


@pytest.mark.parametrize("full_join", [True, False])
async def test_both_shapes_of_the_matching_query_classify_alike(db, monkeypatch, full_join):
    """A FULL OUTER JOIN (PostgreSQL's plan) or anti-joins (SQLite's) give the same answer."""
    import sqlite3

    if full_join and db.dialect == "sqlite" and sqlite3.sqlite_version_info < (3, 39):
        pytest.skip("this SQLite has no FULL OUTER JOIN")
    monkeypatch.setattr(service, "_use_full_join", lambda session: full_join)
    a, b, ag, records = await planted_world(db)
    run_id = await service.stage_report(
        db=db,
        agreement_id=ag.id,
        partner_id=a.id,
        period_start=dt.date(2025, 1, 1),
        period_end=dt.date(2025, 1, 31),
        records=_aiter(records),
    )
    run = await service.run_matching(db=db, run_id=run_id)
    assert (run.matched, run.missing_in_gateway, run.missing_at_partner, run.amount_mismatch, run.duplicates) == (
        5,
        3,
        2,
        1,
        2,
    )
    assert len(await _discrepancies(db, run_id)) == 8


async def test_a_body_without_line_breaks_is_refused_before_it_fills_memory():
    chunks = [b"reference,kind,amountWon,occurredAt\n"] + [b"x" * 1000] * 100
    with pytest.raises(InvalidInput, match="line 2: longer than"):
        [line async for line in service.iter_lines(_aiter(chunks), max_line=10_000)]
