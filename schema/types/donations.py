"""Point donations and donation statements."""

from __future__ import annotations

import strawberry

from gateway.models import Partner as PartnerRow
from gateway.models.campaigns import Donation as DonationRow
from gateway.statements import Statement
from schema.dataloaders import by_column
from schema.ids import encode_id
from schema.node import Node
from schema.scalars import BigInt, Date, DateTime, Decimal
from schema.types.campaigns import Campaign, load_campaign, load_campaign_by_code
from schema.types.partners import Partner, load_partner


@strawberry.type
class Donation(Node):
    id: strawberry.ID
    reference: str
    points: BigInt
    unit: str
    won_value: BigInt
    matched_won: BigInt = strawberry.field(description="What the campaign's sponsor added.")
    created_at: DateTime
    row: strawberry.Private[DonationRow]

    @strawberry.field
    async def operator(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.operator_id)

    @strawberry.field
    async def beneficiary(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.beneficiary_id)

    @strawberry.field
    async def campaign(self, info: strawberry.Info) -> Campaign | None:
        if self.row.campaign_id is None:
            return None
        return await load_campaign(info, self.row.campaign_id)

    @classmethod
    def from_model(cls, row: DonationRow | None) -> Donation | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Donation", row.id)),
            reference=row.reference,
            points=row.points,
            unit=row.unit,
            won_value=row.won_value,
            matched_won=row.matched_won,
            created_at=row.created_at,
            row=row,
        )


@strawberry.input
class DonationFilter:
    campaign_code: str | None = None
    beneficiary_code: str | None = None
    from_: DateTime | None = strawberry.field(default=None, name="from")
    to: DateTime | None = None


def partner_by_code(ctx):
    return by_column(ctx, PartnerRow.code)


async def load_partner_by_code(info: strawberry.Info, code: str) -> Partner | None:
    return Partner.from_model(await info.context.loaders.get("partner_by_code", partner_by_code).load(code))


@strawberry.type
class DonationStatementLine:
    distance_won: BigInt = strawberry.field(description="Won for kilometres walked.")
    achievement_won: BigInt = strawberry.field(description="Won for participants who reached the goal.")
    matched_won: BigInt = strawberry.field(description="Won matched on members' point donations.")
    total_won: BigInt
    participants: BigInt
    achievers: BigInt
    distance_km: Decimal
    campaign_code: strawberry.Private[str]
    beneficiary_code: strawberry.Private[str]

    @strawberry.field
    async def campaign(self, info: strawberry.Info) -> Campaign:
        return await load_campaign_by_code(info, self.campaign_code)

    @strawberry.field
    async def beneficiary(self, info: strawberry.Info) -> Partner:
        return await load_partner_by_code(info, self.beneficiary_code)


@strawberry.type
class DonationStatement:
    period_start: Date
    period_end: Date
    lines: list[DonationStatementLine]
    total_won: BigInt
    issued_at: DateTime
    digest: str = strawberry.field(description="Hex SHA-256 of the statement's canonical JSON document.")
    signature: str = strawberry.field(
        description="Detached compact JWS (EdDSA) over the canonical JSON, verifiable with the keys at /.well-known/jwks.json."
    )
    document_url: str = strawberry.field(description="Canonical JSON document that digest and signature cover.")
    csv_url: str
    pdf_url: str
    sponsor_id: strawberry.Private[int]

    @strawberry.field
    async def sponsor(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.sponsor_id)

    @classmethod
    def of(cls, statement: Statement, *, sponsor_id: int, urls: dict[str, str]) -> DonationStatement:
        return cls(
            period_start=statement.period_start,
            period_end=statement.period_end,
            lines=[
                DonationStatementLine(
                    distance_won=line.distance_won,
                    achievement_won=line.achievement_won,
                    matched_won=line.matched_won,
                    total_won=line.total_won,
                    participants=line.participants,
                    achievers=line.achievers,
                    distance_km=line.distance_km,
                    campaign_code=line.campaign,
                    beneficiary_code=line.beneficiary,
                )
                for line in statement.lines
            ],
            total_won=statement.total_won,
            issued_at=statement.issued_at,
            digest=statement.digest,
            signature=statement.signature,
            document_url=urls["json"],
            csv_url=urls["csv"],
            pdf_url=urls["pdf"],
            sponsor_id=sponsor_id,
        )
