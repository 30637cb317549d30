"""Settlements between operators and reconciliation runs: types, enums and their loaders.

An OPEN settlement (the period now collecting movements) shows provisional figures
computed at read time, and empty `digest`, `signature` and `documentUrl`: only closing
signs a document.
"""

from __future__ import annotations

import asyncio

import strawberry

from gateway import documents
from gateway import reconciliation as reconciliation_service
from gateway import settlement as settlement_service
from gateway.models import (
    Agreement as AgreementRow,
)
from gateway.models import (
    Discrepancy as DiscrepancyRow,
)
from gateway.models import (
    DiscrepancyKind,
    DiscrepancyStatus,
    FlowKind,
    ReconciliationStatus,
    SettlementResponse,
    SettlementResponseKind,
    SettlementStatus,
)
from gateway.models import (
    ReconciliationRun as RunRow,
)
from gateway.models import (
    Settlement as SettlementRow,
)
from gateway.models import (
    SettlementLine as LineRow,
)
from schema.dataloaders import by_column, grouped_by
from schema.ids import encode_id
from schema.node import Node
from schema.pagination import Connection, paginate
from schema.scalars import BigInt, Date, DateTime
from schema.types.partners import Agreement, Partner, load_partner

FlowKindEnum = strawberry.enum(FlowKind, name="FlowKind")
SettlementStatusEnum = strawberry.enum(SettlementStatus, name="SettlementStatus")
DiscrepancyKindEnum = strawberry.enum(DiscrepancyKind, name="DiscrepancyKind")
DiscrepancyStatusEnum = strawberry.enum(DiscrepancyStatus, name="DiscrepancyStatus")
ReconciliationStatusEnum = strawberry.enum(ReconciliationStatus, name="ReconciliationStatus")


def _agreement_loader(ctx):
    return by_column(ctx, AgreementRow.id)


def _lines_loader(ctx):
    return grouped_by(ctx, LineRow.settlement_id, order_by=LineRow.position)


def _responses_loader(ctx):
    return grouped_by(ctx, SettlementResponse.settlement_id, order_by=SettlementResponse.at)


async def load_agreement(info: strawberry.Info, agreement_id: int) -> AgreementRow:
    return await info.context.loaders.get("agreement", _agreement_loader).load(agreement_id)


@strawberry.type
class SettlementLine:
    kind: FlowKindEnum
    count: BigInt
    gross_won: BigInt
    fee_won: BigInt
    net_won: BigInt
    payer_id: strawberry.Private[int]
    payee_id: strawberry.Private[int]

    @strawberry.field
    async def payer(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.payer_id)

    @strawberry.field
    async def payee(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.payee_id)

    @classmethod
    def of(cls, line) -> SettlementLine:
        return cls(
            kind=line.kind,
            count=line.count,
            gross_won=line.gross_won,
            fee_won=line.fee_won,
            net_won=line.net_won,
            payer_id=line.payer_id,
            payee_id=line.payee_id,
        )


