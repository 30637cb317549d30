"""Idempotency: replays return the first result, a reused key is refused, nothing moves twice."""

from __future__ import annotations

import asyncio

import pytest

from gateway import ledger
from gateway.errors import IdempotencyKeyReused, InsufficientPoints, InvalidInput
from gateway.idempotency import run_idempotent
from gateway.members import balance
from gateway.models import EntryKind, Member, PartnerKind
from tests.gateway import factories as f


async def _world(db):
    async with db.transaction() as s:
        op = await f.operator(s)
        merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id)
        m = await f.member(s, op)
        await f.earn(s, m, 1000)
        return op, merchant, m


def _spender(s, merchant, member_id, amount, calls):
    async def work() -> dict:
        calls.append(amount)
        member = await s.get(Member, member_id)
        wallet = await ledger.wallet_account(s, member)
        shop = await ledger.partner_account(s, merchant.id, wallet.unit, "merchant")
        txn = await ledger.post(session=s, kind=EntryKind.REDEEM, legs=[ledger.Leg(wallet, shop, amount)], memo="buy")
        return {"reference": txn.reference}

    return work


async def test_a_replay_returns_the_first_result_and_moves_nothing_again(db):
    op, merchant, m = await _world(db)
    calls: list[int] = []
    results = []
    for _ in range(2):
        async with db.transaction() as s:
            results.append(
                await run_idempotent(
                    session=s,
                    partner_id=merchant.id,
                    key="k-1",
                    operation="spend",
                    request={"amount": 300},
                    work=_spender(s, merchant, m.id, 300, calls),
                )
            )
    assert results[0] == results[1] and results[0]["reference"].startswith("mv_")
    assert calls == [300]
    async with db.transaction() as s:
        assert (await balance(s, m)).available == 700


async def test_the_same_key_with_another_request_is_refused(db):
    op, merchant, m = await _world(db)
    calls: list[int] = []
    async with db.transaction() as s:
        await run_idempotent(
            session=s,
            partner_id=merchant.id,
            key="k-1",
            operation="spend",
            request={"amount": 300},
            work=_spender(s, merchant, m.id, 300, calls),
        )
    for operation, request in (("spend", {"amount": 301}), ("refund", {"amount": 300})):
        with pytest.raises(IdempotencyKeyReused):
            async with db.transaction() as s:
                await run_idempotent(
                    session=s,
                    partner_id=merchant.id,
                    key="k-1",
                    operation=operation,
                    request=request,
                    work=_spender(s, merchant, m.id, 301, calls),
                )
    assert calls == [300]


async def test_keys_are_scoped_to_the_partner(db):
    op, merchant, m = await _world(db)
    async with db.transaction() as s:
        other = await f.partner(s, PartnerKind.MERCHANT, operator_id=op.id)
    calls: list[int] = []
    for partner in (merchant, other):
        async with db.transaction() as s:
            await run_idempotent(
                session=s,
                partner_id=partner.id,
                key="same",
                operation="spend",
                request={"amount": 100},
                work=_spender(s, merchant, m.id, 100, calls),
            )
    assert calls == [100, 100]


async def test_a_failed_request_leaves_no_record_so_the_key_can_be_retried(db):
    op, merchant, m = await _world(db)
    calls: list[int] = []
    with pytest.raises(InsufficientPoints):
        async with db.transaction() as s:
            await run_idempotent(
                session=s,
                partner_id=merchant.id,
                key="k",
                operation="spend",
                request={"amount": 5000},
                work=_spender(s, merchant, m.id, 5000, calls),
            )
    async with db.transaction() as s:
        await f.earn(s, await s.get(Member, m.id), 5000)
    async with db.transaction() as s:
        await run_idempotent(
            session=s,
            partner_id=merchant.id,
            key="k",
            operation="spend",
            request={"amount": 5000},
            work=_spender(s, merchant, m.id, 5000, calls),
        )
    assert calls == [5000, 5000]
    async with db.transaction() as s:
        assert (await balance(s, m)).available == 1000


async def test_an_empty_key_is_invalid(db):
    op, merchant, m = await _world(db)
    async with db.transaction() as s:
        with pytest.raises(InvalidInput):
            await run_idempotent(
                session=s,
                partner_id=merchant.id,
                key="",
                operation="spend",
                request={},
                work=_spender(s, merchant, m.id, 1, []),
            )


async def test_concurrent_requests_with_one_key_move_value_once(db):
    op, merchant, m = await _world(db)
    calls: list[int] = []

    async def attempt() -> dict:
        async with db.transaction() as s:
            result = await run_idempotent(
                session=s,
                partner_id=merchant.id,
                key="race",
                operation="spend",
                request={"amount": 100},
                work=_spender(s, merchant, m.id, 100, calls),
            )
            await asyncio.sleep(0.05)  # keep the transaction open while the others arrive
            return result

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert len({r["reference"] for r in results}) == 1
    assert calls == [100]
    async with db.transaction() as s:
        assert (await balance(s, m)).available == 900
