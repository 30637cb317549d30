"""Exchange between programs at the service level: conversion through won, fee, postings, privacy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from gateway.codes import issue_member_code
from gateway.errors import (
    IdempotencyKeyReused,
    InsufficientPoints,
    InvalidInput,
    InvalidMemberCode,
    MemberSuspended,
    NoAgreement,
    NotFound,
)
from gateway.exchange import exchange_points, points_received
from gateway.members import balance, set_member_status
from gateway.models import MemberCodePurpose, MemberStatus, SettlementFlow
from gateway.outbox import events_for_partner
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)


def test_points_received_are_floored():
    assert points_received(990, Decimal("2")) == 495
    assert points_received(991, Decimal("2")) == 495
    assert points_received(1, Decimal("0.3")) == 3
    assert points_received(0, Decimal("1")) == 0


class World:
    pass


async def _world(db, *, agreement=True, point_exchange=True, fee_bps=100, from_rate="1", to_rate="2"):
    w = World()
    async with db.transaction() as s:
        w.a = await f.operator(s, won_per_point=from_rate)
        w.b = await f.operator(s, won_per_point=to_rate)
        if agreement:
            w.agreement = await f.agreement(s, w.b, w.a)  # order of the parties does not matter
            w.agreement.point_exchange = point_exchange
            w.agreement.fee_bps = fee_bps
        w.giver = await f.member(s, w.a, "giver-1")
        w.receiver = await f.member(s, w.b, "receiver-1")
        await f.earn(s, w.giver, 1000, now=NOW)
    return w


async def _receive_code(db, member, purpose=MemberCodePurpose.RECEIVE):
    async with db.transaction() as s:
        return (
            await issue_member_code(
                session=s, operator_id=member.operator_id, external_id=member.external_id, purpose=purpose, now=NOW
            )
        ).code


async def _exchange(db, w, points, *, code=None, key="x-1", external_id=None):
    code = code or await _receive_code(db, w.receiver)
    async with db.transaction() as s:
        return await exchange_points(
            session=s,
            operator_id=w.a.id,
            member_external_id=external_id or w.giver.external_id,
            receive_code=code,
            points=points,
            idempotency_key=key,
            now=NOW,
        )


async def _balances(db, w):
    async with db.session() as s:
        return (await balance(s, w.giver)).available, (await balance(s, w.receiver)).available


async def test_points_convert_through_won_less_the_fee(db):
    w = await _world(db, fee_bps=150, from_rate="1.5", to_rate="2")
    e = await _exchange(db, w, 333)
    # wonValue = floor(333 x 1.5) = 499; fee = floor(499 x 0.015) = 7; toPoints = floor(492 / 2) = 246
    assert (e.from_points, e.won_value, e.fee_won, e.to_points) == (333, 499, 7, 246)
    assert (e.from_unit, e.to_unit) == (w.a.unit_code, w.b.unit_code)
    assert await _balances(db, w) == (667, 246)
    async with db.session() as s:
        [flow] = (await s.execute(sa.select(SettlementFlow))).scalars().all()
        assert (
            flow.kind.value,
            flow.payer_id,
            flow.payee_id,
            flow.gross_won,
            flow.fee_won,
            flow.net_won,
            flow.reference,
        ) == ("EXCHANGE", w.a.id, w.b.id, 499, 7, 492, e.reference)
        await f.check_invariants(s)


async def test_each_operator_hears_of_the_exchange_naming_only_its_own_member(db):
    w = await _world(db)
    e = await _exchange(db, w, 100)
    async with db.session() as s:
        [out] = await events_for_partner(s, w.a.id, types=["exchange.completed"])
        [into] = await events_for_partner(s, w.b.id, types=["exchange.completed"])
    assert out.payload["memberExternalId"] == "giver-1" and "receiver-1" not in str(out.payload)
    assert into.payload["memberExternalId"] == "receiver-1" and "giver-1" not in str(into.payload)
    assert out.payload["reference"] == into.payload["reference"] == e.reference


async def test_a_replay_returns_the_first_exchange(db):
    w = await _world(db)
    code = await _receive_code(db, w.receiver)
    first = await _exchange(db, w, 100, code=code)
    again = await _exchange(db, w, 100, code=code)
    assert first.id == again.id
    assert await _balances(db, w) == (900, 49)
    with pytest.raises(IdempotencyKeyReused):
        await _exchange(db, w, 101, code=code)


@pytest.mark.parametrize("setup", ["none", "no-point-exchange"])
async def test_without_an_agreement_allowing_it_nothing_moves(db, setup):
    w = await _world(db, agreement=setup != "none", point_exchange=False)
    with pytest.raises(NoAgreement):
        await _exchange(db, w, 100)
    assert await _balances(db, w) == (1000, 0)


async def test_refusals_change_nothing(db):
    w = await _world(db)
    with pytest.raises(InsufficientPoints):
        await _exchange(db, w, 1001)
    with pytest.raises(InvalidInput):
        await _exchange(db, w, 1)  # 1 won less the fee buys no point at 2 won a point
    with pytest.raises(InvalidInput):
        await _exchange(db, w, 0)
    with pytest.raises(NotFound):
        await _exchange(db, w, 10, external_id="nobody")
    with pytest.raises(InvalidMemberCode) as caught:
        await _exchange(db, w, 10, code=await _receive_code(db, w.receiver, MemberCodePurpose.PAYMENT))
    assert caught.value.field == ["input", "receiveCode"]
    own = World()
    own.a, own.giver, own.receiver = w.a, w.giver, w.giver
    with pytest.raises(InvalidInput):
        await _exchange(db, own, 10)
    code = await _receive_code(db, w.receiver)  # issued while the member was still ACTIVE
    async with db.transaction() as s:
        await set_member_status(session=s, operator_id=w.b.id, external_id="receiver-1", status=MemberStatus.SUSPENDED)
    with pytest.raises(MemberSuspended):
        await _exchange(db, w, 10, code=code)
    assert await _balances(db, w) == (1000, 0)
