"""Exchange of points between two programs, through won.

What a caller may rely on
-------------------------
* The giving operator names its own member (`member_external_id`) and a RECEIVE code that the
  other operator issued for its member; the code is consumed by this use. The two operators
  need an ACTIVE agreement with `pointExchange` (`NoAgreement` otherwise).
* Amounts (contract "Decisions", Money and Fees), one named function per rule:
  `wonValue = floor(points x fromWonPerPoint)` (`redemption.won_value`),
  `feeWon = floor(wonValue x feeBps / 10000)` (`redemption.fee_won`),
  `toPoints = floor((wonValue - feeWon) / toWonPerPoint)` (`points_received`).
  An exchange that would credit no point is refused (`InvalidInput`).
* Postings, one transaction, one reference: EXCHANGE_OUT from the giver's wallet to the
  agreement's clearing account in the giver's unit, EXCHANGE_IN from the clearing account in
  the receiver's unit to the receiver's wallet. Either member not ACTIVE: `MemberSuspended`;
  not enough points: `InsufficientPoints`. Every error changes nothing.
* A `SettlementFlow` EXCHANGE: the giving operator (whose points were spent) owes the
  receiving one `wonValue - feeWon`.
* Neither operator learns the other's member id: the `Exchange` carries none outward, ledger
  memos name only the units, and `exchange.completed` is written once per operator, each
  naming only that operator's own member.
* Idempotent per (giving operator, idempotency key), like every value-moving mutation.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from gateway import ledger
from gateway.codes import consume_member_code
from gateway.db import utcnow
from gateway.errors import DomainError, InvalidInput, NoAgreement
from gateway.idempotency import run_idempotent
from gateway.members import require_member
from gateway.models.exchange import Exchange
from gateway.models.ledger import EntryKind
from gateway.models.members import Member, MemberCodePurpose
from gateway.models.partners import Partner, PartnerKind
from gateway.models.settlement import FlowKind
from gateway.outbox import emit
from gateway.partners import active_agreement
from gateway.redemption import fee_won, won_value
from gateway.settlement import record_flow


def points_received(won_after_fee: int, to_won_per_point: Decimal) -> int:
    """Points of the receiving unit for a won amount: `floor(won / to_won_per_point)`, exactly."""
    return math.floor(Fraction(won_after_fee) / Fraction(to_won_per_point))


async def get_exchange(session: AsyncSession, exchange_id: int) -> Exchange | None:
    return await session.get(Exchange, exchange_id)


def visible_to(exchange: Exchange, *, partner_id: int, partner_kind: str) -> bool:
    """ADMIN, or one of the two operators."""
    return partner_kind == PartnerKind.ADMIN.value or partner_id in (exchange.from_operator_id, exchange.to_operator_id)


async def exchange_points(
    *,
    session: AsyncSession,
    operator_id: int,
    member_external_id: str,
    receive_code: str,
    points: int,
    idempotency_key: str,
    now: dt.datetime | None = None,
) -> Exchange:
    """Move `points` of the calling operator's member into the other program for the member
    named by the RECEIVE code. Errors: InvalidInput, NotFound (no such member of the caller),
    InvalidMemberCode, MemberCodeExpired, NoAgreement, MemberSuspended, InsufficientPoints,
    IdempotencyKeyReused."""
    now = now or utcnow()
    request = {"memberExternalId": member_external_id, "receiveCode": receive_code, "points": points}

    async def work() -> dict:
        if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
            raise InvalidInput("points must be a whole number above zero", field=["input", "points"])
        giver = await require_member(session, operator_id, member_external_id)
        try:
            receiver = await consume_member_code(
                session=session, code=receive_code, purpose=MemberCodePurpose.RECEIVE, now=now
            )
        except DomainError as exc:
            exc.field = ["input", "receiveCode"]
            raise
        if receiver.operator_id == operator_id:
            raise InvalidInput("an exchange moves points to another operator's member", field=["input", "receiveCode"])
        agreement = await active_agreement(session, operator_id, receiver.operator_id, on=ledger.seoul_date(now))
        if agreement is None or not agreement.point_exchange:
            raise NoAgreement(
                "the two programs have no agreement that allows exchanging points", field=["input", "receiveCode"]
            )
        from_op = await session.get(Partner, operator_id)
        to_op = await session.get(Partner, receiver.operator_id)
        value = won_value(points, from_op.won_per_point)
        fee = fee_won(value, agreement.fee_bps)
        to_points = points_received(value - fee, to_op.won_per_point)
        if to_points <= 0:
            raise InvalidInput("too few points: the exchange would credit nothing", field=["input", "points"])

        giver_wallet = await ledger.wallet_account(session, giver)
        receiver_wallet = await ledger.wallet_account(session, receiver)
        out_clearing = await ledger.clearing_account(session, agreement.id, giver_wallet.unit)
        in_clearing = await ledger.clearing_account(session, agreement.id, receiver_wallet.unit)
        txn = await ledger.post(
            session=session,
            kind=EntryKind.EXCHANGE_OUT,
            legs=[
                ledger.Leg(giver_wallet, out_clearing, points),
                ledger.Leg(in_clearing, receiver_wallet, to_points, kind=EntryKind.EXCHANGE_IN),
            ],
            memo=f"exchange {points} {giver_wallet.unit} -> {to_points} {receiver_wallet.unit}",
            now=now,
        )
        exchange = Exchange(
            reference=txn.reference,
            agreement_id=agreement.id,
            from_operator_id=operator_id,
            to_operator_id=receiver.operator_id,
            from_member_id=giver.id,
            to_member_id=receiver.id,
            from_points=points,
            from_unit=giver_wallet.unit,
            to_points=to_points,
            to_unit=receiver_wallet.unit,
            won_value=value,
            fee_won=fee,
            created_at=now,
        )
        session.add(exchange)
        record_flow(
            session,
            agreement_id=agreement.id,
            kind=FlowKind.EXCHANGE,
            payer_id=operator_id,
            payee_id=receiver.operator_id,
            reference=txn.reference,
            gross_won=value,
            fee_won=fee,
            now=now,
        )
        await session.flush()
        await _emit_completed(session, exchange, from_op, to_op, giver, receiver, now)
        return {"exchange_id": exchange.id}

    result = await run_idempotent(
        session=session,
        partner_id=operator_id,
        key=idempotency_key,
        operation="exchangePoints",
        request=request,
        work=work,
    )
    return await session.get(Exchange, result["exchange_id"])


async def _emit_completed(
    session: AsyncSession,
    e: Exchange,
    from_op: Partner,
    to_op: Partner,
    giver: Member,
    receiver: Member,
    now: dt.datetime,
) -> None:
    common = {
        "reference": e.reference,
        "fromOperator": from_op.code,
        "toOperator": to_op.code,
        "fromPoints": str(e.from_points),
        "fromUnit": e.from_unit,
        "toPoints": str(e.to_points),
        "toUnit": e.to_unit,
        "wonValue": str(e.won_value),
        "feeWon": str(e.fee_won),
    }
    # One event per operator, each naming only its own member.
    await emit(
        session=session,
        type="exchange.completed",
        partner_ids=[from_op.id],
        now=now,
        data={**common, "direction": "OUT", "memberExternalId": giver.external_id},
    )
    await emit(
        session=session,
        type="exchange.completed",
        partner_ids=[to_op.id],
        now=now,
        data={**common, "direction": "IN", "memberExternalId": receiver.external_id},
    )


__all__ = ["exchange_points", "get_exchange", "points_received", "visible_to"]