@strawberry.type
class Settlement(Node):
    id: strawberry.ID
    period_start: Date
    period_end: Date
    status: SettlementStatusEnum
    row: strawberry.Private[SettlementRow]
    #: OPEN only: the provisional lines and net, computed once per object (its sibling
    #: fields await the same future).
    _provisional: strawberry.Private[asyncio.Future | None] = None

    async def _open_figures(self, info: strawberry.Info) -> tuple[list, settlement_service.NetFigures]:
        if self._provisional is None:
            self._provisional = asyncio.ensure_future(self._compute_open_figures(info))
        return await self._provisional

    async def _compute_open_figures(self, info: strawberry.Info) -> tuple[list, settlement_service.NetFigures]:
        agreement = await load_agreement(info, self.row.agreement_id)
        lines = await settlement_service.provisional_lines(info.context.session, self.row, agreement)
        return lines, settlement_service.net_of(lines, agreement.operator_a_id, agreement.operator_b_id)

    @property
    def is_open(self) -> bool:
        return self.row.status == SettlementStatus.OPEN

    @strawberry.field
    async def agreement(self, info: strawberry.Info) -> Agreement:
        return Agreement.from_model(await load_agreement(info, self.row.agreement_id))

    @strawberry.field
    async def lines(self, info: strawberry.Info) -> list[SettlementLine]:
        if self.is_open:
            return [SettlementLine.of(line) for line in (await self._open_figures(info))[0]]
        rows = await info.context.loaders.get("settlement_lines", _lines_loader).load(self.row.id)
        return [SettlementLine.of(line) for line in rows]

    @strawberry.field(description="Who pays the net amount; null when it nets to zero.")
    async def net_payer(self, info: strawberry.Info) -> Partner | None:
        payer = (await self._open_figures(info))[1].payer_id if self.is_open else self.row.net_payer_id
        return await load_partner(info, payer) if payer else None

    @strawberry.field
    async def net_payee(self, info: strawberry.Info) -> Partner | None:
        payee = (await self._open_figures(info))[1].payee_id if self.is_open else self.row.net_payee_id
        return await load_partner(info, payee) if payee else None

    @strawberry.field
    async def net_won(self, info: strawberry.Info) -> BigInt:
        return (await self._open_figures(info))[1].net_won if self.is_open else self.row.net_won

    @strawberry.field
    def digest(self) -> str:
        return self.row.digest or ""

    @strawberry.field
    def signature(self) -> str:
        return self.row.signature or ""

    @strawberry.field(description="Canonical JSON document that digest and signature cover.")
    def document_url(self, info: strawberry.Info) -> str:
        if self.is_open:
            return ""
        settings = info.context.settings
        return documents.signed_url(
            base_url=settings.issuer,
            path=document_path(self.row.id),
            secret_key=settings.secret_key,
            ttl_seconds=settings.document_url_ttl_seconds,
        )

    @strawberry.field
    async def confirmed_by(self, info: strawberry.Info) -> list[Partner]:
        responses = await info.context.loaders.get("settlement_responses", _responses_loader).load(self.row.id)
        return [await load_partner(info, r.partner_id) for r in responses if r.kind == SettlementResponseKind.CONFIRMED]

    @strawberry.field
    async def dispute_reason(self, info: strawberry.Info) -> str | None:
        responses = await info.context.loaders.get("settlement_responses", _responses_loader).load(self.row.id)
        return settlement_service.dispute_reason(responses)

    @classmethod
    def from_model(cls, row: SettlementRow | None) -> Settlement | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Settlement", row.id)),
            period_start=row.period_start,
            period_end=row.period_end,
            status=row.status,
            row=row,
        )


def document_path(settlement_id: int) -> str:
    return f"/settlements/{settlement_id}.json"


@strawberry.type
class Discrepancy(Node):
    id: strawberry.ID
    reference: str
    kind: DiscrepancyKindEnum
    gateway_amount_won: BigInt | None
    partner_amount_won: BigInt | None
    status: DiscrepancyStatusEnum
    resolution: str | None

    @classmethod
    def from_model(cls, row: DiscrepancyRow | None) -> Discrepancy | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Discrepancy", row.id)),
            reference=row.reference,
            kind=row.kind,
            gateway_amount_won=row.gateway_amount_won,
            partner_amount_won=row.partner_amount_won,
            status=row.status,
            resolution=row.resolution,
        )


@strawberry.type
class ReconciliationRun(Node):
    id: strawberry.ID
    period_start: Date
    period_end: Date
    status: ReconciliationStatusEnum
    partner_records: BigInt
    matched: BigInt
    missing_in_gateway: BigInt
    missing_at_partner: BigInt
    amount_mismatch: BigInt
    duplicates: BigInt
    started_at: DateTime
    finished_at: DateTime | None
    row: strawberry.Private[RunRow]

    @strawberry.field
    async def agreement(self, info: strawberry.Info) -> Agreement:
        return Agreement.from_model(await load_agreement(info, self.row.agreement_id))

    @strawberry.field(description="The operator whose records were compared with the gateway's.")
    async def partner(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.partner_id)

    @strawberry.field
    async def discrepancies(
        self,
        info: strawberry.Info,
        first: int | None = 50,
        after: str | None = None,
        kind: DiscrepancyKindEnum | None = None,
    ) -> Connection[Discrepancy]:
        stmt = reconciliation_service.discrepancies_query(self.row.id, DiscrepancyKind(kind.value) if kind else None)
        return await paginate(
            info, stmt, key=DiscrepancyRow.id, first=first, after=after, to_node=Discrepancy.from_model, ascending=True
        )

    @classmethod
    def from_model(cls, row: RunRow | None) -> ReconciliationRun | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("ReconciliationRun", row.id)),
            period_start=row.period_start,
            period_end=row.period_end,
            status=row.status,
            partner_records=row.partner_records,
            matched=row.matched,
            missing_in_gateway=row.missing_in_gateway,
            missing_at_partner=row.missing_at_partner,
            amount_mismatch=row.amount_mismatch,
            duplicates=row.duplicates,
            started_at=row.started_at,
            finished_at=row.finished_at,
            row=row,
        )
