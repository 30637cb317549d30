"""Campaigns: a sponsor's pledge to a beneficiary, with its running commitment."""

from __future__ import annotations

import strawberry
from strawberry.dataloader import DataLoader

from gateway import campaigns as campaign_service
from gateway.models.campaigns import Campaign as CampaignRow
from gateway.models.campaigns import CampaignStatus
from schema.dataloaders import by_column
from schema.ids import encode_id
from schema.node import Node
from schema.scalars import BigInt, Date, Decimal
from schema.types.partners import Partner, load_partner

CampaignStatusEnum = strawberry.enum(CampaignStatus, name="CampaignStatus")


@strawberry.type
class Campaign(Node):
    id: strawberry.ID
    code: str
    name: str
    starts_on: Date
    ends_on: Date
    won_per_km: BigInt = strawberry.field(
        description="The sponsor donates this many won per km walked by participants in the period."
    )
    goal_steps: BigInt | None = strawberry.field(
        description="Challenge: steps a participant must reach within the period."
    )
    won_per_achiever: BigInt = strawberry.field(
        description="The sponsor donates this once for each participant who reaches goalSteps."
    )
    match_ratio: Decimal = strawberry.field(
        description="The sponsor matches members' point donations (in won) by this ratio."
    )
    budget_won: BigInt
    committed_won: BigInt = strawberry.field(description="What the sponsor owes so far; never above budgetWon.")
    participants: BigInt
    achievers: BigInt
    distance_km: Decimal
    row: strawberry.Private[CampaignRow]

    @strawberry.field
    async def sponsor(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.sponsor_id)

    @strawberry.field
    async def beneficiary(self, info: strawberry.Info) -> Partner:
        return await load_partner(info, self.row.beneficiary_id)

    @strawberry.field
    def status(self) -> CampaignStatusEnum:
        return campaign_service.campaign_status(self.row, campaign_service.seoul_today())

    @classmethod
    def from_model(cls, row: CampaignRow | None) -> Campaign | None:
        if row is None:
            return None
        return cls(
            id=strawberry.ID(encode_id("Campaign", row.id)),
            code=row.code,
            name=row.name,
            starts_on=row.starts_on,
            ends_on=row.ends_on,
            won_per_km=row.won_per_km,
            goal_steps=row.goal_steps,
            won_per_achiever=row.won_per_achiever,
            match_ratio=row.match_ratio,
            budget_won=row.budget_won,
            committed_won=row.committed_won,
            participants=row.participants,
            achievers=row.achievers,
            distance_km=campaign_service.km(row.distance_m),
            row=row,
        )


def campaign_by_id(ctx) -> DataLoader:
    return by_column(ctx, CampaignRow.id)


def campaign_by_code(ctx) -> DataLoader:
    return by_column(ctx, CampaignRow.code)


async def load_campaign(info: strawberry.Info, campaign_id: int) -> Campaign | None:
    return Campaign.from_model(await info.context.loaders.get("campaign", campaign_by_id).load(campaign_id))


async def load_campaign_by_code(info: strawberry.Info, code: str) -> Campaign | None:
    return Campaign.from_model(await info.context.loaders.get("campaign_by_code", campaign_by_code).load(code))
