"""Settlement and reconciliation queries: operators see those of the agreements they are party to."""

from __future__ import annotations

import strawberry

from gateway import reconciliation as reconciliation_service
from gateway import settlement as settlement_service
from gateway.errors import NotFound
from gateway.models import ReconciliationRun as RunRow
from gateway.models import Settlement as SettlementRow
from gateway.models import SettlementStatus
from schema.ids import decode_pk
from schema.node import node_resolver
from schema.pagination import Connection, paginate
from schema.permissions import OPERATOR, needs, principal_of, visible_to
from schema.types.settlement import (
    Discrepancy,
    ReconciliationRun,
    Settlement,
    SettlementStatusEnum,
    load_agreement,
)


def party_filter(info) -> int | None:
    """The partner whose agreements bound what the caller sees (None: ADMIN, all)."""
    principal = principal_of(info)
    return None if principal.is_admin else principal.partner_id


async def _is_party(info, agreement_id: int) -> bool:
    agreement = await load_agreement(info, agreement_id)
    return agreement is not None and visible_to(principal_of(info), agreement.operator_a_id, agreement.operator_b_id)


@node_resolver("Settlement")
async def settlement_node(info, pk: int) -> Settlement | None:
    row = await info.context.session.get(SettlementRow, pk)
    if row is None or not await _is_party(info, row.agreement_id):
        return None
    return Settlement.from_model(row)


@node_resolver("ReconciliationRun")
async def run_node(info, pk: int) -> ReconciliationRun | None:
    row = await info.context.session.get(RunRow, pk)
    if row is None or not await _is_party(info, row.agreement_id):
        return None
    return ReconciliationRun.from_model(row)


@node_resolver("Discrepancy")
async def discrepancy_node(info, pk: int) -> Discrepancy | None:
    try:
        row = await reconciliation_service.get_discrepancy(info.context.session, pk, partner_id=party_filter(info))
    except NotFound:
        return None
    return Discrepancy.from_model(row)


@strawberry.type
class Query:
    @strawberry.field(extensions=needs("settlements:read", OPERATOR))
    async def settlement(self, info: strawberry.Info, id: strawberry.ID) -> Settlement | None:
        pk = decode_pk(id, "Settlement")
        return None if pk is None else await settlement_node(info, pk)

    @strawberry.field(
        description=(
            "OPERATOR: settlements of the agreements it is party to. ADMIN: all. Newest first; "
            "the OPEN one of each agreement (once the scheduler has opened it) shows provisional figures."
        ),
        extensions=needs("settlements:read", OPERATOR),
    )
    async def settlements(
        self,
        info: strawberry.Info,
        agreement_code: str | None = None,
        status: SettlementStatusEnum | None = None,
        first: int | None = 50,
        after: str | None = None,
    ) -> Connection[Settlement]:
        stmt = settlement_service.settlements_query(
            partner_id=party_filter(info),
            agreement_code=agreement_code,
            status=SettlementStatus(status.value) if status else None,
        )
        return await paginate(info, stmt, key=SettlementRow.id, first=first, after=after, to_node=Settlement.from_model)

    @strawberry.field(extensions=needs("settlements:read", OPERATOR))
    async def reconciliation_run(self, info: strawberry.Info, id: strawberry.ID) -> ReconciliationRun | None:
        pk = decode_pk(id, "ReconciliationRun")
        return None if pk is None else await run_node(info, pk)


__all__ = ["Query", "party_filter"]
