"""Checkout mutations of a merchant: authorize, capture, void and refund a redemption."""

from __future__ import annotations

import strawberry

from gateway import redemption as redemption_service
from gateway.db import utcnow
from gateway.errors import NotFound
from schema.errors import UserError, forbidden, mutate
from schema.ids import decode_pk
from schema.permissions import MERCHANT, needs, principal_of
from schema.scalars import BigInt
from schema.types.redemption import Redemption


@strawberry.input
class AuthorizeRedemptionInput:
    member_code: str = strawberry.field(description="The member's PAYMENT code, scanned at checkout.")
    amount_won: BigInt
    order_id: str
    idempotency_key: str
    capture: bool | None = strawberry.field(
        default=False, description="Capture at once: authorize and capture in one step."
    )


@strawberry.input
class CaptureRedemptionInput:
    redemption_id: strawberry.ID
    amount_won: BigInt | None = strawberry.field(
        default=None, description="Defaults to the whole authorized amount; less captures part and releases the rest."
    )
    idempotency_key: str


@strawberry.input
class VoidRedemptionInput:
    redemption_id: strawberry.ID
    idempotency_key: str


@strawberry.input
class RefundRedemptionInput:
    redemption_id: strawberry.ID
    amount_won: BigInt
    idempotency_key: str
    reason: str | None = None


@strawberry.type
class RedemptionPayload:
    redemption: Redemption | None
    errors: list[UserError]


def _merchant_id(info) -> int:
    """Checkout acts for the calling merchant only (an ADMIN takes no payments)."""
    principal = principal_of(info)
    if principal.partner_kind != "MERCHANT":
        raise forbidden("Only a MERCHANT takes payments.")
    return principal.partner_id


def _redemption_pk(redemption_id: str) -> int:
    pk = decode_pk(redemption_id, "Redemption")
    if pk is None:
        raise NotFound("no such redemption", field=["input", "redemptionId"])
    return pk


def _payload(row, errors: list[UserError]) -> RedemptionPayload:
    return RedemptionPayload(redemption=Redemption.from_model(row) if row is not None else None, errors=errors)


@strawberry.type
class Mutation:
    @strawberry.mutation(description="MERCHANT.", extensions=needs("redemptions:write", MERCHANT))
    async def authorize_redemption(self, info: strawberry.Info, input: AuthorizeRedemptionInput) -> RedemptionPayload:
        merchant_id = _merchant_id(info)
        return await mutate(
            info,
            lambda session: redemption_service.authorize(
                session=session,
                merchant_id=merchant_id,
                code=input.member_code,
                amount_won=input.amount_won,
                order_id=input.order_id,
                idempotency_key=input.idempotency_key,
                capture=bool(input.capture),
                hold_ttl_seconds=info.context.settings.hold_ttl_seconds,
                now=utcnow(),
            ),
            _payload,
        )

    @strawberry.mutation(description="MERCHANT.", extensions=needs("redemptions:write", MERCHANT))
    async def capture_redemption(self, info: strawberry.Info, input: CaptureRedemptionInput) -> RedemptionPayload:
        merchant_id = _merchant_id(info)
        return await mutate(
            info,
            lambda session: redemption_service.capture(
                session=session,
                merchant_id=merchant_id,
                redemption_id=_redemption_pk(input.redemption_id),
                amount_won=input.amount_won,
                idempotency_key=input.idempotency_key,
                now=utcnow(),
            ),
            _payload,
        )

    @strawberry.mutation(description="MERCHANT.", extensions=needs("redemptions:write", MERCHANT))
    async def void_redemption(self, info: strawberry.Info, input: VoidRedemptionInput) -> RedemptionPayload:
        merchant_id = _merchant_id(info)
        return await mutate(
            info,
            lambda session: redemption_service.void(
                session=session,
                merchant_id=merchant_id,
                redemption_id=_redemption_pk(input.redemption_id),
                idempotency_key=input.idempotency_key,
                now=utcnow(),
            ),
            _payload,
        )

    @strawberry.mutation(description="MERCHANT.", extensions=needs("redemptions:write", MERCHANT))
    async def refund_redemption(self, info: strawberry.Info, input: RefundRedemptionInput) -> RedemptionPayload:
        merchant_id = _merchant_id(info)
        return await mutate(
            info,
            lambda session: redemption_service.refund(
                session=session,
                merchant_id=merchant_id,
                redemption_id=_redemption_pk(input.redemption_id),
                amount_won=input.amount_won,
                idempotency_key=input.idempotency_key,
                reason=input.reason,
                now=utcnow(),
            ),
            _payload,
        )
