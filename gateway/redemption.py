"""Checkout: a member pays a merchant with points (authorize, capture, void, refund).

What a caller may rely on
-------------------------
* **Authorize** consumes the member's PAYMENT code (by its first use), then holds
  `points_to_pay(amount_won, wonPerPoint)` points of the member's unit on the member's wallet,
  toward the merchant's account, or - for a member of another operator - toward the clearing
  account (in the member's unit) of the ACTIVE agreement between the two operators that allows
  `crossRedemption` (`NoAgreement` otherwise). The hold stands until `expires_at`
  (`now + hold_ttl_seconds`). `capture=True` authorizes and captures in one step (one posting,
  no hold).
* **Capture** takes `amount_won` (default: the whole authorized amount; at most that, else
  `AmountExceedsAuthorized`) and releases the rest of the hold. Points captured:
  `min(points_to_pay(captured_won), held points)`.
* **Void** releases an AUTHORIZED hold in full. **Expiry** (`expire_redemptions`, a scheduled
  job) does the same for holds past `expires_at`, status EXPIRED.
* **Refund** is partial and cumulative up to the captured amount (`AmountExceedsCaptured`
  beyond). Points go back by `refund_points_total`: after refunds of R won out of C won
  captured for P points, the member has had `floor(P x R / C)` points back in total, and all P
  once R = C. So partial refunds round in the merchant's favour by less than a point, the last
  refund settles the remainder exactly, and no sequence of refunds ever returns more points
  than were taken.
* Wrong state for the action: `InvalidState`. Another merchant's redemption: `NotFound`
  (exactly as an unknown id). Every error changes nothing (the caller's transaction rolls back).
* **Idempotency**: each action runs through `gateway.idempotency.run_idempotent`, keyed by
  (merchant, idempotency key): a replay returns the same redemption, the same key with another
  request raises `IdempotencyKeyReused`.
* **Across programs**, each capture writes a `SettlementFlow` CROSS_REDEMPTION (payer: the
  member's operator, payee: the merchant's operator, gross: the won value
  `floor(points x wonPerPoint)` of the points captured, fee: `floor(gross x feeBps / 10000)`),
  and each refund a CROSS_REFUND the other way. Refund flows are cumulative differences, so
  refunding a payment in full mirrors its capture flow to the won.
* **Events** (outbox, same transaction): `redemption.authorized|captured|voided|refunded|expired`
  to the merchant, the merchant's operator and the member's operator. The data carries no
  member id.

Concurrency: every action on a redemption first locks its row (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite serializes writers), so of a concurrent capture and void exactly one wins
and the other sees the new state (`InvalidState`). Holds and postings are conditional updates
in the ledger, so concurrent authorizations never take a wallet below zero. Each action writes
its own rows (redemption, events, settlement flow) *before* the ledger posting, so the wallet's
row lock is held only for the posting and the commit.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import ledger
from gateway.codes import consume_member_code
from gateway.db import utcnow
from gateway.errors import (
    AmountExceedsAuthorized,
    AmountExceedsCaptured,
    InvalidInput,
    InvalidState,
    NoAgreement,
    NotFound,
)
from gateway.idempotency import run_idempotent
from gateway.jobs import Job, JobRegistry
from gateway.models.ledger import EntryKind, Hold, HoldStatus, OwnerKind
from gateway.models.members import MemberCodePurpose
from gateway.models.partners import Agreement, Partner, PartnerKind
from gateway.models.redemption import Redemption, RedemptionStatus
from gateway.models.settlement import FlowKind
from gateway.outbox import emit, emit_many
from gateway.partners import active_agreement
from gateway.settlement import record_flow

ORDER_ID_MAX = 128
REASON_MAX = 200
DEFAULT_HOLD_TTL_SECONDS = 15 * 60


# ---------------------------------------------------------------- rounding rules (one function each)


def points_to_pay(amount_won: int, won_per_point: Decimal) -> int:
    """Points a price of `amount_won` costs: `ceil(amount_won / won_per_point)`, exactly.

    Rounded up, so that the points taken are always worth at least the price
    (1 won at 2 won a point costs 1 point; 3 won at 0.5 won a point costs 6 points)."""
    return math.ceil(Fraction(amount_won) / Fraction(won_per_point))


def won_value(points: int, won_per_point: Decimal) -> int:
    """The won value of `points` of a unit: `floor(points x won_per_point)` (contract "Money")."""
    return math.floor(Fraction(points) * Fraction(won_per_point))


def fee_won(gross_won: int, fee_bps: int) -> int:
    """An agreement's fee on a cross-program movement: `floor(gross_won x fee_bps / 10000)`."""
    return gross_won * fee_bps // 10_000


