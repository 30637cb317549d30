"""The cut-off of a settlement closed on demand is the exact instant of closing (issue 17,
item 16): a movement confirmed earlier in the same second as the close is in the closed,
signed settlement; one confirmed after it goes to the next period; none is in two or none.

Controlled clocks, the real services and a real database: `record_flow` (what checkout and
exchange write, each in its own committed transaction) and `close_settlement` (what the
closeSettlement mutation calls).
"""

from __future__ import annotations

import datetime as dt
import json
import random

import sqlalchemy as sa

from gateway import settlement as service
from gateway.models import FlowKind, Settlement, SettlementFlow, SettlementPeriod, SettlementStatus
from tests.gateway import factories as f
from tests.gateway.settlement_support import SEOUL, Ed25519Signer, agreement, verify_detached

ITERATIONS = 50
START = dt.date(2025, 3, 1)


async def capture(db, ag, a, b, *, gross: int, at: dt.datetime, reference: str) -> int:
    """One movement, confirmed: its transaction has committed when this returns."""
    async with db.transaction() as s:
        row = service.record_flow(
            s,
            agreement_id=ag.id,
            kind=FlowKind.CROSS_REDEMPTION,
            payer_id=a.id,
            payee_id=b.id,
            reference=reference,
            gross_won=gross,
            fee_won=0,
            now=at,
        )
        await s.flush()
        return row.id


async def test_a_movement_confirmed_in_the_same_second_before_the_close_is_in_the_closed_settlement(db):
    rng = random.Random(17)
    signer = Ed25519Signer()
    async with db.transaction() as s:
        a, b = await f.operator(s), await f.operator(s)
        ag = await agreement(s, a, b, period=SettlementPeriod.DAILY, starts_on=START, fee_bps=0)
    before: dict[int, int] = {}  # flow id -> the day's index it must be sealed with
    after: dict[int, int] = {}  # flow id -> the day's index after which it was confirmed
    closed_at: list[dt.datetime] = []
    for i in range(ITERATIONS):
        day = START + dt.timedelta(days=i)
        second = dt.datetime.combine(day, dt.time(12, 0, 0), tzinfo=SEOUL).astimezone(dt.UTC)
        close = second + dt.timedelta(microseconds=rng.randint(2, 999_998))
        earlier = second + dt.timedelta(microseconds=rng.randint(0, close.microsecond - 1))
        later = close + dt.timedelta(microseconds=rng.randint(1, 999_999 - close.microsecond))
        assert earlier.replace(microsecond=0) == close.replace(microsecond=0) == later.replace(microsecond=0)

        before[await capture(db, ag, a, b, gross=1_000 + i, at=earlier, reference=f"mv_before_{i:04d}")] = i
        async with db.transaction() as s:
            settlement = await service.close_settlement(
                session=s, agreement_id=ag.id, period_end=day, signer=signer, now=close
            )
            assert settlement.status == SettlementStatus.CLOSED
        closed_at.append(close)
        after[await capture(db, ag, a, b, gross=100_000 + i, at=later, reference=f"mv_after_{i:04d}")] = i
    # The day after the last: seals the last late movement.
    async with db.transaction() as s:
        last_day = START + dt.timedelta(days=ITERATIONS)
        noon = dt.datetime.combine(last_day, dt.time(12), tzinfo=SEOUL)
        await service.close_settlement(session=s, agreement_id=ag.id, period_end=last_day, signer=signer, now=noon)

    async with db.session() as s:
        settlements = list(
            (
                await s.execute(
                    sa.select(Settlement).where(Settlement.agreement_id == ag.id).order_by(Settlement.period_start)
                )
            ).scalars()
        )
        sealed = dict((await s.execute(sa.select(SettlementFlow.id, SettlementFlow.settlement_id))).all())
    by_day = {(row.period_start - START).days: row for row in settlements}
    assert len(sealed) == 2 * ITERATIONS and all(sealed.values()), "every movement is in a settlement"
    for i in range(ITERATIONS):
        row = by_day[i]
        document = json.loads(row.document)
        assert verify_detached(row.signature, row.document, signer.jwks())
        # closedAt is the exact cut-off, microseconds included, and parses as the DateTime scalar does.
        assert dt.datetime.fromisoformat(document["closedAt"]) == closed_at[i] == row.closed_at
        mine = sorted(fid for fid, day in before.items() if day == i)
        late = sorted(fid for fid, day in after.items() if day == i - 1)
        assert sorted(fid for fid, sid in sealed.items() if sid == row.id) == sorted(mine + late)
        # The signed document lists them: one line, their count and gross.
        [line] = document["lines"]
        expected_gross = (1_000 + i) + (100_000 + i - 1 if i else 0)
        assert (line["count"], line["grossWon"]) == (str(len(mine) + len(late)), str(expected_gross)), (i, document)
    last = by_day[ITERATIONS]
    assert [fid for fid, sid in sealed.items() if sid == last.id] == [
        fid for fid, day in after.items() if day == ITERATIONS - 1
    ]
