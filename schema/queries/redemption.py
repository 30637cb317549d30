"""Redemption queries: one by id, or a filtered list; each partner sees only its own."""

from __future__ import annotations

import strawberry

from gateway import redemption as redemption_service
from gateway.models import Redemption as RedemptionRow
from gateway.models import RedemptionStatus
from schema.ids import decode_pk
from schema.node import node_resolver
from schema.pagination import Connection, paginate
from schema.permissions import MERCHANT, OPERATOR, needs, principal_of
from schema.types.redemption import Redemption, RedemptionFilter


def _kind(principal) -> str:
    return "ADMIN" if principal.is_admin else principal.partner_kind


@node_resolver("Redemption")
async def redemption_node(info, pk: int) -> Redemption | None:
    """The redemption if the caller may see it; otherwise None, exactly as for an unknown id."""
    principal = principal_of(info)
    row = await info.context.session.get(RedemptionRow, pk)
    if row is None or not redemption_service.visible_to(
        row, partner_id=principal.partner_id, partner_kind=_kind(principal)
    ):
        return None
    return Redemption.from_model(row)


@strawberry.type
class Query:
    @strawberry.field(extensions=needs("redemptions:read", MERCHANT, OPERATOR))
    async def redemption(self, info: strawberry.Info, id: strawberry.ID) -> Redemption | None:
        pk = decode_pk(id, "Redemption")
        return None if pk is None else await redemption_node(info, pk)

    @strawberry.field(
        description="MERCHANT: its own. OPERATOR: those paid by its members or at its merchants. ADMIN: all.",
        extensions=needs("redemptions:read", MERCHANT, OPERATOR),
    )
    async def redemptions(
        self,
        info: strawberry.Info,
        filter: RedemptionFilter | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Redemption]:
        principal = principal_of(info)
        f = filter or RedemptionFilter()
        stmt = redemption_service.redemptions_query(
            partner_id=principal.partner_id,
            partner_kind=_kind(principal),
            status=RedemptionStatus(f.status.value) if f.status else None,
            order_id=f.order_id,
            reference=f.reference,
            created_from=f.from_,
            created_to=f.to,
        )
        return await paginate(info, stmt, key=RedemptionRow.id, first=first, after=after, to_node=Redemption.from_model)
