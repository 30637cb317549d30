"""The outbox: events are written with the change and found per partner."""

from __future__ import annotations

import pytest

from gateway.models import PartnerKind
from gateway.outbox import emit, events_for_partner
from tests.gateway import factories as f


async def test_events_are_stored_for_each_partner_they_concern(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id)
        first = await emit(
            session=s,
            type="redemption.authorized",
            partner_ids=[op.id, merchant.id, merchant.id],
            data={"reference": "mv_x", "amountWon": "100"},
        )
        second = await emit(session=s, type="activity.credited", partner_ids=[op.id], data={"points": "5"})
    assert first.startswith("evt_") and first != second
    async with db.session() as s:
        op_events = await events_for_partner(s, op.id)
        merchant_events = await events_for_partner(s, merchant.id)
        assert [e.event_id for e in op_events] == [first, second]
        assert [(e.event_id, e.type, e.payload) for e in merchant_events] == [
            (first, "redemption.authorized", {"reference": "mv_x", "amountWon": "100"})
        ]
        assert [e.event_id for e in await events_for_partner(s, op.id, after_id=op_events[0].id)] == [second]


async def test_an_event_rolls_back_with_its_transaction(db):
    async with db.transaction() as s:
        op = await f.operator(s)
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await emit(session=s, type="activity.credited", partner_ids=[op.id], data={})
            raise RuntimeError("the movement failed")
    async with db.session() as s:
        assert await events_for_partner(s, op.id) == []


async def test_unknown_event_types_are_a_programming_error(db):
    async with db.transaction() as s:
        with pytest.raises(ValueError):
            await emit(session=s, type="points.teleported", partner_ids=[], data={})
