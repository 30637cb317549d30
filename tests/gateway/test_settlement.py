"""Settlement periods, closing, nets with fees, signed documents, confirmation."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from gateway import settlement as service
from gateway.errors import DigestMismatch, InvalidInput, InvalidState, NotFound
from gateway.models import FlowKind, Settlement, SettlementFlow, SettlementPeriod, SettlementStatus
from gateway.outbox import events_for_partner
from tests.gateway import factories as f
from tests.gateway.settlement_support import Ed25519Signer, agreement, flow, seoul, verify_detached

R, RF, EX = FlowKind.CROSS_REDEMPTION, FlowKind.CROSS_REFUND, FlowKind.EXCHANGE


def _agreement(**kw):
    return SimpleNamespace(
        settlement_period=kw.get("period", SettlementPeriod.MONTHLY),
        starts_on=kw.get("starts_on", dt.date(2025, 1, 15)),
        ends_on=kw.get("ends_on"),
    )


def test_monthly_periods_are_calendar_months_from_the_start():
    ag = _agreement(starts_on=dt.date(2025, 1, 15), ends_on=dt.date(2025, 3, 10))
    first = service.first_period(ag)
    assert first == service.Period(dt.date(2025, 1, 15), dt.date(2025, 1, 31))
    second = service.next_period(ag, first)
    assert second == service.Period(dt.date(2025, 2, 1), dt.date(2025, 2, 28))
    assert service.next_period(ag, second) == service.Period(dt.date(2025, 3, 1), dt.date(2025, 3, 10))
    assert service.next_period(ag, service.next_period(ag, second)) is None
    assert service.period_containing(ag, dt.date(2025, 1, 14)) is None


def test_weekly_periods_run_seven_days_from_the_start_and_daily_one():
    weekly = _agreement(period=SettlementPeriod.WEEKLY, starts_on=dt.date(2025, 1, 1))  # a Wednesday
    assert service.period_containing(weekly, dt.date(2025, 1, 9)) == service.Period(
        dt.date(2025, 1, 8), dt.date(2025, 1, 14)
    )
    daily = _agreement(period=SettlementPeriod.DAILY, starts_on=dt.date(2025, 1, 1))
    assert service.period_containing(daily, dt.date(2025, 2, 3)) == service.Period(
        dt.date(2025, 2, 3), dt.date(2025, 2, 3)
    )


def test_periods_are_seoul_days():
    period = service.Period(dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    assert period.starts_at == dt.datetime(2024, 12, 31, 15, 0, tzinfo=dt.UTC)
    assert period.ends_at == dt.datetime(2025, 1, 31, 15, 0, tzinfo=dt.UTC)


async def _world(s, **kw):
    a = await f.operator(s)
    b = await f.operator(s)
    ag = await agreement(s, a, b, **kw)
    return a, b, ag


async def _settlements(db, ag) -> list[Settlement]:
    async with db.session() as s:
        return list(
            (
                await s.execute(
                    sa.select(Settlement).where(Settlement.agreement_id == ag.id).order_by(Settlement.period_start)
                )
            ).scalars()
        )


async def test_a_period_with_movements_both_ways_nets_to_the_right_payer_with_fees(db):
    signer = Ed25519Signer()
    async with db.transaction() as s:
        a, b, ag = await _world(s, fee_bps=250)
        # A's members pay at B's merchants, and the other way; refunds run back; exchanges both ways.
        await flow(s, ag, R, a, b, 10_000, seoul(2025, 1, 3))  # fee 250, net 9,750
        await flow(
            s, ag, R, a, b, 3_999, seoul(2025, 1, 31, 23, 30)
        )  # fee 99, net 3,900 (last minutes of January in Seoul)
        await flow(s, ag, R, b, a, 20_000, seoul(2025, 1, 10))  # fee 500, net 19,500
        await flow(s, ag, RF, b, a, 2_000, seoul(2025, 1, 12))  # refund to A's member: B pays, fee 50, net 1,950
        await flow(s, ag, EX, a, b, 5_000, seoul(2025, 1, 20))  # fee 125, net 4,875
        await flow(s, ag, EX, b, a, 1_000, seoul(2025, 1, 21))  # fee 25, net 975
        await flow(s, ag, R, a, b, 7_777, seoul(2025, 2, 1, 0, 10))  # February in Seoul, still January 31 in UTC

    closed = await service.close_due_settlements(db=db, signer=signer, now=seoul(2025, 2, 1, 0, 5))
    assert len(closed) == 1
    [january, february] = await _settlements(db, ag)
    assert (january.status, january.period_start, january.period_end) == (
        SettlementStatus.CLOSED,
        dt.date(2025, 1, 1),
        dt.date(2025, 1, 31),
    )
    assert february.status == SettlementStatus.OPEN
    # A owes 9,750 + 3,900 + 4,875 = 18,525; B owes 19,500 + 1,950 + 975 = 22,425: B pays A 3,900.
    assert (january.net_payer_id, january.net_payee_id, january.net_won) == (b.id, a.id, 3_900)

    document = json.loads(january.document)
    assert document == {
        "agreement": ag.code,
        "operatorA": a.code,
        "operatorB": b.code,
        "periodStart": "2025-01-01",
        "periodEnd": "2025-01-31",
        "lines": [
            {
                "kind": "CROSS_REDEMPTION",
                "payer": a.code,
                "payee": b.code,
                "count": "2",
                "grossWon": "13999",
                "feeWon": "349",
                "netWon": "13650",
            },
            {
                "kind": "CROSS_REDEMPTION",
                "payer": b.code,
                "payee": a.code,
                "count": "1",
                "grossWon": "20000",
                "feeWon": "500",
                "netWon": "19500",
            },
            {
                "kind": "CROSS_REFUND",
                "payer": b.code,
                "payee": a.code,
                "count": "1",
                "grossWon": "2000",
                "feeWon": "50",
                "netWon": "1950",
            },
            {
                "kind": "EXCHANGE",
                "payer": a.code,
                "payee": b.code,
                "count": "1",
                "grossWon": "5000",
                "feeWon": "125",
                "netWon": "4875",
            },
            {
                "kind": "EXCHANGE",
                "payer": b.code,
                "payee": a.code,
                "count": "1",
                "grossWon": "1000",
                "feeWon": "25",
                "netWon": "975",
            },
        ],
        "netPayer": b.code,
        "netPayee": a.code,
        "netWon": "3900",
        "closedAt": "2025-01-31T15:05:00+00:00",
        "currency": "KRW",
    }
    assert hashlib.sha256(january.document).hexdigest() == january.digest
    assert verify_detached(january.signature, january.document, signer.jwks())
    assert not verify_detached(january.signature, january.document.replace(b"3900", b"3901"), signer.jwks())

    async with db.session() as s:
        lines = await service.lines_of(s, january.id)
        assert [(l.kind, l.count, l.gross_won, l.fee_won, l.net_won) for l in lines][:2] == [
            (R, 2, 13_999, 349, 13_650),
            (R, 1, 20_000, 500, 19_500),
        ]
        for operator in (a, b):
            events = await events_for_partner(s, operator.id, types=["settlement.closed"])
            assert [(e.payload["periodStart"], e.payload["netWon"], e.payload["netPayer"]) for e in events] == [
                ("2025-01-01", "3900", b.code)
            ]
        # February's open settlement already shows what it would seal.
        provisional = await service.provisional_lines(s, february, ag, now=seoul(2025, 2, 2))
        assert [(l.kind, l.payer_id, l.gross_won) for l in provisional] == [(R, a.id, 7_777)]


async def test_a_movement_that_nets_to_zero_has_no_payer(db):
    async with db.transaction() as s:
        a, b, ag = await _world(s, fee_bps=100)
        await flow(s, ag, R, a, b, 5_000, seoul(2025, 1, 3))
        await flow(s, ag, RF, b, a, 5_000, seoul(2025, 1, 4))  # refunded in full
        settlement = await service.close_settlement(
            session=s,
            agreement_id=ag.id,
            period_end=dt.date(2025, 1, 31),
            signer=Ed25519Signer(),
            now=seoul(2025, 2, 2),
        )
    assert (settlement.net_payer_id, settlement.net_payee_id, settlement.net_won) == (None, None, 0)
    document = json.loads(settlement.document)
    assert (document["netPayer"], document["netPayee"], document["netWon"]) == (None, None, "0")


async def test_a_late_movement_goes_to_the_next_period_never_into_a_closed_one(db):
    signer = Ed25519Signer()
    async with db.transaction() as s:
        a, b, ag = await _world(s)
        await flow(s, ag, R, a, b, 1_000, seoul(2025, 1, 5))
    await service.close_due_settlements(db=db, signer=signer, now=seoul(2025, 2, 1, 1, 0))
    [january, _] = await _settlements(db, ag)
    sealed = january.document
    async with db.transaction() as s:
        # Arrives after January closed, dated January 20 (a capture that committed late).
        late = await flow(s, ag, R, b, a, 4_000, seoul(2025, 1, 20))
        await flow(s, ag, R, a, b, 2_000, seoul(2025, 2, 10))
    await service.close_due_settlements(db=db, signer=signer, now=seoul(2025, 3, 1, 1, 0))
    [january, february, march] = await _settlements(db, ag)
    assert january.document == sealed and january.net_won == 975
    assert march.status == SettlementStatus.OPEN
    async with db.session() as s:
        assert (await s.get(SettlementFlow, late.id)).settlement_id == february.id
    assert json.loads(february.document)["lines"][1] == {
        "kind": "CROSS_REDEMPTION",
        "payer": b.code,
        "payee": a.code,
        "count": "1",
        "grossWon": "4000",
        "feeWon": "100",
        "netWon": "3900",
    }


async def test_closing_early_seals_what_happened_so_far_and_later_movements_wait_for_the_next_period(db):
    signer = Ed25519Signer()
    async with db.transaction() as s:
        a, b, ag = await _world(s, starts_on=dt.date(2025, 2, 1))
        await flow(s, ag, R, a, b, 1_000, seoul(2025, 2, 10))
        february = await service.close_settlement(
            session=s, agreement_id=ag.id, period_end=dt.date(2025, 2, 28), signer=signer, now=seoul(2025, 2, 15)
        )
        assert february.status == SettlementStatus.CLOSED and february.net_won == 975
    async with db.transaction() as s:
        later = await flow(s, ag, R, a, b, 2_000, seoul(2025, 2, 20))
    await service.close_due_settlements(db=db, signer=signer, now=seoul(2025, 3, 1, 0, 1))
    # February ended, but it was closed already: nothing is due until March ends.
    async with db.session() as s:
        assert (await s.get(SettlementFlow, later.id)).settlement_id is None
    await service.close_due_settlements(db=db, signer=signer, now=seoul(2025, 4, 1, 0, 1))
    [_, march, april] = await _settlements(db, ag)
    async with db.session() as s:
        assert (await s.get(SettlementFlow, later.id)).settlement_id == march.id
    assert march.net_won == 1_950 and april.status == SettlementStatus.OPEN


async def test_close_settlement_closes_earlier_open_periods_first_and_may_close_the_next(db):
    signer = Ed25519Signer()
    async with db.transaction() as s:
        a, b, ag = await _world(s, starts_on=dt.date(2025, 1, 1))
        await flow(s, ag, R, a, b, 1_000, seoul(2025, 1, 5))
        await flow(s, ag, R, a, b, 3_000, seoul(2025, 2, 5))
        march = await service.close_settlement(
            session=s, agreement_id=ag.id, period_end=dt.date(2025, 3, 31), signer=signer, now=seoul(2025, 2, 15)
        )
    settlements = await _settlements(db, ag)
    assert [(x.period_start.month, x.status, x.net_won) for x in settlements] == [
        (1, SettlementStatus.CLOSED, 975),
        (2, SettlementStatus.CLOSED, 2_925),
        (3, SettlementStatus.CLOSED, 0),
        (4, SettlementStatus.OPEN, 0),
    ]
    assert march.period_end == dt.date(2025, 3, 31)


@pytest.mark.parametrize(
    "period_end, error",
    [(dt.date(2025, 2, 27), InvalidInput), (dt.date(2025, 4, 30), InvalidInput), (dt.date(2025, 1, 31), InvalidState)],
)
async def test_close_settlement_refuses_what_is_not_a_closable_period(db, period_end, error):
    signer = Ed25519Signer()
    async with db.transaction() as s:
        a, b, ag = await _world(s, starts_on=dt.date(2025, 1, 1))
        await service.close_settlement(
            session=s, agreement_id=ag.id, period_end=dt.date(2025, 1, 31), signer=signer, now=seoul(2025, 2, 15)
        )
    with pytest.raises(error):
        async with db.transaction() as s:
            await service.close_settlement(
                session=s, agreement_id=ag.id, period_end=period_end, signer=signer, now=seoul(2025, 2, 15)
            )


async def test_confirm_needs_the_right_digest_and_both_operators_make_it_confirmed(db):
    async with db.transaction() as s:
        a, b, ag = await _world(s)
        stranger = await f.operator(s)
        await flow(s, ag, R, a, b, 1_000, seoul(2025, 1, 5))
        closed = await service.close_settlement(
            session=s,
            agreement_id=ag.id,
            period_end=dt.date(2025, 1, 31),
            signer=Ed25519Signer(),
            now=seoul(2025, 2, 1, 9),
        )
    digest = hashlib.sha256(closed.document).hexdigest()

    with pytest.raises(DigestMismatch):
        async with db.transaction() as s:
            await service.confirm_settlement(session=s, settlement_id=closed.id, partner_id=a.id, digest="0" * 64)
    with pytest.raises(NotFound):
        async with db.transaction() as s:
            await service.confirm_settlement(session=s, settlement_id=closed.id, partner_id=stranger.id, digest=digest)

    async with db.transaction() as s:
        one = await service.confirm_settlement(
            session=s, settlement_id=closed.id, partner_id=a.id, digest=digest.upper()
        )
        assert one.status == SettlementStatus.CLOSED
    async with db.transaction() as s:
        disputed = await service.dispute_settlement(
            session=s, settlement_id=closed.id, partner_id=b.id, reason="refund of order 17 missing"
        )
        assert disputed.status == SettlementStatus.DISPUTED
        assert service.dispute_reason(await service.responses_of(s, closed.id)) == "refund of order 17 missing"
    async with db.transaction() as s:
        both = await service.confirm_settlement(session=s, settlement_id=closed.id, partner_id=b.id, digest=digest)
        assert both.status == SettlementStatus.CONFIRMED
        responses = await service.responses_of(s, closed.id)
        assert [r.partner_id for r in responses] == [a.id, b.id] and service.dispute_reason(responses) is None
    with pytest.raises(InvalidState):
        async with db.transaction() as s:
            await service.dispute_settlement(session=s, settlement_id=closed.id, partner_id=a.id, reason="too late")
    async with db.session() as s:
        for operator in (a, b):
            kinds = [e.type for e in await events_for_partner(s, operator.id)]
            assert kinds == ["settlement.closed", "settlement.confirmed", "settlement.disputed", "settlement.confirmed"]
        last = (await events_for_partner(s, a.id))[-1].payload
        assert last["status"] == "CONFIRMED" and last["confirmedBy"] == [a.code, b.code]


async def test_the_scheduled_job_closes_every_ended_period_and_opens_the_current_one(db, settings):
    from gateway import composition, settlement_jobs
    from gateway.jobs import JobContext

    assert {"settlement.close_due", "reconciliation.recover"} <= set(composition.job_registry())
    async with db.transaction() as s:
        a, b, ag = await _world(
            s, starts_on=service.seoul_date(service.utcnow()).replace(day=1) - dt.timedelta(days=40)
        )
    closed = await settlement_jobs.close_settlements_job(
        JobContext(db=db, settings=settings, state=SimpleNamespace(keystore=Ed25519Signer()))
    )
    settlements = await _settlements(db, ag)
    assert len(closed) == len(settlements) - 1 >= 1
    assert [x.status for x in settlements] == [SettlementStatus.CLOSED] * len(closed) + [SettlementStatus.OPEN]
    assert settlements[-1].period_start <= service.seoul_date(service.utcnow()) <= settlements[-1].period_end