def refund_points_total(captured_points: int, captured_won: int, refunded_won_total: int) -> int:
    """Points returned in total once `refunded_won_total` of `captured_won` is refunded:
    `floor(captured_points x refunded_won_total / captured_won)`; all of them when refunded in
    full. Never more than `captured_points`, never less than a previous total."""
    if not 0 <= refunded_won_total <= captured_won:
        raise ValueError("refunded amount out of range")
    if refunded_won_total == captured_won:
        return captured_points
    return captured_points * refunded_won_total // captured_won


# ---------------------------------------------------------------- look-ups


async def get_redemption(session: AsyncSession, redemption_id: int) -> Redemption | None:
    return (
        await session.execute(
            sa.select(Redemption).where(Redemption.id == redemption_id).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


def visible_to(redemption: Redemption, *, partner_id: int, partner_kind: str) -> bool:
    """Tenancy: ADMIN sees all; a MERCHANT its own; an OPERATOR those paid by its members or
    taken at its merchants."""
    if partner_kind == PartnerKind.ADMIN.value:
        return True
    if partner_kind == PartnerKind.MERCHANT.value:
        return redemption.merchant_id == partner_id
    if partner_kind == PartnerKind.OPERATOR.value:
        return partner_id in (redemption.member_operator_id, redemption.merchant_operator_id)
    return False


def redemptions_query(
    *,
    partner_id: int,
    partner_kind: str,
    status: RedemptionStatus | None = None,
    order_id: str | None = None,
    reference: str | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
) -> sa.Select:
    """The redemptions a partner may see, filtered (`created_from` inclusive, `created_to`
    exclusive); the caller orders and pages (newest first by id)."""
    stmt = sa.select(Redemption)
    if partner_kind == PartnerKind.MERCHANT.value:
        stmt = stmt.where(Redemption.merchant_id == partner_id)
    elif partner_kind == PartnerKind.OPERATOR.value:
        stmt = stmt.where(
            sa.or_(Redemption.member_operator_id == partner_id, Redemption.merchant_operator_id == partner_id)
        )
    elif partner_kind != PartnerKind.ADMIN.value:
        stmt = stmt.where(sa.false())
    if status is not None:
        stmt = stmt.where(Redemption.status == RedemptionStatus(status))
    if order_id is not None:
        stmt = stmt.where(Redemption.order_id == order_id)
    if reference is not None:
        stmt = stmt.where(Redemption.reference == reference)
    if created_from is not None:
        stmt = stmt.where(Redemption.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Redemption.created_at < created_to)
    return stmt


async def _lock(session: AsyncSession, *, merchant_id: int, redemption_id: int) -> Redemption:
    """The merchant's redemption, its row locked for the rest of the transaction."""
    redemption = (
        await session.execute(
            sa.select(Redemption)
            .where(Redemption.id == redemption_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if redemption is None or redemption.merchant_id != merchant_id:
        raise NotFound("no such redemption", field=["input", "redemptionId"])
    return redemption


async def _merchant(session: AsyncSession, merchant_id: int) -> Partner:
    merchant = await session.get(Partner, merchant_id)
    if merchant is None or merchant.kind != PartnerKind.MERCHANT or merchant.operator_id is None:
        raise InvalidState("only a merchant affiliated with an operator takes payments")
    return merchant


# ---------------------------------------------------------------- events and settlement flows


async def _event(session: AsyncSession, type_: str, r: Redemption, **extra) -> tuple[str, list[int], dict]:
    """An event about `r` as (type, partner ids, data), for `emit_many`."""
    merchant = await session.get(Partner, r.merchant_id)
    member_operator = await session.get(Partner, r.member_operator_id)
    data = {
        "reference": r.reference,
        "merchant": merchant.code,
        "memberOperator": member_operator.code,
        "orderId": r.order_id,
        "status": r.status.value,
        "amountWon": str(r.amount_won),
        "capturedWon": str(r.captured_won),
        "refundedWon": str(r.refunded_won),
        "points": str(r.points),
        "unit": r.unit,
    }
    data.update({k: str(v) for k, v in extra.items()})
    return type_, [r.merchant_id, r.merchant_operator_id, r.member_operator_id], data


async def _emit(session: AsyncSession, type_: str, r: Redemption, now: dt.datetime, **extra) -> None:
    type_, partner_ids, data = await _event(session, type_, r, **extra)
    await emit(session=session, type=type_, partner_ids=partner_ids, data=data, now=now)


async def _flow(
    session: AsyncSession, r: Redemption, kind: FlowKind, *, gross: int, fee: int, now: dt.datetime
) -> None:
    if kind == FlowKind.CROSS_REDEMPTION:
        payer, payee = r.member_operator_id, r.merchant_operator_id
    else:
        payer, payee = r.merchant_operator_id, r.member_operator_id
    record_flow(
        session,
        agreement_id=r.agreement_id,
        kind=kind,
        payer_id=payer,
        payee_id=payee,
        reference=r.reference,
        gross_won=gross,
        fee_won=fee,
        now=now,
    )
    await session.flush()


async def _fee_bps(session: AsyncSession, agreement_id: int) -> int:
    return await session.scalar(sa.select(Agreement.fee_bps).where(Agreement.id == agreement_id))


# ---------------------------------------------------------------- authorize


def _check_won(amount_won, field: list[str]) -> int:
    if isinstance(amount_won, bool) or not isinstance(amount_won, int) or amount_won <= 0:
        raise InvalidInput("an amount in won must be a whole number above zero", field=field)
    return amount_won


async def authorize(
    *,
    session: AsyncSession,
    merchant_id: int,
    code: str,
    amount_won: int,
    order_id: str,
    idempotency_key: str,
    capture: bool = False,
    hold_ttl_seconds: int = DEFAULT_HOLD_TTL_SECONDS,
    now: dt.datetime | None = None,
) -> Redemption:
    """Hold the points for `amount_won` at the merchant (and capture them at once with
    `capture=True`). Errors: InvalidInput, InvalidMemberCode, MemberCodeExpired,
    MemberSuspended, NoAgreement, InsufficientPoints, IdempotencyKeyReused."""
    now = now or utcnow()
    request = {"memberCode": code, "amountWon": amount_won, "orderId": order_id, "capture": bool(capture)}
    created: list[Redemption] = []

    async def work() -> dict:
        _check_won(amount_won, ["input", "amountWon"])
        if not isinstance(order_id, str) or not order_id.strip() or len(order_id) > ORDER_ID_MAX:
            raise InvalidInput(f"orderId must be 1 to {ORDER_ID_MAX} characters", field=["input", "orderId"])
        merchant = await _merchant(session, merchant_id)
        member = await consume_member_code(session=session, code=code, purpose=MemberCodePurpose.PAYMENT, now=now)
        member_operator = await session.get(Partner, member.operator_id)
        agreement = None
        if member.operator_id != merchant.operator_id:
            agreement = await active_agreement(
                session, merchant.operator_id, member.operator_id, on=ledger.seoul_date(now)
            )
            if agreement is None or not agreement.cross_redemption:
                raise NoAgreement(
                    "the member's program has no agreement with this merchant's program that allows paying here",
                    field=["input", "memberCode"],
                )
        rate = member_operator.won_per_point
        points = points_to_pay(amount_won, rate)
        # The member's operator is loaded already: its unit saves a query (without one, the
        # look-up refuses). Wallet and credit account are read in one statement.
        unit = member_operator.unit_code or await ledger.operator_unit(session, member.operator_id)
        if agreement is None:
            credit_spec = dict(owner_kind=OwnerKind.PARTNER, owner_id=merchant.id, unit=unit, purpose="merchant")
        else:
            credit_spec = dict(owner_kind=OwnerKind.AGREEMENT, owner_id=agreement.id, unit=unit, purpose="clearing")
        wallet, credit = await ledger.get_or_create_accounts(session, ledger.wallet_spec(member, unit), credit_spec)
        r = Redemption(
            reference=ledger.new_reference(),
            merchant_id=merchant.id,
            merchant_operator_id=merchant.operator_id,
            member_operator_id=member.operator_id,
            member_id=member.id,
            agreement_id=agreement.id if agreement else None,
            hold_id=None,
            debit_account_id=wallet.id,
            credit_account_id=credit.id,
            order_id=order_id,
            status=RedemptionStatus.CAPTURED if capture else RedemptionStatus.AUTHORIZED,
            unit=wallet.unit,
            won_per_point=rate,
            amount_won=amount_won,
            captured_won=amount_won if capture else 0,
            refunded_won=0,
            held_points=points,
            captured_points=points if capture else 0,
            refunded_points=0,
            created_at=now,
            expires_at=None if capture else now + dt.timedelta(seconds=hold_ttl_seconds),
            captured_at=now if capture else None,
            updated_at=now,
        )
        session.add(r)
        await session.flush()
        # Everything that does not need the wallet is written before the ledger posting, so
        # that the wallet's row lock (taken by the posting) is held for as few statements as
        # possible. It all commits or rolls back together.
        if capture:  # both events in one write
            authorized = await _event(session, "redemption.authorized", r, status="AUTHORIZED", capturedWon=0)
            await _captured(session, r, now, first=[authorized])
        else:
            await _emit(session, "redemption.authorized", r, now, status="AUTHORIZED", capturedWon=0)
        memo = f"payment at {merchant.code}, order {order_id}"
        if capture:
            # Authorized and captured in one step: one posting, no hold.
            await ledger.post(
                session=session,
                kind=EntryKind.REDEEM,
                reference=r.reference,
                memo=memo,
                now=now,
                legs=[ledger.Leg(wallet, credit, points)],
                savepoint=False,  # an error rolls back the whole transaction
            )
        else:
            hold = await ledger.create_hold(
                session=session,
                debit=wallet,
                credit=credit,
                amount=points,
                kind=EntryKind.REDEEM,
                memo=memo,
                reference=r.reference,
                expires_at=r.expires_at,
                now=now,
            )
            r.hold_id = hold.id
        created.append(r)
        return {"redemption_id": r.id}

    result = await run_idempotent(
        session=session,
        partner_id=merchant_id,
        key=idempotency_key,
        operation="authorizeRedemption",
        request=request,
        work=work,
    )
    return created[0] if created else await get_redemption(session, result["redemption_id"])


# ---------------------------------------------------------------- capture


async def _captured(session: AsyncSession, r: Redemption, now: dt.datetime, first: Sequence[tuple] = ()) -> None:
    """What a capture writes besides the ledger: the settlement flow across programs, the event
    (after the events `first`, written with it)."""
    if r.cross_program:
        gross = won_value(r.captured_points, r.won_per_point)
        fee = fee_won(gross, await _fee_bps(session, r.agreement_id))
        await _flow(session, r, FlowKind.CROSS_REDEMPTION, gross=gross, fee=fee, now=now)
    if first:
        await emit_many(session=session, events=[*first, await _event(session, "redemption.captured", r)], now=now)
    else:
        await _emit(session, "redemption.captured", r, now)


async def _capture(session: AsyncSession, r: Redemption, amount_won: int | None, now: dt.datetime) -> None:
    if r.status != RedemptionStatus.AUTHORIZED:
        raise InvalidState(f"a {r.status.value} redemption cannot be captured")
    if r.expires_at <= now:
        raise InvalidState("the authorization has expired")
    captured_won = r.amount_won if amount_won is None else _check_won(amount_won, ["input", "amountWon"])
    if captured_won > r.amount_won:
        raise AmountExceedsAuthorized(f"at most {r.amount_won} won are authorized", field=["input", "amountWon"])
    points = min(points_to_pay(captured_won, r.won_per_point), r.held_points)
    r.status = RedemptionStatus.CAPTURED
    r.captured_won = captured_won
    r.captured_points = points
    r.captured_at = now
    r.updated_at = now
    await session.flush()
    await _captured(session, r, now)
    hold = await ledger.get_hold(session, r.hold_id)
    await ledger.post_hold(
        session=session, hold=hold, amount=points, memo=f"payment captured, order {r.order_id}", now=now
    )


async def capture(
    *,
    session: AsyncSession,
    merchant_id: int,
    redemption_id: int,
    idempotency_key: str,
    amount_won: int | None = None,
    now: dt.datetime | None = None,
) -> Redemption:
    """Capture `amount_won` (default all) of an AUTHORIZED redemption; the rest is released.
    Errors: NotFound, InvalidState, AmountExceedsAuthorized, InvalidInput, IdempotencyKeyReused."""
    now = now or utcnow()

    async def work() -> dict:
        r = await _lock(session, merchant_id=merchant_id, redemption_id=redemption_id)
        await _capture(session, r, amount_won, now)
        return {"redemption_id": r.id}

    result = await run_idempotent(
        session=session,
        partner_id=merchant_id,
        key=idempotency_key,
        operation="captureRedemption",
        request={"redemptionId": redemption_id, "amountWon": amount_won},
        work=work,
    )
    return await get_redemption(session, result["redemption_id"])


# ---------------------------------------------------------------- void


async def void(
    *,
    session: AsyncSession,
    merchant_id: int,
    redemption_id: int,
    idempotency_key: str,
    now: dt.datetime | None = None,
) -> Redemption:
    """Release an AUTHORIZED redemption's hold in full. Errors: NotFound, InvalidState,
    IdempotencyKeyReused."""
    now = now or utcnow()

    async def work() -> dict:
        r = await _lock(session, merchant_id=merchant_id, redemption_id=redemption_id)
        if r.status != RedemptionStatus.AUTHORIZED:
            raise InvalidState(f"a {r.status.value} redemption cannot be voided")
        r.status = RedemptionStatus.VOIDED
        r.updated_at = now
        await session.flush()
        await _emit(session, "redemption.voided", r, now)
        hold = await ledger.get_hold(session, r.hold_id)
        await ledger.void_hold(session=session, hold=hold, memo=f"payment voided, order {r.order_id}", now=now)
        return {"redemption_id": r.id}

    result = await run_idempotent(
        session=session,
        partner_id=merchant_id,
        key=idempotency_key,
        operation="voidRedemption",
        request={"redemptionId": redemption_id},
        work=work,
    )
    return await get_redemption(session, result["redemption_id"])


# ---------------------------------------------------------------- refund


async def refund(
    *,
    session: AsyncSession,
    merchant_id: int,
    redemption_id: int,
    amount_won: int,
    idempotency_key: str,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Redemption:
    """Refund `amount_won` of a captured redemption (partial, cumulative up to the captured
    amount); points go back by `refund_points_total`. Errors: NotFound, InvalidState,
    AmountExceedsCaptured, InvalidInput, IdempotencyKeyReused."""
    now = now or utcnow()

    async def work() -> dict:
        _check_won(amount_won, ["input", "amountWon"])
        if reason is not None and len(reason) > REASON_MAX:
            raise InvalidInput(f"reason must be at most {REASON_MAX} characters", field=["input", "reason"])
        r = await _lock(session, merchant_id=merchant_id, redemption_id=redemption_id)
        if r.status not in (RedemptionStatus.CAPTURED, RedemptionStatus.PARTIALLY_REFUNDED, RedemptionStatus.REFUNDED):
            raise InvalidState(f"a {r.status.value} redemption cannot be refunded")
        left = r.captured_won - r.refunded_won
        if amount_won > left:
            raise AmountExceedsCaptured(f"only {left} won are left to refund", field=["input", "amountWon"])
        total_won = r.refunded_won + amount_won
        total_points = refund_points_total(r.captured_points, r.captured_won, total_won)
        points = total_points - r.refunded_points
        if r.cross_program and points > 0:
            fee_bps = await _fee_bps(session, r.agreement_id)
            gross_before = won_value(r.refunded_points, r.won_per_point)
            gross_after = won_value(total_points, r.won_per_point)
            gross = gross_after - gross_before
            fee = fee_won(gross_after, fee_bps) - fee_won(gross_before, fee_bps)
            await _flow(session, r, FlowKind.CROSS_REFUND, gross=gross, fee=fee, now=now)
        r.refunded_won = total_won
        r.refunded_points = total_points
        r.status = RedemptionStatus.REFUNDED if total_won == r.captured_won else RedemptionStatus.PARTIALLY_REFUNDED
        r.updated_at = now
        await session.flush()
        await _emit(session, "redemption.refunded", r, now, refundWon=amount_won, refundPoints=points)
        if points > 0:
            wallet = await ledger.get_account(session, r.debit_account_id)
            source = await ledger.get_account(session, r.credit_account_id)
            memo = f"refund, order {r.order_id}" + (f": {reason}" if reason else "")
            await ledger.post(
                session=session,
                kind=EntryKind.REFUND,
                reference=r.reference,
                memo=memo,
                now=now,
                legs=[ledger.Leg(source, wallet, points)],
                savepoint=False,  # an error rolls back the whole transaction
            )
        return {"redemption_id": r.id}

    result = await run_idempotent(
        session=session,
        partner_id=merchant_id,
        key=idempotency_key,
        operation="refundRedemption",
        request={"redemptionId": redemption_id, "amountWon": amount_won, "reason": reason},
        work=work,
    )
    return await get_redemption(session, result["redemption_id"])


# ---------------------------------------------------------------- expiry (scheduled job)


async def expire_redemptions(
    *, session: AsyncSession, now: dt.datetime | None = None, limit: int = 500
) -> list[Redemption]:
    """Release the holds of AUTHORIZED redemptions past `expires_at`: status EXPIRED, the points
    back to the member, `redemption.expired` emitted. Returns the redemptions expired.

    Redemptions being captured or voided at this moment are skipped (SKIP LOCKED) and
    picked up by the next run if still due.
    """
    now = now or utcnow()
    due = (
        (
            await session.execute(
                sa.select(Redemption)
                .where(Redemption.status == RedemptionStatus.AUTHORIZED, Redemption.expires_at <= now)
                .order_by(Redemption.expires_at, Redemption.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    if not due:
        return []
    # The ledger releases pending holds past their time (ours, and any other area's).
    await ledger.expire_holds(session=session, now=now, limit=max(limit, len(due)))
    hold_status = dict(
        (await session.execute(sa.select(Hold.id, Hold.status).where(Hold.id.in_([r.hold_id for r in due])))).all()
    )
    expired = []
    for r in due:
        if hold_status.get(r.hold_id) not in (HoldStatus.EXPIRED, HoldStatus.VOIDED):
            continue  # still pending (beyond that call's limit): the next run takes it
        r.status = RedemptionStatus.EXPIRED
        r.updated_at = now
        await session.flush()
        await _emit(session, "redemption.expired", r, now)
        expired.append(r)
    return expired


async def expire_redemptions_job(ctx) -> int:
    """The scheduled job (gateway.jobs): expire what is due, in batches; returns how many."""
    count = 0
    while True:
        async with ctx.db.transaction() as session:
            batch = await expire_redemptions(session=session, now=utcnow())
        count += len(batch)
        if len(batch) < 500:
            return count


def register_jobs(jobs: JobRegistry) -> None:
    jobs.add(Job.every("redemptions.expire", 30, expire_redemptions_job))


__all__ = [
    "authorize",
    "capture",
    "expire_redemptions",
    "expire_redemptions_job",
    "fee_won",
    "get_redemption",
    "points_to_pay",
    "redemptions_query",
    "refund",
    "refund_points_total",
    "register_jobs",
    "visible_to",
    "void",
    "won_value",
]
