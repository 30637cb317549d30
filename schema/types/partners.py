"""Partners, clients, agreements and the viewer."""

from __future__ import annotations

import strawberry

from gateway import models
from gateway.models import AgreementStatus, ClientAuthMethod, PartnerKind, SettlementPeriod
from schema.ids import encode_id
from schema.node import Node
from schema.scalars import Date, DateTime, Decimal

PartnerKindEnum = strawberry.enum(PartnerKind, name="PartnerKind")
ClientAuthMethodEnum = strawberry.enum(ClientAuthMethod, name="ClientAuthMethod")
SettlementPeriodEnum = strawberry.enum(SettlementPeriod, name="SettlementPeriod")
AgreementStatusEnum = strawberry.enum(AgreementStatus, name="AgreementStatus")


@strawberry.type
class PointUnit:
    code: str = strawberry.field(description="Short code of an operator's points, e.g. SWM.")
    won_per_point: Decimal = strawberry.field(description="Value of one point in won.")


@strawberry.type
class Partner(Node):
    id: strawberry.ID
    code: str
    name: str
    kind: PartnerKindEnum
    created_at: DateTime
    unit: PointUnit | None
    operator_id: strawberry.Private[int | None]
    pk: strawberry.Private[int]

    @strawberry.field(description="For a MERCHANT: the operator it is affiliated with.")
    async def operator(self, info: strawberry.Info) -> Partner | None:
        if self.operator_id is None:
            return None
        return Partner.from_model(await info.context.loaders.partner.load(self.operator_id))

    @classmethod
    def from_model(cls, row: models.Partner | None) -> Partner | None:
        if row is None:
            return None
        unit = PointUnit(code=row.unit_code, won_per_point=row.won_per_point) if row.unit_code else None
        return cls(
            id=strawberry.ID(encode_id("Partner", row.id)),
            code=row.code,
            name=row.name,
            kind=row.kind,
            created_at=row.created_at,
            unit=unit,
            operator_id=row.operator_id,
            pk=row.id,
        )


async def load_partner(info: strawberry.Info, partner_id: int) -> Partner:
    return Partner.from_model(await info.context.loaders.partner.load(partner_id))


@strawberry.type
class Viewer:
    partner: Partner
    client_id: str
    scopes: list[str]


@strawberry.type
class Client:
    client_id: str
    scopes: list[str]
    auth_method: ClientAuthMethodEnum
    enabled: bool
    created_at: DateTime
    partner_id: strawberry.Private[int]
    persisted_queries_only: bool = strawberry.field(
        default=False,
        description="The client runs only persisted queries its partner stored (ADMIN sets it with setPersistedQueriesOnly).",
    )

    @strawberry.field
    async def partner(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.partner_id)

    @classmethod
    def from_model(cls, row: models.OAuthClient) -> Client:
        return cls(
            client_id=row.client_id,
            scopes=row.scopes,
            auth_method=row.auth_method,
            enabled=row.enabled,
            created_at=row.created_at,
            persisted_queries_only=bool(row.persisted_queries_only),
            partner_id=row.partner_id,
        )


@strawberry.type
class Agreement(Node):
    id: strawberry.ID
    code: str
    cross_redemption: bool = strawberry.field(
        description="Members of either operator may pay at the other's merchants."
    )
    point_exchange: bool = strawberry.field(description="Members may exchange points between the two programs.")
    fee_bps: int
    settlement_period: SettlementPeriodEnum
    starts_on: Date
    ends_on: Date | None
    status: AgreementStatusEnum
    operator_a_id: strawberry.Private[int]
    operator_b_id: strawberry.Private[int]
    pk: strawberry.Private[int]

    @strawberry.field
    async def operator_a(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.operator_a_id)

    @strawberry.field
    async def operator_b(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.operator_b_id)

    @classmethod
    def from_model(cls, row: models.Agreement) -> Agreement:
        return cls(
            id=strawberry.ID(encode_id("Agreement", row.id)),
            code=row.code,
            cross_redemption=row.cross_redemption,
            point_exchange=row.point_exchange,
            fee_bps=row.fee_bps,
            settlement_period=row.settlement_period,
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            status=row.status,
            operator_a_id=row.operator_a_id,
            operator_b_id=row.operator_b_id,
            pk=row.id,
        )
