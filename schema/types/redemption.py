"""Redemptions at checkout: the `Redemption` type, its status and its list filter."""

from __future__ import annotations

import strawberry

from gateway.models import Redemption as RedemptionRow
from gateway.models import RedemptionStatus
from schema.ids import encode_id
from schema.node import Node
from schema.scalars import BigInt, DateTime
from schema.types.partners import Partner, load_partner

RedemptionStatusEnum = strawberry.enum(RedemptionStatus, name="RedemptionStatus")


@strawberry.type
class Redemption(Node):
    id: strawberry.ID
    reference: str
    order_id: str
    status: RedemptionStatusEnum
    amount_won: BigInt
    captured_won: BigInt
    refunded_won: BigInt
    points: BigInt = strawberry.field(description="Points held or taken, in the member's unit.")
    refunded_points: BigInt = strawberry.field(
        description="Points given back by refunds so far (never more than the points taken)."
    )
    unit: str
    created_at: DateTime
    expires_at: DateTime | None = strawberry.field(
        description="Until when an AUTHORIZED hold stands before it expires."
    )
    row: strawberry.Private[RedemptionRow]

    @strawberry.field
    async def merchant(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.merchant_id)

    @strawberry.field(description="The operator whose member paid.")
    async def member_operator(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.member_operator_id)

    @classmethod
    def from_model(cls, row: RedemptionRow | None) -> Redemption | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Redemption", row.id)),
            reference=row.reference,
            order_id=row.order_id,
            status=row.status,
            amount_won=row.amount_won,
            captured_won=row.captured_won,
            refunded_won=row.refunded_won,
            points=row.points,
            refunded_points=row.refunded_points,
            unit=row.unit,
            created_at=row.created_at,
            expires_at=row.expires_at if row.status == RedemptionStatus.AUTHORIZED else None,
            row=row,
        )


@strawberry.input
class RedemptionFilter:
    status: RedemptionStatusEnum | None = None
    order_id: str | None = None
    from_: DateTime | None = strawberry.field(default=None, name="from", description="Created at or after.")
    to: DateTime | None = strawberry.field(default=None, description="Created before.")
    reference: str | None = strawberry.field(
        default=None, description="The movement's reference, as webhook events and ledger entries quote it."
    )
