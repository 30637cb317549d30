"""Checkout at the service level: amounts, lifecycle, errors, idempotency, settlement flows, expiry."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from gateway import redemption as svc
from gateway.codes import issue_member_code
from gateway.errors import (
    AmountExceedsAuthorized,
    AmountExceedsCaptured,
    IdempotencyKeyReused,
    InsufficientPoints,
    InvalidInput,
    InvalidMemberCode,
    InvalidState,
    MemberCodeExpired,
    MemberSuspended,
    NoAgreement,
    NotFound,
)
from gateway.members import balance, set_member_status
from gateway.models import (
    AgreementStatus,
    MemberCodePurpose,
    MemberStatus,
    PartnerKind,
    RedemptionStatus,
    SettlementFlow,
)
from gateway.outbox import events_for_partner
from tests.gateway import factories as f

NOW = dt.datetime(2025, 3, 5, 3, 0, tzinfo=dt.UTC)


# ---------------------------------------------------------------- rounding rules


@pytest.mark.parametrize(
    "won, rate, points",
    [
        (1, "1", 1),
        (100, "1", 100),
        (1, "2", 1),
        (2, "2", 1),
        (3, "2", 2),
        (4, "2", 2),  # rounded up at the edge, exact on it
        (1, "0.5", 2),
        (3, "0.5", 6),
        (10, "3", 4),
        (9, "3", 3),
        (1, "0.000001", 1_000_000),
        (1000, "1.1", 910),
        (1001, "1.1", 910),
        (1002, "1.1", 911),  # 1001/1.1 = 910 exactly
        (10**15, "7", 142857142857143),  # no float anywhere
    ],
)
def test_points_to_pay_is_the_won_amount_over_the_rate_rounded_up(won, rate, points):
    assert svc.points_to_pay(won, Decimal(rate)) == points


@pytest.mark.parametrize(
    "points, rate, won", [(3, "0.5", 1), (4, "0.5", 2), (7, "1.5", 10), (1, "0.999999", 0), (910, "1.1", 1001)]
)
def test_won_value_is_floored(points, rate, won):
    assert svc.won_value(points, Decimal(rate)) == won


def test_fee_is_floored_basis_points():
    assert svc.fee_won(10_000, 150) == 150
    assert svc.fee_won(99, 100) == 0
    assert svc.fee_won(199, 100) == 1
    assert svc.fee_won(0, 10_000) == 0


def test_refunds_never_return_more_points_than_were_taken():
    # 5 won captured for 3 points (at 2 won a point): partial refunds round down, the last one settles.
    assert svc.refund_points_total(3, 5, 1) == 0
    assert svc.refund_points_total(3, 5, 2) == 1
    assert svc.refund_points_total(3, 5, 4) == 2
    assert svc.refund_points_total(3, 5, 5) == 3
    for captured_points, captured_won in ((3, 5), (7, 7), (1, 1000), (999, 1000), (1000, 3)):
        previous = 0
        for refunded in range(captured_won + 1):
            total = svc.refund_points_total(captured_points, captured_won, refunded)
            assert previous <= total <= captured_points
            previous = total
        assert previous == captured_points
    with pytest.raises(ValueError):
        svc.refund_points_total(3, 5, 6)


# ---------------------------------------------------------------- a small world


class World:
    pass


async def _world(db, *, rate="1", points=1000, cross=False, agreement=True, cross_redemption=True, fee_bps=100):
    w = World()
    async with db.transaction() as s:
        w.op = await f.operator(s, won_per_point=rate)
        w.merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=w.op.id)
        w.other_merchant = await f.partner(s, PartnerKind.MERCHANT, operator_id=w.op.id)
        w.member_op = w.op
        if cross:
            w.member_op = await f.operator(s, won_per_point=rate)
            if agreement:
                ag = await f.agreement(s, w.op, w.member_op)
                ag.cross_redemption = cross_redemption
                ag.fee_bps = fee_bps
                w.agreement = ag
        w.member = await f.member(s, w.member_op)
        if points:
            await f.earn(s, w.member, points, now=NOW)
    return w


async def _code(db, w, purpose=MemberCodePurpose.PAYMENT, *, member=None, now=NOW, ttl=None):
    member = member or w.member
    async with db.transaction() as s:
        issued = await issue_member_code(
            session=s,
            operator_id=member.operator_id,
            external_id=member.external_id,
            purpose=purpose,
            now=now,
            ttl_seconds=ttl,
        )
    return issued.code


async def _authorize(db, w, amount, *, key="a-1", code=None, capture=False, now=NOW, order="order-1", merchant=None):
    code = code or await _code(db, w, now=now)
    async with db.transaction() as s:
        return await svc.authorize(
            session=s,
            merchant_id=(merchant or w.merchant).id,
            code=code,
            amount_won=amount,
            order_id=order,
            idempotency_key=key,
            capture=capture,
            hold_ttl_seconds=900,
            now=now,
        )


async def _balance(db, member):
    async with db.session() as s:
        b = await balance(s, member)
        return b.available, b.held


async def _check(db):
    async with db.session() as s:
        await f.check_invariants(s)


# ---------------------------------------------------------------- lifecycle


async def test_authorize_holds_the_points_and_capture_takes_them(db):
    w = await _world(db, rate="2")
    r = await _authorize(db, w, 301)
    assert (r.status, r.amount_won, r.points, r.unit) == (RedemptionStatus.AUTHORIZED, 301, 151, w.op.unit_code)
    assert r.expires_at == NOW + dt.timedelta(seconds=900)
    assert await _balance(db, w.member) == (849, 151)
    async with db.transaction() as s:
        r = await svc.capture(session=s, merchant_id=w.merchant.id, redemption_id=r.id, idempotency_key="c-1", now=NOW)
    assert (r.status, r.captured_won, r.points) == (RedemptionStatus.CAPTURED, 301, 151)
    assert await _balance(db, w.member) == (849, 0)
    await _check(db)


async def test_partial_capture_releases_the_rest(db):
    w = await _world(db, rate="2")
    r = await _authorize(db, w, 300)
    async with db.transaction() as s:
        r = await svc.capture(
            session=s, merchant_id=w.merchant.id, redemption_id=r.id, amount_won=101, idempotency_key="c-1", now=NOW
        )
    assert (r.status, r.captured_won, r.points) == (RedemptionStatus.CAPTURED, 101, 51)
    assert await _balance(db, w.member) == (949, 0)
    await _check(db)


async def test_capture_true_authorizes_and_captures_in_one_step(db):
    w = await _world(db)
    r = await _authorize(db, w, 250, capture=True)
    assert (r.status, r.captured_won, r.points) == (RedemptionStatus.CAPTURED, 250, 250)
    assert await _balance(db, w.member) == (750, 0)
    async with db.session() as s:
        types = [e.type for e in await events_for_partner(s, w.merchant.id)]
    assert types == ["redemption.authorized", "redemption.captured"]


async def test_void_releases_the_hold(db):
    w = await _world(db)
    r = await _authorize(db, w, 400)
    async with db.transaction() as s:
        r = await svc.void(session=s, merchant_id=w.merchant.id, redemption_id=r.id, idempotency_key="v-1", now=NOW)
    assert r.status == RedemptionStatus.VOIDED
    assert await _balance(db, w.member) == (1000, 0)
    await _check(db)


async def test_refunds_are_partial_cumulative_and_bounded_by_the_capture(db):
    w = await _world(db, rate="2")
    r = await _authorize(db, w, 5, capture=True)  # 3 points
    assert r.points == 3 and await _balance(db, w.member) == (997, 0)
    steps = [
        (1, 0, RedemptionStatus.PARTIALLY_REFUNDED),
        (1, 1, RedemptionStatus.PARTIALLY_REFUNDED),
        (3, 2, RedemptionStatus.REFUNDED),
    ]
    for i, (won, points_back, status) in enumerate(steps):
        before = (await _balance(db, w.member))[0]
        async with db.transaction() as s:
            r = await svc.refund(
                session=s,
                merchant_id=w.merchant.id,
                redemption_id=r.id,
                amount_won=won,
                idempotency_key=f"r-{i}",
                reason="returned",
                now=NOW,
            )
        assert r.status == status
        assert (await _balance(db, w.member))[0] - before == points_back
    assert (r.refunded_won, r.refunded_points) == (5, 3)
    assert await _balance(db, w.member) == (1000, 0)
    with pytest.raises(AmountExceedsCaptured):
        async with db.transaction() as s:
            await svc.refund(
                session=s, merchant_id=w.merchant.id, redemption_id=r.id, amount_won=1, idempotency_key="r-9", now=NOW
            )
    await _check(db)


async def test_refunding_more_than_is_left_changes_nothing(db):
    w = await _world(db)
    r = await _authorize(db, w, 100, capture=True)
    async with db.transaction() as s:
        await svc.refund(
            session=s, merchant_id=w.merchant.id, redemption_id=r.id, amount_won=60, idempotency_key="r-1", now=NOW
        )
    with pytest.raises(AmountExceedsCaptured):
        async with db.transaction() as s:
            await svc.refund(
                session=s, merchant_id=w.merchant.id, redemption_id=r.id, amount_won=41, idempotency_key="r-2", now=NOW
            )
    async with db.session() as s:
        r = await svc.get_redemption(s, r.id)
    assert (r.status, r.refunded_won) == (RedemptionStatus.PARTIALLY_REFUNDED, 60)
    assert await _balance(db, w.member) == (960, 0)


# ---------------------------------------------------------------- errors, nothing changed


@pytest.mark.parametrize("amount", [0, -5])
async def test_a_non_positive_amount_is_invalid_input(db, amount):
    w = await _world(db)
    with pytest.raises(InvalidInput):
        await _authorize(db, w, amount)
    assert await _balance(db, w.member) == (1000, 0)


async def test_insufficient_points_keeps_the_code_usable(db):
    w = await _world(db, points=100)
    code = await _code(db, w)
    with pytest.raises(InsufficientPoints):
        await _authorize(db, w, 101, code=code)
    assert await _balance(db, w.member) == (100, 0)
    r = await _authorize(db, w, 100, code=code, key="a-2")  # the same code works: nothing was consumed
    assert r.points == 100


async def test_member_code_errors(db):
    w = await _world(db)
    with pytest.raises(InvalidMemberCode):
        await _authorize(db, w, 10, code="0000000000000000")
    with pytest.raises(InvalidMemberCode):
        await _authorize(db, w, 10, code="not-a-code")
    receive = await _code(db, w, MemberCodePurpose.RECEIVE)
    with pytest.raises(InvalidMemberCode):
        await _authorize(db, w, 10, code=receive)
    stale = await _code(db, w, now=NOW - dt.timedelta(minutes=10), ttl=180)
    with pytest.raises(MemberCodeExpired):
        await _authorize(db, w, 10, code=stale)
    used = await _code(db, w)
    await _authorize(db, w, 10, code=used, key="first")
    with pytest.raises(InvalidMemberCode):
        await _authorize(db, w, 10, code=used, key="second")
    assert await _balance(db, w.member) == (990, 10)


async def test_a_suspended_member_cannot_pay(db):
    w = await _world(db)
    code = await _code(db, w)
    async with db.transaction() as s:
        await set_member_status(
            session=s, operator_id=w.op.id, external_id=w.member.external_id, status=MemberStatus.SUSPENDED
        )
    with pytest.raises(MemberSuspended):
        await _authorize(db, w, 10, code=code)
    assert await _balance(db, w.member) == (1000, 0)


async def test_capturing_more_than_authorized_is_refused(db):
    w = await _world(db)
    r = await _authorize(db, w, 100)
    with pytest.raises(AmountExceedsAuthorized):
        async with db.transaction() as s:
            await svc.capture(
                session=s, merchant_id=w.merchant.id, redemption_id=r.id, amount_won=101, idempotency_key="c", now=NOW
            )
    assert await _balance(db, w.member) == (900, 100)


async def test_wrong_state_actions_are_invalid_state(db):
    w = await _world(db)
    captured = await _authorize(db, w, 100, capture=True, key="a-1")
    voided = await _authorize(db, w, 100, key="a-2")
    async with db.transaction() as s:
        await svc.void(session=s, merchant_id=w.merchant.id, redemption_id=voided.id, idempotency_key="v", now=NOW)
    authorized = await _authorize(db, w, 100, key="a-3")
    attempts = [
        ("capture", captured.id, {}),
        ("void", captured.id, {}),
        ("capture", voided.id, {}),
        ("void", voided.id, {}),
        ("refund", voided.id, {"amount_won": 1}),
        ("refund", authorized.id, {"amount_won": 1}),
    ]
    for i, (action, rid, extra) in enumerate(attempts):
        with pytest.raises(InvalidState):
            async with db.transaction() as s:
                await getattr(svc, action)(
                    session=s, merchant_id=w.merchant.id, redemption_id=rid, idempotency_key=f"x-{i}", now=NOW, **extra
                )
    assert await _balance(db, w.member) == (800, 100)


async def test_capture_after_the_hold_expired_is_invalid_state(db):
    w = await _world(db)
    r = await _authorize(db, w, 100)
    with pytest.raises(InvalidState):
        async with db.transaction() as s:
            await svc.capture(
                session=s,
                merchant_id=w.merchant.id,
                redemption_id=r.id,
                idempotency_key="c",
                now=NOW + dt.timedelta(seconds=900),
            )


async def test_another_merchants_redemption_is_not_found(db):
    w = await _world(db)
    r = await _authorize(db, w, 100)
    for action in ("capture", "void"):
        with pytest.raises(NotFound):
            async with db.transaction() as s:
                await getattr(svc, action)(
                    session=s, merchant_id=w.other_merchant.id, redemption_id=r.id, idempotency_key="k", now=NOW
                )
    with pytest.raises(NotFound):
        async with db.transaction() as s:
            await svc.capture(
                session=s, merchant_id=w.merchant.id, redemption_id=r.id + 1000, idempotency_key="k", now=NOW
            )


# ---------------------------------------------------------------- idempotency


async def test_a_replay_returns_the_same_redemption_and_moves_nothing_again(db):
    w = await _world(db)
    code = await _code(db, w)
    first = await _authorize(db, w, 100, code=code, capture=True)
    again = await _authorize(db, w, 100, code=code, capture=True)  # the code is used, yet the replay answers
    assert again.id == first.id and again.reference == first.reference
    assert await _balance(db, w.member) == (900, 0)
    with pytest.raises(IdempotencyKeyReused):
        await _authorize(db, w, 101, code=code, capture=True)
    async with db.transaction() as s:
        one = await svc.refund(
            session=s, merchant_id=w.merchant.id, redemption_id=first.id, amount_won=10, idempotency_key="r", now=NOW
        )
    async with db.transaction() as s:
        two = await svc.refund(
            session=s, merchant_id=w.merchant.id, redemption_id=first.id, amount_won=10, idempotency_key="r", now=NOW
        )
    assert one.id == two.id and two.refunded_won == 10
    assert await _balance(db, w.member) == (910, 0)


async def test_idempotency_keys_belong_to_the_merchant(db):
    w = await _world(db)
    a = await _authorize(db, w, 100, key="same")
    b = await _authorize(db, w, 100, key="same", merchant=w.other_merchant)
    assert a.id != b.id


# ---------------------------------------------------------------- across programs


async def test_a_member_of_another_program_pays_under_an_agreement(db):
    w = await _world(db, cross=True, rate="1.5", fee_bps=250)
    r = await _authorize(db, w, 1000)  # ceil(1000 / 1.5) = 667 points
    assert r.points == 667 and r.agreement_id == w.agreement.id
    async with db.transaction() as s:
        r = await svc.capture(
            session=s, merchant_id=w.merchant.id, redemption_id=r.id, amount_won=700, idempotency_key="c", now=NOW
        )
    assert r.points == 467  # ceil(700 / 1.5)
    async with db.session() as s:
        [flow] = (await s.execute(sa.select(SettlementFlow))).scalars().all()
    gross = 700  # floor(467 x 1.5) = 700
    assert (
        flow.kind.value,
        flow.payer_id,
        flow.payee_id,
        flow.gross_won,
        flow.fee_won,
        flow.net_won,
        flow.reference,
    ) == ("CROSS_REDEMPTION", w.member_op.id, w.op.id, gross, 17, 683, r.reference)
    for i, won in enumerate((300, 400)):
        async with db.transaction() as s:
            r = await svc.refund(
                session=s,
                merchant_id=w.merchant.id,
                redemption_id=r.id,
                amount_won=won,
                idempotency_key=f"r{i}",
                now=NOW,
            )
    async with db.session() as s:
        flows = (await s.execute(sa.select(SettlementFlow).order_by(SettlementFlow.id))).scalars().all()
    refunds = [fl for fl in flows if fl.kind.value == "CROSS_REFUND"]
    assert all((fl.payer_id, fl.payee_id) == (w.op.id, w.member_op.id) for fl in refunds)
    # A full refund mirrors the capture to the won.
    assert sum(fl.gross_won for fl in refunds) == gross and sum(fl.fee_won for fl in refunds) == 17
    assert await _balance(db, w.member) == (1000, 0)
    async with db.session() as s:
        events = await events_for_partner(s, w.member_op.id)
    assert [e.type for e in events][-1] == "redemption.refunded"
    assert all("member" not in key.lower() or key == "memberOperator" for e in events for key in e.payload)
    await _check(db)


@pytest.mark.parametrize("setup", ["none", "no-cross-redemption", "suspended"])
async def test_without_an_agreement_allowing_it_the_payment_is_refused(db, setup):
    w = await _world(db, cross=True, agreement=setup != "none", cross_redemption=setup != "no-cross-redemption")
    if setup == "suspended":
        async with db.transaction() as s:
            ag = await s.get(type(w.agreement), w.agreement.id)
            ag.status = AgreementStatus.SUSPENDED
    code = await _code(db, w)
    with pytest.raises(NoAgreement):
        await _authorize(db, w, 100, code=code)
    assert await _balance(db, w.member) == (1000, 0)


# ---------------------------------------------------------------- expiry


async def test_expired_holds_release_the_points(db):
    w = await _world(db)
    r = await _authorize(db, w, 300)
    kept = await _authorize(db, w, 200, key="a-2", now=NOW + dt.timedelta(minutes=10))
    async with db.transaction() as s:
        assert await svc.expire_redemptions(session=s, now=NOW + dt.timedelta(minutes=14)) == []
    async with db.transaction() as s:
        expired = await svc.expire_redemptions(session=s, now=NOW + dt.timedelta(minutes=15))
    assert [e.id for e in expired] == [r.id]
    async with db.session() as s:
        assert (await svc.get_redemption(s, r.id)).status == RedemptionStatus.EXPIRED
        assert (await svc.get_redemption(s, kept.id)).status == RedemptionStatus.AUTHORIZED
        events = await events_for_partner(s, w.op.id, types=["redemption.expired"])
        assert [e.payload["reference"] for e in events] == [r.reference]
    assert await _balance(db, w.member) == (800, 200)
    with pytest.raises(InvalidState):
        async with db.transaction() as s:
            await svc.capture(session=s, merchant_id=w.merchant.id, redemption_id=r.id, idempotency_key="c", now=NOW)
    await _check(db)


async def test_redemptions_query_is_scoped_to_the_partner(db):
    w = await _world(db, cross=True)
    r = await _authorize(db, w, 100, order="A-17")
    async with db.session() as s:

        async def ids(**kw):
            return [x.id for x in (await s.execute(svc.redemptions_query(**kw))).scalars()]

        assert await ids(partner_id=w.merchant.id, partner_kind="MERCHANT", order_id="A-17") == [r.id]
        assert await ids(partner_id=w.merchant.id, partner_kind="MERCHANT", order_id="A-18") == []
        assert await ids(partner_id=w.other_merchant.id, partner_kind="MERCHANT") == []
        assert await ids(partner_id=w.op.id, partner_kind="OPERATOR") == [r.id]
        assert await ids(partner_id=w.member_op.id, partner_kind="OPERATOR", status=RedemptionStatus.AUTHORIZED) == [
            r.id
        ]
        assert await ids(partner_id=w.member_op.id, partner_kind="OPERATOR", status=RedemptionStatus.CAPTURED) == []
        assert await ids(
            partner_id=0, partner_kind="ADMIN", created_from=NOW, created_to=NOW + dt.timedelta(seconds=1)
        ) == [r.id]
        assert await ids(partner_id=0, partner_kind="ADMIN", created_to=NOW) == []


async def test_the_expiry_job_is_registered_and_releases_due_holds(db, settings):
    from gateway import composition
    from gateway.db import utcnow
    from gateway.jobs import JobContext, run_job

    job = composition.job_registry()["redemptions.expire"]
    w = await _world(db)
    stale = await _authorize(db, w, 100, now=utcnow() - dt.timedelta(minutes=20))
    fresh = await _authorize(db, w, 100, key="a-2", now=utcnow())
    outcome = await run_job(job, JobContext(db=db, settings=settings), force=True)
    assert (outcome.ran, outcome.error, outcome.result) == (True, None, 1)
    async with db.session() as s:
        assert (await svc.get_redemption(s, stale.id)).status == RedemptionStatus.EXPIRED
        assert (await svc.get_redemption(s, fresh.id)).status == RedemptionStatus.AUTHORIZED
    assert await _balance(db, w.member) == (900, 100)
