"""Exchanges between programs: the `Exchange` type (it names no member on either side)."""

from __future__ import annotations

import strawberry

from gateway import exchange as exchange_service
from gateway.models import Exchange as ExchangeRow
from schema.ids import encode_id
from schema.node import Node, node_resolver
from schema.permissions import principal_of
from schema.scalars import BigInt, DateTime
from schema.types.partners import Partner, load_partner


@strawberry.type
class Exchange(Node):
    id: strawberry.ID
    reference: str
    from_points: BigInt
    from_unit: str
    to_points: BigInt
    to_unit: str
    won_value: BigInt
    fee_won: BigInt
    created_at: DateTime
    row: strawberry.Private[ExchangeRow]

    @strawberry.field
    async def from_operator(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.from_operator_id)

    @strawberry.field
    async def to_operator(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.to_operator_id)

    @classmethod
    def from_model(cls, row: ExchangeRow | None) -> Exchange | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Exchange", row.id)),
            reference=row.reference,
            from_points=row.from_points,
            from_unit=row.from_unit,
            to_points=row.to_points,
            to_unit=row.to_unit,
            won_value=row.won_value,
            fee_won=row.fee_won,
            created_at=row.created_at,
            row=row,
        )


@node_resolver("Exchange")
async def exchange_node(info, pk: int) -> Exchange | None:
    """Visible to the two operators and ADMIN; to anyone else exactly like an unknown id."""
    principal = principal_of(info)
    row = await info.context.session.get(ExchangeRow, pk)
    kind = "ADMIN" if principal.is_admin else principal.partner_kind
    if row is None or not exchange_service.visible_to(row, partner_id=principal.partner_id, partner_kind=kind):
        return None
    return Exchange.from_model(row)
